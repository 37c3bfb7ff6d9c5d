//! Issue #6: cross-thread writes with receipts, backpressure, graceful
//! shutdown, outbound dials, idle timeouts and in-loop peer writes. Every
//! test runs on epoll and on poll(2), on loopback only, bounded in time.
//!
//! Tests that measure this process's RSS take a write lock on [`MEM`]; all
//! others take a read lock, so nothing else allocates while RSS is sampled.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use evio_core::{
    Action, Addr, Builder, Conn, ConnHandle, ConnId, EventHandler, Options, WriteReceipt,
};

// ----- helpers -----------------------------------------------------------------

static MEM: RwLock<()> = RwLock::new(());

/// Taken by every test that does not sample RSS.
fn shared() -> RwLockReadGuard<'static, ()> {
    MEM.read().unwrap_or_else(|e| e.into_inner())
}

/// Taken by the tests that sample RSS: nothing else runs meanwhile.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEM.write().unwrap_or_else(|e| e.into_inner())
}

const MIB: usize = 1024 * 1024;
/// The default high-water mark.
const HIGH: usize = MIB;

/// This process's resident set, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
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

/// An endless byte stream, byte `i` = `T[(seed + i) % 65521]`: a lost,
/// duplicated or reordered byte shifts the pattern. Checked with slice
/// comparisons (memcmp), so even debug builds verify 100s of MiB quickly.
struct Pattern {
    table: Vec<u8>,
}

const PERIOD: usize = 65_521;

impl Pattern {
    fn new(seed: u64) -> Pattern {
        let mut rng = Rng::new(seed);
        let mut table = rng.bytes(PERIOD);
        let head = table[..MIB.min(PERIOD)].to_vec();
        // Doubled-up tail so any window of up to PERIOD bytes is one slice.
        table.extend_from_slice(&head);
        Pattern { table }
    }

    /// The `len` (≤ PERIOD) bytes at stream offset `off`.
    fn at(&self, off: u64, len: usize) -> &[u8] {
        assert!(len <= PERIOD);
        let start = (off % PERIOD as u64) as usize;
        &self.table[start..start + len]
    }

    fn check(&self, off: u64, got: &[u8]) -> bool {
        let mut o = off;
        for chunk in got.chunks(PERIOD) {
            if chunk != self.at(o, chunk.len()) {
                return false;
            }
            o += chunk.len() as u64;
        }
        true
    }

    /// Writes `total` bytes of the stream; stops early on an error.
    fn send(&self, s: &mut impl Write, total: u64, sent: &AtomicU64) -> io::Result<()> {
        let mut off = 0u64;
        while off < total {
            let n = (total - off).min(32 * 1024) as usize;
            s.write_all(self.at(off, n))?;
            off += n as u64;
            sent.store(off, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads `total` bytes and checks them; returns how many matched.
    fn recv(&self, s: &mut impl Read, total: u64) -> io::Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        while off < total {
            let want = (total - off).min(buf.len() as u64) as usize;
            let n = s.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {off} of {total} bytes"),
                ));
            }
            if !self.check(off, &buf[..n]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("wrong bytes at offset {off}"),
                ));
            }
            off += n as u64;
        }
        Ok(off)
    }
}

fn kind(e: &Option<io::Error>) -> Option<io::ErrorKind> {
    e.as_ref().map(io::Error::kind)
}

/// Waits for `r` or fails the test.
fn result_of(r: &WriteReceipt, what: &str) -> io::Result<()> {
    r.wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("{what}: the receipt never completed"))
}

/// What a handler saw, for the tests to inspect.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Opened {
        dialed: bool,
    },
    Closed {
        dialed: bool,
        err: Option<io::ErrorKind>,
    },
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Ev, Instant)>>>);

impl Log {
    fn push(&self, ev: Ev) {
        self.0.lock().unwrap().push((ev, Instant::now()));
    }
    fn events(&self) -> Vec<Ev> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }
    fn closed(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Ev::Closed { .. }))
            .count()
    }
    fn wait_closed(&self, n: usize) -> bool {
        eventually(Duration::from_secs(10), || self.closed() >= n)
    }
    fn first_close_at(&self) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| matches!(e, Ev::Closed { .. }))
            .map(|(_, t)| *t)
    }
}

// ----- ConnHandle: cross-thread writes -------------------------------------------

/// On `go`, queues `prequeue` bytes of `x` in the loop, then publishes a
/// handle: everything written through it must come after those bytes.
#[derive(Clone, Default)]
struct HandOut {
    prequeue: usize,
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    log: Log,
}

impl HandOut {
    fn handle(&self) -> ConnHandle {
        assert!(
            eventually(Duration::from_secs(10), || !self
                .handles
                .lock()
                .unwrap()
                .is_empty()),
            "no handle published"
        );
        self.handles.lock().unwrap().remove(0)
    }
}

impl EventHandler for HandOut {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input.starts_with(b"go") {
            conn.write(&vec![b'x'; self.prequeue]);
            self.handles.lock().unwrap().push(conn.handle());
        }
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.push(Ev::Closed {
            dialed: conn.is_dialed(),
            err: kind(&err),
        });
        Action::None
    }
}

fn start<P: common::TestPoller, H>(h: H) -> evio_core::ServerHandle
where
    H: EventHandler + Clone + Send + 'static,
{
    Builder::new()
        .poller(|_| P::make())
        .start(h, &["tcp://127.0.0.1:0"])
        .unwrap()
}

