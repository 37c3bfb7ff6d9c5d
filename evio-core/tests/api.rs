//! The API as a new user meets it: the calls users of tokio, mio and gnet
//! expect (stop handles, split borrows, owned and vectored writes, flow
//! control, timers, UDP replies, dialing) and the regressions found with
//! them (the probes' bugs are in `api_bugs.rs`). Public API only; each
//! generic test runs on every backend.

mod common;

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::start_server as start;
use common::*;
use evio_core::{
    Action, Builder, Conn, ConnId, EventHandler, InputStream, Options, ServerControl, ServerHandle,
    ServerInfo,
};

// ----- ServerControl: stop from anywhere, counts, loop index ---------------------

#[derive(Clone, Default)]
struct Counting {
    control: Arc<Mutex<Option<ServerControl>>>,
    seen: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl EventHandler for Counting {
    type Context = ();
    fn on_serving(&mut self, info: &ServerInfo) -> Action {
        *self.control.lock().unwrap() = Some(info.control.clone());
        Action::None
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, _: &[u8]) -> Action {
        let total = conn.server().connections();
        self.seen.lock().unwrap().push((conn.loop_index(), total));
        conn.write(format!("{total}").as_bytes());
        Action::None
    }
}

fn control_counts_and_stops<P: TestPoller>() {
    let h = Counting::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(3)
        .load_balance(evio_core::LoadBalance::RoundRobin)
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let mut conns: Vec<TcpStream> = (0..6).map(|_| connect(&server.addrs()[0])).collect();
    soon!(server.connections() == 6);
    assert_eq!(server.control().loop_connections(), [2, 2, 2]);
    for c in &mut conns {
        c.write_all(b"?").unwrap();
        assert_eq!(read_n(c, 1).unwrap(), b"6");
    }
    let mut loops: Vec<usize> = h.seen.lock().unwrap().iter().map(|s| s.0).collect();
    loops.sort();
    assert_eq!(loops, [0, 0, 1, 1, 2, 2]);
    drop(conns.pop());
    soon!(server.connections() == 5);
    // Stop from a thread that only has the control from on_serving.
    let control = h.control.lock().unwrap().clone().unwrap();
    thread::spawn(move || control.shutdown()).join().unwrap();
    server.wait().unwrap();
    assert!(server.control().is_stopped());
    for c in &mut conns {
        assert_eq!(read_to_eof(c).unwrap(), b"");
    }
}

/// `serve` with one loop takes a handler that is neither `Clone` nor
/// `Send` (here: an `Rc`), and stops through its `ServerControl`.
struct NotSend {
    count: Rc<std::cell::Cell<usize>>,
    tx: mpsc::Sender<ServerControl>,
}
impl EventHandler for NotSend {
    type Context = ();
    fn on_serving(&mut self, info: &ServerInfo) -> Action {
        self.tx.send(info.control.clone()).unwrap();
        Action::None
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        self.count.set(self.count.get() + input.len());
        conn.write(self.count.get().to_string().as_bytes());
        Action::None
    }
}

#[test]
fn serve_takes_a_handler_that_is_not_clone_or_send() {
    let (tx, rx) = mpsc::channel();
    let runner = thread::spawn(move || {
        let h = NotSend {
            count: Rc::new(std::cell::Cell::new(0)),
            tx,
        };
        evio_core::serve(h, &["tcp://127.0.0.1:0"])
    });
    let control = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut c = connect(&control.addrs()[0]);
    c.write_all(b"abc").unwrap();
    assert_eq!(read_n(&mut c, 1).unwrap(), b"3");
    control.shutdown();
    runner.join().unwrap().unwrap();
    control.wait().unwrap();
}

// ----- split borrow: an InputStream in the context --------------------------------

#[derive(Clone)]
struct Lines;
impl EventHandler for Lines {
    type Context = InputStream;
    fn on_data(&mut self, conn: &mut Conn<'_, InputStream>, input: &[u8]) -> Action {
        let (stream, mut out) = conn.split();
        let data = stream.begin(input);
        let mut used = 0;
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            out.write(b"<");
            out.write_owned(data[used..used + nl].to_vec());
            out.write(b">\n");
            used += nl + 1;
        }
        stream.end(input, used);
        assert!(out.output_len() > 0 || used == 0);
        Action::None
    }
}

