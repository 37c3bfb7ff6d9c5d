//! The tests of Go evio's `evio_test.go`, ported, and made to assert.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use evio_core::{
    Action, Builder, Conn, DetachedStream, EventHandler, InputStream, LoadBalance, Options,
    ServerInfo,
};

const GREETING: &[u8] = b"sweetness\r\n";

// ----- the serve matrix ---------------------------------------------------

#[derive(Default, Debug)]
struct Ctx {
    opened_by_us: bool,
    keepalive_on: bool,
}

#[derive(Clone)]
struct MatrixServer {
    clients: usize,
    closed: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    serving: Arc<Mutex<Option<ServerInfo<Ctx>>>>,
}

impl EventHandler for MatrixServer {
    type Context = Ctx;

    fn on_serving(&mut self, server: &ServerInfo<Ctx>) -> Action {
        *self.serving.lock().unwrap() = Some(server.clone());
        Action::None
    }

    fn on_opened(&mut self, conn: &mut Conn<'_, Ctx>) -> (Options, Action) {
        conn.write(GREETING);
        conn.set_context(Ctx {
            opened_by_us: true,
            keepalive_on: false,
        });
        let opts = Options::default().tcp_keep_alive(Some(Duration::from_secs(300)));
        (opts, Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Ctx>, input: &[u8]) -> Action {
        // Keep-alive was applied after on_opened; check it on first data.
        if conn.addr_index() == Some(0) && !conn.context().keepalive_on {
            let on = conn
                .fd()
                .map(|fd| evio_sys::net::keepalive(&fd).unwrap())
                .unwrap();
            conn.context_mut().keepalive_on = on;
            if !on {
                self.errors
                    .lock()
                    .unwrap()
                    .push("keep-alive not set".into());
            }
        }
        conn.write(input);
        Action::None
    }

    fn on_closed(&mut self, conn: &mut Conn<'_, Ctx>, err: Option<io::Error>) -> Action {
        if !conn.context().opened_by_us {
            self.errors
                .lock()
                .unwrap()
                .push("context lost before on_closed".into());
        }
        if let Some(e) = err {
            self.errors
                .lock()
                .unwrap()
                .push(format!("unexpected close error: {e}"));
        }
        if self.closed.fetch_add(1, Ordering::SeqCst) + 1 == self.clients {
            return Action::Shutdown;
        }
        Action::None
    }
}

/// One client: greeting first, then random chunks of 0..1 MiB echoed
/// byte-exact for `dur`.
fn echo_client<S: Read + Write + Send>(mut stream: S, writer: S, seed: u64, dur: Duration) {
    assert_eq!(read_n(&mut stream, GREETING.len()).unwrap(), GREETING);
    let mut rng = Rng::new(seed);
    let end = Instant::now() + dur;
    let mut writer = writer;
    while Instant::now() < end {
        let n = rng.below(1 << 20);
        let chunk = rng.bytes(n);
        std::thread::scope(|s| {
            let w = s.spawn(|| writer.write_all(&chunk).unwrap());
            let got = read_n(&mut stream, chunk.len()).unwrap();
            w.join().unwrap();
            assert!(
                got == chunk,
                "echo mismatch in a {} byte chunk",
                chunk.len()
            );
        });
    }
}

fn serve_matrix<P: common::TestPoller>(with_unix: bool, loops: isize, balance: LoadBalance) {
    let clients = 10;
    let sock = temp_sock(&format!("matrix-{with_unix}-{loops}-{balance:?}"));
    let mut addrs = vec!["tcp://127.0.0.1:0".to_string()];
    if with_unix {
        addrs.push(format!("unix://{}", sock.display()));
    }
    let handler = MatrixServer {
        clients,
        closed: Arc::new(AtomicUsize::new(0)),
        errors: Arc::default(),
        serving: Arc::default(),
    };
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .load_balance(balance)
        .start(handler.clone(), &addrs)
        .unwrap();
    let tcp = server.addrs()[0].clone();
    std::thread::scope(|s| {
        for i in 0..clients {
            let tcp = tcp.clone();
            let sock = sock.clone();
            s.spawn(move || {
                let dur = Duration::from_millis(300);
                if with_unix && i % 2 == 1 {
                    let c = UnixStream::connect(&sock).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let w = c.try_clone().unwrap();
                    echo_client(c, w, i as u64, dur);
                } else {
                    let c = connect(&tcp);
                    let w = c.try_clone().unwrap();
                    echo_client(c, w, i as u64, dur);
                }
            });
        }
    });
    // The server shuts itself down from on_closed once all clients left.
    server.wait().unwrap();
    assert_eq!(handler.closed.load(Ordering::SeqCst), clients);
    assert!(
        handler.errors.lock().unwrap().is_empty(),
        "{:?}",
        handler.errors.lock().unwrap()
    );
    let info = handler
        .serving
        .lock()
        .unwrap()
        .clone()
        .expect("on_serving fired");
    assert_eq!(info.addrs.len(), addrs.len());
    let want_loops = match loops {
        n if n < 0 => std::thread::available_parallelism().unwrap().get(),
        0 => 1,
        n => n as usize,
    };
    assert_eq!(info.num_loops, want_loops);
    if with_unix {
        assert!(!sock.exists(), "unix socket file left behind");
    }
}

/// One `fn name<P>()` per row, running [`serve_matrix`] with the row's
/// unix listener flag, loop count and balancing.
macro_rules! serve_cases {
    ($($name:ident: $unix:expr, $loops:expr, $balance:ident;)*) => {
        $(fn $name<P: common::TestPoller>() {
            serve_matrix::<P>($unix, $loops, LoadBalance::$balance)
        })*
    };
}

serve_cases! {
    serve_tcp_1_loop_random: false, 1, Random;
    serve_tcp_5_loops_least_connections: false, 5, LeastConnections;
    serve_tcp_all_cores_round_robin: false, -1, RoundRobin;
    serve_tcp_unix_1_loop_random: true, 1, Random;
    serve_tcp_unix_5_loops_least_connections: true, 5, LeastConnections;
    serve_tcp_unix_all_cores_round_robin: true, -1, RoundRobin;
}

// ----- tick ---------------------------------------------------------------

#[derive(Clone)]
struct Ticker {
    ticks: Arc<Mutex<Vec<Instant>>>,
}

impl EventHandler for Ticker {
    type Context = ();
    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        let mut t = self.ticks.lock().unwrap();
        t.push(Instant::now());
        if t.len() == 25 {
            return (None, Action::Shutdown);
        }
        (Some(Duration::from_millis(10)), Action::None)
    }
}

