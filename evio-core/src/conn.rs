//! [`Conn`]: a connection as a callback sees it — a thin view over the
//! loop's connection table — and [`Writer`], its output borrowed apart from
//! its context.

use std::any::Any;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use evio_sys::net;

use crate::addr::ToAddr;
use crate::control::ServerControl;
use crate::handle::ConnHandle;
use crate::key::ConnId;
use crate::mailbox::Mailbox;
use crate::peer::Peer;
use crate::shared::Shared;
use crate::socket::SocketOptions;
use crate::table::{Chunk, ConnTable, Connection, OutputRef, Slot};
use crate::Addr;

/// What a loop knows about itself that a view needs.
pub(crate) struct LoopCtx<C> {
    pub(crate) index: usize,
    pub(crate) me: Arc<Mailbox>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: ServerControl<C>,
    /// For each UDP listener of this loop, its socket (to send datagrams
    /// from), by address index.
    pub(crate) udp_sockets: Vec<Option<UdpSocket>>,
}

/// A UDP socket a loop serves, for sending datagrams from callbacks and
/// other threads.
#[derive(Clone)]
pub(crate) struct UdpSocket {
    pub(crate) fd: Arc<OwnedFd>,
    /// An IPv6 (dual-stack) socket: IPv4 destinations go as mapped
    /// addresses.
    pub(crate) v6: bool,
}

impl UdpSocket {
    pub(crate) fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        let to = match (self.v6, to) {
            (true, SocketAddr::V4(a)) => {
                SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            _ => to,
        };
        net::send_to(self.fd.as_fd(), data, &to)
    }
}

/// Turns an owned buffer into a queue entry, without boxing a `Vec`.
fn chunk_of<B: AsRef<[u8]> + Send + 'static>(buf: B) -> Chunk {
    let mut slot = Some(buf);
    if let Some(v) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        return Chunk::Vec(v.take().unwrap_or_default());
    }
    match slot {
        Some(b) => Chunk::Boxed(Box::new(b)),
        None => Chunk::Vec(Vec::new()),
    }
}

/// A connection, lent to a callback.
///
/// A view of the loop's connection table, cheap to build and valid for the
/// callback only. Besides its own connection it can reach the other
/// connections of its loop by [`ConnId`], dial new ones, and reach the
/// whole server ([`Conn::server`]). For UDP it stands for one datagram:
/// `remote_addr` is the sender and everything written is sent back as one
/// datagram.
pub struct Conn<'a, C> {
    table: &'a mut ConnTable<C>,
    slot: Slot,
    lp: &'a LoopCtx<C>,
}

impl<'a, C> Conn<'a, C> {
    pub(crate) fn new(table: &'a mut ConnTable<C>, slot: Slot, lp: &'a LoopCtx<C>) -> Conn<'a, C> {
        Conn { table, slot, lp }
    }
}

