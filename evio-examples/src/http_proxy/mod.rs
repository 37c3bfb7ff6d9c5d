//! An HTTP/1.1 reverse proxy: the L7 proxy evio was built to be the
//! foundation for. Clients' requests are parsed (httparse, as the HTTP
//! server), checked, rewritten and sent to one of the upstreams over a
//! kept-alive connection; responses stream back the same way.
//!
//! Everything happens in the loop that accepted the client, with no lock
//! and no channel on the hot path: each loop has its own pool of idle
//! upstream connections (one per upstream), and a client and its upstream
//! connection hand each other state with [`Peer::context_mut`] and
//! [`Peer::wake`]. Only the upstreams' health and in-progress counts are
//! shared between loops, as relaxed atomics ([`upstreams::Upstreams`]).
//!
//! # What is forwarded
//!
//! - The request line and headers, minus the hop-by-hop ones (`Connection`
//!   and the headers it names, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`,
//!   `Proxy-Connection`, `Proxy-Authorization`, `Proxy-Authenticate`);
//!   `X-Forwarded-For` gets the client's address appended,
//!   `X-Forwarded-Proto` is set (`http` or `https`), `Via: 1.1 evio` is
//!   appended. `Host` is passed on as it is (an HTTP/1.0 request without
//!   one gets the first upstream's address).
//! - Bodies stream both ways, framed by what the proxy checked: a request
//!   body with `Content-Length` or `Transfer-Encoding: chunked` (each chunk
//!   size and line end checked as it passes), a response body with either
//!   or delimited by the upstream's close. Nothing is buffered whole:
//!   writing to the other side goes through [`Peer::write`], whose
//!   backpressure stops reading the sender while the receiver's queue is
//!   above the high-water mark, so a slow client slows the upstream read
//!   and a slow upstream slows the client read.
//! - `HEAD` responses and `1xx`, `204`, `304` have no body. A chunked
//!   response to an HTTP/1.0 client is de-chunked and the connection
//!   closed after it; a response delimited by close closes the client
//!   connection too.
//! - `Expect: 100-continue`: the proxy answers `100 Continue` itself (as
//!   nginx does) and does not pass the expectation on.
//! - `Upgrade: websocket` (a `GET` with `Connection: Upgrade`): passed on;
//!   after the upstream's `101` both connections become a byte tunnel, and
//!   a FIN from either side is forwarded as in the L4 proxy.
//!
//! # What is refused
//!
//! A request whose framing could be read two ways gets `400` and a close,
//! and nothing of it reaches an upstream (see `message.rs`): so a client
//! cannot smuggle a second request past the proxy into a pooled upstream
//! connection. Responses are parsed and re-framed the same way; a response
//! head that cannot be (conflicting lengths) is a `502`.
//!
//! # Failures and retries
//!
//! A request whose upstream connection fails before any response byte —
//! refused, reset, closed, timed out connecting — is sent again to another
//! upstream when that is safe: its method is idempotent (`GET`, `HEAD`,
//! `OPTIONS`, `TRACE`, `PUT`, `DELETE`), or nothing of it can have reached
//! the upstream (the connection never opened). Only requests whose head
//! and body so far fit in [`REPLAY_LIMIT`] are kept for that. Otherwise,
//! or when every upstream was tried, the client gets `502`; an upstream
//! that does not send its response head within the upstream header
//! timeout gets the client a `504`. When every upstream is down the answer
//! is `503` at once.
//!
//! Health: `max_fails` consecutive failures mark an upstream down for
//! `fail_timeout` (passive, as nginx's `max_fails`/`fail_timeout`); with
//! `--health-check PATH` a thread probes each upstream with `GET PATH`
//! every interval and keeps the ones whose answer is not `2xx`/`3xx` out
//! ([`probe`]).
//!
//! # Timeouts
//!
//! [`Config`] names them after nginx's: connecting (the `Builder`'s dial
//! timeout), the upstream's response head, an upstream silent mid-response,
//! a client's request head (`408`), an idle client (the `Builder`'s idle
//! timeout), an idle pooled connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evio_core::{Action, Conn, ConnId, EventHandler, Options, Peer};
use rustls::ClientConfig;

mod client;
pub mod flags;
mod framing;
mod message;
pub mod probe;
mod response;
mod stats;
mod upstream;
pub mod upstreams;

use framing::Body;
use message::{Reframe, Request, ToClient};
pub use stats::Stats;
pub use upstreams::{Balance, Upstreams};

/// The most bytes of a request (head and body) kept to send it again on
/// another upstream; a longer one is not retried.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// The idle upstream connections each loop keeps per upstream (nginx's
/// `keepalive 64`).
pub const POOL_SIZE: usize = 64;

