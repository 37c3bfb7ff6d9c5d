//! What the closed loop and the churn share: the timeline, the tally, and
//! the epoll and socket helpers.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::Opts;

#[derive(Default)]
pub(crate) struct Counters {
    /// Messages (churn: connections) completed in the measured interval.
    pub(crate) messages: u64,
    /// Bytes echoed in the measured interval.
    pub(crate) bytes: u64,
    /// Messages completed since the start (warmup included).
    pub(crate) total_messages: u64,
    pub(crate) errors: u64,
    pub(crate) verify_errors: u64,
}

/// The run's timeline, the same for every thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) t0: Instant,
    pub(crate) warm_end: Instant,
    pub(crate) end: Instant,
}

impl Clock {
    pub(crate) fn new(o: &Opts) -> Clock {
        let t0 = Instant::now();
        let warm_end = t0 + Duration::from_secs_f64(o.warmup);
        Clock {
            t0,
            warm_end,
            end: warm_end + Duration::from_secs_f64(o.duration),
        }
    }

    /// The epoll timeout until the next point on the timeline (at most 1 s).
    pub(crate) fn timeout_ms(&self, measuring: bool, now: Instant) -> u16 {
        let deadline = if measuring { self.end } else { self.warm_end };
        let wait = deadline.saturating_duration_since(now);
        (wait.as_micros().div_ceil(1000)).min(1000) as u16
    }
}

/// What one thread measured.
pub(crate) struct Tally {
    pub(crate) c: Counters,
    pub(crate) hist: Histogram<u64>,
    /// Length of the measured interval as this thread saw it.
    pub(crate) secs: f64,
    pub(crate) stalled: u64,
    pub(crate) closed: usize,
    /// In the measured interval (the warm-up is over).
    pub(crate) measuring: bool,
    /// Where the measured interval started.
    from: Instant,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            c: Counters::default(),
            hist: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .expect("histogram bounds"),
            secs: 0.0,
            stalled: 0,
            closed: 0,
            measuring: false,
            from: Instant::now(),
        }
    }

    pub(crate) fn add(&mut self, t: Tally) {
        self.c.messages += t.c.messages;
        self.c.bytes += t.c.bytes;
        self.c.total_messages += t.c.total_messages;
        self.c.errors += t.c.errors;
        self.c.verify_errors += t.c.verify_errors;
        let _ = self.hist.add(&t.hist);
        self.secs = self.secs.max(t.secs);
        self.stalled += t.stalled;
        self.closed += t.closed;
    }

    /// The run starts on `clock` (measuring at once without a warm-up).
    pub(crate) fn begin(&mut self, clock: &Clock, warmup: f64) {
        self.measuring = warmup == 0.0;
        self.from = clock.t0;
    }

    /// At `now`: starts the measured interval once the warm-up is over
    /// (forgetting the warm-up); whether the run is over.
    pub(crate) fn advance(&mut self, clock: &Clock, now: Instant) -> bool {
        if !self.measuring && now >= clock.warm_end {
            self.measuring = true;
            self.c.messages = 0;
            self.c.bytes = 0;
            self.hist.reset();
            self.from = now;
        }
        now >= clock.end
    }

    /// Ends the measured interval at `now`.
    pub(crate) fn finish(&mut self, now: Instant) {
        self.secs = now.duration_since(self.from).as_secs_f64();
    }
}

/// Events that mean "read now" (data, or the end of it).
pub(crate) const READABLE: EpollFlags = EpollFlags::EPOLLIN
    .union(EpollFlags::EPOLLRDHUP)
    .union(EpollFlags::EPOLLHUP)
    .union(EpollFlags::EPOLLERR);

/// Registers a socket, edge-triggered, for reading and writing.
pub(crate) fn epoll_add(epoll: &Epoll, sock: &TcpStream, token: u64) -> io::Result<()> {
    let flags =
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
    epoll.add(sock, EpollEvent::new(flags, token))?;
    Ok(())
}

/// Starts a non-blocking connect (done when the socket turns writable).
pub(crate) fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}