fn split_borrows_context_and_writer<P: TestPoller>() {
    let server = start::<P, _>(Lines, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    for piece in [&b"hel"[..], b"lo\nwor", b"ld\n", b"a\nb\nc"] {
        c.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    c.write_all(b"\n").unwrap();
    assert_eq!(
        read_n(&mut c, 28).unwrap(),
        b"<hello>\n<world>\n<a>\n<b>\n<c>\n"
    );
    server.shutdown().unwrap();
}

// ----- writes without a copy --------------------------------------------------------

#[derive(Clone)]
struct Owned(Arc<[u8]>);
impl EventHandler for Owned {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        match input {
            b"mix" => {
                conn.write(b"[");
                conn.write_owned(self.0.clone());
                conn.write(b"|");
                conn.write_owned(String::from("str"));
                conn.write_owned(&b"static"[..]);
                conn.write_owned(vec![b'v'; 3]);
                conn.write(b"]");
            }
            b"vec" => {
                let head = b"(".as_slice();
                conn.write_vectored(&[
                    IoSlice::new(head),
                    IoSlice::new(&self.0),
                    IoSlice::new(b")"),
                ]);
                conn.write(b"!");
            }
            _ => {}
        }
        Action::None
    }
}

fn owned_and_vectored_writes_keep_order<P: TestPoller>() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let server = start::<P, _>(Owned(big.clone().into()), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"mix").unwrap();
    let got = read_n(&mut c, big.len() + 15).unwrap();
    let mut want = b"[".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"|strstaticvvv]");
    assert!(got == want, "owned writes out of order");
    c.write_all(b"vec").unwrap();
    let got = read_n(&mut c, big.len() + 3).unwrap();
    assert_eq!(got[0], b'(');
    assert!(got[1..=big.len()] == big[..]);
    assert_eq!(&got[big.len() + 1..], b")!");
    server.shutdown().unwrap();
}

// ----- flow control: pause/resume, half-close, on_eof --------------------------------

#[derive(Clone, Default)]
struct Flow(Arc<Mutex<Vec<String>>>);

