//! epoll + eventfd backend (Linux, Android), edge-triggered.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{cvt, cvt_size, timeout_ms, Event, Events, Interest, Poller, Wake, Waker};

/// Token reserved for the eventfd waker; never reported to callers.
const WAKE_TOKEN: u64 = u64::MAX;

/// epoll backend: edge-triggered (`EPOLLET | EPOLLRDHUP`), woken by a
/// non-blocking eventfd.
///
/// Tokens must not be `u64::MAX`, which is reserved for the waker.
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
    epfd: OwnedFd,
    waker: Arc<EventFd>,
    raw: Vec<libc::epoll_event>,
}

#[derive(Debug)]
struct EventFd {
    fd: OwnedFd,
    /// Set by the first wake after the loop consumed the last one; later
    /// wakes see it set and skip the syscall.
    pending: AtomicBool,
}

impl Wake for EventFd {
    fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let r = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        match cvt_size(r) {
            Ok(_) => Ok(()),
            // The counter is saturated: the poller is certainly woken.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.pending.store(false, Ordering::Release);
                Err(e)
            }
        }
    }
}

impl EventFd {
    /// Resets the counter (so it can never saturate) and re-arms coalescing.
    fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from an eventfd we
        // own; EAGAIN (already drained) is fine and ignored.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut buf as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
        // AcqRel, not Release: a wake racing with this drain must have its
        // earlier writes (the channel send) visible to the loop.
        self.pending.swap(false, Ordering::AcqRel);
    }
}

fn epoll_flags(interest: Interest) -> u32 {
    let mut flags = (libc::EPOLLET | libc::EPOLLRDHUP) as u32;
    if interest.is_readable() {
        flags |= libc::EPOLLIN as u32;
    }
    if interest.is_writable() {
        flags |= libc::EPOLLOUT as u32;
    }
    flags
}

impl EpollPoller {
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, flags: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: flags,
            u64: token,
        };
        // SAFETY: epfd is a live epoll fd; `ev` outlives the call; the kernel
        // validates `fd` and reports EBADF/ENOENT/EEXIST as errors.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }
}

impl Poller for EpollPoller {
    const EDGE_TRIGGERED: bool = true;

    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epfd` was just returned by the kernel and is owned by no one else.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `efd` was just returned by the kernel and is owned by no one else.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let poller = EpollPoller {
            epfd,
            waker: Arc::new(EventFd {
                fd: efd,
                pending: AtomicBool::new(false),
            }),
            raw: Vec::new(),
        };
        poller.ctl(
            libc::EPOLL_CTL_ADD,
            poller.waker.fd.as_raw_fd(),
            WAKE_TOKEN,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
        )?;
        Ok(poller)
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, epoll_flags(interest))
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, epoll_flags(interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let cap = events.capacity();
        if self.raw.capacity() < cap {
            self.raw.reserve_exact(cap - self.raw.len());
        }
        // SAFETY: the kernel writes at most `cap` entries into `raw`, whose
        // capacity is at least `cap`; `set_len` below covers only what it wrote.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.raw.as_mut_ptr(),
                cap.min(libc::c_int::MAX as usize) as libc::c_int,
                timeout_ms(timeout),
            )
        };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised the first `n` entries (n <= cap).
        unsafe { self.raw.set_len(n) };
        for ev in &self.raw {
            let token = ev.u64;
            if token == WAKE_TOKEN {
                self.waker.drain();
                events.set_woken();
                continue;
            }
            let bits = ev.events as libc::c_int;
            let mut flags = 0;
            if bits & libc::EPOLLIN != 0 {
                flags |= Event::READABLE;
            }
            if bits & libc::EPOLLOUT != 0 {
                flags |= Event::WRITABLE;
            }
            if bits & libc::EPOLLRDHUP != 0 {
                flags |= Event::READ_CLOSED | Event::READABLE;
            }
            if bits & libc::EPOLLERR != 0 {
                flags |= Event::ERROR;
            }
            if bits & libc::EPOLLHUP != 0 {
                flags |= Event::HANGUP;
            }
            events.push(Event::new(token, flags));
        }
        self.raw.clear();
        Ok(events.len())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }
}
