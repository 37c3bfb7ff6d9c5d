//! Checks of the wait itself: timeouts, and wakes from other threads.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Events, Interest, Poller};

use super::harness::{new_poller, New};
use super::util::{poller_with, unix_pair, DEADLINE, QUIET};
use super::Options;

/// A poller with one idle socket registered for reading (kept open by the
/// returned pair).
fn idle_poller<P: Poller>(new: &New<P>) -> (P, Events, (UnixStream, UnixStream)) {
    let pair = unix_pair();
    let (poller, events) = poller_with(new, pair.0.as_raw_fd(), 1, Interest::READABLE, 8);
    (poller, events, pair)
}

/// A wait with `timeout` that must report nothing, not even a wake; returns
/// how long it took.
fn empty_wait<P: Poller>(poller: &mut P, events: &mut Events, timeout: Duration) -> Duration {
    let start = Instant::now();
    let n = poller.wait(events, Some(timeout)).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(n, 0, "{events:?}");
    assert!(!events.is_woken());
    elapsed
}

/// A zero timeout polls and returns at once.
pub(super) fn zero_timeout<P: Poller>(new: &New<P>, _: &Options) {
    let (mut poller, mut events, _pair) = idle_poller(new);
    for _ in 0..3 {
        let elapsed = empty_wait(&mut poller, &mut events, Duration::ZERO);
        assert!(elapsed < Duration::from_millis(50), "took {elapsed:?}");
    }
}

/// A timeout is honoured: never early, not much later.
pub(super) fn timeouts<P: Poller>(new: &New<P>, _: &Options) {
    let (mut poller, mut events, _pair) = idle_poller(new);

    let elapsed = empty_wait(&mut poller, &mut events, QUIET);
    assert!(
        elapsed >= QUIET - Duration::from_millis(1),
        "a {QUIET:?} wait returned early, after {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(2),
        "a {QUIET:?} wait took {elapsed:?}"
    );

    // Sub-millisecond timeouts are rounded up, never down to a busy 0.
    let tiny = Duration::from_micros(300);
    let start = Instant::now();
    poller.wait(&mut events, Some(tiny)).unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= tiny,
        "a {tiny:?} wait returned after {elapsed:?}"
    );
}

/// A wake from another thread ends a wait without timeout.
pub(super) fn wake_from_thread<P: Poller>(new: &New<P>, _: &Options) {
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let start = Instant::now();
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        waker.wake().expect("wake");
    });
    // More than one wait only if a signal interrupts one (EINTR -> Ok(0)).
    for _ in 0..5 {
        poller.wait(&mut events, None).unwrap();
        if events.is_woken() {
            break;
        }
    }
    let elapsed = start.elapsed();
    thread.join().unwrap();
    assert!(events.is_woken(), "wait returned without the wake");
    assert!(
        events.is_empty(),
        "the wake must not be an event: {events:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(45),
        "woken after {elapsed:?}, before the wake was sent"
    );
}

/// 100,000 wakes in a tight loop neither block nor get lost, and coalesce
/// into one.
pub(super) fn many_wakes<P: Poller>(new: &New<P>, _: &Options) {
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let thread = {
        let waker = waker.clone();
        thread::spawn(move || {
            for _ in 0..100_000 {
                waker.wake().expect("wake");
            }
        })
    };
    thread.join().unwrap();

    let start = Instant::now();
    poller
        .wait(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    let elapsed = start.elapsed();
    assert!(events.is_woken(), "the wakes were lost");
    assert!(events.is_empty(), "{events:?}");
    assert!(
        elapsed < Duration::from_millis(500),
        "a pending wake took {elapsed:?} to be seen"
    );

    poller.wait(&mut events, Some(QUIET)).unwrap();
    assert!(
        !events.is_woken(),
        "wakes were not coalesced and drained: woken again"
    );

    // Draining re-armed the waker: the next wake is delivered too.
    waker.wake().expect("wake");
    poller
        .wait(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    assert!(events.is_woken(), "a wake after a drained one was lost");
}

/// Wakes racing with waits, as a loop sees them: a producer publishes a
/// sequence number, then wakes. The loop must never sleep through a wake:
/// once every wake was sent, a wait that times out means the loop missed
/// the final state. Every 10,000 wakes the producer lets the loop catch up,
/// so that wakes also meet a drained, re-armed waker.
pub(super) fn wakes_race_waits<P: Poller>(new: &New<P>, _: &Options) {
    const N: usize = 1_000_000;
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let seq = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let thread = {
        let (seq, acked, done) = (seq.clone(), acked.clone(), done.clone());
        thread::spawn(move || {
            for i in 1..=N {
                seq.store(i, Ordering::Release);
                waker.wake().expect("wake");
                if i % 10_000 == 0 {
                    let start = Instant::now();
                    while acked.load(Ordering::Acquire) < i && start.elapsed() < DEADLINE {
                        thread::yield_now();
                    }
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let start = Instant::now();
    let mut seen = 0;
    while seen < N {
        assert!(start.elapsed() < DEADLINE, "stuck at {seen}/{N}");
        let finished_before = done.load(Ordering::Acquire);
        poller
            .wait(&mut events, Some(Duration::from_millis(200)))
            .unwrap();
        if events.is_woken() {
            seen = seq.load(Ordering::Acquire);
            acked.store(seen, Ordering::Release);
        } else {
            assert!(
                !finished_before,
                "lost wake: all wakes were sent before this wait, \
                 the loop last saw {seen}/{N}, and the wait timed out"
            );
        }
    }
    thread.join().unwrap();
}

/// A waker may outlive its poller: waking then is harmless.
pub(super) fn waker_outlives_poller<P: Poller>(new: &New<P>, _: &Options) {
    let poller = new_poller(new);
    let waker = poller.waker();
    drop(poller);
    waker.wake().expect("wake after the poller is gone");
    waker.wake().expect("second wake after the poller is gone");
}
