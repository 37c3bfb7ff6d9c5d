//! Starting a server: [`serve`], [`Builder`] and [`ServerHandle`].

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use evio_sys::{net, DefaultPoller, Poller};

use crate::addr::{self, Bound};
use crate::balance::LoadBalance;
use crate::config::Config;
use crate::handler::EventHandler;
use crate::mailbox::{Mailbox, Msg};
use crate::shared::{HandoverSocket, Shared};
use crate::Addr;

mod handle;
mod run;
pub use handle::ServerHandle;
use run::{Handlers, LoopParts, Prepared};

/// Serves `addrs` with one loop on the calling thread until a callback
/// returns [`Action::Shutdown`](crate::Action::Shutdown) or the server is
/// stopped through its [`ServerControl`](crate::ServerControl). The handler needs to be neither
/// `Clone` nor `Send`. Use [`Builder`] for more loops and settings.
///
/// # Errors
/// An address that does not parse, resolve or bind (the message names the
/// address and the cause), or a fatal poller error.
///
/// ```no_run
/// # struct Echo;
/// # impl evio_core::EventHandler for Echo { type Context = (); }
/// evio_core::serve(Echo, &["tcp://:5000", "unix:///tmp/echo.sock"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve<H: EventHandler>(handler: H, addrs: &[impl AsRef<str>]) -> io::Result<()> {
    Builder::new().prepare(addrs)?.run_one(handler)
}

/// Makes each loop's poller.
type PollerFactory<P> = Arc<dyn Fn(usize) -> io::Result<P> + Send + Sync>;

/// Configures and starts a server: number of loops, load balancing, output
/// bounds, timeouts, and the poller backend.
///
/// ```no_run
/// use evio_core::{Builder, LoadBalance, PollPoller};
/// # #[derive(Clone)] struct Echo;
/// # impl evio_core::EventHandler for Echo { type Context = (); }
/// Builder::new()
///     .num_loops(-1) // one loop per core
///     .load_balance(LoadBalance::LeastConnections)
///     .poller(|_loop| PollPoller::new()) // swap the backend in one line
///     .serve(Echo, &["tcp://:5000"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Builder<P = DefaultPoller> {
    num_loops: isize,
    config: Config,
    per_loop_listeners: bool,
    socket_activation: bool,
    /// Sockets handed over by a predecessor ([`Builder::inherit`]); taken
    /// by the first `prepare`.
    inherited: Mutex<Vec<net::Inherited>>,
    poller: PollerFactory<P>,
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("num_loops", &self.num_loops)
            .field("config", &self.config)
            .field("per_loop_listeners", &self.per_loop_listeners)
            .field("socket_activation", &self.socket_activation)
            .field("inherited", &self.inherited)
            .field("poller", &std::any::type_name::<P>())
            .finish()
    }
}

impl Default for Builder<DefaultPoller> {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder<DefaultPoller> {
    /// One loop, random balancing, the platform's best poller, a 1 MiB
    /// output high-water mark, a 10 s dial timeout, no idle timeout.
    pub fn new() -> Self {
        Builder {
            num_loops: 1,
            config: Config::default(),
            per_loop_listeners: false,
            socket_activation: true,
            inherited: Mutex::new(Vec::new()),
            poller: Arc::new(|_| DefaultPoller::new()),
        }
    }
}

impl<P: Poller + 'static> Builder<P> {
    /// Number of loops (threads): 0 or 1 runs one loop, a negative value one
    /// per available core, N runs N. Loop 0 runs on the thread that calls
    /// [`serve`](Builder::serve).
    pub fn num_loops(mut self, n: isize) -> Self {
        self.num_loops = n;
        self
    }

    /// How accepted connections are spread over loops (with the default
    /// acceptor hand-off; see [`per_loop_listeners`](Builder::per_loop_listeners)).
    pub fn load_balance(mut self, policy: LoadBalance) -> Self {
        self.config.load_balance = policy;
        self
    }

    /// Gives every loop its own listening socket for each TCP and UDP
    /// address, all bound to one port with `SO_REUSEPORT`, so each loop
    /// accepts (and receives datagrams) by itself and the kernel spreads
    /// connections over them — gnet's and nginx's `reuseport` model, for
    /// machines with many cores where one accepting thread is the limit.
    ///
    /// The kernel balances by a hash of each connection's addresses, so
    /// [`load_balance`](Builder::load_balance) does not apply and the
    /// spread is even only over many connections. Unix socket addresses
    /// stay on loop 0 (with hand-off). Off by default: loop 0 accepts every
    /// connection and hands it over, which balances exactly. No effect with
    /// one loop.
    pub fn per_loop_listeners(mut self, on: bool) -> Self {
        self.per_loop_listeners = on;
        self
    }