impl Flow {
    fn note(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
}

impl EventHandler for Flow {
    type Context = usize;
    fn on_data(&mut self, conn: &mut Conn<'_, usize>, input: &[u8]) -> Action {
        *conn.context_mut() += input.len();
        match input {
            b"pause" => {
                conn.pause_reading();
                conn.set_timer(Some(Duration::from_millis(300)));
                assert!(conn.is_reading_paused());
            }
            b"shut" => {
                conn.write(b"last words");
                conn.shutdown_write();
                conn.write(b"dropped");
            }
            _ => conn.write(format!("got {}|", conn.context()).as_bytes()),
        }
        Action::None
    }
    fn on_timer(&mut self, conn: &mut Conn<'_, usize>) -> Action {
        self.note(format!("timer at {}", conn.context()));
        conn.resume_reading();
        Action::None
    }
    fn on_eof(&mut self, conn: &mut Conn<'_, usize>) -> Action {
        self.note(format!("eof after {}", conn.context()));
        // Half-close: still answer after the peer finished sending.
        conn.write(b"after eof");
        conn.shutdown_write();
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, usize>, err: Option<io::Error>) -> Action {
        self.0
            .lock()
            .unwrap()
            .push(format!("closed {:?}", err.map(|e| e.kind())));
        Action::None
    }
}

/// A server running a fresh [`Flow`], and a client that sent it `first`.
fn flow<P: TestPoller>(first: &[u8]) -> (Flow, ServerHandle<usize>, TcpStream) {
    let h = Flow::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(first).unwrap();
    (h, server, c)
}

fn pause_and_resume_reading<P: TestPoller>() {
    let (h, server, mut c) = flow::<P>(b"pause");
    thread::sleep(Duration::from_millis(50));
    let sent = Instant::now();
    c.write_all(b"more").unwrap();
    // Nothing is read (or answered) until the timer resumes reading.
    assert_eq!(read_n(&mut c, 6).unwrap(), b"got 9|");
    assert!(
        sent.elapsed() >= Duration::from_millis(200),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(h.0.lock().unwrap()[0], "timer at 5");
    server.shutdown().unwrap();
}

fn shutdown_write_is_a_half_close<P: TestPoller>() {
    let (h, server, mut c) = flow::<P>(b"shut");
    // Our side reads EOF after the queued bytes; later writes were dropped.
    assert_eq!(read_to_eof(&mut c).unwrap(), b"last words");
    // The server still reads: it counts what we send now.
    c.write_all(b"xyz").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    soon!(h.0.lock().unwrap().len() >= 2);
    let log = h.0.lock().unwrap().clone();
    assert_eq!(log[0], "eof after 7", "{log:?}");
    assert_eq!(log[1], "closed None", "{log:?}");
    server.shutdown().unwrap();
}

fn eof_can_keep_the_write_side_open<P: TestPoller>() {
    let (h, server, mut c) = flow::<P>(b"ab");
    assert_eq!(read_n(&mut c, 6).unwrap(), b"got 2|");
    c.shutdown(Shutdown::Write).unwrap();
    // The answer written in on_eof arrives, then the server's FIN.
    assert_eq!(read_to_eof(&mut c).unwrap(), b"after eof");
    soon!(h.0.lock().unwrap().len() == 2);
    assert_eq!(
        h.0.lock().unwrap().as_slice(),
        ["eof after 2", "closed None"]
    );
    server.shutdown().unwrap();
}

// ----- timers on every loop -----------------------------------------------------------

#[derive(Clone, Default)]
struct Ticks {
    loops: Arc<Mutex<Vec<usize>>>,
    fired: Arc<Mutex<Vec<(usize, &'static str)>>>,
}
impl EventHandler for Ticks {
    type Context = ();
    fn on_loop_tick(&mut self, loop_index: usize) -> (Option<Duration>, Action) {
        let mut seen = self.loops.lock().unwrap();
        seen.push(loop_index);
        let again = seen.iter().filter(|&&l| l == loop_index).count() < 3;
        (again.then_some(Duration::from_millis(10)), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        match input {
            b"set" => conn.set_timer(Some(Duration::from_millis(30))),
            b"replace" => {
                conn.set_timer(Some(Duration::from_secs(60)));
                conn.set_timer(Some(Duration::from_millis(30)));
            }
            b"cancel" => {
                conn.set_timer(Some(Duration::from_millis(30)));
                conn.set_timer(None);
            }
            _ => {}
        }
        Action::None
    }
    fn on_timer(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.fired
            .lock()
            .unwrap()
            .push((conn.loop_index(), "timer"));
        conn.write(b"T");
        Action::None
    }
}

fn loop_ticks_and_connection_timers<P: TestPoller>() {
    let h = Ticks::default();
    let server = start::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0"]);
    soon!(h.loops.lock().unwrap().len() == 6);
    thread::sleep(Duration::from_millis(50));
    let mut loops = h.loops.lock().unwrap().clone();
    loops.sort();
    assert_eq!(
        loops,
        [0, 0, 0, 1, 1, 1],
        "each loop ticks 3 times, then stops"
    );
    for cmd in [&b"set"[..], b"replace"] {
        let mut c = connect(&server.addrs()[0]);
        let t = Instant::now();
        c.write_all(cmd).unwrap();
        assert_eq!(read_n(&mut c, 1).unwrap(), b"T");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(25) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"cancel").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(c.read(&mut buf).is_err(), "a cancelled timer fired");
    assert_eq!(h.fired.lock().unwrap().len(), 2);
    server.shutdown().unwrap();
}

// ----- UDP: replies from another thread, send_to anyone -----------------------------

#[derive(Clone)]
struct UdpRelay(SocketAddr);
impl EventHandler for UdpRelay {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        assert!(conn.is_udp());
        let handle = conn.handle();
        let data = input.to_vec();
        thread::spawn(move || {
            let r = handle.write(data).wait();
            assert!(r.is_ok(), "{r:?}");
        });
        conn.send_to(self.0, b"copy").unwrap();
        Action::None
    }
}

#[test]
fn udp_replies_from_another_thread_and_send_to() {
    let watcher = UdpSocket::bind("127.0.0.1:0").unwrap();
    watcher
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for addr in ["udp://127.0.0.1:0", "udp://:0"] {
        let server = Builder::new()
            .start(UdpRelay(watcher.local_addr().unwrap()), &[addr])
            .unwrap();
        let port = inet(&server.addrs()[0]).port();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello", "{addr}");
        assert_eq!(from.port(), port);
        let n = watcher.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"copy", "{addr}");
        server.shutdown().unwrap();
    }
}

// ----- addresses and dialing ------------------------------------------------------------

#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<String>>>);
impl EventHandler for Peers {
    type Context = u32;
    fn on_opened(&mut self, conn: &mut Conn<'_, u32>) -> (Options, Action) {
        self.0.lock().unwrap().push(format!(
            "{} ctx={} dialed={}",
            conn.remote_addr(),
            conn.context(),
            conn.is_dialed()
        ));
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, u32>, input: &[u8]) -> Action {
        if let Some(target) = input.strip_prefix(b"dial ") {
            let target = std::str::from_utf8(target).unwrap().trim().to_string();
            let r = conn.dial(target.as_str(), 7).map(|id| id.loop_index());
            let w = conn
                .server()
                .dial(target.as_str(), 8u32)
                .map_err(|e| e.kind());
            conn.write(format!("{r:?} {w:?}").as_bytes());
        }
        Action::None
    }
}

#[test]
fn ipv4_peers_of_a_dual_stack_listener_are_ipv4() {
    if !has_ipv6_loopback() {
        eprintln!("skipped: no IPv6");
        return;
    }
    let h = Peers::default();
    let server = Builder::new().start(h.clone(), &["tcp://:0"]).unwrap();
    let port = inet(&server.addrs()[0]).port();
    let _c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    soon!(!h.0.lock().unwrap().is_empty());
    let seen = h.0.lock().unwrap()[0].clone();
    assert!(seen.starts_with("127.0.0.1:"), "{seen}");
    server.shutdown().unwrap();
}

fn dial_takes_strings_and_a_context<P: TestPoller>() {
    let h = Peers::default();
    let server = start::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0"]);
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://{}", peer.local_addr().unwrap());
    // From another thread: the id comes back, the context is set.
    let id: ConnId = server.dial(target.as_str(), 42u32).unwrap();
    let (_accepted, _) = peer.accept().unwrap();
    soon!(h.0.lock().unwrap().len() == 1);
    assert!(h.0.lock().unwrap()[0].ends_with("ctx=42 dialed=true"));
    assert!(id.loop_index() < 2);
    let handle = server.control().conn_handle(id).unwrap();
    assert_eq!(handle.id(), id);
    // A context of the wrong type does not compile (`ServerHandle<u32>`;
    // see the compile_fail example of `ServerControl::dial`).
    // Bad addresses are named.
    let e = server.dial("udp://127.0.0.1:1", 0u32).unwrap_err();
    assert!(e.to_string().contains("udp://127.0.0.1:1"), "{e}");
    // Inside a callback: Conn::dial takes a string; ServerControl::dial
    // would wait for the loop, so it refuses.
    let mut c = connect(&server.addrs()[0]);
    c.write_all(format!("dial {target}\n").as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        reply.starts_with("Ok(") && reply.ends_with("Err(WouldBlock)"),
        "{reply}"
    );
    let (_second, _) = peer.accept().unwrap();
    server.shutdown().unwrap();
}

// ----- a close never turns a detach into a close -------------------------------------

#[derive(Clone, Default)]
struct DetachThenClose(Arc<Mutex<Vec<String>>>);
impl EventHandler for DetachThenClose {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, _: &[u8]) -> Action {
        conn.write(b"bye");
        let me = conn.id();
        // Detach is returned below; a close of the same connection asked for
        // afterwards (here, as a proxy's other half would) must not win.
        let _ = me;
        Action::Detach
    }
    fn on_detached(&mut self, _: &mut Conn<'_, ()>, mut s: evio_core::DetachedStream) -> Action {
        self.0.lock().unwrap().push("detached".into());
        let _ = s.write_all(b"!");
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        self.0.lock().unwrap().push("closed".into());
        Action::None
    }
}

/// Closes its partner (by id) right after the partner asked to detach.
#[derive(Clone, Default)]
struct Partner {
    first: Arc<Mutex<Option<ConnId>>>,
    log: Arc<Mutex<Vec<String>>>,
}
impl EventHandler for Partner {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            *first = Some(conn.id());
        }
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        let first = self.first.lock().unwrap().unwrap();
        if input == b"detach" {
            conn.write(b"bye");
            return Action::Detach;
        }
        // The second connection closes the first, which is detaching.
        let closed = conn.peer(first).is_some_and(|mut p| p.close());
        self.log
            .lock()
            .unwrap()
            .push(format!("close_conn {closed}"));
        Action::None
    }
    fn on_detached(&mut self, _: &mut Conn<'_, ()>, mut s: evio_core::DetachedStream) -> Action {
        self.log.lock().unwrap().push("detached".into());
        let _ = s.write_all(b"!");
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        self.log.lock().unwrap().push("closed".into());
        Action::None
    }
}

