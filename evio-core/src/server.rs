//! Starting a server: [`serve`], [`Builder`], [`ServerHandle`] and the
//! load balancer.

use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use evio_sys::{DefaultPoller, Poller};

use crate::addr::{self, Bound};
use crate::event_loop::{EventLoop, LoopRemote, Msg, Shared};
use crate::handler::EventHandler;
use crate::Addr;

/// How accepted connections are spread over loops (only matters with more
/// than one loop).
///
/// Loop 0 accepts every connection and hands it to the chosen loop over
/// that loop's wake channel, so exactly one loop wakes per connection (no
/// thundering herd) and the policy is exact. The cost is one channel send
/// and at most one eventfd write per batch of accepts for another loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LoadBalance {
    /// A pseudo-random loop for each connection.
    #[default]
    Random,
    /// Loops in turn: with N loops, connection k goes to loop k mod N.
    RoundRobin,
    /// A loop with the fewest open connections (ties go round-robin).
    LeastConnections,
}

/// Server-wide settings the loops read.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) load_balance: LoadBalance,
    pub(crate) high_water: usize,
    pub(crate) low_water: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) dial_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
}

/// Picks the loop for each accepted connection. Lives in loop 0 (the only
/// acceptor), so it needs no atomics of its own.
pub(crate) struct Balancer {
    policy: LoadBalance,
    next: usize,
    rng: u64,
}

