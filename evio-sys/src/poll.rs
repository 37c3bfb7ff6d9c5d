//! poll(2) backend (any Unix), level-triggered.
//!
//! The portable fallback: it needs nothing beyond POSIX `poll(2)`, so it runs
//! wherever the crate builds. Registration is bookkeeping in user space (a
//! `pollfd` array, a parallel token array and an fd -> slot map); every wait
//! hands the whole array to the kernel, so a wait costs O(registered fds).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{cvt, cvt_size, timeout_ms, Event, Events, Interest, Poller, Wake, Waker};

/// poll(2) backend: level-triggered, woken by an eventfd (Linux, Android) or
/// a non-blocking self-pipe (elsewhere).
///
/// A registered fd is reported on every [`wait`](Poller::wait) for as long as
/// it is ready and the matching interest is set, so a consumer turns write
/// interest on only while it has output queued. When more fds are ready than
/// [`Events`] can hold, the next wait resumes the scan where the last one
/// stopped, so no fd is starved.
///
/// `POLLRDHUP` (peer shut down its writing side) is requested and reported as
/// [`Event::READ_CLOSED`] on Linux and Android only; elsewhere a half-closed
/// peer shows up as plain readability (a read then returns 0), and a fully
/// closed one as [`Event::HANGUP`] where the OS sets `POLLHUP`.
///
/// The kernel does not track registrations, so this poller cannot notice an
/// fd that is closed while registered: it is then reported with
/// [`Event::ERROR`] (`POLLNVAL`) on every wait. Deregister before closing.
///
/// ```
/// use evio_sys::{Events, Interest, PollPoller, Poller};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut poller = PollPoller::new()?;
/// let (a, mut b) = UnixStream::pair()?;
/// poller.register(a.as_raw_fd(), 1, Interest::READABLE)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(8);
/// // Level-triggered: reported again and again until the byte is read.
/// for _ in 0..2 {
///     poller.wait(&mut events, Some(Duration::from_secs(1)))?;
///     assert!(events.iter().any(|e| e.token() == 1 && e.is_readable()));
/// }
/// poller.deregister(a.as_raw_fd())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PollPoller {
    /// What `poll(2)` watches. Slot 0 is the wake fd; slot `i >= 1` belongs
    /// to `tokens[i]`.
    fds: Vec<libc::pollfd>,
    /// Tokens, parallel to `fds` (`tokens[0]` is unused).
    tokens: Vec<u64>,
    /// Registered fd -> its slot in `fds` (never holds the wake fd).
    index: HashMap<RawFd, usize>,
    /// Slot where the next scan of ready fds starts (round robin).
    cursor: usize,
    waker: Arc<WakeFd>,
}

impl fmt::Debug for PollPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollPoller")
            .field("registered", &self.index.len())
            .field("waker", &self.waker)
            .finish()
    }
}

/// The wake mechanism: an eventfd, or both ends of a pipe.
#[derive(Debug)]
struct WakeFd {
    /// The fd the poller watches: the eventfd, or the pipe's read end.
    read: OwnedFd,
    /// The pipe's write end (an eventfd is written through `read`).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    write: OwnedFd,
    /// Set by the first wake after the loop consumed the last one; later
    /// wakes see it set and skip the syscall.
    pending: AtomicBool,
}

impl WakeFd {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn new() -> io::Result<WakeFd> {
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `efd` was just returned by the kernel and is owned by no one else.
        let read = unsafe { OwnedFd::from_raw_fd(efd) };
        Ok(WakeFd {
            read,
            pending: AtomicBool::new(false),
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn new() -> io::Result<WakeFd> {
        let (read, write) = nonblocking_pipe()?;
        Ok(WakeFd {
            read,
            write,
            pending: AtomicBool::new(false),
        })
    }

    /// Makes the watched fd readable.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn signal(&self) -> io::Result<usize> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        cvt_size(unsafe {
            libc::write(
                self.read.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        })
    }

    /// Makes the watched fd readable.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn signal(&self) -> io::Result<usize> {
        let byte: u8 = 1;
        // SAFETY: writes 1 byte from a live u8 to a pipe we own.
        cvt_size(unsafe { libc::write(self.write.as_raw_fd(), (&byte as *const u8).cast(), 1) })
    }

    /// Empties the watched fd, then re-arms coalescing.
    fn drain(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let mut buf: u64 = 0;
            // SAFETY: reads at most 8 bytes into a live u64 from an eventfd we
            // own; one read resets the counter; EAGAIN (already drained) is
            // fine and ignored.
            unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    (&mut buf as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                );
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        drain_pipe(self.read.as_raw_fd());
        // Cleared only after the fd is empty: a wake that saw `pending` set in
        // between was absorbed by the wake being reported now. A swap rather
        // than a store so that this acquires what such a wake published.
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl Wake for WakeFd {
    fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        loop {
            match self.signal() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Counter saturated or pipe full: the poller is certainly woken.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    self.pending.store(false, Ordering::Release);
                    return Err(e);
                }
            }
        }
    }
}

