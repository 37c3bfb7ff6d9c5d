//! A poller backend written outside evio: a decorator over the platform's
//! default poller that counts every call, configured with shared counters
//! and plugged into a server with `Builder::poller`.
//!
//! Run it: `cargo run -p evio-core --example counting_poller --features conformance`.
//! It first checks the backend with the public conformance suite, then
//! serves an echo server over it and prints system calls per request — the
//! steady state makes no `register`/`reregister` call at all on epoll.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evio_core::poller::{Events, Interest, Poller, Waker};
use evio_core::{Action, Builder, Conn, DefaultPoller, EventHandler};

/// How often each call was made, shared by every loop's poller.
#[derive(Debug, Default)]
pub struct Counts {
    pub register: AtomicU64,
    pub reregister: AtomicU64,
    pub deregister: AtomicU64,
    pub close: AtomicU64,
    pub wait: AtomicU64,
}

impl Counts {
    /// `(register, reregister, deregister, close, wait)` now.
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.register.load(Ordering::Relaxed),
            self.reregister.load(Ordering::Relaxed),
            self.deregister.load(Ordering::Relaxed),
            self.close.load(Ordering::Relaxed),
            self.wait.load(Ordering::Relaxed),
        ]
    }
}

/// Counts calls, then forwards them to `inner`.
pub struct CountingPoller<P> {
    inner: P,
    counts: Arc<Counts>,
}

impl<P: Poller> CountingPoller<P> {
    /// A counting poller over `inner`, adding to `counts`.
    pub fn new(inner: P, counts: Arc<Counts>) -> Self {
        CountingPoller { inner, counts }
    }
}

impl<P: Poller> Poller for CountingPoller<P> {
    const EDGE_TRIGGERED: bool = P::EDGE_TRIGGERED;

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.counts.register.fetch_add(1, Ordering::Relaxed);
        self.inner.register(fd, token, interest)
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.counts.reregister.fetch_add(1, Ordering::Relaxed);
        self.inner.reregister(fd, token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.counts.deregister.fetch_add(1, Ordering::Relaxed);
        self.inner.deregister(fd)
    }

    // Forwarded so the inner backend's cheaper close (no deregister on
    // epoll) is kept.
    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.counts.close.fetch_add(1, Ordering::Relaxed);
        self.inner.close(fd)
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        self.counts.wait.fetch_add(1, Ordering::Relaxed);
        self.inner.wait(events, timeout)
    }

    fn waker(&self) -> Waker {
        self.inner.waker()
    }
}

#[derive(Clone)]
struct Echo;

impl EventHandler for Echo {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
}

/// Serves an echo server over the counting poller, makes `requests`
/// round trips on each of `conns` connections, and returns the counts of
/// the steady state (after the connections were set up).
pub fn echo_run(conns: usize, requests: usize) -> io::Result<[u64; 5]> {
    let counts = Arc::new(Counts::default());
    let c2 = counts.clone();
    let server = Builder::new()
        .poller(move |_| Ok(CountingPoller::new(DefaultPoller::new()?, c2.clone())))
        .start(Echo, &["tcp://127.0.0.1:0"])?;
    let addr = server.addrs()[0].as_inet().expect("tcp");
    let mut clients = (0..conns)
        .map(|_| TcpStream::connect(addr))
        .collect::<io::Result<Vec<_>>>()?;
    // One round trip each first, so every connection is registered.
    let mut buf = [0u8; 64];
    for c in &mut clients {
        c.write_all(b"warm-up")?;
        c.read_exact(&mut buf[..7])?;
    }
    let before = counts.snapshot();
    for _ in 0..requests {
        for c in &mut clients {
            c.write_all(b"ping")?;
            c.read_exact(&mut buf[..4])?;
        }
    }
    let after = counts.snapshot();
    drop(clients);
    server.shutdown()?;
    Ok([0, 1, 2, 3, 4].map(|i| after[i] - before[i]))
}

fn main() -> io::Result<()> {
    // The public suite, as a backend author runs it (panics on a failure).
    evio_core::poller::conformance::run_all(|| {
        Ok(CountingPoller::new(DefaultPoller::new()?, Arc::default()))
    });
    println!("conformance: every check passed");
    let (conns, requests) = (50, 200);
    let [register, reregister, deregister, close, wait] = echo_run(conns, requests)?;
    let n = (conns * requests) as f64;
    println!("echo, {conns} connections x {requests} requests, steady state:");
    println!("  register/request   {:.3}", register as f64 / n);
    println!("  reregister/request {:.3}", reregister as f64 / n);
    println!("  deregister/request {:.3}", deregister as f64 / n);
    println!("  close/request      {:.3}", close as f64 / n);
    println!("  wait/request       {:.3}", wait as f64 / n);
    Ok(())
}
