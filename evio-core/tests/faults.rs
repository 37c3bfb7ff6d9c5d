//! Reliability under faults (issue #7), part two: peers that half-close,
//! stay silent or reset while we write, panicking handlers, and the
//! connection and output bounds. See `docs/reliability.md`.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::counting::*;
use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, LoadBalance, Options};

// ----- half-close ---------------------------------------------------------------------

/// Counts input; `sleep` blocks the loop for a moment.
#[derive(Clone, Default)]
struct Counter {
    bytes: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl EventHandler for Counter {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"sleep" {
            std::thread::sleep(Duration::from_millis(400));
            conn.write(b"slept");
        } else {
            self.bytes.fetch_add(input.len(), Ordering::SeqCst);
        }
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        count_close(&self.closed)
    }
}

/// The peer's FIN arrives behind more input than one event's read budget
/// (16 reads): the loop must still reach EOF and close, though an
/// edge-triggered poller reports the FIN only once. (Before the fix the
/// connection stayed open forever, the client waiting for our FIN.)
fn half_close_after_a_burst<P: common::TestPoller>() {
    let h = Counter::default();
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut blocker = connect(&server.addrs()[0]);
    let mut b = connect(&server.addrs()[0]);
    // Stream 16 MiB first, so the kernel grows the receive window.
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..16 {
        b.write_all(&chunk).unwrap();
    }
    soon!(h.bytes.load(Ordering::SeqCst) == 16 << 20);
    // Block the loop; meanwhile 3 MiB and the FIN queue up.
    blocker.write_all(b"sleep").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..3 {
        b.write_all(&chunk).unwrap();
    }
    b.write_all(&[1u8; 100]).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let r = b.read(&mut buf);
    assert!(matches!(r, Ok(0)), "expected the server's close, got {r:?}");
    assert_eq!(h.bytes.load(Ordering::SeqCst), (19 << 20) + 100);
    assert_eq!(read_n(&mut blocker, 5).unwrap(), b"slept");
    soon!(h.closed.load(Ordering::SeqCst) == 1);
    server.shutdown().unwrap();
}

/// Echo, but `go` answers 16 MiB: reading pauses on the output bound.
#[derive(Clone)]
struct BigOnGo;

impl EventHandler for BigOnGo {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"go" {
            conn.write(&vec![b'.'; 16 << 20]);
        } else {
            conn.write(input);
        }
        Action::None
    }
}

/// The FIN arrives while reading is paused by backpressure: once the
/// output drains, the input that came before the FIN is still answered,
/// then the server closes.
fn half_close_while_paused<P: common::TestPoller>() {
    let server = start_server::<P, _>(BigOnGo, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"tail").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let got = read_to_eof(&mut c).unwrap();
    assert_eq!(got.len(), (16 << 20) + 4);
    assert!(got[..16 << 20].iter().all(|&b| b == b'.'));
    assert_eq!(&got[16 << 20..], b"tail");
    server.shutdown().unwrap();
}

// ----- silent peers, resets ------------------------------------------------------------

/// 300 peers connect and never send: others are answered promptly, the
/// silent ones cost nothing and are neither closed nor read.
fn silent_peers<P: common::TestPoller>() {
    let h = CountingEcho::default();
    let server = start_server::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0"]);
    let addr = inet(&server.addrs()[0]);
    let silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    soon!(h.open.load(Ordering::SeqCst) == 300);
    let mut worst = Duration::ZERO;
    for i in 0..50 {
        let mut c = connect(&server.addrs()[0]);
        let t = Instant::now();
        echo_once(&mut c, format!("ping {i}").as_bytes()).unwrap();
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < Duration::from_secs(1),
        "slowest round trip {worst:?}"
    );
    soon!(h.open.load(Ordering::SeqCst) == 300);
    drop(silent);
    soon!(h.open.load(Ordering::SeqCst) == 0);
    server.shutdown().unwrap();
}

/// 24 peers on 3 loops reset at once while the server writes megabytes to
/// each: each gets exactly one `on_closed` with the error, the process
/// survives (no SIGPIPE), and another client is served meanwhile.
fn concurrent_resets_while_writing<P: common::TestPoller>() {
    let h = Streamer::new(32 << 20);
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(3)
        .load_balance(LoadBalance::RoundRobin)
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let mut victims: Vec<TcpStream> = (0..24).map(|_| connect(&server.addrs()[0])).collect();
    for v in &mut victims {
        v.write_all(b"big").unwrap();
        let mut some = [0u8; 1000];
        v.read_exact(&mut some).unwrap();
    }
    // Unread input at close: the kernel answers with an RST.
    drop(victims);
    let mut other = connect(&server.addrs()[0]);
    echo_once(&mut other, b"unaffected").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || h.closes.lock().unwrap().len()
            == 24),
        "closes: {:?}",
        h.closes.lock().unwrap()
    );
    for kind in h.closes.lock().unwrap().iter() {
        assert!(
            matches!(
                kind,
                Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            ),
            "{kind:?}"
        );
    }
    echo_once(&mut other, b"still").unwrap();
    drop(other);
    server.shutdown().unwrap();
    assert_eq!(h.opened.load(Ordering::SeqCst), 25);
    assert_eq!(h.closes.lock().unwrap().len(), 25);
}

// ----- panicking handlers ---------------------------------------------------------------

/// Echo that panics on `boom`; records which loop (thread) opened and
/// closed each connection.
#[derive(Clone, Default)]
struct Bomb {
    opened: Arc<Mutex<Vec<(u16, String)>>>,
    closed: Arc<Mutex<Vec<String>>>,
}

fn loop_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

