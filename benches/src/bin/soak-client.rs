//! `soak-client`: verified load with connection churn, for `scripts/soak.sh`.
//!
//! Each worker thread loops until `--duration`: connect, do `--ops`
//! verified exchanges, close (every fourth connection aborts instead: it
//! closes with a reply still unread, so the server sees a reset), and
//! repeat, at most `--rate` connections per second per worker.
//!
//! - `--mode echo`: random-sized messages, every byte checked.
//! - `--mode redis`: `SET` then `GET` of worker-private keys (values
//!   checked), `INCR` of a worker-private counter (checked to count up).
//! - `--mode http`: pipelined `GET /` (each checked to be `200` with the
//!   `Hello World!` body); the last request of a connection asks for
//!   `Connection: close` and the server's close is checked.
//!
//! Like `loadgen`, std only (not evio-core): it cannot share a bug with the
//! server. Output: one JSON line on stdout. Exit status 1 on any error or
//! when nothing was done.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evio_benches::cli::{self, CliError, Mode};
use lexopt::Arg::Long;

const USAGE: &str = "\
usage: soak-client --mode echo|redis|http --addr HOST:PORT
                   [--workers N] [--ops N] [--rate CONNS_PER_SEC] [--duration SECS]

Verified load with connection churn (scripts/soak.sh): each worker
connects, does --ops checked exchanges, closes (every fourth aborts with a
reply unread), and repeats until --duration.
  --mode M          echo: random-sized messages; redis: SET/GET/INCR of
                    worker-private keys; http: pipelined GET / (required)
  --addr HOST:PORT  the server (required)
  --workers N       worker threads (default 2)
  --ops N           exchanges per connection (default 20)
  --rate R          at most R connections per second per worker (default 100)
  --duration SECS   how long to run (default 10)
  -V, --version     print the name and version
  -h, --help        this text";

#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    conns: AtomicU64,
    aborts: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Totals {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            eprintln!("soak-client: {what}");
            *first = Some(what);
        }
    }
}

/// xorshift64*: deterministic per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn err(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One echo exchange.
fn echo_op(s: &mut TcpStream, rng: &mut Rng) -> io::Result<()> {
    let n = 1 + rng.below(16 << 10) as usize;
    let msg = rng.bytes(n);
    s.write_all(&msg)?;
    let mut got = vec![0; n];
    s.read_exact(&mut got)?;
    if got != msg {
        return Err(err(format!("echo of {n} bytes came back different")));
    }
    Ok(())
}

