//! The [`Poller`] trait: the one OS facility an event loop is built on.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::{Events, Interest, Waker};

/// A readiness poller: watches file descriptors and reports which became
/// ready.
///
/// Implement this trait to plug a new backend into `evio-core`; the three
/// backends of this crate ([`EpollPoller`](crate::EpollPoller),
/// `KqueuePoller`, [`PollPoller`](crate::PollPoller)) are the reference
/// implementations, and the `conformance` feature's suite
/// (`evio_sys::conformance`) checks a backend against everything below.
///
/// # Construction
///
/// The trait has no constructor: a backend may need configuration (a
/// decorator wrapping another poller, fault injection, a shared kernel
/// object), so whoever chooses the backend also builds it. The built-in
/// backends each have an inherent `new() -> io::Result<Self>`.
///
/// # Threads
///
/// A poller is owned by one thread at a time (the loop) and is `Send`, so it
/// can be built on one thread and moved to the loop's. Only its [`Waker`]
/// crosses threads: [`waker`](Poller::waker) handles are `Send + Sync`, may
/// wake from any number of threads at once, before, during or after a
/// [`wait`](Poller::wait), never block, and stay harmless (`Ok`, no effect)
/// after the poller is dropped.
///
/// # Tokens
///
/// Every registration carries a `u64` token chosen by the caller, reported
/// back in each [`Event`](crate::Event) of that fd. A token is any `u64`
/// except `u64::MAX`, which backends may reserve for themselves (epoll uses
/// it for its waker; a backend that reserves it fails with `EINVAL` when
/// given it). Every other value must round-trip exactly, on every target:
/// 32-bit targets included, where a kernel's pointer-sized user-data field
/// cannot carry it (`evio-core` puts a listener flag in bit 63 and a
/// generation in the high 32 bits).
///
/// # Edge- and level-triggered
///
/// A backend says how it reports readiness through
/// [`EDGE_TRIGGERED`](Poller::EDGE_TRIGGERED):
///
/// * **Edge-triggered** (`true`): an fd is reported when it becomes ready
///   for an interest it has, and once right after
///   [`register`](Poller::register) or [`reregister`](Poller::reregister)
///   if it is ready already. It is not reported again until new readiness
///   arrives (more data, freed send-buffer space, a peer closing), so a
///   consumer reads and writes until `WouldBlock` (or remembers that it
///   stopped early) before waiting again.
/// * **Level-triggered** (`false`): an fd is reported by every wait for as
///   long as it is ready for an interest it has, so a consumer sets write
///   interest only while it has output queued.
///
/// # Events
///
/// [`wait`](Poller::wait) stores at most [`Events::capacity`] events and
/// never grows the buffer. Readiness that did not fit stays pending and is
/// reported by a later wait, and no registered fd may be starved by a small
/// buffer. One wait may report the same token more than once (kqueue reports
/// read and write readiness separately), and readiness changes that happen
/// between two waits may be merged into one event; consumers merge flags or
/// tolerate repeats. `READABLE` is set for data and for end-of-file;
/// `READ_CLOSED`, `HANGUP` and `ERROR` are set where the OS tells (they are
/// hints: a read or write still reports the exact condition).
///
/// # Closing
///
/// Deregister an fd before closing it, or hand it to
/// [`close`](Poller::close), which does both (and may save a syscall). An fd
/// closed while registered leaves the backend in a backend-specific state
/// (stale bookkeeping, `ERROR` events for a poll(2) slot).
pub trait Poller: Send {
    /// `true` if readiness is reported once per change (epoll with
    /// `EPOLLET`, kqueue with `EV_CLEAR`); `false` if it is reported for as
    /// long as it lasts (poll(2)). See the trait's documentation.
    const EDGE_TRIGGERED: bool;

    /// Starts watching `fd` for `interest`, reporting events with `token`.
    ///
    /// If `fd` is already ready for `interest`, the next wait reports it.
    ///
    /// # Errors
    /// The OS error, e.g. `EBADF` for an invalid or closed fd, `EEXIST` if
    /// it is already registered, `EINVAL` for a reserved token. The fd then
    /// stays unregistered (an already registered one keeps its
    /// registration).
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;

    /// Replaces the token and interest of a registered `fd`.
    ///
    /// Readiness that holds now is reported by the next wait, with the new
    /// token (edge-triggered backends re-arm), and events of the old token
    /// are not reported after this returns.
    ///
    /// # Errors
    /// The OS error, e.g. `ENOENT` if `fd` is not registered.
    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`: no later wait reports it. Call it before closing
    /// the fd, or use [`close`](Poller::close).
    ///
    /// # Errors
    /// The OS error, e.g. `ENOENT` if `fd` is not registered.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Stops watching `fd` and closes it: no later wait reports it, and a
    /// new fd that gets the same number can be registered.
    ///
    /// The default deregisters, then drops `fd`. Backends whose kernel drops
    /// a registration by itself when the fd closes (epoll, kqueue) only drop
    /// it, saving one syscall per connection. That relies on `fd` being the
    /// only descriptor of its open file: epoll registers the open file, not
    /// the number, so a duplicate (`dup`, `fork`, `SCM_RIGHTS`) would keep
    /// the registration alive and reporting this token. When the fd lives
    /// on (duplicated, handed over to other code), call
    /// [`deregister`](Poller::deregister) instead and keep it.
    ///
    /// # Errors
    /// The error of the deregistration, e.g. `ENOENT` for an fd that is not
    /// registered (backends that skip the syscall may not notice and return
    /// `Ok`). `fd` is closed in every case.
    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        let result = self.deregister(fd.as_raw_fd());
        drop(fd);
        result
    }

    /// Waits for events, at most `timeout`, and returns how many were
    /// stored in `events`.
    ///
    /// Clears `events` first, then blocks until at least one event, a wake,
    /// or the timeout. `None` waits without limit; a zero duration polls and
    /// returns at once. Otherwise a wait that sees nothing never returns
    /// early: sub-millisecond timeouts are rounded up, never down to a busy
    /// 0 ms loop (it may return later, as the OS schedules). A wake sets
    /// [`Events::is_woken`], is not counted or stored as an event, and is
    /// consumed: the next wait blocks again, however many wakes came before.
    /// A signal interrupting the wait (`EINTR`) returns `Ok(0)`, with no
    /// event and no wake. See the trait's documentation for what is
    /// reported.
    ///
    /// # Errors
    /// The OS error of the wait call, except `EINTR`.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize>;

    /// Returns a handle that ends a blocked [`wait`](Poller::wait) from any
    /// thread. All handles of a poller share one wake mechanism.
    fn waker(&self) -> Waker;
}