impl EventHandler for Bomb {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let port = conn.remote_addr().as_inet().map_or(0, |a| a.port());
        self.opened.lock().unwrap().push((port, loop_name()));
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"boom" {
            panic!("boom on {}", loop_name());
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        self.closed.lock().unwrap().push(loop_name());
        Action::None
    }
}

/// A panic in a callback stops the whole server cleanly: the other loops'
/// connections get `on_closed`, the panicking loop's connections are
/// closed without callbacks, listeners close, unix socket files are
/// removed, and `wait` returns an error naming the loop and the message.
fn panic_stops_the_server(loops: usize, victim_loop: usize) {
    let h = Bomb::default();
    let sock = temp_sock(&format!("panic-{loops}-{victim_loop}"));
    let server = Builder::new()
        .num_loops(loops as isize)
        .load_balance(LoadBalance::RoundRobin)
        .start(
            h.clone(),
            &[
                "tcp://127.0.0.1:0".to_string(),
                format!("unix://{}", sock.display()),
            ],
        )
        .unwrap();
    assert!(sock.exists());
    let addr = server.addrs()[0].clone();
    let mut clients: Vec<TcpStream> = (0..2 * loops)
        .map(|i| {
            let mut c = connect(&addr);
            echo_once(&mut c, format!("hi {i}").as_bytes()).unwrap();
            c
        })
        .collect();
    let victim_name = format!("evio-loop-{victim_loop}");
    let victim = {
        let opened = h.opened.lock().unwrap();
        clients
            .iter()
            .position(|c| {
                let port = c.local_addr().unwrap().port();
                opened.iter().any(|(p, l)| *p == port && *l == victim_name)
            })
            .expect("a connection on the victim loop")
    };
    clients[victim].write_all(b"boom").unwrap();
    let server = Arc::new(server);
    let waiter = {
        let server = server.clone();
        std::thread::spawn(move || server.wait())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "the server hung after a panic");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = waiter.join().unwrap().expect_err("serve must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("event loop {victim_loop} panicked"))
            && msg.contains(&format!("boom on {victim_name}")),
        "{msg}"
    );
    // Every client sees its connection closed.
    for c in &mut clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
    // on_closed fired for every connection of the other loops, none of the
    // panicking loop's.
    let closed = h.closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 2 * (loops - 1), "{closed:?}");
    assert!(closed.iter().all(|l| *l != victim_name), "{closed:?}");
    // Listeners are closed and the unix socket file is gone.
    assert!(TcpStream::connect(inet(&addr)).is_err(), "still listening");
    assert!(!sock.exists(), "unix socket file left behind");
}

#[test]
fn panic_in_one_loop_server() {
    panic_stops_the_server(1, 0);
}

#[test]
fn panic_in_loop_1_of_3() {
    panic_stops_the_server(3, 1);
}

#[test]
fn panic_in_loop_0_of_3() {
    panic_stops_the_server(3, 0);
}

// ----- bounds ---------------------------------------------------------------------------

/// `max_connections(4)`: four clients are served; a fifth is closed at
/// once without `on_opened`; after one of the four leaves, a new one is
/// served.
fn max_connections_sheds_the_excess<P: common::TestPoller>() {
    for loops in [1, 2] {
        let h = CountingEcho::default();
        let server = Builder::new()
            .poller(|_| P::make())
            .num_loops(loops)
            .max_connections(Some(4))
            .start(h.clone(), &["tcp://127.0.0.1:0"])
            .unwrap();
        let addr = server.addrs()[0].clone();
        let mut four: Vec<TcpStream> = (0..4)
            .map(|i| {
                let mut c = connect(&addr);
                echo_once(&mut c, format!("c{i}").as_bytes()).unwrap();
                c
            })
            .collect();
        for _ in 0..3 {
            let mut extra = connect(&addr);
            extra
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = extra.write_all(b"x");
            let mut b = [0u8; 1];
            match extra.read(&mut b) {
                Ok(0) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                other => panic!("connection over the limit: {other:?}"),
            }
        }
        assert_eq!(h.opened.load(Ordering::SeqCst), 4);
        // At the bound, the four are still served.
        for c in &mut four {
            echo_once(c, b"ok").unwrap();
        }
        drop(four.pop());
        assert!(served_within(inet(&addr), Duration::from_secs(5)));
        drop(four);
        server.shutdown().unwrap();
    }
}

/// `output_water_marks(64 KiB, 16 KiB)` and a client that sends 8 MiB
/// without reading: the output queued for it never passes the high mark
/// by more than one read (64 KiB), and everything arrives once it reads.
fn output_bound_is_kept<P: common::TestPoller>() {
    const HIGH: usize = 64 << 10;
    let h = MaxQueued::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .output_water_marks(HIGH, 16 << 10)
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let c = connect(&server.addrs()[0]);
    let data = Rng::new(11).bytes(8 << 20);
    let writer = {
        let mut w = c.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || w.write_all(&data))
    };
    // Let the server and the kernel buffers fill up.
    std::thread::sleep(Duration::from_millis(300));
    let peak = h.0.load(Ordering::SeqCst);
    assert!(peak <= HIGH + (64 << 10), "queued {peak} bytes");
    let mut r = c;
    let got = read_n(&mut r, data.len()).unwrap();
    assert!(got == data, "echo differs");
    writer.join().unwrap().unwrap();
    let peak = h.0.load(Ordering::SeqCst);
    eprintln!("output bound {HIGH}: most queued {peak}");
    assert!(peak <= HIGH + (64 << 10), "queued {peak} bytes");
    server.shutdown().unwrap();
}

on_every_poller!(
    half_close_after_a_burst,
    half_close_while_paused,
    silent_peers,
    concurrent_resets_while_writing,
    max_connections_sheds_the_excess,
    output_bound_is_kept,
);
