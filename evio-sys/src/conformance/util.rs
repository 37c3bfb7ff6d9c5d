//! What the checks share: connected socket pairs and waits that loop until
//! an expected event shows up, so that no check relies on one wait
//! returning everything.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Event, Events, Poller};

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
