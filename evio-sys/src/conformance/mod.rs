//! A conformance suite for [`Poller`] backends: every property the trait
//! documents, checked against real sockets. Needs the `conformance` cargo
//! feature.
//!
//! A backend author runs it from a test, either as one `#[test]` per check,
//! so that `cargo test` names each check that fails:
//!
//! ```
//! // In tests/conformance.rs of a crate with a backend; here the built-in
//! // poll(2) one, configured through a closure.
//! evio_sys::conformance_tests!(my_poller, || evio_sys::PollPoller::new());
//! ```
//!
//! or as one test that runs them all and names every check that failed:
//!
//! ```
//! # #[cfg(any(target_os = "linux", target_os = "android"))]
//! evio_sys::conformance::run_all(evio_sys::EpollPoller::new);
//! ```
//!
//! The checks build pollers with the constructor they are given, as many as
//! they need, so it must make a fresh, independent poller on each call.
//! Checks whose assertions depend on the triggering mode follow
//! [`Poller::EDGE_TRIGGERED`]; [`Options`] relaxes what a backend cannot
//! tell. Each check runs on its own thread under a watchdog, so a backend
//! that blocks where it must not fails the check instead of hanging the
//! test run, and every wait loops until the expected event shows up (or a
//! deadline passes), so no check relies on one wait returning everything.
//!
//! The checks open up to about 2,000 sockets at once (raising
//! `RLIMIT_NOFILE` if allowed) and use only loopback TCP and unix socket
//! pairs: no files, no network, nothing outside the process.

use std::io;
use std::sync::Arc;

use crate::Poller;

mod harness;
mod readiness;
mod registration;
mod util;
mod wait;

use harness::{Body, New};

/// What a backend cannot tell, so that the checks do not demand it.
///
/// ```
/// use evio_sys::conformance::Options;
/// // poll(2) outside Linux cannot flag a half-closed peer.
/// let options = Options::new().peer_close_flagged(false);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    peer_close_flagged: bool,
}

impl Options {
    /// Demands everything: the strictest options, also the default.
    pub fn new() -> Options {
        Options {
            peer_close_flagged: true,
        }
    }