impl Balancer {
    pub(crate) fn new(policy: LoadBalance, seed: usize) -> Balancer {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Balancer {
            policy,
            next: 0,
            rng: (t ^ (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        }
    }

    pub(crate) fn pick(&mut self, loops: &[Arc<LoopRemote>]) -> usize {
        let n = loops.len();
        if n <= 1 {
            return 0;
        }
        match self.policy {
            LoadBalance::Random => {
                // xorshift64*: plenty for spreading connections.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
            }
            LoadBalance::RoundRobin => {
                let i = self.next % n;
                self.next = self.next.wrapping_add(1);
                i
            }
            LoadBalance::LeastConnections => {
                let start = self.next % n;
                self.next = self.next.wrapping_add(1);
                let mut best = start;
                let mut best_count = usize::MAX;
                for k in 0..n {
                    let i = (start + k) % n;
                    let count = loops[i].conns.load(Ordering::Acquire);
                    if count < best_count {
                        best = i;
                        best_count = count;
                    }
                }
                best
            }
        }
    }
}

/// Serves `addrs` with one loop on the calling thread until a callback
/// returns [`Action::Shutdown`](crate::Action::Shutdown).
///
/// Equivalent to `Builder::new().serve(handler, addrs)`.
///
/// # Errors
/// An address that does not parse, resolve or bind (the message names the
/// address and the cause), or a fatal poller error.
///
/// ```no_run
/// # #[derive(Clone)] struct Echo;
/// # impl evio_core::EventHandler for Echo { type Context = (); }
/// evio_core::serve(Echo, &["tcp://:5000", "unix:///tmp/echo.sock"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve<H>(handler: H, addrs: &[impl AsRef<str>]) -> io::Result<()>
where
    H: EventHandler + Clone + Send,
{
    Builder::new().serve(handler, addrs)
}

/// Configures and starts a server: number of loops, load balancing, output
/// bounds and the poller backend.
///
/// ```no_run
/// use evio_core::{Builder, LoadBalance, PollPoller};
/// # #[derive(Clone)] struct Echo;
/// # impl evio_core::EventHandler for Echo { type Context = (); }
/// Builder::new()
///     .num_loops(-1) // one loop per core
///     .load_balance(LoadBalance::LeastConnections)
///     .poller::<PollPoller>() // swap the backend in one line
///     .serve(Echo, &["tcp://:5000"])?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Builder<P = DefaultPoller> {
    num_loops: isize,
    config: Config,
    poller: PhantomData<fn() -> P>,
}

impl Default for Builder<DefaultPoller> {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder<DefaultPoller> {
    /// One loop, random balancing, the platform's best poller, a 1 MiB
    /// output high-water mark.
    pub fn new() -> Self {
        Builder {
            num_loops: 1,
            config: Config {
                load_balance: LoadBalance::Random,
                high_water: 1024 * 1024,
                low_water: 256 * 1024,
                idle_timeout: None,
                dial_timeout: Some(Duration::from_secs(10)),
                max_connections: None,
            },
            poller: PhantomData,
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

    /// How accepted connections are spread over loops.
    pub fn load_balance(mut self, policy: LoadBalance) -> Self {
        self.config.load_balance = policy;
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

    /// Uses another poller backend, e.g. `.poller::<PollPoller>()`.
    pub fn poller<Q: Poller + 'static>(self) -> Builder<Q> {
        Builder {
            num_loops: self.num_loops,
            config: self.config,
            poller: PhantomData,
        }
    }

    fn loop_count(&self) -> usize {
        match self.num_loops {
            n if n < 0 => thread::available_parallelism().map_or(1, |n| n.get()),
            0 => 1,
            n => n as usize,
        }
    }

    /// Serves until shutdown. Loop 0 gets `handler`, other loops clones.
    ///
    /// # Errors
    /// A bad or unbindable address (named in the message), a poller that
    /// cannot be created, a fatal poller error, or a loop that panicked.
    pub fn serve<H>(self, handler: H, addrs: &[impl AsRef<str>]) -> io::Result<()>
    where
        H: EventHandler + Clone + Send,
    {
        let prepared = self.prepare(addrs)?;
        let handlers = clones(handler, prepared.loops.len());
        prepared.run(|i| take(&handlers, i))
    }

    /// Serves until shutdown, building each loop's handler on that loop's
    /// thread with `factory(loop_index)`; the handler need not be `Send`.
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
    /// at once with a handle to stop the server.
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
    pub fn start<H>(self, handler: H, addrs: &[impl AsRef<str>]) -> io::Result<ServerHandle>
    where
        H: EventHandler + Clone + Send + 'static,
    {
        let prepared = self.prepare(addrs)?;
        let shared = prepared.shared.clone();
        let addrs = shared.addrs.clone();
        let handlers = clones(handler, prepared.loops.len());
        let thread = thread::Builder::new()
            .name("evio-loop-0".into())
            .spawn(move || prepared.run(|i| take(&handlers, i)))?;
        Ok(ServerHandle {
            shared,
            addrs,
            dials: Default::default(),
            thread: Mutex::new(Some(thread)),
        })
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
        let listeners = specs
            .iter()
            .map(|s| s.bind())
            .collect::<io::Result<Vec<Bound>>>()?;
        let n = self.loop_count();
        let mut pollers = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let poller = new_poller::<P>()?; // TEMP(core rewrite)
            let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
            remotes.push(Arc::new(LoopRemote::new(tx, poller.waker())));
            pollers.push(poller);
            receivers.push(rx);
        }
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            drain_deadline: Mutex::new(None),
            loops: remotes,
            addrs: listeners.iter().map(|l| l.addr.clone()).collect(),
            config: self.config.clone(),
        });
        Ok(Prepared {
            unix_paths: listeners
                .iter()
                .filter_map(|l| l.unix_path.clone())
                .collect(),
            loops: pollers.into_iter().zip(receivers).collect(),
            listeners,
            shared,
        })
    }
}

// TEMP(core rewrite): `Poller` lost its `new()`; until the rewrite passes a
// constructor through the builder, build the built-in backends by type.
fn new_poller<P: Poller + 'static>() -> io::Result<P> {
    use std::any::{Any, TypeId};
    let poller: Box<dyn Any> = if TypeId::of::<P>() == TypeId::of::<DefaultPoller>() {
        Box::new(DefaultPoller::new()?)
    } else if TypeId::of::<P>() == TypeId::of::<evio_sys::PollPoller>() {
        Box::new(evio_sys::PollPoller::new()?)
    } else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "evio: this poller has no known constructor (only the built-in backends for now)",
        ));
    };
    Ok(*poller.downcast::<P>().expect("the TypeId matched"))
}

fn clones<H: Clone>(handler: H, n: usize) -> Vec<Mutex<Option<H>>> {
    let mut v: Vec<Mutex<Option<H>>> = (1..n).map(|_| Mutex::new(Some(handler.clone()))).collect();
    v.insert(0, Mutex::new(Some(handler)));
    v
}

fn take<H>(handlers: &[Mutex<Option<H>>], i: usize) -> H {
    handlers[i]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("each loop takes its handler once")
}

/// Everything bound and created before the loops start.
struct Prepared<P: Poller> {
    loops: Vec<(P, crossbeam_channel::Receiver<Msg>)>,
    listeners: Vec<Bound>,
    shared: Arc<Shared>,
    unix_paths: Vec<PathBuf>,
}

/// Runs one loop and turns a panic in a callback into a clean server stop:
/// the other loops shut down (their connections get `on_closed`), the
/// panicking loop's connections are closed without callbacks (its handler
/// state is suspect), and `serve` returns an error naming the panic.
fn run_loop(
    index: usize,
    shared: &Shared,
    body: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            shared.begin_shutdown();
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(index, panic = %msg, "evio: a handler panicked; shutting down");
            Err(io::Error::other(format!(
                "evio: event loop {index} panicked: {msg}"
            )))
        }
    }
}