/// 8 threads × 10,000 writes through clones of one handle: every record
/// arrives, per thread in order, after what the loop had queued; every
/// receipt is Ok.
fn handle_writes_from_many_threads<P: common::TestPoller>() {
    let _g = shared();
    const THREADS: u32 = 8;
    const WRITES: u32 = 10_000;
    const PRE: usize = 2 * MIB;
    let h = HandOut {
        prequeue: PRE,
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    let handle = h.handle();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = handle.clone();
            thread::spawn(move || {
                (0..WRITES)
                    .map(|seq| {
                        let mut rec = [0u8; 8];
                        rec[..4].copy_from_slice(&t.to_le_bytes());
                        rec[4..].copy_from_slice(&seq.to_le_bytes());
                        handle.write(rec.to_vec())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pre = read_n(&mut c, PRE).unwrap();
    assert!(
        pre.iter().all(|&b| b == b'x'),
        "handle writes overtook what the loop had queued"
    );
    let body = read_n(&mut c, (THREADS * WRITES * 8) as usize).unwrap();
    let mut next = vec![0u32; THREADS as usize];
    for rec in body.chunks(8) {
        let t = u32::from_le_bytes(rec[..4].try_into().unwrap()) as usize;
        let seq = u32::from_le_bytes(rec[4..].try_into().unwrap());
        assert!(t < THREADS as usize, "garbage record {rec:?}");
        assert_eq!(seq, next[t], "thread {t}: out of order");
        next[t] += 1;
    }
    assert!(next.iter().all(|&n| n == WRITES));
    for w in writers {
        for (i, r) in w.join().unwrap().iter().enumerate() {
            result_of(r, "write").unwrap_or_else(|e| panic!("write {i}: {e}"));
        }
    }
    // Nothing extra.
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(c.read(&mut b).is_err(), "unexpected extra bytes");
    server.shutdown().unwrap();
}

/// After the connection closed, each write fails once and stays failed.
fn handle_writes_after_close_fail<P: common::TestPoller>() {
    let _g = shared();
    let h = HandOut::default();
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    let handle = h.handle();
    let ok = handle.write(b"before".to_vec());
    assert_eq!(read_n(&mut c, 6).unwrap(), b"before");
    result_of(&ok, "write before close").unwrap();
    drop(c);
    assert!(h.log.wait_closed(1));
    for i in 0..100 {
        let r = handle.write(format!("late {i}").into_bytes());
        assert!(result_of(&r, "late write").is_err(), "late write {i} Ok");
        // Once known, the result never changes.
        assert!(r.try_result().unwrap().is_err());
        assert!(r.wait().is_err());
    }
    assert!(handle.close().is_ok(), "the server still runs");
    server.shutdown().unwrap();
    let r = handle.write(b"after shutdown".to_vec());
    assert!(result_of(&r, "write after shutdown").is_err());
    assert_eq!(h.log.closed(), 1, "on_closed once");
}

/// Writes still queued when the peer resets the connection fail.
fn handle_writes_queued_at_reset_fail<P: common::TestPoller>() {
    let _g = shared();
    let h = HandOut::default();
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    let handle = h.handle();
    // More than loopback's socket buffers can hold: it stays queued.
    let big = handle.write(vec![7u8; 64 * MIB]);
    let behind = handle.write(b"behind".to_vec());
    thread::sleep(Duration::from_millis(300));
    assert!(big.try_result().is_none(), "64 MiB cannot be written yet");
    assert!(behind.try_result().is_none());
    // Read a little, then close with unread data: the kernel sends RST.
    read_n(&mut c, 1000).unwrap();
    drop(c);
    assert!(result_of(&big, "big write").is_err());
    assert!(result_of(&behind, "write behind it").is_err());
    assert!(h.log.wait_closed(1));
    assert!(
        matches!(h.log.events()[0], Ev::Closed { err: Some(_), .. }),
        "closed by the write error: {:?}",
        h.log.events()
    );
    server.shutdown().unwrap();
}

/// Writes racing a shutdown: every receipt completes (none is lost in the
/// channel when the loop goes away).
fn handle_receipts_survive_shutdown<P: common::TestPoller>() {
    let _g = shared();
    for round in 0..20 {
        let h = HandOut::default();
        let server = start::<P, _>(h.clone());
        let mut c = connect(&server.addrs()[0]);
        c.write_all(b"go").unwrap();
        let handle = h.handle();
        let reader = thread::spawn(move || {
            let _ = read_to_eof(&mut c);
        });
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (handle, stop) = (handle.clone(), stop.clone());
                thread::spawn(move || {
                    let mut receipts = Vec::new();
                    let mut after = 0;
                    // Bounded, so a hung shutdown fails the test instead
                    // of exhausting memory.
                    while after < 200 && receipts.len() < 1_000_000 {
                        if stop.load(Ordering::SeqCst) {
                            after += 1;
                        }
                        receipts.push(handle.write(vec![1u8; 64]));
                        if receipts.len() % 64 == 0 {
                            thread::yield_now();
                        }
                    }
                    receipts
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(5 + 5 * (round % 4)));
        // Writers flooding the wake channel must not keep the loop from
        // seeing the shutdown.
        let t0 = Instant::now();
        server.shutdown().unwrap();
        let took = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        assert!(
            took < Duration::from_secs(5),
            "round {round}: shutdown took {took:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for w in writers {
            let receipts = w.join().unwrap();
            for r in &receipts {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    r.wait_timeout(left).is_some(),
                    "round {round}: a receipt was lost at shutdown"
                );
            }
            assert!(receipts.last().unwrap().try_result().unwrap().is_err());
        }
        reader.join().unwrap();
    }
}

// ----- backpressure ------------------------------------------------------------

/// Streams `pieces` pieces of `piece.len()` bytes, each the next one only
/// when the previous drained (`on_drained`), then closes. Each piece starts
/// with its sequence number (8 bytes LE).
#[derive(Clone)]
struct Streamer {
    piece: Arc<Vec<u8>>,
    pieces: u64,
    produced: Arc<AtomicU64>,
    max_queued: Arc<AtomicUsize>,
}

impl Streamer {
    fn next(&mut self, conn: &mut Conn<'_, u64>) -> Action {
        let seq = *conn.context();
        if seq == self.pieces {
            return Action::Close;
        }
        conn.write(&seq.to_le_bytes());
        conn.write(&self.piece[8..]);
        *conn.context_mut() += 1;
        self.produced.store(seq + 1, Ordering::SeqCst);
        self.max_queued
            .fetch_max(conn.output_len(), Ordering::SeqCst);
        Action::None
    }
}

impl EventHandler for Streamer {
    type Context = u64;
    fn on_opened(&mut self, conn: &mut Conn<'_, u64>) -> (Options, Action) {
        (Options::default(), self.next(conn))
    }
    fn on_drained(&mut self, conn: &mut Conn<'_, u64>) -> Action {
        self.next(conn)
    }
}

/// 1 GiB streamed to a client that does not read for a while: the server's
/// memory stays bounded, the producer waits, and then every byte arrives.
fn stream_1gib_with_bounded_memory<P: common::TestPoller>() {
    let _g = exclusive();
    const PIECE: usize = 256 * 1024;
    const PIECES: u64 = 4096; // 1 GiB
    let mut rng = Rng::new(42);
    let piece = Arc::new(rng.bytes(PIECE));
    let h = Streamer {
        piece: piece.clone(),
        pieces: PIECES,
        produced: Default::default(),
        max_queued: Default::default(),
    };
    let mut buf = vec![0u8; PIECE];
    let base = rss();
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    let mut peak = 0usize;
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss().saturating_sub(base));
    }
    let produced = h.produced.load(Ordering::SeqCst);
    eprintln!(
        "stream: RSS growth {} KiB while not reading, {produced} pieces produced",
        peak / 1024
    );
    assert!(
        peak < 4 * HIGH + 4 * MIB,
        "RSS grew {peak} bytes while the client did not read"
    );
    assert!(
        produced < 128,
        "the producer ran ahead of the socket: {produced} pieces"
    );
    let (cpu0, t0) = (cpu_time(), Instant::now());
    thread::sleep(Duration::from_millis(300));
    let busy = cpu_time() - cpu0;
    assert!(
        busy < t0.elapsed() / 4,
        "the loop spun while the client did not read: {busy:?} of CPU in {:?}",
        t0.elapsed()
    );
    assert_eq!(
        h.produced.load(Ordering::SeqCst),
        produced,
        "still producing"
    );
    assert!(h.max_queued.load(Ordering::SeqCst) <= PIECE);
    // Now read everything and check it.
    let mut sum = 0u64;
    for seq in 0..PIECES {
        c.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("piece {seq}: {e}"));
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), seq);
        assert!(buf[8..] == piece[8..], "piece {seq} corrupted");
        sum = sum.wrapping_add(buf[PIECE - 1] as u64 + seq);
    }
    assert_eq!(read_to_eof(&mut c).unwrap(), b"", "extra bytes after 1 GiB");
    let want: u64 = (0..PIECES).map(|s| piece[PIECE - 1] as u64 + s).sum();
    assert_eq!(sum, want);
    server.shutdown().unwrap();
}

