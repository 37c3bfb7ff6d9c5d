//! Helpers of the tests of the beyond-evio features (handles, backpressure,
//! shutdown, dialing, idle timeouts): RSS and CPU sampling, a verifiable
//! byte stream, an event log.
//!
//! Tests that measure this process's RSS take a write lock on [`MEM`]; all
//! others take a read lock, so nothing else allocates while RSS is sampled.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use evio_core::{Builder, EventHandler, WriteReceipt};

use super::{eventually, Rng};

pub static MEM: RwLock<()> = RwLock::new(());

/// Taken by every test that does not sample RSS.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    MEM.read().unwrap_or_else(|e| e.into_inner())
}

/// Taken by the tests that sample RSS: nothing else runs meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEM.write().unwrap_or_else(|e| e.into_inner())
}

pub const MIB: usize = 1024 * 1024;
/// The default high-water mark.
pub const HIGH: usize = MIB;

/// CPU time (user + system) this process has used.
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // Clock ticks: 100 per second on Linux.
    Duration::from_millis((f[0] + f[1]) * 10)
}

/// Sleeps `span` and fails, naming `what`, if this process used a quarter
/// of it or more in CPU time meanwhile (the loop spun instead of waiting).
pub fn assert_idle(span: Duration, what: &str) {
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(span);
    let busy = cpu_time() - cpu0;
    eprintln!("{what} for {:?}: {busy:?} of CPU", t0.elapsed());
    assert!(
        busy < t0.elapsed() / 4,
        "the loop spun while {what}: {busy:?} of CPU in {:?}",
        t0.elapsed()
    );
}

pub fn kind(e: &Option<io::Error>) -> Option<io::ErrorKind> {
    e.as_ref().map(io::Error::kind)
}

/// Waits for `r` or fails the test.
pub fn result_of(r: &WriteReceipt, what: &str) -> io::Result<()> {
    r.wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("{what}: the receipt never completed"))
}

/// What a handler saw, for the tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Opened {
        dialed: bool,
    },
    Closed {
        dialed: bool,
        err: Option<io::ErrorKind>,
    },
}

impl Ev {
    /// A dialed connection that closed with `err`: a failed dial.
    pub fn dial_failed(err: io::ErrorKind) -> Ev {
        Ev::Closed {
            dialed: true,
            err: Some(err),
        }
    }
}

#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<(Ev, Instant)>>>);

impl Log {
    pub fn push(&self, ev: Ev) {
        self.0.lock().unwrap().push((ev, Instant::now()));
    }
    /// Logs `on_opened` of `conn`.
    pub fn record_open<C>(&self, conn: &evio_core::Conn<'_, C>) {
        self.push(Ev::Opened {
            dialed: conn.is_dialed(),
        });
    }
    /// Logs `on_closed` of `conn` with `err`.
    pub fn record_close<C>(&self, conn: &evio_core::Conn<'_, C>, err: &Option<io::Error>) {
        self.push(Ev::Closed {
            dialed: conn.is_dialed(),
            err: kind(err),
        });
    }
    pub fn events(&self) -> Vec<Ev> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }
    pub fn closed(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Ev::Closed { .. }))
            .count()
    }
    pub fn wait_closed(&self, n: usize) -> bool {
        eventually(Duration::from_secs(10), || self.closed() >= n)
    }
    pub fn first_close_at(&self) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| matches!(e, Ev::Closed { .. }))
            .map(|(_, t)| *t)
    }
}

/// A server on 127.0.0.1 (a free port) running `h` on poller `P`.
pub fn start<P: super::TestPoller, H>(h: H) -> evio_core::ServerHandle<H::Context>
where
    H: EventHandler + Clone + Send + 'static,
{
    Builder::new()
        .poller(|_| P::make())
        .start(h, &["tcp://127.0.0.1:0"])
        .unwrap()
}
