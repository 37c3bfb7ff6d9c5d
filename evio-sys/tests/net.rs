//! The socket helpers of `evio_sys::net` against real sockets.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use evio_sys::net::{self, Addr, BindOptions};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn listener() -> (OwnedFd, SocketAddr) {
    let fd = net::tcp_listener(loopback(), &BindOptions::default()).unwrap();
    let addr = net::local_addr(&fd).unwrap().as_inet().unwrap();
    (fd, addr)
}

/// Accepts one connection, waiting for it to arrive.
fn accept(listener: &OwnedFd) -> (OwnedFd, Addr) {
    let start = Instant::now();
    loop {
        match net::accept(listener) {
            Ok(conn) => return conn,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "nothing to accept"
                );
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// What Linux does, and what `tcp_listener`'s documentation records: an
/// accepted socket inherits `TCP_NODELAY` and `SO_KEEPALIVE` from its
/// listener. Elsewhere the test only reports what it sees.
#[test]
fn accepted_sockets_inherit_nodelay_and_keepalive() {
    let (l, addr) = listener();
    net::set_nodelay(&l, true).unwrap();
    net::set_keepalive(&l, Some(Duration::from_secs(30))).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (conn, peer) = accept(&l);
    assert_eq!(peer, Addr::Inet(client.local_addr().unwrap()));
    let inherited = (net::nodelay(&conn).unwrap(), net::keepalive(&conn).unwrap());
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(inherited, (true, true), "(TCP_NODELAY, SO_KEEPALIVE)");
    } else {
        eprintln!("inherited (TCP_NODELAY, SO_KEEPALIVE): {inherited:?}");
    }
    // And an accepted socket starts without them where the listener has none.
    let (l, addr) = listener();
    let _client = TcpStream::connect(addr).unwrap();
    let (conn, _) = accept(&l);
    assert!(!net::keepalive(&conn).unwrap());
}

#[test]
fn nodelay_and_keepalive_round_trip() {
    let (s, _) = listener();
    assert!(!net::nodelay(&s).unwrap());
    net::set_nodelay(&s, true).unwrap();
    assert!(net::nodelay(&s).unwrap());
    net::set_keepalive(&s, Some(Duration::from_secs(10))).unwrap();
    assert!(net::keepalive(&s).unwrap());
    if cfg!(not(target_os = "openbsd")) {
        net::set_keepalive_probes(&s, 4).unwrap();
        assert_eq!(net::keepalive_probes(&s).unwrap(), 4);
    }
    net::set_keepalive(&s, None).unwrap();
    assert!(!net::keepalive(&s).unwrap());
}

#[test]
fn buffer_sizes_round_trip() {
    let (s, _) = listener();
    let want = 256 * 1024;
    net::set_send_buffer_size(&s, want).unwrap();
    net::set_recv_buffer_size(&s, want).unwrap();
    // Linux doubles what it is given; other systems report it as is. Both
    // clamp to their limits, so only check that the setting took effect.
    let (snd, rcv) = (
        net::send_buffer_size(&s).unwrap(),
        net::recv_buffer_size(&s).unwrap(),
    );
    assert!(
        snd >= 4096 && rcv >= 4096,
        "SO_SNDBUF {snd}, SO_RCVBUF {rcv}"
    );
    net::set_send_buffer_size(&s, 8192).unwrap();
    let small = net::send_buffer_size(&s).unwrap();
    assert!(
        small <= snd,
        "SO_SNDBUF {small} after asking for less than {snd}"
    );
}

#[test]
fn linger_round_trips() {
    let (s, _) = listener();
    assert_eq!(net::linger(&s).unwrap(), None);
    net::set_linger(&s, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(net::linger(&s).unwrap(), Some(Duration::from_secs(5)));
    net::set_linger(&s, Some(Duration::ZERO)).unwrap();
    assert_eq!(net::linger(&s).unwrap(), Some(Duration::ZERO));
    net::set_linger(&s, None).unwrap();
    assert_eq!(net::linger(&s).unwrap(), None);
}

#[test]
fn writev_gathers_buffers_and_caps_their_number() {
    let (a, mut b) = UnixStream::pair().unwrap();
    net::set_nonblocking(&a, true).unwrap();
    let n = net::writev(
        a.as_fd(),
        &[IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cd")],
    )
    .unwrap();
    assert_eq!(n, 4);
    let mut got = [0u8; 4];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abcd");

    // 2000 one-byte buffers: at most 1024 go out per call.
    let byte = [7u8];
    let many: Vec<IoSlice<'_>> = (0..2000).map(|_| IoSlice::new(&byte)).collect();
    let n = net::writev(a.as_fd(), &many).unwrap();
    assert_eq!(n, 1024);
}

#[test]
fn writes_to_a_closed_peer_fail_with_epipe() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let e = net::write(a.as_fd(), b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    let e = net::writev(a.as_fd(), &[IoSlice::new(b"x")]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
}

#[test]
fn unix_addresses_name_the_listener_and_not_the_client() {
    let dir = std::env::temp_dir().join(format!("evio-sys-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("s.sock");
    let l = net::unix_listener(&path, 16).unwrap();
    assert_eq!(net::local_addr(&l).unwrap(), Addr::Unix(Some(path.clone())));
    let mut client = UnixStream::connect(&path).unwrap();
    let (conn, peer) = accept(&l);
    assert_eq!(peer, Addr::Unix(None), "an unbound client is unnamed");
    assert_eq!(net::peer_addr(&conn).unwrap(), Addr::Unix(None));
    client.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    let start = Instant::now();
    while let Err(e) = net::read(conn.as_fd(), &mut buf) {
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(start.elapsed() < Duration::from_secs(5));
        thread::yield_now();
    }
    assert_eq!(&buf, b"hi");
    // A live listener is not replaced; a path that is not a socket is kept.
    let e = net::unix_listener(&path, 16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    drop((l, conn, client));
    let file = dir.join("plain");
    std::fs::write(&file, b"").unwrap();
    let e = net::unix_listener(&file, 16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn udp_datagrams_carry_their_sender() {
    let fd = net::udp_socket(loopback(), &BindOptions::default()).unwrap();
    let addr = net::local_addr(&fd).unwrap().as_inet().unwrap();
    let peer = UdpSocket::bind(loopback()).unwrap();
    peer.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 16];
    let start = Instant::now();
    let (n, from) = loop {
        match net::recv_from(fd.as_fd(), &mut buf) {
            Ok(got) => break got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(start.elapsed() < Duration::from_secs(5));
                thread::yield_now();
            }
            Err(e) => panic!("recv_from: {e}"),
        }
    };
    assert_eq!(
        (&buf[..n], from),
        (&b"ping"[..], peer.local_addr().unwrap())
    );
    net::send_to(fd.as_fd(), b"pong", &from).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, back) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], back), (&b"pong"[..], addr));
}

#[test]
fn raise_fd_limit_never_lowers_the_limit() {
    let now = net::raise_fd_limit(0).unwrap();
    assert!(now >= 1);
    assert_eq!(net::raise_fd_limit(now).unwrap(), now);
    assert!(net::raise_fd_limit(u64::MAX).unwrap() >= now);
}
