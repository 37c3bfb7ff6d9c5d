//! Reliability under faults (issue #7), part one: descriptor exhaustion
//! (with and without reclaiming idle connections) and ten thousand
//! connections at once; half-close, silent and resetting peers, panicking
//! handlers and the bounds are in `faults.rs`. See `docs/reliability.md`
//! for the table of faults, behaviours and tests.
//!
//! Tests that need their own `RLIMIT_NOFILE` run the server in a child
//! process: this test binary re-executes itself with `EVIO_RELIABILITY_CHILD`
//! set, running only the (otherwise ignored) `child_server` test, which
//! serves echo and answers commands on stdin.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::counting::*;
use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, LoadBalance, Options};

// ----- child-process servers ------------------------------------------------------

const CHILD_ENV: &str = "EVIO_RELIABILITY_CHILD";

/// Line echo that marks connections reclaimable only between lines: a
/// connection holding part of a line has a request in progress.
#[derive(Clone, Default)]
struct LineEcho {
    open: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
}

impl EventHandler for LineEcho {
    type Context = Vec<u8>;
    fn on_opened(&mut self, conn: &mut Conn<'_, Vec<u8>>) -> (Options, Action) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.opened.fetch_add(1, Ordering::SeqCst);
        conn.set_reclaimable(true); // waiting for its first request
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, Vec<u8>>, input: &[u8]) -> Action {
        let (held, mut out) = conn.split();
        held.extend_from_slice(input);
        if let Some(end) = held.iter().rposition(|&b| b == b'\n') {
            out.write(&held[..=end]);
            held.drain(..=end);
        }
        let idle = held.is_empty();
        conn.set_reclaimable(idle);
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, Vec<u8>>, _: Option<io::Error>) -> Action {
        self.open.fetch_sub(1, Ordering::SeqCst);
        Action::None
    }
}

/// Serves the line echo with `reclaim_idle` on, under an fd limit.
fn child_serve_reclaiming<P: common::TestPoller>(loops: isize, fd_limit: &str) {
    evio_sys::net::set_fd_limit(fd_limit.parse().unwrap()).unwrap();
    let h = LineEcho::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .load_balance(LoadBalance::RoundRobin)
        .reclaim_idle(true)
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    println!("EVIO_ADDR={}", inet(&server.addrs()[0]));
    serve_commands(&server, &h.open, &h.opened);
}

fn child_serve<P: common::TestPoller>(loops: isize, fd_limit: &str) {
    match fd_limit.strip_prefix('+') {
        // "+N": raise the soft limit to N (the 10,000-connection test).
        Some(n) => {
            let want: u64 = n.parse().unwrap();
            evio_sys::net::raise_fd_limit(want).unwrap();
        }
        // "N": lower it to N (the exhaustion test), before any socket exists.
        None => evio_sys::net::set_fd_limit(fd_limit.parse().unwrap()).unwrap(),
    }
    let h = CountingEcho::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .load_balance(LoadBalance::RoundRobin)
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    println!("EVIO_ADDR={}", inet(&server.addrs()[0]));
    println!("EVIO_FDLIMIT={}", evio_sys::net::raise_fd_limit(0).unwrap());
    serve_commands(&server, &h.open, &h.opened);
}

/// Answers the parent's commands until it says stop (or goes away).
fn serve_commands(
    server: &evio_core::ServerHandle<impl Sized>,
    open: &AtomicUsize,
    opened: &AtomicUsize,
) {
    // Commands from the parent; EOF (the parent died) stops too.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
        let _ = tx.send("stop".into());
    });
    loop {
        // Never outlive a lost parent by long.
        let cmd = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| "stop".into());
        match cmd.as_str() {
            "stats" => println!(
                "EVIO_STATS={} {}",
                open.load(Ordering::SeqCst),
                opened.load(Ordering::SeqCst)
            ),
            _ => {
                let r = server.shutdown();
                println!("EVIO_RESULT={r:?}");
                assert!(r.is_ok(), "{r:?}");
                return;
            }
        }
    }
}

