//! Moving bytes: reads, writes that never raise `SIGPIPE`, datagrams, and
//! shutting a direction down.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{self as sock, MsgFlags, SockaddrStorage};

use super::addr::to_addr;
use super::Addr;

/// Flags for every send: `MSG_NOSIGNAL` where it exists. Apple's sockets
/// get `SO_NOSIGPIPE` at creation instead.
#[cfg(all(any(evio_epoll, evio_kqueue), not(evio_apple)))]
const SEND_FLAGS: MsgFlags = MsgFlags::MSG_NOSIGNAL;
/// Flags for every send: `MSG_NOSIGNAL` where it exists. Apple's sockets
/// get `SO_NOSIGPIPE` at creation instead.
#[cfg(not(all(any(evio_epoll, evio_kqueue), not(evio_apple))))]
const SEND_FLAGS: MsgFlags = MsgFlags::empty();

/// The most buffers one [`writev`] passes to the kernel (`IOV_MAX` on
/// Linux, macOS and the BSDs); the rest wait for the next call.
const MAX_IOV: usize = 1024;

/// Which direction(s) [`shutdown`] closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more reads.
    Read,
    /// No more writes: the peer reads EOF.
    Write,
    /// Both.
    Both,
}

/// Whether unread bytes wait in a stream socket's receive queue (a
/// non-blocking one-byte peek; nothing is consumed). `false` at EOF.
///
/// # Errors
/// The OS error of `recv`, e.g. `ECONNRESET`.
pub fn has_input(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    match sock::recv(
        fd.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EAGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `e` says the process or the system is out of file descriptors
/// (`EMFILE`, `ENFILE`): the moment to reclaim idle connections or back off.
pub fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether `e` says the address family is not supported (`EAFNOSUPPORT`:
/// e.g. IPv6 on a machine without it).
pub fn is_family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// Reads into `buf`. `Ok(0)` means EOF.
///
/// # Errors
/// `WouldBlock` when nothing is available; otherwise the OS error, e.g.
/// `ECONNRESET`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

/// Writes `buf` to a connected stream socket without ever raising `SIGPIPE`.
///
/// # Errors
/// `WouldBlock` when the send buffer is full; otherwise the OS error, e.g.
/// `EPIPE` or `ECONNRESET` for a closed peer.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(sock::send(fd.as_raw_fd(), buf, SEND_FLAGS)?)
}

/// Writes several buffers to a connected stream socket in one call
/// (`sendmsg`), without ever raising `SIGPIPE`; returns how many bytes were
/// written, which may end in the middle of a buffer. At most 1024 buffers
/// are passed on per call.
///
/// ```
/// use std::io::{IoSlice, Read};
/// use std::os::fd::AsFd;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// let n = evio_sys::net::writev(a.as_fd(), &[IoSlice::new(b"hello, "), IoSlice::new(b"world")])?;
/// assert_eq!(n, 12);
/// let mut got = [0; 12];
/// b.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello, world");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `WouldBlock` when the send buffer is full; otherwise the OS error, e.g.
/// `EPIPE` or `ECONNRESET` for a closed peer.
pub fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(MAX_IOV)];
    Ok(sock::sendmsg::<()>(
        fd.as_raw_fd(),
        bufs,
        &[],
        SEND_FLAGS,
        None,
    )?)
}

/// Receives one datagram and its sender.
///
/// # Errors
/// `WouldBlock` when no datagram is queued; otherwise the OS error;
/// `InvalidData` for a sender that is not an internet address.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    let (n, from) = sock::recvfrom::<SockaddrStorage>(fd.as_raw_fd(), buf)?;
    match from.as_ref().map(to_addr).transpose()? {
        Some(Addr::Inet(a)) => Ok((n, a)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram from a non-internet address",
        )),
    }
}

/// Sends one datagram to `to`.
///
/// # Errors
/// `WouldBlock` when the send buffer is full; otherwise the OS error, e.g.
/// `EMSGSIZE`.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], to: &SocketAddr) -> io::Result<usize> {
    let to = SockaddrStorage::from(*to);
    Ok(sock::sendto(fd.as_raw_fd(), buf, &to, SEND_FLAGS)?)
}

/// Shuts down one or both directions of a connected socket.
///
/// # Errors
/// The OS error of `shutdown`, e.g. `ENOTCONN`.
pub fn shutdown(fd: &impl AsFd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => sock::Shutdown::Read,
        Shutdown::Write => sock::Shutdown::Write,
        Shutdown::Both => sock::Shutdown::Both,
    };
    sock::shutdown(fd.as_fd().as_raw_fd(), how)?;
    Ok(())
}