fn tick<P: common::TestPoller>() {
    let h = Ticker {
        ticks: Arc::default(),
    };
    let start = Instant::now();
    Builder::new()
        .poller(|_| P::make())
        .serve(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let took = start.elapsed();
    let ticks = h.ticks.lock().unwrap();
    assert_eq!(ticks.len(), 25);
    // 24 gaps of at least 10 ms each; a generous ceiling catches a stuck timer.
    for w in ticks.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(10),
            "tick early: {:?}",
            w[1] - w[0]
        );
    }
    assert!(took >= Duration::from_millis(240), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

// ----- shutdown -------------------------------------------------------------

#[derive(Clone)]
struct Shutter {
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl EventHandler for Shutter {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        count_open(&self.opened)
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        assert!(err.is_none());
        count_close(&self.closed)
    }
    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        if self.opened.load(Ordering::SeqCst) == 10 {
            return (None, Action::Shutdown);
        }
        (Some(Duration::from_millis(5)), Action::None)
    }
}

fn shutdown<P: common::TestPoller>() {
    let h = Shutter {
        opened: Arc::default(),
        closed: Arc::default(),
    };
    let server = start_server::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0"]);
    let mut clients: Vec<_> = (0..10).map(|_| connect(&server.addrs()[0])).collect();
    server.wait().unwrap();
    assert_eq!(h.closed.load(Ordering::SeqCst), 10);
    for c in &mut clients {
        assert_eq!(
            read_to_eof(c).unwrap(),
            b"",
            "socket should read EOF after shutdown"
        );
    }
}

fn shutdown_from_serving<P: common::TestPoller>() {
    #[derive(Clone)]
    struct Quit;
    impl EventHandler for Quit {
        type Context = ();
        fn on_serving(&mut self, _: &ServerInfo) -> Action {
            Action::Shutdown
        }
    }
    let start = Instant::now();
    Builder::new()
        .poller(|_| P::make())
        .serve(Quit, &["tcp://127.0.0.1:0"])
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
}

// ----- detach ---------------------------------------------------------------

#[derive(Clone)]
struct Detacher {
    detached: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl EventHandler for Detacher {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"detach" {
            // A large reply proves output is flushed before the hand-over.
            conn.write(&vec![b'x'; 4 << 20]);
            conn.write(b"detached\n");
            return Action::Detach;
        }
        conn.write(input);
        Action::None
    }
    fn on_detached(&mut self, _: &mut Conn<'_, ()>, mut stream: DetachedStream) -> Action {
        self.detached.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let mut reply = b"detached echo: ".to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        if stream.write_all(&reply).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        count_close(&self.closed)
    }
}

fn detach<P: common::TestPoller>() {
    let h = Detacher {
        detached: Arc::default(),
        closed: Arc::default(),
    };
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"detach").unwrap();
    let got = read_n(&mut c, (4 << 20) + 9).unwrap();
    assert!(got[..4 << 20].iter().all(|&b| b == b'x'));
    assert_eq!(&got[4 << 20..], b"detached\n");
    soon!(h.detached.load(Ordering::SeqCst) == 1);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 20).unwrap(), b"detached echo: hello");
    server.shutdown().unwrap();
    // Detached connections never see on_closed, even at shutdown.
    assert_eq!(h.closed.load(Ordering::SeqCst), 0);
    c.write_all(b"still").unwrap();
    assert_eq!(read_n(&mut c, 20).unwrap(), b"detached echo: still");
}