fn resp_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(err(format!(
            "truncated line {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// One redis exchange: SET, GET (checked), INCR (checked), pipelined.
fn redis_op(
    s: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    rng: &mut Rng,
    worker: usize,
    counter: &mut i64,
) -> io::Result<()> {
    let key = format!("soak:{worker}:{}", rng.below(256));
    let size = rng.below(1024) as usize;
    let value = rng.bytes(size);
    let ckey = format!("soak:{worker}:counter");
    let mut req = resp_cmd(&[b"SET", key.as_bytes(), &value]);
    req.extend(resp_cmd(&[b"GET", key.as_bytes()]));
    req.extend(resp_cmd(&[b"INCR", ckey.as_bytes()]));
    s.write_all(&req)?;
    let ok = read_line(r)?;
    if ok != "+OK" {
        return Err(err(format!("SET answered {ok:?}")));
    }
    let len = read_line(r)?;
    if len != format!("${}", value.len()) {
        return Err(err(format!(
            "GET {key} answered {len:?}, want ${}",
            value.len()
        )));
    }
    let mut got = vec![0; value.len() + 2];
    r.read_exact(&mut got)?;
    if got[..value.len()] != value[..] || &got[value.len()..] != b"\r\n" {
        return Err(err(format!("GET {key} returned a different value")));
    }
    let n = read_line(r)?;
    let want = *counter + 1;
    if n != format!(":{want}") {
        return Err(err(format!("INCR {ckey} answered {n:?}, want :{want}")));
    }
    *counter = want;
    Ok(())
}

const HELLO: &[u8] = b"Hello World!\r\n";

/// Reads one response; checks it is 200 with the hello body; returns
/// whether it said `Connection: close`.
fn http_response(r: &mut impl BufRead) -> io::Result<bool> {
    let status = read_line(r)?;
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(err(format!("status line {status:?}")));
    }
    let (mut len, mut close) = (None, false);
    loop {
        let h = read_line(r)?;
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
        close |= lower == "connection: close";
    }
    let len = len.ok_or_else(|| err("no Content-Length"))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    if body != HELLO {
        return Err(err(format!("body {:?}", String::from_utf8_lossy(&body))));
    }
    Ok(close)
}

/// One http exchange: 1 to 8 pipelined requests; with `last`, the final
/// one asks to close and the server's close is checked.
fn http_op(
    s: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    rng: &mut Rng,
    last: bool,
) -> io::Result<()> {
    let n = 1 + rng.below(8) as usize;
    let mut req = Vec::new();
    for i in 0..n {
        req.extend_from_slice(b"GET / HTTP/1.1\r\nHost: soak\r\n");
        if last && i == n - 1 {
            req.extend_from_slice(b"Connection: close\r\n");
        }
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req)?;
    for i in 0..n {
        let close = http_response(r)?;
        if close != (last && i == n - 1) {
            return Err(err(format!("unexpected Connection: close = {close}")));
        }
    }
    if last {
        let mut rest = Vec::new();
        r.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            return Err(err("bytes after Connection: close"));
        }
    }
    Ok(())
}

/// What one worker does on each connection.
#[derive(Clone, Copy)]
struct Job {
    addr: SocketAddr,
    mode: Mode,
    ops: usize,
    worker: usize,
}

/// One connection's life: `job.ops` exchanges, then a close (or, with
/// `abort`, a close with a reply unread).
fn session(job: Job, rng: &mut Rng, abort: bool, counter: &mut i64, t: &Totals) -> io::Result<()> {
    let Job {
        addr,
        mode,
        ops,
        worker,
    } = job;
    let mut s = connect(addr)?;
    t.conns.fetch_add(1, Ordering::Relaxed);
    let mut r = BufReader::new(s.try_clone()?);
    for i in 0..ops {
        match mode {
            Mode::Echo => echo_op(&mut s, rng)?,
            Mode::Redis => redis_op(&mut s, &mut r, rng, worker, counter)?,
            Mode::Http => http_op(&mut s, &mut r, rng, i + 1 == ops && !abort)?,
        }
        t.ops.fetch_add(1, Ordering::Relaxed);
    }
    if abort {
        // Leave a reply unread: closing then makes the kernel send an RST.
        let junk: &[u8] = match mode {
            Mode::Echo => b"unread",
            Mode::Redis => b"PING\r\n",
            Mode::Http => b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n",
        };
        s.write_all(junk)?;
        std::thread::sleep(Duration::from_millis(2));
        t.aborts.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// `(mode, addr, workers, ops, rate, duration)` from the command line.
fn parse(p: &mut lexopt::Parser) -> Result<(Mode, SocketAddr, usize, usize, f64, f64), CliError> {
    let (mut mode, mut addr) = (None, None);
    let (mut workers, mut ops, mut rate, mut duration) = (2usize, 20usize, 100.0f64, 10.0f64);
    while let Some(arg) = p.next()? {
        match arg {
            Long("mode") => mode = Some(cli::choice(p, "--mode", &cli::MODES)?),
            Long("addr") => addr = Some(cli::socket_addr(p, "--addr")?),
            Long("workers") => workers = cli::value(p, "--workers")?,
            Long("ops") => ops = cli::value(p, "--ops")?,
            Long("rate") => rate = cli::value(p, "--rate")?,
            Long("duration") => duration = cli::value(p, "--duration")?,
            other => return Err(cli::unexpected(other)),
        }
    }
    let mode = mode.ok_or("--mode echo|redis|http is required")?;
    let addr = addr.ok_or("--addr HOST:PORT is required")?;
    if workers == 0 || ops == 0 || rate <= 0.0 || !(duration > 0.0 && duration < 86_400.0) {
        return Err("--workers, --ops, --rate and --duration must be positive".into());
    }
    Ok((mode, addr, workers, ops, rate, duration))
}

fn main() -> ExitCode {
    let (mode, addr, workers, ops, rate, duration) =
        cli::parse_or_exit("soak-client", USAGE, parse);
    let totals = Arc::new(Totals::default());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(duration);
    let gap = Duration::from_secs_f64(1.0 / rate);
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let t = totals.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1234_5679));
                // The counter starts where an earlier run left it.
                let mut counter: Option<i64> = None;
                let mut n = 0u64;
                let job = Job {
                    addr,
                    mode,
                    ops,
                    worker: w,
                };
                while Instant::now() < end {
                    let began = Instant::now();
                    if mode == Mode::Redis && counter.is_none() {
                        counter = match read_counter(addr, w) {
                            Ok(c) => Some(c),
                            Err(e) => {
                                t.error(format!("reading the counter: {e}"));
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        };
                    }
                    let mut c = counter.unwrap_or(0);
                    let abort = n % 4 == 3;
                    if let Err(e) = session(job, &mut rng, abort, &mut c, &t) {
                        t.error(format!("{mode:?} worker {w}: {e}"));
                        // Re-read the counter: the failed INCR may or may not have run.
                        counter = None;
                    } else {
                        counter = Some(c);
                    }
                    n += 1;
                    if let Some(left) = gap.checked_sub(began.elapsed()) {
                        std::thread::sleep(left);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let ops = totals.ops.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let first = totals
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let json = serde_json::json!({
        "mode": format!("{mode:?}").to_lowercase(),
        "secs": secs,
        "ops": ops,
        "conns": totals.conns.load(Ordering::Relaxed),
        "aborts": totals.aborts.load(Ordering::Relaxed),
        "errors": errors,
        "first_error": first,
    });
    println!("{json}");
    if errors > 0 || ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The worker's counter as the server has it (0 when absent).
fn read_counter(addr: SocketAddr, worker: usize) -> io::Result<i64> {
    let mut s = connect(addr)?;
    let mut r = BufReader::new(s.try_clone()?);
    s.write_all(&resp_cmd(&[
        b"GET",
        format!("soak:{worker}:counter").as_bytes(),
    ]))?;
    let len = read_line(&mut r)?;
    if len == "$-1" {
        return Ok(0);
    }
    let n: usize = len
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| err(format!("GET counter answered {len:?}")))?;
    let mut v = vec![0; n + 2];
    r.read_exact(&mut v)?;
    String::from_utf8_lossy(&v[..n])
        .parse()
        .map_err(|_| err("counter is not a number"))
}
