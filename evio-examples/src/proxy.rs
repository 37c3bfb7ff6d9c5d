//! An L4 (TCP) proxy: every client connection gets its own connection to
//! one backend, and bytes flow both ways until both directions have ended
//! (or either side fails).
//!
//! Everything happens inside the loop that accepted the client, with no
//! extra thread and no channel on the hot path:
//!
//! - `on_opened` (client): [`Conn::dial`] the backend **into the same
//!   loop**; the two connections know each other by [`ConnId`] (kept in each
//!   one's context). Bytes the client sends before the backend has connected
//!   are queued and sent once it does.
//! - `on_data` (either side): [`Conn::write_to`] the peer. That is the only
//!   copy (from the loop's read buffer into the peer's output queue). When
//!   the peer's queue is above the high-water mark (1 MiB by default), the
//!   sender stops being read until the peer drains, so a slow reader on
//!   either side throttles the fast writer on the other instead of growing
//!   the proxy's memory.
//! - `on_eof` (either side, the peer sent its FIN): forward it with
//!   [`Conn::shutdown_write_conn`], which shuts down the other side's write
//!   side once the bytes queued for it are written, and keep the other
//!   direction open (a half-close, as HAProxy in TCP mode does). A backend
//!   that is still connecting when the client's FIN arrives gets it once
//!   it connects. A side closes by itself once both of its directions are
//!   done, so a pair ends when both directions have ended.
//! - `on_closed` (either side): [`Conn::close_conn`] the peer, which closes
//!   it once the bytes already queued for it are written. A backend that
//!   cannot be reached (refused, timed out) closes its client the same way;
//!   so does a side closed by an error or the idle timeout.
//!
//! **TLS:** the proxy does not care whether a side speaks TLS; evio-core
//! encrypts and decrypts, and the callbacks see plaintext. A client on a
//! `tls://` listener reaches `on_opened` after its handshake, so the
//! backend is dialed only for clients that completed one. With
//! [`Proxy::with_backend_tls`] the backend is dialed with
//! [`Conn::dial_tls`]; its `on_opened` fires after that handshake, and
//! what the client sent meanwhile is queued. A `close_notify` from a TLS
//! side is its EOF (`on_eof`, forwarded as above) and
//! `shutdown_write_conn` on a TLS side sends `close_notify` before the FIN;
//! a TLS side that closes without `close_notify` (a truncation) is an
//! error, which closes the pair as any error does. Backpressure and
//! timeouts apply to the plaintext as on plain connections.
//!
//! Warnings (a failed dial) are logged with `tracing` through a shared
//! [`RateLimited`] limiter: with the backend down, every client connection
//! fails, and one line per failure would let anyone fill the disk. The first
//! is logged, then at most one line a second, each with the count of those
//! held back (`suppressed=N`); loop 0's tick reports the end of a burst.
//!
//! Timeouts are the [`Builder`](evio_core::Builder)'s: the idle timeout
//! applies to both sides (the `proxy` binary's `--idle-timeout`, 60 s), so
//! a pair whose peers both stall — a backend that never reads, a client
//! that left — is released with its queued bytes; the dial timeout
//! (`--connect-timeout`, 5 s) bounds connecting to the backend. A proxied
//! connection is never "between requests", so it is never marked
//! reclaimable (`Conn::set_reclaimable`): running out of descriptors never
//! cuts a pair.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use evio_core::{Action, Addr, Conn, ConnId, EventHandler, Options, RateLimited};
use rustls::ClientConfig;

/// The interval of the warning rate limit: one line (and one summary) per
/// second at most.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// The proxy handler: `Clone` (one per loop), no shared state.
#[derive(Clone, Debug)]
pub struct Proxy {
    backend: Addr,
    /// Dial the backend over TLS with this config and server name.
    backend_tls: Option<(Arc<ClientConfig>, String)>,
    /// Shared by every loop's clone: the limit is per server.
    warnings: Arc<Mutex<RateLimited>>,
}

/// Per-connection state: the other half of the pair, if any.
#[derive(Debug, Default)]
pub struct Side {
    peer: Option<ConnId>,
    /// For a backend: whether its connect completed.
    connected: bool,
}

/// A proxy handler forwarding to `backend`.
pub fn handler(backend: SocketAddr) -> Proxy {
    Proxy::new(Addr::Inet(backend))
}

