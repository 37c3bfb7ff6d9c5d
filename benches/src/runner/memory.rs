//! The memory workload: N connections opened one after another, one round
//! trip each, then idle; the server's RSS growth divided by N.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::pattern::Pattern;
use crate::procfs;
use crate::runner::server::Server;
use crate::runner::settings::Settings;

/// The round trip each connection makes before it goes idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// 64 bytes echoed back.
    Echo,
    /// `PING` answered with `+PONG`.
    RedisPing,
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

fn round_trip(sock: &mut TcpStream, probe: Probe, pat: &Pattern, i: usize) -> io::Result<()> {
    let start = Pattern::start_for(i);
    let (req, want): (Vec<u8>, Vec<u8>) = match probe {
        Probe::Echo => {
            let m = pat.slice(start, 0, 64).to_vec();
            (m.clone(), m)
        }
        Probe::RedisPing => (b"PING\r\n".to_vec(), b"+PONG\r\n".to_vec()),
    };
    sock.write_all(&req)?;
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

/// Opens the idle connections; returns them so that the caller can stop the
/// server before they close (the TIME_WAIT entries then land on the server's
/// side, and the client's ports stay free).
pub fn run_memory(s: &Settings, srv: &Server, probe: Probe) -> (MemResult, Vec<TcpStream>) {
    let mut m = MemResult {
        conns: s.mem_conns,
        ..Default::default()
    };
    let addr: SocketAddr = ([127, 0, 0, 1], srv.port).into();
    m.rss_before_kb = procfs::tree_status_kb(srv.pid, "VmRSS");
    let pat = Pattern::new();
    let mut socks = Vec::with_capacity(s.mem_conns);
    let t0 = Instant::now();
    for i in 0..s.mem_conns {
        let res = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).and_then(|mut sock| {
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            sock.set_write_timeout(Some(Duration::from_secs(5)))?;
            sock.set_nodelay(true)?;
            round_trip(&mut sock, probe, &pat, i)?;
            Ok(sock)
        });
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
