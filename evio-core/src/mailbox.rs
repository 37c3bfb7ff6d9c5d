//! A loop's mailbox, its cross-thread side: the messages other threads send it
//! ([`Msg`]) and the channel, waker and counters they reach it through
//! ([`Mailbox`]).

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_channel::Sender;
use evio_sys::Waker;

use crate::key::{ConnId, ConnKey};
use crate::metrics::{Counters, LoopMetrics, Published};
use crate::receipt::PendingReceipt;
use crate::warn::RateLimited;
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
    /// Send one datagram from the UDP socket whose reply slot is `key`.
    SendTo {
        key: ConnKey,
        to: SocketAddr,
        data: Vec<u8>,
        receipt: PendingReceipt,
    },
    /// Close the connection after its output is written.
    Close(ConnKey),
    /// Dial an outbound connection into this loop with this context (the
    /// handler's `Context` type: `ServerControl<C>` takes no other); the new
    /// connection's id, or why there is none, goes back on `reply`.
    Dial {
        addr: Addr,
        ctx: Box<dyn Any + Send>,
        reply: Sender<io::Result<ConnId>>,
        /// Speak TLS: the client config and the server's name.
        #[cfg(feature = "tls")]
        tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    },
    /// The server is out of descriptors: close up to this many of this
    /// loop's reclaimable connections.
    Reclaim(usize),
    /// A connection accepted by loop 0 for this loop to serve.
    Accepted(Accepted),
}

/// A connection just accepted, on its way to the loop that serves it.
pub(crate) struct Accepted {
    pub(crate) fd: OwnedFd,
    pub(crate) remote: Addr,
    /// Index of the accepting address.
    pub(crate) listener: usize,
    pub(crate) unix: bool,
    /// `TCP_NODELAY` is already on (inherited from the listener).
    pub(crate) nodelay: bool,
    /// Accepted on a `tls://` listener.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) tls: bool,
    /// From a `defer_accept` listener: data waits, read before polling.
    pub(crate) deferred: bool,
}

/// The parts of a loop other threads can reach.
pub(crate) struct Mailbox {
    tx: Sender<Msg>,
    waker: Waker,
    /// Open connections (counted when dispatched, so LeastConnections sees
    /// connections still in flight to the loop).
    conns: AtomicUsize,
    /// Wake failures (any thread), logged at most once a second.
    warned: Mutex<RateLimited>,
    /// The loop's counters, as it last published them.
    metrics: Published,
}

impl Mailbox {
    pub(crate) fn new(tx: Sender<Msg>, waker: Waker) -> Mailbox {
        Mailbox {
            tx,
            waker,
            conns: AtomicUsize::new(0),
            warned: Mutex::new(RateLimited::default()),
            metrics: Published::default(),
        }
    }

    /// Queues a message and wakes the loop; `false` if the loop has ended.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            warned.warn(
                |held| tracing::warn!(error = %e, suppressed = held, "evio: waking a loop failed"),
            );
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

    /// Publishes the loop's counters (the loop, once per iteration).
    pub(crate) fn publish(&self, counters: &Counters, bytes_written: u64) {
        self.metrics.store(counters, bytes_written);
    }

    /// The loop's counters as last published, and its open connections.
    pub(crate) fn metrics(&self) -> LoopMetrics {
        self.metrics.snapshot(self.open_connections() as u64)
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
