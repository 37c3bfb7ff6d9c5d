//! The handler a binary serves: its own, wrapped so that loop 0 also does
//! what [`run`](super::run) needs done once the server is up (the startup
//! line, the metrics endpoint, the upgrade socket) and watches the signal
//! flags on its tick. The loop thus runs on the main thread and a one-loop
//! server is one thread: in a process of two, glibc takes a slower path in
//! every system call (docs/performance.md).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evio_core::{Action, Conn, DetachedStream, EventHandler, Options, ServerControl, ServerInfo};

/// How often loop 0 looks at the signal flags: a signal is acted on within
/// this long, at 20 wake-ups a second.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Something the startup keeps alive until the server stops (dropping a
/// [`ServerHandle`](evio_core::ServerHandle) stops that server).
pub(super) type Kept = Box<dyn Send>;

/// What runs once the server is up: its error stops the server (and is
/// `run`'s result); what it returns is kept until the server stops.
pub(super) type Startup<'a, C> =
    Box<dyn FnOnce(&ServerInfo<C>) -> io::Result<Option<Kept>> + Send + 'a>;

/// What every loop's copy of [`Supervised`] shares (only loop 0 uses it).
pub(super) struct Job<'a, C> {
    startup: Mutex<Option<Startup<'a, C>>>,
    /// What the startup left running (the metrics endpoint).
    kept: Mutex<Option<Kept>>,
    /// Why the startup failed.
    failed: Mutex<Option<io::Error>>,
    /// SIGINT/SIGTERM: drain.
    stop: Arc<AtomicBool>,
    /// SIGQUIT: stop now.
    quit: Arc<AtomicBool>,
    drain_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a, C> Job<'a, C> {
    pub(super) fn new(
        startup: Startup<'a, C>,
        stop: Arc<AtomicBool>,
        quit: Arc<AtomicBool>,
        drain_timeout: Duration,
    ) -> Job<'a, C> {
        Job {
            startup: Mutex::new(Some(startup)),
            kept: Mutex::new(None),
            failed: Mutex::new(None),
            stop,
            quit,
            drain_timeout,
        }
    }

    /// After the server stopped: the startup's error, if it failed; what it
    /// kept running is stopped.
    pub(super) fn finish(&self) -> io::Result<()> {
        drop(lock(&self.kept).take());
        lock(&self.failed).take().map_or(Ok(()), Err)
    }
}

/// `inner`, plus the startup on `on_serving` and the signal watch on
/// `on_tick` (loop 0); every other callback goes straight to `inner`.
pub(super) struct Supervised<'j, 'a, H: EventHandler> {
    inner: H,
    job: &'j Job<'a, H::Context>,
    /// Loop 0's, from `on_serving`.
    control: Option<ServerControl<H::Context>>,
    /// When `inner`'s own tick is due (`None`: it asked for no more).
    inner_due: Option<Instant>,
}

impl<'j, 'a, H: EventHandler> Supervised<'j, 'a, H> {
    pub(super) fn new(inner: H, job: &'j Job<'a, H::Context>) -> Self {
        Supervised {
            inner,
            job,
            control: None,
            inner_due: Some(Instant::now()),
        }
    }
}

impl<H: EventHandler + Clone> Clone for Supervised<'_, '_, H> {
    fn clone(&self) -> Self {
        Supervised {
            inner: self.inner.clone(),
            job: self.job,
            control: self.control.clone(),
            inner_due: self.inner_due,
        }
    }
}

impl<H: EventHandler> EventHandler for Supervised<'_, '_, H> {
    type Context = H::Context;

    fn on_serving(&mut self, server: &ServerInfo<H::Context>) -> Action {
        let action = self.inner.on_serving(server);
        if action == Action::Shutdown {
            return action;
        }
        self.control = Some(server.control.clone());
        let Some(startup) = lock(&self.job.startup).take() else {
            return action;
        };
        match startup(server) {
            Ok(kept) => {
                *lock(&self.job.kept) = kept;
                action
            }
            Err(e) => {
                *lock(&self.job.failed) = Some(e);
                Action::Shutdown
            }
        }
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        if self.job.quit.load(Ordering::Relaxed) {
            return (None, Action::Shutdown);
        }
        // A drain already running (a signal before, or a successor taking
        // over) goes on as it is.
        if let Some(control) = &self.control {
            if self.job.stop.load(Ordering::Relaxed) && !control.is_draining() {
                control.shutdown_gracefully(self.job.drain_timeout);
            }
        }
        let mut action = Action::None;
        if self.inner_due.is_some_and(|due| due <= Instant::now()) {
            let (delay, inner_action) = self.inner.on_tick();
            self.inner_due = delay.map(|d| Instant::now() + d);
            action = inner_action;
        }
        let next = match self.inner_due {
            Some(due) => due
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_POLL),
            None => SIGNAL_POLL,
        };
        (Some(next), action)
    }

    #[inline]
    fn on_opened(&mut self, conn: &mut Conn<'_, H::Context>) -> (Options, Action) {
        self.inner.on_opened(conn)
    }

    #[inline]
    fn on_closed(&mut self, conn: &mut Conn<'_, H::Context>, err: Option<io::Error>) -> Action {
        self.inner.on_closed(conn, err)
    }

    #[inline]
    fn on_detached(&mut self, conn: &mut Conn<'_, H::Context>, stream: DetachedStream) -> Action {
        self.inner.on_detached(conn, stream)
    }

    #[inline]
    fn on_pre_write(&mut self) {
        self.inner.on_pre_write()
    }

    #[inline]
    fn on_data(&mut self, conn: &mut Conn<'_, H::Context>, input: &[u8]) -> Action {
        self.inner.on_data(conn, input)
    }

    #[inline]
    fn on_eof(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.inner.on_eof(conn)
    }

    #[inline]
    fn on_drained(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.inner.on_drained(conn)
    }

    #[inline]
    fn on_drain(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.inner.on_drain(conn)
    }

    #[inline]
    fn on_wake(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.inner.on_wake(conn)
    }

    #[inline]
    fn on_timer(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.inner.on_timer(conn)
    }

    #[inline]
    fn on_loop_tick(&mut self, loop_index: usize) -> (Option<Duration>, Action) {
        self.inner.on_loop_tick(loop_index)
    }
}
