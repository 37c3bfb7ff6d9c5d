//! What Go evio never tested: UDP, wakes, pre-write, exact balancing,
//! close with pending output, addresses, IPv6, unix socket cleanup.

mod common;

use std::io::{self, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use evio_core::{Action, Addr, Builder, Conn, ConnHandle, EventHandler, LoadBalance, Options};

// ----- UDP ------------------------------------------------------------------

#[derive(Clone, Default)]
struct UdpEcho {
    events: Arc<Mutex<Vec<(Addr, bool)>>>,
    opened: Arc<AtomicUsize>,
}

impl EventHandler for UdpEcho {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        count_open(&self.opened)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        self.events
            .lock()
            .unwrap()
            .push((conn.remote_addr().clone(), conn.is_udp()));
        conn.write(b"echo:");
        conn.write(input);
        Action::None
    }
}

fn udp_echo_on(scheme: &str, host: &str) {
    let h = UdpEcho::default();
    let server = Builder::new()
        .start(h.clone(), &[format!("{scheme}://{host}:0")])
        .unwrap();
    let server_addr = inet(&server.addrs()[0]);
    let bind = if server_addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let client = UdpSocket::bind(bind).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..20u32 {
        let msg = format!("datagram {i}");
        client.send_to(msg.as_bytes(), server_addr).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, server_addr);
        assert_eq!(
            &buf[..n],
            format!("echo:{msg}").as_bytes(),
            "one reply datagram per datagram"
        );
    }
    server.shutdown().unwrap();
    let events = h.events.lock().unwrap();
    assert_eq!(events.len(), 20);
    let me = client.local_addr().unwrap();
    for (remote, udp) in events.iter() {
        assert!(udp);
        assert_eq!(remote, &Addr::Inet(me), "remote_addr is the sender");
    }
    assert_eq!(h.opened.load(Ordering::SeqCst), 0, "no on_opened for UDP");
}

#[test]
fn udp_echo_v4() {
    udp_echo_on("udp4", "127.0.0.1");
    udp_echo_on("udp", "127.0.0.1");
}

#[test]
fn udp_echo_v6() {
    if !has_ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    udp_echo_on("udp6", "[::1]");
    udp_echo_on("udp", "[::1]");
}

#[test]
fn udp_on_poll_backend() {
    let server = Builder::new()
        .poller(|_| evio_core::PollPoller::new())
        .start(UdpEcho::default(), &["udp://127.0.0.1:0"])
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"x", inet(&server.addrs()[0])).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"echo:x");
    server.shutdown().unwrap();
}

// ----- wakes ------------------------------------------------------------------

