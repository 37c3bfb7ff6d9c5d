//! Descriptor-level helpers shared by the backends and [`net`](crate::net).

use std::io;
use std::os::fd::RawFd;

use nix::errno::Errno;

/// `Ok` if `fd` is an open descriptor, `EBADF` otherwise (a cheap
/// `fcntl(F_GETFD)` probe).
///
/// Raw libc: nix's `fcntl` takes `AsFd`, and the point here is to probe a
/// bare number that may be closed, for which no `BorrowedFd` may be made.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(Errno::EBADF.into());
    }
    // SAFETY: F_GETFD takes no pointer argument and only reads the
    // descriptor's flags; an invalid number yields EBADF.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(())
}

/// Sets `FD_CLOEXEC`, where the descriptor could not be created with it.
#[cfg(any(evio_kqueue, all(not(evio_epoll), not(evio_pipe2))))]
pub(crate) fn set_cloexec(fd: &impl std::os::fd::AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}
