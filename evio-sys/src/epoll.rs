//! epoll + eventfd backend (Linux, Android), edge-triggered.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::wakefd::EventFdSignal;
use crate::{timeout_ms, Coalescing, Event, Events, Interest, Poller, Waker};

/// Token reserved for the eventfd waker; never reported to callers.
const WAKE_TOKEN: u64 = u64::MAX;

/// epoll backend: edge-triggered (`EPOLLET | EPOLLRDHUP`), woken by a
/// non-blocking eventfd.
///
/// Tokens must not be `u64::MAX`, which is reserved for the waker
/// (`EINVAL`). [`close`](Poller::close) only closes the fd: the kernel drops
/// the registration with the last descriptor of the open file.
///
/// ```
/// use evio_sys::{EpollPoller, Events, Poller};
/// let mut poller = EpollPoller::new()?;
/// let mut events = Events::with_capacity(8);
/// let n = poller.wait(&mut events, Some(std::time::Duration::ZERO))?;
/// assert_eq!(n, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EpollPoller {
    epoll: Epoll,
    waker: Arc<Coalescing<EventFdSignal>>,
    /// What `epoll_wait` fills; as long as the largest `Events` seen.
    raw: Vec<EpollEvent>,
}

impl EpollPoller {
    /// Creates an epoll instance and its eventfd waker, both close-on-exec.
    ///
    /// # Errors
    /// The OS error of `epoll_create1`, `eventfd` or `epoll_ctl`, e.g.
    /// `EMFILE`.
    pub fn new() -> io::Result<EpollPoller> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let waker = Arc::new(Coalescing::new(EventFdSignal::new()?));
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        epoll.add(waker.signal().watched(), EpollEvent::new(flags, WAKE_TOKEN))?;
        Ok(EpollPoller {
            epoll,
            waker,
            raw: Vec::new(),
        })
    }

    /// `epoll_ctl` on a caller's fd.
    ///
    /// Raw libc: nix's `Epoll::{add, modify, delete}` take `AsFd`, and the
    /// [`Poller`] methods receive a `RawFd` that may be invalid or closed
    /// (`EBADF` is part of their contract); a `BorrowedFd` made up for such
    /// a number would break I/O safety (and std panics on `-1`).
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, flags: EpollFlags) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: flags.bits() as u32,
            u64: token,
        };
        // SAFETY: the epoll fd is live (owned by `self`); `ev` is a valid
        // epoll_event that outlives the call; the kernel validates `fd` and
        // reports EBADF/ENOENT/EEXIST as errors.
        let r = unsafe { libc::epoll_ctl(self.epoll.0.as_raw_fd(), op, fd, &mut ev) };
        Errno::result(r)?;
        Ok(())
    }
}

fn epoll_flags(interest: Interest) -> EpollFlags {
    let mut flags = EpollFlags::EPOLLET | EpollFlags::EPOLLRDHUP;
    if interest.is_readable() {
        flags |= EpollFlags::EPOLLIN;
    }
    if interest.is_writable() {
        flags |= EpollFlags::EPOLLOUT;
    }
    flags
}

fn check_token(token: u64) -> io::Result<()> {
    if token == WAKE_TOKEN {
        return Err(Errno::EINVAL.into());
    }
    Ok(())
}

/// Translates `epoll_event.events` into [`Event`] flags.
fn event_flags(bits: EpollFlags) -> u8 {
    let mut flags = 0;
    if bits.contains(EpollFlags::EPOLLIN) {
        flags |= Event::READABLE;
    }
    if bits.contains(EpollFlags::EPOLLOUT) {
        flags |= Event::WRITABLE;
    }
    if bits.contains(EpollFlags::EPOLLRDHUP) {
        flags |= Event::READ_CLOSED | Event::READABLE;
    }
    if bits.contains(EpollFlags::EPOLLERR) {
        flags |= Event::ERROR;
    }
    if bits.contains(EpollFlags::EPOLLHUP) {
        flags |= Event::HANGUP;
    }
    flags
}

impl Poller for EpollPoller {
    const EDGE_TRIGGERED: bool = true;

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        check_token(token)?;
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, epoll_flags(interest))
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        check_token(token)?;
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, epoll_flags(interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, EpollFlags::empty())
    }

    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        // Closing the last descriptor of the open file removes it from every
        // epoll set (see the trait for the no-duplicate precondition).
        drop(fd);
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let cap = events.capacity().min(libc::c_int::MAX as usize);
        if self.raw.len() < cap {
            self.raw.resize(cap, EpollEvent::empty());
        }
        // timeout_ms is -1 (forever) or a non-negative count of
        // milliseconds, both of which EpollTimeout accepts.
        let timeout = EpollTimeout::try_from(timeout_ms(timeout)).unwrap_or(EpollTimeout::NONE);
        let n = match self.epoll.wait(&mut self.raw[..cap], timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for ev in &self.raw[..n] {
            let token = ev.data();
            if token == WAKE_TOKEN {
                self.waker.drain();
                events.set_woken();
                continue;
            }
            events.push(Event::new(token, event_flags(ev.events())));
        }
        Ok(events.len())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }
}