    /// Whether to serve the listening sockets systemd socket activation
    /// passed to the process (`LISTEN_FDS`, `LISTEN_PID`) instead of
    /// binding. On by default; nothing changes for a process started
    /// without them.
    ///
    /// Each address given to `serve` takes the passed socket bound exactly
    /// where it asks, else the next unused one of its kind (a stream socket
    /// for `tcp`/`tls`, a datagram one for `udp`, a unix stream socket for
    /// `unix`), in order: `systemd-socket-activate -l 127.0.0.1:8080 server`
    /// serves the one socket for the first TCP address whatever its port.
    /// Addresses left without one are bound as usual; passed sockets left
    /// unused are closed, with a warning. The variables are consumed (a
    /// second server of the process, or a child, sees none). With
    /// [`per_loop_listeners`](Builder::per_loop_listeners), a passed socket
    /// is accepted by loop 0, which hands connections over.
    ///
    /// ```no_run
    /// # #[derive(Clone)] struct Http;
    /// # impl evio_core::EventHandler for Http { type Context = (); }
    /// // Under systemd: `ListenStream=80` in the .socket unit, `:8080` when run by hand.
    /// evio_core::Builder::new().serve(Http, &["tcp://:8080"])?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn socket_activation(mut self, on: bool) -> Self {
        self.socket_activation = on;
        self
    }

    /// Serves these sockets, handed over by the server this process
    /// replaces ([`upgrade::Successor::take_sockets`](crate::upgrade::Successor::take_sockets)),
    /// instead of binding: each address takes every socket whose name is
    /// that address as the old server was given it (all of them: one per
    /// loop with [`per_loop_listeners`](Builder::per_loop_listeners)), or
    /// else every socket bound exactly where it asks. They are shared out
    /// over the loops in turn. A socket no address takes is closed, with a
    /// warning; an address no socket fits is bound as usual.
    ///
    /// ```no_run
    /// # #[derive(Clone)] struct H;
    /// # impl evio_core::EventHandler for H { type Context = (); }
    /// use evio_core::{upgrade::Successor, Builder};
    /// let mut successor = Successor::connect("/run/app/upgrade.sock")?;
    /// let server = Builder::new()
    ///     .inherit(successor.take_sockets())
    ///     .start(H, &["tcp://:8080"])?;
    /// successor.ready()?; // the old server stops accepting and drains
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn inherit(self, sockets: Vec<net::Inherited>) -> Self {
        self.inherited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(sockets);
        self
    }

    /// Output bound per connection: when more than `high` bytes are queued
    /// the loop stops reading that connection until the queue drains to
    /// `low` (clamped to at most `high`). Defaults: 1 MiB and 256 KiB.
    pub fn output_water_marks(mut self, high: usize, low: usize) -> Self {
        self.config.high_water = high;
        self.config.low_water = low.min(high);
        self
    }

    /// Closes connections idle (no byte read or written) for `timeout`,
    /// with `on_closed` getting a `TimedOut` error; `None` (the default)
    /// never does. Overridable per connection with
    /// [`Options::idle_timeout`](crate::Options::idle_timeout) or
    /// [`Conn::set_idle_timeout`](crate::Conn::set_idle_timeout). Costs
    /// nothing per event: timers are checked lazily when due.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long a dial may take before `on_closed` gets a `TimedOut` error
    /// (default 10 s; `None` waits for the OS).
    pub fn dial_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.dial_timeout = timeout;
        self
    }

    /// Bounds the connections the server holds open at once (accepted and
    /// dialed, over all loops). While `max` are open, each newly accepted
    /// connection is closed at once, before `on_opened` (the peer sees EOF),
    /// instead of waiting in the backlog; one warning is logged each time
    /// the limit is reached. `None` (the default): no limit but the OS's
    /// (`RLIMIT_NOFILE`; see `docs/reliability.md`).
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.config.max_connections = max;
        self
    }

    /// When accepting fails because the process is out of file descriptors,
    /// closes the longest-idle connections that the handler marked as
    /// between requests ([`Conn::set_reclaimable`](crate::Conn::set_reclaimable))
    /// — an eighth of them, 1 to 32 per loop at a time, skipping any with
    /// input waiting — and accepts again at once, so new clients are served
    /// instead of waiting for the back-off. Their `on_closed` gets an
    /// `Other` error. Off by default (accepting then pauses for 50 ms at a
    /// time until descriptors free up).
    pub fn reclaim_idle(mut self, on: bool) -> Self {
        self.config.reclaim_idle = on;
        self
    }

    /// The TLS configuration of `tls://` (`tls4://`, `tls6://`) addresses:
    /// certificates, protocol versions, ALPN, client authentication… built
    /// with rustls and the crypto provider of your choice. Needed if any
    /// address is a TLS one. (`tls` feature.)
    ///
    /// ```no_run
    /// # fn config() -> std::sync::Arc<rustls::ServerConfig> { unimplemented!() }
    /// # #[derive(Clone)] struct Echo;
    /// # impl evio_core::EventHandler for Echo { type Context = (); }
    /// evio_core::Builder::new()
    ///     .tls_config(config()) // e.g. from rustls::ServerConfig::builder()
    ///     .serve(Echo, &["tcp://:8080", "tls://:8443"])?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// How long a TLS handshake may take before the connection is closed
    /// (`on_closed` gets `TimedOut`); default 10 s, `None` for no limit.
    /// Counted from accept (or from connect, for a dial). (`tls` feature.)
    #[cfg(feature = "tls")]
    pub fn tls_handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.tls_handshake_timeout = timeout;
        self
    }

    /// Uses another poller backend: `factory(loop_index)` makes each
    /// loop's poller, on the thread that starts the server. Any [`Poller`]
    /// works — a built-in one, or a configured instance of your own (a
    /// decorator that counts calls, a fault injector).
    ///
    /// ```no_run
    /// use evio_core::{Builder, PollPoller};
    /// # struct Echo;
    /// # impl evio_core::EventHandler for Echo { type Context = (); }
    /// Builder::new()
    ///     .poller(|_loop_index| PollPoller::new())
    ///     .serve_with(|_| Echo, &["tcp://127.0.0.1:5000"])?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poller<Q, F>(self, factory: F) -> Builder<Q>
    where
        Q: Poller + 'static,
        F: Fn(usize) -> io::Result<Q> + Send + Sync + 'static,
    {
        Builder {
            num_loops: self.num_loops,
            config: self.config,
            per_loop_listeners: self.per_loop_listeners,
            socket_activation: self.socket_activation,
            inherited: self.inherited,
            poller: Arc::new(factory),
        }
    }

    fn loop_count(&self) -> usize {
        match self.num_loops {
            n if n < 0 => thread::available_parallelism().map_or(1, |n| n.get()),
            0 => 1,
            n => n as usize,
        }
    }

    /// Serves until shutdown. Loop 0 (on this thread) gets `handler`, other
    /// loops clones; use [`serve_with`](Builder::serve_with) for a handler
    /// that is not `Clone` or `Send`.
    ///
    /// # Errors
    /// A bad or unbindable address (named in the message), a poller that
    /// cannot be created, a fatal poller error, or a loop that panicked.
    pub fn serve<H>(self, handler: H, addrs: &[impl AsRef<str>]) -> io::Result<()>
    where
        H: EventHandler + Clone + Send,
    {
        let prepared = self.prepare(addrs)?;
        let handlers = Handlers::cloned(handler, prepared.loops.len());
        prepared.run(|i| handlers.take(i))
    }

    /// Serves until shutdown, building each loop's handler on that loop's
    /// thread with `factory(loop_index)`; the handler need not be `Clone`
    /// or `Send`.
    ///
    /// # Errors
    /// As [`serve`](Builder::serve).
    pub fn serve_with<H, F>(self, factory: F, addrs: &[impl AsRef<str>]) -> io::Result<()>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Sync,
    {
        self.prepare(addrs)?.run(factory)
    }

    /// Binds every address, then serves on background threads and returns
    /// at once with a handle to stop the server. Loop 0 gets `handler`,
    /// other loops clones.
    ///
    /// ```no_run
    /// # #[derive(Clone)] struct Echo;
    /// # impl evio_core::EventHandler for Echo { type Context = (); }
    /// let server = evio_core::Builder::new().start(Echo, &["tcp://127.0.0.1:0"])?;
    /// println!("listening on {}", server.addrs()[0]);
    /// server.shutdown()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`serve`](Builder::serve), for everything that happens before
    /// serving starts.
    pub fn start<H>(
        self,
        handler: H,
        addrs: &[impl AsRef<str>],
    ) -> io::Result<ServerHandle<H::Context>>
    where
        H: EventHandler + Clone + Send + 'static,
    {
        let prepared = self.prepare(addrs)?;
        let handlers = Handlers::cloned(handler, prepared.loops.len());
        prepared.spawn(move |i| handlers.take(i))
    }

    /// [`start`](Builder::start) with a factory, as
    /// [`serve_with`](Builder::serve_with): each loop's handler is built on
    /// its own thread and need not be `Clone` or `Send`.
    ///
    /// # Errors
    /// As [`start`](Builder::start).
    pub fn start_with<H, F>(
        self,
        factory: F,
        addrs: &[impl AsRef<str>],
    ) -> io::Result<ServerHandle<H::Context>>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.prepare(addrs)?.spawn(factory)
    }

    fn prepare(&self, addrs: &[impl AsRef<str>]) -> io::Result<Prepared<P>> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to serve",
            ));
        }
        let specs = addrs
            .iter()
            .map(|a| addr::parse(a.as_ref()))
            .collect::<io::Result<Vec<_>>>()?;
        #[cfg(feature = "tls")]
        if let (Some(s), None) = (specs.iter().find(|s| s.tls), &self.config.tls) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is a TLS address: give the server a rustls config with Builder::tls_config", s.original),
            ));
        }
        let n = self.loop_count();
        let copies = if self.per_loop_listeners { n } else { 1 };
        // Bound in order; on a failure, what was bound is dropped again (and
        // unix socket files removed).
        let mut inherited = if self.socket_activation {
            net::take_activation_sockets()?
        } else {
            Vec::new()
        };
        let mut handed =
            std::mem::take(&mut *self.inherited.lock().unwrap_or_else(|e| e.into_inner()));
        let mut per_addr = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            // A handed-over socket goes by the address the old server was
            // given (`tcp://:0` finds its socket again), or else by where
            // it is bound (a port given now that was `:0` then); every copy
            // is taken.
            let named = |sock: &net::Inherited| sock.name.as_deref() == Some(&*s.original);
            let by_name = handed.iter().any(named);
            let (mine, rest): (Vec<_>, Vec<_>) = handed.into_iter().partition(|sock| {
                s.can_adopt(sock)
                    && if by_name {
                        named(sock)
                    } else {
                        s.is_exactly(sock)
                    }
            });
            handed = rest;
            if !mine.is_empty() {
                tracing::info!(addr = %s.original, sockets = mine.len(), "evio: serving sockets handed over by the old server");
                let local = mine.len() > 1;
                let bound = mine
                    .into_iter()
                    .map(|sock| {
                        let mut b = s.adopt(i, sock)?;
                        b.local = local;
                        // The socket file is this server's now: removed
                        // when it stops (unless it hands over in turn).
                        if let Addr::Unix(Some(path)) = &b.addr {
                            b.unix_path = Some(path.clone());
                        }
                        Ok(b)
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                per_addr.push(bound);
                continue;
            }
            let exact = inherited.iter().position(|sock| s.is_exactly(sock));
            let pick = exact.or_else(|| inherited.iter().position(|sock| s.can_adopt(sock)));
            match pick {
                Some(k) => {
                    let sock = inherited.remove(k);
                    tracing::info!(addr = %s.original, local = %sock.addr, "evio: serving a socket passed by the service manager");
                    per_addr.push(vec![s.adopt(i, sock)?]);
                }
                None => per_addr.push(s.bind(i, copies)?),
            }
        }
        for sock in inherited {
            tracing::warn!(local = %sock.addr, name = ?sock.name, "evio: a socket passed by the service manager matches no address; closing it");
        }
        for sock in handed {
            tracing::warn!(local = %sock.addr, name = ?sock.name, "evio: a socket handed over by the old server matches no address; closing it");
        }
        let addrs: Vec<Addr> = per_addr.iter().map(|b| b[0].addr.clone()).collect();
        let handover = per_addr
            .iter()
            .enumerate()
            .flat_map(|(i, bound)| {
                let name = &specs[i].original;
                bound.iter().map(move |b| HandoverSocket {
                    name: name.clone(),
                    fd: b.fd.clone(),
                    stream: !b.network.is_udp(),
                })
            })
            .collect();
        let mut listeners: Vec<Vec<Bound>> = (0..n).map(|_| Vec::new()).collect();
        for bound in per_addr {
            for (k, b) in bound.into_iter().enumerate() {
                listeners[k % n].push(b);
            }
        }
        let mut loops = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        for (i, own) in listeners.into_iter().enumerate() {
            let poller = (self.poller)(i).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("creating the poller of loop {i} of {n}: {e}"),
                )
            })?;
            let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
            remotes.push(Arc::new(Mailbox::new(tx, poller.waker())));
            loops.push(LoopParts {
                poller,
                rx,
                listeners: own,
            });
        }
        let shared = Arc::new(Shared::new(remotes, addrs, self.config.clone(), handover));
        Ok(Prepared { loops, shared })
    }
}
