//! Graceful shutdown with a timeout, and outbound dials (refused, timing
//! out, failing at once, from a `ServerHandle`, writes before the connect).
//! Every test runs on epoll and on poll(2), on loopback only, bounded in time.

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::beyond::*;
use common::*;
use evio_core::{Action, Addr, Builder, Conn, ConnId, EventHandler, Options};

// ----- graceful shutdown --------------------------------------------------------

/// On `go`, queues `bulk` bytes of the pattern; logs opens and closes.
#[derive(Clone, Default)]
struct Bulk {
    bulk: usize,
    pat: Arc<Mutex<Option<Arc<Pattern>>>>,
    gone: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    log: Log,
}

impl EventHandler for Bulk {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        count_open(&self.opened)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input.starts_with(b"go") {
            let pat = self.pat.lock().unwrap().clone().unwrap();
            let mut off = 0;
            while off < self.bulk {
                let n = (self.bulk - off).min(PERIOD);
                conn.write(pat.at(off as u64, n));
                off += n;
            }
            self.queued.fetch_max(conn.output_len(), Ordering::SeqCst);
            self.gone.fetch_add(1, Ordering::SeqCst);
        }
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.record_close(conn, &err);
        Action::None
    }
}

/// A client that never reads while MBs are queued: `shutdown_gracefully`
/// returns at its deadline anyway, and every connection got `on_closed`.
fn shutdown_gracefully_with_a_stuck_client<P: common::TestPoller>() {
    let _g = shared();
    let h = Bulk {
        bulk: 16 * MIB,
        pat: Arc::new(Mutex::new(Some(Arc::new(Pattern::new(1))))),
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut stuck = connect(&server.addrs()[0]);
    let _idle = connect(&server.addrs()[0]);
    stuck.write_all(b"go").unwrap();
    soon!(h.gone.load(Ordering::SeqCst) == 1 && h.opened.load(Ordering::SeqCst) == 2);
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    server
        .shutdown_gracefully(Duration::from_millis(300))
        .unwrap();
    let took = t0.elapsed();
    eprintln!("shutdown_gracefully(300 ms) with a stuck client took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        took >= Duration::from_millis(250),
        "did not wait for the stuck client to drain: {took:?}"
    );
    assert_eq!(h.log.closed(), 2, "on_closed for every connection");
    drop(stuck);
}

/// A client with output still queued gets every byte, then EOF, before a
/// graceful shutdown returns (which it does early, once all are flushed).
fn shutdown_gracefully_flushes_pending_output<P: common::TestPoller>() {
    let _g = shared();
    const BULK: usize = 24 * MIB;
    let pat = Arc::new(Pattern::new(9));
    let h = Bulk {
        bulk: BULK,
        pat: Arc::new(Mutex::new(Some(pat.clone()))),
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    soon!(h.gone.load(Ordering::SeqCst) == 1);
    assert!(
        h.queued.load(Ordering::SeqCst) > 8 * MIB,
        "output was pending at shutdown"
    );
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let n = pat.recv(&mut c, BULK as u64)?;
        let rest = read_to_eof(&mut c)?;
        Ok::<_, io::Error>((n, rest.len()))
    });
    let t0 = Instant::now();
    server.shutdown_gracefully(Duration::from_secs(20)).unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "did not return once flushed"
    );
    assert!(
        took >= Duration::from_millis(250),
        "closed before the client read: {took:?}"
    );
    assert_eq!(reader.join().unwrap().unwrap(), (BULK as u64, 0));
    assert_eq!(
        h.log.events(),
        [Ev::Closed {
            dialed: false,
            err: None
        }]
    );
}

// ----- dialing ------------------------------------------------------------------

/// Logs opens and closes; echoes; on `dial ADDR` from a client, dials ADDR
/// from the loop with `Conn::dial` and reports the immediate result.
#[derive(Clone, Default)]
struct Dialer {
    log: Log,
    immediate: Arc<Mutex<Vec<io::Result<ConnId>>>>,
    greet: bool,
}