#[derive(Clone, Copy, Default)]
struct Echo;

impl EventHandler for Echo {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
}

/// A client that sends without reading: the echo server stops reading it
/// (memory stays bounded), keeps serving others, and resumes when it reads.
fn sender_that_never_reads_is_paused<P: common::TestPoller>() {
    let _g = exclusive();
    let pat = Arc::new(Pattern::new(7));
    let base = rss();
    let server = start::<P, _>(Echo);
    let addr = server.addrs()[0].clone();
    let hog = connect(&addr);
    let sent = Arc::new(AtomicU64::new(0));
    const TOTAL: u64 = 128 * MIB as u64;
    let writer = {
        let (mut hog, pat, sent) = (hog.try_clone().unwrap(), pat.clone(), sent.clone());
        thread::spawn(move || {
            hog.set_write_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            pat.send(&mut hog, TOTAL, &sent)
        })
    };
    // The writer stalls once the server stopped reading and the kernel
    // buffers are full.
    let mut last = u64::MAX;
    let t0 = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        assert!(
            t0.elapsed() < Duration::from_secs(10) && now < TOTAL,
            "the server never stopped reading ({now} bytes taken)"
        );
    }
    let growth = rss().saturating_sub(base);
    eprintln!(
        "never-reading sender: stalled after {} KiB, RSS growth {} KiB",
        last / 1024,
        growth / 1024
    );
    assert!(last < 64 * MIB as u64, "server read {last} bytes");
    assert!(growth < 4 * HIGH + 4 * MIB, "RSS grew {growth} bytes");
    let (cpu0, t0) = (cpu_time(), Instant::now());
    thread::sleep(Duration::from_millis(500));
    let busy = cpu_time() - cpu0;
    assert!(
        busy < t0.elapsed() / 4,
        "the loop spun while paused: {busy:?} of CPU in {:?}",
        t0.elapsed()
    );
    // Others are still served.
    for i in 0..3 {
        let mut other = connect(&addr);
        let msg = format!("hello {i}").repeat(100);
        other.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(&mut other, msg.len()).unwrap(), msg.as_bytes());
    }
    // Reading resumes the hog: everything comes back in order.
    let mut r = hog.try_clone().unwrap();
    r.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert_eq!(pat.recv(&mut r, TOTAL).unwrap(), TOTAL);
    writer.join().unwrap().unwrap();
    server.shutdown().unwrap();
}