    /// Whether a peer that closes or shuts down its writing side must be
    /// flagged with [`Event::READ_CLOSED`](crate::Event::READ_CLOSED) or
    /// [`Event::HANGUP`](crate::Event::HANGUP) (default `true`). With
    /// `false`, readability and a read returning EOF are enough.
    pub fn peer_close_flagged(mut self, flagged: bool) -> Options {
        self.peer_close_flagged = flagged;
        self
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

/// One check of the suite; [`Check::ALL`] lists them in the order
/// [`run_all`] runs them.
///
/// ```
/// use evio_sys::conformance::Check;
/// assert_eq!(Check::TokensRoundTrip.name(), "tokens_round_trip");
/// assert!(Check::ALL.contains(&Check::Close));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// A unix pair with one end registered for reading and the other for
    /// writing: the writer is reported writable and not readable, the
    /// reader is reported only once data arrives, readable and not
    /// writable, with no close or error flag.
    UnixReadiness,
    /// [`UnixReadiness`](Check::UnixReadiness) on a loopback TCP connection.
    TcpReadiness,
    /// `reregister` replaces both interest and token: readiness is reported
    /// with the new token only, for the new interest only, and readiness
    /// that already holds is reported after it.
    ReregisterChangesInterestAndToken,
    /// A deregistered fd is not reported again, even as new data arrives,
    /// and deregistering it again fails with `ENOENT`.
    DeregisterStopsEvents,
    /// Deregistering fds in the middle of a set leaves the others
    /// registered and reported with their own tokens.
    DeregisterKeepsOtherFds,
    /// `close` drops the registration with the fd: an event pending before
    /// is not reported after it, a new fd with the same number can be
    /// registered and is reported with its own token, and closing an
    /// unregistered fd returns `Ok` or `ENOENT`.
    Close,
    /// Every token but `u64::MAX` round-trips exactly, those with high bits
    /// set included (a 32-bit pointer-sized kernel field would cut them),
    /// through `register` and `reregister`.
    TokensRoundTrip,
    /// A zero timeout polls: the wait returns at once, with nothing.
    ZeroTimeoutReturnsAtOnce,
    /// A timeout is honoured: a wait that sees nothing returns no earlier
    /// than the timeout and not much later, and a sub-millisecond timeout
    /// is not rounded down to a busy zero.
    TimeoutIsHonoured,
    /// A wake from another thread ends a wait without timeout, sets
    /// `is_woken`, and stores no event.
    WakeEndsBlockedWait,
    /// 100,000 wakes in a tight loop neither block nor get lost, coalesce
    /// into one woken wait, and leave the waker re-armed for the next wake.
    ManyWakesCoalesce,
    /// A million wakes racing with waits, each after publishing a sequence
    /// number: the loop never sleeps through a wake and ends up seeing the
    /// last number.
    WakesRacingWaitsAreNotLost,
    /// A waker that outlives its poller wakes harmlessly (`Ok`).
    WakerOutlivesThePoller,
    /// Up to 1,000 socket pairs registered at once are all reported, through
    /// an `Events` much smaller than the set; once drained, none is
    /// reported; deregistering them in a scattered order works.
    ThousandSockets,
    /// A unix peer that closes is reported readable (and flagged, unless
    /// [`Options::peer_close_flagged`] is off), and a read returns EOF.
    UnixPeerClosed,
    /// As [`UnixPeerClosed`](Check::UnixPeerClosed), for a peer that shuts
    /// down its writing side.
    UnixPeerShutdown,
    /// As [`UnixPeerClosed`](Check::UnixPeerClosed), over TCP.
    TcpPeerClosed,
    /// As [`UnixPeerShutdown`](Check::UnixPeerShutdown), over TCP.
    TcpPeerShutdown,
    /// Registering an invalid or closed fd fails with `EBADF` for every
    /// interest and leaves it unregistered; the poller still works after.
    RegisterInvalidOrClosedFdIsEbadf,
    /// Registering an fd twice fails with `EEXIST` and leaves the first
    /// registration's token and interest alone; reregistering or
    /// deregistering an unknown fd fails with `ENOENT`.
    RegisterTwiceIsEexist,
    /// Unread data is reported again by a level-triggered backend and not
    /// by an edge-triggered one, for which new data is a new edge.
    EdgeOrLevelSemantics,
    /// A writable unix socket registered for both directions is reported
    /// writable exactly once by an edge-triggered backend, and again and
    /// again by a level-triggered one; never readable.
    UnixWritableOnceOrAlways,
    /// [`UnixWritableOnceOrAlways`](Check::UnixWritableOnceOrAlways) over TCP.
    TcpWritableOnceOrAlways,
    /// Level-triggered backends: an fd reregistered with
    /// [`Interest::NONE`](crate::Interest::NONE) is not reported for the
    /// data it holds, but a reset of its peer is reported (error or
    /// hang-up) — evio-core parks connections it does not read this way
    /// and must still learn that they died. Edge-triggered backends pass
    /// it trivially (the core never parks on them).
    NoInterestReportsOnlyErrors,
}

impl Check {
    /// Every check, in the order [`run_all`] runs them.
    pub const ALL: &'static [Check] = &[
        Check::UnixReadiness,
        Check::TcpReadiness,
        Check::ReregisterChangesInterestAndToken,
        Check::DeregisterStopsEvents,
        Check::DeregisterKeepsOtherFds,
        Check::Close,
        Check::TokensRoundTrip,
        Check::ZeroTimeoutReturnsAtOnce,
        Check::TimeoutIsHonoured,
        Check::WakeEndsBlockedWait,
        Check::ManyWakesCoalesce,
        Check::WakesRacingWaitsAreNotLost,
        Check::WakerOutlivesThePoller,
        Check::ThousandSockets,
        Check::UnixPeerClosed,
        Check::UnixPeerShutdown,
        Check::TcpPeerClosed,
        Check::TcpPeerShutdown,
        Check::RegisterInvalidOrClosedFdIsEbadf,
        Check::RegisterTwiceIsEexist,
        Check::EdgeOrLevelSemantics,
        Check::UnixWritableOnceOrAlways,
        Check::TcpWritableOnceOrAlways,
        Check::NoInterestReportsOnlyErrors,
    ];