/// The proxy's settings (the `http-proxy` binary's flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--upstream-tls`: dial upstreams over TLS with this config and
    /// server name (SNI).
    pub upstream_tls: Option<(Arc<ClientConfig>, String)>,
    /// `--hash-header NAME`: with [`Balance::Hash`], hash this header's
    /// value instead of the client's address.
    pub hash_header: Option<String>,
    /// `--upstream-header-timeout` (60 s, nginx's `proxy_read_timeout`
    /// for the head): from the request's end to the response head's end.
    pub upstream_header_timeout: Option<Duration>,
    /// `--upstream-idle-timeout` (60 s): an upstream connection in use
    /// that sends and takes nothing this long is closed.
    pub upstream_idle_timeout: Option<Duration>,
    /// `--client-header-timeout` (60 s, nginx's `client_header_timeout`):
    /// from a connection's opening or a request head's first byte to the
    /// head's end; then `408` and a close.
    pub client_header_timeout: Option<Duration>,
    /// `--keepalive-timeout` (60 s, nginx's upstream `keepalive_timeout`):
    /// how long an idle pooled connection is kept.
    pub keepalive_timeout: Option<Duration>,
    /// `--access-log`: one line per request on stdout.
    pub access_log: bool,
}

impl Default for Config {
    fn default() -> Config {
        let minute = Some(Duration::from_secs(60));
        Config {
            upstream_tls: None,
            hash_header: None,
            upstream_header_timeout: minute,
            upstream_idle_timeout: minute,
            client_header_timeout: minute,
            keepalive_timeout: minute,
            access_log: false,
        }
    }
}

/// The proxy handler: `Clone` (one per loop); each clone has its own
/// pools, and they share the upstreams' health.
#[derive(Clone, Debug)]
pub struct HttpProxy {
    upstreams: Arc<Upstreams>,
    stats: Arc<Stats>,
    config: Arc<Config>,
    /// Idle upstream connections of this loop, per upstream.
    pools: Vec<Vec<ConnId>>,
    /// This loop's round-robin position.
    cursor: usize,
    /// The first upstream's address, the `Host` of HTTP/1.0 requests
    /// without one.
    default_host: String,
    /// Reused for rewriting response heads and de-chunking.
    scratch: Vec<u8>,
}

impl HttpProxy {
    /// A proxy to `upstreams` with `config`.
    pub fn new(upstreams: Arc<Upstreams>, config: Config) -> HttpProxy {
        HttpProxy {
            pools: vec![Vec::new(); upstreams.len()],
            default_host: upstreams.addr(0).to_string(),
            upstreams,
            stats: Arc::default(),
            config: Arc::new(config),
            cursor: 0,
            scratch: Vec::new(),
        }
    }

    /// The upstreams and their health.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// The counters every loop's clone adds to.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The counters and the upstreams' state in the Prometheus text format
    /// (what the binary adds to `--metrics-port`).
    pub fn render_metrics(&self, out: &mut String) {
        self.stats.render(&self.upstreams, out);
    }
}

/// A connection's state: a client's, or an upstream connection's.
#[derive(Debug)]
pub enum Side {
    /// Accepted from a client.
    Client(Client),
    /// Dialed to an upstream.
    Upstream(UpstreamConn),
}

impl Default for Side {
    fn default() -> Side {
        Side::Client(Client::default())
    }
}

/// Where a client connection is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ClientPhase {
    /// Reading a request head.
    #[default]
    Head,
    /// Forwarding the request body.
    Body,
    /// The request is sent; its response is on its way. Input is held.
    Waiting,
    /// A WebSocket tunnel: bytes pass both ways.
    Tunnel,
    /// Answered and closing: input is dropped.
    Closing,
}

/// A client connection's state.
#[derive(Debug, Default)]
pub struct Client {
    phase: ClientPhase,
    /// A partial request head, or input held while a response is on its
    /// way (then reading is paused).
    held: Vec<u8>,
    /// The request in progress: its rewritten head and the body bytes sent
    /// so far, to send again on another upstream (cleared once over
    /// [`REPLAY_LIMIT`] or once the response starts).
    replay: Vec<u8>,
    replayable: bool,
    request: Option<Request>,
    body: Option<Body>,
    /// The upstream connection of the request in progress, and which
    /// upstream it is.
    upstream: Option<(ConnId, usize)>,
    /// Upstreams tried for this request (a bit each).
    tried: u64,
    /// The next try takes a new connection, not a pooled one.
    fresh: bool,
    /// The response head has been sent to the client.
    responded: bool,
    /// The client half-closed: close once the response is out.
    eof: bool,
    /// Reading is paused until the response ends.
    paused: bool,
    /// The client header timer is running.
    header_timer: bool,
    /// The timer running is a drain's idle grace, not the header timer.
    drain_grace: bool,
    /// The client's address as text (`X-Forwarded-For`, the log).
    ip: String,
    tls: bool,
    /// When the head arrived (for the access log; its request line is the
    /// start of `replay`).
    started: Option<Instant>,
    /// The response's status (the access log).
    status: u16,
    /// What the upstream side reported, for `on_wake`.
    event: Option<client::Event>,
}

/// Where an upstream connection is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum UpstreamPhase {
    /// Waiting for (or reading) a response head.
    #[default]
    Head,
    /// Forwarding the response body.
    Body,
    /// A WebSocket tunnel.
    Tunnel,
    /// Idle in its loop's pool.
    Pooled,
    /// Closing: takes nothing more.
    Closing,
}