/// Creates a pipe whose two ends are non-blocking and close-on-exec.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    #[cfg(any(
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris"
    ))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe2 stores.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        // SAFETY: both fds were just returned by the kernel and are owned by no one else.
        let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(pair)
    }
    #[cfg(not(any(
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris"
    )))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe stores.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        // SAFETY: both fds were just returned by the kernel and are owned by no one else.
        let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [pair.0.as_raw_fd(), pair.1.as_raw_fd()] {
            // SAFETY: fcntl with integer arguments on a pipe fd we own.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
            // SAFETY: fcntl with integer arguments on a pipe fd we own.
            let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
            // SAFETY: fcntl with integer arguments on a pipe fd we own.
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
        }
        Ok(pair)
    }
}

/// Reads a non-blocking pipe until it is empty (EAGAIN), EOF or an error.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn drain_pipe(fd: RawFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads at most `buf.len()` bytes into a live local buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(r) {
            Ok(n) if n > 0 => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
}

/// The `pollfd.events` bits for `interest`.
fn poll_events(interest: Interest) -> libc::c_short {
    let mut events: libc::c_short = 0;
    if interest.is_readable() {
        events |= libc::POLLIN;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            events |= libc::POLLRDHUP;
        }
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    events
}

/// Translates `pollfd.revents` into [`Event`] flags.
fn event_flags(revents: libc::c_short) -> u8 {
    let mut flags = 0;
    if revents & libc::POLLIN != 0 {
        flags |= Event::READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        flags |= Event::WRITABLE;
    }
    if revents & libc::POLLHUP != 0 {
        flags |= Event::HANGUP | Event::READABLE;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        flags |= Event::ERROR;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if revents & libc::POLLRDHUP != 0 {
        flags |= Event::READ_CLOSED | Event::READABLE;
    }
    flags
}

fn os_error(code: libc::c_int) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Poller for PollPoller {
    const EDGE_TRIGGERED: bool = false;

    fn new() -> io::Result<Self> {
        let waker = WakeFd::new()?;
        let wake_slot = libc::pollfd {
            fd: waker.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        Ok(PollPoller {
            fds: vec![wake_slot],
            tokens: vec![0],
            index: HashMap::new(),
            cursor: 1,
            waker: Arc::new(waker),
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd == self.waker.read.as_raw_fd() || self.index.contains_key(&fd) {
            return Err(os_error(libc::EEXIST));
        }
        // poll(2) silently skips negative fds and flags closed ones only at
        // wait time, so validate now: EBADF for an invalid or closed fd.
        // SAFETY: F_GETFD takes no pointer and only reads the fd's flags.
        cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        self.index.insert(fd, self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events: poll_events(interest),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let slot = *self.index.get(&fd).ok_or_else(|| os_error(libc::ENOENT))?;
        self.fds[slot].events = poll_events(interest);
        self.fds[slot].revents = 0;
        self.tokens[slot] = token;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self
            .index
            .remove(&fd)
            .ok_or_else(|| os_error(libc::ENOENT))?;
        self.fds.swap_remove(slot);
        self.tokens.swap_remove(slot);
        if let Some(moved) = self.fds.get(slot) {
            self.index.insert(moved.fd, slot);
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        // SAFETY: `fds` is a live, initialised array of `fds.len()` pollfds
        // that the kernel only updates in place (the `revents` fields).
        let n = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms(timeout),
            )
        };
        let mut ready = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        if self.fds[0].revents != 0 {
            self.waker.drain();
            events.set_woken();
            ready = ready.saturating_sub(1);
        }
        let len = self.fds.len();
        if ready == 0 || len == 1 {
            return Ok(events.len());
        }
        // Scan round robin from where the last full scan stopped, so that a
        // small `events` does not starve the fds at the end of the array.
        let mut slot = if (1..len).contains(&self.cursor) {
            self.cursor
        } else {
            1
        };
        for _ in 1..len {
            if ready == 0 || events.is_full() {
                break;
            }
            let revents = self.fds[slot].revents;
            if revents != 0 {
                ready -= 1;
                let flags = event_flags(revents);
                if flags != 0 {
                    events.push(Event::new(self.tokens[slot], flags));
                }
            }
            slot = if slot + 1 == len { 1 } else { slot + 1 };
        }
        self.cursor = slot;
        Ok(events.len())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }
}
