//! The fd-based [`Signal`]s the backends share: an eventfd on Linux and
//! Android, a non-blocking self-pipe elsewhere. A backend watches
//! [`watched`](EventFdSignal::watched) for readability.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::waker::Signal;

/// An eventfd used as a wake signal: writing adds to its counter, one read
/// resets it.
#[cfg(evio_epoll)]
#[derive(Debug)]
pub(crate) struct EventFdSignal(nix::sys::eventfd::EventFd);

#[cfg(evio_epoll)]
impl EventFdSignal {
    /// A non-blocking, close-on-exec eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<EventFdSignal> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
        Ok(EventFdSignal(EventFd::from_value_and_flags(0, flags)?))
    }

    /// The fd the poller watches for readability.
    pub(crate) fn watched(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(evio_epoll)]
impl Signal for EventFdSignal {
    fn signal(&self) -> io::Result<()> {
        match self.0.write(1) {
            // EAGAIN: the counter is saturated, so the poller is woken.
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn drain(&self) {
        // One read resets the counter, so it can never saturate; EAGAIN
        // (already drained) is fine.
        let _ = self.0.read();
    }
}

/// Both ends of a non-blocking pipe used as a wake signal: a wake writes a
/// byte, the poller watches the read end and empties it.
#[cfg(not(evio_epoll))]
#[derive(Debug)]
pub(crate) struct PipeSignal {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
}

#[cfg(not(evio_epoll))]
impl PipeSignal {
    /// A pipe whose ends are non-blocking and close-on-exec.
    pub(crate) fn new() -> io::Result<PipeSignal> {
        let (read, write) = nonblocking_pipe()?;
        Ok(PipeSignal { read, write })
    }

    /// The fd the poller watches for readability (the read end).
    pub(crate) fn watched(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(not(evio_epoll))]
impl Signal for PipeSignal {
    fn signal(&self) -> io::Result<()> {
        match nix::unistd::write(&self.write, &[1]) {
            // EAGAIN: the pipe is full, so the poller is woken.
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn drain(&self) {
        // Until empty (EAGAIN), EOF or an error; EINTR retries.
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(n) if n > 0 => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                _ => break,
            }
        }
    }
}

/// Creates a pipe whose two ends are non-blocking and close-on-exec,
/// atomically where `pipe2` exists.
#[cfg(all(not(evio_epoll), evio_pipe2))]
fn nonblocking_pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::OFlag;
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

/// Creates a pipe whose two ends are non-blocking and close-on-exec: here
/// without `pipe2`, so the flags are set after creation.
#[cfg(all(not(evio_epoll), not(evio_pipe2)))]
fn nonblocking_pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (read, write) = nix::unistd::pipe()?;
    for fd in [&read, &write] {
        crate::fd::set_cloexec(fd)?;
        crate::net::set_nonblocking(fd, true)?;
    }
    Ok((read, write))
}
