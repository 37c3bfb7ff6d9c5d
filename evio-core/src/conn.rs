//! A connection as handlers see it ([`Conn`]), its identity ([`ConnId`]),
//! its cross-thread handle ([`ConnHandle`]) and the stream a detach hands
//! over ([`DetachedStream`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use evio_sys::net;
use slab::Slab;

use crate::event_loop::{flags, ConnKey, ConnState, LoopLocal, LoopRemote, Msg, Shared};
use crate::Addr;

/// Drained output buffers kept for reuse per loop (see `LoopLocal::spare_out`).
const MAX_SPARE_OUTPUTS: usize = 64;
/// Output buffers larger than this are freed once drained rather than
/// pooled, so a burst does not pin its memory.
const KEEP_OUTPUT_CAPACITY: usize = 16 * 1024;

/// Bytes queued for a socket: `buf[pos..]` is still to be written.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
}

impl Output {
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Called once the output is fully written: gives the buffer back to
    /// the loop's pool (or frees it, if a burst made it large), so an idle
    /// connection holds no output memory.
    pub(crate) fn recycle(&mut self, spare: &mut Vec<Vec<u8>>) {
        self.pos = 0;
        if self.buf.capacity() > KEEP_OUTPUT_CAPACITY {
            self.buf = Vec::new();
        } else if self.buf.capacity() > 0 && spare.len() < MAX_SPARE_OUTPUTS {
            self.buf.clear();
            spare.push(std::mem::take(&mut self.buf));
        } else {
            self.buf.clear();
        }
    }

    /// Borrows a drained buffer from the loop's pool if this connection
    /// holds none, so writes land in recently used (cache-hot) memory.
    #[inline]
    pub(crate) fn lend(&mut self, spare: &mut Vec<Vec<u8>>) {
        if self.buf.capacity() == 0 {
            if let Some(b) = spare.pop() {
                self.buf = b;
            }
        }
    }
}

/// Names one connection of a loop for as long as it lives; never matches a
/// later connection that reuses its slot or fd number.
///
/// Get it with [`Conn::id`]; use it with [`Conn::write_to`] and
/// [`Conn::close_conn`] to act on another connection of the same loop (a
/// proxy's other half).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) ConnKey);

/// A connection, lent to a callback.
///
/// A view of the loop's connection table, cheap to build and valid for the
/// callback only. Besides its own connection it can reach the other
/// connections of its loop by [`ConnId`] and dial new ones. For UDP it stands
/// for one datagram: `remote_addr` is the sender and everything written is
/// sent back as one datagram.
pub struct Conn<'a, C> {
    pub(crate) conns: &'a mut Slab<ConnState<C>>,
    pub(crate) index: usize,
    pub(crate) local: &'a mut LoopLocal,
    pub(crate) shared: &'a Shared,
    pub(crate) me: &'a Arc<LoopRemote>,
}

