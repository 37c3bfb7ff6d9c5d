//! What an operator meets first, on every binary: `--version`, `--help`,
//! a bad flag (exit 2, one line naming it), and logs: the core's warnings
//! reach stderr at the default level (out of file descriptors under
//! `prlimit`), `--log-level` silences them, `RUST_LOG` wins over it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;

const BINS: [(&str, &str); 4] = [
    (env!("CARGO_BIN_EXE_echo-server"), "echo-server"),
    (env!("CARGO_BIN_EXE_http-server"), "http-server"),
    (env!("CARGO_BIN_EXE_redis-server"), "redis-server"),
    (env!("CARGO_BIN_EXE_proxy"), "proxy"),
];

fn run(bin: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run_for(cmd, TIMEOUT, b"")
}

#[test]
fn version_and_help_exit_zero_on_stdout() {
    for (bin, name) in BINS {
        for flag in ["--version", "-V"] {
            let (status, out, err) = run(bin, &[flag]);
            assert_eq!(status, Some(0), "{name} {flag}: {err}");
            assert_eq!(out, format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
        }
        let (status, out, err) = run(bin, &["--help"]);
        assert_eq!(status, Some(0), "{name} --help: {err}");
        for want in ["usage:", "--port", "--log-level", "--version", "RUST_LOG"] {
            assert!(out.contains(want), "{name} --help lacks {want}: {out}");
        }
    }
}

#[test]
fn a_bad_flag_or_value_is_named_and_exits_2() {
    for (bin, name) in BINS {
        for args in [
            &["--no-such-flag"][..],
            &["--log-level", "loud"],
            &["--port", "seventy"],
            &["--log-level"],
        ] {
            let (status, out, err) = run(bin, args);
            assert_eq!(status, Some(2), "{name} {args:?}: {err}");
            assert!(out.is_empty(), "{name} {args:?}: nothing on stdout: {out}");
            let first = err.lines().next().unwrap_or("");
            assert!(
                first.starts_with(&format!("{name}: ")) && first.contains(args[0]),
                "{name} {args:?}: the first line names the flag: {err}"
            );
        }
    }
}

/// A server started under `prlimit --nofile=40`, its stderr lines sent to
/// the receiver (the startup line first).
struct Limited {
    child: Child,
    port: u16,
    lines: Receiver<String>,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn limited(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Option<Limited> {
    if !have("prlimit") {
        eprintln!("prlimit not found: skipped");
        return None;
    }
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=40:40", "--", bin, "--port", "0"])
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    let (child, port, lines) = spawn_logging(cmd);
    Some(Limited { child, port, lines })
}

/// Opens 60 idle connections (more than 40 descriptors allow), then
/// collects what the server logs for `wait`.
fn flood_and_collect(server: &Limited, wait: Duration) -> (Vec<TcpStream>, Vec<String>) {
    let conns: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.port)).ok())
        .collect();
    let mut got = Vec::new();
    let end = Instant::now() + wait;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match server.lines.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    (conns, got)
}

fn out_of_fds_warning(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains(" WARN ") && (l.contains("file descriptors") || l.contains("accept")))
}

#[test]
fn running_out_of_descriptors_warns_at_the_default_level() {
    let Some(server) = limited(BINS[0].0, &[], &[]) else {
        return;
    };
    let (_conns, lines) = flood_and_collect(&server, Duration::from_secs(3));
    assert!(out_of_fds_warning(&lines), "no WARN on stderr: {lines:#?}");
    // One line each, with a timestamp first (RFC 3339, UTC).
    let warn = lines.iter().find(|l| l.contains(" WARN ")).unwrap();
    assert!(
        warn.starts_with("20") && warn.split_whitespace().next().unwrap().ends_with('Z'),
        "{warn}"
    );
}

#[test]
fn log_level_error_silences_it_and_rust_log_wins() {
    let Some(quiet) = limited(BINS[0].0, &["--log-level", "error"], &[]) else {
        return;
    };
    let (_conns, lines) = flood_and_collect(&quiet, Duration::from_secs(2));
    assert!(!out_of_fds_warning(&lines), "--log-level error: {lines:#?}");
    drop(quiet);
    let loud = limited(
        BINS[0].0,
        &["--log-level", "error"],
        &[("RUST_LOG", "warn")],
    )
    .unwrap();
    let (_conns, lines) = flood_and_collect(&loud, Duration::from_secs(3));
    assert!(out_of_fds_warning(&lines), "RUST_LOG=warn wins: {lines:#?}");
}