impl<C> Conn<'_, C> {
    fn me(&self) -> &Connection<C> {
        self.table.conn(self.slot)
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        ConnId::new(self.lp.index, self.table.key(self.slot))
    }

    /// The index of the loop (thread) serving this connection.
    pub fn loop_index(&self) -> usize {
        self.lp.index
    }

    /// The server: stop it, count its connections, dial into it, from here
    /// or (cloned) from any thread.
    pub fn server(&self) -> &ServerControl<C> {
        &self.lp.control
    }

    /// The per-connection context.
    pub fn context(&self) -> &C {
        self.me().ctx()
    }

    /// The per-connection context, mutably.
    pub fn context_mut(&mut self) -> &mut C {
        self.table.conn_mut(self.slot).ctx_mut()
    }

    /// Replaces the per-connection context.
    pub fn set_context(&mut self, ctx: C) {
        *self.table.conn_mut(self.slot).ctx_mut() = ctx;
    }

    /// The context and a writer for this connection's output, borrowed
    /// together — e.g. to parse with an [`InputStream`](crate::InputStream)
    /// kept in the context while writing replies.
    ///
    /// ```
    /// use evio_core::{Action, Conn, EventHandler, InputStream};
    ///
    /// struct Lines;
    /// impl EventHandler for Lines {
    ///     type Context = InputStream;
    ///     fn on_data(&mut self, conn: &mut Conn<'_, InputStream>, input: &[u8]) -> Action {
    ///         let (stream, mut out) = conn.split();
    ///         let data = stream.begin(input);
    ///         let mut used = 0;
    ///         while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
    ///             out.write(&data[used..used + nl + 1]); // echo each whole line
    ///             used += nl + 1;
    ///         }
    ///         stream.end(input, used);
    ///         Action::None
    ///     }
    /// }
    /// ```
    pub fn split(&mut self) -> (&mut C, Writer<'_>) {
        let (ctx, out) = self.table.split(self.slot);
        (ctx, Writer { out })
    }

    /// Which of the addresses given to `serve` accepted this connection (or
    /// received this datagram); `None` for a dialed connection.
    pub fn addr_index(&self) -> Option<usize> {
        self.me().listener()
    }

    /// Whether the server is draining (see [`EventHandler::on_drain`](crate::EventHandler::on_drain)):
    /// a protocol with request boundaries closes this connection at the
    /// next one. One atomic load.
    pub fn is_draining(&self) -> bool {
        self.lp.shared.is_draining()
    }

    /// Whether this connection was made by [`Conn::dial`] or
    /// [`ServerControl::dial`].
    pub fn is_dialed(&self) -> bool {
        self.me().listener().is_none()
    }

    /// The connection's local socket address (one `getsockname` call); the
    /// listener's address if the socket is already closed.
    pub fn local_addr(&self) -> Addr {
        self.me()
            .fd()
            .and_then(|fd| net::local_addr(&fd).ok())
            .map(canonical)
            .or_else(|| {
                self.me()
                    .listener()
                    .and_then(|i| self.lp.shared.addrs.get(i).cloned())
            })
            .unwrap_or(Addr::Unix(None))
    }

    /// The peer's address; for UDP, the datagram's sender. An IPv4 peer of
    /// a dual-stack listener is reported as IPv4, not `[::ffff:a.b.c.d]`.
    pub fn remote_addr(&self) -> &Addr {
        self.me().remote()
    }

    /// The socket, for options evio does not wrap (`None` once closed and
    /// for UDP datagrams). Do not close or keep a duplicate of it: the loop
    /// owns it.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.me().fd()
    }

    /// The socket's options (buffer sizes, linger, keep-alive, no-delay).
    ///
    /// # Errors
    /// `NotConnected` for a UDP datagram or a connection whose socket is
    /// already closed.
    pub fn socket(&self) -> io::Result<SocketOptions<'_>> {
        let fd = self.me().fd().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no socket (UDP, or closed)")
        })?;
        Ok(SocketOptions::new(fd, self.me().is_unix()))
    }

    /// Whether this is a UDP datagram rather than a stream connection.
    pub fn is_udp(&self) -> bool {
        self.me().is_udp()
    }

    /// Appends a copy of `data` to the connection's output. The loop writes
    /// it after the callback returns (after
    /// [`EventHandler::on_pre_write`](crate::EventHandler::on_pre_write)).
    /// Never blocks; when more than the high-water mark is queued the loop
    /// stops reading this connection until the output drains. Dropped after
    /// [`shutdown_write`](Conn::shutdown_write).
    pub fn write(&mut self, data: &[u8]) {
        self.table.write(self.slot, data);
    }

    /// Queues an owned buffer as it is, without copying it: a `Vec<u8>`,
    /// `String`, `Box<[u8]>`, `Arc<[u8]>`, `&'static [u8]`… It is written
    /// after what is already queued (one `writev` covers several buffers)
    /// and dropped once written.
    ///
    /// ```
    /// # use evio_core::{Action, Conn, EventHandler};
    /// # struct Files(std::sync::Arc<[u8]>);
    /// # impl EventHandler for Files { type Context = ();
    /// fn on_data(&mut self, conn: &mut Conn<'_, ()>, _input: &[u8]) -> Action {
    ///     conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
    ///     conn.write_owned(self.0.clone()); // a shared 1 MiB body: no copy
    ///     Action::None
    /// }
    /// # }
    /// ```
    pub fn write_owned<B: AsRef<[u8]> + Send + 'static>(&mut self, buf: B) {
        self.table.write_chunk(self.slot, chunk_of(buf));
    }

    /// Writes several slices. With nothing queued they go out at once in
    /// one `writev`, without a copy (before this callback returns, so
    /// [`EventHandler::on_pre_write`](crate::EventHandler::on_pre_write)
    /// does not run for them); what the socket does not take, or everything
    /// when output is already queued, is copied to the output like
    /// [`write`](Conn::write).
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) {
        self.table.write_vectored(self.slot, bufs);
    }

    /// Bytes queued and not yet written to the socket.
    pub fn output_len(&self) -> usize {
        self.me().output_len()
    }

    /// Another connection of this loop, to write to, close or half-close
    /// with the same methods this `Conn` has for itself ([`Peer`]). `None`
    /// if it is gone or served by another loop (reach those with a
    /// [`ConnHandle`]).
    pub fn peer(&mut self, id: ConnId) -> Option<Peer<'_, C>> {
        if id.loop_index() != self.lp.index || !self.table.is_live(id.key) {
            return None;
        }
        let me = self.table.key(self.slot);
        Some(Peer::new(self.table, me, id))
    }

    /// Appends `data` to another connection's output: `peer(id)` then
    /// [`Peer::write`].
    #[deprecated(
        since = "0.2.0",
        note = "use `conn.peer(id).is_some_and(|mut p| p.write(data))`"
    )]
    pub fn write_to(&mut self, peer: ConnId, data: &[u8]) -> bool {
        self.peer(peer).is_some_and(|mut p| p.write(data))
    }

    /// Bytes queued on another connection: `peer(id)` then
    /// [`Peer::output_len`].
    #[deprecated(since = "0.2.0", note = "use `conn.peer(id).map(|p| p.output_len())`")]
    pub fn output_len_of(&self, peer: ConnId) -> Option<usize> {
        if peer.loop_index() != self.lp.index {
            return None;
        }
        self.table.output_len_of(peer.key)
    }

    /// Closes another connection: `peer(id)` then [`Peer::close`].
    #[deprecated(
        since = "0.2.0",
        note = "use `conn.peer(id).is_some_and(|mut p| p.close())`"
    )]
    pub fn close_conn(&mut self, peer: ConnId) -> bool {
        self.peer(peer).is_some_and(|mut p| p.close())
    }

    /// Shuts down the write side of this connection once its queued output
    /// is written: the peer reads end of file, and reading goes on (a
    /// half-close). Writes after this are dropped. If the peer has already
    /// finished sending, the connection then closes (both directions are
    /// done); otherwise it closes when the peer's EOF arrives (see
    /// [`EventHandler::on_eof`](crate::EventHandler::on_eof)).
    pub fn shutdown_write(&mut self) {
        let key = self.table.key(self.slot);
        self.table.shutdown_write_later(key);
    }

    /// Half-closes another connection: `peer(id)` then
    /// [`Peer::shutdown_write`].
    #[deprecated(
        since = "0.2.0",
        note = "use `conn.peer(id).is_some_and(|mut p| p.shutdown_write())`"
    )]
    pub fn shutdown_write_conn(&mut self, peer: ConnId) -> bool {
        self.peer(peer).is_some_and(|mut p| p.shutdown_write())
    }

    /// Stops reading this connection until [`resume_reading`](Conn::resume_reading):
    /// the kernel's receive buffer fills and TCP flow control slows the
    /// peer. Independent of the loop's own backpressure. A reset by the
    /// peer is still noticed (the connection closes with the error).
    pub fn pause_reading(&mut self) {
        self.table.set_read_paused(self.slot, true);
    }

    /// Resumes reading after [`pause_reading`](Conn::pause_reading); input
    /// that arrived meanwhile is delivered in this loop iteration.
    pub fn resume_reading(&mut self) {
        self.table.set_read_paused(self.slot, false);
    }

    /// Whether reading is paused by [`pause_reading`](Conn::pause_reading).
    pub fn is_reading_paused(&self) -> bool {
        self.me().is_read_paused()
    }

    /// Opens an outbound connection served by this loop, with `ctx` as its
    /// context. Returns its id at once; `on_opened` fires when it connects,
    /// or `on_closed` with the error if the connect fails or times out (see
    /// [`Builder::dial_timeout`](crate::Builder::dial_timeout)). Bytes
    /// written to it before it connects are sent once it does.
    ///
    /// # Errors
    /// Only what fails at once: an address that does not parse, creating
    /// the socket (e.g. `EMFILE`) or an immediate connect error (e.g.
    /// `ENETUNREACH`); then no callback fires for it.
    pub fn dial(&mut self, addr: impl ToAddr, ctx: C) -> io::Result<ConnId> {
        let addr = addr.to_addr()?;
        let key = self.table.dial(&addr, ctx).map_err(|(e, _)| e)?;
        self.lp.me.count_open();
        Ok(ConnId::new(self.lp.index, key))
    }

    /// [`dial`](Conn::dial) that speaks TLS: once connected, the handshake
    /// runs with `config` and `server_name` (SNI and the name the
    /// certificate must carry), and `on_opened` fires when it has finished.
    /// Bytes written before are encrypted and sent after it. (`tls`
    /// feature.)
    ///
    /// # Errors
    /// As [`dial`](Conn::dial), or `InvalidInput` for a server name that is
    /// not a valid DNS name or IP address.
    #[cfg(feature = "tls")]
    pub fn dial_tls(
        &mut self,
        addr: impl ToAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        ctx: C,
    ) -> io::Result<ConnId> {
        let addr = addr.to_addr()?;
        let key = self
            .table
            .dial_tls(&addr, server_name, config, ctx)
            .map_err(|(e, _)| e)?;
        self.lp.me.count_open();
        Ok(ConnId::new(self.lp.index, key))
    }

    /// The TLS session of a TLS connection (SNI, ALPN, version…), `None`
    /// for a plain one. (`tls` feature.)
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<crate::tls::TlsInfo<'_>> {
        self.me().tls_info()
    }

    /// Overrides the server's idle timeout for this connection: it is
    /// closed, with `on_closed` getting a `TimedOut` error, after this long
    /// without reading or writing a byte. `None` disables it.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.table.set_idle_timeout(self.slot, timeout);
    }

    /// Sets this connection's timer: [`EventHandler::on_timer`](crate::EventHandler::on_timer)
    /// fires on its loop once `delay` has passed. One timer per connection:
    /// a later call replaces it, `None` cancels it. A timer costs nothing
    /// per event (one heap entry until due).
    pub fn set_timer(&mut self, delay: Option<Duration>) {
        self.table.set_timer(self.slot, delay);
    }

    /// Marks the connection as between requests (`true`) or busy (`false`,
    /// the default). When the server runs out of file descriptors and
    /// [`Builder::reclaim_idle`](crate::Builder::reclaim_idle) is on, the
    /// longest-idle connections marked this way (with nothing queued and
    /// nothing unread) are closed to make room for new clients, as nginx
    /// does with idle keep-alive connections. Mark a connection only while
    /// it holds no request in progress.
    pub fn set_reclaimable(&mut self, reclaimable: bool) {
        self.table.conn_mut(self.slot).set_reclaimable(reclaimable);
    }

    /// Sends one datagram to `to` from this datagram's UDP socket (UDP
    /// only: `Conn::write` answers the sender; this reaches anyone).
    /// Returns the bytes sent.
    ///
    /// # Errors
    /// `InvalidInput` on a stream connection; otherwise the OS error, e.g.
    /// `WouldBlock` when the socket's send buffer is full, `EMSGSIZE`.
    pub fn send_to(&mut self, to: SocketAddr, data: &[u8]) -> io::Result<usize> {
        let socket = self
            .is_udp()
            .then(|| self.me().listener())
            .flatten()
            .and_then(|i| self.lp.udp_sockets.get(i).cloned().flatten())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "send_to is for UDP datagrams")
            })?;
        socket.send_to(data, to)
    }

    /// A handle to this connection usable from any thread; see
    /// [`ConnHandle`]. For a UDP datagram, the handle's writes go to its
    /// sender.
    pub fn handle(&self) -> ConnHandle {
        match (self.is_udp(), self.remote_addr().as_inet()) {
            (true, Some(peer)) => {
                ConnHandle::udp(self.id(), self.lp.me.clone(), self.lp.shared.id, peer)
            }
            _ => ConnHandle::new(self.id(), self.lp.me.clone(), self.lp.shared.id),
        }
    }
}

/// An IPv4-mapped IPv6 address (a v4 peer of a dual-stack socket) as the
/// IPv4 address it is.
pub(crate) fn canonical(addr: Addr) -> Addr {
    match addr {
        Addr::Inet(a) => Addr::Inet(SocketAddr::new(a.ip().to_canonical(), a.port())),
        other => other,
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

/// A connection's output, borrowed apart from its context by
/// [`Conn::split`]. Writes behave as [`Conn::write`] and
/// [`Conn::write_owned`].
pub struct Writer<'a> {
    out: OutputRef<'a>,
}

impl Writer<'_> {
    /// As [`Conn::write`].
    pub fn write(&mut self, data: &[u8]) {
        self.out.write(data);
    }

    /// As [`Conn::write_owned`].
    pub fn write_owned<B: AsRef<[u8]> + Send + 'static>(&mut self, buf: B) {
        self.out.write_chunk(chunk_of(buf));
    }

    /// Bytes queued and not yet written, as [`Conn::output_len`].
    pub fn output_len(&self) -> usize {
        self.out.pending()
    }
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("output_len", &self.output_len())
            .finish()
    }
}

impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
