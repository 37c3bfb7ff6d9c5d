//! Blocking clients for tests: every socket has timeouts, so a server that
//! stops answering fails the test instead of hanging it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evio_core::Addr;

/// How long a test waits for anything (a reply, a close, a condition).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Something a test connects to: a `SocketAddr` or an evio `Addr`.
pub trait Target {
    /// The internet address (panics for a unix one).
    fn socket_addr(&self) -> SocketAddr;
}

impl Target for SocketAddr {
    fn socket_addr(&self) -> SocketAddr {
        *self
    }
}

impl Target for &SocketAddr {
    fn socket_addr(&self) -> SocketAddr {
        **self
    }
}

impl Target for &Addr {
    fn socket_addr(&self) -> SocketAddr {
        inet(self)
    }
}

/// The socket address of an `Addr::Inet`; panics for anything else.
pub fn inet(addr: &Addr) -> SocketAddr {
    addr.as_inet()
        .unwrap_or_else(|| panic!("not an inet address: {addr:?}"))
}

/// A TCP connection with read and write timeouts ([`TIMEOUT`]) and
/// `TCP_NODELAY`.
pub fn connect(addr: impl Target) -> TcpStream {
    let addr = addr.socket_addr();
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes.
pub fn read_n(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
pub fn expect(r: &mut impl Read, expected: &[u8]) {
    let got = read_n(r, expected.len())
        .unwrap_or_else(|e| panic!("reading {} bytes: {e}", expected.len()));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "unexpected reply"
    );
}

/// A connection to the IPv4 address `to`, with [`connect`]'s timeouts; bound
/// first to `from` (any of 127.0.0.0/8) if given, and with its receive
/// buffer set to `recv_buffer` bytes before connecting (so the window is
/// small from the start) if given.
pub fn connect_with(
    to: SocketAddr,
    from: Option<Ipv4Addr>,
    recv_buffer: Option<usize>,
) -> TcpStream {
    use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("not IPv4: {to}")
    };
    let fd = sock::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    if let Some(size) = recv_buffer {
        sock::setsockopt(&fd, sockopt::RcvBuf, &size).unwrap();
    }
    if let Some(ip) = from {
        let [a, b, c, d] = ip.octets();
        sock::bind(fd.as_raw_fd(), &SockaddrIn::new(a, b, c, d, 0)).unwrap();
    }
    sock::connect(fd.as_raw_fd(), &SockaddrIn::from(to))
        .unwrap_or_else(|e| panic!("{from:?} -> {to}: {e}"));
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Writes `msg` on `s` and expects exactly it back (from an echo).
pub fn assert_echo(s: &mut (impl Read + Write), msg: &[u8]) {
    s.write_all(msg).unwrap();
    assert_eq!(read_n(s, msg.len()).unwrap(), msg);
}

/// Reads to the end of the stream.
pub fn read_to_eof(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// Reads `r` until it ends: every byte read, and the error that ended it
/// (`None` for an EOF); `Interrupted` is retried.
pub(crate) fn read_until_end(r: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0; 16 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Reads until the peer closes (a reset counts as a close); panics on a
/// timeout, that is when the peer did not close.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    match read_until_end(s) {
        (out, None) => out,
        (out, Some(e)) if e.kind() == ErrorKind::ConnectionReset => out,
        (out, Some(e)) => panic!(
            "waiting for the server to close: {e} (got {:?})",
            String::from_utf8_lossy(&out)
        ),
    }
}

/// Asserts the peer keeps the connection open, and silent, for 100 ms.
pub fn assert_open(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0; 1];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected an open, silent connection, got {other:?}"),
    }
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Writes `data` one byte at a time, pausing so that each byte is its own
/// read on the server.
pub fn write_bytewise(s: &mut TcpStream, data: &[u8]) {
    for b in data {
        s.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Polls `cond` every 2 ms until it holds or `limit` passes; whether it
/// held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// How long [`soon!`](crate::soon) waits for what should follow at once.
pub const SOON: Duration = Duration::from_secs(5);

/// Asserts that a condition holds within [`SOON`] (polled as
/// [`eventually`] does); the panic message quotes the condition.
///
/// ```
/// # use evio_test_support::soon;
/// let n = 3;
/// soon!(n == 3);
/// ```
#[macro_export]
macro_rules! soon {
    ($cond:expr) => {
        assert!(
            $crate::eventually($crate::SOON, || $cond),
            "not within {:?}: {}",
            $crate::SOON,
            stringify!($cond)
        )
    };
}

/// Polls `cond` until it holds; panics naming `what` after [`TIMEOUT`].
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    assert!(eventually(TIMEOUT, cond), "timed out waiting for {what}");
}

/// Waits until `counter` stops moving (sampled `every` so often); returns
/// its value, or panics naming `what` if it reaches `total` first or is
/// still moving after [`TIMEOUT`].
pub fn stalls(counter: &AtomicU64, total: u64, every: Duration, what: &str) -> u64 {
    let mut last = u64::MAX;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        std::thread::sleep(every);
        let now = counter.load(Ordering::SeqCst);
        assert!(now < total, "{what}: never paused ({now} bytes)");
        assert!(
            Instant::now() < deadline,
            "{what}: never settled ({now} bytes)"
        );
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs `f` on a thread and panics naming `what` if it does not finish
/// within [`TIMEOUT`].
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A loopback port free a moment ago (another socket may take it first).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on loopback `port`.
pub fn wait_port(port: u16) {
    wait_for(&format!("a server on port {port}"), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Whether this machine has an IPv6 loopback.
pub fn has_ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// A loopback listener that accepts connections and holds them, never
/// reading (a backend that went silent); the accepted streams are kept in
/// the returned list.
pub fn silent_backend() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    (addr, held)
}