/// An upstream connection's state.
#[derive(Debug, Default)]
pub struct UpstreamConn {
    phase: UpstreamPhase,
    /// The client it serves; `None` while pooled.
    client: Option<ConnId>,
    /// Which upstream.
    index: usize,
    /// The connect (and TLS handshake) finished.
    connected: bool,
    /// Taken from the pool (it served a request before).
    reused: bool,
    /// A partial response head.
    held: Vec<u8>,
    to_client: Option<ToClient>,
    body: Option<Body>,
    reframe: Option<Reframe>,
    /// The response allows another request on this connection.
    reusable: bool,
    /// The client connection stays open after the response.
    client_keep_alive: bool,
}

impl EventHandler for HttpProxy {
    type Context = Side;

    fn on_opened(&mut self, conn: &mut Conn<'_, Side>) -> (Options, Action) {
        if conn.is_dialed() {
            if let Side::Upstream(u) = conn.context_mut() {
                u.connected = true;
            }
            let idle = Options::default().idle_timeout(self.config.upstream_idle_timeout);
            return (idle, Action::None);
        }
        self.client_opened(conn);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Side>, input: &[u8]) -> Action {
        match conn.context() {
            Side::Client(_) => self.client_data(conn, input),
            Side::Upstream(_) => self.upstream_data(conn, input),
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        match conn.context() {
            Side::Client(_) => self.client_eof(conn),
            Side::Upstream(_) => self.upstream_eof(conn),
        }
    }

    fn on_wake(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        self.on_data(conn, &[])
    }

    /// Clients: the next response says `Connection: close`; one between
    /// requests is closed after [`drain::IDLE_GRACE`](crate::drain::IDLE_GRACE)
    /// of silence. Idle pooled upstream connections close now; busy ones
    /// finish their response. Tunnels run until they end.
    fn on_drain(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        match conn.context() {
            Side::Client(_) => self.client_drain(conn),
            Side::Upstream(u) if u.client.is_none() => Action::Close,
            Side::Upstream(_) => Action::None,
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        match conn.context() {
            Side::Client(_) => self.client_timer(conn),
            Side::Upstream(_) => Action::None,
        }
    }

    fn on_closed(&mut self, conn: &mut Conn<'_, Side>, err: Option<io::Error>) -> Action {
        match conn.context() {
            Side::Client(_) => self.client_closed(conn),
            Side::Upstream(_) => self.upstream_closed(conn, err),
        }
        Action::None
    }
}

/// The client state behind `side`, if it is one.
fn as_client(side: Option<&mut Side>) -> Option<&mut Client> {
    match side {
        Some(Side::Client(c)) => Some(c),
        _ => None,
    }
}

/// The upstream state behind `side`, if it is one.
fn as_upstream(side: Option<&mut Side>) -> Option<&mut UpstreamConn> {
    match side {
        Some(Side::Upstream(u)) => Some(u),
        _ => None,
    }
}

/// Runs `f` on the state of the client connection `id`, if it is there.
fn with_client<R>(
    conn: &mut Conn<'_, Side>,
    id: ConnId,
    f: impl FnOnce(&mut Client) -> R,
) -> Option<R> {
    let mut peer = conn.peer(id)?;
    as_client(peer.context_mut()).map(f)
}

/// `conn`'s own client state. Only called on client connections.
fn me_client<'a>(conn: &'a mut Conn<'_, Side>) -> &'a mut Client {
    as_client(Some(conn.context_mut())).expect("a client connection")
}

/// `conn`'s own upstream state. Only called on upstream connections.
fn me_upstream<'a>(conn: &'a mut Conn<'_, Side>) -> &'a mut UpstreamConn {
    as_upstream(Some(conn.context_mut())).expect("an upstream connection")
}

/// Writes `data` to `id` if it is still there.
fn send(peer: Option<Peer<'_, Side>>, data: &[u8]) -> bool {
    peer.is_some_and(|mut p| p.write(data))
}

/// The access log line for a request, on stdout.
fn log_request(client: &Client, upstream: Option<SocketAddr>, status: u16) {
    let line_end = client
        .replay
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(client.replay.len());
    let line = String::from_utf8_lossy(&client.replay[..line_end]);
    let ms = client
        .started
        .map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3);
    let upstream = upstream.map_or_else(|| "-".to_string(), |a| a.to_string());
    println!(
        "{} \"{line}\" {status} upstream={upstream} {ms:.3}ms",
        client.ip
    );
}

/// The `http-proxy` binary's command line: its name, defaults and the flags
/// it takes beyond the shared ones.
pub const SPEC: crate::cli::Spec = crate::cli::Spec {
    bin: "http-proxy",
    name: "http-proxy",
    default_port: 8080,
    udp: false,
    backend: false,
    idle_timeout: 75,
    header_timeout: None,
    connect_timeout: Some(5),
    alpn: &[b"http/1.1"],
    extra: Some(&flags::EXTRA),
};
