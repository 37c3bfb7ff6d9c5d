//! The Redis server: the engine behind evio-core's callbacks.

use std::time::Duration;

use evio_core::{Action, Conn, EventHandler};

use super::{Config, Engine, Session};
use crate::store::Store;

/// The Redis server: an [`Engine`] per loop, sweeping expired keys on loop
/// 0's tick.
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
}

impl EventHandler for RedisServer {
    type Context = Session;

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
        self.engine.store().sweep();
        (Some(self.sweep_interval), Action::None)
    }
}