impl EventHandler for Dialer {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.log.record_open(conn);
        if conn.is_dialed() {
            assert_eq!(conn.addr_index(), None);
            if self.greet {
                conn.write(b"hello from evio");
            }
        }
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if let Some(rest) = input.strip_prefix(b"dial ") {
            let text = std::str::from_utf8(rest).unwrap().trim();
            let addr = match text.strip_prefix("unix:") {
                Some(path) => Addr::Unix(Some(path.into())),
                None => Addr::Inet(text.parse().unwrap()),
            };
            let r = conn.dial(&addr, ());
            self.immediate.lock().unwrap().push(r);
            conn.write(b"dialing");
            return Action::None;
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.record_close(conn, &err);
        Action::None
    }
}

fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Dialing a closed port: `on_closed` gets ConnectionRefused, never
/// `on_opened`, both for `ServerHandle::dial` and `Conn::dial`.
fn dial_refused<P: common::TestPoller>() {
    let _g = shared();
    let h = Dialer::default();
    let server = start::<P, _>(h.clone());
    let target = closed_port();
    server.dial(target, ()).unwrap();
    assert!(h.log.wait_closed(1));
    assert_eq!(
        h.log.events(),
        [Ev::dial_failed(io::ErrorKind::ConnectionRefused)]
    );
    let mut c = connect(&server.addrs()[0]);
    c.write_all(format!("dial {target}").as_bytes()).unwrap();
    assert_eq!(read_n(&mut c, 7).unwrap(), b"dialing");
    assert!(h.log.wait_closed(2));
    assert!(h.immediate.lock().unwrap()[0].is_ok());
    assert_eq!(
        h.log.events(),
        [
            Ev::dial_failed(io::ErrorKind::ConnectionRefused),
            Ev::Opened { dialed: false },
            Ev::dial_failed(io::ErrorKind::ConnectionRefused),
        ]
    );
    server.shutdown().unwrap();
}

/// A loopback listener whose accept queue is full and that never accepts:
/// Linux drops further SYNs, so a connect to it hangs without a packet
/// leaving the machine. Returns the listener, its address and the fillers.
fn hanging_listener() -> (std::os::fd::OwnedFd, SocketAddr, Vec<TcpStream>) {
    let opts = evio_sys::net::BindOptions {
        backlog: 0,
        ..Default::default()
    };
    let fd = evio_sys::net::tcp_listener("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    let addr = evio_sys::net::local_addr(&fd).unwrap().as_inet().unwrap();
    let mut fill = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return (fd, addr, fill),
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("a backlog-0 listener accepted 16 connections: connects do not hang here");
}

/// A dial that cannot complete gets `TimedOut` after `dial_timeout`.
fn dial_times_out<P: common::TestPoller>() {
    let _g = shared();
    let (_listener, target, _fill) = hanging_listener();
    let h = Dialer::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .dial_timeout(Some(Duration::from_millis(200)))
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let t0 = Instant::now();
    server.dial(target, ()).unwrap();
    assert!(h.log.wait_closed(1));
    let took = h.log.first_close_at().unwrap() - t0;
    assert_eq!(h.log.events(), [Ev::dial_failed(io::ErrorKind::TimedOut)]);
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "timed out after {took:?}"
    );
    server.shutdown().unwrap();
}

/// A dial that fails at once (no such unix socket) still reaches
/// `on_closed` for `ServerHandle::dial`; `Conn::dial` returns the error.
fn dial_failing_at_once<P: common::TestPoller>() {
    let _g = shared();
    let h = Dialer::default();
    let server = start::<P, _>(h.clone());
    let missing = temp_sock("no-such-listener");
    let _ = std::fs::remove_file(&missing);
    server.dial(Addr::Unix(Some(missing.clone())), ()).unwrap();
    assert!(h.log.wait_closed(1), "no on_closed for a failed dial");
    assert_eq!(h.log.events(), [Ev::dial_failed(io::ErrorKind::NotFound)]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(format!("dial unix:{}", missing.display()).as_bytes())
        .unwrap();
    assert_eq!(read_n(&mut c, 7).unwrap(), b"dialing");
    let r = h.immediate.lock().unwrap().pop().unwrap();
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        h.log.closed(),
        1,
        "no on_closed when Conn::dial returns Err"
    );
    server.shutdown().unwrap();
}

