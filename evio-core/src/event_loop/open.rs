//! Opening connections: serving an accepted one (table, poller, then
//! `on_opened`), finishing a dial's connect, registering what callbacks
//! dialed.

use evio_sys::{net, Poller};

use super::{view, EventLoop};
use crate::conn::Conn;
use crate::handler::EventHandler;
use crate::mailbox::Accepted;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Serves an accepted connection: into the table, into the poller, then
    /// `on_opened`. From a `defer_accept` listener its first bytes are
    /// already there: on an edge-triggered poller it is read at once and
    /// registered only if it stays open, so a request answered with a close
    /// never costs an `epoll_ctl` (nginx does the same with `deferred`).
    pub(super) fn install(&mut self, accepted: Accepted) {
        if self.ctx.shared.is_shutdown() {
            self.ctx.me.count_closed();
            return;
        }
        let read_first = accepted.deferred;
        let index = match self.table.insert_accepted(accepted) {
            Ok(index) => index,
            Err(e) => {
                self.warned
                    .warn(|held| tracing::warn!(error = %e, suppressed = held, "evio: a TLS session could not start; closing"));
                self.ctx.me.count_closed();
                return;
            }
        };
        let key = self.table.key(index);
        // A level-triggered poller keeps interest in step with the output
        // queue, which needs the registration first.
        let register_late = read_first && P::EDGE_TRIGGERED;
        if !register_late && !self.register_accepted(index, false) {
            return;
        }
        // A TLS connection opens when its handshake finishes.
        if !self.table.is_tls(index) {
            self.open(index);
        }
        if read_first && self.table.is_live(key) {
            self.read(index, false);
        }
        // Still open (or flushing before a close): wait for more.
        if register_late && self.table.is_live(key) {
            self.register_accepted(index, true);
        }
    }

    /// Registers an accepted connection; one that cannot be registered is
    /// closed and `false` returned: through `on_closed` if the handler has
    /// seen it (`seen`), silently if not.
    fn register_accepted(&mut self, index: usize, seen: bool) -> bool {
        let Err(e) = self.table.register(index, &mut self.poller) else {
            return true;
        };
        self.warned.warn(|held| {
            tracing::warn!(error = %e, suppressed = held, "evio: registering a connection failed; closing it")
        });
        if seen {
            self.close(index, Some(e));
        } else {
            self.table.remove(index);
            self.ctx.me.count_closed();
        }
        false
    }

    /// Fires `on_opened`, applies its options and action.
    pub(super) fn open(&mut self, index: usize) {
        self.table.apply_default_idle(index);
        let (opts, action) = self.handler.on_opened(view!(self, index));
        // Usually inherited from the listener: then no system call here.
        self.table.apply_nodelay(index, opts.tcp_no_delay);
        if let (Some(fd), false) = (self.table.fd(index), self.table.is_unix(index)) {
            if let Some(idle) = opts.tcp_keep_alive {
                if let Err(e) = net::set_keepalive(&fd, Some(idle)) {
                    tracing::debug!(error = %e, "evio: SO_KEEPALIVE failed");
                }
            }
        }
        if let Some(idle) = opts.idle_timeout {
            self.table.set_idle_timeout(index, Some(idle));
        }
        self.after(index, action);
    }

    pub(super) fn finish_connect(&mut self, index: usize) {
        if let Err(e) = self.table.finish_connect(index) {
            self.close(index, Some(e));
            return;
        }
        tracing::debug!(remote = %self.table.remote(index), "evio: dialed");
        if self.table.is_tls(index) {
            // The ClientHello goes out now; it opens after the handshake.
            self.flush(index);
        } else {
            self.open(index);
        }
        if self.table.read_fd(index).is_some() {
            self.read(index, false);
        }
    }

    /// Registers connections a callback dialed; one that cannot be
    /// registered is closed with the error.
    pub(super) fn register_dialed(&mut self) {
        while let Some(index) = self.table.take_to_register() {
            if self.table.contains(index) {
                if let Err(e) = self.table.register(index, &mut self.poller) {
                    self.warned.warn(|held| {
                        tracing::warn!(error = %e, suppressed = held, "evio: registering a dialed connection failed")
                    });
                    self.close(index, Some(e));
                }
            }
        }
    }
}
