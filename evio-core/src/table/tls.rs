//! The TLS side of the table (the `tls` feature): dialing with a session,
//! the handshake timer, and queueing a session's records for a flush. The
//! session itself is the connection's ([`Connection::tls`](super::Connection::tls)).

use std::io;
use std::sync::Arc;

use super::connection::{Flags, Slot};
use super::timers::TimerKind;
use super::ConnTable;
use crate::key::ConnKey;
use crate::tls::TlsSession;
use crate::Addr;

impl<C> ConnTable<C> {
    /// Starts the handshake timer of `index` (if the server has one).
    pub(crate) fn arm_handshake_timer(&mut self, slot: Slot) {
        if self.handshake_ms > 0 {
            let key = self.key(slot);
            let now = self.st.timers.refresh();
            self.st.timers.push(
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
        let slot = Slot(key.index());
        self.slab[slot.0].tls = Some(Box::new(session));
        self.arm_handshake_timer(slot);
        Ok(key)
    }

    /// Records written during the handshake wait for `on_opened`: marks
    /// the connection dirty so they (and the handshake's last flight) go
    /// out.
    pub(crate) fn tls_mark_dirty(&mut self, slot: Slot) {
        let c = &mut self.slab[slot.0];
        if !c.flags.contains(Flags::DIRTY) {
            c.flags.insert(Flags::DIRTY);
            self.st.dirty.push(slot);
        }
    }
}
