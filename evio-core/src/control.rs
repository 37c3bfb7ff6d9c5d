//! [`ServerControl`]: a cheap handle to a running server, usable from any
//! thread — inside the server's own callbacks too.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::addr::ToAddr;
use crate::handle::ConnHandle;
use crate::key::ConnId;
use crate::mailbox::Msg;
use crate::shared::Shared;
use crate::Addr;

/// Controls a running server from anywhere: stop it, read its connection
/// counts, dial into it, reach its connections.
///
/// `C` is the handler's [`Context`](crate::EventHandler::Context) type (the
/// default `()` fits handlers without one), so [`dial`](ServerControl::dial)
/// takes a context the handler can use, checked when it compiles.
///
/// `Clone + Send + Sync` and cheap to clone (one `Arc`), whatever `C` is. Get it from
/// [`ServerInfo::control`](crate::ServerInfo) in `on_serving`, from
/// [`Conn::server`](crate::Conn::server) in any callback, or from
/// [`ServerHandle::control`](crate::ServerHandle::control). Holding one does
/// not keep the server running, and dropping one does nothing.
///
/// Stopping is never blocking here: [`shutdown`](ServerControl::shutdown)
/// starts the stop and returns, so it works on any thread, loop threads
/// included; [`wait`](ServerControl::wait) blocks until it is done (and
/// refuses to on the server's own loop threads).
///
/// ```no_run
/// use evio_core::{Action, Conn, EventHandler};
///
/// struct Quit;
/// impl EventHandler for Quit {
///     type Context = ();
///     fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
///         if input == b"quit\n" {
///             let server = conn.server().clone();
///             // From any thread, e.g. after some cleanup elsewhere:
///             std::thread::spawn(move || server.shutdown());
///         }
///         Action::None
///     }
/// }
/// evio_core::serve(Quit, &["tcp://127.0.0.1:7000"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ServerControl<C = ()> {
    shared: Arc<Shared>,
    // `fn() -> C`: names the context type without owning one, so the
    // control is `Send + Sync` whatever `C` is.
    context: PhantomData<fn() -> C>,
}

impl<C> Clone for ServerControl<C> {
    fn clone(&self) -> Self {
        ServerControl::new(self.shared.clone())
    }
}

impl<C> ServerControl<C> {
    pub(crate) fn new(shared: Arc<Shared>) -> ServerControl<C> {
        ServerControl {
            shared,
            context: PhantomData,
        }
    }

    /// The server's shared state (for [`upgrade`](crate::upgrade)).
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Starts stopping the server and returns at once: every loop stops,
    /// every open connection gets `on_closed`, listeners close, unix socket
    /// files are removed. During a graceful stop it cuts the drain short.
    /// Calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Starts a graceful stop (a drain) and returns at once: accepting
    /// stops now and each open connection gets
    /// [`on_drain`](crate::EventHandler::on_drain) — by default it writes
    /// its pending output and closes; a handler may keep it to its next
    /// request boundary. Whatever is still open after `timeout` is closed
    /// anyway (each connection gets `on_closed`). Called again, the earlier deadline wins; after
    /// [`shutdown`](ServerControl::shutdown) it does nothing (a stop is
    /// never turned into a drain).
    pub fn shutdown_gracefully(&self, timeout: Duration) {
        self.shared
            .begin_graceful_shutdown(Instant::now() + timeout);
    }

    /// Whether the server has been asked to stop.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// Whether a graceful stop (a drain) has begun:
    /// [`shutdown_gracefully`](ServerControl::shutdown_gracefully), or a
    /// handover to a successor ([`upgrade`](crate::upgrade)).
    pub fn is_draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// Whether every loop has stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    /// Blocks until every loop has stopped.
    ///
    /// # Errors
    /// `WouldBlock` on one of the server's own loop threads, where it would
    /// wait for itself forever.
    pub fn wait(&self) -> io::Result<()> {
        self.shared.wait_stopped()
    }

    /// `Some(error)` if waiting here would never end (on one of the
    /// server's own loop threads).
    pub(crate) fn wait_refusal(&self) -> Option<io::Error> {
        self.shared
            .id
            .refuse_on_own_loop("wait for the server")
            .err()
    }

    /// The bound addresses, in the order given to `serve`, with real ports
    /// for `:0`.
    pub fn addrs(&self) -> &[Addr] {
        &self.shared.addrs
    }

    /// How many loops (threads) serve connections.
    pub fn num_loops(&self) -> usize {
        self.shared.loops.len()
    }

