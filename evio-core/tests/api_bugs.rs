//! The bugs a new user found with black-box probes of the API, each with
//! its regression test: an empty handle write, a UDP port in use, shutdown
//! and wait on a loop thread, a unix socket file left behind, waiting on a
//! receipt inside a callback. Public API only; each generic test runs on
//! every backend.

mod common;

use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::start_server as start;
use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, ServerHandle};

// ----- bug 1: an empty cross-thread write completes ------------------------------

fn empty_handle_write_completes_while_idle<P: TestPoller>() {
    let h = Handles::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    soon!(!h.0.lock().unwrap().is_empty());
    let handle = h.0.lock().unwrap()[0].clone();
    let r = handle
        .write(Vec::new())
        .wait_timeout(Duration::from_secs(2));
    assert!(
        matches!(r, Some(Ok(()))),
        "empty write on an idle conn: {r:?}"
    );
    // After queued bytes, an empty write completes only once they are out.
    let a = handle.write(vec![b'x'; 100_000]);
    let b = handle.write(Vec::new());
    assert_eq!(read_n(&mut c, 100_000).unwrap().len(), 100_000);
    assert!(a.wait_timeout(Duration::from_secs(5)).unwrap().is_ok());
    assert!(b.wait_timeout(Duration::from_secs(5)).unwrap().is_ok());
    server.shutdown().unwrap();
}

// ----- bug 2: a UDP port in use is refused (served by the shared `Echo`) ------------

#[test]
fn udp_port_in_use_is_refused_unless_reuseport() {
    let first = Builder::new().start(Echo, &["udp://127.0.0.1:0"]).unwrap();
    let port = inet(&first.addrs()[0]).port();
    let err = Builder::new()
        .start(Echo, &[format!("udp://127.0.0.1:{port}")])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string().contains(&port.to_string()),
        "names the address: {err}"
    );
    // The first still gets its datagrams.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"ping", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf).unwrap(), 4);
    first.shutdown().unwrap();
    // With reuseport asked for on both, sharing is allowed.
    let a = Builder::new()
        .start(Echo, &["udp://127.0.0.1:0?reuseport=true"])
        .unwrap();
    let port = inet(&a.addrs()[0]).port();
    let b = Builder::new().start(Echo, &[format!("udp://127.0.0.1:{port}?reuseport=true")]);
    assert!(b.is_ok(), "{b:?}");
}

// ----- bug 3: shutdown, wait and drop on a loop thread ---------------------------

/// Stops the server from inside `on_data` through a shared `ServerHandle`.
#[derive(Clone, Default)]
struct StopFromInside {
    server: Arc<Mutex<Option<Arc<ServerHandle>>>>,
    results: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for StopFromInside {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        let server = self.server.lock().unwrap().clone().unwrap();
        let mut results = self.results.lock().unwrap();
        results.push(format!("loop {}", conn.loop_index()));
        if input.starts_with(b"wait") {
            let e = server.wait().unwrap_err();
            results.push(format!("wait: {:?}", e.kind()));
            let e = server.control().wait().unwrap_err();
            results.push(format!("control wait: {:?}", e.kind()));
        }
        results.push(format!(
            "shutdown: {:?}",
            server.shutdown().map_err(|e| e.kind())
        ));
        Action::None
    }
}