#[derive(Clone)]
struct Stalled;
impl EventHandler for Stalled {
    type Context = ();
}

fn close_conn_does_not_turn_a_detach_into_a_close<P: TestPoller>() {
    let _ = DetachThenClose::default();
    let _ = Stalled;
    let h = Partner::default();
    // A tiny high-water mark is not needed: the first connection's output is
    // large and its client does not read yet, so the detach waits on it.
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut a = connect(&server.addrs()[0]);
    soon!(h.first.lock().unwrap().is_some());
    a.write_all(b"detach").unwrap();
    thread::sleep(Duration::from_millis(50));
    let mut b = connect(&server.addrs()[0]);
    b.write_all(b"close it").unwrap();
    soon!(h.log.lock().unwrap().len() >= 2);
    assert_eq!(read_n(&mut a, 4).unwrap(), b"bye!");
    let log = h.log.lock().unwrap().clone();
    assert!(log.contains(&"detached".to_string()), "{log:?}");
    assert!(!log.contains(&"closed".to_string()), "{log:?}");
    assert!(log.contains(&"close_conn false".to_string()), "{log:?}");
    server.shutdown().unwrap();
}

// ----- receipts keep the OS error -------------------------------------------------------

fn receipts_keep_the_os_error<P: TestPoller>() {
    let h = Handles::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let c = connect(&server.addrs()[0]);
    soon!(!h.0.lock().unwrap().is_empty());
    let handle = h.0.lock().unwrap()[0].clone();
    // The client resets (SO_LINGER 0) while a large write cannot finish.
    let receipt = handle.write(vec![0u8; 64 << 20]);
    thread::sleep(Duration::from_millis(50));
    socket2_reset(c);
    let e = receipt
        .wait_timeout(Duration::from_secs(10))
        .expect("a result")
        .unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(code) if code == 104 || code == 32),
        "want ECONNRESET or EPIPE with its code, got {e:?}"
    );
    server.shutdown().unwrap();
}

