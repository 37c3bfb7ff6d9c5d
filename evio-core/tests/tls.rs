//! TLS (the `tls` feature) with real rustls clients and servers: the same
//! handler on plain and TLS listeners, `on_opened` after the handshake,
//! SNI and ALPN, close_notify both ways, truncation, dialing over TLS,
//! detaching, and hostile peers (garbage, a byte at a time, 1,000
//! handshakes at once, records split at every byte).

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use evio_core::{Action, Builder, Conn, DetachedStream, EventHandler, Options};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Echo that greets on open and logs what it learns of each connection.
#[derive(Clone, Default)]
struct TlsEcho {
    log: Arc<Mutex<Vec<String>>>,
}

impl TlsEcho {
    /// Whether `line` was logged.
    fn logged(&self, line: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l == line)
    }
}

impl EventHandler for TlsEcho {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let line = match conn.tls() {
            Some(t) => format!(
                "opened tls sni={:?} alpn={:?} v={:?}",
                t.server_name(),
                t.alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                t.protocol_version()
            ),
            None => "opened plain".into(),
        };
        self.log.lock().unwrap().push(line);
        conn.write(b"hi\n");
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        match input {
            b"close" => {
                conn.write(b"bye");
                Action::Close
            }
            b"detach" => {
                conn.write(b"detaching");
                Action::Detach
            }
            _ => {
                conn.write(input);
                Action::None
            }
        }
    }
    fn on_eof(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.log.lock().unwrap().push("eof".into());
        conn.write(b"after eof");
        Action::Close
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log
            .lock()
            .unwrap()
            .push(format!("closed {:?}", err.map(|e| e.kind())));
        Action::None
    }
    fn on_detached(&mut self, _: &mut Conn<'_, ()>, mut stream: DetachedStream) -> Action {
        let tls = matches!(stream, DetachedStream::TlsServer(_));
        self.log.lock().unwrap().push(format!("detached tls={tls}"));
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(&buf[..n]);
                let _ = stream.write_all(b" (blocking)");
            }
        });
        Action::None
    }
}

fn start_tls<P: TestPoller>(h: TlsEcho, pki: &Pki) -> evio_core::ServerHandle {
    Builder::new()
        .poller(|_| P::make())
        .tls_config(pki.server.clone())
        .tls_handshake_timeout(Some(Duration::from_millis(500)))
        .start(h, &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"])
        .unwrap()
}

/// [`start_tls`], and a TLS client that read the greeting.
fn greeted<P: TestPoller>(h: TlsEcho, pki: &Pki) -> (evio_core::ServerHandle, TlsClient) {
    let server = start_tls::<P>(h, pki);
    let mut c = tls_connect(inet(&server.addrs()[1]), &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    (server, c)
}

/// [`start_tls`] with a fresh [`TlsEcho`] and certificates: the
/// certificates, the handler, the server and its TLS address.
fn served<P: TestPoller>() -> (Pki, TlsEcho, evio_core::ServerHandle, SocketAddr) {
    let pki = Pki::new();
    let h = TlsEcho::default();
    let server = start_tls::<P>(h.clone(), &pki);
    let addr = inet(&server.addrs()[1]);
    (pki, h, server, addr)
}

fn read_exactly(c: &mut impl Read, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    c.read_exact(&mut v).unwrap();
    v
}

// ----- the same handler, plain and TLS ----------------------------------------------

fn same_handler_plain_and_tls<P: TestPoller>() {
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let pki = Pki::with(versions, &[b"echo/1"]);
        let h = TlsEcho::default();
        let server = start_tls::<P>(h.clone(), &pki);
        let plain = inet(&server.addrs()[0]);
        let tls = inet(&server.addrs()[1]);
        let mut p = TcpStream::connect(plain).unwrap();
        assert_eq!(read_exactly(&mut p, 3), b"hi\n");
        let mut c = tls_connect(tls, &pki.client);
        // The greeting written in on_opened arrives encrypted.
        assert_eq!(read_exactly(&mut c, 3), b"hi\n");
        c.write_all(b"ping").unwrap();
        assert_eq!(read_exactly(&mut c, 4), b"ping");
        let log = h.log.lock().unwrap().clone();
        assert_eq!(log[0], "opened plain");
        let v = if versions[0] == &rustls::version::TLS13 {
            "TLSv1_3"
        } else {
            "TLSv1_2"
        };
        assert_eq!(
            log[1],
            format!("opened tls sni=Some(\"localhost\") alpn=Some(\"echo/1\") v=Some({v})")
        );
        server.shutdown().unwrap();
    }
}

/// A `defer_accept` TLS listener reads the ClientHello as it accepts and
/// answers the handshake before the connection is in the poller.
fn deferred_tls_listener<P: TestPoller>() {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return; // TCP_DEFER_ACCEPT is Linux's.
    }
    let pki = Pki::new();
    let h = TlsEcho::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .tls_config(pki.server.clone())
        .start(h.clone(), &["tls://127.0.0.1:0?defer_accept=true"])
        .unwrap();
    let addr = inet(&server.addrs()[0]);
    for i in 0..20 {
        let mut c = tls_connect(addr, &pki.client);
        assert_eq!(read_exactly(&mut c, 3), b"hi\n");
        let msg = format!("ping {i}");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_exactly(&mut c, msg.len()), msg.as_bytes());
        c.write_all(b"close").unwrap();
        assert_eq!(read_exactly(&mut c, 3), b"bye");
    }
    soon!(server.connections() == 0);
    server.shutdown().unwrap();
}