fn shutdown_from_a_callback<P: TestPoller>() {
    for loops in [1, 2] {
        let h = StopFromInside::default();
        let server = Arc::new(start::<P, _>(h.clone(), loops, &["tcp://127.0.0.1:0"]));
        *h.server.lock().unwrap() = Some(server.clone());
        // With 2 loops, reach both: one of two connections lands on loop 1.
        let mut conns: Vec<TcpStream> = (0..2).map(|_| connect(&server.addrs()[0])).collect();
        conns[0].write_all(b"wait").unwrap();
        assert!(
            eventually(Duration::from_secs(5), || server.is_shutting_down()),
            "{loops} loops: shutdown from a callback did not start"
        );
        // The loop thread was not blocked: the server stops by itself.
        let done = Instant::now();
        server.wait().unwrap();
        assert!(done.elapsed() < Duration::from_secs(5));
        let results = h.results.lock().unwrap().clone();
        assert!(
            results.contains(&"wait: WouldBlock".to_string()),
            "{results:?}"
        );
        assert!(
            results.contains(&"control wait: WouldBlock".to_string()),
            "{results:?}"
        );
        assert!(
            results.contains(&"shutdown: Ok(())".to_string()),
            "{results:?}"
        );
        // The handler holds the last handle but one: drop ours first, so the
        // last drop happens on a loop thread when the handler goes.
        h.server.lock().unwrap().take();
        drop(server);
        for c in &mut conns {
            let _ = read_to_eof(c);
        }
    }
}

/// Holds the only `ServerHandle`, dropped when the loop drops its handler.
struct LastHandle(Arc<Mutex<Option<ServerHandle>>>);
impl EventHandler for LastHandle {
    type Context = ();
    fn on_data(&mut self, _: &mut Conn<'_, ()>, _: &[u8]) -> Action {
        // Dropping the last handle here starts the stop and must not wait.
        drop(self.0.lock().unwrap().take());
        Action::None
    }
}

fn dropping_the_last_handle_on_a_loop_thread<P: TestPoller>() {
    let slot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    let server = Builder::new()
        .poller(|_| P::make())
        .start_with(move |_| LastHandle(s2.clone()), &["tcp://127.0.0.1:0"])
        .unwrap();
    let addr = server.addrs()[0].clone();
    let control = server.control().clone();
    *slot.lock().unwrap() = Some(server);
    let mut c = connect(&addr);
    c.write_all(b"x").unwrap();
    soon!(control.is_stopped());
    assert_eq!(read_to_eof(&mut c).unwrap(), b"");
}

// ----- bug 4: no unix socket file left behind ------------------------------------

#[test]
fn a_failed_bind_removes_earlier_unix_socket_files() {
    let path = temp_sock("failed-bind");
    let _ = std::fs::remove_file(&path);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Builder::new()
        .start(
            Echo,
            &[
                format!("unix://{}", path.display()),
                format!("tcp://127.0.0.1:{port}"),
            ],
        )
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(!path.exists(), "{} was left behind", path.display());
}

// ----- bug 5: waiting on a receipt inside a callback -----------------------------

#[derive(Clone, Default)]
struct WaitsInCallback(Arc<Mutex<Vec<String>>>);
impl EventHandler for WaitsInCallback {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, _: &[u8]) -> Action {
        let receipt = conn.handle().write(b"late".to_vec());
        let began = Instant::now();
        let r = receipt.wait();
        let t = receipt.wait_timeout(Duration::from_secs(30));
        self.0.lock().unwrap().push(format!(
            "{:?} {:?} {}",
            r.map_err(|e| e.kind()),
            t.map(|t| t.map_err(|e| e.kind())),
            began.elapsed() < Duration::from_secs(1)
        ));
        Action::None
    }
}

fn waiting_on_a_receipt_in_a_callback_errs<P: TestPoller>() {
    let h = WaitsInCallback::default();
    let server = start::<P, _>(h.clone(), 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    // The write itself still happens once the callback returns.
    assert_eq!(read_n(&mut c, 4).unwrap(), b"late");
    assert_eq!(
        h.0.lock().unwrap().as_slice(),
        ["Err(WouldBlock) Some(Err(WouldBlock)) true"]
    );
    server.shutdown().unwrap();
}

on_every_poller!(
    empty_handle_write_completes_while_idle,
    shutdown_from_a_callback,
    dropping_the_last_handle_on_a_loop_thread,
    waiting_on_a_receipt_in_a_callback_errs,
);
