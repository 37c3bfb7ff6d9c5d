//! The loop's per-connection timers: a min-heap of deadlines on a
//! millisecond clock.
//!
//! Timers are lazy. An idle timer is checked when due and re-armed from the
//! connection's last activity, so activity itself costs one store, never a
//! heap operation; an entry whose connection has gone, or whose deadline is
//! no longer the connection's current one, simply lapses.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::key::ConnKey;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// No byte read or written for the connection's idle timeout.
    Idle,
    /// A dial that has not connected in time.
    Connect,
    /// The handler's own timer (`Conn::set_timer`).
    User,
    /// A TLS handshake that has not finished in time.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshake,
}

/// Deadlines in ms on the loop clock, earliest first.
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(u64, TimerKind, ConnKey)>>,
    epoch: Instant,
    /// Loop clock in ms since `epoch`, refreshed once per iteration while
    /// any timer is in use.
    now_ms: u64,
}

impl Timers {
    pub(super) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            epoch: Instant::now(),
            now_ms: 0,
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(super) fn refresh(&mut self) -> u64 {
        self.set_now(Instant::now())
    }

    /// Sets the clock to `now` (read by the caller, to share one read).
    pub(super) fn set_now(&mut self, now: Instant) -> u64 {
        self.now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.now_ms
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the entries `keep` says are still current.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u64, TimerKind, ConnKey) -> bool) {
        self.heap
            .retain(|Reverse((due, kind, key))| keep(*due, *kind, *key));
    }

    pub(super) fn push(&mut self, due_ms: u64, kind: TimerKind, key: ConnKey) {
        self.heap.push(Reverse((due_ms, kind, key)));
    }

    /// When the earliest timer is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|Reverse((ms, _, _))| self.epoch + Duration::from_millis(*ms))
    }

    /// Takes the earliest timer if it is due at `now_ms`.
    pub(super) fn pop_due(&mut self, now_ms: u64) -> Option<(u64, TimerKind, ConnKey)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now_ms => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }
}