impl<C> Conn<'_, C> {
    fn state(&self) -> &ConnState<C> {
        &self.conns[self.index]
    }

    fn state_mut(&mut self) -> &mut ConnState<C> {
        &mut self.conns[self.index]
    }

    fn key(&self) -> ConnKey {
        ConnKey::new(self.index, self.state().gen)
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        ConnId(self.key())
    }

    /// The per-connection context.
    pub fn context(&self) -> &C {
        &self.state().ctx
    }

    /// The per-connection context, mutably.
    pub fn context_mut(&mut self) -> &mut C {
        &mut self.state_mut().ctx
    }

    /// Replaces the per-connection context.
    pub fn set_context(&mut self, ctx: C) {
        self.state_mut().ctx = ctx;
    }

    /// Which of the addresses given to `serve` accepted this connection
    /// (`usize::MAX` for a dialed connection).
    pub fn addr_index(&self) -> usize {
        match self.state().listener {
            u32::MAX => usize::MAX,
            i => i as usize,
        }
    }

    /// Whether this connection was made by [`Conn::dial`] or
    /// [`ServerHandle::dial`](crate::ServerHandle::dial).
    pub fn is_dialed(&self) -> bool {
        self.state().listener == u32::MAX
    }

    /// The connection's local socket address (one `getsockname` call); the
    /// listener's address if the socket is already closed.
    pub fn local_addr(&self) -> Addr {
        let s = self.state();
        s.fd.as_ref()
            .and_then(|fd| net::local_addr(fd).ok())
            .or_else(|| self.shared.addrs.get(s.listener as usize).cloned())
            .unwrap_or(Addr::Unix(None))
    }

    /// The peer's address; for UDP, the datagram's sender.
    pub fn remote_addr(&self) -> &Addr {
        &self.state().remote
    }

    /// The socket, for options evio does not wrap (`None` once closed and
    /// for UDP datagrams).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.state().fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether this is a UDP datagram rather than a stream connection.
    pub fn is_udp(&self) -> bool {
        self.state().flags & flags::UDP != 0
    }

    /// Appends `data` to the connection's output. The loop writes it after
    /// the callback returns (after
    /// [`EventHandler::on_pre_write`](crate::EventHandler::on_pre_write)).
    /// Never blocks; when more than the high-water mark is queued the loop
    /// stops reading this connection until the output drains.
    pub fn write(&mut self, data: &[u8]) {
        let index = self.index;
        let c = &mut self.conns[index];
        c.out.lend(&mut self.local.spare_out);
        c.out.buf.extend_from_slice(data);
        self.local.mark_dirty(index, c);
    }

    /// Bytes queued and not yet written to the socket.
    pub fn output_len(&self) -> usize {
        self.state().out.pending()
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
        let me = self.key();
        let high = self.shared.config.high_water;
        let Some(p) = self.conns.get_mut(peer.0.index()) else {
            return false;
        };
        if p.gen != peer.0.gen() || p.flags & (flags::CLOSING | flags::DETACHING) != 0 {
            return false;
        }
        p.out.lend(&mut self.local.spare_out);
        p.out.buf.extend_from_slice(data);
        if peer.0 != me {
            p.flags |= flags::PEER_FED;
        }
        self.local.mark_dirty(peer.0.index(), p);
        if p.out.pending() > high && peer.0 != me {
            // PEER_PAUSED (not READ_PAUSED, which only our own flush
            // clears): the peer's flush resumes every writer it paused.
            if !p.waiters.contains(&me) {
                p.waiters.push(me);
            }
            self.state_mut().flags |= flags::PEER_PAUSED;
        }
        true
    }

    /// Bytes queued on another connection of this loop, or `None` if it is
    /// gone.
    pub fn output_len_of(&self, peer: ConnId) -> Option<usize> {
        self.conns
            .get(peer.0.index())
            .filter(|p| p.gen == peer.0.gen())
            .map(|p| p.out.pending())
    }

    /// Closes another connection of this loop after its pending output is
    /// written (like returning [`Action::Close`](crate::Action::Close) from
    /// its own callback). Returns `false` if it is already gone.
    pub fn close_conn(&mut self, peer: ConnId) -> bool {
        let Some(p) = self.conns.get_mut(peer.0.index()) else {
            return false;
        };
        if p.gen != peer.0.gen() {
            return false;
        }
        p.flags |= flags::CLOSING;
        self.local.mark_dirty(peer.0.index(), p);
        true
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
        let fd = match addr {
            Addr::Inet(a) => net::tcp_connect(*a)?,
            Addr::Unix(Some(path)) => net::unix_connect(path)?,
            Addr::Unix(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot dial an unnamed unix address",
                ))
            }
        };
        let unix = matches!(addr, Addr::Unix(_));
        let index = self
            .local
            .insert_dialed(self.conns, fd, addr.clone(), unix, ctx);
        self.me
            .conns
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(ConnId(ConnKey::new(index, self.conns[index].gen)))
    }

    /// Overrides the server's idle timeout for this connection: it is
    /// closed, with `on_closed` getting a `TimedOut` error, after this long
    /// without reading or writing a byte. `None` disables it.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        let index = self.index;
        let c = &mut self.conns[index];
        self.local.set_idle_timeout(index, c, timeout);
    }

    /// A handle to this connection usable from any thread; see
    /// [`ConnHandle`].
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            key: self.key(),
            remote: self.me.clone(),
        }
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

/// Reaches one connection from any thread: write to it, close it, wake it.
///
/// `Send + Sync + Clone`. Everything goes through the loop's wake channel,
/// in order per sending thread; wake-ups coalesce, so a burst of messages
/// costs the loop one eventfd write. A handle to a connection that has
/// closed reaches nothing, even if its slot or fd number was reused.
///
/// The channel is unbounded and handle writes do not block: a thread that
/// produces faster than the peer reads paces itself on its receipts (wait
/// for one every N writes), as the example below does for every write.
///
/// ```no_run
/// use evio_core::{Action, Conn, EventHandler, Options};
///
/// #[derive(Clone)]
/// struct Clock;
/// impl EventHandler for Clock {
///     type Context = ();
///     fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
///         let handle = conn.handle();
///         std::thread::spawn(move || loop {
///             std::thread::sleep(std::time::Duration::from_secs(1));
///             // Written in order after whatever the connection had queued.
///             if handle.write(b"tick\n".to_vec()).wait().is_err() {
///                 return; // the connection closed
///             }
///         });
///         (Options::default(), Action::None)
///     }
/// }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    key: ConnKey,
    remote: Arc<LoopRemote>,
}

