//! [`Peer`]: another connection of the same loop, reached from a callback
//! by its [`ConnId`] — a proxy's other half, a subscriber of a channel. Its
//! methods are the ones [`Conn`](crate::Conn) has for itself, with the same
//! names and the same meaning.

use std::fmt;
use std::time::Duration;

use crate::key::{ConnId, ConnKey};
use crate::table::ConnTable;

/// Another connection of this loop, lent to a callback by
/// [`Conn::peer`](crate::Conn::peer).
///
/// It stays valid for the callback only; keep the [`ConnId`] to reach the
/// connection again later. Every method returns `false` (or 0) once the
/// connection is gone, so a peer that closed meanwhile is no error.
///
/// ```
/// use evio_core::{Action, Conn, ConnId, EventHandler};
///
/// /// Forwards what each half reads to the other half.
/// struct Pipe;
/// impl EventHandler for Pipe {
///     type Context = Option<ConnId>; // the other half
///     fn on_data(&mut self, conn: &mut Conn<'_, Option<ConnId>>, input: &[u8]) -> Action {
///         let Some(other) = *conn.context() else { return Action::Close };
///         // `write` is false when the other half is gone or closing.
///         let written = conn.peer(other).is_some_and(|mut peer| peer.write(input));
///         if written { Action::None } else { Action::Close }
///     }
/// }
/// ```
pub struct Peer<'a, C> {
    table: &'a mut ConnTable<C>,
    /// The connection whose callback this is (paused when the peer's output
    /// passes the high-water mark).
    me: ConnKey,
    id: ConnId,
}

impl<'a, C> Peer<'a, C> {
    pub(crate) fn new(table: &'a mut ConnTable<C>, me: ConnKey, id: ConnId) -> Peer<'a, C> {
        Peer { table, me, id }
    }
}

impl<C> Peer<'_, C> {
    /// The peer's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Whether the peer is still there (open, or closing with output left).
    pub fn is_open(&self) -> bool {
        self.table.is_live(self.id.key)
    }

    /// Appends `data` to the peer's output. Returns `false` if the peer is
    /// gone, closing, or its write side is shut down (nothing is queued).
    ///
    /// Backpressure: when the peer's queue passes the high-water mark, the
    /// connection whose callback this is stops being read until the peer
    /// drains below the low-water mark (or closes), so a fast sender cannot
    /// outrun a slow receiver; any number of senders may wait on one peer.
    /// Bytes queued this way never pause the peer's own reading (only the
    /// writers are throttled), so two connections forwarding to each other
    /// cannot deadlock on their full queues.
    pub fn write(&mut self, data: &[u8]) -> bool {
        self.table.write_to(self.me, self.id.key, data)
    }

    /// Bytes queued on the peer and not yet written to its socket (0 once
    /// it is gone).
    pub fn output_len(&self) -> usize {
        self.table.output_len_of(self.id.key).unwrap_or(0)
    }

    /// Closes the peer after its pending output is written (as returning
    /// [`Action::Close`](crate::Action::Close) from its own callback).
    /// Returns `false` if it is already gone or being detached.
    pub fn close(&mut self) -> bool {
        self.table.close_later(self.id.key)
    }

    /// The peer's context, `None` once it is gone: a pair's halves can
    /// hand each other state (a proxy's client learning that its response
    /// has ended) without a channel.
    pub fn context_mut(&mut self) -> Option<&mut C> {
        self.table.ctx_of(self.id.key)
    }

    /// Runs the peer's [`on_wake`](crate::EventHandler::on_wake) later in
    /// this loop iteration, after the current callback has returned: how
    /// one half asks the other to act on what it handed over (with
    /// [`context_mut`](Peer::context_mut)). No syscall, unlike
    /// [`ConnHandle::wake`](crate::ConnHandle::wake). Returns `false` if
    /// the peer is gone or closing (it takes no more events).
    ///
    /// ```
    /// use evio_core::{Action, Conn, ConnId, EventHandler};
    ///
    /// /// Each connection wakes its partner after every read.
    /// struct Nudge;
    /// impl EventHandler for Nudge {
    ///     type Context = Option<ConnId>;
    ///     fn on_data(&mut self, conn: &mut Conn<'_, Option<ConnId>>, input: &[u8]) -> Action {
    ///         if input.is_empty() {
    ///             return Action::None; // woken
    ///         }
    ///         if let Some(other) = *conn.context() {
    ///             conn.peer(other).map(|mut p| p.wake());
    ///         }
    ///         Action::None
    ///     }
    /// }
    /// ```
    pub fn wake(&mut self) -> bool {
        self.table.wake_later(self.id.key)
    }

    /// Sets the peer's timer ([`Conn::set_timer`](crate::Conn::set_timer)):
    /// its `on_timer` fires once `delay` has passed; `None` cancels it.
    /// Returns `false` if the peer is gone.
    pub fn set_timer(&mut self, delay: Option<Duration>) -> bool {
        let Some(slot) = self.table.slot(self.id.key) else {
            return false;
        };
        self.table.set_timer(slot, delay);
        true
    }

    /// Sets the peer's idle timeout
    /// ([`Conn::set_idle_timeout`](crate::Conn::set_idle_timeout)): a
    /// pooled connection kept for a shorter time than one in use. Returns
    /// `false` if the peer is gone.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) -> bool {
        let Some(slot) = self.table.slot(self.id.key) else {
            return false;
        };
        self.table.set_idle_timeout(slot, timeout);
        true
    }

    /// Shuts the peer's write side down once its queued output is written
    /// (a half-close; see [`Conn::shutdown_write`](crate::Conn::shutdown_write)):
    /// a proxy forwarding a FIN. Returns `false` if it is gone or not open.
    pub fn shutdown_write(&mut self) -> bool {
        self.table.shutdown_write_later(self.id.key)
    }
}

impl<C> fmt::Debug for Peer<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("open", &self.is_open())
            .finish()
    }
}
