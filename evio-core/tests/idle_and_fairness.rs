//! Idle timeouts (global and per connection), and fairness: an
//! `on_drained` producer and a flooded wake channel do not starve other
//! connections. Every test runs on epoll and on poll(2), on loopback only,
//! bounded in time.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::beyond::*;
use common::*;
use evio_core::{Action, Addr, Builder, Conn, ConnHandle, EventHandler, Options};

// ----- idle timeouts --------------------------------------------------------------

/// Echo; on listener 1 returns `Options::idle_timeout = 200 ms`, on
/// listener 2 calls `set_idle_timeout(None)`; `short` sets 200 ms later.
/// (listener index, `on_closed`'s error kind, when).
type IdleClose = (usize, Option<io::ErrorKind>, Instant);

#[derive(Clone, Default)]
struct Idle {
    closed: Arc<Mutex<Vec<IdleClose>>>,
}

impl Idle {
    /// Fails unless exactly `n` connections closed, each timed out (and, with
    /// `listener`, each accepted on that listener).
    fn assert_timed_out(&self, n: usize, listener: Option<usize>) {
        let closed = self.closed.lock().unwrap().clone();
        assert_eq!(closed.len(), n, "{closed:?}");
        assert!(
            closed
                .iter()
                .all(|(i, e, _)| listener.is_none_or(|l| *i == l)
                    && *e == Some(io::ErrorKind::TimedOut)),
            "{closed:?}"
        );
    }
}

impl EventHandler for Idle {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let mut opts = Options::default();
        match conn.addr_index().unwrap() {
            1 => opts.idle_timeout = Some(Duration::from_millis(200)),
            2 => conn.set_idle_timeout(None),
            _ => {}
        }
        (opts, Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"short" {
            conn.set_idle_timeout(Some(Duration::from_millis(200)));
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.closed
            .lock()
            .unwrap()
            .push((conn.addr_index().unwrap(), kind(&err), Instant::now()));
        Action::None
    }
}

/// `n` echo round trips on a new connection to `addr`, each answered
/// within 3 s; a starved one fails, with `context()` in the message.
fn round_trips(addr: &Addr, n: usize, context: impl Fn() -> String) {
    let mut other = connect(addr);
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    for i in 0..n {
        let msg = format!("ping {i:02}");
        other.write_all(msg.as_bytes()).unwrap();
        let got = read_n(&mut other, msg.len())
            .unwrap_or_else(|e| panic!("round trip {i} starved{}: {e}", context()));
        assert_eq!(got, msg.as_bytes());
    }
}

const ADDRS3: [&str; 3] = [
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:0",
];

/// Waits for EOF on `c`; returns how long it took.
fn time_to_eof(c: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let rest = read_to_eof(c).expect("EOF");
    assert!(rest.is_empty(), "unexpected bytes {rest:?}");
    t0.elapsed()
}

/// An idle connection is closed with TimedOut; a busy one (a message every
/// 20 ms for 5× the timeout) is not; `set_idle_timeout(None)` exempts one.
/// (400 ms rather than less: a loaded 2-core machine can stall a thread for
/// 100s of ms.)
fn idle_timeout_closes_only_idle_conns<P: common::TestPoller>() {
    let _g = shared();
    const IDLE: Duration = Duration::from_millis(400);
    let h = Idle::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .idle_timeout(Some(IDLE))
        .start(h.clone(), &ADDRS3)
        .unwrap();
    let mut idle = connect(&server.addrs()[0]);
    let mut busy = connect(&server.addrs()[0]);
    let mut exempt = connect(&server.addrs()[2]);
    let idle_waiter = thread::spawn(move || time_to_eof(&mut idle));
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < 5 * IDLE {
        let msg = format!("m{:02}", i % 100);
        busy.write_all(msg.as_bytes()).unwrap();
        let got = read_n(&mut busy, 3)
            .unwrap_or_else(|e| panic!("busy conn closed after {:?}: {e}", t0.elapsed()));
        assert_eq!(got, msg.as_bytes());
        thread::sleep(Duration::from_millis(20));
        i += 1;
    }
    let took = idle_waiter.join().unwrap();
    assert!(
        took >= IDLE - Duration::from_millis(50) && took < IDLE + Duration::from_secs(2),
        "idle conn closed after {took:?}"
    );
    // The busy one times out once it goes quiet.
    let took = time_to_eof(&mut busy);
    assert!(
        took < IDLE + Duration::from_secs(2),
        "busy conn closed after {took:?}"
    );
    // The exempt one outlived both.
    assert_echo(&mut exempt, b"still here");
    h.assert_timed_out(2, Some(0));
    server.shutdown().unwrap();
    assert_eq!(h.closed.lock().unwrap()[2].1, None, "shutdown closes it");
}

/// A shorter per-connection timeout than the server's applies at once:
/// through `Options::idle_timeout` and through `set_idle_timeout`.
fn idle_timeout_per_connection_override<P: common::TestPoller>() {
    let _g = shared();
    let h = Idle::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .idle_timeout(Some(Duration::from_secs(8)))
        .start(h.clone(), &ADDRS3)
        .unwrap();
    let mut by_options = connect(&server.addrs()[1]);
    let mut by_call = connect(&server.addrs()[0]);
    let mut default = connect(&server.addrs()[0]);
    assert_echo(&mut by_call, b"short");
    let t = thread::spawn(move || time_to_eof(&mut by_call));
    let took = time_to_eof(&mut by_options);
    assert!(took < Duration::from_millis(1500), "Options: {took:?}");
    let took = t.join().unwrap();
    assert!(
        took < Duration::from_millis(1500),
        "set_idle_timeout: {took:?}"
    );
    assert_echo(&mut default, b"x");
    h.assert_timed_out(2, None);
    // Without a server default, nothing times out.
    let h = Idle::default();
    let server2 = start_server::<P, _>(h.clone(), 1, &ADDRS3);
    let mut plain = connect(&server2.addrs()[0]);
    thread::sleep(Duration::from_millis(400));
    assert_echo(&mut plain, b"y");
    assert!(h.closed.lock().unwrap().is_empty());
    server2.shutdown().unwrap();
    server.shutdown().unwrap();
}

/// Streams endlessly through `on_drained` once a client says `stream`;
/// echoes everything else.
#[derive(Clone, Default)]
struct Firehose;

impl EventHandler for Firehose {
    type Context = bool;
    fn on_data(&mut self, conn: &mut Conn<'_, bool>, input: &[u8]) -> Action {
        if input == b"stream" {
            conn.set_context(true);
            conn.write(&[0u8; 64 * 1024]);
        } else {
            conn.write(input);
        }
        Action::None
    }
    fn on_drained(&mut self, conn: &mut Conn<'_, bool>) -> Action {
        if *conn.context() {
            conn.write(&[0u8; 64 * 1024]);
        }
        Action::None
    }
}

/// A producer feeding a fast reader from `on_drained` does not starve the
/// loop's other connections.
fn on_drained_producer_does_not_starve_others<P: common::TestPoller>() {
    let _g = shared();
    let server = start::<P, _>(Firehose);
    let mut hose = connect(&server.addrs()[0]);
    hose.write_all(b"stream").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            while !stop.load(Ordering::SeqCst) {
                match hose.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            total
        })
    };
    thread::sleep(Duration::from_millis(200));
    round_trips(&server.addrs()[0], 20, String::new);
    stop.store(true, Ordering::SeqCst);
    server.shutdown().unwrap();
    let total = reader.join().unwrap();
    assert!(total > 0);
}

