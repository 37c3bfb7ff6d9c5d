//! The user's side of the loop: [`EventHandler`], [`Action`], [`Options`]
//! and [`ServerInfo`].

use std::io;
use std::time::Duration;

use crate::conn::Conn;
use crate::control::ServerControl;
use crate::detached::DetachedStream;
use crate::Addr;

/// What the loop does after a callback returns.
///
/// ```
/// use evio_core::Action;
/// assert_eq!(Action::default(), Action::None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[must_use = "an Action tells the loop what to do next"]
#[non_exhaustive]
pub enum Action {
    /// Nothing: keep serving.
    #[default]
    None,
    /// Flush all pending output, close the connection, then fire
    /// [`EventHandler::on_closed`]. Reading stops at once.
    Close,
    /// Flush all pending output, remove the connection from the loop and
    /// hand its socket to [`EventHandler::on_detached`] as a blocking std
    /// stream. `on_closed` never fires for it. Ignored for UDP.
    Detach,
    /// Stop the whole server: every loop stops, every open connection gets
    /// `on_closed`, listeners close, unix socket files are removed, and
    /// [`serve`](crate::serve) returns `Ok(())`.
    Shutdown,
}

/// Per-connection settings returned from [`EventHandler::on_opened`].
///
/// Build it from the default with the setters:
///
/// ```
/// use evio_core::Options;
/// use std::time::Duration;
/// let opts = Options::default()
///     .tcp_keep_alive(Some(Duration::from_secs(60)))
///     .idle_timeout(Some(Duration::from_secs(300)));
/// assert!(opts.tcp_no_delay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Enable `SO_KEEPALIVE`, probing after this much silence and at this
    /// interval (whole seconds, at least 1). `None` (the default) leaves it off.
    pub tcp_keep_alive: Option<Duration>,
    /// Set `TCP_NODELAY` (on by default: an event loop batches its own
    /// writes, so Nagle's algorithm only adds latency).
    pub tcp_no_delay: bool,
    /// Close the connection (with `on_closed` getting a `TimedOut` error)
    /// after this long without a byte read or written. `None` keeps the
    /// server's default ([`Builder::idle_timeout`](crate::Builder::idle_timeout)).
    pub idle_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tcp_keep_alive: None,
            tcp_no_delay: true,
            idle_timeout: None,
        }
    }
}

impl Options {
    /// Sets [`tcp_keep_alive`](Options::tcp_keep_alive).
    pub fn tcp_keep_alive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keep_alive = idle;
        self
    }

    /// Sets [`tcp_no_delay`](Options::tcp_no_delay).
    pub fn tcp_no_delay(mut self, on: bool) -> Self {
        self.tcp_no_delay = on;
        self
    }

    /// Sets [`idle_timeout`](Options::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

/// What [`EventHandler::on_serving`] learns about the running server.
///
/// `C` is the handler's [`Context`](EventHandler::Context) type, as in
/// [`ServerControl`].
#[non_exhaustive]
pub struct ServerInfo<C = ()> {
    /// The bound addresses, in the order given to `serve`, with real ports
    /// for `:0`.
    pub addrs: Vec<Addr>,
    /// How many loops (threads) serve connections.
    pub num_loops: usize,
    /// Stops the server, counts its connections, dials into it — from any
    /// thread; keep a clone.
    pub control: ServerControl<C>,
}

// By hand: derived impls would ask `C: Clone` / `C: Debug`, which the info
// (holding no context) does not need.
impl<C> Clone for ServerInfo<C> {
    fn clone(&self) -> Self {
        ServerInfo {
            addrs: self.addrs.clone(),
            num_loops: self.num_loops,
            control: self.control.clone(),
        }
    }
}

impl<C> std::fmt::Debug for ServerInfo<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerInfo")
            .field("addrs", &self.addrs)
            .field("num_loops", &self.num_loops)
            .field("control", &self.control)
            .finish()
    }
}

