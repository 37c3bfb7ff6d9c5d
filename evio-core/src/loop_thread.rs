//! Which server (if any) the current thread is a loop of: blocking there
//! for that same server (joining it, waiting on a receipt it completes)
//! could never end, so such calls fail fast instead.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells servers apart, so a thread knows whether it is one of a given
/// server's loops (waiting there for that server would never end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerId(u64);

thread_local! {
    /// The server whose loop runs on this thread (0: none).
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

impl ServerId {
    pub(crate) fn fresh() -> ServerId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ServerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Marks the current thread as one of this server's loops until the
    /// guard drops.
    pub(crate) fn enter_loop(self) -> LoopThreadGuard {
        let previous = CURRENT.with(|c| c.replace(self.0));
        LoopThreadGuard(previous)
    }

    /// Whether the current thread is one of this server's loops.
    pub(crate) fn is_own_loop(self) -> bool {
        CURRENT.with(|c| c.get()) == self.0
    }

    /// `Err(WouldBlock)` naming `what` on this server's loop threads, where
    /// blocking for the server could never end.
    pub(crate) fn refuse_on_own_loop(self, what: &str) -> io::Result<()> {
        if self.is_own_loop() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "evio: cannot {what} on one of the server's own loop threads: \
                     the loop would wait for itself"
                ),
            ));
        }
        Ok(())
    }
}

/// Restores the thread's previous marker.
pub(crate) struct LoopThreadGuard(u64);

impl Drop for LoopThreadGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}