#[derive(Clone, Default)]
struct Wakeable {
    wakers: Arc<Mutex<Vec<ConnHandle>>>,
    /// Wakes seen, per connection id (the context).
    wakes: Arc<Mutex<Vec<usize>>>,
    next_id: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl EventHandler for Wakeable {
    type Context = usize;
    fn on_opened(&mut self, conn: &mut Conn<'_, usize>) -> (Options, Action) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        conn.set_context(id);
        self.wakers.lock().unwrap().push(conn.handle());
        self.wakes.lock().unwrap().push(0);
        conn.write(&[id as u8]);
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, usize>, input: &[u8]) -> Action {
        if input.is_empty() {
            self.wakes.lock().unwrap()[*conn.context()] += 1;
            conn.write(b"w");
            return Action::None;
        }
        if input == b"close" {
            conn.write(b"bye");
            return Action::Close;
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, usize>, _: Option<io::Error>) -> Action {
        count_close(&self.closed)
    }
}

fn wake_from_another_thread<P: common::TestPoller>() {
    let h = Wakeable::default();
    let server = start_server::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    assert_eq!(read_n(&mut c, 1).unwrap(), [0]);
    let waker = h.wakers.lock().unwrap()[0].clone();
    // 10,000 wakes from four threads: each one is delivered once.
    std::thread::scope(|s| {
        for _ in 0..4 {
            let w = waker.clone();
            s.spawn(move || {
                for _ in 0..2500 {
                    w.wake().unwrap();
                }
            });
        }
    });
    let got = read_n(&mut c, 10_000).unwrap();
    assert!(got.iter().all(|&b| b == b'w'));
    assert_eq!(h.wakes.lock().unwrap()[0], 10_000);
    server.shutdown().unwrap();
    assert!(
        waker.wake().is_err(),
        "a wake after the server stopped reports an error"
    );
}

fn stale_wake_is_dropped<P: common::TestPoller>() {
    let h = Wakeable::default();
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut first = connect(&server.addrs()[0]);
    assert_eq!(read_n(&mut first, 1).unwrap(), [0]);
    first.write_all(b"close").unwrap();
    assert_eq!(read_to_eof(&mut first).unwrap(), b"bye");
    soon!(h.closed.load(Ordering::SeqCst) == 1);
    // The next connection reuses the slab slot (and likely the fd number).
    let mut second = connect(&server.addrs()[0]);
    assert_eq!(read_n(&mut second, 1).unwrap(), [1]);
    let stale = h.wakers.lock().unwrap()[0].clone();
    for _ in 0..100 {
        stale.wake().unwrap();
    }
    // A live wake after the stale ones proves they were processed (same channel).
    let live = h.wakers.lock().unwrap()[1].clone();
    live.wake().unwrap();
    assert_eq!(read_n(&mut second, 1).unwrap(), b"w");
    assert_eq!(*h.wakes.lock().unwrap(), vec![0, 1]);
    server.shutdown().unwrap();
}

/// A wake never replaces pending output nor cancels a pending close (evio #72).
fn wake_keeps_output_and_close<P: common::TestPoller>() {
    #[derive(Clone, Default)]
    struct Big {
        waker: Arc<Mutex<Option<ConnHandle>>>,
    }
    impl EventHandler for Big {
        type Context = ();
        fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
            if input.is_empty() {
                conn.write(b"WAKE");
                return Action::None;
            }
            *self.waker.lock().unwrap() = Some(conn.handle());
            conn.write(&vec![b'a'; 8 << 20]);
            Action::Close
        }
    }
    let h = Big::default();
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    soon!(h.waker.lock().unwrap().is_some());
    // The client is not reading, so 8 MiB stays queued while we wake.
    let w = h.waker.lock().unwrap().clone().unwrap();
    for _ in 0..10 {
        w.wake().unwrap();
    }
    let got = read_to_eof(&mut c).unwrap();
    assert_eq!(got.len(), 8 << 20);
    assert!(got.iter().all(|&b| b == b'a'));
    server.shutdown().unwrap();
}

// ----- pre-write ----------------------------------------------------------------

fn pre_write_fires_before_output<P: common::TestPoller>() {
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<&'static str>>>);
    impl EventHandler for Log {
        type Context = ();
        fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
            self.0.lock().unwrap().push("data");
            conn.write(input);
            Action::None
        }
        fn on_pre_write(&mut self) {
            self.0.lock().unwrap().push("pre_write");
        }
    }
    let h = Log::default();
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    for _ in 0..3 {
        assert_echo(&mut c, b"hi");
        // The reply has arrived, so pre_write already ran after on_data.
        assert_eq!(h.0.lock().unwrap().last(), Some(&"pre_write"));
    }
    assert_eq!(
        *h.0.lock().unwrap(),
        [
            "data",
            "pre_write",
            "data",
            "pre_write",
            "data",
            "pre_write"
        ]
    );
    server.shutdown().unwrap();
}

// ----- balancing ------------------------------------------------------------------

#[derive(Clone)]
struct PerLoop {
    loop_index: usize,
    open: Arc<Vec<AtomicUsize>>,
    total: Arc<Vec<AtomicUsize>>,
}

impl EventHandler for PerLoop {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.open[self.loop_index].fetch_add(1, Ordering::SeqCst);
        self.total[self.loop_index].fetch_add(1, Ordering::SeqCst);
        conn.write(&[self.loop_index as u8]);
        (Options::default(), Action::None)
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        self.open[self.loop_index].fetch_sub(1, Ordering::SeqCst);
        Action::None
    }
}

