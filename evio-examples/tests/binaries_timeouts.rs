//! The real binaries at their limits: idle and header timeouts, running
//! out of file descriptors (under `prlimit`), the proxy's stalled pairs and
//! half-closes (`nc -N` in front of a real `redis-server`).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const ECHO: &str = env!("CARGO_BIN_EXE_echo-server");
const HTTP: &str = env!("CARGO_BIN_EXE_http-server");
const REDIS: &str = env!("CARGO_BIN_EXE_redis-server");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// Connects and waits for the server to close; returns how long that took.
fn closed_after(bin: &Bin, send: &[u8]) -> Duration {
    let mut s = connect(bin.addr());
    let t0 = Instant::now();
    s.write_all(send).unwrap();
    let mut buf = [0; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("waiting for the close: {e}"),
        }
    }
}

// ----- timeouts --------------------------------------------------------------------

/// With `--idle-timeout 1` (`--header-timeout 1` for HTTP), a connection
/// that sends nothing is closed after about a second, by every binary.
#[test]
fn silent_connections_are_closed_after_the_timeout() {
    let (backend, _held) = silent_backend();
    let backend = backend.to_string();
    let cases: [(&str, &[&str]); 5] = [
        (ECHO, &["--idle-timeout", "1"]),
        (REDIS, &["--idle-timeout", "1"]),
        (HTTP, &["--header-timeout", "1"]),
        (HTTP, &["--idle-timeout", "1", "--header-timeout", "0"]),
        (PROXY, &["--idle-timeout", "1", "--backend", &backend]),
    ];
    for (bin, flags) in cases {
        let mut args = vec!["--port", "0"];
        args.extend_from_slice(flags);
        let server = spawn(bin, &args);
        let after = closed_after(&server, b"");
        assert!(
            after >= Duration::from_millis(900),
            "{bin} {flags:?}: closed after {after:?}"
        );
        eprintln!("{bin} {flags:?}: closed after {after:?}");
    }
}

