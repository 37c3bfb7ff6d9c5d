//! The cross-thread side of a loop: the messages other threads send it
//! ([`Msg`]) and the channel, waker and counters they reach it through
//! ([`LoopRemote`]).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;
use evio_sys::Waker;

use crate::key::ConnKey;
use crate::receipt::PendingReceipt;
use crate::Addr;

/// What other threads send a loop.
pub(crate) enum Msg {
    /// Call `on_wake` for this connection if it still exists.
    Wake(ConnKey),
    /// Append to the connection's output; complete the receipt when written.
    Write {
        key: ConnKey,
        data: Vec<u8>,
        receipt: PendingReceipt,
    },
    /// Close the connection after its output is written.
    Close(ConnKey),
    /// Dial an outbound connection into this loop.
    Dial(Addr),
    /// A connection accepted by loop 0 for this loop to serve.
    Accepted {
        fd: OwnedFd,
        remote: Addr,
        listener: usize,
        unix: bool,
    },
}

/// The parts of a loop other threads can reach.
pub(crate) struct LoopRemote {
    tx: Sender<Msg>,
    waker: Waker,
    /// Open connections (counted when dispatched, so LeastConnections sees
    /// connections still in flight to the loop).
    conns: AtomicUsize,
}

impl LoopRemote {
    pub(crate) fn new(tx: Sender<Msg>, waker: Waker) -> LoopRemote {
        LoopRemote {
            tx,
            waker,
            conns: AtomicUsize::new(0),
        }
    }

    /// Queues a message and wakes the loop; `false` if the loop has ended.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "evio: waking a loop failed");
        }
        true
    }

    /// Wakes the loop without a message (shutdown, a backlog to go on with).
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.conns.load(Ordering::Acquire)
    }

    /// Counts a connection in (accepted, dispatched or dialed).
    pub(crate) fn count_open(&self) {
        self.conns.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a connection out (closed, detached, or never installed).
    pub(crate) fn count_closed(&self) {
        self.conns.fetch_sub(1, Ordering::AcqRel);
    }
}
