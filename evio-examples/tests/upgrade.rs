//! Zero-downtime restarts of the example binaries (`--upgrade-socket`,
//! `--upgrade`): a second process takes the listening sockets while real
//! load runs — wrk against http-server, redis-benchmark against
//! redis-server, long-lived echo connections through the proxy — and not
//! one request fails; the old process drains and exits. Then what must not
//! break it: garbage on the upgrade socket, a successor that dies halfway,
//! two successors at once.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;

const HTTP: &str = env!("CARGO_BIN_EXE_http-server");
const REDIS: &str = env!("CARGO_BIN_EXE_redis-server");
const ECHO: &str = env!("CARGO_BIN_EXE_echo-server");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// A server process whose stderr is kept (for the error lines a failed
/// upgrade must log), killed when dropped.
struct Server {
    child: Child,
    port: u16,
    lines: Receiver<String>,
    log: RefCell<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        let (child, port, lines) = spawn_logging(cmd);
        Server {
            child,
            port,
            lines,
            log: RefCell::default(),
        }
    }

    /// What it wrote to stderr after its startup line, so far.
    fn stderr(&self) -> String {
        let mut log = self.log.borrow_mut();
        for line in self.lines.try_iter() {
            log.push_str(&line);
            log.push('\n');
        }
        log.clone()
    }

    /// Waits up to `limit` for the process to exit; its status code.
    fn exits_within(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// A fresh upgrade socket path (in a directory of its own, removed after).
fn upgrade_path(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let path = dir.path().join("upgrade.sock");
    (dir, path)
}

fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts the successor of the server at `path` and waits for its
/// startup line.
fn successor(bin: &str, port: u16, path: &Path, extra: &[&str]) -> Server {
    let port = port.to_string();
    let path = path.to_str().unwrap();
    let mut args = vec!["--port", &port, "--upgrade", "--upgrade-socket", path];
    args.extend_from_slice(extra);
    Server::start(bin, &args)
}

#[test]
fn http_server_restarts_under_wrk_with_no_error() {
    if skip_without("wrk") {
        return;
    }
    let (_dir, path) = upgrade_path("upgrade-http");
    let p = path.to_str().unwrap();
    let mut old = Server::start(HTTP, &["--port", "0", "--upgrade-socket", p]);
    let url = format!("http://127.0.0.1:{}/", old.port);
    let wrk = Command::new("wrk")
        .args(["-t", "2", "-c", "50", "-d", "6s", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut new = successor(HTTP, old.port, &path, &[]);
    assert_eq!(
        old.exits_within(Duration::from_secs(5)),
        Some(0),
        "the old process drains and exits within 5 s; its stderr: {}",
        old.stderr()
    );
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk: {report}");
    assert!(
        !report.contains("Socket errors"),
        "no socket error: {report}"
    );
    assert!(!report.contains("Non-2xx"), "no non-2xx response: {report}");
    assert!(report.contains("requests in"), "{report}");
    assert!(new.is_running());
    assert!(http_get(new.port).starts_with("HTTP/1.1 200 OK\r\n"));
    // And again: the successor listens for its own successor.
    let mut third = successor(HTTP, new.port, &path, &[]);
    assert_eq!(
        new.exits_within(Duration::from_secs(5)),
        Some(0),
        "{}",
        new.stderr()
    );
    assert!(http_get(third.port).starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(third.is_running());
}

#[test]
fn redis_server_restarts_under_redis_benchmark_with_no_error() {
    if skip_without("redis-benchmark") {
        return;
    }
    let (_dir, path) = upgrade_path("upgrade-redis");
    let p = path.to_str().unwrap();
    let mut old = Server::start(
        REDIS,
        &[
            "--port",
            "0",
            "--upgrade-socket",
            p,
            "--drain-timeout",
            "30",
        ],
    );
    let port = old.port.to_string();
    // Keep-alive clients (they stay on the old process until they end)
    // and reconnecting ones (-k 0: each reconnect lands on whichever
    // process accepts, the new one once the old has stopped).
    let bench = |keepalive: &str| {
        Command::new("redis-benchmark")
            .args([
                "-p",
                &port,
                "-c",
                "25",
                "-n",
                "100000000",
                "-k",
                keepalive,
                "-t",
                "set,get",
                "-q",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let benches = [bench("1"), bench("0")];
    std::thread::sleep(Duration::from_secs(2));
    let mut new = successor(REDIS, old.port, &path, &[]);
    std::thread::sleep(Duration::from_secs(4));
    let mut outputs = Vec::new();
    for mut b in benches {
        assert!(
            b.try_wait().unwrap().is_none(),
            "redis-benchmark ran on through the restart"
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(b.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        outputs.push(b.wait_with_output().unwrap());
    }
    for out in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.to_lowercase().contains("error"),
            "redis-benchmark saw no error: {text}"
        );
    }
    // The keep-alive clients are gone: the old process is done.
    assert_eq!(
        old.exits_within(Duration::from_secs(5)),
        Some(0),
        "the old process exits once its clients left; stderr: {}",
        old.stderr()
    );
    let mut c = TcpStream::connect(("127.0.0.1", new.port)).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.write_all(b"PING\r\n").unwrap();
    expect(&mut c, b"+PONG\r\n");
    assert!(new.is_running());
}

/// Writes `msg` and reads its echo.
fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    expect(c, msg);
}

#[test]
fn proxy_restarts_and_long_lived_connections_stay_on_the_old_process() {
    let backend = Server::start(ECHO, &["--port", "0"]);
    let to = format!("127.0.0.1:{}", backend.port);
    let (_dir, path) = upgrade_path("upgrade-proxy");
    let p = path.to_str().unwrap();
    let mut old = Server::start(
        PROXY,
        &[
            "--port",
            "0",
            "--backend",
            &to,
            "--upgrade-socket",
            p,
            "--drain-timeout",
            "30",
        ],
    );
    let mut long: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", old.port)).unwrap();
            c.set_read_timeout(Some(TIMEOUT)).unwrap();
            round_trip(&mut c, b"before\n");
            c
        })
        .collect();
    let new = successor(PROXY, old.port, &path, &["--backend", &to]);
    // New connections are served (by the new process: the old one stopped
    // accepting once the new one said it serves).
    for _ in 0..10 {
        let mut c = TcpStream::connect(("127.0.0.1", new.port)).unwrap();
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        round_trip(&mut c, b"fresh\n");
    }
    // The long-lived ones keep working on the old process.
    std::thread::sleep(Duration::from_millis(300));
    for c in &mut long {
        round_trip(c, b"after the upgrade\n");
    }
    assert!(
        old.is_running(),
        "the old process serves its connections until they end"
    );
    drop(long);
    assert_eq!(
        old.exits_within(Duration::from_secs(5)),
        Some(0),
        "{}",
        old.stderr()
    );
    drop(new);
}

/// The hello frame a successor sends (version 1, kind `H`, its pid).
fn hello() -> Vec<u8> {
    let mut f = b"EVIO\x01H\0\0\0\0\0\x04".to_vec();
    f.extend_from_slice(&std::process::id().to_be_bytes());
    f
}

#[test]
fn bad_handover_input_leaves_the_old_server_serving() {
    let (_dir, path) = upgrade_path("upgrade-bad");
    let p = path.to_str().unwrap();
    let mut old = Server::start(HTTP, &["--port", "0", "--upgrade-socket", p]);
    // Garbage on the upgrade socket.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"EVIO\x09H\0\0\0\0\0\0",
        &[0xff; 4096],
    ] {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let _ = s.write_all(junk);
        // The server hangs up on it, sending no socket.
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty(), "nothing is sent back to garbage: {buf:?}");
    }
    assert!(http_get(old.port).starts_with("HTTP/1.1 200 OK\r\n"));
    // A successor that takes the sockets and dies before it is ready.
    {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(&hello()).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head[..6], b"EVIO\x01S", "the sockets frame");
    }
    assert!(old.is_running());
    assert!(
        http_get(old.port).starts_with("HTTP/1.1 200 OK\r\n"),
        "still accepting after a successor died halfway"
    );
    assert!(
        eventually(TIMEOUT, || old
            .stderr()
            .matches("upgrade failed; still serving")
            .count()
            >= 4),
        "each failure is logged: {}",
        old.stderr()
    );
    // A successor given a socket path nothing listens on fails, clearly.
    let out = Command::new(HTTP)
        .args([
            "--port",
            "0",
            "--upgrade",
            "--upgrade-socket",
            "/nonexistent/evio.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no server to take over at /nonexistent/evio.sock"),
        "{err}"
    );
    // And the old server still upgrades properly after all that.
    let mut new = successor(HTTP, old.port, &path, &[]);
    assert_eq!(old.exits_within(Duration::from_secs(5)), Some(0));
    assert!(http_get(new.port).starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(new.is_running());
}

#[test]
fn two_successors_at_once_leave_one_server() {
    let (_dir, path) = upgrade_path("upgrade-two");
    let p = path.to_str().unwrap();
    let mut old = Server::start(HTTP, &["--port", "0", "--upgrade-socket", p]);
    let port = old.port.to_string();
    let spawn = || {
        Command::new(HTTP)
            .args(["--port", &port, "--upgrade", "--upgrade-socket", p])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut both = [spawn(), spawn()];
    assert_eq!(
        old.exits_within(Duration::from_secs(5)),
        Some(0),
        "{}",
        old.stderr()
    );
    // One serves; the other failed to take over (or took over from the
    // first, which then drained): either way one process is left.
    let deadline = Instant::now() + Duration::from_secs(5);
    let running = loop {
        let running = both
            .iter_mut()
            .map(|c| c.try_wait().unwrap().is_none())
            .filter(|&alive| alive)
            .count();
        if running <= 1 || Instant::now() > deadline {
            break running;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(running, 1, "exactly one successor is left serving");
    assert!(http_get(old.port).starts_with("HTTP/1.1 200 OK\r\n"));
    for c in &mut both {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Reads one `http-server` response (its body ends `Hello World!\r\n`).
fn read_response(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"Hello World!\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "EOF before a whole response: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

const KEEP_ALIVE_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// SIGTERM on an HTTP server (and on the HTTP proxy in front of one): the
/// next response on a keep-alive connection says `Connection: close` and
/// the connection closes after it; a connection between requests is
/// closed after the idle grace; the process exits 0.
#[test]
fn a_drain_closes_http_connections_at_their_next_request() {
    let upstream = Server::start(HTTP, &["--port", "0"]);
    let to = format!("127.0.0.1:{}", upstream.port);
    for (bin, args) in [
        (HTTP, vec!["--port", "0"]),
        (
            env!("CARGO_BIN_EXE_http-proxy"),
            vec!["--port", "0", "--upstream", &to],
        ),
    ] {
        let mut server = Server::start(bin, &args);
        let connect = || {
            let c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            c.set_read_timeout(Some(TIMEOUT)).unwrap();
            c
        };
        let mut busy = connect();
        busy.write_all(KEEP_ALIVE_GET).unwrap();
        let first = read_response(&mut busy);
        assert!(!first.contains("Connection: close"), "{bin}: {first}");
        let mut idle = connect();
        idle.write_all(KEEP_ALIVE_GET).unwrap();
        read_response(&mut idle);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        busy.write_all(KEEP_ALIVE_GET).unwrap();
        let last = read_response(&mut busy);
        assert!(last.starts_with("HTTP/1.1 200 OK\r\n"), "{bin}: {last}");
        assert!(
            last.contains("Connection: close\r\n"),
            "{bin}: the last response says so: {last}"
        );
        assert_eq!(read_to_close(&mut busy), b"", "{bin}: closed after it");
        let start = Instant::now();
        assert_eq!(
            read_to_close(&mut idle),
            b"",
            "{bin}: the idle one is closed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{bin}: after the grace"
        );
        assert_eq!(
            server.exits_within(Duration::from_secs(5)),
            Some(0),
            "{bin}: {}",
            server.stderr()
        );
    }
}

/// A unix socket listener is handed over too; the successor owns its file
/// (removed when it stops), the old process leaves it alone.
#[test]
fn a_unix_listener_is_handed_over_with_its_file() {
    let (dir, path) = upgrade_path("upgrade-unix");
    let unix = dir.path().join("echo.sock");
    let (p, u) = (path.to_str().unwrap(), unix.to_str().unwrap());
    let mut old = Server::start(ECHO, &["--port", "0", "--unix", u, "--upgrade-socket", p]);
    let mut new = successor(ECHO, old.port, &path, &["--unix", u]);
    assert_eq!(
        old.exits_within(Duration::from_secs(5)),
        Some(0),
        "{}",
        old.stderr()
    );
    assert!(
        unix.exists(),
        "the old process left the socket file to the successor"
    );
    let mut c = UnixStream::connect(&unix).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.write_all(b"over unix\n").unwrap();
    let mut got = [0u8; 10];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"over unix\n");
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(new.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(new.exits_within(Duration::from_secs(5)), Some(0));
    assert!(
        !unix.exists(),
        "the successor removes the file when it stops"
    );
}
