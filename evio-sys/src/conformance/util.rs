//! What the checks share: connected socket pairs and waits that loop until
//! an expected event shows up, so that no check relies on one wait
//! returning everything.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Event, Events, Interest, Poller};

use super::harness::{new_poller, New};

/// How long to wait for an expected event before giving up.
pub(super) const DEADLINE: Duration = Duration::from_secs(5);
/// The length of "nothing more happens" windows.
pub(super) const QUIET: Duration = Duration::from_millis(50);

/// A connected stream socket of either family.
pub(super) trait Sock: Read + Write + AsRawFd + Send + 'static {
    /// Shuts down the writing side: the peer reads EOF.
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
pub(super) fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A connected, non-blocking loopback TCP pair (client, accepted).
pub(super) fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    for s in [&a, &b] {
        s.set_nonblocking(true).expect("nonblocking");
        s.set_nodelay(true).expect("nodelay");
    }
    (a, b)
}

/// A fresh poller with `fd` registered as `token` for `interest`, and an
/// `Events` of `capacity`.
pub(super) fn poller_with<P: Poller>(
    new: &New<P>,
    fd: RawFd,
    token: u64,
    interest: Interest,
    capacity: usize,
) -> (P, Events) {
    let mut poller = new_poller(new);
    poller.register(fd, token, interest).unwrap();
    (poller, Events::with_capacity(capacity))
}

/// `count` unix pairs, the first end of each registered for reading with the
/// token `token(i)`.
pub(super) fn registered_pairs<P: Poller>(
    poller: &mut P,
    count: usize,
    token: impl Fn(usize) -> u64,
) -> Vec<(UnixStream, UnixStream)> {
    let pairs: Vec<(UnixStream, UnixStream)> = (0..count).map(|_| unix_pair()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        let token = token(i);
        poller
            .register(a.as_raw_fd(), token, Interest::READABLE)
            .unwrap_or_else(|e| panic!("register pair {i} with token {token:#x}: {e}"));
    }
    pairs
}

/// Writes one byte into the second end of every pair.
pub(super) fn write_each(pairs: &mut [(UnixStream, UnixStream)]) {
    for (_, b) in pairs.iter_mut() {
        b.write_all(b"x").unwrap();
    }
}

/// [`wait_until`] `token` is reported ready for `ready` (readable or
/// writable, as one of [`Interest::READABLE`] and [`Interest::WRITABLE`]
/// says).
pub(super) fn wait_ready<P: Poller>(
    poller: &mut P,
    events: &mut Events,
    token: u64,
    ready: Interest,
) -> (Event, Vec<Event>) {
    let what = format!("{ready:?} event, token {token}");
    wait_until(poller, events, &what, |e| {
        e.token() == token
            && if ready.is_readable() {
                e.is_readable()
            } else {
                e.is_writable()
            }
    })
}

/// A unix pair whose first end, registered for reading as token 1, was
/// just reported readable: the second end wrote one byte.
pub(super) fn reported_readable<P: Poller>(new: &New<P>) -> (P, Events, UnixStream, UnixStream) {
    let (a, mut b) = unix_pair();
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::READABLE, 64);
    b.write_all(b"x").unwrap();
    wait_ready(&mut poller, &mut events, 1, Interest::READABLE);
    (poller, events, a, b)
}

/// Fails unless every event of `seen` is for `token`.
pub(super) fn assert_only_token(seen: &[Event], token: u64, what: &str) {
    assert!(seen.iter().all(|e| e.token() == token), "{what}: {seen:?}");
}

/// Waits until every token of `expected` was reported, each event passing
/// `check`; an event for a token outside `expected`, or a wait returning
/// more events than `Events` holds, fails. Returns the tokens seen (all of
/// `expected` unless the deadline passed first).
pub(super) fn collect_tokens<P: Poller>(
    poller: &mut P,
    events: &mut Events,
    expected: &HashSet<u64>,
    check: impl Fn(&Event),
) -> HashSet<u64> {
    let mut got = HashSet::new();
    let start = Instant::now();
    while &got != expected && start.elapsed() < DEADLINE {
        let n = poller
            .wait(events, Some(Duration::from_millis(100)))
            .unwrap();
        assert!(n <= events.capacity(), "{n} events > capacity");
        for e in events.iter() {
            assert!(
                expected.contains(&e.token()),
                "token {:#x} was never registered or was deregistered: {e:?}",
                e.token()
            );
            check(e);
            got.insert(e.token());
        }
    }
    got
}

/// Waits (several times if needed) until some event satisfies `pred`.
/// Returns that event and every event seen on the way, itself included.
pub(super) fn wait_until<P: Poller>(
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
pub(super) fn events_for<P: Poller>(
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

/// The errno of a failed call, `None` for success or a non-OS error.
pub(super) fn errno(result: io::Result<()>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

/// Raises the soft `RLIMIT_NOFILE` as far as allowed (once per process) and
/// returns the soft limit then in force.
pub(super) fn raise_nofile() -> u64 {
    static SOFT: OnceLock<u64> = OnceLock::new();
    *SOFT.get_or_init(|| crate::net::raise_fd_limit(u64::MAX).unwrap_or(1024))
}
