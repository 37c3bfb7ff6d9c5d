//! Running one check: on its own thread, under a watchdog, with a name in
//! every failure.

use std::any::Any;
use std::io;
use std::sync::{mpsc, Arc, RwLock};
use std::thread;
use std::time::Duration;

use crate::Poller;

use super::Options;

/// A backend's constructor, shared by the checks that build pollers.
pub(super) type New<P> = dyn Fn() -> io::Result<P> + Send + Sync;

/// A check's body.
pub(super) type Body<P> = fn(&New<P>, &Options);

/// How long one check may run before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Checks hold this for reading while they run; a check that needs a
/// just-closed fd number to stay free holds it for writing, so that no other
/// check (of any backend in this process) takes that number in between.
static FD_LOCK: RwLock<()> = RwLock::new(());

/// Builds a poller, or fails the check naming the constructor.
pub(super) fn new_poller<P: Poller>(new: &New<P>) -> P {
    new().unwrap_or_else(|e| panic!("the backend's constructor failed: {e}"))
}

/// The message of a panic payload.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// Runs `body` on a thread named after the check, under the watchdog, and
/// panics with a message naming the check if it fails or hangs.
pub(super) fn run<P: Poller + 'static>(
    name: &'static str,
    exclusive: bool,
    body: Body<P>,
    new: Arc<New<P>>,
    options: Options,
) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let spawned = thread::Builder::new()
        .name(format!("conformance::{name}"))
        .spawn(move || {
            let _guard = if exclusive {
                Err(FD_LOCK.write().unwrap_or_else(|e| e.into_inner()))
            } else {
                Ok(FD_LOCK.read().unwrap_or_else(|e| e.into_inner()))
            };
            body(&*new, &options);
            let _ = done_tx.send(());
        });
    let handle = spawned.unwrap_or_else(|e| panic!("conformance check `{name}`: spawn: {e}"));
    match done_rx.recv_timeout(WATCHDOG) {
        Ok(()) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic)
            }
        }
        // The body panicked and dropped the sender.
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => panic!(
                "conformance check `{name}` failed: {}",
                panic_message(&*panic)
            ),
            Ok(()) => unreachable!("the check's thread ended without reporting"),
        },
        // The thread is left blocked: nothing can stop it from here.
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "conformance check `{name}` failed: it did not finish within {WATCHDOG:?} \
             (a wait or a wake blocked)"
        ),
    }
}
