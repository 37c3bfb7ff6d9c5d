//! The loop's timers, each iteration: the handler's ticks, accept retries,
//! connect, handshake, idle and user timers that are due, and how long the
//! next wait may block.

use std::io;
use std::time::{Duration, Instant};

use evio_sys::Poller;

use super::{view, EventLoop};
use crate::conn::Conn;
use crate::handler::{Action, EventHandler};
use crate::table::TimerKind;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// How long the wait may block, from `now` (read before the timers ran).
    pub(super) fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.table.has_again() || self.table.has_woken() {
            return Some(Duration::ZERO);
        }
        let deadline = [
            self.next_tick,
            self.next_loop_tick,
            self.accept.retry_at(),
            self.table.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(deadline.saturating_duration_since(now))
    }

    /// Runs what is due at `now`; the time to compute the wait's timeout
    /// from: `now` again unless a callback ran (it may have taken a while).
    pub(super) fn run_timers(&mut self, now: Instant) -> Instant {
        self.table.set_clock(now);
        let mut ran = false;
        if self.next_tick.is_some_and(|t| t <= now) {
            ran = true;
            let (delay, action) = self.handler.on_tick();
            self.next_tick = delay.map(|d| Instant::now() + d);
            if action == Action::Shutdown {
                self.ctx.shared.begin_shutdown();
            }
        }
        if self.next_loop_tick.is_some_and(|t| t <= now) {
            ran = true;
            let (delay, action) = self.handler.on_loop_tick(self.ctx.index);
            self.next_loop_tick = delay.map(|d| Instant::now() + d);
            if action == Action::Shutdown {
                self.ctx.shared.begin_shutdown();
            }
        }
        if self.accept.retry_at().is_some_and(|t| t <= now) {
            ran = true;
            self.retry_accepting();
        }
        while let Some((slot, kind)) = self.table.pop_expired() {
            ran = true;
            let why = match kind {
                TimerKind::Connect => "connect timed out",
                TimerKind::Idle => "idle timeout",
                TimerKind::Handshake => {
                    self.counters.tls_handshake_failures += 1;
                    "TLS handshake timed out"
                }
                TimerKind::User => {
                    let action = self.handler.on_timer(view!(self, slot));
                    self.after(slot, action);
                    continue;
                }
            };
            self.close(slot, Some(io::Error::new(io::ErrorKind::TimedOut, why)));
        }
        if ran {
            Instant::now()
        } else {
            now
        }
    }
}