    /// The check's name in snake case, as its `#[test]` from
    /// [`conformance_tests!`](crate::conformance_tests) is called.
    pub fn name(self) -> &'static str {
        match self {
            Check::UnixReadiness => "unix_readiness",
            Check::TcpReadiness => "tcp_readiness",
            Check::ReregisterChangesInterestAndToken => "reregister_changes_interest_and_token",
            Check::DeregisterStopsEvents => "deregister_stops_events",
            Check::DeregisterKeepsOtherFds => "deregister_keeps_other_fds",
            Check::Close => "close",
            Check::TokensRoundTrip => "tokens_round_trip",
            Check::ZeroTimeoutReturnsAtOnce => "zero_timeout_returns_at_once",
            Check::TimeoutIsHonoured => "timeout_is_honoured",
            Check::WakeEndsBlockedWait => "wake_ends_blocked_wait",
            Check::ManyWakesCoalesce => "many_wakes_coalesce",
            Check::WakesRacingWaitsAreNotLost => "wakes_racing_waits_are_not_lost",
            Check::WakerOutlivesThePoller => "waker_outlives_the_poller",
            Check::ThousandSockets => "thousand_sockets",
            Check::UnixPeerClosed => "unix_peer_closed",
            Check::UnixPeerShutdown => "unix_peer_shutdown",
            Check::TcpPeerClosed => "tcp_peer_closed",
            Check::TcpPeerShutdown => "tcp_peer_shutdown",
            Check::RegisterInvalidOrClosedFdIsEbadf => "register_invalid_or_closed_fd_is_ebadf",
            Check::RegisterTwiceIsEexist => "register_twice_is_eexist",
            Check::EdgeOrLevelSemantics => "edge_or_level_semantics",
            Check::UnixWritableOnceOrAlways => "unix_writable_once_or_always",
            Check::TcpWritableOnceOrAlways => "tcp_writable_once_or_always",
            Check::NoInterestReportsOnlyErrors => "no_interest_reports_only_errors",
        }
    }

    /// The check's body.
    fn body<P: Poller + 'static>(self) -> Body<P> {
        match self {
            Check::UnixReadiness => readiness::unix_readiness,
            Check::TcpReadiness => readiness::tcp_readiness,
            Check::ReregisterChangesInterestAndToken => registration::reregister,
            Check::DeregisterStopsEvents => registration::deregister,
            Check::DeregisterKeepsOtherFds => registration::deregister_keeps_others,
            Check::Close => registration::close,
            Check::TokensRoundTrip => registration::tokens_round_trip,
            Check::ZeroTimeoutReturnsAtOnce => wait::zero_timeout,
            Check::TimeoutIsHonoured => wait::timeouts,
            Check::WakeEndsBlockedWait => wait::wake_from_thread,
            Check::ManyWakesCoalesce => wait::many_wakes,
            Check::WakesRacingWaitsAreNotLost => wait::wakes_race_waits,
            Check::WakerOutlivesThePoller => wait::waker_outlives_poller,
            Check::ThousandSockets => readiness::many_sockets,
            Check::UnixPeerClosed => readiness::unix_peer_closed,
            Check::UnixPeerShutdown => readiness::unix_peer_shutdown,
            Check::TcpPeerClosed => readiness::tcp_peer_closed,
            Check::TcpPeerShutdown => readiness::tcp_peer_shutdown,
            Check::RegisterInvalidOrClosedFdIsEbadf => registration::register_bad_fd,
            Check::RegisterTwiceIsEexist => registration::register_twice,
            Check::EdgeOrLevelSemantics => readiness::edge_vs_level,
            Check::UnixWritableOnceOrAlways => readiness::unix_writable_once,
            Check::TcpWritableOnceOrAlways => readiness::tcp_writable_once,
            Check::NoInterestReportsOnlyErrors => registration::no_interest,
        }
    }

    /// Whether the check needs a closed fd's number to stay free, so that
    /// no other check may run beside it.
    fn exclusive(self) -> bool {
        matches!(self, Check::Close | Check::RegisterInvalidOrClosedFdIsEbadf)
    }

    /// Runs this check on the backend built by `new`, with the strictest
    /// [`Options`].
    ///
    /// # Panics
    /// With a message naming the check if the backend fails it, or if it
    /// does not finish within 20 seconds.
    pub fn run<P, F>(self, new: F)
    where
        P: Poller + 'static,
        F: Fn() -> io::Result<P> + Send + Sync + 'static,
    {
        self.run_with(new, &Options::new());
    }

    /// Runs this check on the backend built by `new`, with `options`.
    ///
    /// # Panics
    /// As [`run`](Check::run).
    pub fn run_with<P, F>(self, new: F, options: &Options)
    where
        P: Poller + 'static,
        F: Fn() -> io::Result<P> + Send + Sync + 'static,
    {
        self.run_shared(Arc::new(new), options);
    }

    fn run_shared<P: Poller + 'static>(self, new: Arc<New<P>>, options: &Options) {
        harness::run(
            self.name(),
            self.exclusive(),
            self.body::<P>(),
            new,
            options.clone(),
        );
    }
}