/// `ServerHandle::dial` to a std listener: `on_opened` fires, data flows
/// both ways, the peer's close reaches `on_closed`.
fn server_handle_dial_exchanges_data<P: common::TestPoller>() {
    let _g = shared();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let h = Dialer {
        greet: true,
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    server.dial(peer.local_addr().unwrap(), ()).unwrap();
    let (mut s, _) = peer.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_n(&mut s, 15).unwrap(), b"hello from evio");
    assert_echo(&mut s, b"ping");
    assert_eq!(h.log.events(), [Ev::Opened { dialed: true }]);
    drop(s);
    assert!(h.log.wait_closed(1));
    assert_eq!(
        h.log.events()[1],
        Ev::Closed {
            dialed: true,
            err: None
        }
    );
    server.shutdown().unwrap();
}

/// Dials `target` when a client connects, writes to the dialed conn (and
/// optionally closes it) before it has connected.
#[derive(Clone)]
struct EarlyWriter {
    target: SocketAddr,
    close: bool,
    log: Log,
}

impl EventHandler for EarlyWriter {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.log.record_open(conn);
        if !conn.is_dialed() {
            let id = conn.dial(Addr::Inet(self.target), ()).unwrap();
            assert!(conn.peer(id).is_some_and(|mut p| p.write(b"early bytes")));
            assert_eq!(conn.peer(id).map(|p| p.output_len()), Some(11));
            if self.close {
                assert!(conn.peer(id).is_some_and(|mut p| p.close()));
            }
        }
        (Options::default(), Action::None)
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.record_close(conn, &err);
        Action::None
    }
}

/// Bytes written to a dial before it connects are sent once it does, and a
/// close requested meanwhile happens after them.
fn writes_and_close_before_connect<P: common::TestPoller>() {
    let _g = shared();
    for close in [false, true] {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let h = EarlyWriter {
            target: peer.local_addr().unwrap(),
            close,
            log: Log::default(),
        };
        let server = start::<P, _>(h.clone());
        let _client = connect(&server.addrs()[0]);
        let (mut s, _) = peer.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_n(&mut s, 11).unwrap(), b"early bytes");
        if close {
            assert_eq!(read_to_eof(&mut s).unwrap(), b"", "closed after the bytes");
            assert!(h.log.wait_closed(1));
            assert!(h.log.events().contains(&Ev::Closed {
                dialed: true,
                err: None
            }));
        }
        server.shutdown().unwrap();
    }
}

/// A graceful stop with nothing left to write ends at once, long before
/// its deadline: idle connections, a UDP socket and a second loop with no
/// connection at all hold nothing up.
fn graceful_stop_with_nothing_queued_ends_at_once<P: TestPoller>() {
    let server = start_server::<P, _>(Echo, 2, &["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]);
    let mut idle = connect(&server.addrs()[0]);
    assert_echo(&mut idle, b"hi");
    let control = server.control().clone();
    control.shutdown_gracefully(Duration::from_secs(600));
    assert!(
        eventually(Duration::from_secs(10), || control.is_stopped()),
        "the drain waited for its deadline with nothing to drain"
    );
    assert_eq!(read_to_eof(&mut idle).unwrap(), b"");
}

/// A hard stop during a graceful one cuts the drain short: a client that
/// never reads would otherwise hold the server until the drain deadline.
fn shutdown_cuts_a_graceful_drain_short<P: TestPoller>() {
    let server = start_server::<P, _>(Echo, 1, &["tcp://127.0.0.1:0"]);
    let c = connect(&server.addrs()[0]);
    let mut w = c.try_clone().unwrap();
    thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..128 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    // Output queued that the client will not read.
    thread::sleep(Duration::from_millis(300));
    let control = server.control().clone();
    control.shutdown_gracefully(Duration::from_secs(600));
    thread::sleep(Duration::from_millis(100));
    assert!(!control.is_stopped(), "draining: the stuck client holds it");
    // A stop is never turned back into a drain, and it ends this one.
    control.shutdown();
    control.shutdown_gracefully(Duration::from_secs(600));
    assert!(eventually(Duration::from_secs(10), || control.is_stopped()));
    drop(c);
}

on_every_poller!(
    shutdown_gracefully_with_a_stuck_client,
    shutdown_gracefully_flushes_pending_output,
    dial_refused,
    dial_times_out,
    dial_failing_at_once,
    server_handle_dial_exchanges_data,
    writes_and_close_before_connect,
    shutdown_cuts_a_graceful_drain_short,
    graceful_stop_with_nothing_queued_ends_at_once,
);
