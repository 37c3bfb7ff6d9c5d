//! Backpressure: a 1 GiB stream with bounded memory, a sender that never
//! reads is paused, `write_to` pauses and resumes its senders. Every test
//! runs on epoll and on poll(2), on loopback only, bounded in time.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::beyond::*;
use common::*;
use evio_core::{Action, Conn, ConnId, EventHandler, Options};

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
    assert_idle(Duration::from_millis(300), "the client did not read");
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
    assert_idle(Duration::from_millis(500), "paused");
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
            Some(&peer) if conn.peer(peer).is_some_and(|mut p| p.write(input)) => {}
            _ => {
                self.dropped.fetch_add(input.len(), Ordering::SeqCst);
            }
        }
        Action::None
    }
    fn on_closed(&mut self, conn: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        if let Some(peer) = self.peers.remove(&conn.id()) {
            if !self.fan_in {
                if let Some(mut p) = conn.peer(peer) {
                    p.close();
                }
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
    soon!(h.paired.load(Ordering::SeqCst) == 2);
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
    assert_idle(Duration::from_millis(500), "the sender was paused");
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
    soon!(h.paired.load(Ordering::SeqCst) == 1);
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

on_every_poller!(
    stream_1gib_with_bounded_memory,
    sender_that_never_reads_is_paused,
    write_to_pauses_and_resumes_the_sender,
    write_to_fan_in_resumes_every_sender,
);