/// Runs every check on the backend built by `new`, with the strictest
/// [`Options`], one after the other.
///
/// # Panics
/// After running them all, if any failed: the message names each failed
/// check and why.
pub fn run_all<P, F>(new: F)
where
    P: Poller + 'static,
    F: Fn() -> io::Result<P> + Send + Sync + 'static,
{
    run_all_with(new, &Options::new());
}

/// Runs every check on the backend built by `new`, with `options`.
///
/// # Panics
/// As [`run_all`].
pub fn run_all_with<P, F>(new: F, options: &Options)
where
    P: Poller + 'static,
    F: Fn() -> io::Result<P> + Send + Sync + 'static,
{
    let new: Arc<New<P>> = Arc::new(new);
    let mut failed = Vec::new();
    for &check in Check::ALL {
        let run = || check.run_shared(new.clone(), options);
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            failed.push(format!(
                "  {}: {}",
                check.name(),
                harness::panic_message(&*panic)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} poller conformance checks failed:\n{}",
        failed.len(),
        Check::ALL.len(),
        failed.join("\n")
    );
}

/// Expands to a module of `#[test]`s, one per [`Check`](crate::conformance::Check),
/// each running that check on the backend built by the constructor.
///
/// `conformance_tests!(name, constructor)` uses the strictest
/// [`Options`](crate::conformance::Options);
/// `conformance_tests!(name, constructor, options)` takes them as an
/// expression. The constructor is any `Fn() -> io::Result<P>` that is
/// `Send + Sync + 'static`: a backend's `new`, or a closure that configures
/// one. Paths in it are resolved inside the generated module, which
/// imports the enclosing module's items (`use super::*`).
///
/// ```
/// evio_sys::conformance_tests!(default, evio_sys::DefaultPoller::new);
/// evio_sys::conformance_tests!(
///     poll,
///     evio_sys::PollPoller::new,
///     evio_sys::conformance::Options::new().peer_close_flagged(false)
/// );
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $new:expr $(,)?) => {
        $crate::conformance_tests!($name, $new, $crate::conformance::Options::new());
    };
    ($name:ident, $new:expr, $options:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::Check;

            fn check(check: Check) {
                check.run_with($new, &$options);
            }

            // Lists every check: one added without a test here fails to
            // compile this match.
            #[allow(dead_code)]
            fn every_check_has_a_test(check: Check) {
                match check {
                    Check::UnixReadiness
                    | Check::TcpReadiness
                    | Check::ReregisterChangesInterestAndToken
                    | Check::DeregisterStopsEvents
                    | Check::DeregisterKeepsOtherFds
                    | Check::Close
                    | Check::TokensRoundTrip
                    | Check::ZeroTimeoutReturnsAtOnce
                    | Check::TimeoutIsHonoured
                    | Check::WakeEndsBlockedWait
                    | Check::ManyWakesCoalesce
                    | Check::WakesRacingWaitsAreNotLost
                    | Check::WakerOutlivesThePoller
                    | Check::ThousandSockets
                    | Check::UnixPeerClosed
                    | Check::UnixPeerShutdown
                    | Check::TcpPeerClosed
                    | Check::TcpPeerShutdown
                    | Check::RegisterInvalidOrClosedFdIsEbadf
                    | Check::RegisterTwiceIsEexist
                    | Check::EdgeOrLevelSemantics
                    | Check::UnixWritableOnceOrAlways
                    | Check::TcpWritableOnceOrAlways
                    | Check::NoInterestReportsOnlyErrors => {}
                }
            }

            #[test]
            fn unix_readiness() {
                check(Check::UnixReadiness)
            }
            #[test]
            fn tcp_readiness() {
                check(Check::TcpReadiness)
            }
            #[test]
            fn reregister_changes_interest_and_token() {
                check(Check::ReregisterChangesInterestAndToken)
            }
            #[test]
            fn deregister_stops_events() {
                check(Check::DeregisterStopsEvents)
            }
            #[test]
            fn deregister_keeps_other_fds() {
                check(Check::DeregisterKeepsOtherFds)
            }
            #[test]
            fn close() {
                check(Check::Close)
            }
            #[test]
            fn tokens_round_trip() {
                check(Check::TokensRoundTrip)
            }
            #[test]
            fn zero_timeout_returns_at_once() {
                check(Check::ZeroTimeoutReturnsAtOnce)
            }
            #[test]
            fn timeout_is_honoured() {
                check(Check::TimeoutIsHonoured)
            }
            #[test]
            fn wake_ends_blocked_wait() {
                check(Check::WakeEndsBlockedWait)
            }
            #[test]
            fn many_wakes_coalesce() {
                check(Check::ManyWakesCoalesce)
            }
            #[test]
            fn wakes_racing_waits_are_not_lost() {
                check(Check::WakesRacingWaitsAreNotLost)
            }
            #[test]
            fn waker_outlives_the_poller() {
                check(Check::WakerOutlivesThePoller)
            }
            #[test]
            fn thousand_sockets() {
                check(Check::ThousandSockets)
            }
            #[test]
            fn unix_peer_closed() {
                check(Check::UnixPeerClosed)
            }
            #[test]
            fn unix_peer_shutdown() {
                check(Check::UnixPeerShutdown)
            }
            #[test]
            fn tcp_peer_closed() {
                check(Check::TcpPeerClosed)
            }
            #[test]
            fn tcp_peer_shutdown() {
                check(Check::TcpPeerShutdown)
            }
            #[test]
            fn register_invalid_or_closed_fd_is_ebadf() {
                check(Check::RegisterInvalidOrClosedFdIsEbadf)
            }
            #[test]
            fn register_twice_is_eexist() {
                check(Check::RegisterTwiceIsEexist)
            }
            #[test]
            fn edge_or_level_semantics() {
                check(Check::EdgeOrLevelSemantics)
            }
            #[test]
            fn unix_writable_once_or_always() {
                check(Check::UnixWritableOnceOrAlways)
            }
            #[test]
            fn tcp_writable_once_or_always() {
                check(Check::TcpWritableOnceOrAlways)
            }
            #[test]
            fn no_interest_reports_only_errors() {
                check(Check::NoInterestReportsOnlyErrors)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Check;
    use std::collections::HashSet;

    #[test]
    fn checks_are_listed_once_with_distinct_names() {
        let names: HashSet<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Check::ALL.len());
    }
}
