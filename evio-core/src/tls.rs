//! TLS on a connection (the `tls` feature): a rustls session between the
//! socket and the handler, and [`TlsInfo`], what a handler may ask of it.
//!
//! Ciphertext read from the socket (into the loop's read buffer) is fed to
//! rustls from that slice; the plaintext it yields goes to `on_data`.
//! Plaintext the handler writes is queued like on any connection and
//! encrypted when the connection is flushed, so the writes of one callback
//! become one record, and rustls's records leave in one `write`/`writev` —
//! the same system calls as a plain connection.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use evio_sys::net;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// The most ciphertext a peer may send before its handshake completes.
/// A real handshake is a few KiB; rustls itself bounds one handshake
/// message to 64 KiB.
pub(crate) const MAX_HANDSHAKE_INPUT: usize = 128 * 1024;

/// What reading plaintext found.
pub(crate) enum Plain {
    /// This many bytes were copied out.
    Data(usize),
    /// Nothing more until more ciphertext arrives.
    Empty,
    /// The peer sent `close_notify`: a clean end of its data.
    Closed,
    /// The peer closed the TCP connection without `close_notify`
    /// (`UnexpectedEof`): a truncation.
    Truncated(io::Error),
}

/// One connection's TLS session.
pub(crate) struct TlsSession {
    conn: Connection,
    /// Ciphertext fed before the handshake completed (bounded).
    handshake_input: usize,
    /// `on_opened` has fired for the finished handshake.
    opened: bool,
    close_notify_sent: bool,
    /// Ciphertext that arrived while reading was paused mid-read, fed
    /// first when reading resumes (rare: allocated only then).
    stash: Vec<u8>,
}

