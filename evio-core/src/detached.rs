//! [`DetachedStream`]: a connection handed over by `Action::Detach`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use evio_sys::net;

/// A detached connection: a blocking std stream, now the user's to read,
/// write and close (dropping it closes the socket).
///
/// A TLS connection is handed over with its session, as a blocking rustls
/// stream: plaintext already decrypted and not yet given to `on_data` is
/// read first, and what is written is encrypted (`tls` feature).
#[derive(Debug)]
#[non_exhaustive]
pub enum DetachedStream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix stream connection.
    Unix(UnixStream),
    /// An accepted TLS connection.
    #[cfg(feature = "tls")]
    TlsServer(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    /// A dialed TLS connection.
    #[cfg(feature = "tls")]
    TlsClient(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// What the table hands over when a connection detaches.
pub(crate) struct Handover {
    pub(crate) fd: OwnedFd,
    pub(crate) unix: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Box<crate::tls::TlsSession>>,
}

impl DetachedStream {
    /// Switches the socket back to blocking mode and wraps it.
    pub(crate) fn new(h: Handover) -> io::Result<DetachedStream> {
        net::set_nonblocking(&h.fd, false)?;
        if h.unix {
            return Ok(DetachedStream::Unix(UnixStream::from(h.fd)));
        }
        let tcp = TcpStream::from(h.fd);
        #[cfg(feature = "tls")]
        if let Some(tls) = h.tls {
            return Ok(tls.into_stream(tcp));
        }
        Ok(DetachedStream::Tcp(tcp))
    }
}

impl AsFd for DetachedStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DetachedStream::Tcp(s) => s.as_fd(),
            DetachedStream::Unix(s) => s.as_fd(),
            #[cfg(feature = "tls")]
            DetachedStream::TlsServer(s) => s.sock.as_fd(),
            #[cfg(feature = "tls")]
            DetachedStream::TlsClient(s) => s.sock.as_fd(),
        }
    }
}

impl Read for DetachedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.read(buf),
            DetachedStream::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            DetachedStream::TlsServer(s) => s.read(buf),
            #[cfg(feature = "tls")]
            DetachedStream::TlsClient(s) => s.read(buf),
        }
    }
}

impl Write for DetachedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.write(buf),
            DetachedStream::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            DetachedStream::TlsServer(s) => s.write(buf),
            #[cfg(feature = "tls")]
            DetachedStream::TlsClient(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            DetachedStream::TlsServer(s) => s.flush(),
            #[cfg(feature = "tls")]
            DetachedStream::TlsClient(s) => s.flush(),
            _ => Ok(()),
        }
    }
}
