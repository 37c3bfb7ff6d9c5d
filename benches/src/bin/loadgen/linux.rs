//! The Linux body of `loadgen`: its options, the threads, the report.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use evio_benches::cli::{self, CliError};
use evio_benches::tls;
use lexopt::Arg::Long;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::churn::Churn;
use crate::closed::{connect_all, Gen};
use crate::common::{Clock, Tally};

const USAGE: &str = "\
usage: loadgen --addr HOST:PORT [--conns N] [--size BYTES] [--depth K]
               [--duration SECS] [--warmup SECS] [--stream] [--window BYTES]
               [--churn] [--threads N] [--marks] [--tls --ca PEM [--sni NAME]]

An epoll echo client that checks every byte echoed back. Output: one JSON
line on stdout, a human line on stderr; exit status 1 when a byte came back
wrong or no message completed.
  --addr HOST:PORT  the server (required)
  --conns N         connections (churn: concurrent clients; default 50)
  --size BYTES      message size (default 64)
  --depth K         closed loop: messages in flight per connection (default 1)
  --duration SECS   measured seconds (default 5)
  --warmup SECS     seconds before the measurement (default 1)
  --stream          a continuous stream per connection (like tcpkali)
  --window BYTES    stream: at most this much outstanding (default 262144)
  --churn           a new connection per message: connect, send, read, close
  --threads N       spread the connections over N threads (default 1)
  --marks           print #start and #end on stdout around the measurement
  --tls             closed loop and stream over TLS (one full, verified
                    handshake per connection first); needs --ca
  --ca PEM          the server's certificate or its CA (with --tls)
  --sni NAME        the server name to verify (default localhost)
  -V, --version     print the name and version
  -h, --help        this text";

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) addr: SocketAddr,
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) depth: usize,
    pub(crate) duration: f64,
    pub(crate) warmup: f64,
    pub(crate) stream: bool,
    pub(crate) window: u64,
    pub(crate) churn: bool,
    pub(crate) threads: usize,
    pub(crate) marks: bool,
    /// `--tls --ca PEM --sni NAME`: the client config and the server name.
    pub(crate) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

fn parse_opts(p: &mut lexopt::Parser) -> Result<Opts, CliError> {
    let mut addr = None;
    let mut o = Opts {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        conns: 50,
        size: 64,
        depth: 1,
        duration: 5.0,
        warmup: 1.0,
        stream: false,
        window: 256 * 1024,
        churn: false,
        threads: 1,
        marks: false,
        tls: None,
    };
    let (mut tls, mut ca, mut sni) = (false, None::<PathBuf>, "localhost".to_string());
    while let Some(arg) = p.next()? {
        match arg {
            Long("addr") => addr = Some(cli::socket_addr(p, "--addr")?),
            Long("conns") => o.conns = cli::value(p, "--conns")?,
            Long("size") => o.size = cli::value(p, "--size")?,
            Long("depth") => o.depth = cli::value(p, "--depth")?,
            Long("duration") => o.duration = cli::value(p, "--duration")?,
            Long("warmup") => o.warmup = cli::value(p, "--warmup")?,
            Long("stream") => o.stream = true,
            Long("window") => o.window = cli::value(p, "--window")?,
            Long("churn") => o.churn = true,
            Long("threads") => o.threads = cli::value(p, "--threads")?,
            Long("marks") => o.marks = true,
            Long("tls") => tls = true,
            Long("ca") => ca = Some(cli::value(p, "--ca")?),
            Long("sni") => sni = cli::value(p, "--sni")?,
            other => return Err(cli::unexpected(other)),
        }
    }
    o.addr = addr.ok_or("--addr HOST:PORT is required")?;
    match (tls, ca) {
        (true, Some(ca)) if o.churn => {
            return Err(CliError::Bad(format!(
                "--tls is for the closed loop and the stream, not --churn (--ca {})",
                ca.display()
            )))
        }
        (true, Some(ca)) => {
            let config = tls::client_config(&ca, false, &[])?;
            o.tls = Some((config, tls::server_name(&sni)?));
        }
        (true, None) => {
            return Err("--tls needs --ca PEM (the server's certificate or its CA)".into())
        }
        (false, Some(_)) => return Err("--ca is for --tls".into()),
        (false, None) => {}
    }
    if o.conns == 0 || o.size == 0 || o.depth == 0 || o.window == 0 || o.threads == 0 {
        return Err("--conns, --size, --depth, --window and --threads must be positive".into());
    }
    if o.churn && o.stream {
        return Err("--churn and --stream exclude each other".into());
    }
    if o.size >= evio_benches::pattern::PERIOD {
        return Err(CliError::Bad(format!(
            "--size must be below {}",
            evio_benches::pattern::PERIOD
        )));
    }
    if !(o.duration > 0.0 && o.duration < 3600.0 && o.warmup >= 0.0 && o.warmup < 3600.0) {
        return Err("--duration must be in (0, 3600) and --warmup in [0, 3600)".into());
    }
    Ok(o)
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
            let gen = Gen::new(
                o.clone(),
                conns.by_ref().take(share(o.conns, threads, k)).collect(),
            );
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
        "tls": o.tls.is_some(),
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
    let shape = if o.tls.is_some() {
        format!("{shape} over TLS")
    } else {
        shape
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

/// The binary's `main` on Linux.
pub(crate) fn main() -> ExitCode {
    let o = cli::parse_or_exit("loadgen", USAGE, parse_opts);
    match run(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
