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
//! Output: one JSON line on stdout, a human line on stderr. With `--marks`,
//! the lines `#start` and `#end` are printed on stdout when the measured
//! interval starts and ends (the runner samples server CPU on them).
//! Exit status 1 when any byte came back wrong or no message completed.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evio_benches::args::Args;
use evio_benches::pattern::Pattern;
use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

const USAGE: &str = "usage: loadgen --addr HOST:PORT [--conns N] [--size BYTES] [--depth K] \
[--duration SECS] [--warmup SECS] [--stream] [--window BYTES] [--marks]";

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
        marks: a.flag("--marks"),
    };
    a.finish()?;
    if o.conns == 0 || o.size == 0 || o.depth == 0 || o.window == 0 {
        return Err("--conns, --size, --depth and --window must be positive".into());
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
    /// Messages completed in the measured interval.
    messages: u64,
    /// Bytes echoed in the measured interval.
    bytes: u64,
    /// Messages completed since the start (warmup included).
    total_messages: u64,
    errors: u64,
    verify_errors: u64,
}

struct Gen {
    o: Opts,
    pat: Pattern,
    conns: Vec<Conn>,
    c: Counters,
    hist: Histogram<u64>,
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
                    self.c.errors += 1;
                    self.kill(i);
                    return;
                }
                Ok(n) => c.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: write: {e}");
                        self.c.errors += 1;
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
                        self.c.errors += 1;
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
                        self.c.errors += 1;
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
                self.c.verify_errors += 1;
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
                self.c.verify_errors += 1;
                self.kill(i);
                return;
            }
            let now = Instant::now();
            c.last_progress = now;
            let before = c.recvd / size;
            c.recvd += n as u64;
            let done = c.recvd / size - before;
            if self.measuring {
                self.c.bytes += n as u64;
                self.c.messages += done;
            }
            self.c.total_messages += done;
            if !self.o.stream {
                for _ in 0..done {
                    let t = self.conns[i].times.pop_front().expect("message in flight");
                    if self.measuring {
                        let ns = now.duration_since(t).as_nanos() as u64;
                        self.hist.saturating_record(ns.max(1));
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
}

/// Registers a socket, edge-triggered, for reading and writing.
fn epoll_add(epoll: &Epoll, sock: &TcpStream, token: u64) -> io::Result<()> {
    let flags =
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
    epoll.add(sock, EpollEvent::new(flags, token))?;
    Ok(())
}

fn mark(on: bool, what: &str) {
    if on {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{what}");
        let _ = out.flush();
    }
}

fn run(o: Opts) -> Result<ExitCode, String> {
    let _ = evio_sys::net::raise_fd_limit(o.conns as u64 + 64);
    let started = Instant::now();
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
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
        .map_err(|e| format!("epoll_create1: {}", io::Error::from(e)))?;
    for (i, c) in conns.iter().enumerate() {
        epoll_add(&epoll, &c.sock, i as u64).map_err(|e| format!("epoll_ctl: {e}"))?;
    }
    let hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut g = Gen {
        o: o.clone(),
        pat: Pattern::new(),
        conns,
        c: Counters::default(),
        hist,
        measuring: false,
        running: true,
        buf: vec![0u8; 1 << 16],
    };
    let t0 = Instant::now();
    let warm_end = t0 + Duration::from_secs_f64(o.warmup);
    let end = warm_end + Duration::from_secs_f64(o.duration);
    let mut measure_t0 = t0;
    if o.warmup == 0.0 {
        g.measuring = true;
        mark(o.marks, "#start");
    }
    for i in 0..g.conns.len() {
        if !o.stream {
            for _ in 0..o.depth {
                g.issue(i, t0);
            }
        }
        g.flush(i);
    }
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut now;
    loop {
        now = Instant::now();
        if !g.measuring && now >= warm_end {
            g.measuring = true;
            g.c.messages = 0;
            g.c.bytes = 0;
            g.hist.reset();
            measure_t0 = now;
            mark(o.marks, "#start");
        }
        if now >= end {
            break;
        }
        if g.conns.iter().all(|c| !c.alive) {
            break;
        }
        let deadline = if g.measuring { end } else { warm_end };
        let wait = deadline.saturating_duration_since(now);
        let timeout_ms = (wait.as_micros().div_ceil(1000)).min(1000) as u16;
        let n = match epoll.wait(&mut events, timeout_ms) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("epoll_wait: {}", io::Error::from(e))),
        };
        let readable = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLHUP
            | EpollFlags::EPOLLERR;
        for ev in &events[..n] {
            let i = ev.data() as usize;
            let bits = ev.events();
            if bits.intersects(readable) {
                g.read(i);
            }
            if bits.contains(EpollFlags::EPOLLOUT) {
                g.flush(i);
            }
        }
    }
    let secs = now.duration_since(measure_t0).as_secs_f64();
    g.running = false;
    mark(o.marks, "#end");
    // A connection whose data is overdue (nothing came back for a long time
    // while bytes were outstanding) counts as stalled.
    let overdue = Duration::from_secs_f64((o.duration / 2.0).max(1.0));
    let stalled = g
        .conns
        .iter()
        .filter(|c| c.alive && c.sent > c.recvd && now.duration_since(c.last_progress) > overdue)
        .count() as u64;
    let dead = g.conns.iter().filter(|c| !c.alive).count();
    drop(epoll);

    let c = &g.c;
    let rate = if secs > 0.0 {
        c.messages as f64 / secs
    } else {
        0.0
    };
    let q = |p: f64| -> Option<f64> {
        (!o.stream && !g.hist.is_empty()).then(|| g.hist.value_at_quantile(p) as f64 / 1000.0)
    };
    let (p50, p99, p999) = (q(0.5), q(0.99), q(0.999));
    let json = serde_json::json!({
        "mode": if o.stream { "stream" } else { "echo" },
        "addr": o.addr.to_string(),
        "conns": o.conns,
        "size": o.size,
        "depth": if o.stream { serde_json::Value::Null } else { o.depth.into() },
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
        "closed_conns": dead,
        "total_messages": c.total_messages,
        "total_secs": started.elapsed().as_secs_f64(),
    });
    println!("{json}");
    let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let shape = if o.stream {
        format!("{} conns x {} B stream", o.conns, o.size)
    } else {
        format!("{} conns x {} B x {} in flight", o.conns, o.size, o.depth)
    };
    eprintln!(
        "loadgen: {shape}: {:.0} msg/s ({} msgs in {secs:.2} s, {:.1} MB/s), latency p50 {} us p99 {} us p99.9 {} us, errors {}, verify errors {}, stalled {stalled}",
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