/// A request head that never completes is closed a header timeout after
/// its first byte, although bytes keep coming (the idle timeout alone
/// would never close it).
#[test]
fn http_binary_header_timeout_closes_a_trickling_head() {
    let server = spawn(HTTP, &["--port", "0", "--header-timeout", "1"]);
    let s = connect(server.addr());
    let (done, closed) = std::sync::mpsc::channel();
    let mut r = s.try_clone().unwrap();
    thread::spawn(move || {
        let _ = r.read_to_end(&mut Vec::new());
        let _ = done.send(());
    });
    let t0 = Instant::now();
    (&s).write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    // A byte every 100 ms: never idle, never complete.
    while closed.try_recv().is_err() && (&s).write_all(b"x").is_ok() {
        thread::sleep(Duration::from_millis(100));
        assert!(t0.elapsed() < TIMEOUT, "never closed");
    }
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

// ----- out of file descriptors ---------------------------------------------------

/// Starts `bin` with 64 descriptors at most (soft and hard: the binaries
/// raise the soft limit to the hard one).
fn with_64_fds(bin: &str, args: &[&str]) -> Option<Bin> {
    if !have("prlimit") {
        eprintln!("prlimit not found: skipped");
        return None;
    }
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--", bin, "--port", "0"])
        .args(args);
    Some(spawn_bin(cmd))
}

/// 70 connections that send nothing: more than the descriptors left, so
/// `accept` fails with EMFILE and the server closes its longest-idle
/// connections marked reclaimable. Returns them, still held by us.
fn flood(bin: &Bin) -> Vec<TcpStream> {
    let flood: Vec<TcpStream> = (0..70).map(|_| connect(bin.addr())).collect();
    // Some were closed to make room for the others.
    wait_for("idle connections to be reclaimed", || {
        flood.iter().any(|s| {
            s.set_nonblocking(true).unwrap();
            let closed = matches!((&*s).read(&mut [0; 1]), Ok(0));
            s.set_nonblocking(false).unwrap();
            closed
        })
    });
    flood
}

/// Runs `cmd` and returns its stdout and how long it took.
fn run_client(mut cmd: Command) -> (String, Duration) {
    let t0 = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("client runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        t0.elapsed(),
    )
}

#[test]
fn http_binary_reclaims_idle_connections_when_out_of_fds() {
    let Some(server) = with_64_fds(HTTP, &[]) else {
        return;
    };
    // Half a request before the flood: held, so never reclaimed.
    let mut busy = connect(server.addr());
    busy.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let _flood = flood(&server);
    if have("curl") {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}/", server.port));
        let (code, took) = run_client(curl);
        assert_eq!(code, "200", "curl after the flood ({took:?})");
        eprintln!("curl served {took:?} after the flood");
    } else {
        eprintln!("curl not found: a socket instead");
        let mut s = connect(server.addr());
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert!(read_to_close(&mut s).starts_with(b"HTTP/1.1 200 OK"));
    }
    busy.write_all(b"Connection: close\r\n\r\n").unwrap();
    let reply = read_to_close(&mut busy);
    assert!(
        reply.starts_with(b"HTTP/1.1 200 OK") && reply.ends_with(b"Hello World!\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn redis_binary_reclaims_idle_connections_when_out_of_fds() {
    let Some(server) = with_64_fds(REDIS, &[]) else {
        return;
    };
    let mut busy = connect(server.addr());
    busy.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel")
        .unwrap();
    let _flood = flood(&server);
    if have("redis-cli") {
        let mut cli = Command::new("timeout");
        cli.args(["5", "redis-cli", "-p", &server.port.to_string(), "PING"]);
        let (reply, took) = run_client(cli);
        assert_eq!(reply.trim(), "PONG", "redis-cli after the flood ({took:?})");
        eprintln!("redis-cli served {took:?} after the flood");
    } else {
        eprintln!("redis-cli not found: a socket instead");
        let mut s = connect(server.addr());
        expect_pong(&mut s);
    }
    busy.write_all(b"lo\r\nGET k\r\n").unwrap();
    expect(&mut busy, b"+OK\r\n$5\r\nhello\r\n");
}

#[test]
fn echo_binary_reclaims_idle_connections_when_out_of_fds() {
    let Some(server) = with_64_fds(ECHO, &[]) else {
        return;
    };
    let _flood = flood(&server);
    let t0 = Instant::now();
    let mut s = connect(server.addr());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hello").unwrap();
    expect(&mut s, b"hello");
    eprintln!("echo served {:?} after the flood", t0.elapsed());
}

// ----- the proxy ---------------------------------------------------------------

/// The backend accepts but never reads; the client sends up to 8 MiB (the
/// proxy queues up to its 1 MiB mark for the backend and stops reading the
/// client; the rest waits in kernel buffers, or stalls the client's
/// writes) and closes. Nothing will ever move again on that pair. With
/// the idle timeout (1 s here) both descriptors and the queued bytes are
/// released; with it off, they leak (checked first, as the control).
#[test]
fn proxy_releases_a_stalled_pair() {
    let (backend, held) = silent_backend();
    let backend = backend.to_string();
    for idle in ["0", "1"] {
        let proxy = spawn(
            PROXY,
            &["--port", "0", "--idle-timeout", idle, "--backend", &backend],
        );
        let pid = proxy.pid();
        let base = open_fds(pid);
        let c = connect(proxy.addr());
        c.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        wait_for("the pair to open", || open_fds(pid) == base + 2);
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < 8 << 20 {
            match (&c).write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break, // the proxy stopped reading us
            }
        }
        drop(c);
        if idle == "0" {
            thread::sleep(Duration::from_millis(1500));
            assert_eq!(open_fds(pid), base + 2, "the control: the pair leaks");
        } else {
            wait_for("both descriptors to be released", || open_fds(pid) == base);
        }
        eprintln!("idle timeout {idle}: {sent} bytes sent");
    }
    drop(held);
}

/// `printf 'PING\r\n' | nc -N proxy` with a real redis-server behind the
/// proxy: nc sends, shuts down its write side, and waits for the reply. The
/// FIN is forwarded to redis-server after the request, its `+PONG` comes
/// back, and so does its close (as HAProxy in TCP mode does).
#[test]
fn proxy_forwards_a_half_close_to_a_real_redis_server() {
    if !nc_has_n() {
        eprintln!("netcat-openbsd (nc -N) not found: skipped");
        return;
    }
    let Some(redis) = real_redis() else {
        return;
    };
    let proxy = spawn(
        PROXY,
        &["--port", "0", "--backend", &redis.addr.to_string()],
    );
    for _ in 0..3 {
        let mut nc = Command::new("timeout")
            .args(["10", "nc", "-N", "127.0.0.1", &proxy.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        nc.stdin.take().unwrap().write_all(b"PING\r\n").unwrap();
        let out = nc.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "+PONG\r\n");
        assert!(out.status.success(), "{:?}", out.status);
    }
    // The same with a raw socket: the reply, then EOF.
    let mut s = connect(proxy.addr());
    s.write_all(b"SET k v\r\nGET k\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+OK\r\n$1\r\nv\r\n");
    drop(redis);
}

/// netcat-openbsd's `-N` (shut down the socket at EOF on stdin).
fn nc_has_n() -> bool {
    Command::new("nc")
        .arg("-h")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).contains("-N"))
}
