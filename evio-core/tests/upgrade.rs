//! The handover of listening sockets to a successor (`evio_core::upgrade`,
//! `Builder::inherit`) and the drain that follows (`EventHandler::on_drain`,
//! `Conn::is_draining`), in one process, on every poller: no connect is
//! refused across the handover, a connection kept by `on_drain` is served
//! to its boundary, the default closes after the output is written, and a
//! connection opening during the drain is told too.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use evio_core::upgrade::{Successor, UpgradeSocket};
use evio_core::{Action, Builder, Conn, EventHandler, ServerHandle};

/// Answers each line with `tag` and the line. With `keep`, `on_drain`
/// keeps the connection and it closes after the next whole line.
#[derive(Clone)]
struct Lines {
    tag: &'static str,
    keep: bool,
    drains: Arc<AtomicUsize>,
}

impl Lines {
    fn new(tag: &'static str, keep: bool) -> Lines {
        Lines {
            tag,
            keep,
            drains: Arc::default(),
        }
    }
}

impl EventHandler for Lines {
    type Context = ();

    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(self.tag.as_bytes());
        conn.write(input);
        if conn.is_draining() && input.ends_with(b"\n") {
            return Action::Close;
        }
        Action::None
    }

    fn on_drain(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        self.drains.fetch_add(1, Ordering::SeqCst);
        if self.keep {
            Action::None
        } else {
            Action::Close
        }
    }
}

fn client(addr: std::net::SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    c
}