// ----- a big transfer with backpressure --------------------------------------------

fn big_transfer_both_ways<P: TestPoller>() {
    let pki = Pki::new();
    let (server, mut c) = greeted::<P>(TlsEcho::default(), &pki);
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 253) as u8).collect();
    // 64 KiB out, then everything echoed so far back in: a bounded amount
    // in flight, so a single-threaded client cannot deadlock the echo.
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 64 << 10];
    for chunk in data.chunks(64 << 10) {
        c.write_all(chunk).unwrap();
        let want = got.len() + chunk.len();
        while got.len() < want {
            let n = c.read(&mut buf[..want - got.len()]).unwrap();
            assert_ne!(n, 0, "EOF in the middle");
            got.extend_from_slice(&buf[..n]);
        }
    }
    let reader = got;
    assert!(reader == data, "8 MiB echoed over TLS, byte-exact");
    server.shutdown().unwrap();
}

// ----- close_notify, truncation -----------------------------------------------------

fn close_sends_close_notify_and_eof_is_read<P: TestPoller>() {
    let (pki, h, server, addr) = served::<P>();
    // Server closes: the client sees a clean TLS end (Ok(0), not an error).
    let mut c = tls_connect(addr, &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    c.write_all(b"close").unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("a clean close_notify, not a truncation");
    assert_eq!(rest, b"bye");
    // Client sends close_notify: on_eof fires, its reply still arrives.
    let mut c = tls_connect(addr, &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    c.conn.send_close_notify();
    c.flush().unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"after eof");
    // Client drops TCP without close_notify: a truncation error.
    let mut c = tls_connect(addr, &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    c.sock.shutdown(Shutdown::Both).unwrap();
    soon!(h.log.lock().unwrap().len() >= 7);
    let log = h.log.lock().unwrap().clone();
    assert_eq!(log[1], "closed None", "{log:?}");
    assert_eq!(log[3], "eof", "{log:?}");
    assert_eq!(log[4], "closed None", "{log:?}");
    assert_eq!(log[6], "closed Some(UnexpectedEof)", "{log:?}");
    // Shutdown sends close_notify to those still open.
    let mut c = tls_connect(addr, &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    server.shutdown().unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("close_notify at shutdown");
}

// ----- detach ---------------------------------------------------------------------------

fn detach_hands_over_a_tls_stream<P: TestPoller>() {
    let pki = Pki::new();
    let h = TlsEcho::default();
    let (server, mut c) = greeted::<P>(h.clone(), &pki);
    c.write_all(b"detach").unwrap();
    assert_eq!(read_exactly(&mut c, 9), b"detaching");
    c.write_all(b"still tls").unwrap();
    assert_eq!(read_exactly(&mut c, 20), b"still tls (blocking)");
    assert!(h
        .log
        .lock()
        .unwrap()
        .contains(&"detached tls=true".to_string()));
    server.shutdown().unwrap();
}

// ----- dialing over TLS -------------------------------------------------------------

/// Dials a TLS echo server on open and relays: what the client sends goes
/// to the backend, what the backend sends comes back.
#[derive(Clone)]
struct TlsRelay {
    backend: SocketAddr,
    config: Arc<ClientConfig>,
}

impl EventHandler for TlsRelay {
    type Context = Option<evio_core::ConnId>;
    fn on_opened(&mut self, conn: &mut Conn<'_, Self::Context>) -> (Options, Action) {
        if conn.is_dialed() {
            return (Options::default(), Action::None);
        }
        let me = conn.id();
        let peer = conn
            .dial_tls(self.backend, "localhost", self.config.clone(), Some(me))
            .unwrap();
        *conn.context_mut() = Some(peer);
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, Self::Context>, input: &[u8]) -> Action {
        let peer = conn.context().unwrap();
        if conn.peer(peer).is_some_and(|mut p| p.write(input)) {
            Action::None
        } else {
            Action::Close
        }
    }
}

fn dial_tls_relays_through_a_tls_backend<P: TestPoller>() {
    let pki = Pki::new();
    let backend = start_tls::<P>(TlsEcho::default(), &pki);
    let relay = Builder::new()
        .poller(|_| P::make())
        .start(
            TlsRelay {
                backend: inet(&backend.addrs()[1]),
                config: pki.client.clone(),
            },
            &["tcp://127.0.0.1:0"],
        )
        .unwrap();
    let mut c = TcpStream::connect(inet(&relay.addrs()[0])).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The backend's greeting comes through the relay, then the echo.
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    c.write_all(b"through tls").unwrap();
    assert_eq!(read_exactly(&mut c, 11), b"through tls");
    relay.shutdown().unwrap();
    backend.shutdown().unwrap();
}

// ----- hostile peers ------------------------------------------------------------------

fn garbage_closes_only_that_connection<P: TestPoller>() {
    let (pki, h, server, addr) = served::<P>();
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // An alert (or nothing), then EOF: never a hang.
    let mut sink = Vec::new();
    let _ = bad.read_to_end(&mut sink);
    assert!(sink.len() < 64, "only an alert: {sink:?}");
    // Others are served.
    let mut c = tls_connect(addr, &pki.client);
    assert_eq!(read_exactly(&mut c, 3), b"hi\n");
    soon!(h.logged("closed Some(InvalidData)"));
    server.shutdown().unwrap();
}

fn slow_handshakes_time_out_and_others_are_served<P: TestPoller>() {
    let (pki, h, server, addr) = served::<P>();
    // A real ClientHello, sent a byte every 100 ms (500 ms allowed).
    let mut hello = Vec::new();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(pki.client.clone(), name).unwrap();
    conn.write_tls(&mut hello).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut cut = false;
    for b in hello.iter().take(30) {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
        // Meanwhile a normal client is served at once.
        if t.elapsed() < Duration::from_millis(150) {
            let mut c = tls_connect(addr, &pki.client);
            assert_eq!(read_exactly(&mut c, 3), b"hi\n");
        }
    }
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = [0u8; 16];
    let closed = cut || matches!(slow.read(&mut sink), Ok(0) | Err(_));
    assert!(closed, "the slow handshake was not cut");
    soon!(h.logged("closed Some(TimedOut)"));
    server.shutdown().unwrap();
}

fn a_thousand_handshakes_at_once<P: TestPoller>() {
    let want = 1000usize;
    let have = evio_sys::net::raise_fd_limit(4 * want as u64).unwrap_or(0);
    let n = if have >= 3 * want as u64 {
        want
    } else {
        (have as usize / 3).max(50)
    };
    let pki = Pki::new();
    // The handshakes finish one after another as this thread reads: give
    // them the default 10 s.
    let server = Builder::new()
        .poller(|_| P::make())
        .tls_config(pki.server.clone())
        .start(
            TlsEcho::default(),
            &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"],
        )
        .unwrap();
    let addr = inet(&server.addrs()[1]);
    // Every ClientHello is out before any handshake is finished.
    let mut clients: Vec<TlsClient> = (0..n)
        .map(|_| {
            let mut c = tls_connect(addr, &pki.client);
            let mut hello = Vec::new();
            c.conn.write_tls(&mut hello).unwrap();
            c.sock.write_all(&hello).unwrap();
            c
        })
        .collect();
    for c in &mut clients {
        assert_eq!(read_exactly(c, 3), b"hi\n");
    }
    assert!(eventually(Duration::from_secs(10), || server.connections() == n));
    drop(clients);
    assert!(eventually(Duration::from_secs(10), || server.connections() == 0));
    server.shutdown().unwrap();
}

fn records_split_at_every_byte_boundary<P: TestPoller>() {
    let pki = Pki::new();
    let (server, mut c) = greeted::<P>(TlsEcho::default(), &pki);
    // One record of a known message; its bytes are sent in two writes,
    // split at every position in turn.
    let msg = b"split me anywhere";
    let mut record = Vec::new();
    c.conn.writer().write_all(msg).unwrap();
    c.conn.write_tls(&mut record).unwrap();
    let len = record.len();
    for cut in 1..len {
        let mut r = Vec::new();
        c.conn.writer().write_all(msg).unwrap();
        c.conn.write_tls(&mut r).unwrap();
        if cut == 1 {
            // The first record (encrypted above) goes whole.
            c.sock.write_all(&record).unwrap();
            assert_eq!(read_exactly(&mut c, msg.len()), msg);
        }
        c.sock.write_all(&r[..cut]).unwrap();
        c.sock.flush().unwrap();
        thread::sleep(Duration::from_millis(2));
        c.sock.write_all(&r[cut..]).unwrap();
        assert_eq!(
            read_exactly(&mut c, msg.len()),
            msg,
            "cut at {cut} of {len}"
        );
    }
    server.shutdown().unwrap();
}

// ----- configuration errors -----------------------------------------------------------

#[test]
fn a_tls_address_without_a_config_is_refused() {
    let e = Builder::new()
        .start(TlsEcho::default(), &["tls://127.0.0.1:0"])
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("tls_config"), "{e}");
    let e = evio_core::ToAddr::to_addr("tls://127.0.0.1:1").unwrap_err();
    assert!(e.to_string().contains("dial_tls"), "{e}");
}

on_every_poller!(
    same_handler_plain_and_tls,
    deferred_tls_listener,
    big_transfer_both_ways,
    close_sends_close_notify_and_eof_is_read,
    detach_hands_over_a_tls_stream,
    dial_tls_relays_through_a_tls_backend,
    garbage_closes_only_that_connection,
    slow_handshakes_time_out_and_others_are_served,
    a_thousand_handshakes_at_once,
    records_split_at_every_byte_boundary,
);
