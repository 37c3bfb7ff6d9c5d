//! [`DetachedStream`]: a connection handed over by `Action::Detach`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use evio_sys::net;

/// A detached connection: a blocking std stream, now the user's to read,
/// write and close (dropping it closes the socket).
#[derive(Debug)]
pub enum DetachedStream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix stream connection.
    Unix(UnixStream),
}

impl DetachedStream {
    /// Switches the socket back to blocking mode and wraps it.
    pub(crate) fn new(fd: OwnedFd, unix: bool) -> io::Result<DetachedStream> {
        net::set_nonblocking(&fd, false)?;
        Ok(if unix {
            DetachedStream::Unix(UnixStream::from(fd))
        } else {
            DetachedStream::Tcp(TcpStream::from(fd))
        })
    }
}

impl AsFd for DetachedStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DetachedStream::Tcp(s) => s.as_fd(),
            DetachedStream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for DetachedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.read(buf),
            DetachedStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for DetachedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.write(buf),
            DetachedStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
