//! The built-in backends through the public conformance suite
//! (`evio_sys::conformance`), one `#[test]` per check and backend.
//!
//! The suite needs the `conformance` feature; evio-sys's dev-dependency on
//! itself turns it on for its tests, so `cargo test --workspace` runs them.

use evio_sys::conformance::Options;

#[cfg(evio_epoll)]
evio_sys::conformance_tests!(epoll, evio_sys::EpollPoller::new);

#[cfg(evio_kqueue)]
evio_sys::conformance_tests!(kqueue, evio_sys::KqueuePoller::new);

// poll(2) flags a half-closed peer (POLLRDHUP) on Linux and Android only.
evio_sys::conformance_tests!(
    poll,
    evio_sys::PollPoller::new,
    Options::new().peer_close_flagged(cfg!(evio_epoll))
);

/// The single entry point, as a backend author without the macro would use
/// it: every check, one after the other.
#[test]
fn run_all_on_the_default_backend() {
    evio_sys::conformance::run_all(evio_sys::DefaultPoller::new);
}