    /// Connections open now over all loops (accepted and dialed; counted
    /// from accept to close).
    pub fn connections(&self) -> usize {
        self.shared.open_connections()
    }

    /// Connections open now on each loop, by loop index.
    pub fn loop_connections(&self) -> Vec<usize> {
        self.shared
            .loops
            .iter()
            .map(|l| l.open_connections())
            .collect()
    }

    /// Each loop's counters (connections, bytes, wakes, iterations, TLS
    /// handshakes), by loop index, as of each loop's last finished
    /// iteration. Counting costs the loops a few additions per event and
    /// one relaxed store per counter per iteration; reading them here costs
    /// the loops nothing.
    pub fn metrics(&self) -> Vec<crate::LoopMetrics> {
        self.shared.loops.iter().map(|l| l.metrics()).collect()
    }

    /// Opens an outbound connection with `ctx` as its context, on the loops
    /// in turn, and returns its id once the loop has taken it. `on_opened`
    /// fires when it connects; if the connect fails (at once or later) or
    /// times out, `on_closed` fires with the error instead.
    ///
    /// Inside callbacks use [`Conn::dial`](crate::Conn::dial), which does
    /// not wait for a loop.
    ///
    /// ```no_run
    /// # use evio_core::{Builder, EventHandler};
    /// # #[derive(Clone)] struct Proxy;
    /// # impl EventHandler for Proxy { type Context = u32; }
    /// let server = Builder::new().start(Proxy, &["tcp://127.0.0.1:0"])?;
    /// let id = server.control().dial("tcp://127.0.0.1:6379", 7)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// The context has the handler's type, checked when it compiles:
    ///
    /// ```compile_fail
    /// # use evio_core::{Builder, EventHandler};
    /// # #[derive(Clone)] struct Proxy;
    /// # impl EventHandler for Proxy { type Context = u32; }
    /// let server = Builder::new().start(Proxy, &["tcp://127.0.0.1:0"])?;
    /// server.control().dial("tcp://127.0.0.1:6379", "not a u32")?; // error[E0308]
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for an address that does not parse; `NotConnected` if
    /// the server has stopped; `WouldBlock` on one of the server's own loop
    /// threads.
    pub fn dial(&self, addr: impl ToAddr, ctx: C) -> io::Result<ConnId>
    where
        C: Send + 'static,
    {
        self.dial_with(
            addr,
            ctx,
            #[cfg(feature = "tls")]
            None,
        )
    }

    /// [`dial`](ServerControl::dial) that speaks TLS to `server_name` with
    /// `config` (see [`Conn::dial_tls`](crate::Conn::dial_tls)). (`tls`
    /// feature.)
    ///
    /// # Errors
    /// As [`dial`](ServerControl::dial).
    #[cfg(feature = "tls")]
    pub fn dial_tls(
        &self,
        addr: impl ToAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        ctx: C,
    ) -> io::Result<ConnId>
    where
        C: Send + 'static,
    {
        self.dial_with(addr, ctx, Some((config, server_name.to_owned())))
    }

    fn dial_with(
        &self,
        addr: impl ToAddr,
        ctx: C,
        #[cfg(feature = "tls")] tls: Option<(Arc<rustls::ClientConfig>, String)>,
    ) -> io::Result<ConnId>
    where
        C: Send + 'static,
    {
        let addr = addr.to_addr()?;
        self.shared
            .id
            .refuse_on_own_loop("dial through ServerControl (use Conn::dial)")?;
        let stopped = || io::Error::new(io::ErrorKind::NotConnected, "the server has stopped");
        let (reply, answer) = crossbeam_channel::bounded(1);
        let target = &self.shared.loops[self.shared.next_dial_loop()];
        let msg = Msg::Dial {
            addr,
            ctx: Box::new(ctx),
            reply,
            #[cfg(feature = "tls")]
            tls,
        };
        if !target.send(msg) {
            return Err(stopped());
        }
        answer.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// A handle to the connection `id` (from [`dial`](ServerControl::dial)
    /// or [`Conn::id`](crate::Conn::id)), usable from any thread. A handle to
    /// a connection that has closed reaches nothing. `None` if `id` names a
    /// loop this server does not have (an id from another server).
    pub fn conn_handle(&self, id: ConnId) -> Option<ConnHandle> {
        let remote = self.shared.loops.get(id.loop_index())?.clone();
        Some(ConnHandle::new(id, remote, self.shared.id))
    }
}

impl<C> fmt::Debug for ServerControl<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerControl")
            .field("addrs", &self.shared.addrs)
            .field("loops", &self.shared.loops.len())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}