impl Proxy {
    /// A proxy forwarding to `backend` (TCP, or a unix socket path).
    pub fn new(backend: Addr) -> Proxy {
        Proxy {
            backend,
            backend_tls: None,
            warnings: Arc::new(Mutex::new(RateLimited::with_interval(WARNING_INTERVAL))),
        }
    }

    /// The same proxy speaking TLS to its backend: dialed with
    /// [`Conn::dial_tls`], `config` (the CA certificates to trust) and
    /// `server_name` (sent as SNI; the backend's certificate must carry it).
    pub fn with_backend_tls(mut self, config: Arc<ClientConfig>, server_name: String) -> Proxy {
        self.backend_tls = Some((config, server_name));
        self
    }

    /// Logs a warning unless one was logged less than [`WARNING_INTERVAL`]
    /// ago (then it is counted, and reported with the next one).
    fn warn(&self, msg: std::fmt::Arguments<'_>) {
        let mut w = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        w.warn(|held| tracing::warn!(suppressed = held, "proxy: {msg}"));
    }

    /// Where connections are forwarded.
    pub fn backend(&self) -> &Addr {
        &self.backend
    }
}

impl EventHandler for Proxy {
    type Context = Side;

    fn on_opened(&mut self, conn: &mut Conn<'_, Side>) -> (Options, Action) {
        // A dialed backend was given its peer when it was dialed.
        if conn.is_dialed() {
            conn.context_mut().connected = true;
            return (Options::default(), Action::None);
        }
        let side = Side {
            peer: Some(conn.id()),
            connected: false,
        };
        let dialed = match &self.backend_tls {
            Some((config, name)) => conn.dial_tls(&self.backend, name, config.clone(), side),
            None => conn.dial(&self.backend, side),
        };
        match dialed {
            Ok(backend) => {
                conn.context_mut().peer = Some(backend);
                (Options::default(), Action::None)
            }
            Err(e) => {
                // Could not even start (e.g. out of file descriptors).
                self.warn(format_args!("dialing {}: {e}", self.backend));
                (Options::default(), Action::Close)
            }
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Side>, input: &[u8]) -> Action {
        if input.is_empty() {
            return Action::None; // a wake-up, not data
        }
        let peer = conn.context().peer;
        match peer {
            Some(peer) if conn.peer(peer).is_some_and(|mut p| p.write(input)) => Action::None,
            // The other half is gone or closing: nowhere to forward to.
            _ => Action::Close,
        }
    }

    /// A proxied stream has no boundary to close at: both halves are
    /// served until the connection ends (or the drain times out).
    fn on_drain(&mut self, _conn: &mut Conn<'_, Side>) -> Action {
        Action::None
    }

    /// This side sent its FIN: forward it to the other side, after the
    /// bytes queued for it, and keep forwarding the other way.
    fn on_eof(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let peer = conn.context().peer;
        match peer {
            Some(peer) if conn.peer(peer).is_some_and(|mut p| p.shutdown_write()) => Action::None,
            // The other half is gone or closing: nothing left to do.
            _ => Action::Close,
        }
    }

    fn on_closed(&mut self, conn: &mut Conn<'_, Side>, err: Option<io::Error>) -> Action {
        if let (Some(e), true) = (&err, conn.is_dialed() && !conn.context().connected) {
            // The backend refused, timed out or is unreachable, or (TLS)
            // its handshake failed: a certificate not trusted or not for
            // the server name.
            self.warn(format_args!("connecting to {}: {e}", conn.remote_addr()));
        }
        if let Some(peer) = conn.context_mut().peer.take() {
            // Closes it once what is already queued for it is written.
            if let Some(mut p) = conn.peer(peer) {
                p.close();
            }
        }
        Action::None
    }

    /// Reports warnings suppressed by the rate limit once their burst ends.
    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        let mut w = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        w.flush(|held| {
            tracing::warn!(
                suppressed = held,
                "proxy: {held} similar warnings suppressed"
            )
        });
        (Some(WARNING_INTERVAL), Action::None)
    }
}

/// The `proxy` binary's command line: its name, defaults and the flags
/// it takes beyond the shared ones.
pub const SPEC: crate::cli::Spec = crate::cli::Spec {
    bin: "proxy",
    name: "proxy",
    default_port: 7000,
    udp: false,
    backend: true,
    idle_timeout: 60,
    header_timeout: None,
    connect_timeout: Some(5),
    alpn: &[],
    extra: None,
};