impl ConnHandle {
    /// Queues a wake: the connection's loop calls
    /// [`EventHandler::on_wake`](crate::EventHandler::on_wake) (by default
    /// `on_data` with empty input). Never touches pending output or a
    /// pending close; a wake for a closed or closing connection is dropped.
    /// Returns `false` if the server has stopped.
    pub fn wake(&self) -> bool {
        self.remote.send(Msg::Wake(self.key))
    }

    /// Queues `data` for the connection, after whatever it already queued.
    /// The receipt completes `Ok` once every byte is written to the socket,
    /// or with the error if the connection closes first (or has closed, or
    /// the server has stopped). Each write gets exactly one result.
    pub fn write(&self, data: impl Into<Vec<u8>>) -> WriteReceipt {
        let receipt = WriteReceipt::new();
        let msg = Msg::Write {
            key: self.key,
            data: data.into(),
            receipt: PendingReceipt(receipt.clone()),
        };
        if !self.remote.send(msg) {
            receipt.complete(Err(io::ErrorKind::NotConnected));
        }
        receipt
    }

    /// Closes the connection after its pending output is written. Returns
    /// `false` if the server has stopped.
    pub fn close(&self) -> bool {
        self.remote.send(Msg::Close(self.key))
    }

    /// The connection's id, for comparing with [`Conn::id`].
    pub fn id(&self) -> ConnId {
        ConnId(self.key)
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("key", &self.key)
            .finish()
    }
}

/// The result slot of a receipt and the condition variable its waiters use.
type ReceiptSlot = (Mutex<Option<Result<(), io::ErrorKind>>>, Condvar);

/// The outcome of a [`ConnHandle::write`], observable from any thread.
#[derive(Clone)]
pub struct WriteReceipt {
    inner: Arc<ReceiptSlot>,
}

impl WriteReceipt {
    fn new() -> WriteReceipt {
        WriteReceipt {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    /// Sets the result once; later calls are ignored.
    pub(crate) fn complete(&self, result: Result<(), io::ErrorKind>) {
        let mut slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(result);
            self.inner.1.notify_all();
        }
    }

    fn to_io(r: Result<(), io::ErrorKind>) -> io::Result<()> {
        r.map_err(|kind| io::Error::new(kind, "connection closed before the write completed"))
    }

    /// The result if known.
    pub fn try_result(&self) -> Option<io::Result<()>> {
        let slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.map(Self::to_io)
    }

    /// Blocks until the result is known.
    ///
    /// # Errors
    /// The error that closed the connection (or `NotConnected` if it was
    /// already gone) before every byte was written.
    pub fn wait(&self) -> io::Result<()> {
        let mut slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = *slot {
                return Self::to_io(r);
            }
            slot = self.inner.1.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks at most `timeout`; `None` if the result is still unknown.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<io::Result<()>> {
        let slot = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        let (slot, _) = self
            .inner
            .1
            .wait_timeout_while(slot, timeout, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        slot.map(Self::to_io)
    }
}

/// The loop's copy of a [`WriteReceipt`]. Dropped without a result (a
/// message still in the channel of a loop that has ended, a connection
/// removed without `close`), it fails the write with `NotConnected`, so no
/// write ever goes without a result.
pub(crate) struct PendingReceipt(WriteReceipt);

impl PendingReceipt {
    /// Sets the result once; later calls are ignored.
    pub(crate) fn complete(&self, result: Result<(), io::ErrorKind>) {
        self.0.complete(result);
    }
}

impl Drop for PendingReceipt {
    fn drop(&mut self) {
        self.0.complete(Err(io::ErrorKind::NotConnected));
    }
}

impl fmt::Debug for WriteReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteReceipt")
            .field("result", &self.try_result())
            .finish()
    }
}

/// A detached connection: a blocking std stream, now the user's to read,
/// write and close (dropping it closes the socket).
#[derive(Debug)]
pub enum DetachedStream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix stream connection.
    Unix(UnixStream),
}

impl DetachedStream {
    pub(crate) fn new(fd: OwnedFd, unix: bool) -> io::Result<DetachedStream> {
        net::set_nonblocking(&fd, false)?;
        Ok(if unix {
            DetachedStream::Unix(UnixStream::from(fd))
        } else {
            DetachedStream::Tcp(TcpStream::from(fd))
        })
    }
}

impl AsFd for DetachedStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DetachedStream::Tcp(s) => s.as_fd(),
            DetachedStream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for DetachedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.read(buf),
            DetachedStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for DetachedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DetachedStream::Tcp(s) => s.write(buf),
            DetachedStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