// ----- addresses ------------------------------------------------------------

#[derive(Clone)]
struct Nop;
impl EventHandler for Nop {
    type Context = ();
}

fn bad_addresses<P: common::TestPoller>() {
    for bad in ["tulip://howdy", "howdy", "tcp://:99999", "tcp://[::1:0"] {
        let err = Builder::new()
            .poller(|_| P::make())
            .start(Nop, &[bad])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}: {err}");
        assert!(
            err.to_string().contains(bad),
            "message should name {bad}: {err}"
        );
    }
    let server = start_server::<P, _>(Nop, 1, &["tcp://"]);
    assert_ne!(inet(&server.addrs()[0]).port(), 0);
    server.shutdown().unwrap();
    // A port in use is a clear error that names the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://127.0.0.1:{}", taken.local_addr().unwrap().port());
    let err = Builder::new()
        .poller(|_| P::make())
        .start(Nop, &[&addr])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
    // An unbindable unix path.
    let err = Builder::new()
        .poller(|_| P::make())
        .start(Nop, &["unix:///nonexistent-dir/evio.sock"])
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/evio.sock"),
        "{err}"
    );
}

// ----- InputStream ----------------------------------------------------------

#[derive(Clone)]
struct Lines;
impl EventHandler for Lines {
    type Context = InputStream;
    fn on_data(&mut self, conn: &mut Conn<'_, InputStream>, input: &[u8]) -> Action {
        let mut is = std::mem::take(conn.context_mut());
        let data = is.begin(input);
        let mut consumed = 0;
        let mut replies = Vec::new();
        while let Some(nl) = data[consumed..].iter().position(|&b| b == b'\n') {
            replies.extend_from_slice(b"line:");
            replies.extend_from_slice(&data[consumed..consumed + nl + 1]);
            consumed += nl + 1;
        }
        is.end(input, consumed);
        conn.write(&replies);
        conn.set_context(is);
        Action::None
    }
}

fn input_stream<P: common::TestPoller>() {
    let server = start_server::<P, _>(Lines, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.set_nodelay(true).unwrap();
    // Byte by byte, so every message is split across reads.
    for &b in b"hello\nworld\n" {
        c.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_n(&mut c, 22).unwrap(), b"line:hello\nline:world\n");
    server.shutdown().unwrap();
}

// ----- input is never shared between connections ------------------------------
//
// Go's evio had `ReuseInputBuffer`; here `on_data` always borrows the loop's
// one read buffer, so what one connection reads must never show up in
// another's input. The server is the shared `Echo`.

fn input_is_never_shared<P: common::TestPoller>() {
    for _ in 0..2 {
        let server = start_server::<P, _>(Echo, 1, &["tcp://127.0.0.1:0"]);
        // Two interleaved clients: input of one must never leak into the other.
        let mut a = connect(&server.addrs()[0]);
        let mut b = connect(&server.addrs()[0]);
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let (na, nb) = (1 + rng.below(5000), 1 + rng.below(5000));
            let (da, db) = (rng.bytes(na), rng.bytes(nb));
            a.write_all(&da).unwrap();
            b.write_all(&db).unwrap();
            assert_eq!(read_n(&mut a, da.len()).unwrap(), da);
            assert_eq!(read_n(&mut b, db.len()).unwrap(), db);
        }
        server.shutdown().unwrap();
    }
}

// ----- reuseport ------------------------------------------------------------

fn reuseport<P: common::TestPoller>() {
    let first = start_server::<P, _>(Echo, 1, &["tcp://127.0.0.1:0?reuseport=true"]);
    let port = inet(&first.addrs()[0]).port();
    let addr = format!("tcp://127.0.0.1:{port}?reuseport=true");
    let others: Vec<_> = (0..4)
        .map(|_| start_server::<P, _>(Echo, 1, &[&addr]))
        .collect();
    for _ in 0..20 {
        let mut c = connect(&first.addrs()[0]);
        assert_echo(&mut c, b"ping");
    }
    // Without reuseport the port is taken.
    assert!(Builder::new()
        .poller(|_| P::make())
        .start(Echo, &[format!("tcp://127.0.0.1:{port}")])
        .is_err());
    for s in others {
        s.shutdown().unwrap();
    }
    first.shutdown().unwrap();
}

on_every_poller!(
    serve_tcp_1_loop_random,
    serve_tcp_5_loops_least_connections,
    serve_tcp_all_cores_round_robin,
    serve_tcp_unix_1_loop_random,
    serve_tcp_unix_5_loops_least_connections,
    serve_tcp_unix_all_cores_round_robin,
    tick,
    shutdown,
    shutdown_from_serving,
    detach,
    bad_addresses,
    input_stream,
    input_is_never_shared,
    reuseport,
);
