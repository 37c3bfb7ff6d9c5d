//! A real `redis-server` for tests that compare with it or put evio in
//! front of it: plain or TLS, on a free loopback port, skipped with a
//! message where it is not installed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::net::{free_port, TIMEOUT};
use crate::pki::{tls_client, Pki};
use crate::process::run_for;

/// Sends an inline `PING` on `s` and expects `+PONG`.
pub fn expect_pong(s: &mut TcpStream) {
    s.write_all(b"PING\r\n").unwrap();
    crate::net::expect(s, b"+PONG\r\n");
}

/// A command in RESP's multibulk form, each argument a bulk string:
/// `resp_command(&[b"GET", b"k"])` is `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`.
pub fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Runs `redis-cli --tls` (trusting `pki`'s CA) against `addr` with `args`,
/// for at most `limit`; fails unless it exits 0. Returns its stdout and
/// stderr.
pub fn redis_cli_tls(
    pki: &Pki,
    addr: SocketAddr,
    args: &[&str],
    limit: Duration,
) -> (String, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert"])
        .arg(&pki.ca)
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args);
    let (status, out, err) = run_for(cmd, limit, b"");
    assert_eq!(status, Some(0), "redis-cli {args:?}: {out}{err}");
    (out, err)
}

/// A real `redis-server` (no persistence), killed when dropped.
pub struct RealRedis {
    child: Child,
    /// Where it listens (its TLS port, for [`real_redis_tls`]).
    pub addr: SocketAddr,
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a real `redis-server` on a free loopback port; `None` (with a
/// message) if there is no `redis-server` on `PATH`. The port is found by
/// binding port 0 and letting it go, so another socket may take it first
/// (even a client's ephemeral port, which can connect to itself): a server
/// that exits, or a port that does not answer `PING` with `+PONG`, is
/// retried on another port.
pub fn real_redis() -> Option<RealRedis> {
    start(|port| {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &std::env::temp_dir().display().to_string()]);
        cmd
    })
    .map(|(real, _)| real)
}

/// Starts a real `redis-server --port 0 --tls-port P` with `pki`'s
/// certificate; `None` (with a message) without `redis-server` or with one
/// built without TLS. Retried on another port as [`real_redis`].
pub fn real_redis_tls(pki: &Pki) -> Option<RealRedis> {
    let client = pki.client.clone();
    let found = start_with(
        |port| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .arg("--tls-cert-file")
                .arg(&pki.cert)
                .arg("--tls-key-file")
                .arg(&pki.key)
                .arg("--tls-ca-cert-file")
                .arg(&pki.ca)
                .args(["--tls-auth-clients", "no"])
                .arg("--dir")
                .arg(&pki.dir);
            cmd
        },
        move |addr| answers_ping_tls(addr, &client),
    );
    match found {
        Some((_, log)) if log.contains("TLS") && log.contains("not supported") => {
            eprintln!("redis-server was built without TLS: skipped");
            None
        }
        other => other.map(|(real, _)| real),
    }
}

fn start(command: impl Fn(u16) -> Command) -> Option<(RealRedis, String)> {
    start_with(command, answers_ping)
}

/// Runs `command(port)` on free ports until one answers `ready`; `None`
/// without `redis-server`. With a server that exits at once, its log
/// comes back (with no live server behind it) when it says why.
fn start_with(
    command: impl Fn(u16) -> Command,
    ready: impl Fn(SocketAddr) -> bool,
) -> Option<(RealRedis, String)> {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = command(port);
        let child = cmd
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("redis-server not found on PATH: skipped");
            return None;
        };
        let log = child.stdout.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = { log }.read_to_string(&mut s);
            s
        });
        let mut real = RealRedis {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if real.child.try_wait().ok().flatten().is_some() {
                let log = log.join().unwrap_or_default();
                if log.contains("not supported") {
                    return Some((real, log));
                }
                break; // it could not listen there: another port
            }
            if ready(real.addr) {
                return Some((real, String::new()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-server did not start");
}

/// Whether `addr` answers `PING` with `+PONG` within a second.
fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    ping(&mut s)
}

/// Whether `addr` answers `PING` with `+PONG` over TLS within a second.
fn answers_ping_tls(addr: SocketAddr, config: &Arc<ClientConfig>) -> bool {
    let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    ping(&mut tls_client(tcp, config))
}

fn ping(s: &mut (impl Read + Write)) -> bool {
    let mut buf = [0; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