/// The server side of the child-process tests; does nothing unless run by
/// one of them.
#[test]
#[ignore = "child process of the fd-limit tests; they run it themselves"]
fn child_server() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // "poller:loops:limit", or "poller:loops:limit:reclaim"
    let parts: Vec<&str> = mode.split(':').collect();
    let loops: isize = parts[1].parse().unwrap();
    if parts.get(3) == Some(&"reclaim") {
        match parts[0] {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            "epoll" => child_serve_reclaiming::<evio_core::EpollPoller>(loops, parts[2]),
            _ => child_serve_reclaiming::<evio_core::PollPoller>(loops, parts[2]),
        }
        return;
    }
    match parts[0] {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "epoll" => child_serve::<evio_core::EpollPoller>(loops, parts[2]),
        _ => child_serve::<evio_core::PollPoller>(loops, parts[2]),
    }
}

/// A server running in a child process, driven over its stdin/stdout.
struct Child {
    proc: std::process::Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
    /// Descriptors numbered 64 and up when it started: inherited ones
    /// (e.g. a build tool's jobserver pipe), not the server's.
    inherited: Vec<u32>,
}

impl Child {
    fn spawn(mode: &str) -> Child {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_server",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = proc.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed "test child_server ... " first.
                if let Some(at) = line.find("EVIO_") {
                    let _ = tx.send(line[at + 5..].to_string());
                }
            }
        });
        let mut c = Child {
            proc,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
            inherited: Vec::new(),
        };
        c.addr = c.expect("ADDR=").parse().unwrap();
        c.inherited = c.fds().into_iter().filter(|&fd| fd >= 64).collect();
        c
    }

    /// The next reported line starting with `prefix`, without it.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the child never reported {prefix}"));
            if let Some(v) = line.strip_prefix(prefix) {
                return v.to_string();
            }
        }
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.proc.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// (open, opened) connections.
    fn stats(&mut self) -> (usize, usize) {
        self.send("stats");
        let v = self.expect("STATS=");
        let (a, b) = v.split_once(' ').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    }

    /// User plus system CPU time so far, in clock ticks (USER_HZ: 100/s).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.proc.id())).unwrap();
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    fn fds(&self) -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{}/fd", self.proc.id()))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Descriptors the child holds, less the inherited ones.
    fn open_fds(&self) -> usize {
        self.fds()
            .iter()
            .filter(|fd| !self.inherited.contains(fd))
            .count()
    }

    fn alive(&mut self) -> bool {
        self.proc.try_wait().unwrap().is_none()
    }

    /// Stops the server; asserts it shut down cleanly and exited 0.
    fn stop(mut self) {
        self.send("stop");
        assert_eq!(self.expect("RESULT="), "Ok(())");
        let status = self.proc.wait().unwrap();
        assert!(status.success(), "child exited with {status}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}

// ----- descriptor exhaustion ------------------------------------------------------

/// `RLIMIT_NOFILE` = 64 while 200 clients connect and hold: the server
/// uses every descriptor it may, then backs off (accept fails with EMFILE:
/// listeners leave the poller for 50 ms) instead of crashing or spinning;
/// the clients it did accept are served; once the flood closes, new
/// clients are served.
fn fd_exhaustion(mode: &str) {
    let mut child = Child::spawn(&format!("{mode}:64"));
    let addr = child.addr;
    let mut clients: Vec<TcpStream> = (0..200)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    // The first clients were accepted and are served.
    echo_once(&mut clients[0], b"first").unwrap();
    // The server fills its descriptor table.
    assert!(
        eventually(Duration::from_secs(5), || child.open_fds() >= 60),
        "the server holds only {} descriptors",
        child.open_fds()
    );
    std::thread::sleep(Duration::from_millis(200));
    // Held flood: no spin. CPU time over one second, in 1/100 s.
    let t0 = child.cpu_ticks();
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = child.cpu_ticks() - t0;
    let pct = used as f64 * 100.0 / (wall.elapsed().as_secs_f64() * 100.0);
    eprintln!(
        "{mode}: {} fds held, CPU {pct:.0}% of a core while the flood is held",
        child.open_fds()
    );
    assert!(pct < 20.0, "the server spins: {pct:.0}% CPU");
    assert!(child.open_fds() <= 64);
    assert!(child.alive(), "the server died");
    // Accepted clients are still served during the flood.
    echo_once(&mut clients[1], b"still served").unwrap();
    drop(clients);
    // The backlog drains (those connections are accepted, see EOF and
    // close) and new clients are served.
    assert!(
        served_within(addr, Duration::from_secs(10)),
        "no client served after the flood"
    );
    let mut again: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for (i, c) in again.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        echo_once(c, format!("client {i}").as_bytes()).unwrap();
    }
    drop(again);
    assert!(
        eventually(Duration::from_secs(10), || child.stats().0 == 0),
        "connections left open: {:?}",
        child.stats()
    );
    let (_, opened) = child.stats();
    assert!(opened >= 21, "opened {opened}");
    child.stop();
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn fd_exhaustion_epoll_one_loop() {
    fd_exhaustion("epoll:1");
}

#[test]
fn fd_exhaustion_poll_two_loops() {
    fd_exhaustion("poll:2");
}

/// Out of descriptors with `reclaim_idle` on: silent connections (between
/// requests) are closed, longest idle first, so a new client is served at
/// once instead of waiting; a connection holding part of a request is
/// never reclaimed and loses nothing.
fn reclaim_idle_serves_new_clients(mode: &str) {
    let mut child = Child::spawn(&format!("{mode}:64:reclaim"));
    let addr = child.addr;
    let connect = || {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    };
    // Ten clients in the middle of a request.
    let mut busy: Vec<TcpStream> = (0..10).map(|_| connect()).collect();
    for (i, c) in busy.iter_mut().enumerate() {
        c.write_all(format!("part {i}").as_bytes()).unwrap();
    }
    soon!(child.stats().0 == 10);
    // Then enough silent ones to use up every descriptor, and more.
    let silent: Vec<TcpStream> = (0..70).map(|_| connect()).collect();
    assert!(
        eventually(Duration::from_secs(5), || child.open_fds() >= 60),
        "the server holds only {} descriptors",
        child.open_fds()
    );
    // A new client is served promptly (not after the 50 ms back-off loop
    // waits for someone to leave: nobody leaves here).
    let mut fresh = connect();
    let t = Instant::now();
    echo_line(&mut fresh, b"hello\n").unwrap();
    eprintln!("{mode}: new client served in {:?}", t.elapsed());
    // Some silent clients were closed to make room...
    let reclaimed = silent
        .iter()
        .filter(|c| {
            let mut c = *c;
            c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            matches!(c.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(reclaimed >= 1, "no silent connection was reclaimed");
    // ...and every busy one finishes its request.
    for (i, c) in busy.iter_mut().enumerate() {
        c.write_all(b"\n").unwrap();
        let mut want = format!("part {i}\n").into_bytes();
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want);
        want.clear();
    }
    assert!(child.alive());
    child.stop();
}

fn echo_line(c: &mut TcpStream, line: &[u8]) -> io::Result<()> {
    c.write_all(line)?;
    let mut got = vec![0u8; line.len()];
    c.read_exact(&mut got)?;
    assert_eq!(got, line);
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn reclaim_idle_epoll_one_loop() {
    reclaim_idle_serves_new_clients("epoll:1");
}

#[test]
fn reclaim_idle_poll_two_loops() {
    reclaim_idle_serves_new_clients("poll:2");
}

// ----- 10,000 connections ----------------------------------------------------------

/// 10,000 concurrent connections, each doing a round trip while all are
/// open. The server runs in a child so each process needs ~10,000
/// descriptors (the soft limit is raised, up to the hard limit).
#[test]
fn ten_thousand_concurrent_connections() {
    const N: usize = 10_000;
    let need = N as u64 + 200;
    let have = evio_sys::net::raise_fd_limit(need).unwrap();
    if have < need {
        eprintln!("skipped: the hard RLIMIT_NOFILE ({have}) is below {need}");
        return;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let mode = format!("epoll:2:+{need}");
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let mode = format!("poll:2:+{need}");
    let mut child = Child::spawn(&mode);
    let child_limit: u64 = child.expect("FDLIMIT=").parse().unwrap();
    assert!(child_limit >= need, "child fd limit {child_limit}");
    let addr = child.addr;
    let t0 = Instant::now();
    let mut clients: Vec<TcpStream> = (0..N)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let connected = t0.elapsed();
    // Every connection sends, then every connection reads its own reply.
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("{i:08}").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 8];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert_eq!(&got, format!("{i:08}").as_bytes());
    }
    eprintln!(
        "{N} connections: connected in {connected:?}, all round trips done at {:?}",
        t0.elapsed()
    );
    assert_eq!(child.stats(), (N, N));
    drop(clients);
    assert!(
        eventually(Duration::from_secs(10), || child.stats().0 == 0),
        "open after close: {:?}",
        child.stats()
    );
    child.stop();
}