/// Closes a TCP stream with a reset (linger 0).
fn socket2_reset(c: TcpStream) {
    evio_sys::net::set_linger(&c, Some(Duration::ZERO)).unwrap();
    drop(c);
}

// ----- a reset is noticed while reading is paused --------------------------------------

#[derive(Clone, Default)]
struct PausedClose(Arc<Mutex<Vec<Option<io::ErrorKind>>>>);
impl EventHandler for PausedClose {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        conn.pause_reading();
        (Options::default(), Action::None)
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.0.lock().unwrap().push(err.map(|e| e.kind()));
        Action::None
    }
}

fn a_reset_is_noticed_while_reading_is_paused<P: TestPoller>() {
    let h = PausedClose::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(&[1u8; 1000]).unwrap();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(server.connections(), 1);
    socket2_reset(c);
    assert!(
        eventually(Duration::from_secs(5), || server.connections() == 0),
        "a paused connection's reset went unnoticed"
    );
    assert_eq!(
        h.0.lock().unwrap().as_slice(),
        [Some(io::ErrorKind::ConnectionReset)]
    );
    server.shutdown().unwrap();
}

// ----- Peer: handing state to another connection and waking it --------------------

/// The first connection of a pair gets, through its context, what the
/// second one reads, and writes it out when woken.
#[derive(Clone, Default)]
struct Relay {
    first: Arc<Mutex<Option<ConnId>>>,
    wakes: Arc<Mutex<usize>>,
}