impl<P: Poller + 'static> Prepared<P> {
    fn run<H, F>(self, factory: F) -> io::Result<()>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Sync,
    {
        let Prepared {
            loops,
            listeners,
            shared,
            unix_paths,
        } = self;
        let _cleanup = RemoveFiles(unix_paths);
        let mut loops = loops.into_iter().enumerate();
        let (_, (poller0, rx0)) = loops.next().expect("at least one loop");
        let factory = &factory;
        let result = thread::scope(|s| {
            let mut threads = Vec::new();
            for (i, (poller, rx)) in loops {
                let loop_shared = shared.clone();
                let spawned = thread::Builder::new()
                    .name(format!("evio-loop-{i}"))
                    .spawn_scoped(s, move || {
                        run_loop(i, &loop_shared, || {
                            EventLoop::new(
                                i,
                                poller,
                                factory(i),
                                rx,
                                loop_shared.clone(),
                                Vec::new(),
                            )
                            .run()
                        })
                    });
                match spawned {
                    Ok(t) => threads.push((i, t)),
                    Err(e) => {
                        shared.begin_shutdown();
                        return Err(e);
                    }
                }
            }
            let mut result = run_loop(0, &shared, || {
                EventLoop::new(0, poller0, factory(0), rx0, shared.clone(), listeners).run()
            });
            shared.begin_shutdown();
            for (i, t) in threads {
                let r = t.join().unwrap_or_else(|_| {
                    Err(io::Error::other(format!("evio: event loop {i} panicked")))
                });
                if result.is_ok() {
                    result = r;
                }
            }
            result
        });
        tracing::debug!("evio: server stopped");
        result
    }
}

/// Removes unix socket files when the server stops (even on panic).
struct RemoveFiles(Vec<PathBuf>);

impl Drop for RemoveFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A server started with [`Builder::start`].
///
/// `Send + Sync`: share it (e.g. in an `Arc`) to stop the server from a
/// signal-handling thread while another waits for it. Dropping the handle
/// shuts the server down and waits for it.
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    addrs: Vec<Addr>,
    dials: std::sync::atomic::AtomicUsize,
    thread: Mutex<Option<thread::JoinHandle<io::Result<()>>>>,
}

impl ServerHandle {
    /// The bound addresses, in the order given, with real ports for `:0`.
    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// Whether the server has been asked to stop (by a callback or a handle).
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// Stops the server: every loop stops, every open connection gets
    /// `on_closed`, listeners close, unix socket files are removed. Waits
    /// for all of that and returns the server's result.
    ///
    /// # Errors
    /// A fatal loop error or a loop that panicked.
    pub fn shutdown(&self) -> io::Result<()> {
        self.shared.begin_shutdown();
        self.join()
    }

    /// Stops the server gracefully: stops accepting at once, stops reading,
    /// lets every connection write its pending output and close (each gets
    /// `on_closed`) until `timeout`; connections still open then are closed
    /// anyway. Returns once every loop has stopped.
    ///
    /// # Errors
    /// As [`shutdown`](ServerHandle::shutdown).
    pub fn shutdown_timeout(&self, timeout: Duration) -> io::Result<()> {
        *self
            .shared
            .drain_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + timeout);
        self.shared.begin_shutdown();
        self.join()
    }

    /// Opens an outbound connection into the server, on the loops in turn;
    /// `on_opened` fires when it connects, or
    /// `on_closed` with the error if it fails or times out.
    ///
    /// # Errors
    /// `NotConnected` if the server has stopped.
    pub fn dial(&self, addr: impl Into<Addr>) -> io::Result<()> {
        let addr = addr.into();
        let loops = &self.shared.loops;
        let n = self.dials.fetch_add(1, Ordering::Relaxed) % loops.len();
        let target = &loops[n];
        if target.send(Msg::Dial(addr)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server has stopped",
            ))
        }
    }

    /// Waits until the server stops by itself (a callback returned
    /// `Action::Shutdown`) and returns its result.
    ///
    /// # Errors
    /// As [`shutdown`](ServerHandle::shutdown).
    pub fn wait(&self) -> io::Result<()> {
        self.join()
    }

    /// Joins loop 0's thread; a second caller (or one after a `wait`) gets
    /// `Ok(())` once the server has stopped.
    fn join(&self) -> io::Result<()> {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("evio: event loop 0 panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
        let _ = self.join();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("addrs", &self.addrs)
            .field("loops", &self.loops.len())
            .finish()
    }
}
