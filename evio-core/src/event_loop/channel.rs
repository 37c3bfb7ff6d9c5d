//! The loop's end of its wake channel: messages from other threads
//! (wakes, writes, closes, dials, accepted connections, reclaim requests),
//! handled in bounded batches.

use std::io;

use evio_sys::Poller;

use super::{view, EventLoop, MAX_MESSAGES_PER_ITERATION};
use crate::conn::Conn;
use crate::handler::{Action, EventHandler};
use crate::key::{ConnId, ConnKey};
use crate::mailbox::Msg;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    pub(super) fn drain_channel(&mut self) {
        // A bounded batch: threads sending faster than the loop handles
        // must not keep it here (no I/O, no shutdown). Messages sent later
        // wake the poller again; for the rest of a long backlog, re-arm
        // the wake so the next wait does not block.
        let queued = self.rx.len();
        if queued > MAX_MESSAGES_PER_ITERATION {
            self.ctx.me.wake();
        }
        for _ in 0..queued.min(MAX_MESSAGES_PER_ITERATION) {
            let Ok(msg) = self.rx.try_recv() else { break };
            match msg {
                Msg::Wake(key) => {
                    // A closing connection takes no more events; its
                    // pending output and close stand.
                    if let Some(slot) = self.table.slot(key) {
                        if self.table.takes_events(key) {
                            let action = self.handler.on_wake(view!(self, slot));
                            self.after(slot, action);
                        }
                    }
                }
                Msg::Write { key, data, receipt } => {
                    if self.table.write_with_receipt(key, data, receipt) {
                        self.after_key(key);
                    }
                }
                Msg::SendTo {
                    key,
                    to,
                    data,
                    receipt,
                } => self.send_datagram(key, to, &data, receipt),
                Msg::Close(key) => {
                    if self.table.close_later(key) {
                        self.after_key(key);
                    }
                }
                Msg::Dial {
                    addr,
                    ctx,
                    reply,
                    #[cfg(feature = "tls")]
                    tls,
                } => self.dial(
                    addr,
                    ctx,
                    reply,
                    #[cfg(feature = "tls")]
                    tls,
                ),
                Msg::Reclaim(count) => {
                    self.reclaim(count);
                }
                Msg::Accepted(accepted) => self.install(accepted),
            }
        }
    }

    /// After a message changed the connection `key` (queued output or a
    /// close): what follows a callback that did so.
    fn after_key(&mut self, key: ConnKey) {
        if let Some(slot) = self.table.slot(key) {
            self.after(slot, Action::None);
        }
    }

    /// A dial asked for from another thread: the new connection's id (or
    /// why there is none) goes back on `reply`.
    pub(super) fn dial(
        &mut self,
        addr: crate::Addr,
        ctx: Box<dyn std::any::Any + Send>,
        reply: crossbeam_channel::Sender<io::Result<ConnId>>,
        #[cfg(feature = "tls")] tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    ) {
        // `ServerControl<C>` only dials with the handler's `Context`, so
        // this cannot fail; the mailbox is untyped because `ConnHandle`s
        // (which know no context type) send through it too.
        let ctx = match ctx.downcast::<H::Context>() {
            Ok(ctx) => *ctx,
            Err(_) => {
                let _ = reply.send(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "dial: the context is not the handler's Context type ({})",
                        std::any::type_name::<H::Context>()
                    ),
                )));
                return;
            }
        };
        self.ctx.me.count_open();
        #[cfg(feature = "tls")]
        let dialed = match tls {
            Some((config, name)) => self.table.dial_tls(&addr, &name, config, ctx),
            None => self.table.dial(&addr, ctx),
        };
        #[cfg(not(feature = "tls"))]
        let dialed = self.table.dial(&addr, ctx);
        match dialed {
            Ok(key) => {
                let _ = reply.send(Ok(ConnId::new(self.ctx.index, key)));
                self.register_dialed();
            }
            Err((e, ctx)) => {
                // Reported like a connect that fails later: `on_closed`
                // with the error, no `on_opened`.
                tracing::debug!(error = %e, addr = %addr, "evio: dial failed");
                let index = self.table.insert_failed_dial(addr, ctx);
                let id = ConnId::new(self.ctx.index, self.table.key(index));
                let _ = reply.send(Ok(id));
                self.close(index, Some(e));
            }
        }
    }
}