#[derive(Default)]
struct RelayCtx {
    partner: Option<ConnId>,
    inbox: Vec<u8>,
}

impl EventHandler for Relay {
    type Context = RelayCtx;
    fn on_opened(&mut self, conn: &mut Conn<'_, RelayCtx>) -> (Options, Action) {
        let mut first = self.first.lock().unwrap();
        match first.take() {
            None => *first = Some(conn.id()),
            Some(id) => conn.context_mut().partner = Some(id),
        }
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, RelayCtx>, input: &[u8]) -> Action {
        let Some(partner) = conn.context().partner else {
            return Action::None;
        };
        let mut peer = conn.peer(partner).expect("the partner is open");
        peer.context_mut()
            .expect("live")
            .inbox
            .extend_from_slice(input);
        assert!(peer.wake());
        // Woken later in this iteration, not now.
        assert_eq!(*self.wakes.lock().unwrap(), 0);
        Action::None
    }
    fn on_wake(&mut self, conn: &mut Conn<'_, RelayCtx>) -> Action {
        *self.wakes.lock().unwrap() += 1;
        let inbox = std::mem::take(&mut conn.context_mut().inbox);
        conn.write(&inbox);
        Action::None
    }
}

fn peer_context_and_wake<P: TestPoller>() {
    let h = Relay::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut a = connect(&server.addrs()[0]);
    soon!(h.first.lock().unwrap().is_some());
    let mut b = connect(&server.addrs()[0]);
    soon!(server.connections() == 2);
    b.write_all(b"handed over").unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 11];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"handed over");
    assert_eq!(*h.wakes.lock().unwrap(), 1);
    server.shutdown().unwrap();
}

on_every_poller!(
    control_counts_and_stops,
    split_borrows_context_and_writer,
    owned_and_vectored_writes_keep_order,
    pause_and_resume_reading,
    shutdown_write_is_a_half_close,
    eof_can_keep_the_write_side_open,
    loop_ticks_and_connection_timers,
    dial_takes_strings_and_a_context,
    close_conn_does_not_turn_a_detach_into_a_close,
    receipts_keep_the_os_error,
    a_reset_is_noticed_while_reading_is_paused,
    peer_context_and_wake,
);
