//! The echo example over TCP, UDP and a unix socket, in-process.

mod common;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;

use common::*;
use evio_core::{Addr, Builder};
use evio_examples::echo::Echo;

#[test]
fn tcp_echo_large_and_many() {
    for loops in [1, 4] {
        let (_server, addr) = start(Echo, loops);
        // 4 MiB through one connection, written while it is read back.
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut s = connect(addr);
        let writer = {
            let mut s = s.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || s.write_all(&data).unwrap())
        };
        let got = read_n(&mut s, data.len()).unwrap();
        writer.join().unwrap();
        assert!(got == data, "echoed bytes differ");
        // Many connections at once, each its own stream.
        let mut conns: Vec<_> = (0..32).map(|_| connect(addr)).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            c.write_all(format!("hello {i}\n").as_bytes()).unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            expect(c, format!("hello {i}\n").as_bytes());
        }
    }
}

#[test]
fn udp_echo_datagrams() {
    let server = Builder::new().start(Echo, &["udp://127.0.0.1:0"]).unwrap();
    let addr = inet(&server.addrs()[0]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0; 65536];
    for msg in [&b"one"[..], &[7u8; 1400], b"three"] {
        sock.send_to(msg, addr).unwrap();
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg, "each datagram comes back whole");
        assert_eq!(from, addr);
    }
    // Two senders each get their own datagrams back.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.set_read_timeout(Some(TIMEOUT)).unwrap();
    other.send_to(b"from other", addr).unwrap();
    sock.send_to(b"from sock", addr).unwrap();
    let (n, _) = other.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from other");
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from sock");
    server.shutdown().unwrap();
}

#[test]
fn unix_echo_and_socket_file_removal() {
    let dir = std::env::temp_dir().join(format!("evio-echo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let server = Builder::new()
        .start(
            Echo,
            &[
                "tcp://127.0.0.1:0".to_string(),
                format!("unix://{}", path.display()),
            ],
        )
        .unwrap();
    assert!(matches!(&server.addrs()[1], Addr::Unix(_)));
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"over unix\n").unwrap();
    let mut buf = [0; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over unix\n");
    // The TCP listener serves the same handler.
    let mut t = connect(inet(&server.addrs()[0]));
    t.write_all(b"tcp").unwrap();
    expect(&mut t, b"tcp");
    server.shutdown().unwrap();
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap_or(0),
        0,
        "connections are closed at shutdown"
    );
    let _ = std::fs::remove_dir(&dir);
}