/// Writes `line` and reads the answers up to the newline.
fn ask(c: &mut TcpStream, line: &str) -> String {
    c.write_all(line.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0; 64];
    while !out.ends_with(b"\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

fn start<P: TestPoller>(h: Lines, b: Builder) -> ServerHandle<()> {
    b.poller(|_| P::make())
        .start(h, &["tcp://127.0.0.1:0"])
        .unwrap()
}

/// A handover from `old` to a new server running `h`; returns it.
fn take_over<P: TestPoller>(
    old: &ServerHandle<()>,
    h: Lines,
    sock: &std::path::Path,
    addr: &str,
) -> ServerHandle<()> {
    let upgrades = UpgradeSocket::bind(sock).unwrap();
    let control = old.control().clone();
    let serving = thread::spawn(move || upgrades.serve(&control, Duration::from_secs(10)));
    let mut s = Successor::connect(sock).unwrap();
    let sockets = s.take_sockets();
    assert_eq!(sockets.len(), 1);
    let new = Builder::new()
        .poller(|_| P::make())
        .inherit(sockets)
        .start(h, &[addr])
        .unwrap();
    assert_eq!(s.ready().unwrap(), std::process::id());
    assert!(
        serving.join().unwrap().unwrap(),
        "the old server handed over"
    );
    assert!(
        !sock.exists(),
        "the upgrade socket file is gone after the handover"
    );
    new
}

fn handover_keeps_the_port_and_drains_at_a_boundary<P: TestPoller>() {
    let dir = TempDir::new("core-upgrade");
    let sock = dir.path().join("up.sock");
    let old_h = Lines::new("old:", true);
    let drains = old_h.drains.clone();
    let old = start::<P>(old_h, Builder::new());
    let addr = inet(&old.addrs()[0]);
    let mut kept = client(addr);
    assert_eq!(ask(&mut kept, "a\n"), "old:a\n");
    // The old server was given `127.0.0.1:0`: the successor asks for the
    // same string and gets the same socket, port and all.
    let new = take_over::<P>(&old, Lines::new("new:", true), &sock, "tcp://127.0.0.1:0");
    assert_eq!(inet(&new.addrs()[0]), addr, "the same port");
    // The kept connection is told once, then served to its boundary.
    soon!(drains.load(Ordering::SeqCst) == 1);
    assert!(old.control().is_draining() && !new.control().is_draining());
    kept.write_all(b"par").unwrap();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(ask(&mut kept, "tial\n").replace("old:", ""), "partial\n");
    assert_eq!(read_to_close(&mut kept), b"", "closed after the whole line");
    // New connections reach the new server; the old one has stopped.
    for _ in 0..5 {
        assert_eq!(ask(&mut client(addr), "b\n"), "new:b\n");
    }
    old.wait().unwrap();
    new.shutdown().unwrap();
}

fn the_default_on_drain_closes_once_output_is_written<P: TestPoller>() {
    let h = Lines::new("x:", false);
    let drains = h.drains.clone();
    let server = start::<P>(h, Builder::new());
    let addr = inet(&server.addrs()[0]);
    let mut idle = client(addr);
    assert_eq!(ask(&mut idle, "a\n"), "x:a\n");
    server
        .control()
        .shutdown_gracefully(Duration::from_secs(10));
    assert_eq!(read_to_close(&mut idle), b"");
    soon!(drains.load(Ordering::SeqCst) == 1);
    server.wait().unwrap();
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

/// A dial still connecting when the drain begins is told when it opens.
#[derive(Clone)]
struct Dialer {
    to: std::net::SocketAddr,
    told: Arc<AtomicUsize>,
}

impl EventHandler for Dialer {
    type Context = ();
    fn on_drain(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if conn.is_dialed() {
            self.told.fetch_add(1, Ordering::SeqCst);
        }
        Action::Close
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, _input: &[u8]) -> Action {
        // The first byte of a client: dial, then drain at once.
        conn.dial(self.to, ()).unwrap();
        conn.server().shutdown_gracefully(Duration::from_secs(10));
        Action::None
    }
}

fn a_connection_opening_during_the_drain_is_told<P: TestPoller>() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let told = Arc::new(AtomicUsize::new(0));
    let h = Dialer {
        to: backend.local_addr().unwrap(),
        told: told.clone(),
    };
    let server = Builder::new()
        .poller(|_| P::make())
        .start(h, &["tcp://127.0.0.1:0"])
        .unwrap();
    let mut c = client(inet(&server.addrs()[0]));
    c.write_all(b"go").unwrap();
    let (_accepted, _) = backend.accept().unwrap();
    soon!(told.load(Ordering::SeqCst) == 1);
    server.wait().unwrap();
}

fn a_stopping_server_refuses_a_successor<P: TestPoller>() {
    let dir = TempDir::new("core-upgrade-stop");
    let sock = dir.path().join("up.sock");
    let old = start::<P>(Lines::new("o:", true), Builder::new());
    let upgrades = UpgradeSocket::bind(&sock).unwrap();
    assert_eq!(
        UpgradeSocket::bind(&sock).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse,
        "a second listener at a live path"
    );
    let control = old.control().clone();
    old.control().shutdown();
    // Stopped before any successor came: no handover.
    assert!(!upgrades.serve(&control, Duration::from_secs(1)).unwrap());
    old.wait().unwrap();
    let e = Successor::connect(&sock).unwrap_err();
    assert!(e.to_string().contains("no server to take over"), "{e}");
}

on_every_poller!(
    handover_keeps_the_port_and_drains_at_a_boundary,
    the_default_on_drain_closes_once_output_is_written,
    a_connection_opening_during_the_drain_is_told,
    a_stopping_server_refuses_a_successor,
);

/// Per-loop listeners: every copy is handed over, and the successor
/// serves them all (no connection queued on one is lost).
#[test]
fn every_per_loop_listener_is_handed_over() {
    let dir = TempDir::new("core-upgrade-loops");
    let sock = dir.path().join("up.sock");
    let old = Builder::new()
        .num_loops(3)
        .per_loop_listeners(true)
        .start(Lines::new("o:", false), &["tcp://127.0.0.1:0"])
        .unwrap();
    let addr = inet(&old.addrs()[0]);
    let upgrades = UpgradeSocket::bind(&sock).unwrap();
    let control = old.control().clone();
    let serving = thread::spawn(move || upgrades.serve(&control, Duration::from_secs(10)));
    let mut s = Successor::connect(&sock).unwrap();
    let sockets = s.take_sockets();
    assert_eq!(sockets.len(), 3, "one per loop");
    let new = Builder::new()
        .num_loops(2)
        .inherit(sockets)
        .start(Lines::new("n:", false), &["tcp://127.0.0.1:0"])
        .unwrap();
    s.ready().unwrap();
    assert!(serving.join().unwrap().unwrap());
    old.wait().unwrap();
    for _ in 0..30 {
        assert_eq!(ask(&mut client(addr), "z\n"), "n:z\n");
    }
    new.shutdown().unwrap();
}

/// Answers a line with the index of the loop serving it; keeps each
/// connection through a drain and closes it after its next line.
#[derive(Clone)]
struct WhichLoop;

impl EventHandler for WhichLoop {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        let reply = format!("{}\n", conn.loop_index());
        conn.write(reply.as_bytes());
        if conn.is_draining() && input.ends_with(b"\n") {
            return Action::Close;
        }
        Action::None
    }
    fn on_drain(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        Action::None
    }
}

/// A drain runs on every loop until each loop's connections are done:
/// loop 0 finishing its share first does not cut the others short.
#[test]
fn a_drain_serves_the_connections_of_every_loop() {
    let server = Builder::new()
        .num_loops(3)
        .load_balance(evio_core::LoadBalance::RoundRobin)
        .start(WhichLoop, &["tcp://127.0.0.1:0"])
        .unwrap();
    let addr = inet(&server.addrs()[0]);
    let mut clients: Vec<(TcpStream, String)> = (0..6)
        .map(|_| {
            let mut c = client(addr);
            let at = ask(&mut c, "a\n");
            (c, at)
        })
        .collect();
    assert!(clients.iter().any(|(_, at)| at == "0\n") && clients.iter().any(|(_, at)| at != "0\n"));
    // Loop 0's connections end first, then the others are still served.
    clients.sort_by_key(|(_, at)| at != "0\n");
    server
        .control()
        .shutdown_gracefully(Duration::from_secs(10));
    thread::sleep(Duration::from_millis(200));
    for (c, at) in &mut clients {
        assert_eq!(&ask(c, "last\n"), at, "served during the drain");
        assert_eq!(read_to_close(c), b"", "then closed at the boundary");
        thread::sleep(Duration::from_millis(50));
    }
    server.wait().unwrap();
}

/// Keeps each connection through a drain, closed by a short idle timer.
#[derive(Clone)]
struct IdleOut;

impl EventHandler for IdleOut {
    type Context = ();
    fn on_drain(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        conn.set_idle_timeout(Some(Duration::from_millis(200)));
        Action::None
    }
}

/// A drain ends when a timer closed the last connection, not at its
/// deadline (a loop with nothing else to wake it slept until then).
#[test]
fn a_drain_ends_when_a_timer_closes_the_last_connection() {
    let server = Builder::new()
        .num_loops(2)
        .load_balance(evio_core::LoadBalance::RoundRobin)
        .start(IdleOut, &["tcp://127.0.0.1:0"])
        .unwrap();
    let addr = inet(&server.addrs()[0]);
    let _clients: Vec<TcpStream> = (0..4).map(|_| client(addr)).collect();
    soon!(server.control().connections() == 4);
    server
        .control()
        .shutdown_gracefully(Duration::from_secs(60));
    within("the drain to end with its last connection", move || {
        server.wait().unwrap()
    });
}
