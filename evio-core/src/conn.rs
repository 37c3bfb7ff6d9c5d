//! A connection as handlers see it ([`Conn`]), its cross-thread wake handle
//! ([`ConnWaker`]) and the stream a detach hands over ([`DetachedStream`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use evio_sys::net;

use crate::event_loop::{ConnKey, LoopRemote, Msg};
use crate::Addr;

/// Bytes queued for a socket: `buf[pos..]` is still to be written.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
}

impl Output {
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// A connection, lent to a callback.
///
/// It is a view of the loop's connection slot: cheap to build, valid for the
/// callback only. For UDP it stands for one datagram: `remote_addr` is the
/// sender and everything written is sent back as one datagram.
pub struct Conn<'a, C> {
    pub(crate) out: &'a mut Output,
    pub(crate) ctx: &'a mut C,
    pub(crate) remote: &'a Addr,
    pub(crate) fd: Option<BorrowedFd<'a>>,
    pub(crate) listener_addr: &'a Addr,
    pub(crate) addr_index: usize,
    pub(crate) key: ConnKey,
    pub(crate) remote_loop: &'a Arc<LoopRemote>,
    pub(crate) is_udp: bool,
}

impl<C> Conn<'_, C> {
    /// The per-connection context.
    pub fn context(&self) -> &C {
        self.ctx
    }

    /// The per-connection context, mutably.
    pub fn context_mut(&mut self) -> &mut C {
        self.ctx
    }

    /// Replaces the per-connection context.
    pub fn set_context(&mut self, ctx: C) {
        *self.ctx = ctx;
    }

    /// Which of the addresses given to `serve` accepted this connection.
    pub fn addr_index(&self) -> usize {
        self.addr_index
    }

    /// The connection's local socket address (one `getsockname` call); the
    /// listener's address if the socket is already closed.
    pub fn local_addr(&self) -> Addr {
        self.fd
            .and_then(|fd| net::local_addr(&fd).ok())
            .unwrap_or_else(|| self.listener_addr.clone())
    }

    /// The peer's address; for UDP, the datagram's sender.
    pub fn remote_addr(&self) -> &Addr {
        self.remote
    }

    /// Appends `data` to the connection's output. The loop writes it after
    /// the callback returns (after [`EventHandler::on_pre_write`]). Never
    /// blocks; the queue is bounded only by memory, but the loop stops
    /// reading a connection whose queue passes the high-water mark.
    ///
    /// [`EventHandler::on_pre_write`]: crate::EventHandler::on_pre_write
    pub fn write(&mut self, data: &[u8]) {
        self.out.buf.extend_from_slice(data);
    }

    /// Bytes queued and not yet written to the socket.
    pub fn output_len(&self) -> usize {
        self.out.pending()
    }

    /// The socket, for options evio does not wrap (`None` once closed; for
    /// UDP, the shared UDP socket).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd
    }

    /// Whether this is a UDP datagram rather than a stream connection.
    pub fn is_udp(&self) -> bool {
        self.is_udp
    }

    /// A handle that wakes this connection from any thread; see [`ConnWaker`].
    pub fn waker(&self) -> ConnWaker {
        ConnWaker {
            key: self.key,
            remote: self.remote_loop.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Conn<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("remote_addr", self.remote)
            .field("addr_index", &self.addr_index)
            .field("output_len", &self.output_len())
            .field("context", self.ctx)
            .finish()
    }
}

/// Wakes one connection from any thread: the connection's own loop then
/// calls [`EventHandler::on_wake`](crate::EventHandler::on_wake) (by default
/// `on_data` with empty input).
///
/// `Send + Sync + Clone`. A wake never touches pending output or a pending
/// close. A wake for a connection that has closed is dropped, even if its
/// slot or fd number was reused by a newer connection. Wakes coalesce: many
/// wakes before the loop runs cost one syscall.
///
/// ```no_run
/// use evio_core::{Action, Conn, EventHandler, Options};
///
/// #[derive(Clone)]
/// struct Clock;
/// impl EventHandler for Clock {
///     type Context = ();
///     fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
///         let waker = conn.waker();
///         std::thread::spawn(move || {
///             std::thread::sleep(std::time::Duration::from_secs(1));
///             waker.wake(); // on_data(conn, &[]) runs on the loop
///         });
///         (Options::default(), Action::None)
///     }
///     fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
///         if input.is_empty() {
///             conn.write(b"tick\n");
///         }
///         Action::None
///     }
/// }
/// ```
#[derive(Clone)]
pub struct ConnWaker {
    key: ConnKey,
    remote: Arc<LoopRemote>,
}

impl ConnWaker {
    /// Queues a wake for the connection. Returns `false` if the server has
    /// stopped (the wake is dropped).
    pub fn wake(&self) -> bool {
        self.remote.send(Msg::Wake(self.key))
    }
}

impl fmt::Debug for ConnWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnWaker").field("key", &self.key).finish()
    }
}

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