/// Pairs connections in order (1st with 2nd, 3rd with 4th…) and forwards
/// each one's input to its peer with `write_to`; closes the peer on close.
/// With `fan_in`, every connection after the first forwards to the first.
#[derive(Clone, Default)]
struct Relay {
    fan_in: bool,
    first: Option<ConnId>,
    waiting: Option<ConnId>,
    peers: HashMap<ConnId, ConnId>,
    paired: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl EventHandler for Relay {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let me = conn.id();
        if self.fan_in {
            match self.first {
                None => self.first = Some(me),
                Some(first) => {
                    self.peers.insert(me, first);
                }
            }
        } else if let Some(other) = self.waiting.take() {
            self.peers.insert(me, other);
            self.peers.insert(other, me);
        } else {
            self.waiting = Some(me);
        }
        self.paired.fetch_add(1, Ordering::SeqCst);
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        match self.peers.get(&conn.id()) {
            Some(&peer) if conn.write_to(peer, input) => {}
            _ => {
                self.dropped.fetch_add(input.len(), Ordering::SeqCst);
            }
        }
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        if let Some(peer) = self.peers.remove(&conn.id()) {
            if !self.fan_in {
                conn.close_conn(peer);
            }
        }
        Action::None
    }
}

/// `write_to` with a slow receiver: the sender is paused while the
/// receiver's queue is high, resumed when it drains; 64 MiB arrive intact.
fn write_to_pauses_and_resumes_the_sender<P: common::TestPoller>() {
    // Exclusive: it measures this process's CPU time.
    let _g = exclusive();
    let h = Relay::default();
    let server = start::<P, _>(h.clone());
    let mut a = connect(&server.addrs()[0]);
    let mut b = connect(&server.addrs()[0]);
    assert!(eventually(Duration::from_secs(5), || h
        .paired
        .load(Ordering::SeqCst)
        == 2));
    const TOTAL: u64 = 64 * MIB as u64;
    let pat = Arc::new(Pattern::new(3));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (pat, sent) = (pat.clone(), sent.clone());
        let mut a = a.try_clone().unwrap();
        thread::spawn(move || {
            a.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
            pat.send(&mut a, TOTAL, &sent)
        })
    };
    // b does not read: a must stall well short of 64 MiB.
    let mut last = u64::MAX;
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        assert!(now < TOTAL, "the sender was never paused");
        last = now;
    }
    assert!(last < 48 * MIB as u64, "took {last} bytes without pausing");
    // While paused, the loop sleeps: it must not spin on the paused
    // sender's readable socket.
    let (cpu0, t0) = (cpu_time(), Instant::now());
    thread::sleep(Duration::from_millis(500));
    let busy = cpu_time() - cpu0;
    eprintln!("paused for {:?}: {busy:?} of CPU", t0.elapsed());
    assert!(
        busy < t0.elapsed() / 4,
        "the loop spun while the sender was paused: {busy:?} of CPU in {:?}",
        t0.elapsed()
    );
    b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert_eq!(pat.recv(&mut b, TOTAL).unwrap(), TOTAL);
    writer.join().unwrap().unwrap();
    // And the other way, then close propagates.
    b.write_all(b"back").unwrap();
    assert_eq!(read_n(&mut a, 4).unwrap(), b"back");
    drop(a);
    assert_eq!(read_to_eof(&mut b).unwrap(), b"");
    assert_eq!(h.dropped.load(Ordering::SeqCst), 0);
    server.shutdown().unwrap();
}

/// Two senders `write_to` one slow receiver: both are paused and both are
/// resumed (neither is forgotten).
fn write_to_fan_in_resumes_every_sender<P: common::TestPoller>() {
    let _g = shared();
    let h = Relay {
        fan_in: true,
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut sink = connect(&server.addrs()[0]);
    assert!(eventually(Duration::from_secs(5), || h
        .paired
        .load(Ordering::SeqCst)
        == 1));
    const EACH: usize = 16 * MIB;
    let senders: Vec<_> = [b'a', b'b', b'c']
        .into_iter()
        .map(|byte| {
            let mut s = connect(&server.addrs()[0]);
            s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            thread::spawn(move || {
                let chunk = vec![byte; 64 * 1024];
                for _ in 0..EACH / chunk.len() {
                    s.write_all(&chunk)?;
                }
                Ok::<_, io::Error>(s)
            })
        })
        .collect();
    // Let every sender hit the high-water mark.
    thread::sleep(Duration::from_millis(500));
    sink.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut counts = [0usize; 3];
    let mut buf = vec![0u8; 64 * 1024];
    while counts.iter().sum::<usize>() < 3 * EACH {
        let n = sink
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("stalled at {counts:?}: {e}"));
        assert!(n > 0, "EOF at {counts:?}");
        for &b in &buf[..n] {
            counts[(b - b'a') as usize] += 1;
        }
    }
    assert_eq!(counts, [EACH; 3]);
    for s in senders {
        s.join().unwrap().unwrap();
    }
    assert_eq!(h.dropped.load(Ordering::SeqCst), 0);
    server.shutdown().unwrap();
}

