//! `loadgen`: a single-threaded, epoll-driven echo load generator.
//!
//! Built on `std` + `nix` only (not on evio-core), so that it cannot share a
//! bug with the server under test. Every byte that comes back is checked
//! against what the connection sent (see `evio_benches::pattern`).
//!
//! Closed loop (default): each connection keeps `--depth` messages of
//! `--size` bytes in flight; when one has fully come back, the next is sent.
//! Stream (`--stream`, like tcpkali): each connection sends a continuous
//! stream of `--size`-byte messages (at most `--window` bytes outstanding)
//! and counts and checks the bytes echoed back.
//!
//! Churn (`--churn`): each of `--conns` concurrent clients connects, sends
//! one `--size`-byte message, reads it back (verified), closes, and starts
//! over: a new connection per request. The rate is connections per second,
//! the latency is from `connect` to the last byte back.
//!
//! `--threads N` splits the connections (or clients) over N threads, each
//! with its own epoll, for servers with more than one core.
//!
//! Output: one JSON line on stdout, a human line on stderr. With `--marks`,
//! the lines `#start` and `#end` are printed on stdout when the measured
//! interval starts and ends (the runner samples server CPU on them).
//! Exit status 1 when any byte came back wrong or no message completed.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evio_benches::args::Args;
use evio_benches::pattern::Pattern;
use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};

const USAGE: &str = "usage: loadgen --addr HOST:PORT [--conns N] [--size BYTES] [--depth K] \
[--duration SECS] [--warmup SECS] [--stream] [--window BYTES] [--churn] [--threads N] [--marks]";

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    depth: usize,
    duration: f64,
    warmup: f64,
    stream: bool,
    window: u64,
    churn: bool,
    threads: usize,
    marks: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut a = Args::from_env();
    if a.flag("--help") || a.flag("-h") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let addr: String = a.value("--addr")?.ok_or("--addr HOST:PORT is required")?;
    let addr = addr
        .to_socket_addrs()
        .map_err(|e| format!("--addr {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--addr {addr}: no address"))?;
    let o = Opts {
        addr,
        conns: a.value_or("--conns", 50)?,
        size: a.value_or("--size", 64)?,
        depth: a.value_or("--depth", 1)?,
        duration: a.value_or("--duration", 5.0)?,
        warmup: a.value_or("--warmup", 1.0)?,
        stream: a.flag("--stream"),
        window: a.value_or("--window", 256 * 1024)?,
        churn: a.flag("--churn"),
        threads: a.value_or("--threads", 1)?,
        marks: a.flag("--marks"),
    };
    a.finish()?;
    if o.conns == 0 || o.size == 0 || o.depth == 0 || o.window == 0 || o.threads == 0 {
        return Err("--conns, --size, --depth, --window and --threads must be positive".into());
    }
    if o.churn && o.stream {
        return Err("--churn and --stream exclude each other".into());
    }
    if o.size >= evio_benches::pattern::PERIOD {
        return Err(format!(
            "--size must be below {}",
            evio_benches::pattern::PERIOD
        ));
    }
    if !(o.duration > 0.0 && o.duration < 3600.0 && o.warmup >= 0.0 && o.warmup < 3600.0) {
        return Err("--duration must be in (0, 3600) and --warmup in [0, 3600)".into());
    }
    Ok(o)
}

struct Conn {
    sock: TcpStream,
    start: usize,
    /// Bytes handed to the send side (closed loop: whole messages).
    issued: u64,
    /// Bytes written to the socket.
    sent: u64,
    /// Bytes read back (and verified).
    recvd: u64,
    /// Issue times of the messages in flight (closed loop).
    times: VecDeque<Instant>,
    alive: bool,
    last_progress: Instant,
}

#[derive(Default)]
struct Counters {
    /// Messages (churn: connections) completed in the measured interval.
    messages: u64,
    /// Bytes echoed in the measured interval.
    bytes: u64,
    /// Messages completed since the start (warmup included).
    total_messages: u64,
    errors: u64,
    verify_errors: u64,
}

