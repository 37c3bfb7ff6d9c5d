//! The real binaries: flags, the startup line, signals and exit statuses.

mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn signal(server: &Bin, sig: Signal) {
    // Our own child, not reaped yet: the pid is still its.
    kill(Pid::from_raw(server.child.id() as i32), sig).unwrap();
}

fn wait_exit(server: &mut Bin) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn temp_socket(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("evio-bin-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.sock"))
}

fn tcp(port: u16) -> TcpStream {
    connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn redis_server_flags_and_sigterm() {
    let path = temp_socket("redis");
    let mut server = spawn(
        env!("CARGO_BIN_EXE_redis-server"),
        &[
            "--port",
            "0",
            "--loops",
            "2",
            "--balance",
            "round-robin",
            "--unix",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        server.line.starts_with("redis server started on port "),
        "{}",
        server.line
    );
    assert!(
        server
            .line
            .trim_end()
            .ends_with(&format!("and unix socket {}", path.display())),
        "{}",
        server.line
    );
    let mut t = tcp(server.port);
    t.write_all(b"SET k from-tcp\r\n").unwrap();
    expect(&mut t, b"+OK\r\n");
    let mut u = UnixStream::connect(&path).unwrap();
    u.set_read_timeout(Some(TIMEOUT)).unwrap();
    u.write_all(b"GET k\r\n").unwrap();
    expect(&mut u, b"$8\r\nfrom-tcp\r\n");
    signal(&server, Signal::SIGTERM);
    let status = wait_exit(&mut server);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!path.exists(), "the unix socket file is removed");
    assert_eq!(read_to_close(&mut t), b"", "connections are closed");
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[test]
fn redis_server_shutdown_command_exits_0() {
    let mut server = spawn(env!("CARGO_BIN_EXE_redis-server"), &["--port", "0"]);
    let mut t = tcp(server.port);
    t.write_all(b"PING\r\nSHUTDOWN\r\n").unwrap();
    expect(&mut t, b"+PONG\r\n");
    assert_eq!(wait_exit(&mut server).code(), Some(0));
}

#[test]
fn echo_server_udp_and_sigint() {
    let mut server = spawn(
        env!("CARGO_BIN_EXE_echo-server"),
        &["--udp", "--port", "0", "--reuseport"],
    );
    assert!(server.line.contains("(udp)"), "{}", server.line);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.send_to(b"ping", ("127.0.0.1", server.port)).unwrap();
    let mut buf = [0; 16];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    signal(&server, Signal::SIGINT);
    assert_eq!(wait_exit(&mut server).code(), Some(0));
}

#[test]
fn http_server_serves_and_exits_0() {
    let mut server = spawn(
        env!("CARGO_BIN_EXE_http-server"),
        &["--port", "0", "--loops", "-1"],
    );
    assert!(
        server.line.starts_with("http server started on port "),
        "{}",
        server.line
    );
    let mut t = tcp(server.port);
    t.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    t.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200 OK\r\n") && resp.ends_with("\r\n\r\nHello World!\r\n"),
        "{resp}"
    );
    signal(&server, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut server).code(), Some(0));
}

/// Threads of process `pid` (Linux `/proc/PID/task`).
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn one_loop_binaries_are_one_thread_and_still_take_signals() {
    // With a second thread glibc makes every system call dearer
    // (docs/performance.md): the loop runs on the main thread and watches
    // the signal flags from its tick. Each binary with its own tick.
    for (bin, extra) in [
        (env!("CARGO_BIN_EXE_echo-server"), &[][..]),
        (env!("CARGO_BIN_EXE_http-server"), &[][..]),
        (env!("CARGO_BIN_EXE_redis-server"), &[][..]),
        (
            env!("CARGO_BIN_EXE_proxy"),
            &["--backend", "127.0.0.1:9"][..],
        ),
        (
            env!("CARGO_BIN_EXE_http-proxy"),
            &["--upstream", "127.0.0.1:9"][..],
        ),
    ] {
        let mut args = vec!["--port", "0"];
        args.extend_from_slice(extra);
        let mut server = spawn(bin, &args);
        let pid = server.child.id();
        let _client = tcp(server.port);
        assert_eq!(threads_of(pid), 1, "{bin}: {}", server.line);
        signal(&server, Signal::SIGQUIT);
        assert_eq!(wait_exit(&mut server).code(), Some(0), "{bin}");
    }
    // Two loops: loop 1 has a thread of its own, and no more.
    let mut server = spawn(
        env!("CARGO_BIN_EXE_echo-server"),
        &["--port", "0", "--loops", "2"],
    );
    assert_eq!(threads_of(server.child.id()), 2);
    signal(&server, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut server).code(), Some(0));
}

/// Listening TCP sockets on `port` (Linux `/proc/net/tcp{,6}`).
fn listeners(port: u16) -> usize {
    let port = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|s| s.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3
                && format!("{} ", &cols[1][cols[1].len() - 5..]) == port
                && cols[3] == "0A"
        })
        .count()
}

/// `--per-loop-listeners`: every loop accepts on its own `SO_REUSEPORT`
/// listener; every connection is served, and SIGTERM still exits 0.
#[test]
fn per_loop_listeners_serve() {
    for bin in [
        env!("CARGO_BIN_EXE_echo-server"),
        env!("CARGO_BIN_EXE_redis-server"),
    ] {
        let mut server = spawn(
            bin,
            &["--port", "0", "--loops", "3", "--per-loop-listeners"],
        );
        assert_eq!(listeners(server.port), 3, "{bin}: one listener per loop");
        let conns: Vec<TcpStream> = (0..30).map(|_| tcp(server.port)).collect();
        for mut c in conns {
            c.write_all(b"PING\r\n").unwrap();
            let echo = bin.ends_with("echo-server");
            expect(&mut c, if echo { b"PING\r\n" } else { b"+PONG\r\n" });
        }
        signal(&server, Signal::SIGTERM);
        assert_eq!(wait_exit(&mut server).code(), Some(0), "{bin}");
    }
}