// ----- graceful shutdown --------------------------------------------------------

/// On `go`, queues `bulk` bytes of the pattern; logs opens and closes.
#[derive(Clone, Default)]
struct Bulk {
    bulk: usize,
    pat: Arc<Mutex<Option<Arc<Pattern>>>>,
    gone: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    log: Log,
}

impl EventHandler for Bulk {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        self.opened.fetch_add(1, Ordering::SeqCst);
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input.starts_with(b"go") {
            let pat = self.pat.lock().unwrap().clone().unwrap();
            let mut off = 0;
            while off < self.bulk {
                let n = (self.bulk - off).min(PERIOD);
                conn.write(pat.at(off as u64, n));
                off += n;
            }
            self.queued.fetch_max(conn.output_len(), Ordering::SeqCst);
            self.gone.fetch_add(1, Ordering::SeqCst);
        }
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.push(Ev::Closed {
            dialed: conn.is_dialed(),
            err: kind(&err),
        });
        Action::None
    }
}

/// A client that never reads while MBs are queued: `shutdown_timeout`
/// returns at its deadline anyway, and every connection got `on_closed`.
fn shutdown_timeout_with_a_stuck_client<P: common::TestPoller>() {
    let _g = shared();
    let h = Bulk {
        bulk: 16 * MIB,
        pat: Arc::new(Mutex::new(Some(Arc::new(Pattern::new(1))))),
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut stuck = connect(&server.addrs()[0]);
    let _idle = connect(&server.addrs()[0]);
    stuck.write_all(b"go").unwrap();
    assert!(eventually(Duration::from_secs(5), || h
        .gone
        .load(Ordering::SeqCst)
        == 1
        && h.opened.load(Ordering::SeqCst) == 2));
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    server.shutdown_timeout(Duration::from_millis(300)).unwrap();
    let took = t0.elapsed();
    eprintln!("shutdown_timeout(300 ms) with a stuck client took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        took >= Duration::from_millis(250),
        "did not wait for the stuck client to drain: {took:?}"
    );
    assert_eq!(h.log.closed(), 2, "on_closed for every connection");
    drop(stuck);
}

/// A client with output still queued gets every byte, then EOF, before a
/// graceful shutdown returns (which it does early, once all are flushed).
fn shutdown_timeout_flushes_pending_output<P: common::TestPoller>() {
    let _g = shared();
    const BULK: usize = 24 * MIB;
    let pat = Arc::new(Pattern::new(9));
    let h = Bulk {
        bulk: BULK,
        pat: Arc::new(Mutex::new(Some(pat.clone()))),
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    assert!(eventually(Duration::from_secs(5), || h
        .gone
        .load(Ordering::SeqCst)
        == 1));
    assert!(
        h.queued.load(Ordering::SeqCst) > 8 * MIB,
        "output was pending at shutdown"
    );
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let n = pat.recv(&mut c, BULK as u64)?;
        let rest = read_to_eof(&mut c)?;
        Ok::<_, io::Error>((n, rest.len()))
    });
    let t0 = Instant::now();
    server.shutdown_timeout(Duration::from_secs(20)).unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "did not return once flushed"
    );
    assert!(
        took >= Duration::from_millis(250),
        "closed before the client read: {took:?}"
    );
    assert_eq!(reader.join().unwrap().unwrap(), (BULK as u64, 0));
    assert_eq!(
        h.log.events(),
        [Ev::Closed {
            dialed: false,
            err: None
        }]
    );
}

// ----- dialing ------------------------------------------------------------------

/// Logs opens and closes; echoes; on `dial ADDR` from a client, dials ADDR
/// from the loop with `Conn::dial` and reports the immediate result.
#[derive(Clone, Default)]
struct Dialer {
    log: Log,
    immediate: Arc<Mutex<Vec<io::Result<ConnId>>>>,
    greet: bool,
}

impl EventHandler for Dialer {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.log.push(Ev::Opened {
            dialed: conn.is_dialed(),
        });
        if conn.is_dialed() {
            assert_eq!(conn.addr_index(), None);
            if self.greet {
                conn.write(b"hello from evio");
            }
        }
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if let Some(rest) = input.strip_prefix(b"dial ") {
            let text = std::str::from_utf8(rest).unwrap().trim();
            let addr = match text.strip_prefix("unix:") {
                Some(path) => Addr::Unix(Some(path.into())),
                None => Addr::Inet(text.parse().unwrap()),
            };
            let r = conn.dial(&addr, ());
            self.immediate.lock().unwrap().push(r);
            conn.write(b"dialing");
            return Action::None;
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.push(Ev::Closed {
            dialed: conn.is_dialed(),
            err: kind(&err),
        });
        Action::None
    }
}

fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Dialing a closed port: `on_closed` gets ConnectionRefused, never
/// `on_opened`, both for `ServerHandle::dial` and `Conn::dial`.
fn dial_refused<P: common::TestPoller>() {
    let _g = shared();
    let h = Dialer::default();
    let server = start::<P, _>(h.clone());
    let target = closed_port();
    server.dial(target, ()).unwrap();
    assert!(h.log.wait_closed(1));
    assert_eq!(
        h.log.events(),
        [Ev::Closed {
            dialed: true,
            err: Some(io::ErrorKind::ConnectionRefused)
        }]
    );
    let mut c = connect(&server.addrs()[0]);
    c.write_all(format!("dial {target}").as_bytes()).unwrap();
    assert_eq!(read_n(&mut c, 7).unwrap(), b"dialing");
    assert!(h.log.wait_closed(2));
    assert!(h.immediate.lock().unwrap()[0].is_ok());
    assert_eq!(
        h.log.events(),
        [
            Ev::Closed {
                dialed: true,
                err: Some(io::ErrorKind::ConnectionRefused)
            },
            Ev::Opened { dialed: false },
            Ev::Closed {
                dialed: true,
                err: Some(io::ErrorKind::ConnectionRefused)
            },
        ]
    );
    server.shutdown().unwrap();
}

/// A loopback listener whose accept queue is full and that never accepts:
/// Linux drops further SYNs, so a connect to it hangs without a packet
/// leaving the machine. Returns the listener, its address and the fillers.
fn hanging_listener() -> (std::os::fd::OwnedFd, SocketAddr, Vec<TcpStream>) {
    let opts = evio_sys::net::BindOptions {
        backlog: 0,
        ..Default::default()
    };
    let fd = evio_sys::net::tcp_listener("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    let addr = evio_sys::net::local_addr(&fd).unwrap().as_inet().unwrap();
    let mut fill = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return (fd, addr, fill),
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("a backlog-0 listener accepted 16 connections: connects do not hang here");
}

/// A dial that cannot complete gets `TimedOut` after `dial_timeout`.
fn dial_times_out<P: common::TestPoller>() {
    let _g = shared();
    let (_listener, target, _fill) = hanging_listener();
    let h = Dialer::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .dial_timeout(Some(Duration::from_millis(200)))
        .start(h.clone(), &["tcp://127.0.0.1:0"])
        .unwrap();
    let t0 = Instant::now();
    server.dial(target, ()).unwrap();
    assert!(h.log.wait_closed(1));
    let took = h.log.first_close_at().unwrap() - t0;
    assert_eq!(
        h.log.events(),
        [Ev::Closed {
            dialed: true,
            err: Some(io::ErrorKind::TimedOut)
        }]
    );
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "timed out after {took:?}"
    );
    server.shutdown().unwrap();
}

/// A dial that fails at once (no such unix socket) still reaches
/// `on_closed` for `ServerHandle::dial`; `Conn::dial` returns the error.
fn dial_failing_at_once<P: common::TestPoller>() {
    let _g = shared();
    let h = Dialer::default();
    let server = start::<P, _>(h.clone());
    let missing = temp_sock("no-such-listener");
    let _ = std::fs::remove_file(&missing);
    server.dial(Addr::Unix(Some(missing.clone())), ()).unwrap();
    assert!(h.log.wait_closed(1), "no on_closed for a failed dial");
    assert_eq!(
        h.log.events(),
        [Ev::Closed {
            dialed: true,
            err: Some(io::ErrorKind::NotFound)
        }]
    );
    let mut c = connect(&server.addrs()[0]);
    c.write_all(format!("dial unix:{}", missing.display()).as_bytes())
        .unwrap();
    assert_eq!(read_n(&mut c, 7).unwrap(), b"dialing");
    let r = h.immediate.lock().unwrap().pop().unwrap();
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        h.log.closed(),
        1,
        "no on_closed when Conn::dial returns Err"
    );
    server.shutdown().unwrap();
}

/// `ServerHandle::dial` to a std listener: `on_opened` fires, data flows
/// both ways, the peer's close reaches `on_closed`.
fn server_handle_dial_exchanges_data<P: common::TestPoller>() {
    let _g = shared();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let h = Dialer {
        greet: true,
        ..Default::default()
    };
    let server = start::<P, _>(h.clone());
    server.dial(peer.local_addr().unwrap(), ()).unwrap();
    let (mut s, _) = peer.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_n(&mut s, 15).unwrap(), b"hello from evio");
    s.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut s, 4).unwrap(), b"ping");
    assert_eq!(h.log.events(), [Ev::Opened { dialed: true }]);
    drop(s);
    assert!(h.log.wait_closed(1));
    assert_eq!(
        h.log.events()[1],
        Ev::Closed {
            dialed: true,
            err: None
        }
    );
    server.shutdown().unwrap();
}

/// Dials `target` when a client connects, writes to the dialed conn (and
/// optionally closes it) before it has connected.
#[derive(Clone)]
struct EarlyWriter {
    target: SocketAddr,
    close: bool,
    log: Log,
}

