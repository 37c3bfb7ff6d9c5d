//! [`Conn`]: a connection as a callback sees it — a thin view over the
//! loop's connection table.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use evio_sys::net;

use crate::handle::ConnHandle;
use crate::key::ConnId;
use crate::remote::LoopRemote;
use crate::shared::Shared;
use crate::table::ConnTable;
use crate::Addr;

/// What a loop knows about itself that a view needs.
pub(crate) struct LoopCtx {
    pub(crate) index: usize,
    pub(crate) me: Arc<LoopRemote>,
    pub(crate) shared: Arc<Shared>,
}

/// A connection, lent to a callback.
///
/// A view of the loop's connection table, cheap to build and valid for the
/// callback only. Besides its own connection it can reach the other
/// connections of its loop by [`ConnId`] and dial new ones. For UDP it stands
/// for one datagram: `remote_addr` is the sender and everything written is
/// sent back as one datagram.
pub struct Conn<'a, C> {
    table: &'a mut ConnTable<C>,
    index: usize,
    lp: &'a LoopCtx,
}

impl<'a, C> Conn<'a, C> {
    pub(crate) fn new(table: &'a mut ConnTable<C>, index: usize, lp: &'a LoopCtx) -> Conn<'a, C> {
        Conn { table, index, lp }
    }
}

impl<C> Conn<'_, C> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        ConnId(self.table.key(self.index))
    }

    /// The per-connection context.
    pub fn context(&self) -> &C {
        self.table.ctx(self.index)
    }

    /// The per-connection context, mutably.
    pub fn context_mut(&mut self) -> &mut C {
        self.table.ctx_mut(self.index)
    }

    /// Replaces the per-connection context.
    pub fn set_context(&mut self, ctx: C) {
        *self.table.ctx_mut(self.index) = ctx;
    }

    /// Which of the addresses given to `serve` accepted this connection
    /// (`usize::MAX` for a dialed connection).
    pub fn addr_index(&self) -> usize {
        self.table.listener(self.index).unwrap_or(usize::MAX)
    }

    /// Whether this connection was made by [`Conn::dial`] or
    /// [`ServerHandle::dial`](crate::ServerHandle::dial).
    pub fn is_dialed(&self) -> bool {
        self.table.listener(self.index).is_none()
    }

    /// The connection's local socket address (one `getsockname` call); the
    /// listener's address if the socket is already closed.
    pub fn local_addr(&self) -> Addr {
        self.table
            .fd(self.index)
            .and_then(|fd| net::local_addr(&fd).ok())
            .or_else(|| {
                self.table
                    .listener(self.index)
                    .and_then(|i| self.lp.shared.addrs.get(i).cloned())
            })
            .unwrap_or(Addr::Unix(None))
    }

    /// The peer's address; for UDP, the datagram's sender.
    pub fn remote_addr(&self) -> &Addr {
        self.table.remote(self.index)
    }

    /// The socket, for options evio does not wrap (`None` once closed and
    /// for UDP datagrams).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.table.fd(self.index)
    }

    /// Whether this is a UDP datagram rather than a stream connection.
    pub fn is_udp(&self) -> bool {
        self.table.is_udp(self.index)
    }

    /// Appends `data` to the connection's output. The loop writes it after
    /// the callback returns (after
    /// [`EventHandler::on_pre_write`](crate::EventHandler::on_pre_write)).
    /// Never blocks; when more than the high-water mark is queued the loop
    /// stops reading this connection until the output drains.
    pub fn write(&mut self, data: &[u8]) {
        self.table.write(self.index, data);
    }

    /// Bytes queued and not yet written to the socket.
    pub fn output_len(&self) -> usize {
        self.table.output_len(self.index)
    }

    /// Appends `data` to the output of another connection of this loop
    /// (e.g. a proxy's other half). Returns `false` if that connection is
    /// gone or closing. When the peer's queue passes the high-water mark,
    /// this connection stops being read until the peer drains below the
    /// low-water mark (or closes), so a fast sender cannot outrun a slow
    /// receiver; any number of senders may wait on one peer. Bytes queued
    /// this way never pause the peer's own reading (only the writers are
    /// throttled), so two connections forwarding to each other cannot
    /// deadlock on their full queues.
    pub fn write_to(&mut self, peer: ConnId, data: &[u8]) -> bool {
        let me = self.table.key(self.index);
        self.table.write_to(me, peer.0, data)
    }

    /// Bytes queued on another connection of this loop, or `None` if it is
    /// gone.
    pub fn output_len_of(&self, peer: ConnId) -> Option<usize> {
        self.table.output_len_of(peer.0)
    }

    /// Closes another connection of this loop after its pending output is
    /// written (like returning [`Action::Close`](crate::Action::Close) from
    /// its own callback). Returns `false` if it is already gone (or is being
    /// detached).
    pub fn close_conn(&mut self, peer: ConnId) -> bool {
        self.table.close_later(peer.0)
    }

    /// Opens an outbound connection served by this loop. Returns its id at
    /// once; `on_opened` fires when it connects, or `on_closed` with the
    /// error if the connect fails or times out (see
    /// [`Builder::dial_timeout`](crate::Builder::dial_timeout)). Bytes
    /// written to it before it connects are sent once it does.
    ///
    /// # Errors
    /// Only what fails at once: creating the socket (e.g. `EMFILE`) or an
    /// immediate connect error (e.g. `ENETUNREACH`). Unix paths are dialed
    /// too.
    pub fn dial(&mut self, addr: &Addr, ctx: C) -> io::Result<ConnId> {
        let key = self.table.dial(addr, ctx).map_err(|(e, _)| e)?;
        self.lp.me.count_open();
        Ok(ConnId(key))
    }

    /// Overrides the server's idle timeout for this connection: it is
    /// closed, with `on_closed` getting a `TimedOut` error, after this long
    /// without reading or writing a byte. `None` disables it.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.table.set_idle_timeout(self.index, timeout);
    }

    /// A handle to this connection usable from any thread; see
    /// [`ConnHandle`].
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(
            self.table.key(self.index),
            self.lp.me.clone(),
            self.lp.shared.id,
        )
    }

    /// Same as [`handle`](Conn::handle): the handle's
    /// [`wake`](ConnHandle::wake) is Go evio's `Conn.Wake`.
    pub fn waker(&self) -> ConnHandle {
        self.handle()
    }
}

impl<C: fmt::Debug> fmt::Debug for Conn<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("remote_addr", self.remote_addr())
            .field("output_len", &self.output_len())
            .field("context", self.context())
            .finish()
    }
}