/// Publishes a handle per connection; each wake costs ~20 µs of work;
/// echoes data.
#[derive(Clone, Default)]
struct SlowWake {
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    wakes: Arc<AtomicU64>,
}

impl EventHandler for SlowWake {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.handles.lock().unwrap().push(conn.handle());
        (Options::default(), Action::None)
    }
    fn on_wake(&mut self, _: &mut Conn<'_, ()>) -> Action {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {}
        self.wakes.fetch_add(1, Ordering::Relaxed);
        Action::None
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
}

/// Threads waking a connection faster than the loop handles the wakes:
/// the loop still serves other connections and still shuts down promptly.
fn flooded_wake_channel_still_serves_io<P: common::TestPoller>() {
    let _g = shared();
    let h = SlowWake::default();
    let server = start::<P, _>(h.clone());
    let _target = connect(&server.addrs()[0]);
    soon!(!h.handles.lock().unwrap().is_empty());
    let handle = h.handles.lock().unwrap()[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (handle, stop) = (handle.clone(), stop.clone());
            thread::spawn(move || {
                // Capped, so a stuck loop fails the test, not the machine.
                for _ in 0..400_000 {
                    if stop.load(Ordering::Relaxed) || handle.wake().is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    round_trips(&server.addrs()[0], 5, || {
        format!(
            " by the wake flood ({} wakes handled)",
            h.wakes.load(Ordering::Relaxed)
        )
    });
    let t0 = Instant::now();
    server.shutdown().unwrap();
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

on_every_poller!(
    idle_timeout_closes_only_idle_conns,
    idle_timeout_per_connection_override,
    on_drained_producer_does_not_starve_others,
    flooded_wake_channel_still_serves_io,
);