fn per_loop_server<P: common::TestPoller>(
    policy: LoadBalance,
) -> (
    evio_core::ServerHandle,
    Arc<Vec<AtomicUsize>>,
    Arc<Vec<AtomicUsize>>,
) {
    let open: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let total: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let proto = PerLoop {
        loop_index: 0,
        open: open.clone(),
        total: total.clone(),
    };
    // One handler per loop that knows its index: `start` clones, so give
    // each clone its index on first use via a factory-like wrapper.
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(4)
        .load_balance(policy)
        .start(IndexedPerLoop(proto, None), &["tcp://127.0.0.1:0"])
        .unwrap();
    (server, open, total)
}

/// Learns its loop index from the greeting order-independent way: the loop
/// thread's name, `evio-loop-N`.
#[derive(Clone)]
struct IndexedPerLoop(PerLoop, Option<usize>);

impl EventHandler for IndexedPerLoop {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let i = *self.1.get_or_insert_with(|| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            name.trim_start_matches("evio-loop-").parse().unwrap()
        });
        self.0.loop_index = i;
        self.0.on_opened(conn)
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.0.on_closed(conn, err)
    }
}

fn round_robin_is_exact<P: common::TestPoller>() {
    let (server, _, total) = per_loop_server::<P>(LoadBalance::RoundRobin);
    for k in 0..100 {
        let mut c = connect(&server.addrs()[0]);
        assert_eq!(read_n(&mut c, 1).unwrap(), [(k % 4) as u8]);
    }
    let counts: Vec<usize> = total.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [25, 25, 25, 25]);
    server.shutdown().unwrap();
}

fn least_connections_picks_the_emptiest<P: common::TestPoller>() {
    let (server, open, _) = per_loop_server::<P>(LoadBalance::LeastConnections);
    let mut held = Vec::new();
    for _ in 0..12 {
        let mut c = connect(&server.addrs()[0]);
        let lp = read_n(&mut c, 1).unwrap()[0];
        held.push((lp, c));
        let counts: Vec<usize> = open.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "unbalanced: {counts:?}");
    }
    // Empty loop 2; the next two connections must both go there.
    held.retain(|(lp, _)| *lp != 2);
    soon!(open[2].load(Ordering::SeqCst) == 0);
    for _ in 0..3 {
        let mut c = connect(&server.addrs()[0]);
        let lp = read_n(&mut c, 1).unwrap()[0];
        assert_eq!(lp, 2);
        held.push((lp, c));
    }
    server.shutdown().unwrap();
}

// ----- close with pending output -----------------------------------------------------

fn close_delivers_all_pending_output<P: common::TestPoller>() {
    #[derive(Clone)]
    struct Flood;
    impl EventHandler for Flood {
        type Context = ();
        fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
            let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
            conn.write(&data);
            (Options::default(), Action::Close)
        }
    }
    let server = start_server::<P, _>(Flood, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    std::thread::sleep(Duration::from_millis(50)); // let the socket fill up first
    let got = read_to_eof(&mut c).unwrap();
    assert_eq!(got.len(), 8 << 20);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    server.shutdown().unwrap();
}

/// Half-close: the client shuts its write side; everything already sent is
/// still answered before the server closes.
fn half_close_is_answered<P: common::TestPoller>() {
    let server = start_server::<P, _>(Echo, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    let data = Rng::new(3).bytes(3 << 20);
    let mut w = c.try_clone().unwrap();
    let d2 = data.clone();
    let t = std::thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let got = read_to_eof(&mut c).unwrap();
    t.join().unwrap();
    assert!(got == data, "got {} of {} bytes", got.len(), data.len());
    server.shutdown().unwrap();
}

// ----- addresses ------------------------------------------------------------------

#[derive(Clone, Default)]
struct Addrs(Arc<Mutex<Vec<(Addr, Addr, usize)>>>);
impl EventHandler for Addrs {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.0.lock().unwrap().push((
            conn.local_addr(),
            conn.remote_addr().clone(),
            conn.addr_index().unwrap(),
        ));
        conn.write(b"!");
        (Options::default(), Action::None)
    }
}

