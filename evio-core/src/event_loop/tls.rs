//! Reading a TLS connection (the `tls` feature): ciphertext from the socket
//! into the loop's read buffer, through the connection's session, plaintext
//! to `on_data` — with the handshake, `close_notify` and truncation on the
//! way.

use std::io;

use evio_sys::Poller;

use super::{view, EventLoop, READ_BUFFER};
use crate::conn::Conn;
use crate::handler::EventHandler;
use crate::table::Slot;
use crate::tls::Plain;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Before a TLS connection's socket is read: ciphertext kept from when
    /// reading paused (and plaintext still in the session) goes first, in
    /// pieces of the read buffer's size. `false` when reading should stop
    /// (what was not fed is kept again, in order).
    pub(super) fn tls_resume(&mut self, slot: Slot) -> bool {
        let stash = self.table.conn_mut(slot).tls().take_stash();
        if stash.is_empty() {
            return self.tls_deliver(slot, 0);
        }
        let mut rest = &stash[..];
        while !rest.is_empty() {
            let n = rest.len().min(self.buf.len());
            self.buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            if !self.tls_deliver(slot, n) {
                // `tls_deliver` kept its unfed part; the rest follows it.
                if !rest.is_empty() && self.table.holds(slot) {
                    self.table.conn_mut(slot).tls().stash(rest);
                }
                return false;
            }
        }
        true
    }

    /// Feeds `self.buf[..n]` to the session, opens the connection when its
    /// handshake finishes, gives plaintext to the handler, and writes what
    /// the session and the handler queued. `false` when reading should not
    /// go on (closed, closing, paused: unfed ciphertext is kept).
    pub(super) fn tls_deliver(&mut self, slot: Slot, n: usize) -> bool {
        let go_on = self.tls_feed_all(slot, n);
        if !self.table.holds(slot) {
            return false;
        }
        // Handshake records, alerts, tickets and replies, written now —
        // on every path that leaves the connection open: records the
        // session queued while the handler paused reading or closed must
        // not wait for an event that may never come.
        self.table.tls_mark_dirty(slot);
        if self.table.clear_dirty(slot) {
            self.handler.on_pre_write();
            self.flush(slot);
        }
        go_on && self.table.holds(slot) && self.table.conn(slot).reads_now()
    }

    /// The feeding half of [`tls_deliver`](Self::tls_deliver): ciphertext
    /// in, plaintext to the handler, until the input is used up or reading
    /// must stop (then unfed ciphertext is stashed if reading is only
    /// paused). Returns whether reading may go on.
    fn tls_feed_all(&mut self, slot: Slot, n: usize) -> bool {
        let mut pos = 0;
        loop {
            let before = pos;
            if pos < n {
                let mut input = &self.buf[pos..n];
                let r = self.table.conn_mut(slot).tls().feed(&mut input);
                pos = n - input.len();
                if let Err(e) = r {
                    self.tls_failed(slot, e);
                    return false;
                }
            }
            if self.table.conn_mut(slot).tls().take_opened() {
                self.counters.tls_handshakes += 1;
                self.open(slot);
                if !self.table.holds(slot) {
                    return false;
                }
            }
            let (delivered, go_on) = self.tls_plaintext(slot);
            if !go_on {
                if pos < n && self.table.holds(slot) && self.table.conn(slot).reads_paused() {
                    self.table.conn_mut(slot).tls().stash(&self.buf[pos..n]);
                }
                return false;
            }
            if pos >= n || (pos == before && !delivered) {
                return true;
            }
        }
    }

    /// Gives the session's plaintext to `on_data`. Returns whether any was
    /// delivered and whether reading may go on.
    fn tls_plaintext(&mut self, slot: Slot) -> (bool, bool) {
        // The plaintext buffer, taken out while callbacks borrow the loop
        // (allocated with the first TLS connection).
        let mut plain = self
            .plain
            .take()
            .unwrap_or_else(|| vec![0u8; READ_BUFFER].into_boxed_slice());
        let r = self.tls_plaintext_into(slot, &mut plain);
        self.plain = Some(plain);
        r
    }

    fn tls_plaintext_into(&mut self, slot: Slot, plain: &mut [u8]) -> (bool, bool) {
        let mut delivered = false;
        loop {
            if !self.table.conn(slot).reads_now() {
                return (delivered, false);
            }
            match self.table.conn_mut(slot).tls().read_plain(plain) {
                Plain::Data(m) => {
                    delivered = true;
                    self.table.touch(slot);
                    let action = self.handler.on_data(view!(self, slot), &plain[..m]);
                    self.after(slot, action);
                    if !self.table.holds(slot) {
                        return (true, false);
                    }
                }
                Plain::Empty => return (delivered, true),
                Plain::Closed => {
                    // close_notify: a clean end of the peer's data.
                    self.peer_finished(slot);
                    return (delivered, false);
                }
                Plain::Truncated(e) => {
                    self.close(slot, Some(e));
                    return (delivered, false);
                }
            }
        }
    }

    /// A TLS error: the alert rustls queued goes out, then the connection
    /// closes with the error.
    fn tls_failed(&mut self, slot: Slot, e: io::Error) {
        tracing::debug!(error = %e, "evio: TLS error");
        if self.table.conn_mut(slot).tls().is_handshaking() {
            self.counters.tls_handshake_failures += 1;
        }
        self.flush(slot);
        self.close(slot, Some(e));
    }
}
