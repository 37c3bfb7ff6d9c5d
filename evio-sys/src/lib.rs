//! Operating-system layer of evio: readiness pollers and socket calls.
//!
//! This crate is the only place in the workspace that contains `unsafe`. It
//! offers two things:
//!
//! * the [`Poller`] trait and one backend per OS family, each in its own file
//!   chosen by `cfg`: [`EpollPoller`] (Linux, Android), `KqueuePoller`
//!   (macOS, iOS and the BSDs) and [`PollPoller`] (any Unix, the portable
//!   fallback). [`DefaultPoller`] names the best one for the target;
//! * [`net`]: thin, `io::Result`-returning wrappers over the socket calls an
//!   event loop needs (bind, accept, read, write that never raises `SIGPIPE`,
//!   socket options, address conversion).
//!
//! # Triggering mode
//!
//! A backend says how it reports readiness through [`Poller::EDGE_TRIGGERED`].
//! The epoll and kqueue backends are **edge-triggered**: a socket is registered
//! once for both read and write interest and never touched again, so a
//! request/response costs one `read`, one `write` and a share of one
//! `epoll_wait` — no `epoll_ctl` per request (Go's evio pays two). The price
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

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use epoll::EpollPoller;

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub use kqueue::KqueuePoller;

mod poll;
pub use poll::PollPoller;

pub mod net;

/// The best backend for the target: epoll on Linux and Android.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type DefaultPoller = EpollPoller;

/// The best backend for the target: kqueue on macOS, iOS and the BSDs.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub type DefaultPoller = KqueuePoller;

/// The best backend for the target: poll(2) where nothing better exists.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
pub type DefaultPoller = PollPoller;

/// A readiness poller: the one OS facility an event loop is built on.
///
/// A poller watches raw file descriptors, each registered with a `u64` token
/// chosen by the caller, and reports which of them became ready. It is owned
/// by one thread (the loop); only its [`Waker`] crosses threads.
///
/// Implement this trait to plug a new backend into `evio-core`; the three
/// backends of this crate are the reference implementations.
///
/// # Contract
///
/// * [`register`](Poller::register) fails with the OS error (`EBADF`,
///   `EEXIST`, …) on an invalid, closed or already registered fd.
/// * [`wait`](Poller::wait) clears `events`, blocks until at least one event,
///   a wake, or the timeout, and returns the number of events stored. A wake
///   sets [`Events::is_woken`] and is consumed: the next wait blocks again.
///   `EINTR` is reported as `Ok(0)`, never as an error.
/// * With [`EDGE_TRIGGERED`](Poller::EDGE_TRIGGERED) set, a source is reported
///   again only after new readiness arrives; otherwise it is reported as long
///   as it is ready and interest is set.
pub trait Poller: Sized + Send {
    /// `true` if readiness is reported once per change (epoll with
    /// `EPOLLET`, kqueue with `EV_CLEAR`); `false` if it is reported for as
    /// long as it lasts (poll(2)).
    const EDGE_TRIGGERED: bool;

    /// Creates a poller and its wake mechanism.
    ///
    /// # Errors
    /// The OS error if the kernel object (epoll instance, kqueue, eventfd or
    /// pipe) cannot be created, e.g. `EMFILE`.
    fn new() -> io::Result<Self>;

    /// Starts watching `fd` for `interest`, reporting events with `token`.
    ///
    /// # Errors
    /// The OS error, e.g. `EBADF` for a closed fd or `EEXIST` if it is
    /// already registered. The fd stays unregistered.
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;

    /// Changes the token and interest of a registered `fd`.
    ///
    /// # Errors
    /// The OS error, e.g. `ENOENT` if `fd` is not registered.
    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`. Call it before closing the fd.
    ///
    /// # Errors
    /// The OS error, e.g. `ENOENT` if `fd` is not registered.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Waits for events, at most `timeout` (`None` waits forever, a zero
    /// duration returns at once). Sub-millisecond timeouts are rounded up, so
    /// a wait never returns early and a loop never spins on a short timeout.
    ///
    /// # Errors
    /// The OS error of the wait call, except `EINTR`, which returns `Ok(0)`.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize>;

    /// Returns a handle that ends a blocked [`wait`](Poller::wait) from any
    /// thread.
    fn waker(&self) -> Waker;
}

/// Which readiness a registration asks for.
///
/// ```
/// use evio_sys::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both, Interest::BOTH);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// No readiness: the fd stays registered, but only errors and hang-ups
    /// are reported (poll(2) and epoll report those without being asked).
    /// Level-triggered consumers park a source they will not act on this way
    /// and still learn about a reset.
    pub const NONE: Interest = Interest(0);
    /// Interest in the fd becoming readable (or its peer closing).
    pub const READABLE: Interest = Interest(1);
    /// Interest in the fd becoming writable.
    pub const WRITABLE: Interest = Interest(2);
    /// Both read and write interest.
    pub const BOTH: Interest = Interest(3);

    /// Whether read interest is set.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether write interest is set.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => f.write_str("(none)"),
        }
    }
}

