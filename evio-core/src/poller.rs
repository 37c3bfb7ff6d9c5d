//! Everything needed to write a poller backend, from evio-core alone.
//!
//! A backend implements [`Poller`]: register file descriptors with a `u64`
//! token and an [`Interest`], wait for [`Events`], and hand out a [`Waker`]
//! that ends a wait from another thread ([`Coalescing`] over a [`Signal`]
//! makes one). Give the server a configured instance with
//! [`Builder::poller`](crate::Builder::poller). With the `conformance`
//! feature, `conformance` checks a backend against every property the
//! trait documents (`conformance::run_all(MyPoller::new)` in a test, or
//! `conformance_tests!` for one `#[test]` per check).
//!
//! # Tokens the core uses
//!
//! The core registers listeners with bit 63 set (the listener's index
//! below it) and connections with bit 63 clear (a 31-bit generation in bits
//! 32..63, the connection's slot in bits 0..32). It never uses `u64::MAX`,
//! which a backend may reserve for its waker. A backend must return every
//! other token exactly, on 32-bit targets too.
//!
//! # What the core asks of a backend
//!
//! * Edge-triggered backends (`EDGE_TRIGGERED = true`): each connection is
//!   registered once with [`Interest::READABLE`] (or [`Interest::BOTH`] for
//!   a connect in progress or output already waiting) and reregistered
//!   with [`Interest::BOTH`] at most once, the first time a write cannot
//!   finish; a reregistration must report readiness that is already there.
//!   The core reads and writes until `EAGAIN` and remembers what it left.
//! * Level-triggered ones: the core keeps the interest at what the
//!   connection waits for, and parks a connection that waits for nothing
//!   with [`Interest::NONE`], expecting errors and hang-ups to be reported
//!   still (conformance check `no_interest_reports_only_errors`).
//! * [`Poller::close`] closes a connection's socket; override it when the
//!   kernel drops the registration by itself (epoll, kqueue) to save the
//!   `deregister` system call.
//!
//! The example `examples/counting_poller.rs` is a complete backend: a
//! decorator over the default poller that counts calls, run under a real
//! server by the tests.

pub use evio_sys::{Coalescing, Event, Events, Interest, Poller, Signal, Wake, Waker};

#[cfg(feature = "conformance")]
pub use evio_sys::conformance;
#[cfg(feature = "conformance")]
pub use evio_sys::conformance_tests;
