//! The HTTP server: the engine behind evio-core's callbacks, with the
//! connection's timing (header timeout, lingering close), a peer's FIN
//! behind held requests, and reclaiming idle connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evio_core::{Action, Conn, EventHandler, Options};

use super::session::{HEAD_CLOCK, LINGERING, PEER_EOF, TIMER};
use super::{Config, Engine, Session};
use crate::{drain, held};

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

/// The longest timeout the wrapping millisecond clock can time: 24 days.
const MAX_TIMEOUT_MS: u32 = i32::MAX as u32;

/// A timeout as milliseconds on the server's clock (at least 1, at most
/// [`MAX_TIMEOUT_MS`]).
fn clock_ms(d: Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(MAX_TIMEOUT_MS)) as u32
}

/// The HTTP server: an [`Engine`] per loop, the clock on loop 0's tick.
///
/// Besides answering requests it times connections, as nginx does:
///
/// - **Header timeout** ([`Config::header_timeout`], 60 s): a request head
///   must be complete that long after its first byte, and a new connection
///   must send its first request that long after it opened; otherwise the
///   connection is closed. One timer per connection, set when a head starts
///   and left to lapse when it completes (nothing per request).
/// - **Lingering close** ([`Config::lingering_timeout`] 5 s,
///   [`Config::lingering_time`] 30 s): when the engine closes while the
///   client may still be sending ([`Session::lingers`]: after an error
///   response, or with input left unread), the server writes the response,
///   shuts down its write side (the client reads the response, then EOF),
///   and reads and discards input until the client closes, the client is
///   silent for the lingering timeout, or the lingering time is up. Closing
///   at once with unread input would make the kernel send a reset, which
///   can destroy the response before the client reads it.
/// - **A FIN behind held requests:** when the client shuts down its write
///   side while requests wait for the output to drain, they are still
///   answered (from `on_drained`), then the connection closes.
/// - **Reclaiming:** a connection is marked reclaimable
///   (`Conn::set_reclaimable`) exactly while no request is in progress
///   ([`Session::is_idle`]), so that a server out of file descriptors
///   closes idle keep-alive connections, never one in mid-request.
#[derive(Clone, Debug)]
pub struct HttpServer {
    engine: Engine,
    stats: Arc<Stats>,
    /// The clock's zero (ms since then, wrapping).
    epoch: Instant,
    /// `Config::header_timeout` in ms (0: none).
    header_ms: u32,
    lingering_timeout: Duration,
    lingering_time: Duration,
}

impl HttpServer {
    /// A server with `config`.
    pub fn new(config: Config) -> HttpServer {
        HttpServer {
            engine: Engine::new(config),
            stats: Arc::default(),
            epoch: Instant::now(),
            header_ms: config.header_timeout.map_or(0, clock_ms),
            lingering_timeout: config.lingering_timeout,
            lingering_time: config.lingering_time,
        }
    }

    /// The server's counters (shared: read them while it runs).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Milliseconds on the server's clock; wraps every 49 days, so only
    /// differences of up to [`MAX_TIMEOUT_MS`] are meaningful.
    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    /// Starts timing a request head (or the wait for the first request),
    /// setting the connection's timer unless one is set already.
    fn start_head_clock(&self, conn: &mut Conn<'_, Session>) {
        if self.header_ms == 0 {
            return;
        }
        let now = self.now_ms();
        let s = conn.context_mut();
        s.set(HEAD_CLOCK, true);
        s.head_since = now;
        if !s.has(TIMER) {
            s.set(TIMER, true);
            conn.set_timer(Some(Duration::from_millis(u64::from(self.header_ms))));
        }
    }