/// One readiness report: a token and what became ready.
///
/// ```
/// use evio_sys::Event;
/// let e = Event::new(3, Event::READABLE | Event::READ_CLOSED);
/// assert!(e.is_readable() && e.is_read_closed() && !e.is_writable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: u64,
    flags: u8,
}

impl Event {
    /// Flag: data (or EOF) can be read.
    pub const READABLE: u8 = 1;
    /// Flag: data can be written.
    pub const WRITABLE: u8 = 2;
    /// Flag: the peer shut down its writing side; reads will reach EOF.
    pub const READ_CLOSED: u8 = 4;
    /// Flag: the fd is in an error state (`EPOLLERR`, `POLLERR`, `EV_ERROR`).
    pub const ERROR: u8 = 8;
    /// Flag: both directions are closed (`EPOLLHUP`, `POLLHUP`, `EV_EOF` on write).
    pub const HANGUP: u8 = 16;

    /// Builds an event; backends and tests use this.
    pub const fn new(token: u64, flags: u8) -> Event {
        Event { token, flags }
    }

    /// The token given at registration.
    pub const fn token(&self) -> u64 {
        self.token
    }

    /// The raw flag bits (`READABLE | WRITABLE | …`).
    pub const fn flags(&self) -> u8 {
        self.flags
    }

    /// Data or EOF can be read.
    pub const fn is_readable(&self) -> bool {
        self.flags & Self::READABLE != 0
    }

    /// Data can be written.
    pub const fn is_writable(&self) -> bool {
        self.flags & Self::WRITABLE != 0
    }

    /// The peer shut down its writing side.
    pub const fn is_read_closed(&self) -> bool {
        self.flags & Self::READ_CLOSED != 0
    }

    /// The fd reported an error condition.
    pub const fn is_error(&self) -> bool {
        self.flags & Self::ERROR != 0
    }

    /// The connection is closed in both directions.
    pub const fn is_hangup(&self) -> bool {
        self.flags & Self::HANGUP != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("token", &self.token)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("read_closed", &self.is_read_closed())
            .field("error", &self.is_error())
            .field("hangup", &self.is_hangup())
            .finish()
    }
}

/// A reusable buffer of events filled by [`Poller::wait`].
///
/// Its capacity bounds how many events one wait returns; it never grows, so a
/// loop that reuses it allocates nothing while running.
///
/// ```
/// use evio_sys::{Event, Events};
/// let mut events = Events::with_capacity(4);
/// events.push(Event::new(1, Event::WRITABLE));
/// assert_eq!(events.len(), 1);
/// assert!(events.iter().next().unwrap().is_writable());
/// events.clear();
/// assert!(events.is_empty() && !events.is_woken());
/// ```
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    woken: bool,
}

impl Events {
    /// An empty buffer that holds up to `capacity` events (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity.max(1)),
            woken: false,
        }
    }

    /// How many events one wait can return.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// Number of events stored.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Iterates over the stored events.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Whether the last wait was ended by a [`Waker`].
    pub fn is_woken(&self) -> bool {
        self.woken
    }

    /// Removes all events and the woken mark. Backends call this first in
    /// [`Poller::wait`].
    pub fn clear(&mut self) {
        self.list.clear();
        self.woken = false;
    }

    /// Stores one event; ignored when full, so a buffer never reallocates.
    /// Backends call this.
    pub fn push(&mut self, event: Event) {
        if self.list.len() < self.list.capacity() {
            self.list.push(event);
        }
    }

    /// Marks that a wake ended the wait. Backends call this.
    pub fn set_woken(&mut self) {
        self.woken = true;
    }

    /// Whether no more events fit.
    pub fn is_full(&self) -> bool {
        self.list.len() == self.list.capacity()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The backend half of a [`Waker`]: makes a blocked wait return.
///
/// Implementations must be non-blocking and must coalesce: many wakes before
/// the poller consumes one may cost a single kernel call.
pub trait Wake: Send + Sync {
    /// Makes the poller's current or next wait return with
    /// [`Events::is_woken`] set.
    ///
    /// # Errors
    /// An OS error from the wake syscall other than "already signalled".
    fn wake(&self) -> io::Result<()>;
}

/// Wakes a [`Poller`] from any thread. Cheap to clone; `Send + Sync`.
///
/// Wakes coalesce: however many arrive before the loop runs, the loop sees one
/// wake, and only the first costs a syscall.
///
/// ```
/// use evio_sys::{DefaultPoller, Events, Poller};
/// let mut poller = DefaultPoller::new()?;
/// let waker = poller.waker();
/// std::thread::spawn(move || waker.wake().unwrap());
/// let mut events = Events::with_capacity(8);
/// while !events.is_woken() {
///     poller.wait(&mut events, None)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    inner: Arc<dyn Wake>,
}

impl Waker {
    /// Wraps a backend's wake mechanism.
    pub fn new(inner: Arc<dyn Wake>) -> Waker {
        Waker { inner }
    }

    /// Wakes the poller; see [`Wake::wake`].
    ///
    /// # Errors
    /// An OS error from the underlying syscall (never `EAGAIN`).
    pub fn wake(&self) -> io::Result<()> {
        self.inner.wake()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

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

/// Converts a `-1` libc return into the thread's OS error.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts a `-1` libc `ssize_t` return into the thread's OS error.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}
