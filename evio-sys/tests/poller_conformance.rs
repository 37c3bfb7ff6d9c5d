//! One conformance suite for every [`Poller`] backend of the target.
//!
//! Each check is a generic function over `P: Poller`; the
//! `conformance_tests!` macro turns them into `#[test]`s for one backend, and
//! is instantiated once per backend at the bottom of this file. Checks that
//! depend on the triggering mode assert according to `P::EDGE_TRIGGERED`.
//!
//! Every test body runs on its own thread under a watchdog, so a backend that
//! blocks where it must not fails the test instead of hanging the suite. All
//! waits loop until the expected event shows up (or a deadline passes), so no
//! check relies on one wait returning everything.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use evio_sys::{Event, Events, Interest, Poller};

/// How long one test may run before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(20);
/// How long to wait for an expected event before giving up.
const DEADLINE: Duration = Duration::from_secs(5);
/// The length of "nothing more happens" windows.
const QUIET: Duration = Duration::from_millis(50);

/// Tests hold this for reading while they run; the test that registers a
/// just-closed fd holds it for writing, so no other test can reuse that fd
/// number in between.
static FD_LOCK: RwLock<()> = RwLock::new(());

/// Runs `body` on its own thread under the watchdog, re-raising its panic.
fn run(exclusive: bool, body: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        if exclusive {
            let _guard = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
            body();
        } else {
            let _guard = FD_LOCK.read().unwrap_or_else(|e| e.into_inner());
            body();
        }
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(WATCHDOG) {
        Ok(()) => handle.join().expect("test thread"),
        // The body panicked and dropped the sender: re-raise its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("test thread ended without reporting"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {WATCHDOG:?}: a wait or wake blocked")
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A connected stream socket of either family.
trait Sock: Read + Write + AsRawFd + Send + 'static {
    fn shut_write(&self) -> io::Result<()>;
}

impl Sock for UnixStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Sock for TcpStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// A connected, non-blocking `UnixStream` pair.
fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A connected, non-blocking loopback TCP pair (client, accepted).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    for s in [&a, &b] {
        s.set_nonblocking(true).expect("nonblocking");
        s.set_nodelay(true).expect("nodelay");
    }
    (a, b)
}