/// The run's timeline, the same for every thread.
#[derive(Debug, Clone, Copy)]
struct Clock {
    t0: Instant,
    warm_end: Instant,
    end: Instant,
}

impl Clock {
    fn new(o: &Opts) -> Clock {
        let t0 = Instant::now();
        let warm_end = t0 + Duration::from_secs_f64(o.warmup);
        Clock {
            t0,
            warm_end,
            end: warm_end + Duration::from_secs_f64(o.duration),
        }
    }

    /// The epoll timeout until the next point on the timeline (at most 1 s).
    fn timeout_ms(&self, measuring: bool, now: Instant) -> u16 {
        let deadline = if measuring { self.end } else { self.warm_end };
        let wait = deadline.saturating_duration_since(now);
        (wait.as_micros().div_ceil(1000)).min(1000) as u16
    }
}

/// What one thread measured.
struct Tally {
    c: Counters,
    hist: Histogram<u64>,
    /// Length of the measured interval as this thread saw it.
    secs: f64,
    stalled: u64,
    closed: usize,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            c: Counters::default(),
            hist: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .expect("histogram bounds"),
            secs: 0.0,
            stalled: 0,
            closed: 0,
        }
    }

    fn add(&mut self, t: Tally) {
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

    /// Starts the measured interval: forget the warm-up.
    fn start_measuring(&mut self) {
        self.c.messages = 0;
        self.c.bytes = 0;
        self.hist.reset();
    }
}

/// Closed loop or stream over connections opened up front.
struct Gen {
    o: Opts,
    pat: Pattern,
    conns: Vec<Conn>,
    t: Tally,
    measuring: bool,
    running: bool,
    buf: Vec<u8>,
}

impl Gen {
    fn kill(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.alive {
            c.alive = false;
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closed loop: hand one more message to the send side.
    fn issue(&mut self, i: usize, now: Instant) {
        let size = self.o.size as u64;
        let c = &mut self.conns[i];
        c.issued += size;
        c.times.push_back(now);
    }

    /// Writes what is due until the socket would block.
    fn flush(&mut self, i: usize) {
        let window = self.o.window;
        let stream = self.o.stream;
        loop {
            let c = &mut self.conns[i];
            if !c.alive {
                return;
            }
            let due = if stream {
                (c.recvd + window).saturating_sub(c.sent)
            } else {
                c.issued - c.sent
            };
            if due == 0 {
                return;
            }
            let chunk = self.pat.slice(c.start, c.sent, due.min(1 << 16) as usize);
            match (&c.sock).write(chunk) {
                Ok(0) => {
                    self.t.c.errors += 1;
                    self.kill(i);
                    return;
                }
                Ok(n) => c.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: write: {e}");
                        self.t.c.errors += 1;
                    }
                    self.kill(i);
                    return;
                }
            }
        }
    }

