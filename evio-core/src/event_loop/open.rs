//! Opening connections: serving an accepted one (table, poller, then
//! `on_opened`), finishing a dial's connect, registering what callbacks
//! dialed.

use evio_sys::{net, Poller};

use super::{view, EventLoop};
use crate::conn::Conn;
use crate::handler::EventHandler;
use crate::mailbox::Accepted;
use crate::table::Slot;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Serves an accepted connection: into the table, into the poller, then
    /// `on_opened`. From a `defer_accept` listener its first bytes are
    /// already there: on an edge-triggered poller it is read at once and
    /// registered only if it stays open, so a request answered with a close
    /// never costs an `epoll_ctl` (nginx does the same with `deferred`).
    pub(super) fn install(&mut self, accepted: Accepted) {
        // Accepted before the listeners stopped: served during a drain (the
        // handler sees `is_draining`), dropped in a hard stop.
        if self.ctx.shared.is_shutdown() && !self.ctx.shared.is_draining() {
            self.ctx.me.count_closed();
            return;
        }
        let read_first = accepted.deferred;
        let slot = match self.table.insert_accepted(accepted) {
            Ok(slot) => slot,
            Err(e) => {
                self.warned
                    .warn(|held| tracing::warn!(error = %e, suppressed = held, "evio: a TLS session could not start; closing"));
                self.ctx.me.count_closed();
                return;
            }
        };
        self.counters.accepted += 1;
        let key = self.table.key(slot);
        // A level-triggered poller keeps interest in step with the output
        // queue, which needs the registration first.
        let register_late = read_first && P::EDGE_TRIGGERED;
        if !register_late && !self.register_accepted(slot, false) {
            return;
        }
        // A TLS connection opens when its handshake finishes.
        if !self.table.conn(slot).is_tls() {
            self.open(slot);
        }
        if read_first && self.table.is_live(key) {
            self.read(slot, false);
        }
        // Still open (or flushing before a close): wait for more.
        if register_late && self.table.is_live(key) {
            self.register_accepted(slot, true);
        }
    }

    /// Registers an accepted connection; one that cannot be registered is
    /// closed and `false` returned: through `on_closed` if the handler has
    /// seen it (`seen`), silently if not.
    fn register_accepted(&mut self, slot: Slot, seen: bool) -> bool {
        let Err(e) = self.table.register(slot, &mut self.poller) else {
            return true;
        };
        self.warned.warn(|held| {
            tracing::warn!(error = %e, suppressed = held, "evio: registering a connection failed; closing it")
        });
        if seen {
            self.close(slot, Some(e));
        } else {
            self.table.release(slot);
            self.ctx.me.count_closed();
        }
        false
    }

    /// Fires `on_opened`, applies its options and action.
    pub(super) fn open(&mut self, slot: Slot) {
        self.table.apply_default_idle(slot);
        let (opts, action) = self.handler.on_opened(view!(self, slot));
        // Usually inherited from the listener: then no system call here.
        self.table.conn_mut(slot).apply_nodelay(opts.tcp_no_delay);
        if let (Some(fd), false) = (self.table.conn(slot).fd(), self.table.conn(slot).is_unix()) {
            if let Some(idle) = opts.tcp_keep_alive {
                if let Err(e) = net::set_keepalive(&fd, Some(idle)) {
                    tracing::debug!(error = %e, "evio: SO_KEEPALIVE failed");
                }
            }
        }
        if let Some(idle) = opts.idle_timeout {
            self.table.set_idle_timeout(slot, Some(idle));
        }
        self.after(slot, action);
        // Opened during a drain (a dial's connect, a TLS handshake, or
        // accepted just before the listeners stopped): told at once, as
        // the connections open when it began were.
        let key = self.table.key(slot);
        if self.ctx.shared.is_draining() && self.table.takes_events(key) {
            let action = self.handler.on_drain(view!(self, slot));
            self.after(slot, action);
        }
    }

    pub(super) fn finish_connect(&mut self, slot: Slot) {
        if let Err(e) = self.table.finish_connect(slot) {
            self.close(slot, Some(e));
            return;
        }
        tracing::debug!(remote = %self.table.conn(slot).remote(), "evio: dialed");
        if self.table.conn(slot).is_tls() {
            // The ClientHello goes out now; it opens after the handshake.
            self.flush(slot);
        } else {
            self.open(slot);
        }
        if self.table.conn(slot).read_fd().is_some() {
            self.read(slot, false);
        }
    }

    /// Registers connections a callback dialed; one that cannot be
    /// registered is closed with the error.
    pub(super) fn register_dialed(&mut self) {
        while let Some(slot) = self.table.take_to_register() {
            if self.table.holds(slot) {
                if let Err(e) = self.table.register(slot, &mut self.poller) {
                    self.warned.warn(|held| {
                        tracing::warn!(error = %e, suppressed = held, "evio: registering a dialed connection failed")
                    });
                    self.close(slot, Some(e));
                }
            }
        }
    }
}
