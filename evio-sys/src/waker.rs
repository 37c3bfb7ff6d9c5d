//! Waking a poller from another thread: the public [`Waker`] handle, and the
//! one coalescing implementation every backend shares.
//!
//! A backend supplies a [`Signal`] (write an eventfd, write a pipe, trigger
//! an `EVFILT_USER` event) and wraps it in [`Coalescing`], which makes sure
//! that however many wakes arrive before the loop runs, only the first costs
//! a syscall.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The backend half of a [`Waker`]: makes a blocked wait return.
///
/// Implementations must be non-blocking and must coalesce: many wakes before
/// the poller consumes one may cost a single kernel call. Wrapping a
/// [`Signal`] in [`Coalescing`] gives both.
pub trait Wake: Send + Sync {
    /// Makes the poller's current or next wait return with
    /// [`Events::is_woken`](crate::Events::is_woken) set.
    ///
    /// # Errors
    /// An OS error from the wake syscall other than "already signalled".
    fn wake(&self) -> io::Result<()>;
}

/// Wakes a [`Poller`](crate::Poller) from any thread. Cheap to clone;
/// `Send + Sync`.
///
/// Wakes coalesce: however many arrive before the loop runs, the loop sees one
/// wake, and only the first costs a syscall. A waker may outlive its poller;
/// waking then does nothing harmful.
///
/// ```
/// use evio_sys::{DefaultPoller, Events, Poller};
/// let mut poller = DefaultPoller::new()?;
/// let waker = poller.waker();
/// std::thread::spawn(move || waker.wake().unwrap());
/// let mut events = Events::with_capacity(8);
/// while !events.is_woken() {
///     poller.wait(&mut events, None)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    inner: Arc<dyn Wake>,
}

impl Waker {
    /// Wraps a backend's wake mechanism.
    pub fn new(inner: Arc<dyn Wake>) -> Waker {
        Waker { inner }
    }

    /// Wakes the poller; see [`Wake::wake`].
    ///
    /// # Errors
    /// An OS error from the underlying syscall (never `EAGAIN`).
    pub fn wake(&self) -> io::Result<()> {
        self.inner.wake()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

/// The kernel side of a wake: an object the poller watches, which a wake
/// makes ready and the poller resets.
///
/// Wrap it in [`Coalescing`] to get a [`Wake`]. A backend watches the
/// signal's fd (or filter) like any other source and, when it is reported,
/// calls [`Coalescing::drain`] instead of reporting an event.
pub trait Signal: Send + Sync {
    /// Makes the watched object ready, so that a wait returns.
    ///
    /// Must not block. "Already signalled" (a saturated eventfd counter, a
    /// full pipe) is success: the poller is certainly woken then. `EINTR`
    /// may be returned; the caller retries.
    ///
    /// # Errors
    /// The OS error of the signalling call.
    fn signal(&self) -> io::Result<()>;

    /// Resets the object, so that the next wait blocks again. Errors (e.g.
    /// "nothing to read") are ignored: the object is reset either way.
    fn drain(&self);
}

/// Coalesces wakes over a [`Signal`]: the first wake after the poller
/// consumed the last one signals, later ones only see the flag set and
/// return. This is the [`Wake`] of every backend in this crate.
///
/// ```
/// use evio_sys::{Coalescing, Signal, Wake};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl Signal for Count {
///     fn signal(&self) -> std::io::Result<()> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
///     fn drain(&self) {}
/// }
///
/// let wake = Coalescing::new(Count::default());
/// wake.wake()?;
/// wake.wake()?; // coalesced: no second signal
/// assert_eq!(wake.signal().0.load(Ordering::Relaxed), 1);
/// wake.drain(); // the poller saw the wake: re-armed
/// wake.wake()?;
/// assert_eq!(wake.signal().0.load(Ordering::Relaxed), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Coalescing<S> {
    signal: S,
    /// Set by the first wake after the loop consumed the last one; later
    /// wakes see it set and skip the syscall.
    pending: AtomicBool,
}

impl<S: Signal> Coalescing<S> {
    /// Wraps `signal`, with no wake pending.
    pub fn new(signal: S) -> Coalescing<S> {
        Coalescing {
            signal,
            pending: AtomicBool::new(false),
        }
    }

    /// The wrapped signal (backends reach their fd or kqueue through it).
    pub fn signal(&self) -> &S {
        &self.signal
    }

    /// Consumes a delivered wake: resets the signal, then re-arms
    /// coalescing. The poller calls this when it sees the signal ready.
    pub fn drain(&self) {
        self.signal.drain();
        // Cleared only after the signal is reset: a wake that found `pending`
        // still set in between was absorbed by the wake being reported now.
        // A swap with AcqRel rather than a Release store, so that this
        // acquires what such a wake published before it (a channel send the
        // loop must see once it is woken).
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl<S: Signal> Wake for Coalescing<S> {
    fn wake(&self) -> io::Result<()> {
        // AcqRel: releases the waker's earlier writes to the loop, which
        // acquires them in `drain`.
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        loop {
            match self.signal.signal() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Nothing was signalled: let the next wake try again.
                    self.pending.store(false, Ordering::Release);
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Flaky {
        signals: AtomicUsize,
        fail_next: AtomicBool,
    }

    impl Signal for Flaky {
        fn signal(&self) -> io::Result<()> {
            if self.fail_next.swap(false, Ordering::Relaxed) {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            self.signals.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn drain(&self) {}
    }

    #[test]
    fn a_failed_signal_does_not_swallow_the_next_wake() {
        let wake = Coalescing::new(Flaky::default());
        wake.signal().fail_next.store(true, Ordering::Relaxed);
        assert!(wake.wake().is_err());
        wake.wake().unwrap();
        assert_eq!(wake.signal().signals.load(Ordering::Relaxed), 1);
    }
}