    /// Reads until the socket would block, checking every byte.
    fn read(&mut self, i: usize) {
        let size = self.o.size as u64;
        loop {
            let c = &mut self.conns[i];
            if !c.alive {
                return;
            }
            let n = match (&c.sock).read(&mut self.buf) {
                Ok(0) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: closed by the server");
                        self.t.c.errors += 1;
                    }
                    self.kill(i);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: read: {e}");
                        self.t.c.errors += 1;
                    }
                    self.kill(i);
                    return;
                }
            };
            let short_read = n < self.buf.len();
            let data = &self.buf[..n];
            if c.recvd + n as u64 > c.sent {
                eprintln!(
                    "loadgen: conn {i}: {} bytes came back but only {} were sent",
                    c.recvd + n as u64,
                    c.sent
                );
                self.t.c.verify_errors += 1;
                self.kill(i);
                return;
            }
            if let Some(pos) = self.pat.verify(c.start, c.recvd, data) {
                eprintln!(
                    "loadgen: conn {i}: wrong byte at stream offset {} (message {}, byte {})",
                    c.recvd + pos as u64,
                    (c.recvd + pos as u64) / size,
                    (c.recvd + pos as u64) % size
                );
                self.t.c.verify_errors += 1;
                self.kill(i);
                return;
            }
            let now = Instant::now();
            c.last_progress = now;
            let before = c.recvd / size;
            c.recvd += n as u64;
            let done = c.recvd / size - before;
            if self.measuring {
                self.t.c.bytes += n as u64;
                self.t.c.messages += done;
            }
            self.t.c.total_messages += done;
            if !self.o.stream {
                for _ in 0..done {
                    let t = self.conns[i].times.pop_front().expect("message in flight");
                    if self.measuring {
                        let ns = now.duration_since(t).as_nanos() as u64;
                        self.t.hist.saturating_record(ns.max(1));
                    }
                    if self.running {
                        self.issue(i, now);
                    }
                }
            }
            if short_read {
                // The socket is drained: skip the read that would only say
                // WouldBlock. Safe under edge triggering, since bytes that
                // arrive later raise a new event.
                break;
            }
        }
        self.flush(i);
    }

    /// Drives the connections until the clock's end.
    fn run(mut self, clock: Clock) -> Result<Tally, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| format!("epoll_create1: {}", io::Error::from(e)))?;
        for (i, c) in self.conns.iter().enumerate() {
            epoll_add(&epoll, &c.sock, i as u64).map_err(|e| format!("epoll_ctl: {e}"))?;
        }
        let o = self.o.clone();
        let mut measure_t0 = clock.t0;
        self.measuring = o.warmup == 0.0;
        for i in 0..self.conns.len() {
            if !o.stream {
                for _ in 0..o.depth {
                    self.issue(i, clock.t0);
                }
            }
            self.flush(i);
        }
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut now;
        loop {
            now = Instant::now();
            if !self.measuring && now >= clock.warm_end {
                self.measuring = true;
                self.t.start_measuring();
                measure_t0 = now;
            }
            if now >= clock.end || self.conns.iter().all(|c| !c.alive) {
                break;
            }
            let n = match epoll.wait(&mut events, clock.timeout_ms(self.measuring, now)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("epoll_wait: {}", io::Error::from(e))),
            };
            for ev in &events[..n] {
                let i = ev.data() as usize;
                let bits = ev.events();
                if bits.intersects(READABLE) {
                    self.read(i);
                }
                if bits.contains(EpollFlags::EPOLLOUT) {
                    self.flush(i);
                }
            }
        }
        self.t.secs = now.duration_since(measure_t0).as_secs_f64();
        self.running = false;
        // A connection whose data is overdue (nothing came back for a long
        // time while bytes were outstanding) counts as stalled.
        let overdue = Duration::from_secs_f64((o.duration / 2.0).max(1.0));
        self.t.stalled = self
            .conns
            .iter()
            .filter(|c| {
                c.alive && c.sent > c.recvd && now.duration_since(c.last_progress) > overdue
            })
            .count() as u64;
        self.t.closed = self.conns.iter().filter(|c| !c.alive).count();
        Ok(self.t)
    }
}

/// Events that mean "read now" (data, or the end of it).
const READABLE: EpollFlags = EpollFlags::EPOLLIN
    .union(EpollFlags::EPOLLRDHUP)
    .union(EpollFlags::EPOLLHUP)
    .union(EpollFlags::EPOLLERR);

/// Registers a socket, edge-triggered, for reading and writing.
fn epoll_add(epoll: &Epoll, sock: &TcpStream, token: u64) -> io::Result<()> {
    let flags =
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
    epoll.add(sock, EpollEvent::new(flags, token))?;
    Ok(())
}

/// Starts a non-blocking connect (done when the socket turns writable).
fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
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

