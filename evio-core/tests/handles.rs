//! `ConnHandle`: writes from other threads with receipts — many writers at
//! once, writes after a close or a reset, receipts at shutdown. Every test
//! runs on epoll and on poll(2), on loopback only, bounded in time.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::beyond::*;
use common::*;
use evio_core::{Action, Conn, ConnHandle, EventHandler, ServerHandle};

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

    /// Starts a server running this handler, connects and says `go`: the
    /// server, the client and the handle published for it.
    fn serve<P: common::TestPoller>(&self) -> (ServerHandle<()>, TcpStream, ConnHandle) {
        let server = start::<P, _>(self.clone());
        let mut c = connect(&server.addrs()[0]);
        c.write_all(b"go").unwrap();
        let handle = self.handle();
        (server, c, handle)
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
        self.log.record_close(conn, &err);
        Action::None
    }
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
    let (server, mut c, handle) = h.serve::<P>();
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
    let (server, mut c, handle) = h.serve::<P>();
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
    let (server, mut c, handle) = h.serve::<P>();
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
        let (server, mut c, handle) = h.serve::<P>();
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

on_every_poller!(
    handle_writes_from_many_threads,
    handle_writes_after_close_fail,
    handle_writes_queued_at_reset_fail,
    handle_receipts_survive_shutdown,
);
