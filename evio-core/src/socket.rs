//! [`SocketOptions`]: the options of a connection's socket, set and read
//! without reaching for `fd()` and libc.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use evio_sys::net;

/// The socket options of one connection, from
/// [`Conn::socket`](crate::Conn::socket). Each call is one `setsockopt` or
/// `getsockopt` on the connection's socket.
///
/// ```
/// # use evio_core::{Action, Conn, EventHandler, Options};
/// # struct Bulk;
/// # impl EventHandler for Bulk { type Context = ();
/// fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
///     if let Ok(socket) = conn.socket() {
///         // A bulk sender: a big send buffer, and a reset instead of
///         // lingering unsent data on close.
///         let _ = socket.set_send_buffer_size(4 << 20);
///         let _ = socket.set_linger(Some(std::time::Duration::ZERO));
///     }
///     (Options::default(), Action::None)
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SocketOptions<'a> {
    fd: BorrowedFd<'a>,
    unix: bool,
}

impl<'a> SocketOptions<'a> {
    pub(crate) fn new(fd: BorrowedFd<'a>, unix: bool) -> SocketOptions<'a> {
        SocketOptions { fd, unix }
    }

    fn tcp_only(&self) -> io::Result<()> {
        if self.unix {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TCP option on a unix socket",
            ));
        }
        Ok(())
    }

    /// Sets `TCP_NODELAY` (on by default for accepted and dialed
    /// connections, see [`Options::tcp_no_delay`](crate::Options::tcp_no_delay)).
    ///
    /// # Errors
    /// `Unsupported` on a unix socket; otherwise the OS error.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp_only()?;
        net::set_nodelay(&self.fd, on)
    }

    /// Whether `TCP_NODELAY` is on.
    ///
    /// # Errors
    /// `Unsupported` on a unix socket; otherwise the OS error.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.tcp_only()?;
        net::nodelay(&self.fd)
    }

    /// Enables `SO_KEEPALIVE`, probing after `idle` of silence and every
    /// `idle` after that (whole seconds, at least 1); `None` disables it.
    ///
    /// # Errors
    /// `Unsupported` on a unix socket; otherwise the OS error.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.tcp_only()?;
        net::set_keepalive(&self.fd, idle)
    }

    /// How many unanswered keep-alive probes end the connection
    /// (`TCP_KEEPCNT`).
    ///
    /// # Errors
    /// `Unsupported` on a unix socket or where the OS lacks the option;
    /// otherwise the OS error.
    pub fn set_keepalive_probes(&self, probes: u32) -> io::Result<()> {
        self.tcp_only()?;
        net::set_keepalive_probes(&self.fd, probes)
    }

    /// Sets the kernel's send buffer (`SO_SNDBUF`; Linux doubles the value
    /// for its bookkeeping).
    ///
    /// # Errors
    /// The OS error.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        net::set_send_buffer_size(&self.fd, bytes)
    }

    /// The kernel's send buffer size (`SO_SNDBUF`).
    ///
    /// # Errors
    /// The OS error.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        net::send_buffer_size(&self.fd)
    }

    /// Sets the kernel's receive buffer (`SO_RCVBUF`), which bounds the TCP
    /// window a peer may fill.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        net::set_recv_buffer_size(&self.fd, bytes)
    }

    /// The kernel's receive buffer size (`SO_RCVBUF`).
    ///
    /// # Errors
    /// The OS error.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        net::recv_buffer_size(&self.fd)
    }

    /// Sets `SO_LINGER`: `Some(Duration::ZERO)` makes the close reset the
    /// connection (discarding unsent data), `None` restores the default.
    /// The loop never blocks in `close` (its sockets are non-blocking), so a
    /// non-zero linger only matters for detached sockets.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        net::set_linger(&self.fd, linger)
    }

    /// The `SO_LINGER` setting.
    ///
    /// # Errors
    /// The OS error.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        net::linger(&self.fd)
    }
}
