//! Per-loop counters: [`LoopMetrics`] snapshots, and how a loop keeps and
//! publishes them.
//!
//! A loop counts in plain integers ([`Counters`], its own, no atomics on
//! the hot path) and publishes them once per iteration into its mailbox's
//! [`Published`] cells (relaxed stores, one per counter); a snapshot reads
//! those. A snapshot is as fresh as the loop's last finished iteration.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one event loop has done, as counted since the server started (and,
/// for `connections_open`, now). From
/// [`ServerControl::metrics`](crate::ServerControl::metrics).
///
/// ```no_run
/// # #[derive(Clone)] struct Echo;
/// # impl evio_core::EventHandler for Echo { type Context = (); }
/// let server = evio_core::Builder::new().start(Echo, &["tcp://127.0.0.1:0"])?;
/// for (i, m) in server.control().metrics().iter().enumerate() {
///     println!("loop {i}: {} open, {} bytes read", m.connections_open, m.bytes_read);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopMetrics {
    /// Connections open now (accepted and dialed), a gauge.
    pub connections_open: u64,
    /// Connections accepted (served by this loop).
    pub connections_accepted: u64,
    /// Connections closed (accepted or dialed; a detach counts too).
    pub connections_closed: u64,
    /// Times `accept` failed for lack of descriptors (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`): each is a client kept waiting or refused.
    pub accept_out_of_fds: u64,
    /// Bytes read from sockets (ciphertext, for TLS).
    pub bytes_read: u64,
    /// Bytes written to sockets (ciphertext, for TLS).
    pub bytes_written: u64,
    /// Times the loop was woken by another thread (a cross-thread write, a
    /// connection handed over by the accepting loop, a dial, a stop).
    pub wakes: u64,
    /// Loop iterations (each: timers, one wait for events, their handling).
    pub iterations: u64,
    /// TLS handshakes finished.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
}

/// The counters a loop keeps for itself (published as [`LoopMetrics`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: u64,
    pub(crate) closed: u64,
    pub(crate) accept_out_of_fds: u64,
    pub(crate) bytes_read: u64,
    pub(crate) wakes: u64,
    pub(crate) iterations: u64,
    pub(crate) tls_handshakes: u64,
    pub(crate) tls_handshake_failures: u64,
}

const CELLS: usize = 9;

/// A loop's published counters, read by snapshots from any thread.
#[derive(Debug, Default)]
pub(crate) struct Published([AtomicU64; CELLS]);

impl Published {
    /// Publishes `c` and the bytes the loop's table wrote (relaxed: each
    /// counter is read on its own; a snapshot is not one instant).
    pub(crate) fn store(&self, c: &Counters, bytes_written: u64) {
        let values = [
            c.accepted,
            c.closed,
            c.accept_out_of_fds,
            c.bytes_read,
            bytes_written,
            c.wakes,
            c.iterations,
            c.tls_handshakes,
            c.tls_handshake_failures,
        ];
        for (cell, v) in self.0.iter().zip(values) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// A snapshot, with `open` connections now.
    pub(crate) fn snapshot(&self, open: u64) -> LoopMetrics {
        let v: [u64; CELLS] = std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed));
        LoopMetrics {
            connections_open: open,
            connections_accepted: v[0],
            connections_closed: v[1],
            accept_out_of_fds: v[2],
            bytes_read: v[3],
            bytes_written: v[4],
            wakes: v[5],
            iterations: v[6],
            tls_handshakes: v[7],
            tls_handshake_failures: v[8],
        }
    }
}
