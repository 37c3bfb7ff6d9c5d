//! Per-loop listeners (`Builder::per_loop_listeners`): every loop accepts
//! on its own `SO_REUSEPORT` socket and serves what it accepts; UDP is
//! spread the same way; unix addresses stay on loop 0. Plus the socket
//! options a connection exposes.

mod common;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, Options};

/// Echoes, prefixed with the loop that served the bytes.
#[derive(Clone, Default)]
struct WhichLoop {
    opened_on: Arc<Mutex<Vec<usize>>>,
}

impl EventHandler for WhichLoop {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.opened_on.lock().unwrap().push(conn.loop_index());
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(&[b'0' + conn.loop_index() as u8]);
        conn.write(input);
        Action::None
    }
}

fn tcp_and_udp_are_served_by_every_loop<P: TestPoller>() {
    let h = WhichLoop::default();
    let unix = temp_sock(&format!("per-loop-{}", std::any::type_name::<P>().len()));
    let _ = std::fs::remove_file(&unix);
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(4)
        .per_loop_listeners(true)
        .start(
            h.clone(),
            &[
                "tcp://127.0.0.1:0",
                "udp://127.0.0.1:0",
                &format!("unix://{}", unix.display()),
            ],
        )
        .unwrap();
    let tcp = inet(&server.addrs()[0]);
    let udp = inet(&server.addrs()[1]);
    assert_ne!(tcp.port(), 0);
    // 200 connections from as many source ports: the kernel's hash spreads
    // them; each is served by the loop that accepted it.
    let mut conns: Vec<TcpStream> = (0..200).map(|_| connect(&server.addrs()[0])).collect();
    let mut served_by = BTreeSet::new();
    for (i, c) in conns.iter_mut().enumerate() {
        let msg = format!("m{i:03}");
        c.write_all(msg.as_bytes()).unwrap();
        let got = read_n(c, 5).unwrap();
        assert_eq!(&got[1..], msg.as_bytes());
        served_by.insert(got[0] - b'0');
    }
    assert!(
        served_by.len() >= 2,
        "one loop served everything: {served_by:?}"
    );
    let opened: BTreeSet<usize> = h.opened_on.lock().unwrap().iter().copied().collect();
    assert_eq!(
        opened.len(),
        served_by.len(),
        "each loop served what it accepted"
    );
    soon!(server.connections() == 200);
    let per_loop = server.control().loop_connections();
    assert_eq!(per_loop.iter().sum::<usize>(), 200, "{per_loop:?}");
    // UDP from 64 source ports: several loops answer.
    let mut udp_loops = BTreeSet::new();
    for i in 0..64u8 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&[i], udp).unwrap();
        let mut buf = [0u8; 4];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!((n, buf[1]), (2, i));
        udp_loops.insert(buf[0]);
    }
    assert!(
        udp_loops.len() >= 2,
        "one loop got every datagram: {udp_loops:?}"
    );
    // The unix address is served too (by loop 0's single listener).
    let mut u = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    u.write_all(b"unix").unwrap();
    let mut got = [0u8; 5];
    io::Read::read_exact(&mut u, &mut got).unwrap();
    assert_eq!(&got[1..], b"unix");
    server.shutdown().unwrap();
    assert!(!unix.exists(), "the unix socket file is removed");
}

fn per_loop_listeners_with_one_loop_is_plain<P: TestPoller>() {
    let server = Builder::new()
        .poller(|_| P::make())
        .per_loop_listeners(true)
        .start(WhichLoop::default(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 2).unwrap(), b"0x");
    // Without reuseport asked for, the port is not shared with others.
    let port = inet(&server.addrs()[0]).port();
    let again = Builder::new().start(WhichLoop::default(), &[format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    server.shutdown().unwrap();
}

// ----- socket options ------------------------------------------------------------

#[derive(Clone, Default)]
struct Opts(Arc<Mutex<Vec<String>>>);
impl EventHandler for Opts {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let s = conn.socket().unwrap();
        let unix = conn.remote_addr().as_inet().is_none();
        let mut log = self.0.lock().unwrap();
        if unix {
            log.push(format!(
                "nodelay {:?}",
                s.set_nodelay(true).map_err(|e| e.kind())
            ));
        } else {
            s.set_send_buffer_size(256 * 1024).unwrap();
            s.set_recv_buffer_size(128 * 1024).unwrap();
            s.set_linger(Some(Duration::from_secs(3))).unwrap();
            s.set_keepalive(Some(Duration::from_secs(30))).unwrap();
            log.push(format!(
                "sndbuf>={} rcvbuf>={} linger={:?} nodelay={}",
                s.send_buffer_size().unwrap() >= 256 * 1024,
                s.recv_buffer_size().unwrap() >= 128 * 1024,
                s.linger().unwrap(),
                s.nodelay().unwrap(),
            ));
        }
        (Options::default(), Action::None)
    }
}

#[test]
fn socket_options_are_set_and_read_back() {
    let h = Opts::default();
    let path = temp_sock("socket-options");
    let _ = std::fs::remove_file(&path);
    let server = Builder::new()
        .start(
            h.clone(),
            &["tcp://127.0.0.1:0", &format!("unix://{}", path.display())],
        )
        .unwrap();
    let _c = connect(&server.addrs()[0]);
    soon!(h.0.lock().unwrap().len() == 1);
    let _u = std::os::unix::net::UnixStream::connect(&path).unwrap();
    soon!(h.0.lock().unwrap().len() == 2);
    let log = h.0.lock().unwrap().clone();
    assert_eq!(
        log[0], "sndbuf>=true rcvbuf>=true linger=Some(3s) nodelay=true",
        "TCP_NODELAY is on by default"
    );
    assert_eq!(log[1], "nodelay Err(Unsupported)");
    server.shutdown().unwrap();
}

on_every_poller!(
    tcp_and_udp_are_served_by_every_loop,
    per_loop_listeners_with_one_loop_is_plain,
);
