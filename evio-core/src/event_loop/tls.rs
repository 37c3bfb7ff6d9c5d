//! Reading a TLS connection (the `tls` feature): ciphertext from the socket
//! into the loop's read buffer, through the connection's session, plaintext
//! to `on_data` — with the handshake, `close_notify` and truncation on the
//! way.

use std::io;

use evio_sys::Poller;

use super::{view, EventLoop, READ_BUFFER};
use crate::conn::Conn;
use crate::handler::EventHandler;
use crate::tls::Plain;

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Before a TLS connection's socket is read: ciphertext kept from when
    /// reading paused (and plaintext still in the session) goes first, in
    /// pieces of the read buffer's size. `false` when reading should stop
    /// (what was not fed is kept again, in order).
    pub(super) fn tls_resume(&mut self, index: usize) -> bool {
        let stash = self.table.tls_take_stash(index);
        if stash.is_empty() {
            return self.tls_deliver(index, 0);
        }
        let mut rest = &stash[..];
        while !rest.is_empty() {
            let n = rest.len().min(self.buf.len());
            self.buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            if !self.tls_deliver(index, n) {
                // `tls_deliver` kept its unfed part; the rest follows it.
                if !rest.is_empty() && self.table.contains(index) {
                    self.table.tls_stash(index, rest);
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
    pub(super) fn tls_deliver(&mut self, index: usize, n: usize) -> bool {
        let go_on = self.tls_feed_all(index, n);
        if !self.table.contains(index) {
            return false;
        }
        // Handshake records, alerts, tickets and replies, written now —
        // on every path that leaves the connection open: records the
        // session queued while the handler paused reading or closed must
        // not wait for an event that may never come.
        self.table.tls_mark_dirty(index);
        if self.table.clear_dirty(index) {
            self.handler.on_pre_write();
            self.flush(index);
        }
        go_on && self.table.contains(index) && self.table.reads_now(index)
    }

    /// The feeding half of [`tls_deliver`](Self::tls_deliver): ciphertext
    /// in, plaintext to the handler, until the input is used up or reading
    /// must stop (then unfed ciphertext is stashed if reading is only
    /// paused). Returns whether reading may go on.
    fn tls_feed_all(&mut self, index: usize, n: usize) -> bool {
        let mut pos = 0;
        loop {
            let before = pos;
            if pos < n {
                let mut input = &self.buf[pos..n];
                let r = self.table.tls_feed(index, &mut input);
                pos = n - input.len();
                if let Err(e) = r {
                    self.tls_failed(index, e);
                    return false;
                }
            }
            if self.table.tls_take_opened(index) {
                self.open(index);
                if !self.table.contains(index) {
                    return false;
                }
            }
            let (delivered, go_on) = self.tls_plaintext(index);
            if !go_on {
                if pos < n && self.table.contains(index) && self.table.reads_paused(index) {
                    self.table.tls_stash(index, &self.buf[pos..n]);
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
    fn tls_plaintext(&mut self, index: usize) -> (bool, bool) {
        // The plaintext buffer, taken out while callbacks borrow the loop
        // (allocated with the first TLS connection).
        let mut plain = self
            .plain
            .take()
            .unwrap_or_else(|| vec![0u8; READ_BUFFER].into_boxed_slice());
        let r = self.tls_plaintext_into(index, &mut plain);
        self.plain = Some(plain);
        r
    }

    fn tls_plaintext_into(&mut self, index: usize, plain: &mut [u8]) -> (bool, bool) {
        let mut delivered = false;
        loop {
            if !self.table.reads_now(index) {
                return (delivered, false);
            }
            match self.table.tls_read_plain(index, plain) {
                Plain::Data(m) => {
                    delivered = true;
                    self.table.touch(index);
                    let action = self.handler.on_data(view!(self, index), &plain[..m]);
                    self.after(index, action);
                    if !self.table.contains(index) {
                        return (true, false);
                    }
                }
                Plain::Empty => return (delivered, true),
                Plain::Closed => {
                    // close_notify: a clean end of the peer's data.
                    self.peer_finished(index);
                    return (delivered, false);
                }
                Plain::Truncated(e) => {
                    self.close(index, Some(e));
                    return (delivered, false);
                }
            }
        }
    }

    /// A TLS error: the alert rustls queued goes out, then the connection
    /// closes with the error.
    fn tls_failed(&mut self, index: usize, e: io::Error) {
        tracing::debug!(error = %e, "evio: TLS error");
        self.flush(index);
        self.close(index, Some(e));
    }
}
