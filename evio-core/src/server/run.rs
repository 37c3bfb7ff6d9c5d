//! Running a prepared server: one loop on the calling thread, or loop 0
//! there and the others on threads of their own, and a panicking loop
//! turned into a clean stop.

use std::io;
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::Receiver;
use evio_sys::Poller;

use super::ServerHandle;
use crate::addr::Bound;
use crate::control::ServerControl;
use crate::event_loop::EventLoop;
use crate::handler::EventHandler;
use crate::mailbox::Msg;
use crate::shared::Shared;

/// One clone of the handler per loop, each taken once by its loop.
pub(super) struct Handlers<H>(Vec<Mutex<Option<H>>>);

impl<H: Clone> Handlers<H> {
    pub(super) fn cloned(handler: H, n: usize) -> Handlers<H> {
        let mut v: Vec<Mutex<Option<H>>> =
            (1..n).map(|_| Mutex::new(Some(handler.clone()))).collect();
        v.insert(0, Mutex::new(Some(handler)));
        Handlers(v)
    }

    pub(super) fn take(&self, i: usize) -> H {
        self.0[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each loop takes its handler once")
    }
}

/// What one loop is made of before it runs.
pub(super) struct LoopParts<P> {
    pub(super) poller: P,
    pub(super) rx: Receiver<Msg>,
    pub(super) listeners: Vec<Bound>,
}

/// Everything bound and created before the loops start.
pub(super) struct Prepared<P: Poller> {
    pub(super) loops: Vec<LoopParts<P>>,
    pub(super) shared: Arc<Shared>,
}

/// Runs one loop (on its thread, marked as one of the server's loops) and
/// turns a panic in a callback into a clean server stop: the other loops
/// shut down (their connections get `on_closed`), the panicking loop's
/// connections are closed without callbacks (its handler state is
/// suspect), and `serve` returns an error naming the panic.
fn run_loop<P: Poller, H: EventHandler>(
    index: usize,
    parts: LoopParts<P>,
    shared: &Arc<Shared>,
    handler: impl FnOnce() -> H,
) -> io::Result<()> {
    let _marker = shared.id.enter_loop();
    let body = || {
        EventLoop::new(
            index,
            parts.poller,
            handler(),
            parts.rx,
            shared.clone(),
            parts.listeners,
        )
        .run()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            shared.begin_shutdown();
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(index, panic = %msg, "evio: a handler panicked; shutting down");
            Err(io::Error::other(format!(
                "evio: event loop {index} panicked: {msg}"
            )))
        }
    }
}

impl<P: Poller + 'static> Prepared<P> {
    /// Runs the only loop on this thread.
    pub(super) fn run_one<H: EventHandler>(mut self, handler: H) -> io::Result<()> {
        let shared = self.shared.clone();
        let parts = self.loops.pop().expect("one loop");
        debug_assert!(self.loops.is_empty());
        let result = run_loop(0, parts, &shared, || handler);
        shared.mark_stopped();
        tracing::debug!("evio: server stopped");
        result
    }

    /// Runs loop 0 on this thread and the others on their own.
    pub(super) fn run<H, F>(self, factory: F) -> io::Result<()>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Sync,
    {
        let Prepared { loops, shared } = self;
        let mut loops = loops.into_iter().enumerate();
        let (_, parts0) = loops.next().expect("at least one loop");
        let factory = &factory;
        let result = thread::scope(|s| {
            let mut threads = Vec::new();
            for (i, parts) in loops {
                let loop_shared = shared.clone();
                let spawned = thread::Builder::new()
                    .name(format!("evio-loop-{i}"))
                    .spawn_scoped(s, move || run_loop(i, parts, &loop_shared, || factory(i)));
                match spawned {
                    Ok(t) => threads.push((i, t)),
                    Err(e) => {
                        shared.begin_shutdown();
                        return Err(e);
                    }
                }
            }
            let mut result = run_loop(0, parts0, &shared, || factory(0));
            // Loop 0 failing stops the others; loop 0 done with its part
            // of a drain leaves the others to finish theirs.
            if result.is_err() || !shared.is_draining() {
                shared.begin_shutdown();
            }
            for (i, t) in threads {
                let r = t.join().unwrap_or_else(|_| {
                    Err(io::Error::other(format!("evio: event loop {i} panicked")))
                });
                if result.is_ok() {
                    result = r;
                }
            }
            result
        });
        shared.mark_stopped();
        tracing::debug!("evio: server stopped");
        result
    }

    /// [`run`](Prepared::run) on a background thread.
    pub(super) fn spawn<H, F>(self, factory: F) -> io::Result<ServerHandle<H::Context>>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let shared = self.shared.clone();
        // A poller is Send (the trait requires it), the rest is owned.
        let thread = thread::Builder::new()
            .name("evio-loop-0".into())
            .spawn(move || self.run(factory))?;
        Ok(ServerHandle::new(ServerControl::new(shared), thread))
    }
}
