//! The HTTP server: the engine behind evio-core's callbacks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evio_core::{Action, Conn, EventHandler, Options};

use super::{Config, Engine, Session};

/// Server-wide counters, shared by all loops.
#[derive(Debug, Default)]
pub struct Stats {
    opened: AtomicUsize,
}

impl Stats {
    /// Connections accepted so far.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
}

/// The HTTP server: an [`Engine`] per loop, the clock on loop 0's tick.
#[derive(Clone, Debug)]
pub struct HttpServer {
    engine: Engine,
    stats: Arc<Stats>,
}

impl HttpServer {
    /// A server with `config`.
    pub fn new(config: Config) -> HttpServer {
        HttpServer {
            engine: Engine::new(config),
            stats: Arc::default(),
        }
    }

    /// The server's counters (shared: read them while it runs).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}

impl EventHandler for HttpServer {
    type Context = Session;

    fn on_opened(&mut self, _conn: &mut Conn<'_, Session>) -> (Options, Action) {
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> Action {
        // The engine needs the session and the connection's output at once.
        let (session, mut out) = conn.split();
        self.engine.feed(session, input, &mut out)
    }

    // ---- output bound: resume held requests once the output drained ----
    fn on_drained(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        if !conn.context().is_held() {
            return Action::None;
        }
        let (session, mut out) = conn.split();
        self.engine.feed(session, &[], &mut out)
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        (Some(self.engine.tick()), Action::None)
    }
}
