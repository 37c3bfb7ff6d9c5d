//! poll(2) backend (any Unix), level-triggered.
//!
//! The portable fallback: it needs nothing beyond POSIX `poll(2)`, so it runs
//! wherever the crate builds. Registration is bookkeeping in user space (a
//! `pollfd` array, a parallel token array and an fd -> slot map); every wait
//! hands the whole array to the kernel, so a wait costs O(registered fds).

//!
//! Raw libc for `poll(2)` itself: nix's `PollFlags` lacks `POLLRDHUP` (and
//! `PollFd::revents` gives `None` for bits it does not know), and its
//! `PollFd` borrows each fd for a lifetime, while this poller keeps raw fds
//! across calls, as the [`Poller`] trait hands them over.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use crate::{timeout_ms, Coalescing, Event, Events, Interest, Poller, Waker};

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
/// [`Event::ERROR`] (`POLLNVAL`) on every wait. Deregister before closing,
/// or hand the fd to [`close`](Poller::close), which does both.
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
    waker: Arc<Coalescing<WakeSignal>>,
}

impl fmt::Debug for PollPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollPoller")
            .field("registered", &self.index.len())
            .field("waker", &self.waker)
            .finish()
    }
}

/// The wake signal: an eventfd on Linux and Android, a self-pipe elsewhere.
#[cfg(evio_epoll)]
type WakeSignal = crate::wakefd::EventFdSignal;
/// The wake signal: an eventfd on Linux and Android, a self-pipe elsewhere.
#[cfg(not(evio_epoll))]
type WakeSignal = crate::wakefd::PipeSignal;

/// The `pollfd.events` bits for `interest`.
fn poll_events(interest: Interest) -> libc::c_short {
    let mut events: libc::c_short = 0;
    if interest.is_readable() {
        events |= libc::POLLIN;
        #[cfg(evio_epoll)]
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
    #[cfg(evio_epoll)]
    if revents & libc::POLLRDHUP != 0 {
        flags |= Event::READ_CLOSED | Event::READABLE;
    }
    flags
}

impl PollPoller {
    /// Creates a poller and its wake signal (an eventfd on Linux and
    /// Android, a non-blocking self-pipe elsewhere), close-on-exec.
    ///
    /// # Errors
    /// The OS error of `eventfd` or `pipe`, e.g. `EMFILE`.
    pub fn new() -> io::Result<PollPoller> {
        let waker = Arc::new(Coalescing::new(WakeSignal::new()?));
        let wake_slot = libc::pollfd {
            fd: waker.signal().watched().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        Ok(PollPoller {
            fds: vec![wake_slot],
            tokens: vec![0],
            index: HashMap::new(),
            cursor: 1,
            waker,
        })
    }
}

impl Poller for PollPoller {
    const EDGE_TRIGGERED: bool = false;

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd == self.fds[0].fd || self.index.contains_key(&fd) {
            return Err(Errno::EEXIST.into());
        }
        // poll(2) silently skips negative fds and flags closed ones only at
        // wait time, so validate now: EBADF for an invalid or closed fd.
        crate::fd::check_open(fd)?;
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
        let slot = *self.index.get(&fd).ok_or(Errno::ENOENT)?;
        self.fds[slot].events = poll_events(interest);
        self.fds[slot].revents = 0;
        self.tokens[slot] = token;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self.index.remove(&fd).ok_or(Errno::ENOENT)?;
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
        let mut ready = match Errno::result(n) {
            Ok(n) => n as usize,
            Err(Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
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
