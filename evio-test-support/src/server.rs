//! evio servers for tests: the same test on every poller backend, a server
//! started on one, and the handlers tests keep needing.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use evio_core::{Action, Builder, Conn, ConnHandle, EventHandler, Options, Poller, ServerHandle};

/// A poller backend a test can make (every backend of this platform).
pub trait TestPoller: Poller + Sized + 'static {
    fn make() -> io::Result<Self>;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl TestPoller for evio_core::EpollPoller {
    fn make() -> io::Result<Self> {
        evio_core::EpollPoller::new()
    }
}

impl TestPoller for evio_core::PollPoller {
    fn make() -> io::Result<Self> {
        evio_core::PollPoller::new()
    }
}

/// Turns generic test functions `fn name<P: TestPoller>()` into one
/// `#[test]` per backend: `epoll::name` (Linux) and `poll::name`.
#[macro_export]
macro_rules! on_every_poller {
    ($($name:ident),* $(,)?) => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        mod epoll {
            $( #[test] fn $name() { super::$name::<evio_core::EpollPoller>(); } )*
        }
        mod poll {
            $( #[test] fn $name() { super::$name::<evio_core::PollPoller>(); } )*
        }
    };
}

/// A server running `h` on `loops` loops of poller `P`, listening on `addrs`.
pub fn start_server<P: TestPoller, H: EventHandler + Clone + Send + 'static>(
    h: H,
    loops: isize,
    addrs: &[impl AsRef<str>],
) -> ServerHandle<H::Context> {
    Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .start(h, addrs)
        .unwrap()
}

/// What an `on_opened` that only counts returns, after adding one to
/// `opened`: the default options, no action.
pub fn count_open(opened: &AtomicUsize) -> (Options, Action) {
    opened.fetch_add(1, Ordering::SeqCst);
    (Options::default(), Action::None)
}

/// What an `on_closed` that only counts returns, after adding one to
/// `closed`: no action.
pub fn count_close(closed: &AtomicUsize) -> Action {
    closed.fetch_add(1, Ordering::SeqCst);
    Action::None
}

/// Writes back what it reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl EventHandler for Echo {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
}

/// An echo that records in `.0` the most output it ever had queued for a
/// connection.
#[derive(Clone, Debug, Default)]
pub struct MaxQueued(pub Arc<AtomicUsize>);

impl EventHandler for MaxQueued {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        self.0.fetch_max(conn.output_len(), Ordering::SeqCst);
        Action::None
    }
}

/// An echo that answers `big` with `big` zero bytes (the field), and
/// counts opens and records each close's error kind.
#[derive(Clone, Debug, Default)]
pub struct Streamer {
    /// How many bytes answer `big`.
    pub big: usize,
    /// Connections opened.
    pub opened: Arc<AtomicUsize>,
    /// Each close's error kind (`None` for a clean close), in order.
    pub closes: Arc<Mutex<Vec<Option<io::ErrorKind>>>>,
}

impl Streamer {
    /// A streamer answering `big` with `big` bytes.
    pub fn new(big: usize) -> Streamer {
        Streamer {
            big,
            ..Streamer::default()
        }
    }
}

impl EventHandler for Streamer {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        count_open(&self.opened)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        if input == b"big" {
            conn.write(&vec![0u8; self.big]);
        } else {
            conn.write(input);
        }
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, err: Option<io::Error>) -> Action {
        self.closes.lock().unwrap().push(err.map(|e| e.kind()));
        Action::None
    }
}

/// An echo that counts connections: open now, and opened in all.
#[derive(Clone, Debug, Default)]
pub struct CountingEcho {
    pub open: Arc<AtomicUsize>,
    pub opened: Arc<AtomicUsize>,
}

impl EventHandler for CountingEcho {
    type Context = ();
    fn on_opened(&mut self, _: &mut Conn<'_, ()>) -> (Options, Action) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.opened.fetch_add(1, Ordering::SeqCst);
        (Options::default(), Action::None)
    }
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        conn.write(input);
        Action::None
    }
    fn on_closed(&mut self, _: &mut Conn<'_, ()>, _: Option<io::Error>) -> Action {
        self.open.fetch_sub(1, Ordering::SeqCst);
        Action::None
    }
}

/// Keeps a [`ConnHandle`] to every connection it opens.
#[derive(Clone, Default)]
pub struct Handles(pub Arc<Mutex<Vec<ConnHandle>>>);

impl EventHandler for Handles {
    type Context = ();
    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        self.0.lock().unwrap().push(conn.handle());
        (Options::default(), Action::None)
    }
}

/// A small fast PRNG (xorshift*), seeded: reproducible test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
