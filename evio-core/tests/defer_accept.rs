//! `?defer_accept=true` listeners (Linux `TCP_DEFER_ACCEPT`): connections
//! are read as soon as they are accepted and registered with the poller
//! only if they stay open. Served the same as any other: echo, replies
//! followed by a close, big inputs whose echo cannot be written at once,
//! clients that wait before speaking, hand-off to other loops.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, Options, ToAddr};

/// Echoes; `bye` is answered with `ok` and a close.
#[derive(Clone, Default)]
struct Echo {
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl EventHandler for Echo {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        count_open(&self.opened)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"bye" {
            conn.write(b"ok");
            return Action::Close;
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        count_close(&self.closed)
    }
}

fn deferred_connections_are_served_like_any_other<P: TestPoller>() {
    let h = Echo::default();
    let server = start_server::<P, _>(h.clone(), 2, &["tcp://127.0.0.1:0?defer_accept=true"]);
    let addr = &server.addrs()[0];
    // Keep-alive: several round trips on one connection.
    let mut kept = connect(addr);
    for i in 0..20 {
        let msg = format!("msg {i}");
        kept.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(&mut kept, msg.len()).unwrap(), msg.as_bytes());
    }
    // A request answered with a close, many times over (never registered).
    for _ in 0..200 {
        let mut c = connect(addr);
        c.write_all(b"bye").unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"ok");
    }
    // An input far larger than a socket buffer: the echo cannot leave at
    // once and must resume once the connection is registered.
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let mut c = connect(addr);
    let writer = {
        let mut w = c.try_clone().unwrap();
        let big = big.clone();
        std::thread::spawn(move || {
            w.write_all(&big).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while echoed.len() < big.len() {
        let mut buf = [0u8; 65536];
        match c.read(&mut buf).unwrap() {
            0 => break,
            n => echoed.extend_from_slice(&buf[..n]),
        }
    }
    writer.join().unwrap();
    assert!(
        echoed == big,
        "echo of 4 MiB differs ({} bytes)",
        echoed.len()
    );
    // A client that connects and speaks only later is still served.
    let mut late = connect(addr);
    std::thread::sleep(Duration::from_millis(300));
    assert_echo(&mut late, b"late");
    // The big one half-closed, so the server closed it after the echo.
    soon!(server.connections() == 2);
    drop((kept, c, late));
    soon!({ h.closed.load(Ordering::SeqCst) == 203 && server.connections() == 0 });
    assert_eq!(h.opened.load(Ordering::SeqCst), 203);
    server.shutdown().unwrap();
}

/// A client that never speaks is accepted anyway after the defer window
/// (about a second and a SYN-ACK retransmission), so it meets the usual
/// timeouts instead of hiding in the kernel.
#[test]
fn a_silent_client_is_accepted_after_the_defer_window() {
    let h = Echo::default();
    let server = Builder::new()
        .start(h.clone(), &["tcp://127.0.0.1:0?defer_accept=1"])
        .unwrap();
    let _silent = connect(&server.addrs()[0]);
    assert!(eventually(Duration::from_secs(15), || h
        .opened
        .load(Ordering::SeqCst)
        == 1));
    server.shutdown().unwrap();
}

#[test]
fn defer_accept_is_for_tcp_listeners_only() {
    for bad in [
        "udp://127.0.0.1:0?defer_accept=true",
        "unix:///tmp/evio-defer.sock?defer_accept=true",
    ] {
        let err = Builder::new().start(Echo::default(), &[bad]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        assert!(err.to_string().contains("defer_accept"), "{err}");
    }
    let err = "tcp://127.0.0.1:80?defer_accept=true"
        .to_addr()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // Off is accepted and means a plain listener.
    let server = Builder::new()
        .start(Echo::default(), &["tcp://127.0.0.1:0?defer_accept=false"])
        .unwrap();
    let mut c = connect(&server.addrs()[0]);
    assert_echo(&mut c, b"x");
    server.shutdown().unwrap();
}

on_every_poller!(deferred_connections_are_served_like_any_other);