fn local_and_remote_addresses<P: common::TestPoller>() {
    let h = Addrs::default();
    let sock = temp_sock(&format!("addrs-{}", std::any::type_name::<P>().len()));
    let mut addrs = vec![
        "tcp4://127.0.0.1:0".to_string(),
        format!("unix://{}", sock.display()),
    ];
    let v6 = has_ipv6_loopback();
    if v6 {
        addrs.push("tcp6://[::1]:0".into());
    }
    let server = start_server::<P, _>(h.clone(), 1, &addrs);
    let mut c = connect(&server.addrs()[0]);
    read_n(&mut c, 1).unwrap();
    let mut u = UnixStream::connect(&sock).unwrap();
    read_n(&mut u, 1).unwrap();
    let mut c6 = v6.then(|| connect(&server.addrs()[2]));
    if let Some(c6) = &mut c6 {
        read_n(c6, 1).unwrap();
    }
    let seen = h.0.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        (
            Addr::Inet(c.peer_addr().unwrap()),
            Addr::Inet(c.local_addr().unwrap()),
            0
        )
    );
    assert_eq!(seen[1].0, Addr::Unix(Some(sock.clone())));
    assert_eq!(seen[1].1, Addr::Unix(None));
    assert_eq!(seen[1].2, 1);
    if let Some(c6) = &c6 {
        assert_eq!(
            seen[2],
            (
                Addr::Inet(c6.peer_addr().unwrap()),
                Addr::Inet(c6.local_addr().unwrap()),
                2
            )
        );
        assert!(inet(&seen[2].1).is_ipv6());
    }
    assert!(sock.exists());
    server.shutdown().unwrap();
    assert!(!sock.exists(), "unix socket file removed at shutdown");
}

fn dual_stack_tcp<P: common::TestPoller>() {
    if !has_ipv6_loopback() {
        return;
    }
    let h = Addrs::default();
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://:0"]);
    let port = inet(&server.addrs()[0]).port();
    for host in ["127.0.0.1", "[::1]"] {
        let mut c = std::net::TcpStream::connect(format!("{host}:{port}")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_n(&mut c, 1).unwrap(), b"!");
    }
    server.shutdown().unwrap();
}

fn stale_unix_socket_file_is_replaced<P: common::TestPoller>() {
    let sock = temp_sock(&format!("stale-{}", std::any::type_name::<P>().len()));
    // A socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let server = Builder::new()
        .poller(|_| P::make())
        .start(Addrs::default(), &[format!("unix://{}", sock.display())])
        .unwrap();
    let mut u = UnixStream::connect(&sock).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    u.read_exact(&mut b).unwrap();
    // A live socket is not stolen by a second server.
    let err = Builder::new()
        .poller(|_| P::make())
        .start(Addrs::default(), &[format!("unix://{}", sock.display())])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    server.shutdown().unwrap();
    assert!(!sock.exists());
    // A regular file at the path is never deleted.
    std::fs::write(&sock, b"precious").unwrap();
    assert!(Builder::new()
        .poller(|_| P::make())
        .start(Addrs::default(), &[format!("unix://{}", sock.display())])
        .is_err());
    assert_eq!(std::fs::read(&sock).unwrap(), b"precious");
    std::fs::remove_file(&sock).unwrap();
}

// ----- peers that reset ---------------------------------------------------------------

fn reset_while_writing_closes_only_that_conn<P: common::TestPoller>() {
    let h = Streamer::new(16 << 20);
    let server = start_server::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut victim = connect(&server.addrs()[0]);
    victim.write_all(b"big").unwrap();
    let mut some = [0u8; 1000];
    victim.read_exact(&mut some).unwrap();
    // Closing with unread input pending makes the kernel send an RST,
    // while the server still has megabytes to write.
    drop(victim);
    soon!(h.closes.lock().unwrap().len() == 1);
    let kind = h.closes.lock().unwrap()[0];
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{kind:?}"
    );
    // The process survived (no SIGPIPE) and still serves others.
    let mut other = connect(&server.addrs()[0]);
    assert_echo(&mut other, b"still here");
    server.shutdown().unwrap();
}

on_every_poller!(
    wake_from_another_thread,
    stale_wake_is_dropped,
    wake_keeps_output_and_close,
    pre_write_fires_before_output,
    round_robin_is_exact,
    least_connections_picks_the_emptiest,
    close_delivers_all_pending_output,
    half_close_is_answered,
    local_and_remote_addresses,
    dual_stack_tcp,
    stale_unix_socket_file_is_replaced,
    reset_while_writing_closes_only_that_conn,
);

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<ConnHandle>();
    assert_send_sync::<evio_core::ServerHandle>();
}
