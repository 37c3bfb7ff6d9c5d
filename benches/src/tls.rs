//! TLS on the load side: a rustls client (ring provider) that verifies the
//! server's certificate against a CA file, a blocking handshake, and
//! [`Stream`], the non-blocking plain-or-TLS socket that `loadgen` drives
//! from its epoll loop.
//!
//! rustls is also what evio's servers use; the peers' own clients (`wrk`,
//! `redis-benchmark`) speak OpenSSL, and every byte `loadgen` gets back is
//! still checked against what it sent, so a shared bug could not hide a
//! wrong echo.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A client config that trusts the certificates in the PEM file `ca`,
/// offers TLS 1.3 and 1.2 with every cipher suite of ring (the server
/// picks: a probe then shows what the server was pinned to), the ALPN
/// protocols `alpn`, and caches sessions only when `resume` is set.
pub fn client_config(ca: &Path, resume: bool, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `name` as the server name to send (SNI) and to verify the certificate
/// for: a DNS name or an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name:?}: {e}"))
}

/// Runs the handshake of `conn` over the blocking socket `sock` to the end.
pub fn handshake(conn: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    // The client's Finished may still be queued.
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// A connected non-blocking socket, plain or with a TLS session whose
/// handshake is done. `read` and `write` carry plaintext and behave like a
/// non-blocking socket's (`WouldBlock` when nothing can be done now);
/// under edge-triggered epoll, read until `WouldBlock` and call
/// [`Stream::flush_tls`] when the socket turns writable.
pub enum Stream {
    /// A plain TCP connection.
    Plain(TcpStream),
    /// A TLS session over a TCP connection.
    Tls(Box<TlsStream>),
}

/// The TLS half of [`Stream`].
pub struct TlsStream {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Stream {
    /// A TLS stream: the handshake of `conn` must be complete; `sock` is
    /// made non-blocking.
    pub fn tls(conn: ClientConnection, sock: TcpStream) -> io::Result<Stream> {
        sock.set_nonblocking(true)?;
        Ok(Stream::Tls(Box::new(TlsStream { conn, sock })))
    }

    /// The TCP socket (to register with epoll, or to shut down).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// Whether this is a TLS stream: a short read then does not mean the
    /// socket is drained (rustls hands out one record's plaintext at a
    /// time), so read until `WouldBlock`.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Reads plaintext; `Ok(0)` at the end of the stream (for TLS: after
    /// the peer's `close_notify`; an end without it is `UnexpectedEof`).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    /// Writes plaintext; for TLS it is sealed into records and written
    /// (what the socket does not take waits for [`Stream::flush_tls`]).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    /// Writes the TLS records still queued until none is left or the socket
    /// would block (nothing for a plain stream).
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush_tls(),
        }
    }
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // No plaintext left: more records from the socket.
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => {
                    self.conn.process_new_packets().map_err(invalid)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // What the records asked for (a key update, an alert).
            self.flush_tls()?;
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_tls()?;
        if self.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.conn.writer().write(buf)?;
        self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
