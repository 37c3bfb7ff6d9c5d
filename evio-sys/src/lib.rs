//! Operating-system layer of evio: readiness pollers and socket calls.
//!
//! This crate is the only place in the workspace that contains `unsafe`,
//! and holds little of it: the system calls go through [`nix`], and raw
//! `libc` remains only where nix lacks a call or flag (each spot says why).
//! It offers:
//!
//! * the [`Poller`] trait and one backend per OS family, each in its own file
//!   chosen by `cfg`: [`EpollPoller`] (Linux, Android), `KqueuePoller`
//!   (Apple's systems and the BSDs) and [`PollPoller`] (any Unix, the
//!   portable fallback). [`DefaultPoller`] names the best one for the
//!   target;
//! * for writing another backend: [`Coalescing`], the wake coalescing the
//!   built-in backends share, and, with the `conformance` cargo feature, the
//!   `conformance` module: every property of the [`Poller`] contract as
//!   checks to run on a backend;
//! * [`net`]: thin, `io::Result`-returning wrappers over the socket calls an
//!   event loop needs (bind, accept, read, write that never raises `SIGPIPE`,
//!   socket options, address conversion, the descriptor limit).
//!
//! # Triggering mode
//!
//! A backend says how it reports readiness through [`Poller::EDGE_TRIGGERED`].
//! The epoll and kqueue backends are **edge-triggered**: a socket is registered
//! once (evio-core adds write interest at most once more, when a write first
//! cannot finish), so a request/response costs one `read`, one `write` and a
//! share of one `epoll_wait` — no `epoll_ctl` per request (Go's evio pays
//! two). The price
//! is that a consumer must drain a source (or remember that it did not) before
//! waiting again. The poll(2) backend is **level-triggered**, because poll(2)
//! has no edges; a consumer then turns write interest on only while it has
//! output queued. `evio-core` handles both modes.
//!
//! # Example
//!
//! ```
//! use evio_sys::{DefaultPoller, Events, Interest, Poller};
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::io::Write;
//!
//! let mut poller = DefaultPoller::new()?;
//! let (a, mut b) = UnixStream::pair()?;
//! poller.register(a.as_raw_fd(), 7, Interest::READABLE)?;
//! b.write_all(b"hi")?;
//! let mut events = Events::with_capacity(16);
//! poller.wait(&mut events, Some(std::time::Duration::from_secs(1)))?;
//! assert!(events.iter().any(|e| e.token() == 7 && e.is_readable()));
//! poller.deregister(a.as_raw_fd())?;
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

use std::time::Duration;

mod event;
mod fd;
mod poller;
mod wakefd;
mod waker;

pub use event::{Event, Events, Interest};
pub use poller::Poller;
pub use waker::{Coalescing, Signal, Wake, Waker};

#[cfg(evio_epoll)]
mod epoll;
#[cfg(evio_epoll)]
pub use epoll::EpollPoller;

#[cfg(evio_kqueue)]
mod kqueue;
#[cfg(evio_kqueue)]
pub use kqueue::KqueuePoller;

mod poll;
pub use poll::PollPoller;

pub mod net;

#[cfg(feature = "conformance")]
pub mod conformance;

/// The best backend for the target: epoll on Linux and Android.
#[cfg(evio_epoll)]
pub type DefaultPoller = EpollPoller;

/// The best backend for the target: kqueue on Apple's systems and the BSDs.
#[cfg(evio_kqueue)]
pub type DefaultPoller = KqueuePoller;

/// The best backend for the target: poll(2) where nothing better exists.
#[cfg(not(any(evio_epoll, evio_kqueue)))]
pub type DefaultPoller = PollPoller;

/// Rounds a timeout up to whole milliseconds for `epoll_wait`/`poll`
/// (`-1` = forever), so a 0.3 ms timeout never becomes a busy 0 ms loop.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis();
            let ms = if Duration::from_millis(ms as u64) < d {
                ms + 1
            } else {
                ms
            };
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}