/// The built-in backends' inherent constructors, for the generic checks.
trait New: Poller + Sized {
    fn new() -> io::Result<Self>;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl New for evio_sys::EpollPoller {
    fn new() -> io::Result<Self> {
        evio_sys::EpollPoller::new()
    }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
impl New for evio_sys::KqueuePoller {
    fn new() -> io::Result<Self> {
        evio_sys::KqueuePoller::new()
    }
}

impl New for evio_sys::PollPoller {
    fn new() -> io::Result<Self> {
        evio_sys::PollPoller::new()
    }
}

fn new_poller<P: New>() -> P {
    P::new().expect("new")
}

/// Waits (several times if needed) until some event satisfies `pred`.
/// Returns that event and every event seen on the way, itself included.
fn wait_until<P: New>(
    poller: &mut P,
    events: &mut Events,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> (Event, Vec<Event>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < DEADLINE {
        let n = poller
            .wait(events, Some(Duration::from_millis(100)))
            .expect("wait");
        assert_eq!(n, events.len(), "wait must return the number of events");
        seen.extend(events.iter().copied());
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return (*e, seen);
        }
    }
    panic!("no {what} within {DEADLINE:?}; saw {seen:?}");
}

/// Collects the events for `token` reported during `window`, stopping at the
/// first wait that reports any.
fn events_for<P: New>(
    poller: &mut P,
    events: &mut Events,
    token: u64,
    window: Duration,
) -> Vec<Event> {
    let end = Instant::now() + window;
    loop {
        let now = Instant::now();
        if now >= end {
            return Vec::new();
        }
        poller.wait(events, Some(end - now)).expect("wait");
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| e.token() == token)
            .copied()
            .collect();
        if !mine.is_empty() {
            return mine;
        }
    }
}

fn errno(result: io::Result<()>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

/// Raises the soft `RLIMIT_NOFILE` as far as allowed (once) and returns the
/// soft limit now in force.
fn raise_nofile() -> u64 {
    static SOFT: OnceLock<u64> = OnceLock::new();
    *SOFT.get_or_init(|| evio_sys::net::raise_fd_limit(u64::MAX).unwrap_or(1024))
}

// ----------------------------------------------------------------- checks

/// Read and write readiness of a connected pair: `a` is registered for
/// reading only, `b` for writing only.
fn readiness<P: New, S: Sock>((mut a, mut b): (S, S)) {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(64);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    poller
        .register(b.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();

    let (ev, seen) = wait_until(&mut poller, &mut events, "writable event for b", |e| {
        e.token() == 2 && e.is_writable()
    });
    assert!(
        !ev.is_readable(),
        "b has no read interest and no data: {ev:?}"
    );
    assert!(
        seen.iter().all(|e| e.token() != 1),
        "a has nothing to read yet but was reported: {seen:?}"
    );
    let early = events_for(&mut poller, &mut events, 1, Duration::from_millis(20));
    assert!(early.is_empty(), "a reported before any write: {early:?}");

    b.write_all(b"ping").unwrap();
    let (ev, seen) = wait_until(&mut poller, &mut events, "readable event for a", |e| {
        e.token() == 1 && e.is_readable()
    });
    assert!(!ev.is_writable(), "a has no write interest: {ev:?}");
    assert!(
        !ev.is_read_closed() && !ev.is_hangup() && !ev.is_error(),
        "the peer is open: {ev:?}"
    );
    assert!(
        seen.iter().all(|e| e.token() != 2 || !e.is_readable()),
        "b has nothing to read: {seen:?}"
    );
    let mut buf = [0u8; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");

    poller.deregister(a.as_raw_fd()).unwrap();
    poller.deregister(b.as_raw_fd()).unwrap();
}

/// Reregistering switches both the interest and the token.
fn reregister<P: New>() {
    let (a, mut b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(64);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();

    poller
        .reregister(a.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();
    let (_, seen) = wait_until(&mut poller, &mut events, "writable event, token 2", |e| {
        e.token() == 2 && e.is_writable()
    });
    assert!(
        seen.iter().all(|e| e.token() == 2),
        "old token still reported: {seen:?}"
    );

    b.write_all(b"x").unwrap();
    poller
        .reregister(a.as_raw_fd(), 3, Interest::READABLE)
        .unwrap();
    let (ev, seen) = wait_until(&mut poller, &mut events, "readable event, token 3", |e| {
        e.token() == 3 && e.is_readable()
    });
    assert!(!ev.is_writable(), "write interest was dropped: {ev:?}");
    assert!(
        seen.iter().all(|e| e.token() == 3),
        "old token still reported: {seen:?}"
    );
    poller.deregister(a.as_raw_fd()).unwrap();
}

/// A deregistered fd is not reported any more, even as new data arrives.
fn deregister<P: New>() {
    let (a, mut b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(64);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    b.write_all(b"x").unwrap();
    wait_until(&mut poller, &mut events, "readable event", |e| {
        e.token() == 1 && e.is_readable()
    });

    poller.deregister(a.as_raw_fd()).unwrap();
    b.write_all(b"more").unwrap();
    let late = events_for(&mut poller, &mut events, 1, Duration::from_millis(100));
    assert!(late.is_empty(), "reported after deregister: {late:?}");
    assert_eq!(
        errno(poller.deregister(a.as_raw_fd())),
        Some(libc::ENOENT),
        "second deregister"
    );
}

/// Deregistering fds in the middle of the set leaves the others intact (and
/// reported with their own tokens).
fn deregister_keeps_others<P: New>() {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(64);
    let mut pairs: Vec<(UnixStream, UnixStream)> = (0..10).map(|_| unix_pair()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        poller
            .register(a.as_raw_fd(), 100 + i as u64, Interest::READABLE)
            .unwrap();
    }
    let removed = [0usize, 4, 5, 9];
    for &i in &removed {
        poller.deregister(pairs[i].0.as_raw_fd()).unwrap();
    }
    for (_, b) in pairs.iter_mut() {
        b.write_all(b"x").unwrap();
    }
    let expected: HashSet<u64> = (0..10)
        .filter(|i| !removed.contains(i))
        .map(|i| 100 + i as u64)
        .collect();
    let mut got = HashSet::new();
    let start = Instant::now();
    while got != expected && start.elapsed() < DEADLINE {
        poller
            .wait(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for e in &events {
            assert!(
                expected.contains(&e.token()),
                "unexpected token (deregistered or unknown): {e:?}"
            );
            assert!(e.is_readable(), "{e:?}");
            got.insert(e.token());
        }
    }
    assert_eq!(got, expected);
    for (i, (a, _)) in pairs.iter().enumerate() {
        let r = poller.deregister(a.as_raw_fd());
        if removed.contains(&i) {
            assert_eq!(errno(r), Some(libc::ENOENT), "pair {i} was already removed");
        } else {
            r.unwrap_or_else(|e| panic!("deregister pair {i}: {e}"));
        }
    }
}

/// A zero timeout polls and returns at once.
fn zero_timeout<P: New>() {
    let (a, _b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let n = poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(n, 0, "{events:?}");
        assert!(!events.is_woken());
        assert!(elapsed < Duration::from_millis(50), "took {elapsed:?}");
    }
}

/// A timeout is honoured: never early, not much later.
fn timeouts<P: New>() {
    let (a, _b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();

    let start = Instant::now();
    let n = poller.wait(&mut events, Some(QUIET)).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(n, 0, "{events:?}");
    assert!(!events.is_woken());
    assert!(
        elapsed >= QUIET - Duration::from_millis(1),
        "a {QUIET:?} wait returned early, after {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(2),
        "a {QUIET:?} wait took {elapsed:?}"
    );

    // Sub-millisecond timeouts are rounded up, never down to a busy 0.
    let tiny = Duration::from_micros(300);
    let start = Instant::now();
    poller.wait(&mut events, Some(tiny)).unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= tiny,
        "a {tiny:?} wait returned after {elapsed:?}"
    );
}

/// A wake from another thread ends a wait without timeout.
fn wake_from_thread<P: New>() {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let start = Instant::now();
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        waker.wake().expect("wake");
    });
    // More than one wait only if a signal interrupts one (EINTR -> Ok(0)).
    for _ in 0..5 {
        poller.wait(&mut events, None).unwrap();
        if events.is_woken() {
            break;
        }
    }
    let elapsed = start.elapsed();
    thread.join().unwrap();
    assert!(events.is_woken(), "wait returned without the wake");
    assert!(
        events.is_empty(),
        "the wake must not be an event: {events:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(45),
        "woken after {elapsed:?}, before the wake was sent"
    );
}

/// 100,000 wakes in a tight loop neither block nor get lost, and coalesce
/// into one.
fn many_wakes<P: New>() {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let thread = {
        let waker = waker.clone();
        thread::spawn(move || {
            for _ in 0..100_000 {
                waker.wake().expect("wake");
            }
        })
    };
    thread.join().unwrap();

    let start = Instant::now();
    poller
        .wait(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    let elapsed = start.elapsed();
    assert!(events.is_woken(), "the wakes were lost");
    assert!(events.is_empty(), "{events:?}");
    assert!(
        elapsed < Duration::from_millis(500),
        "a pending wake took {elapsed:?} to be seen"
    );

    poller.wait(&mut events, Some(QUIET)).unwrap();
    assert!(
        !events.is_woken(),
        "wakes were not coalesced and drained: woken again"
    );

    // Draining re-armed the waker: the next wake is delivered too.
    waker.wake().expect("wake");
    poller
        .wait(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    assert!(events.is_woken(), "a wake after a drained one was lost");
}

/// Wakes racing with waits, as a loop sees them: a producer publishes a
/// sequence number, then wakes. The loop must never sleep through a wake:
/// once every wake was sent, a wait that times out means the loop missed
/// the final state. Every 10,000 wakes the producer lets the loop catch up,
/// so that wakes also meet a drained, re-armed waker.
fn wakes_race_waits<P: New>() {
    const N: usize = 1_000_000;
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    let waker = poller.waker();
    let seq = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let thread = {
        let (seq, acked, done) = (seq.clone(), acked.clone(), done.clone());
        thread::spawn(move || {
            for i in 1..=N {
                seq.store(i, Ordering::Release);
                waker.wake().expect("wake");
                if i % 10_000 == 0 {
                    let start = Instant::now();
                    while acked.load(Ordering::Acquire) < i && start.elapsed() < DEADLINE {
                        thread::yield_now();
                    }
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let start = Instant::now();
    let mut seen = 0;
    while seen < N {
        assert!(start.elapsed() < DEADLINE, "stuck at {seen}/{N}");
        let finished_before = done.load(Ordering::Acquire);
        poller
            .wait(&mut events, Some(Duration::from_millis(200)))
            .unwrap();
        if events.is_woken() {
            seen = seq.load(Ordering::Acquire);
            acked.store(seen, Ordering::Release);
        } else {
            assert!(
                !finished_before,
                "lost wake: all wakes were sent before this wait, \
                 the loop last saw {seen}/{N}, and the wait timed out"
            );
        }
    }
    thread.join().unwrap();
}

/// A waker may outlive its poller: waking then is harmless.
fn waker_outlives_poller<P: New>() {
    let poller: P = new_poller();
    let waker = poller.waker();
    drop(poller);
    waker.wake().expect("wake after the poller is gone");
    waker.wake().expect("second wake after the poller is gone");
}

/// 1,000 socket pairs registered at once are all reported, even through an
/// `Events` much smaller than the set.
fn many_sockets<P: New>() {
    let soft = raise_nofile();
    // Two fds per pair, several backends' tests in parallel, some slack.
    let count = (soft.saturating_sub(256) / 8).min(1000) as usize;
    if count < 1000 {
        eprintln!("RLIMIT_NOFILE is {soft}: testing {count} socket pairs instead of 1000");
    }
    assert!(
        count >= 100,
        "RLIMIT_NOFILE {soft} is too low for this test"
    );

    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(128);
    let mut pairs: Vec<(UnixStream, UnixStream)> = (0..count).map(|_| unix_pair()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        poller
            .register(a.as_raw_fd(), i as u64, Interest::READABLE)
            .unwrap();
    }
    for (_, b) in pairs.iter_mut() {
        b.write_all(b"x").unwrap();
    }
    let mut got = HashSet::new();
    let start = Instant::now();
    while got.len() < count && start.elapsed() < DEADLINE {
        let n = poller
            .wait(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        assert!(n <= events.capacity(), "{n} events > capacity");
        for e in &events {
            assert!((e.token() as usize) < count, "unknown token: {e:?}");
            assert!(e.is_readable(), "{e:?}");
            got.insert(e.token());
        }
    }
    assert_eq!(got.len(), count, "not every socket was reported readable");

    // Once drained, nothing is reported any more.
    let mut buf = [0u8; 8];
    for (a, _) in pairs.iter_mut() {
        assert_eq!(a.read(&mut buf).unwrap(), 1);
    }
    let n = poller.wait(&mut events, Some(QUIET)).unwrap();
    assert_eq!(n, 0, "drained sockets reported: {events:?}");

    // Deregister in an order that moves entries around in array backends.
    for i in (0..count).step_by(2).chain((1..count).step_by(2)) {
        poller.deregister(pairs[i].0.as_raw_fd()).unwrap();
    }
}

/// How a peer goes away in [`closed_peer`].
#[derive(Clone, Copy, Debug)]
enum Close {
    /// `shutdown(SHUT_WR)`: the peer stays open but sends EOF.
    Shutdown,
    /// The peer's fd is closed.
    Drop,
}

/// A peer that shuts down or closes is reported: readable, plus
/// `read_closed` or `hangup` where the backend can tell.
fn closed_peer<P: New, S: Sock>((mut a, b): (S, S), how: Close, reports_close: bool) {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    let _kept = match how {
        Close::Shutdown => {
            b.shut_write().unwrap();
            Some(b)
        }
        Close::Drop => {
            drop(b);
            None
        }
    };
    let (ev, _) = wait_until(&mut poller, &mut events, "readable event", |e| {
        e.token() == 1 && e.is_readable()
    });
    if reports_close {
        assert!(
            ev.is_read_closed() || ev.is_hangup(),
            "{how:?}: peer close not flagged: {ev:?}"
        );
    }
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf).unwrap(), 0, "{how:?}: expected EOF");
    poller.deregister(a.as_raw_fd()).unwrap();
}

/// Invalid and closed fds are refused with EBADF.
fn register_bad_fd<P: New>() {
    let mut poller: P = new_poller();
    for fd in [-1, 1_000_000] {
        assert_eq!(
            errno(poller.register(fd, 1, Interest::READABLE)),
            Some(libc::EBADF),
            "register({fd})"
        );
    }
    // Runs exclusively (see FD_LOCK): nobody reuses the number meanwhile.
    let closed: RawFd = {
        let (a, _b) = UnixStream::pair().unwrap();
        a.as_raw_fd()
    };
    for interest in [Interest::READABLE, Interest::WRITABLE, Interest::BOTH] {
        assert_eq!(
            errno(poller.register(closed, 1, interest)),
            Some(libc::EBADF),
            "register(closed fd {closed}, {interest:?})"
        );
    }
    assert!(
        poller.deregister(closed).is_err(),
        "a refused fd must stay unregistered"
    );
    // The poller still works.
    let (a, _b) = unix_pair();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();
    wait_until(&mut poller, &mut events, "writable event", |e| {
        e.token() == 2 && e.is_writable()
    });
}

/// Registering twice fails with EEXIST and leaves the first registration
/// alone; reregister/deregister of an unknown fd fail with ENOENT.
fn register_twice<P: New>() {
    let (a, mut b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    assert_eq!(
        errno(poller.register(a.as_raw_fd(), 2, Interest::BOTH)),
        Some(libc::EEXIST)
    );
    b.write_all(b"x").unwrap();
    let (ev, seen) = wait_until(&mut poller, &mut events, "readable event", |e| {
        e.token() == 1 && e.is_readable()
    });
    assert!(
        !ev.is_writable(),
        "interest changed by a failed register: {ev:?}"
    );
    assert!(
        seen.iter().all(|e| e.token() == 1),
        "token changed by a failed register: {seen:?}"
    );

    let (c, _d) = unix_pair();
    assert_eq!(
        errno(poller.reregister(c.as_raw_fd(), 3, Interest::READABLE)),
        Some(libc::ENOENT),
        "reregister of an unregistered fd"
    );
    assert_eq!(
        errno(poller.deregister(c.as_raw_fd())),
        Some(libc::ENOENT),
        "deregister of an unregistered fd"
    );
}

/// Unread data is reported again by a level-triggered backend, and not by
/// an edge-triggered one.
fn edge_vs_level<P: New>() {
    let (a, mut b) = unix_pair();
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    b.write_all(b"x").unwrap();
    wait_until(&mut poller, &mut events, "readable event", |e| {
        e.token() == 1 && e.is_readable()
    });
    let again = events_for(&mut poller, &mut events, 1, QUIET);
    if P::EDGE_TRIGGERED {
        assert!(
            again.is_empty(),
            "edge-triggered, yet reported again: {again:?}"
        );
        // New data is a new edge.
        b.write_all(b"y").unwrap();
        wait_until(
            &mut poller,
            &mut events,
            "readable event after new data",
            |e| e.token() == 1 && e.is_readable(),
        );
    } else {
        assert!(
            again.iter().any(|e| e.is_readable()),
            "level-triggered, yet unread data not reported again: {again:?}"
        );
    }
}

/// A writable socket registered for both directions: edge-triggered
/// backends report it writable once until something changes; level-triggered
/// ones keep reporting it.
fn writable_once<P: New, S: Sock>((a, _b): (S, S)) {
    let mut poller: P = new_poller();
    let mut events = Events::with_capacity(8);
    poller.register(a.as_raw_fd(), 1, Interest::BOTH).unwrap();
    let (_, seen) = wait_until(&mut poller, &mut events, "writable event", |e| {
        e.token() == 1 && e.is_writable()
    });
    assert!(
        seen.iter().all(|e| !e.is_readable()),
        "nothing to read yet: {seen:?}"
    );
    let again = events_for(&mut poller, &mut events, 1, QUIET);
    if P::EDGE_TRIGGERED {
        let writable = seen.iter().filter(|e| e.is_writable()).count();
        assert_eq!(writable, 1, "writable reported {writable} times: {seen:?}");
        assert!(
            again.is_empty(),
            "edge-triggered, yet reported again: {again:?}"
        );
    } else {
        assert!(
            again.iter().any(|e| e.is_writable()),
            "level-triggered, yet writable not reported again: {again:?}"
        );
    }
}

// ------------------------------------------------------------- instances

/// Generates the `#[test]`s of the suite for one backend. `reports_close`
/// says whether the backend flags a closed peer (`read_closed`/`hangup`).
macro_rules! conformance_tests {
    ($poller:ty, reports_close = $reports_close:expr) => {
        use super::*;

        type P = $poller;

        #[test]
        fn unix_readiness() {
            run(false, || readiness::<P, _>(unix_pair()));
        }

        #[test]
        fn tcp_readiness() {
            run(false, || readiness::<P, _>(tcp_pair()));
        }

        #[test]
        fn reregister_changes_interest_and_token() {
            run(false, reregister::<P>);
        }

        #[test]
        fn deregister_stops_events() {
            run(false, deregister::<P>);
        }

        #[test]
        fn deregister_keeps_other_fds() {
            run(false, deregister_keeps_others::<P>);
        }

        #[test]
        fn zero_timeout_returns_at_once() {
            run(false, zero_timeout::<P>);
        }

        #[test]
        fn timeout_is_honoured() {
            run(false, timeouts::<P>);
        }

        #[test]
        fn wake_ends_blocked_wait() {
            run(false, wake_from_thread::<P>);
        }

        #[test]
        fn many_wakes_coalesce() {
            run(false, many_wakes::<P>);
        }

        #[test]
        fn wakes_racing_waits_are_not_lost() {
            run(false, wakes_race_waits::<P>);
        }

        #[test]
        fn waker_outlives_the_poller() {
            run(false, waker_outlives_poller::<P>);
        }

        #[test]
        fn thousand_sockets() {
            run(false, many_sockets::<P>);
        }

        #[test]
        fn unix_peer_closed() {
            run(false, || {
                closed_peer::<P, _>(unix_pair(), Close::Drop, $reports_close)
            });
        }

        #[test]
        fn unix_peer_shutdown() {
            run(false, || {
                closed_peer::<P, _>(unix_pair(), Close::Shutdown, $reports_close)
            });
        }

        #[test]
        fn tcp_peer_closed() {
            run(false, || {
                closed_peer::<P, _>(tcp_pair(), Close::Drop, $reports_close)
            });
        }

        #[test]
        fn tcp_peer_shutdown() {
            run(false, || {
                closed_peer::<P, _>(tcp_pair(), Close::Shutdown, $reports_close)
            });
        }

        #[test]
        fn register_invalid_or_closed_fd_is_ebadf() {
            run(true, register_bad_fd::<P>);
        }

        #[test]
        fn register_twice_is_eexist() {
            run(false, register_twice::<P>);
        }

        #[test]
        fn edge_or_level_semantics() {
            run(false, edge_vs_level::<P>);
        }

        #[test]
        fn unix_writable_once_or_always() {
            run(false, || writable_once::<P, _>(unix_pair()));
        }

        #[test]
        fn tcp_writable_once_or_always() {
            run(false, || writable_once::<P, _>(tcp_pair()));
        }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll {
    conformance_tests!(evio_sys::EpollPoller, reports_close = true);
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue {
    conformance_tests!(evio_sys::KqueuePoller, reports_close = true);
}

/// poll(2) flags a half-closed peer (`POLLRDHUP`) on Linux and Android only.
mod poll {
    conformance_tests!(
        evio_sys::PollPoller,
        reports_close = cfg!(any(target_os = "linux", target_os = "android"))
    );
}
