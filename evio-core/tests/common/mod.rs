//! Helpers shared by the evio-core integration tests.
#![allow(dead_code)]

pub mod beyond;
pub mod counting;
pub mod pki;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Generates one `#[test]` per backend for each generic test function
/// `fn name<P: Poller + 'static>()`.
#[macro_export]
macro_rules! on_every_poller {
    ($($name:ident),* $(,)?) => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        mod epoll {
            $( #[test] fn $name() { super::$name::<evio_core::EpollPoller>(); } )*
        }
        mod poll {
            $( #[test] fn $name() { super::$name::<evio_core::PollPoller>(); } )*
        }
    };
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub fn inet(addr: &evio_core::Addr) -> SocketAddr {
    addr.as_inet().expect("an internet address")
}

pub fn connect(addr: &evio_core::Addr) -> TcpStream {
    let s = TcpStream::connect(inet(addr)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `n` bytes or EOF/error; returns what arrived.
pub fn read_n(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads to EOF (the peer closed).
pub fn read_to_eof(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
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

pub fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

pub fn temp_sock(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("evio-test-{}-{}.sock", std::process::id(), name))
}

/// A poller backend the tests can make without arguments (the
/// `Builder::poller` factory takes any closure; the generic tests need one
/// way to name it per backend).
pub trait TestPoller: evio_core::Poller + Sized + 'static {
    /// A new poller.
    fn make() -> io::Result<Self>;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl TestPoller for evio_core::EpollPoller {
    fn make() -> io::Result<Self> {
        evio_core::EpollPoller::new()
    }
}

impl TestPoller for evio_core::PollPoller {
    fn make() -> io::Result<Self> {
        evio_core::PollPoller::new()
    }
}

/// A server running `h` on `loops` loops of poller `P`, listening on `addrs`.
pub fn start_server<P: TestPoller, H: evio_core::EventHandler + Clone + Send + 'static>(
    h: H,
    loops: isize,
    addrs: &[&str],
) -> evio_core::ServerHandle<H::Context> {
    evio_core::Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .start(h, addrs)
        .unwrap()
}

/// A handler that keeps the handle of every connection it opens.
#[derive(Clone, Default)]
pub struct Handles(pub std::sync::Arc<std::sync::Mutex<Vec<evio_core::ConnHandle>>>);

impl evio_core::EventHandler for Handles {
    type Context = ();
    fn on_opened(
        &mut self,
        conn: &mut evio_core::Conn<'_, ()>,
    ) -> (evio_core::Options, evio_core::Action) {
        self.0.lock().unwrap().push(conn.handle());
        (evio_core::Options::default(), evio_core::Action::None)
    }
}