impl EventHandler for EarlyWriter {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.log.push(Ev::Opened {
            dialed: conn.is_dialed(),
        });
        if !conn.is_dialed() {
            let id = conn.dial(Addr::Inet(self.target), ()).unwrap();
            assert!(conn.write_to(id, b"early bytes"));
            assert_eq!(conn.output_len_of(id), Some(11));
            if self.close {
                assert!(conn.close_conn(id));
            }
        }
        (Options::default(), Action::None)
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.log.push(Ev::Closed {
            dialed: conn.is_dialed(),
            err: kind(&err),
        });
        Action::None
    }
}

/// Bytes written to a dial before it connects are sent once it does, and a
/// close requested meanwhile happens after them.
fn writes_and_close_before_connect<P: common::TestPoller>() {
    let _g = shared();
    for close in [false, true] {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let h = EarlyWriter {
            target: peer.local_addr().unwrap(),
            close,
            log: Log::default(),
        };
        let server = start::<P, _>(h.clone());
        let _client = connect(&server.addrs()[0]);
        let (mut s, _) = peer.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(read_n(&mut s, 11).unwrap(), b"early bytes");
        if close {
            assert_eq!(read_to_eof(&mut s).unwrap(), b"", "closed after the bytes");
            assert!(h.log.wait_closed(1));
            assert!(h.log.events().contains(&Ev::Closed {
                dialed: true,
                err: None
            }));
        }
        server.shutdown().unwrap();
    }
}

// ----- idle timeouts --------------------------------------------------------------

/// Echo; on listener 1 returns `Options::idle_timeout = 200 ms`, on
/// listener 2 calls `set_idle_timeout(None)`; `short` sets 200 ms later.
/// (listener index, `on_closed`'s error kind, when).
type IdleClose = (usize, Option<io::ErrorKind>, Instant);

#[derive(Clone, Default)]
struct Idle {
    closed: Arc<Mutex<Vec<IdleClose>>>,
}

impl EventHandler for Idle {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        let mut opts = Options::default();
        match conn.addr_index().unwrap() {
            1 => opts.idle_timeout = Some(Duration::from_millis(200)),
            2 => conn.set_idle_timeout(None),
            _ => {}
        }
        (opts, Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"short" {
            conn.set_idle_timeout(Some(Duration::from_millis(200)));
        }
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.closed
            .lock()
            .unwrap()
            .push((conn.addr_index().unwrap(), kind(&err), Instant::now()));
        Action::None
    }
}

const ADDRS3: [&str; 3] = [
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:0",
];

/// Waits for EOF on `c`; returns how long it took.
fn time_to_eof(c: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let rest = read_to_eof(c).expect("EOF");
    assert!(rest.is_empty(), "unexpected bytes {rest:?}");
    t0.elapsed()
}

/// An idle connection is closed with TimedOut; a busy one (a message every
/// 20 ms for 5× the timeout) is not; `set_idle_timeout(None)` exempts one.
/// (400 ms rather than less: a loaded 2-core machine can stall a thread for
/// 100s of ms.)
fn idle_timeout_closes_only_idle_conns<P: common::TestPoller>() {
    let _g = shared();
    const IDLE: Duration = Duration::from_millis(400);
    let h = Idle::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .idle_timeout(Some(IDLE))
        .start(h.clone(), &ADDRS3)
        .unwrap();
    let mut idle = connect(&server.addrs()[0]);
    let mut busy = connect(&server.addrs()[0]);
    let mut exempt = connect(&server.addrs()[2]);
    let idle_waiter = thread::spawn(move || time_to_eof(&mut idle));
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < 5 * IDLE {
        let msg = format!("m{:02}", i % 100);
        busy.write_all(msg.as_bytes()).unwrap();
        let got = read_n(&mut busy, 3)
            .unwrap_or_else(|e| panic!("busy conn closed after {:?}: {e}", t0.elapsed()));
        assert_eq!(got, msg.as_bytes());
        thread::sleep(Duration::from_millis(20));
        i += 1;
    }
    let took = idle_waiter.join().unwrap();
    assert!(
        took >= IDLE - Duration::from_millis(50) && took < IDLE + Duration::from_secs(2),
        "idle conn closed after {took:?}"
    );
    // The busy one times out once it goes quiet.
    let took = time_to_eof(&mut busy);
    assert!(
        took < IDLE + Duration::from_secs(2),
        "busy conn closed after {took:?}"
    );
    // The exempt one outlived both.
    exempt.write_all(b"still here").unwrap();
    assert_eq!(read_n(&mut exempt, 10).unwrap(), b"still here");
    let closed = h.closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed
        .iter()
        .all(|(i, e, _)| *i == 0 && *e == Some(io::ErrorKind::TimedOut)));
    server.shutdown().unwrap();
    assert_eq!(h.closed.lock().unwrap()[2].1, None, "shutdown closes it");
}

