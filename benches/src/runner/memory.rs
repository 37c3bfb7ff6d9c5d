//! The memory workload: N connections opened one after another, one round
//! trip each (over TLS: after a full handshake), then idle; the server's RSS
//! growth divided by N.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde::Serialize;

use crate::pattern::Pattern;
use crate::procfs;
use crate::runner::certs::{self, SNI};
use crate::runner::server::{Server, ServerSpec};
use crate::runner::settings::Settings;
use crate::tls;

/// The round trip each connection makes before it goes idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// 64 bytes echoed back.
    Echo,
    /// `PING` answered with `+PONG`.
    RedisPing,
    /// `GET /` answered with a `200` (keep-alive).
    HttpGet,
}

/// A server of the memory workload.
#[derive(Debug, Clone)]
pub struct MemServer {
    /// How it is started.
    pub spec: ServerSpec,
    /// The round trip of each connection.
    pub probe: Probe,
    /// Whether the connections speak TLS (the spec listens with TLS on
    /// `{port}`).
    pub tls: bool,
}

/// One memory run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemResult {
    /// All connections made their round trip.
    pub ok: bool,
    /// Connections asked for.
    pub conns: usize,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kb: u64,
    /// Server RSS with all connections idle, KiB.
    pub rss_after_kb: u64,
    /// (after − before) / connections made.
    pub bytes_per_conn: f64,
    /// Why it failed.
    pub note: String,
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one HTTP/1.1 response (head, then `Content-Length` bytes) and
/// checks that it is a `200`.
fn read_http_ok(sock: &mut impl Read) -> io::Result<()> {
    let mut got = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        if got.len() > 16 * 1024 {
            return Err(bad("response head over 16 KiB".into()));
        }
        sock.read_exact(&mut byte)?;
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got);
    if !head.starts_with("HTTP/1.1 200") {
        let line = head.lines().next().unwrap_or_default();
        return Err(bad(format!("response {line:?}")));
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .ok_or_else(|| bad("response without Content-Length".into()))?;
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body)
}

/// One request and its reply (verified) on `sock`; `i` picks the echo's
/// bytes.
pub fn round_trip(
    sock: &mut (impl Read + Write),
    probe: Probe,
    pat: &Pattern,
    i: usize,
) -> io::Result<()> {
    let start = Pattern::start_for(i);
    let (req, want): (Vec<u8>, Vec<u8>) = match probe {
        Probe::Echo => {
            let m = pat.slice(start, 0, 64).to_vec();
            (m.clone(), m)
        }
        Probe::RedisPing => (b"PING\r\n".to_vec(), b"+PONG\r\n".to_vec()),
        Probe::HttpGet => {
            let req = format!("GET / HTTP/1.1\r\nHost: {SNI}\r\n\r\n");
            sock.write_all(req.as_bytes())?;
            sock.flush()?;
            return read_http_ok(sock);
        }
    };
    sock.write_all(&req)?;
    sock.flush()?;
    let mut got = vec![0u8; want.len()];
    sock.read_exact(&mut got)?;
    if got != want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrong reply {:?}", String::from_utf8_lossy(&got)),
        ));
    }
    Ok(())
}

/// A blocking loopback connection to `port` with 5 s timeouts.
pub fn connect(port: u16) -> io::Result<TcpStream> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

/// A TLS session over `sock` with its handshake done (blocking).
pub fn tls_connect(
    config: &Arc<ClientConfig>,
    mut sock: TcpStream,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = tls::server_name(SNI).map_err(io::Error::other)?;
    let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    tls::handshake(&mut conn, &mut sock)?;
    Ok(StreamOwned::new(conn, sock))
}

/// One connection of the workload: connected, its round trip made (over
/// TLS when `config` is given: the client's session state is dropped
/// afterwards, only the socket is kept open).
fn idle_connection(
    port: u16,
    config: Option<&Arc<ClientConfig>>,
    probe: Probe,
    pat: &Pattern,
    i: usize,
) -> io::Result<TcpStream> {
    let mut sock = connect(port)?;
    match config {
        None => round_trip(&mut sock, probe, pat, i)?,
        Some(config) => {
            let mut stream = tls_connect(config, sock)?;
            round_trip(&mut stream, probe, pat, i)?;
            sock = stream.sock;
        }
    }
    Ok(sock)
}

/// Opens the idle connections; returns them so that the caller can stop the
/// server before they close (the TIME_WAIT entries then land on the server's
/// side, and the client's ports stay free).
pub fn run_memory(s: &Settings, srv: &Server, mem: &MemServer) -> (MemResult, Vec<TcpStream>) {
    let mut m = MemResult {
        conns: s.mem_conns,
        ..Default::default()
    };
    let config = if mem.tls {
        match tls::client_config(&certs::files(s).cert, false, &[]) {
            Ok(c) => Some(c),
            Err(e) => {
                m.note = e;
                return (m, Vec::new());
            }
        }
    } else {
        None
    };
    m.rss_before_kb = procfs::tree_status_kb(srv.pid, "VmRSS");
    let pat = Pattern::new();
    let mut socks = Vec::with_capacity(s.mem_conns);
    let t0 = Instant::now();
    for i in 0..s.mem_conns {
        let res = idle_connection(srv.port, config.as_ref(), mem.probe, &pat, i);
        match res {
            Ok(sock) => socks.push(sock),
            Err(e) => {
                m.note = format!("connection {i}: {e}");
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            m.note = format!("gave up after {i} connections (120 s)");
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    m.rss_after_kb = procfs::tree_status_kb(srv.pid, "VmRSS");
    m.ok = socks.len() == s.mem_conns && m.note.is_empty();
    if !socks.is_empty() {
        m.bytes_per_conn =
            (m.rss_after_kb as f64 - m.rss_before_kb as f64) * 1024.0 / socks.len() as f64;
    }
    (m, socks)
}