#[test]
fn bad_flags_exit_2_with_usage() {
    let cases: &[(&str, &[&str])] = &[
        (env!("CARGO_BIN_EXE_redis-server"), &["--nope"]),
        (env!("CARGO_BIN_EXE_redis-server"), &["--port", "99999"]),
        (env!("CARGO_BIN_EXE_http-server"), &["--udp"]),
        (env!("CARGO_BIN_EXE_http-server"), &["--balance", "fair"]),
        (env!("CARGO_BIN_EXE_echo-server"), &["--loops"]),
        (env!("CARGO_BIN_EXE_echo-server"), &["--idle-timeout", "-1"]),
        (
            env!("CARGO_BIN_EXE_echo-server"),
            &["--header-timeout", "1"],
        ),
        (
            env!("CARGO_BIN_EXE_redis-server"),
            &["--connect-timeout", "1"],
        ),
        (
            env!("CARGO_BIN_EXE_http-server"),
            &["--header-timeout", "soon"],
        ),
    ];
    for (bin, args) in cases {
        let out = Command::new(bin)
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage: "), "{bin} {args:?}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--udp"));
    assert!(help.contains("--idle-timeout SECS") && help.contains("(default 60)"));
    assert!(help.contains("--per-loop-listeners"));
    let out = Command::new(env!("CARGO_BIN_EXE_http-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--header-timeout SECS"), "{help}");
    assert!(help.contains("(default 75)") && help.contains("(default 60)"));
}

#[test]
fn a_port_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("[::]:0")
        .or_else(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_redis-server"))
        .args(["--port", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("started"));
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(0, |kb| kb << 10)
}

/// Watches `pid`'s RSS for about a second; returns the largest seen.
fn peak_rss(pid: u32) -> usize {
    (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            rss_of(pid)
        })
        .max()
        .unwrap_or(0)
}

/// A client pipelines requests whose replies are far larger than they are
/// and reads nothing: the server stops executing at its output high-water
/// mark (1 MiB), so its memory stays flat instead of growing by all the
/// replies (96 MiB here; Redis grows by all of them). Once the client reads,
/// every reply arrives, in order.
#[test]
fn redis_server_output_stays_bounded_for_a_client_that_does_not_read() {
    let server = spawn(env!("CARGO_BIN_EXE_redis-server"), &["--port", "0"]);
    let pid = server.child.id();
    let mut s = tcp(server.port);
    let value = vec![b'v'; 16 << 10];
    s.write_all(&resp_command(&[b"SET", b"k", &value])).unwrap();
    expect(&mut s, b"+OK\r\n");
    let mut one = format!("${}\r\n", value.len()).into_bytes();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\n");
    let n = 6000;
    let base = rss_of(pid);
    assert!(base > 0, "no /proc/{pid}/status");
    // 6,000 pipelined GETs (42 KB) and one MGET of 6,000 keys: 96 MiB of
    // replies each.
    let mget = format!("MGET{}\r\n", " k".repeat(n));
    for (what, input) in [("GET", "GET k\r\n".repeat(n)), ("MGET", mget)] {
        s.write_all(input.as_bytes()).unwrap();
        let grown = peak_rss(pid).saturating_sub(base);
        assert!(
            grown < 24 << 20,
            "{what}: server RSS grew by {} MiB",
            grown >> 20
        );
        let mut r = BufReader::with_capacity(1 << 20, s.try_clone().unwrap());
        if what == "MGET" {
            expect(&mut r, format!("*{n}\r\n").as_bytes());
        }
        for i in 0..n {
            let got = read_n(&mut r, one.len()).unwrap();
            assert!(got == one, "{what}: reply {i} differs");
        }
    }
    expect_pong(&mut s);
}

/// With the backend down, every client connection is a failed dial. The
/// proxy prints the first, then at most one line a second plus a count of
/// the ones it did not print, and the counts add up (2,000 failures here;
/// it used to print 2,000 lines).
#[test]
fn proxy_rate_limits_dial_failure_warnings() {
    // A port nobody listens on.
    let backend = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxy"));
    cmd.args(["--port", "0", "--backend", &backend.to_string()]);
    let (mut child, port, rx) = spawn_logging(cmd);
    let n = 2000;
    for _ in 0..n {
        let mut c = tcp(port);
        // The proxy closes each client once its dial fails.
        let _ = c.read(&mut [0; 1]);
    }
    let mut lines = Vec::new();
    let (mut printed, mut suppressed) = (0, 0);
    let deadline = Instant::now() + TIMEOUT;
    while printed + suppressed < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("{printed} + {suppressed} of {n} failures reported: {lines:#?}");
        };
        // `... WARN proxy: connecting to ADDR: ERROR suppressed=N`, or a
        // burst's end: `... WARN proxy: N similar warnings suppressed suppressed=N`.
        let count = line
            .split("suppressed=")
            .nth(1)
            .and_then(|c| c.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(line.contains(" WARN "), "{line:?}");
        if line.contains("connecting to") || line.contains("dialing") {
            printed += 1;
        } else {
            assert!(line.contains("similar warnings suppressed"), "{line:?}");
        }
        suppressed += count;
        lines.push(line);
    }
    assert_eq!(printed + suppressed, n, "{lines:#?}");
    assert!(suppressed > 0 && lines.len() <= 20, "{lines:#?}");
    let _ = child.kill();
    let _ = child.wait();
}