/// One churn client: its current connection.
struct Client {
    sock: Option<TcpStream>,
    /// Bumped for every connection, and part of the epoll token, so that an
    /// event of a closed connection is not taken for the next one's.
    generation: u32,
    /// Pattern offset of this connection's message.
    start: usize,
    sent: usize,
    recvd: usize,
    /// When `connect` was called.
    opened: Instant,
    last_progress: Instant,
}

/// Churn: clients that connect, send one message, read it back, close.
struct Churn {
    o: Opts,
    pat: Pattern,
    epoll: Epoll,
    clients: Vec<Client>,
    /// Gives every connection its own pattern offset.
    next_conn: usize,
    /// Clients whose connect failed at once; retried after a pause.
    retry: Vec<usize>,
    /// When to retry them.
    retry_at: Option<Instant>,
    /// Error lines printed so far (a few, not thousands).
    complaints: usize,
    t: Tally,
    measuring: bool,
    running: bool,
    buf: Vec<u8>,
}

impl Churn {
    fn new(o: Opts, clients: usize, first_conn: usize) -> Result<Churn, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| format!("epoll_create1: {}", io::Error::from(e)))?;
        let now = Instant::now();
        let clients = (0..clients)
            .map(|_| Client {
                sock: None,
                generation: 0,
                start: 0,
                sent: 0,
                recvd: 0,
                opened: now,
                last_progress: now,
            })
            .collect();
        Ok(Churn {
            buf: vec![0u8; o.size.max(4096)],
            o,
            pat: Pattern::new(),
            epoll,
            clients,
            next_conn: first_conn,
            retry: Vec::new(),
            retry_at: None,
            complaints: 0,
            t: Tally::new(),
            measuring: false,
            running: true,
        })
    }

    fn complain(&mut self, i: usize, what: &str) {
        if self.running && self.complaints < 5 {
            self.complaints += 1;
            eprintln!("loadgen: client {i}: {what}");
        }
    }

    /// Counts a failed connect of client `i` and retries it in 10 ms
    /// (e.g. when no local port is free).
    fn retry_later(&mut self, i: usize, why: String) {
        self.t.c.errors += 1;
        self.complain(i, &why);
        self.retry.push(i);
        self.retry_at
            .get_or_insert_with(|| Instant::now() + Duration::from_millis(10));
    }

    /// Opens client `i`'s next connection.
    fn open(&mut self, i: usize) {
        let now = Instant::now();
        let sock = match connect_nonblocking(self.o.addr) {
            Ok(sock) => sock,
            Err(e) => return self.retry_later(i, format!("connect: {e}")),
        };
        let c = &mut self.clients[i];
        c.generation = c.generation.wrapping_add(1);
        let token = (u64::from(c.generation) << 32) | i as u64;
        if let Err(e) = epoll_add(&self.epoll, &sock, token) {
            return self.retry_later(i, format!("epoll_ctl: {e}"));
        }
        c.sock = Some(sock);
        c.start = Pattern::start_for(self.next_conn);
        self.next_conn += 1;
        c.sent = 0;
        c.recvd = 0;
        c.opened = now;
        c.last_progress = now;
    }

    /// Ends client `i`'s connection (an error when `why` is given) and
    /// opens the next one.
    fn finish(&mut self, i: usize, why: Option<String>) {
        self.clients[i].sock = None; // close
        if let Some(why) = why {
            if self.running {
                self.t.c.errors += 1;
            }
            self.complain(i, &why);
        }
        if self.running {
            self.open(i);
        }
    }

    fn event(&mut self, token: u64, bits: EpollFlags) {
        let i = (token & 0xffff_ffff) as usize;
        let c = &self.clients[i];
        if c.sock.is_none() || u64::from(c.generation) != token >> 32 {
            return; // an event of a connection closed already
        }
        if let Err(why) = self.send(i) {
            return self.finish(i, Some(why));
        }
        if bits.intersects(READABLE) {
            self.receive(i);
        }
    }

    /// Sends what is left of the message.
    fn send(&mut self, i: usize) -> Result<(), String> {
        let size = self.o.size;
        let c = &mut self.clients[i];
        let Some(sock) = &c.sock else { return Ok(()) };
        while c.sent < size {
            let chunk = self.pat.slice(c.start, c.sent as u64, size - c.sent);
            match (&*sock).write(chunk) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// Reads and checks the echo; closes when all of it is back.
    fn receive(&mut self, i: usize) {
        let size = self.o.size;
        loop {
            let c = &mut self.clients[i];
            let Some(sock) = &c.sock else { return };
            let n = match (&*sock).read(&mut self.buf) {
                Ok(0) => return self.finish(i, Some("closed by the server".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.finish(i, Some(format!("read: {e}"))),
            };
            let data = &self.buf[..n];
            if c.recvd + n > c.sent {
                self.t.c.verify_errors += 1;
                let why = format!("{} bytes came back, {} were sent", c.recvd + n, c.sent);
                return self.finish(i, Some(why));
            }
            if let Some(pos) = self.pat.verify(c.start, c.recvd as u64, data) {
                self.t.c.verify_errors += 1;
                let why = format!("wrong byte at offset {}", c.recvd + pos);
                return self.finish(i, Some(why));
            }
            let now = Instant::now();
            c.recvd += n;
            c.last_progress = now;
            if c.recvd == size {
                let ns = now.duration_since(c.opened).as_nanos() as u64;
                if self.measuring {
                    self.t.c.messages += 1;
                    self.t.c.bytes += size as u64;
                    self.t.hist.saturating_record(ns.max(1));
                }
                self.t.c.total_messages += 1;
                return self.finish(i, None);
            }
        }
    }

    /// Runs the clients until the clock's end.
    fn run(mut self, clock: Clock) -> Result<Tally, String> {
        let mut measure_t0 = clock.t0;
        self.measuring = self.o.warmup == 0.0;
        for i in 0..self.clients.len() {
            self.open(i);
        }
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut now;
        loop {
            now = Instant::now();
            if !self.measuring && now >= clock.warm_end {
                self.measuring = true;
                self.t.start_measuring();
                measure_t0 = now;
            }
            if now >= clock.end {
                break;
            }
            let mut timeout = clock.timeout_ms(self.measuring, now);
            if self.retry_at.is_some() {
                timeout = timeout.min(10);
            }
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("epoll_wait: {}", io::Error::from(e))),
            };
            for ev in &events[..n] {
                self.event(ev.data(), ev.events());
            }
            if self.retry_at.is_some_and(|t| Instant::now() >= t) {
                self.retry_at = None;
                for i in std::mem::take(&mut self.retry) {
                    self.open(i);
                }
            }
        }
        self.t.secs = now.duration_since(measure_t0).as_secs_f64();
        self.running = false;
        let overdue = Duration::from_secs_f64((self.o.duration / 2.0).max(1.0));
        self.t.stalled = self
            .clients
            .iter()
            .filter(|c| c.sock.is_some() && now.duration_since(c.last_progress) > overdue)
            .count() as u64;
        Ok(self.t)
    }
}

/// What one thread drives.
enum Worker {
    Gen(Gen),
    Churn(Churn),
}

impl Worker {
    fn run(self, clock: Clock) -> Result<Tally, String> {
        match self {
            Worker::Gen(g) => g.run(clock),
            Worker::Churn(c) => c.run(clock),
        }
    }
}

fn mark(on: bool, what: &str) {
    if on {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{what}");
        let _ = out.flush();
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// How many of `total` items thread `k` of `threads` takes.
fn share(total: usize, threads: usize, k: usize) -> usize {
    total / threads + usize::from(k < total % threads)
}

/// Opens the connections of the closed loop (or stream) up front.
fn connect_all(o: &Opts) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let sock = TcpStream::connect_timeout(&o.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {} (conn {i}): {e}", o.addr))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        conns.push(Conn {
            sock,
            start: Pattern::start_for(i),
            issued: 0,
            sent: 0,
            recvd: 0,
            times: VecDeque::with_capacity(o.depth),
            alive: true,
            last_progress: Instant::now(),
        });
    }
    Ok(conns)
}

