//! [`WriteReceipt`]: the one result of a cross-thread write.

use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::loop_thread::ServerId;

/// Why a write failed, kept so that every waiter can rebuild the error: the
/// OS error code when there was one (so `raw_os_error` survives), else the
/// kind and a fixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteError {
    kind: io::ErrorKind,
    os: Option<i32>,
}

impl WriteError {
    /// The connection (or the server) was already gone.
    pub(crate) const NOT_CONNECTED: WriteError = WriteError {
        kind: io::ErrorKind::NotConnected,
        os: None,
    };

    pub(crate) fn from_io(e: &io::Error) -> WriteError {
        WriteError {
            kind: e.kind(),
            os: e.raw_os_error(),
        }
    }

    pub(crate) fn from_kind(kind: io::ErrorKind) -> WriteError {
        WriteError { kind, os: None }
    }

    fn to_io(self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, "connection closed before the write completed"),
        }
    }
}

type Slot = (Mutex<Option<Result<(), WriteError>>>, Condvar);

/// The outcome of a [`ConnHandle::write`](crate::ConnHandle::write),
/// observable from any thread. Cheap to clone; every clone sees the same
/// result.
///
/// Waiting on a receipt from inside a callback of the same server could
/// never complete (the loop that would complete it is the one waiting), so
/// there [`wait`](WriteReceipt::wait) returns an error at once.
#[derive(Clone)]
pub struct WriteReceipt {
    inner: Arc<Slot>,
    /// The server whose loop completes it (see `shared::ServerId`).
    server: ServerId,
}

impl WriteReceipt {
    pub(crate) fn new(server: ServerId) -> WriteReceipt {
        WriteReceipt {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
            server,
        }
    }

    /// Sets the result once; later calls are ignored.
    pub(crate) fn complete(&self, result: Result<(), WriteError>) {
        let mut slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(result);
            self.inner.1.notify_all();
        }
    }

    fn to_io(r: Result<(), WriteError>) -> io::Result<()> {
        r.map_err(WriteError::to_io)
    }

    /// The result if known, without blocking.
    pub fn try_result(&self) -> Option<io::Result<()>> {
        let slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.map(Self::to_io)
    }

    /// Blocks until the result is known.
    ///
    /// # Errors
    /// The error that closed the connection before every byte was written
    /// (with its OS error code when there was one), `NotConnected` if it was
    /// already gone or the server stopped, or `WouldBlock` when called on one
    /// of the server's own loop threads, where waiting could never end.
    pub fn wait(&self) -> io::Result<()> {
        if let Some(r) = self.try_result() {
            return r;
        }
        self.server.refuse_on_own_loop("wait for a WriteReceipt")?;
        let mut slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = *slot {
                return Self::to_io(r);
            }
            slot = self.inner.1.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks at most `timeout`; `None` if the result is still unknown.
    ///
    /// On a loop thread of a server it does not block (see
    /// [`wait`](WriteReceipt::wait)) and returns `Some(Err(WouldBlock))`
    /// while the result is unknown.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<io::Result<()>> {
        if let Some(r) = self.try_result() {
            return Some(r);
        }
        if let Err(e) = self.server.refuse_on_own_loop("wait for a WriteReceipt") {
            return Some(Err(e));
        }
        let slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        let (slot, _) = self
            .inner
            .1
            .wait_timeout_while(slot, timeout, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        slot.map(Self::to_io)
    }
}

impl fmt::Debug for WriteReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteReceipt")
            .field("result", &self.try_result())
            .finish()
    }
}

/// The loop's copy of a [`WriteReceipt`]. Dropped without a result (a
/// message still in the channel of a loop that has ended, a connection
/// removed without `close`), it fails the write with `NotConnected`, so no
/// write ever goes without a result.
pub(crate) struct PendingReceipt(WriteReceipt);

impl PendingReceipt {
    pub(crate) fn new(receipt: WriteReceipt) -> PendingReceipt {
        PendingReceipt(receipt)
    }

    /// Sets the result once; later calls are ignored.
    pub(crate) fn complete(&self, result: Result<(), WriteError>) {
        self.0.complete(result);
    }
}

impl Drop for PendingReceipt {
    fn drop(&mut self) {
        self.0.complete(Err(WriteError::NOT_CONNECTED));
    }
}