/// The sum over loops of the samples of `name` in a Prometheus text body.
fn sum_of(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{loop=\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_port_serves_prometheus_counters() {
    use std::io::Write;
    let server = spawn(
        BINS[0].0,
        &["--port", "0", "--metrics-port", "0", "--loops", "2"],
    );
    let metrics_port = server.metrics_port();
    let mut conns = Vec::new();
    for i in 0..10u8 {
        let mut c = connect(server.addr());
        c.write_all(&[b'a' + i; 100]).unwrap();
        expect(&mut c, &[b'a' + i; 100]);
        conns.push(c);
    }
    let mut body = String::new();
    wait_for("the counters to be published", || {
        body = get(metrics_port, "/metrics");
        sum_of(&body, "evio_connections_accepted_total") >= 10
            && sum_of(&body, "evio_bytes_read_total") >= 1000
    });
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    for name in [
        "evio_connections_open",
        "evio_connections_closed_total",
        "evio_bytes_written_total",
        "evio_wakes_total",
        "evio_loop_iterations_total",
        "evio_tls_handshakes_total",
    ] {
        assert!(body.contains(&format!("# TYPE {name} ")), "{name}: {body}");
        assert!(
            body.contains(&format!("{name}{{loop=\"1\"}} ")),
            "{name}: {body}"
        );
    }
    assert_eq!(sum_of(&body, "evio_connections_open"), 10, "{body}");
    assert!(sum_of(&body, "evio_bytes_written_total") >= 1000, "{body}");
    let missing = get(metrics_port, "/nothing");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

/// `systemd-socket-activate -l 127.0.0.1:PORT BIN`: the binary serves the
/// passed socket (its startup line names that port) instead of binding its
/// default one; the first connection is what makes systemd start it.
#[test]
fn serves_a_socket_passed_by_systemd_socket_activation() {
    use std::io::{Read, Write};
    if skip_without("systemd-socket-activate") {
        return;
    }
    for (bin, name) in [BINS[1], BINS[0]] {
        let port = free_port();
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.args(["-l", &format!("127.0.0.1:{port}"), bin])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let guard = Limited { child, port, lines };
        wait_port(port);
        let mut c = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        if name == "http-server" {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{name}: {reply}");
        } else {
            c.write_all(b"passed socket\n").unwrap();
            expect(&mut c, b"passed socket\n");
        }
        let started = guard
            .lines
            .iter()
            .find(|l| l.contains("server started"))
            .expect("a startup line");
        assert!(
            started.contains(&format!("on port {port}")),
            "{name} serves the passed socket: {started}"
        );
    }
}

/// Waits for `child` to exit, at most `limit`; its status code.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("still running after {limit:?}");
}

/// A client that sends 8 MiB and never reads: the echo's output stays
/// queued, so a drain can only end at its deadline.
fn stuck_client(port: u16) -> TcpStream {
    use std::io::Write;
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..128 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    c
}

#[test]
fn sigterm_drains_until_its_deadline_and_sigquit_stops_at_once() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    // SIGTERM with a stuck client: the drain ends at --drain-timeout, exit 0.
    let mut server = spawn(BINS[0].0, &["--port", "0", "--drain-timeout", "1"]);
    let _stuck = stuck_client(server.port);
    let mut idle = connect(server.addr());
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGTERM).unwrap();
    // An idle connection is closed at once by the drain (EOF, not a reset).
    assert_eq!(read_to_close(&mut idle), b"");
    assert_eq!(exit_within(&mut server.child, TIMEOUT), Some(0));
    // SIGQUIT with a stuck client and a long drain deadline: at once.
    let mut server = spawn(BINS[0].0, &["--port", "0", "--drain-timeout", "600"]);
    let _stuck = stuck_client(server.port);
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGQUIT).unwrap();
    assert_eq!(exit_within(&mut server.child, TIMEOUT), Some(0));
    // And SIGQUIT during a long drain cuts it short.
    let mut server = spawn(BINS[0].0, &["--port", "0", "--drain-timeout", "600"]);
    let _stuck = stuck_client(server.port);
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGQUIT).unwrap();
    assert_eq!(exit_within(&mut server.child, TIMEOUT), Some(0));
}
