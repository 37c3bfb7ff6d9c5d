//! The Redis server: the engine behind evio-core's callbacks, with a
//! peer's FIN behind held requests and reclaiming idle connections.

use std::time::Duration;

use evio_core::{Action, Conn, EventHandler, Options};

use super::{Config, Engine, Session};
use crate::store::Store;
use crate::{drain, held};

/// The Redis server: an [`Engine`] per loop, sweeping expired keys on loop
/// 0's tick.
///
/// A client that shuts down its write side (a FIN) while requests wait for
/// the output to drain still gets every reply: the requests are executed
/// from `on_drained` as before, and the connection closes once none is
/// left. A connection is marked reclaimable (`Conn::set_reclaimable`)
/// exactly while no request is in progress ([`Session::is_idle`]), so that
/// a server out of file descriptors closes idle clients, never one in
/// mid-request.
#[derive(Debug, Clone)]
pub struct RedisServer {
    engine: Engine,
    sweep_interval: Duration,
}

impl RedisServer {
    /// A server for `config`: its store is local for one loop and sharded
    /// for several.
    pub fn new(config: Config) -> RedisServer {
        let loops = match config.loops {
            n if n < 0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        RedisServer {
            engine: Engine::new(Store::for_loops(loops), config.limits)
                .with_output_high_water(config.output_high_water),
            sweep_interval: config.sweep_interval,
        }
    }

    /// After the engine: the close a held FIN waited for, and whether the
    /// connection may be reclaimed.
    fn settle(conn: &mut Conn<'_, Session>, action: Action) -> Action {
        if action != Action::None {
            return action;
        }
        let s = conn.context();
        if held::finished(s) {
            return Action::Close;
        }
        let idle = s.is_idle();
        conn.set_reclaimable(idle);
        Action::None
    }
}

impl EventHandler for RedisServer {
    type Context = Session;

    fn on_opened(&mut self, conn: &mut Conn<'_, Session>) -> (Options, Action) {
        // Waiting for its first request: nothing to lose.
        conn.set_reclaimable(true);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> Action {
        // The engine needs the session and the connection's output at once.
        let (session, mut out) = conn.split();
        let action = self.engine.feed(session, input, &mut out);
        Self::settle(conn, action)
    }

    /// The peer finished sending. With requests held for the output to
    /// drain, they are still executed (`on_drained`), then the connection
    /// closes; otherwise it closes now, after what is queued (a partial
    /// request can never complete).
    fn on_eof(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        held::on_eof(conn.context_mut(), true)
    }

    // ---- output bound: resume held requests once the output drained ----
    fn on_drained(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        let engine = &mut self.engine;
        match held::on_drained(conn, |session, out| engine.feed(session, &[], out)) {
            Some(action) => Self::settle(conn, action),
            None => Action::None,
        }
    }

    /// Served until the client closes (RESP cannot say "last reply"); a
    /// connection with nothing in progress is closed after
    /// [`drain::IDLE_GRACE`] of silence ([`crate::drain`]).
    fn on_drain(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        if conn.context().is_idle() {
            drain::close_when_idle(conn);
        }
        Action::None
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        self.engine.store().sweep();
        (Some(self.sweep_interval), Action::None)
    }
}