/// The socket as rustls's `write_tls` sees it: records leave in one
/// `writev` (no `SIGPIPE`).
struct Socket<'a>(BorrowedFd<'a>);

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        net::write(self.0, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        net::writev(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl TlsSession {
    /// A server session for an accepted connection.
    pub(crate) fn server(config: &Arc<ServerConfig>) -> io::Result<TlsSession> {
        let conn = ServerConnection::new(config.clone()).map_err(tls_error)?;
        Ok(TlsSession::new(conn.into()))
    }

    /// A client session for a dial to `name`.
    pub(crate) fn client(config: Arc<ClientConfig>, name: &str) -> io::Result<TlsSession> {
        let name = ServerName::try_from(name.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TLS: bad server name {name:?}: {e}"),
            )
        })?;
        let conn = ClientConnection::new(config, name).map_err(tls_error)?;
        Ok(TlsSession::new(conn.into()))
    }

    fn new(conn: Connection) -> TlsSession {
        TlsSession {
            conn,
            handshake_input: 0,
            opened: false,
            close_notify_sent: false,
            stash: Vec::new(),
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether `on_opened` has fired (the handshake finished).
    pub(crate) fn is_open(&self) -> bool {
        self.opened
    }

    /// The handshake has finished and `on_opened` has not fired yet: `true`
    /// once, then `false`.
    pub(crate) fn take_opened(&mut self) -> bool {
        if self.opened || self.conn.is_handshaking() {
            return false;
        }
        self.opened = true;
        true
    }

    /// Feeds ciphertext from the front of `input` (as much as rustls takes
    /// at once, up to 4 KiB) and processes the records it completes.
    ///
    /// # Errors
    /// `InvalidData` for a TLS error (an alert is queued for the peer),
    /// or a handshake that sent more than [`MAX_HANDSHAKE_INPUT`].
    pub(crate) fn feed(&mut self, input: &mut &[u8]) -> io::Result<()> {
        let before = input.len();
        match self.conn.read_tls(input) {
            Ok(_) => {}
            // "received plaintext buffer full": the caller drains plaintext
            // between feeds, so this is the peer outrunning that; drain and
            // feed again.
            Err(e) if e.kind() == io::ErrorKind::Other => return Ok(()),
            Err(e) => return Err(e),
        }
        if self.conn.is_handshaking() {
            self.handshake_input += before - input.len();
            if self.handshake_input > MAX_HANDSHAKE_INPUT {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS: handshake too large",
                ));
            }
        }
        self.conn.process_new_packets().map_err(tls_error)?;
        Ok(())
    }

    /// Tells rustls the socket reached EOF. What was sent before is still
    /// read; then [`read_plain`](Self::read_plain) reports a clean end or a
    /// truncation.
    pub(crate) fn feed_eof(&mut self) {
        let _ = self.conn.read_tls(&mut &[][..]);
        let _ = self.conn.process_new_packets();
    }

    /// Copies plaintext out into `buf`.
    pub(crate) fn read_plain(&mut self, buf: &mut [u8]) -> Plain {
        match self.conn.reader().read(buf) {
            Ok(0) => Plain::Closed,
            Ok(n) => Plain::Data(n),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Plain::Truncated(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "TLS: the peer closed the connection without close_notify (truncated)",
            )),
            Err(_) => Plain::Empty,
        }
    }

    /// Encrypts plaintext from the front of `data`; returns how much rustls
    /// took (less than all once its 64 KiB of unsent records is full).
    pub(crate) fn encrypt(&mut self, data: &[u8]) -> usize {
        if !self.takes_plaintext() {
            return 0;
        }
        self.conn.writer().write(data).unwrap_or(0)
    }

    /// Whether [`encrypt`](Self::encrypt) takes plaintext now: the handshake
    /// is done and `close_notify` not sent.
    pub(crate) fn takes_plaintext(&self) -> bool {
        !self.conn.is_handshaking() && !self.close_notify_sent
    }

    /// Whether records wait to be written to the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes waiting records to the socket until done or it is full;
    /// returns the bytes written.
    ///
    /// # Errors
    /// The socket's error, except `WouldBlock`.
    pub(crate) fn write_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Socket(fd)) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Queues `close_notify` (once).
    pub(crate) fn close_notify(&mut self) {
        if !self.close_notify_sent {
            self.close_notify_sent = true;
            self.conn.send_close_notify();
        }
    }

    /// Keeps `rest` (ciphertext not fed because reading paused).
    pub(crate) fn stash(&mut self, rest: &[u8]) {
        self.stash.extend_from_slice(rest);
    }

    /// Takes the stashed ciphertext, if any.
    pub(crate) fn take_stash(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stash)
    }

    pub(crate) fn info(&self) -> TlsInfo<'_> {
        TlsInfo { conn: &self.conn }
    }

    /// The session and the socket as a blocking rustls stream (detach).
    pub(crate) fn into_stream(self, tcp: std::net::TcpStream) -> crate::DetachedStream {
        match self.conn {
            Connection::Server(s) => {
                crate::DetachedStream::TlsServer(Box::new(rustls::StreamOwned::new(s, tcp)))
            }
            Connection::Client(c) => {
                crate::DetachedStream::TlsClient(Box::new(rustls::StreamOwned::new(c, tcp)))
            }
        }
    }
}

/// What a handler may ask of a TLS connection, from
/// [`Conn::tls`](crate::Conn::tls).
///
/// ```no_run
/// # use evio_core::{Action, Conn, EventHandler, Options};
/// # struct H;
/// # impl EventHandler for H { type Context = ();
/// fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
///     if let Some(tls) = conn.tls() {
///         let h2 = tls.alpn_protocol() == Some(b"h2");
///         println!("TLS for {:?}, h2: {h2}", tls.server_name());
///     }
///     (Options::default(), Action::None)
/// }
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct TlsInfo<'a> {
    conn: &'a Connection,
}

impl TlsInfo<'_> {
    /// The server name the client asked for (SNI); `None` on a dialed
    /// connection or when the client sent none.
    pub fn server_name(&self) -> Option<&str> {
        match self.conn {
            Connection::Server(s) => s.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// The application protocol agreed with ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The TLS version agreed (`None` during the handshake).
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The cipher suite agreed (`None` during the handshake).
    pub fn cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// Whether the handshake is still going on (only in `on_closed` of a
    /// connection whose handshake failed).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}

impl std::fmt::Debug for TlsInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsInfo")
            .field("server_name", &self.server_name())
            .field("alpn_protocol", &self.alpn_protocol())
            .field("protocol_version", &self.protocol_version())
            .finish()
    }
}
