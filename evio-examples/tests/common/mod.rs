//! Helpers shared by the integration tests: in-process servers on ephemeral
//! ports and raw sockets with short timeouts (a bug fails a test instead of
//! hanging it).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evio_core::{Addr, Builder, EventHandler, LoadBalance, ServerHandle};

/// How long a test waits for any one thing.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `handler` on `127.0.0.1:0` with `loops` loops; returns the handle
/// and the bound address.
pub fn start<H>(handler: H, loops: isize) -> (ServerHandle<H::Context>, SocketAddr)
where
    H: EventHandler + Clone + Send + 'static,
{
    let server = Builder::new()
        .num_loops(loops)
        .load_balance(LoadBalance::RoundRobin)
        .start(handler, &["tcp://127.0.0.1:0"])
        .expect("server starts");
    let addr = inet(&server.addrs()[0]);
    (server, addr)
}

/// The socket address of an `Addr::Inet`.
pub fn inet(addr: &Addr) -> SocketAddr {
    match addr {
        Addr::Inet(a) => *a,
        other => panic!("not an inet address: {other:?}"),
    }
}

/// A TCP connection with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
pub fn expect(s: &mut impl Read, expected: &[u8]) {
    let got = read_n(s, expected.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "unexpected reply"
    );
}

/// Reads until the peer closes; panics on a timeout (the peer did not close).
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "waiting for the server to close: {e} (got {:?})",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Asserts the peer keeps the connection open for a moment.
pub fn assert_open(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0; 1];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected an open, silent connection, got {other:?}"),
    }
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Writes `data` one byte at a time, pausing so that each byte is its own
/// read on the server.
pub fn write_bytewise(s: &mut TcpStream, data: &[u8]) {
    for b in data {
        s.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Polls `f` until it returns true or the timeout passes.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f` on a thread and fails if it does not finish in time.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
pub fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A running example binary, killed when dropped.
pub struct Bin {
    pub child: Child,
    /// Its startup line.
    pub line: String,
    /// The port the startup line names.
    pub port: u16,
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bin {
    /// The process id (the binary's own, also when started through
    /// `prlimit`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

/// Starts `cmd` (an example binary, or `prlimit ... -- binary`) with
/// stderr piped, and waits for its startup line.
pub fn spawn_bin(mut cmd: Command) -> Bin {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let line = within("the startup line", move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        // Keep draining stderr, so that warnings never block the server.
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        line
    });
    let port = line
        .split("on port ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Bin { child, line, port }
}

/// `spawn_bin` of `bin` with `args`.
pub fn spawn(bin: &str, args: &[&str]) -> Bin {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    spawn_bin(cmd)
}

/// How many file descriptors process `pid` has open (Linux `/proc`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// Whether `program` can be run (found on `PATH`).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A real `redis-server` (no persistence), killed when dropped.
pub struct RealRedis {
    child: Child,
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
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("redis-server not found on PATH: skipped");
            return None;
        };
        let mut real = RealRedis {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if real.child.try_wait().ok().flatten().is_some() {
                break; // it could not listen there: another port
            }
            if answers_ping(real.addr) {
                return Some(real);
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
    let mut buf = [0; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
pub mod tls;