/// The callbacks of a server. Every method has a no-op default, so a handler
/// implements only what it needs.
///
/// # Handlers and loops
///
/// Each loop owns **one handler value** and calls it with `&mut self`, so a
/// single-loop server needs no `Mutex` at all: keep state in the handler.
/// [`Builder::serve`](crate::Builder::serve) gives loop 0 the handler and
/// every other loop a clone; [`Builder::serve_with`](crate::Builder::serve_with)
/// builds one per loop from a factory instead. State shared between loops is
/// whatever the user puts behind an `Arc`.
///
/// Server-wide events fire on loop 0 only: `on_serving` once, `on_tick`
/// repeatedly. `on_loop_tick` fires on every loop. Connection events fire
/// on the loop that owns the connection.
///
/// Callbacks must not block: the loop serves every other connection of
/// its thread in between. Calls that would wait for the loop itself (a
/// [`WriteReceipt`](crate::WriteReceipt), [`ServerControl::wait`]) return an
/// error there instead of hanging.
///
/// # Example
///
/// ```no_run
/// use evio_core::{Action, Conn, EventHandler};
///
/// struct Echo;
///
/// impl EventHandler for Echo {
///     type Context = ();
///     fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
///         conn.write(input);
///         Action::None
///     }
/// }
///
/// evio_core::serve(Echo, &["tcp://127.0.0.1:5000"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait EventHandler {
    /// Per-connection state, created with `Default` when a connection opens
    /// (and for each UDP datagram) and readable until `on_closed`.
    type Context: Default + 'static;

    /// Fires once, on loop 0, after every address is bound and before any
    /// connection is served. Returning [`Action::Shutdown`] stops the server
    /// at once.
    fn on_serving(&mut self, server: &ServerInfo<Self::Context>) -> Action {
        let _ = server;
        Action::None
    }

    /// Fires once per accepted stream connection, before its first
    /// `on_data`, and once per dialed connection when it connects. Write a
    /// greeting with [`Conn::write`]; return options for the socket and an
    /// action.
    fn on_opened(&mut self, conn: &mut Conn<'_, Self::Context>) -> (Options, Action) {
        let _ = conn;
        (Options::default(), Action::None)
    }

    /// Fires once per stream connection after it closed (its socket is
    /// already closed). `err` is `None` for EOF, a `Close` action and
    /// shutdown; the OS error for read or write failures; `TimedOut` for an
    /// idle or connect timeout. For a dialed connection whose connect failed
    /// it fires without `on_opened`. The context is still readable; writes
    /// to this connection are discarded, writes to others
    /// ([`Conn::write_to`]) work. Only [`Action::Shutdown`] has an effect.
    fn on_closed(&mut self, conn: &mut Conn<'_, Self::Context>, err: Option<io::Error>) -> Action {
        let _ = (conn, err);
        Action::None
    }

    /// Fires after a `Detach` action, once pending output is flushed, with
    /// the socket as a blocking std stream. The default drops (closes) it.
    /// Only [`Action::Shutdown`] has an effect.
    fn on_detached(
        &mut self,
        conn: &mut Conn<'_, Self::Context>,
        stream: DetachedStream,
    ) -> Action {
        let _ = (conn, stream);
        Action::None
    }

    /// Fires on a loop just before it writes queued output to a socket (as
    /// in Go's evio: before each write, so a handler can add to the output
    /// at the last moment).
    fn on_pre_write(&mut self) {}

    /// Fires for each read of input (for UDP: each datagram). `input`
    /// borrows the loop's read buffer; write replies with [`Conn::write`].
    fn on_data(&mut self, conn: &mut Conn<'_, Self::Context>, input: &[u8]) -> Action {
        let _ = (conn, input);
        Action::None
    }

    /// Fires when the peer has finished sending (its FIN: a read returned
    /// end of file); every byte it sent has been given to `on_data`.
    ///
    /// The default returns [`Action::Close`]: the output still queued is
    /// written, then the connection closes (Go evio's behaviour). Return
    /// [`Action::None`] to keep it open for writing (a half-close, e.g. a
    /// proxy forwarding the FIN with [`Conn::shutdown_write_conn`]): it
    /// then stays until it is closed, its write side is shut down with
    /// [`Conn::shutdown_write`] (both directions are then done and it
    /// closes by itself), or a timeout ends it.
    fn on_eof(&mut self, conn: &mut Conn<'_, Self::Context>) -> Action {
        let _ = conn;
        Action::Close
    }

    /// Fires when the loop has written every queued byte of a connection to
    /// its socket. Producers streaming large data write the next piece here
    /// instead of queueing it all at once; see [`Conn::output_len`].
    fn on_drained(&mut self, conn: &mut Conn<'_, Self::Context>) -> Action {
        let _ = conn;
        Action::None
    }

    /// Fires once per connection when the server starts draining
    /// ([`ServerControl::shutdown_gracefully`](crate::ServerControl::shutdown_gracefully),
    /// or after handing its listening sockets to a successor: see
    /// [`upgrade`](crate::upgrade)). Accepting has stopped; the loop goes on
    /// serving every connection not closed, until all have closed or the
    /// drain's deadline passes (then the rest are closed). A connection
    /// that opens during the drain (a dial connecting, a TLS handshake
    /// finishing, one accepted just before the listeners stopped) gets it
    /// right after its `on_opened`.
    ///
    /// The default returns [`Action::Close`]: the output still queued is
    /// written, then the connection closes. A protocol with request
    /// boundaries does better: return [`Action::None`] and close at the
    /// next boundary (an HTTP server answers the next request with
    /// `Connection: close`); [`Conn::is_draining`] tells later callbacks.
    ///
    /// ```
    /// use evio_core::{Action, Conn, EventHandler};
    /// struct Lines;
    /// impl EventHandler for Lines {
    ///     type Context = ();
    ///     fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
    ///         conn.write(input);
    ///         // A whole line answered: a boundary, where a drain may close.
    ///         if conn.is_draining() && input.ends_with(b"\n") {
    ///             return Action::Close;
    ///         }
    ///         Action::None
    ///     }
    ///     fn on_drain(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
    ///         Action::None // finish the line in progress first
    ///     }
    /// }
    /// ```
    fn on_drain(&mut self, conn: &mut Conn<'_, Self::Context>) -> Action {
        let _ = conn;
        Action::Close
    }

    /// Fires on the connection's loop after [`ConnHandle::wake`](crate::ConnHandle::wake).
    /// The default calls `on_data` with empty input, as Go's evio does.
    fn on_wake(&mut self, conn: &mut Conn<'_, Self::Context>) -> Action {
        self.on_data(conn, &[])
    }

    /// Fires on the connection's loop when the timer set with
    /// [`Conn::set_timer`] expires.
    fn on_timer(&mut self, conn: &mut Conn<'_, Self::Context>) -> Action {
        let _ = conn;
        Action::None
    }

    /// Fires on loop 0 right after `on_serving`, then again after each
    /// returned delay; `None` stops ticking. The default never ticks again.
    /// Only [`Action::Shutdown`] has an effect.
    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        (None, Action::None)
    }

    /// Fires on **every** loop (`loop_index` says which) when it starts,
    /// then again after each returned delay; `None` stops it. For per-loop
    /// housekeeping (expiring a loop's own state, a cached clock). The
    /// default never fires again. Only [`Action::Shutdown`] has an effect.
    fn on_loop_tick(&mut self, loop_index: usize) -> (Option<Duration>, Action) {
        let _ = loop_index;
        (None, Action::None)
    }
}
