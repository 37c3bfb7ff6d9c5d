//! floor-server with real clients: every mode answers what it must, across
//! split requests, pipelines and `Connection: close`. No timing asserted.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::*;

fn start_floor(mode: &str) -> (Process, u16) {
    start(env!("CARGO_BIN_EXE_floor-server"), &["--mode", mode])
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).unwrap();
    got
}

#[test]
fn redis_answers_inline_and_bulk_pings_split_anywhere() {
    let (_srv, port) = start_floor("redis");
    let mut s = connect(port);
    let reqs = b"PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n";
    // One byte at a time: every request is split across reads.
    for b in reqs {
        s.write_all(&[*b]).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_exactly(&mut s, 21), b"+PONG\r\n".repeat(3));
    // A pipeline of 16 in one write: 16 replies.
    s.write_all(&b"PING\r\n".repeat(16)).unwrap();
    assert_eq!(read_exactly(&mut s, 16 * 7), b"+PONG\r\n".repeat(16));
}

#[test]
fn http_keeps_alive_and_closes_on_request() {
    let (_srv, port) = start_floor("http");
    let mut s = connect(port);
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(&[&get[..], &get[..]].concat()).unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("Hello World!\r\n").count() < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {text}");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Length: 14\r\n"));
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap(); // ends: the server closed
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("Connection: close\r\n"), "{rest}");
    assert!(rest.ends_with("Hello World!\r\n"));
}

#[test]
fn echo_answers_a_half_closed_peer() {
    let (_srv, port) = start_floor("echo");
    let mut s = connect(port);
    s.write_all(b"hello floor").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello floor");
}

#[test]
fn echo_under_loadgen_and_churn() {
    let (_srv, port) = start_floor("echo");
    for extra in [
        &["--conns", "20", "--size", "1024", "--depth", "2"][..],
        &["--churn", "--conns", "8", "--size", "64"][..],
        &["--churn", "--conns", "8", "--threads", "2"][..],
    ] {
        let (out, j) = loadgen(port, extra);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j = j.expect("a JSON line");
        assert!(j["messages"].as_u64().unwrap() > 0, "{j}");
        assert_eq!(j["verify_errors"], 0, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
    }
}

#[test]
fn echo_holds_back_for_a_peer_that_does_not_read() {
    let (_srv, port) = start_floor("echo");
    let mut s = connect(port);
    // Far more than the socket buffers hold: the server must stop reading
    // and resume when we read, losing nothing.
    let data: Vec<u8> = (0..32 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || w.write_all(&sent).unwrap());
    thread::sleep(Duration::from_millis(200));
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == data, "echo differs");
}