    /// Acts on what the engine returned: a lingering close instead of a
    /// plain one when the client may still be sending; the close a held
    /// FIN waited for; the header clock; whether the connection may be
    /// reclaimed.
    fn settle(&mut self, conn: &mut Conn<'_, Session>, action: Action) -> Action {
        let s = conn.context_mut();
        match action {
            Action::None => {}
            // Nothing more can arrive after the peer's EOF: close at once.
            Action::Close if s.lingers() && !s.has(PEER_EOF) => return self.linger(conn),
            other => return other,
        }
        if held::finished(&*s) {
            // A partial request left now can never complete.
            return Action::Close;
        }
        if s.has_partial_head() {
            if !s.has(HEAD_CLOCK) {
                self.start_head_clock(conn);
            }
        } else {
            // No head in progress: the timer, if set, lapses when it fires.
            s.set(HEAD_CLOCK, false);
        }
        let idle = conn.context().is_idle();
        conn.set_reclaimable(idle);
        // `on_data` set the engine's flag from the server's: no second
        // atomic load per request.
        if self.engine.draining && idle {
            // Answered with `Connection: close` or waiting for the next
            // request, which will be: closed after the grace if none comes.
            drain::close_when_idle(conn);
        }
        Action::None
    }

    /// Starts a lingering close: the response goes out, then our FIN; the
    /// client's input is read and discarded until its EOF (which closes the
    /// connection), `lingering_timeout` without a byte (the idle timeout),
    /// or `lingering_time` in all (the timer).
    fn linger(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        let s = conn.context_mut();
        s.set(LINGERING, true);
        s.set(HEAD_CLOCK, false);
        s.set(TIMER, true);
        conn.shutdown_write();
        conn.set_idle_timeout(Some(self.lingering_timeout));
        conn.set_timer(Some(self.lingering_time));
        // Nothing in progress: a server out of descriptors may take it.
        conn.set_reclaimable(true);
        Action::None
    }
}

impl EventHandler for HttpServer {
    type Context = Session;

    fn on_opened(&mut self, conn: &mut Conn<'_, Session>) -> (Options, Action) {
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        // Waiting for its first request: reclaimable, and timed as a head
        // (nginx's client_header_timeout covers this wait too).
        conn.set_reclaimable(true);
        self.start_head_clock(conn);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> Action {
        if conn.context().has(LINGERING) {
            // Read and discarded; the idle timeout restarts.
            return Action::None;
        }
        if conn.is_draining() {
            self.engine.set_draining();
        }
        // The engine needs the session and the connection's output at once.
        let (session, mut out) = conn.split();
        let action = self.engine.feed(session, input, &mut out);
        self.settle(conn, action)
    }

    /// The peer finished sending. With requests held for the output to
    /// drain, they are still answered (`on_drained`), then the connection
    /// closes; otherwise it closes now, after what is queued.
    fn on_eof(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        let s = conn.context_mut();
        let lingering = s.has(LINGERING);
        held::on_eof(s, !lingering)
    }

    // ---- output bound: resume held requests once the output drained ----
    fn on_drained(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        let engine = &mut self.engine;
        match held::on_drained(conn, |session, out| engine.feed(session, &[], out)) {
            Some(action) => self.settle(conn, action),
            None => Action::None,
        }
    }

    /// The next response says `Connection: close`; a connection between
    /// requests is closed after [`drain::IDLE_GRACE`] of silence
    /// ([`crate::drain`]).
    fn on_drain(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        self.engine.set_draining();
        let s = conn.context();
        if !s.has(LINGERING) && s.is_idle() {
            drain::close_when_idle(conn);
        }
        Action::None
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        let now = self.now_ms();
        let s = conn.context_mut();
        s.set(TIMER, false);
        if s.has(LINGERING) {
            // The lingering time is up.
            return Action::Close;
        }
        if !s.has(HEAD_CLOCK) {
            // The head it timed completed meanwhile.
            return Action::None;
        }
        let elapsed = now.wrapping_sub(s.head_since);
        if elapsed >= self.header_ms {
            // As nginx on client_header_timeout: close, no response.
            return Action::Close;
        }
        // A later head started after the timer was set: time the rest.
        s.set(TIMER, true);
        conn.set_timer(Some(Duration::from_millis(u64::from(
            self.header_ms - elapsed,
        ))));
        Action::None
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        (Some(self.engine.tick()), Action::None)
    }
}
