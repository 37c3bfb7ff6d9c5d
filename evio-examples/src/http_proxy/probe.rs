//! Active health checks (`--health-check PATH`): one thread, apart from the
//! loops, sends `GET PATH` to each upstream every interval and keeps out of
//! the rotation those that do not answer `2xx` or `3xx` in time. Blocking
//! sockets with timeouts: a check is a handful of syscalls per upstream per
//! interval, nothing the loops need to carry.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::Upstreams;

/// What to probe and how often.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The path requested (`--health-check`).
    pub path: String,
    /// Between rounds (`--health-interval`, 2 s); each check may take as
    /// long, connecting and answering.
    pub interval: Duration,
    /// Probe over TLS, as the requests go (`--upstream-tls`).
    pub tls: Option<(Arc<ClientConfig>, String)>,
}

/// Starts the checking thread; it runs until the process exits. The first
/// round runs at once, so an upstream that is down at start is out before
/// the first request, or soon after.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(upstreams: Arc<Upstreams>, probe: Probe) -> io::Result<()> {
    thread::Builder::new()
        .name("http-proxy-health".into())
        .spawn(move || loop {
            for i in 0..upstreams.len() {
                let ok = check(upstreams.addr(i), &probe).unwrap_or(false);
                upstreams.set_probe(i, ok);
            }
            thread::sleep(probe.interval);
        })?;
    Ok(())
}

/// One check: `true` for a `2xx` or `3xx` status line.
fn check(addr: SocketAddr, probe: &Probe) -> io::Result<bool> {
    let timeout = probe.interval.max(Duration::from_millis(100));
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: evio-health-check\r\nConnection: close\r\n\r\n",
        probe.path
    );
    match &probe.tls {
        None => status_ok(tcp, &request),
        Some((config, name)) => {
            let name = ServerName::try_from(name.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let session = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
            status_ok(StreamOwned::new(session, tcp), &request)
        }
    }
}

fn status_ok(mut stream: impl Read + Write, request: &str) -> io::Result<bool> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    // `HTTP/1.1 200`: the first 12 bytes say it.
    let mut line = [0u8; 12];
    stream.read_exact(&mut line)?;
    let ok = line.starts_with(b"HTTP/1.") && matches!(line[9], b'2' | b'3') && line[8] == b' ';
    Ok(ok)
}