fn run(o: Opts) -> Result<ExitCode, String> {
    // Churn: each client holds one socket, plus those closing.
    let _ = evio_sys::net::raise_fd_limit(2 * o.conns as u64 + 64);
    let started = Instant::now();
    let threads = o.threads.min(o.conns);
    let mut workers = Vec::new();
    if o.churn {
        let mut first = 0;
        for k in 0..threads {
            let n = share(o.conns, threads, k);
            let churn = Churn::new(o.clone(), n, first)?;
            workers.push(Worker::Churn(churn));
            first += n;
        }
    } else {
        let mut conns = connect_all(&o)?.into_iter();
        for k in 0..threads {
            let gen = Gen {
                o: o.clone(),
                pat: Pattern::new(),
                conns: conns.by_ref().take(share(o.conns, threads, k)).collect(),
                t: Tally::new(),
                measuring: false,
                running: true,
                buf: vec![0u8; 1 << 16],
            };
            workers.push(Worker::Gen(gen));
        }
    }
    let clock = Clock::new(&o);
    let mut total = Tally::new();
    std::thread::scope(|scope| -> Result<(), String> {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|w| scope.spawn(move || w.run(clock)))
            .collect();
        if o.marks {
            sleep_until(clock.warm_end);
            mark(true, "#start");
            sleep_until(clock.end);
            mark(true, "#end");
        }
        for h in handles {
            total.add(
                h.join()
                    .map_err(|_| "a load thread panicked".to_string())??,
            );
        }
        Ok(())
    })?;

    let (c, secs, stalled) = (&total.c, total.secs, total.stalled);
    let rate = if secs > 0.0 {
        c.messages as f64 / secs
    } else {
        0.0
    };
    let latencies = !o.stream && !total.hist.is_empty();
    let q = |p: f64| -> Option<f64> {
        latencies.then(|| total.hist.value_at_quantile(p) as f64 / 1000.0)
    };
    let (p50, p99, p999) = (q(0.5), q(0.99), q(0.999));
    let mode = match (o.churn, o.stream) {
        (true, _) => "churn",
        (_, true) => "stream",
        _ => "echo",
    };
    let json = serde_json::json!({
        "mode": mode,
        "addr": o.addr.to_string(),
        "conns": o.conns,
        "size": o.size,
        "depth": if o.stream || o.churn { serde_json::Value::Null } else { o.depth.into() },
        "threads": threads,
        "messages": c.messages,
        "bytes": c.bytes,
        "secs": secs,
        "rate": rate,
        "mb_per_s": c.bytes as f64 / secs.max(1e-9) / 1e6,
        "p50_us": p50,
        "p99_us": p99,
        "p999_us": p999,
        "errors": c.errors,
        "verify_errors": c.verify_errors,
        "stalled": stalled,
        "closed_conns": total.closed,
        "total_messages": c.total_messages,
        "total_secs": started.elapsed().as_secs_f64(),
    });
    println!("{json}");
    let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let (shape, unit) = match mode {
        "churn" => (
            format!("{} clients x (connect, {} B, close)", o.conns, o.size),
            "conn/s",
        ),
        "stream" => (format!("{} conns x {} B stream", o.conns, o.size), "msg/s"),
        _ => (
            format!("{} conns x {} B x {} in flight", o.conns, o.size, o.depth),
            "msg/s",
        ),
    };
    eprintln!(
        "loadgen: {shape}: {:.0} {unit} ({} in {secs:.2} s, {:.1} MB/s), latency p50 {} us p99 {} us p99.9 {} us, errors {}, verify errors {}, stalled {stalled}",
        rate,
        c.messages,
        c.bytes as f64 / secs.max(1e-9) / 1e6,
        us(p50),
        us(p99),
        us(p999),
        c.errors,
        c.verify_errors
    );
    if c.verify_errors > 0 || c.messages == 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
