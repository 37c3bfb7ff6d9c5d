//! What every loop of one server shares.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::loop_thread::ServerId;
use crate::mailbox::Mailbox;
use crate::Addr;

/// State every loop shares.
pub(crate) struct Shared {
    pub(crate) id: ServerId,
    shutdown: AtomicBool,
    /// Set by a graceful shutdown: loops flush output until then.
    drain_deadline: Mutex<Option<Instant>>,
    /// Set when a graceful shutdown (a drain) begins; read by handlers.
    draining: AtomicBool,
    /// The listening sockets, for a handover to a successor process;
    /// emptied when the server starts stopping.
    handover: Mutex<Vec<HandoverSocket>>,
    /// The listening sockets went to a successor: their unix socket files
    /// are its now, not to be removed.
    handed_over: AtomicBool,
    pub(crate) loops: Vec<Arc<Mailbox>>,
    pub(crate) addrs: Vec<Addr>,
    pub(crate) config: Config,
    /// Dials from other threads go to the loops in turn.
    dials: AtomicUsize,
    /// Set once every loop has stopped (for waiters without a thread to
    /// join).
    stopped: (Mutex<bool>, Condvar),
}

impl Shared {
    pub(crate) fn new(
        loops: Vec<Arc<Mailbox>>,
        addrs: Vec<Addr>,
        config: Config,
        handover: Vec<HandoverSocket>,
    ) -> Shared {
        Shared {
            id: ServerId::fresh(),
            shutdown: AtomicBool::new(false),
            drain_deadline: Mutex::new(None),
            draining: AtomicBool::new(false),
            handover: Mutex::new(handover),
            handed_over: AtomicBool::new(false),
            loops,
            addrs,
            config,
            dials: AtomicUsize::new(0),
            stopped: (Mutex::new(false), Condvar::new()),
        }
    }

    /// The loop for the next dial from another thread.
    pub(crate) fn next_dial_loop(&self) -> usize {
        self.dials.fetch_add(1, Ordering::Relaxed) % self.loops.len()
    }

    /// Records that every loop has stopped and wakes the waiters.
    pub(crate) fn mark_stopped(&self) {
        *self.stopped.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stopped.1.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until every loop has stopped; refuses on this server's own
    /// loop threads, where it would wait for itself.
    pub(crate) fn wait_stopped(&self) -> io::Result<()> {
        self.id.refuse_on_own_loop("wait for the server to stop")?;
        let mut stopped = self.stopped.0.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            stopped = self
                .stopped
                .1
                .wait(stopped)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// Stops the server now; during a graceful stop, cuts it short (the
    /// drain deadline becomes now). Wakes every loop.
    pub(crate) fn begin_shutdown(&self) {
        let cut = {
            let mut d = self
                .drain_deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let draining = d.is_some();
            if draining {
                *d = Some(Instant::now());
            }
            draining
        };
        self.raise_stop(cut);
    }

    /// Stops the server gracefully by `deadline` (the earliest deadline
    /// asked for wins). Does nothing once a stop that is not graceful has
    /// begun: a hard stop is never turned into a drain.
    pub(crate) fn begin_graceful_shutdown(&self, deadline: Instant) {
        {
            let mut d = self
                .drain_deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if d.is_none() && self.is_shutdown() {
                return;
            }
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        self.draining.store(true, Ordering::Release);
        self.raise_stop(false);
    }

    /// Raises the stop flag; wakes every loop the first time, or again when
    /// a drain was cut short (its loops sleep until the old deadline).
    fn raise_stop(&self, wake_again: bool) {
        let first = !self.shutdown.swap(true, Ordering::AcqRel);
        if first {
            tracing::debug!("evio: shutdown requested");
            // A stopping server hands nothing over, and holds its
            // listening sockets no longer than its loops do.
            self.handover
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        if first || wake_again {
            for l in &self.loops {
                l.wake();
            }
        }
    }

    /// Whether a graceful shutdown (a drain) has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The listening sockets to hand to a successor (new references to
    /// the same sockets); `None` once the server is stopping.
    pub(crate) fn handover_sockets(&self) -> Option<Vec<HandoverSocket>> {
        let list = self.handover.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_shutdown() {
            return None;
        }
        Some(list.clone())
    }

    /// Records that a successor serves the listening sockets now.
    pub(crate) fn mark_handed_over(&self) {
        self.handed_over.store(true, Ordering::Release);
    }

    /// Whether the listening sockets were handed to a successor.
    pub(crate) fn is_handed_over(&self) -> bool {
        self.handed_over.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections over all loops.
    pub(crate) fn open_connections(&self) -> usize {
        self.loops.iter().map(|l| l.open_connections()).sum()
    }
}

/// One listening socket as a successor gets it: the address it serves as
/// the server was given it, and whether it is a stream socket.
#[derive(Clone)]
pub(crate) struct HandoverSocket {
    pub(crate) name: String,
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) stream: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("addrs", &self.addrs)
            .field("loops", &self.loops.len())
            .finish()
    }
}