/// A shorter per-connection timeout than the server's applies at once:
/// through `Options::idle_timeout` and through `set_idle_timeout`.
fn idle_timeout_per_connection_override<P: common::TestPoller>() {
    let _g = shared();
    let h = Idle::default();
    let server = Builder::new()
        .poller(|_| P::make())
        .idle_timeout(Some(Duration::from_secs(8)))
        .start(h.clone(), &ADDRS3)
        .unwrap();
    let mut by_options = connect(&server.addrs()[1]);
    let mut by_call = connect(&server.addrs()[0]);
    let mut default = connect(&server.addrs()[0]);
    by_call.write_all(b"short").unwrap();
    assert_eq!(read_n(&mut by_call, 5).unwrap(), b"short");
    let t = thread::spawn(move || time_to_eof(&mut by_call));
    let took = time_to_eof(&mut by_options);
    assert!(took < Duration::from_millis(1500), "Options: {took:?}");
    let took = t.join().unwrap();
    assert!(
        took < Duration::from_millis(1500),
        "set_idle_timeout: {took:?}"
    );
    default.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut default, 1).unwrap(), b"x");
    let closed = h.closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed
        .iter()
        .all(|(_, e, _)| *e == Some(io::ErrorKind::TimedOut)));
    // Without a server default, nothing times out.
    let h = Idle::default();
    let server2 = Builder::new()
        .poller(|_| P::make())
        .start(h.clone(), &ADDRS3)
        .unwrap();
    let mut plain = connect(&server2.addrs()[0]);
    thread::sleep(Duration::from_millis(400));
    plain.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut plain, 1).unwrap(), b"y");
    assert!(h.closed.lock().unwrap().is_empty());
    server2.shutdown().unwrap();
    server.shutdown().unwrap();
}

/// Streams endlessly through `on_drained` once a client says `stream`;
/// echoes everything else.
#[derive(Clone, Default)]
struct Firehose;

impl EventHandler for Firehose {
    type Context = bool;
    fn on_data(&mut self, conn: &mut Conn<'_, bool>, input: &[u8]) -> Action {
        if input == b"stream" {
            conn.set_context(true);
            conn.write(&[0u8; 64 * 1024]);
        } else {
            conn.write(input);
        }
        Action::None
    }
    fn on_drained(&mut self, conn: &mut Conn<'_, bool>) -> Action {
        if *conn.context() {
            conn.write(&[0u8; 64 * 1024]);
        }
        Action::None
    }
}

/// A producer feeding a fast reader from `on_drained` does not starve the
/// loop's other connections.
fn on_drained_producer_does_not_starve_others<P: common::TestPoller>() {
    let _g = shared();
    let server = start::<P, _>(Firehose);
    let mut hose = connect(&server.addrs()[0]);
    hose.write_all(b"stream").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            while !stop.load(Ordering::SeqCst) {
                match hose.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            total
        })
    };
    thread::sleep(Duration::from_millis(200));
    let mut other = connect(&server.addrs()[0]);
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    for i in 0..20 {
        let msg = format!("ping {i:02}");
        other.write_all(msg.as_bytes()).unwrap();
        let got =
            read_n(&mut other, msg.len()).unwrap_or_else(|e| panic!("round trip {i} starved: {e}"));
        assert_eq!(got, msg.as_bytes());
    }
    stop.store(true, Ordering::SeqCst);
    server.shutdown().unwrap();
    let total = reader.join().unwrap();
    assert!(total > 0);
}

/// Publishes a handle per connection; each wake costs ~20 µs of work;
/// echoes data.
#[derive(Clone, Default)]
struct SlowWake {
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    wakes: Arc<AtomicU64>,
}

impl EventHandler for SlowWake {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.handles.lock().unwrap().push(conn.handle());
        (Options::default(), Action::None)
    }
    fn on_wake(&mut self, _: &mut Conn<'_, ()>) -> Action {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {}
        self.wakes.fetch_add(1, Ordering::Relaxed);
        Action::None
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
}

/// Threads waking a connection faster than the loop handles the wakes:
/// the loop still serves other connections and still shuts down promptly.
fn flooded_wake_channel_still_serves_io<P: common::TestPoller>() {
    let _g = shared();
    let h = SlowWake::default();
    let server = start::<P, _>(h.clone());
    let _target = connect(&server.addrs()[0]);
    assert!(eventually(Duration::from_secs(5), || !h
        .handles
        .lock()
        .unwrap()
        .is_empty()));
    let handle = h.handles.lock().unwrap()[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (handle, stop) = (handle.clone(), stop.clone());
            thread::spawn(move || {
                // Capped, so a stuck loop fails the test, not the machine.
                for _ in 0..400_000 {
                    if stop.load(Ordering::Relaxed) || handle.wake().is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let mut other = connect(&server.addrs()[0]);
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    for i in 0..5 {
        let msg = format!("ping {i}");
        other.write_all(msg.as_bytes()).unwrap();
        let got = read_n(&mut other, msg.len()).unwrap_or_else(|e| {
            panic!(
                "round trip {i} starved by the wake flood ({} wakes handled): {e}",
                h.wakes.load(Ordering::Relaxed)
            )
        });
        assert_eq!(got, msg.as_bytes());
    }
    let t0 = Instant::now();
    server.shutdown().unwrap();
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

on_every_poller!(
    handle_writes_from_many_threads,
    handle_writes_after_close_fail,
    handle_writes_queued_at_reset_fail,
    handle_receipts_survive_shutdown,
    stream_1gib_with_bounded_memory,
    sender_that_never_reads_is_paused,
    write_to_pauses_and_resumes_the_sender,
    write_to_fan_in_resumes_every_sender,
    shutdown_timeout_with_a_stuck_client,
    shutdown_timeout_flushes_pending_output,
    dial_refused,
    dial_times_out,
    dial_failing_at_once,
    server_handle_dial_exchanges_data,
    writes_and_close_before_connect,
    idle_timeout_closes_only_idle_conns,
    idle_timeout_per_connection_override,
    on_drained_producer_does_not_starve_others,
    flooded_wake_channel_still_serves_io,
);
