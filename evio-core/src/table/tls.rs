//! The TLS side of the table (the `tls` feature): sessions of accepted and
//! dialed connections, feeding them ciphertext, taking plaintext out, and
//! the handshake timer.

use std::io;
use std::sync::Arc;

use super::state::Flags;
use super::timers::TimerKind;
use super::ConnTable;
use crate::key::ConnKey;
use crate::tls::{Plain, TlsInfo, TlsSession};
use crate::Addr;

impl<C> ConnTable<C> {
    fn session(&mut self, index: usize) -> &mut TlsSession {
        self.slab[index]
            .tls
            .as_deref_mut()
            .expect("a TLS connection")
    }

    /// Whether connection `index` speaks TLS.
    pub(crate) fn is_tls(&self, index: usize) -> bool {
        self.slab[index].tls.is_some()
    }

    /// What a handler may ask of the TLS session of `index`.
    pub(crate) fn tls_info(&self, index: usize) -> Option<TlsInfo<'_>> {
        self.slab[index].tls.as_deref().map(TlsSession::info)
    }

    /// Starts the handshake timer of `index` (if the server has one).
    pub(crate) fn arm_handshake_timer(&mut self, index: usize) {
        if self.handshake_ms > 0 {
            let key = self.key(index);
            let now = self.timers.refresh();
            self.timers.push(
                now + u64::from(self.handshake_ms),
                TimerKind::Handshake,
                key,
            );
        }
    }

    /// A dial that speaks TLS to `name` once connected.
    pub(crate) fn dial_tls(
        &mut self,
        addr: &Addr,
        name: &str,
        config: Arc<rustls::ClientConfig>,
        ctx: C,
    ) -> Result<ConnKey, (io::Error, C)> {
        let session = match TlsSession::client(config, name) {
            Ok(s) => s,
            Err(e) => return Err((e, ctx)),
        };
        let key = self.dial(addr, ctx)?;
        let index = key.index();
        self.slab[index].tls = Some(Box::new(session));
        self.arm_handshake_timer(index);
        Ok(key)
    }

    /// Feeds ciphertext from the front of `input` to the session of `index`.
    ///
    /// # Errors
    /// A TLS error; an alert for the peer is queued (flush before closing).
    pub(crate) fn tls_feed(&mut self, index: usize, input: &mut &[u8]) -> io::Result<()> {
        self.session(index).feed(input)
    }

    /// The peer closed the TCP connection.
    pub(crate) fn tls_feed_eof(&mut self, index: usize) {
        self.session(index).feed_eof();
    }

    /// `true` once, when the handshake of `index` has just finished.
    pub(crate) fn tls_take_opened(&mut self, index: usize) -> bool {
        self.session(index).take_opened()
    }

    /// Copies plaintext of `index` out into `buf`.
    pub(crate) fn tls_read_plain(&mut self, index: usize, buf: &mut [u8]) -> Plain {
        self.session(index).read_plain(buf)
    }

    /// Keeps ciphertext that was read but not fed (reading paused).
    pub(crate) fn tls_stash(&mut self, index: usize, rest: &[u8]) {
        self.session(index).stash(rest);
    }

    /// Takes the ciphertext kept by [`tls_stash`](Self::tls_stash).
    pub(crate) fn tls_take_stash(&mut self, index: usize) -> Vec<u8> {
        self.session(index).take_stash()
    }

    /// Records written during the handshake wait for `on_opened`: marks
    /// the connection dirty so they (and the handshake's last flight) go
    /// out.
    pub(crate) fn tls_mark_dirty(&mut self, index: usize) {
        let c = &mut self.slab[index];
        if !c.flags.contains(Flags::DIRTY) {
            c.flags.insert(Flags::DIRTY);
            self.dirty.push(index);
        }
    }
}
