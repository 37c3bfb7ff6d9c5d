//! `ServerControl::metrics`: the per-loop counters count what happened,
//! on every poller, plain and TLS.

mod common;

use std::io::Write;

use common::*;
use evio_core::{Builder, LoadBalance, LoopMetrics};

fn total(ms: &[LoopMetrics], f: impl Fn(&LoopMetrics) -> u64) -> u64 {
    ms.iter().map(f).sum()
}

fn counts_connections_and_bytes<P: TestPoller>() {
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(2)
        .load_balance(LoadBalance::RoundRobin)
        .start(Echo, &["tcp://127.0.0.1:0"])
        .unwrap();
    let before = server.control().metrics();
    assert_eq!(before.len(), 2, "one entry per loop");
    assert_eq!(total(&before, |m| m.connections_accepted), 0);
    let mut conns = Vec::new();
    for i in 0..10u8 {
        let mut c = connect(&server.addrs()[0]);
        c.write_all(&[i; 100]).unwrap();
        assert_eq!(read_n(&mut c, 100).unwrap(), [i; 100]);
        conns.push(c);
    }
    let control = server.control().clone();
    soon!({
        let m = control.metrics();
        total(&m, |m| m.connections_accepted) == 10
            && total(&m, |m| m.connections_open) == 10
            && total(&m, |m| m.bytes_read) == 1000
            && total(&m, |m| m.bytes_written) == 1000
    });
    drop(conns);
    soon!({
        let m = control.metrics();
        total(&m, |m| m.connections_closed) == 10 && total(&m, |m| m.connections_open) == 0
    });
    let m = control.metrics();
    assert!(m.iter().all(|m| m.iterations > 0), "{m:?}");
    assert_eq!(m[1].connections_accepted, 5, "round robin: {m:?}");
    // Loop 1 got its five through its mailbox: woken.
    assert!(total(&m, |m| m.wakes) > 0, "{m:?}");
    assert_eq!(total(&m, |m| m.accept_out_of_fds), 0);
    server.shutdown().unwrap();
}

fn counts_tls_handshakes_and_failures<P: TestPoller>() {
    let pki = Pki::new();
    let server = Builder::new()
        .poller(|_| P::make())
        .tls_config(pki.server.clone())
        .start(Echo, &["tls://127.0.0.1:0"])
        .unwrap();
    for _ in 0..3 {
        let mut c = tls_connect(&server.addrs()[0], &pki.client);
        assert_echo(&mut c, b"hi");
    }
    // Not TLS at all: the handshake fails.
    let mut plain = connect(&server.addrs()[0]);
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let control = server.control().clone();
    soon!({
        let m = control.metrics();
        total(&m, |m| m.tls_handshakes) == 3 && total(&m, |m| m.tls_handshake_failures) == 1
    });
    server.shutdown().unwrap();
}

on_every_poller!(
    counts_connections_and_bytes,
    counts_tls_handshakes_and_failures
);
