//! The loads: `loadgen` (echo, closed loop or churn), `redis-benchmark`
//! and `wrk`, each run against a started server while the server's CPU time
//! is sampled, giving CPU per request.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::parse::{parse_redis_csv, parse_wrk};
use crate::procfs;
use crate::runner::certs::{self, SNI};
use crate::runner::process::{spawn, tail, Cpus, Reap, Watchdog};
use crate::runner::server::Server;
use crate::runner::settings::Settings;

/// One load shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// `loadgen`: `conns` connections, `size`-byte messages, `depth` in
    /// flight on each.
    Echo {
        /// Connections.
        conns: usize,
        /// Message size in bytes.
        size: usize,
        /// Messages in flight per connection.
        depth: usize,
    },
    /// `redis-benchmark -c 50 -P pipeline -t test`.
    Redis {
        /// The test (`PING_INLINE`, `SET`, `GET`).
        test: String,
        /// Requests in flight per connection.
        pipeline: usize,
    },
    /// `wrk -c conns` (pipelined with `benches/pipeline.lua` when
    /// `pipeline` > 1).
    Http {
        /// Connections.
        conns: usize,
        /// Requests in flight per connection.
        pipeline: usize,
    },
    /// `loadgen --churn`: `workers` concurrent clients that each connect,
    /// send one `size`-byte message, read it back and close, over and over.
    EchoChurn {
        /// Concurrent clients.
        workers: usize,
        /// Message size in bytes.
        size: usize,
    },
    /// `redis-benchmark -c 50 -k 0 -t test`: a new connection per request.
    RedisChurn {
        /// The test (`PING_INLINE`, `SET`).
        test: String,
    },
    /// `wrk -c conns -H "Connection: close"`: a new connection per request.
    HttpChurn {
        /// Concurrent connections.
        conns: usize,
    },
    /// The load over TLS (see [`crate::runner::certs`]): `wrk` on
    /// `https://`, `redis-benchmark --tls --cacert`, `loadgen --tls --ca`
    /// (echo, closed loop). Every connection starts with a full handshake.
    Tls(Box<Load>),
}

impl Load {
    /// The label in the tables.
    pub fn label(&self) -> String {
        match self {
            Load::Echo { conns, size, depth } => {
                format!("{conns} conns × {size} B × {depth} in flight")
            }
            Load::Redis { test, pipeline } => format!("{test} -c 50 -P {pipeline}"),
            Load::Http { conns, pipeline: 1 } => format!("{conns} conns"),
            Load::Http { conns, pipeline } => format!("{conns} conns, pipeline {pipeline}"),
            Load::EchoChurn { workers, size } => {
                format!("echo: {workers} clients × (connect, {size} B, close)")
            }
            Load::RedisChurn { test } => format!("redis: {test} -c 50 -k 0"),
            Load::HttpChurn { conns } => format!("http: {conns} conns, Connection: close"),
            Load::Tls(inner) => match &**inner {
                Load::Http { conns, pipeline: 1 } => format!("HTTPS {conns} conns, keep-alive"),
                Load::HttpChurn { conns } => {
                    format!("HTTPS {conns} conns, Connection: close (a full handshake each)")
                }
                Load::Redis { test, pipeline } => {
                    format!("Redis TLS: {test} -c 50 -P {pipeline}")
                }
                other => format!("TLS: {}", other.label()),
            },
        }
    }

    /// The short label (chart groups, progress lines).
    pub fn short(&self) -> String {
        match self {
            Load::Echo { conns, size, depth } => format!("{conns}×{size}B×{depth}"),
            Load::Redis { test, pipeline } => format!("{} P{pipeline}", test.to_lowercase()),
            Load::Http { conns, pipeline: 1 } => format!("c{conns}"),
            Load::Http { conns, pipeline } => format!("c{conns} P{pipeline}"),
            Load::EchoChurn { workers, size } => format!("echo churn {workers}×{size}B"),
            Load::RedisChurn { test } => format!("{} k0", test.to_lowercase()),
            Load::HttpChurn { conns } => format!("http close c{conns}"),
            Load::Tls(inner) => match &**inner {
                Load::Http { .. } => format!("https {}", inner.short()),
                Load::HttpChurn { conns } => format!("https close c{conns}"),
                other => format!("tls {}", other.short()),
            },
        }
    }

    /// Whether every request comes on a new connection.
    pub fn is_churn(&self) -> bool {
        match self {
            Load::EchoChurn { .. } | Load::RedisChurn { .. } | Load::HttpChurn { .. } => true,
            Load::Tls(inner) => inner.is_churn(),
            _ => false,
        }
    }

    /// The same load without TLS, for a load over TLS.
    pub fn plain(&self) -> Option<&Load> {
        match self {
            Load::Tls(inner) => Some(inner),
            _ => None,
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    /// The run completed and every check passed.
    pub ok: bool,
    /// Requests (echo: messages; churn: connections) in the measured
    /// interval.
    pub requests: u64,
    /// Length of the measured interval.
    pub secs: f64,
    /// Requests per second.
    pub rate: f64,
    /// Server CPU (utime + stime) per request, µs.
    pub cpu_us_per_req: Option<f64>,
    /// The kernel's part of `cpu_us_per_req` (stime).
    pub sys_us_per_req: Option<f64>,
    /// Median latency, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency, µs.
    pub p999_us: Option<f64>,
    /// Peak RSS of the server's tree (`VmHWM`), KiB.
    pub peak_rss_kb: Option<u64>,
    /// Errors the load tool reported.
    pub errors: u64,
    /// Wrong bytes or bad responses.
    pub verify_errors: u64,
    /// Requests over the server's whole life (echo: warm-up included); what
    /// strace's counts are divided by.
    pub total_requests: u64,
    /// Why it failed, or what else to know.
    pub note: String,
}

/// µs of CPU per request from clock ticks (`None` without requests).
pub fn cpu_us_per_req(ticks: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| ticks as f64 / procfs::clk_tck() / requests as f64 * 1e6)
}

impl RunResult {
    /// Sets the CPU figures from the server's ticks before and after.
    pub fn set_cpu(&mut self, before: procfs::CpuTicks, after: procfs::CpuTicks, requests: u64) {
        let d = after.since(before);
        self.cpu_us_per_req = cpu_us_per_req(d.total(), requests);
        self.sys_us_per_req = cpu_us_per_req(d.sys, requests);
    }
}

/// Runs `load` against `srv` with the load tool on `cpus`, using `threads`
/// threads (loadgen `--threads`, wrk `-t`), and measures the server.
pub fn run_load(
    s: &Settings,
    load: &Load,
    srv: &Server,
    cpus: Option<Cpus>,
    threads: usize,
    label: &str,
) -> Result<RunResult, String> {
    let run = Tool {
        s,
        srv,
        cpus,
        threads,
        label,
        log: s.tmp.join(format!("load-{}.log", srv.port)),
    };
    let num = |v: &usize| v.to_string();
    let mut r = match load {
        Load::Echo { conns, size, depth } => {
            let (conns, size, depth) = (num(conns), num(size), num(depth));
            run.loadgen(&["--conns", &conns, "--size", &size, "--depth", &depth])?
        }
        Load::EchoChurn { workers, size } => {
            run.loadgen(&["--churn", "--conns", &num(workers), "--size", &num(size)])?
        }
        Load::Redis { test, pipeline } => {
            let n = s.redis_n * *pipeline as u64;
            run.redis_benchmark(test, n, &["-P", &num(pipeline)])?
        }
        Load::RedisChurn { test } => {
            let n = (s.redis_n / 4).max(100);
            run.redis_benchmark(test, n, &["-k", "0"])?
        }
        Load::Http { conns, pipeline } => run.wrk(Wrk::new(*conns, *pipeline, false))?,
        Load::HttpChurn { conns } => run.wrk(Wrk::new(*conns, 1, true))?,
        Load::Tls(inner) => {
            let ca = certs::files(s).cert.display().to_string();
            match &**inner {
                Load::Echo { conns, size, depth } => {
                    let (conns, size, depth) = (num(conns), num(size), num(depth));
                    run.loadgen(&[
                        "--conns", &conns, "--size", &size, "--depth", &depth, "--tls", "--ca",
                        &ca, "--sni", SNI,
                    ])?
                }
                Load::Redis { test, pipeline } => {
                    let n = s.redis_n * *pipeline as u64;
                    run.redis_benchmark(test, n, &["-P", &num(pipeline), "--tls", "--cacert", &ca])?
                }
                Load::Http { conns, pipeline } => {
                    run.wrk(Wrk::new(*conns, *pipeline, false).https())?
                }
                Load::HttpChurn { conns } => run.wrk(Wrk::new(*conns, 1, true).https())?,
                other => return Err(format!("{} over TLS: not supported", other.label())),
            }
        }
    };
    let hwm = procfs::tree_status_kb(srv.pid, "VmHWM");
    r.peak_rss_kb = (hwm > 0).then_some(hwm);
    Ok(r)
}

/// One load tool's run against one server: where it runs and what it logs.
struct Tool<'a> {
    s: &'a Settings,
    srv: &'a Server,
    /// The cores the tool is pinned to.
    cpus: Option<Cpus>,
    /// loadgen `--threads`, wrk `-t`.
    threads: usize,
    /// The run's name in messages.
    label: &'a str,
    /// The tool's stderr.
    log: PathBuf,
}

/// A load tool run to its end, with the server's CPU sampled around it.
struct Sampled {
    /// What the tool printed, and how it exited.
    out: Output,
    /// The server's CPU time just before the tool started.
    cpu_before: procfs::CpuTicks,
    /// The server's CPU time just after the tool ended.
    cpu_after: procfs::CpuTicks,
    /// How long the tool ran.
    secs: f64,
}

impl Sampled {
    /// Runs `cmd` (stdout piped) on `cpus` under a watchdog of `limit`.
    fn run(
        cmd: &mut Command,
        cpus: Option<Cpus>,
        srv: &Server,
        limit: Duration,
        tool: &str,
        label: &str,
    ) -> Result<Sampled, String> {
        let cpu_before = procfs::tree_cpu_ticks(srv.pid);
        let child = spawn(cmd, cpus).map_err(|e| format!("start {tool}: {e}"))?;
        let wd = Watchdog::new(child.id() as i32, limit, format!("{tool} ({label})"));
        let t0 = Instant::now();
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let secs = t0.elapsed().as_secs_f64();
        drop(wd);
        let cpu_after = procfs::tree_cpu_ticks(srv.pid);
        Ok(Sampled {
            out,
            cpu_before,
            cpu_after,
            secs,
        })
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// The error when the tool's output held no result.
    fn no_result(&self, tool: &str, log: &Path) -> String {
        format!(
            "{tool} gave no result ({}): {} {}",
            self.out.status,
            self.stdout().trim(),
            tail(log, 5)
        )
    }
}

/// The shape of a `wrk` run.
#[derive(Debug, Clone, Copy)]
struct Wrk {
    /// `-c`.
    conns: usize,
    /// Requests in flight per connection (`benches/pipeline.lua`).
    pipeline: usize,
    /// `-H "Connection: close"`.
    close: bool,
    /// `https://` instead of `http://`.
    https: bool,
}

impl Wrk {
    fn new(conns: usize, pipeline: usize, close: bool) -> Wrk {
        Wrk {
            conns,
            pipeline,
            close,
            https: false,
        }
    }

    fn https(self) -> Wrk {
        Wrk {
            https: true,
            ..self
        }
    }
}

impl Tool<'_> {
    /// `loadgen --marks …`: the server's CPU is sampled on `#start` and `#end`.
    fn loadgen(&self, shape: &[&str]) -> Result<RunResult, String> {
        let Tool {
            s,
            srv,
            cpus,
            threads,
            label,
            ref log,
        } = *self;
        let logf = fs::File::create(log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(s.bin_dir.join("loadgen"));
        cmd.args(["--addr", &format!("127.0.0.1:{}", srv.port), "--marks"])
            .args(shape)
            .args(["--duration", &s.duration.to_string()])
            .args(["--warmup", &s.warmup.to_string()]);
        if threads > 1 {
            cmd.args(["--threads", &threads.to_string()]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(logf);
        let child = spawn(&mut cmd, cpus).map_err(|e| format!("start loadgen: {e}"))?;
        let mut child = Reap(child);
        let limit = Duration::from_secs_f64(s.duration + s.warmup + 60.0);
        let _wd = Watchdog::new(child.0.id() as i32, limit, format!("loadgen ({label})"));
        let out = child.0.stdout.take().expect("piped");
        let (mut c0, mut c1) = (None, None);
        let mut json = None;
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| e.to_string())?;
            match line.trim() {
                "#start" => c0 = Some(procfs::tree_cpu_ticks(srv.pid)),
                "#end" => c1 = Some(procfs::tree_cpu_ticks(srv.pid)),
                l if l.starts_with('{') => json = serde_json::from_str::<serde_json::Value>(l).ok(),
                _ => {}
            }
        }
        let st = child.0.wait().map_err(|e| e.to_string())?;
        let Some(j) = json else {
            return Err(format!("loadgen gave no result ({st}):\n{}", tail(log, 10)));
        };
        let f = |k: &str| j.get(k).and_then(|v| v.as_f64());
        let u = |k: &str| j.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let mut r = RunResult {
            requests: u("messages"),
            total_requests: u("total_messages"),
            secs: f("secs").unwrap_or(0.0),
            rate: f("rate").unwrap_or(0.0),
            p50_us: f("p50_us"),
            p99_us: f("p99_us"),
            p999_us: f("p999_us"),
            errors: u("errors") + u("stalled"),
            verify_errors: u("verify_errors"),
            ..Default::default()
        };
        if let (Some(a), Some(b)) = (c0, c1) {
            r.set_cpu(a, b, r.requests);
        }
        r.ok = st.success() && r.verify_errors == 0 && r.requests > 0;
        if !r.ok {
            r.note = format!("loadgen: {st}: {}", tail(log, 3).replace('\n', " | "));
        }
        Ok(r)
    }

    /// `redis-benchmark -c 50 -n n -t test --csv extra…`; the server's CPU is
    /// sampled over the tool's whole life.
    fn redis_benchmark(&self, test: &str, n: u64, extra: &[&str]) -> Result<RunResult, String> {
        let Tool {
            s,
            srv,
            cpus,
            label,
            ref log,
            ..
        } = *self;
        let logf = fs::File::create(log).map_err(|e| e.to_string())?;
        let tool = s
            .tools
            .redis_benchmark
            .as_ref()
            .ok_or("redis-benchmark not found")?;
        let mut cmd = Command::new(tool);
        cmd.args(["-h", "127.0.0.1", "-p", &srv.port.to_string(), "-c", "50"])
            .args(["-n", &n.to_string()])
            .args(extra)
            .args(["-t", &test.to_lowercase(), "--csv"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf);
        let limit = Duration::from_secs(if s.smoke { 60 } else { 300 });
        let run = Sampled::run(&mut cmd, cpus, srv, limit, "redis-benchmark", label)?;
        let (out, text) = (&run.out, run.stdout());
        let rows = parse_redis_csv(&text);
        let Some(row) = rows.first() else {
            return Err(run.no_result("redis-benchmark", log));
        };
        let mut r = RunResult {
            requests: n,
            total_requests: n,
            secs: run.secs,
            rate: row.rps,
            p50_us: row.p50_ms.map(|v| v * 1e3),
            p99_us: row.p99_ms.map(|v| v * 1e3),
            ok: out.status.success() && row.rps > 0.0,
            ..Default::default()
        };
        r.set_cpu(run.cpu_before, run.cpu_after, n);
        if !r.ok {
            let why = tail(log, 3).replace('\n', " | ");
            r.note = format!("redis-benchmark: {}: {why}", out.status);
        }
        Ok(r)
    }

    /// `wrk -t threads -c conns -d secs --latency` (pipelined, or with
    /// `Connection: close`, on `http://` or `https://`); the server's CPU is
    /// sampled over wrk's whole life.
    fn wrk(&self, w: Wrk) -> Result<RunResult, String> {
        let Tool {
            s,
            srv,
            cpus,
            threads,
            label,
            ref log,
        } = *self;
        let Wrk {
            conns,
            pipeline,
            close,
            https,
        } = w;
        let logf = fs::File::create(log).map_err(|e| e.to_string())?;
        let secs = s.duration.ceil().max(1.0) as u64;
        let tool = s.tools.wrk.as_ref().ok_or("wrk not found")?;
        let mut cmd = Command::new(tool);
        cmd.args([
            &format!("-t{}", threads.max(1)),
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ]);
        if close {
            cmd.args(["-H", "Connection: close"]);
        }
        if pipeline > 1 {
            let script = s.tmp.join("pipeline.lua");
            fs::write(&script, include_str!("../../pipeline.lua")).map_err(|e| e.to_string())?;
            cmd.arg("-s").arg(&script);
        }
        let scheme = if https { "https" } else { "http" };
        cmd.arg(format!("{scheme}://127.0.0.1:{}/", srv.port));
        if pipeline > 1 {
            cmd.args(["--", &pipeline.to_string()]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(logf);
        let limit = Duration::from_secs(secs + 60);
        let run = Sampled::run(&mut cmd, cpus, srv, limit, "wrk", label)?;
        let (out, text) = (&run.out, run.stdout());
        let Some(w) = parse_wrk(&text) else {
            return Err(run.no_result("wrk", log));
        };
        let mut r = RunResult {
            requests: w.requests,
            total_requests: w.requests,
            secs: w.secs,
            rate: w.rps,
            p50_us: w.p50_us,
            p99_us: w.p99_us,
            errors: w.socket_errors + w.bad_status,
            verify_errors: w.bad_status,
            ok: out.status.success() && w.requests > 0 && w.bad_status == 0,
            ..Default::default()
        };
        r.set_cpu(run.cpu_before, run.cpu_after, w.requests);
        if w.bad_status > 0 {
            r.note = format!("{} non-2xx/3xx responses", w.bad_status);
        } else if !r.ok {
            r.note = format!(
                "wrk: {}, {} requests, {} socket errors: {}",
                out.status,
                w.requests,
                w.socket_errors,
                tail(log, 3).replace('\n', " | ")
            );
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let l = Load::Echo {
            conns: 50,
            size: 6,
            depth: 16,
        };
        assert_eq!(l.label(), "50 conns × 6 B × 16 in flight");
        assert_eq!(l.short(), "50×6B×16");
        let h = Load::Http {
            conns: 50,
            pipeline: 16,
        };
        assert_eq!(h.short(), "c50 P16");
    }

    #[test]
    fn tls_labels() {
        let https = Load::Tls(Box::new(Load::Http {
            conns: 50,
            pipeline: 1,
        }));
        assert_eq!(https.label(), "HTTPS 50 conns, keep-alive");
        assert_eq!(https.short(), "https c50");
        assert!(!https.is_churn());
        let close = Load::Tls(Box::new(Load::HttpChurn { conns: 50 }));
        assert!(close.is_churn());
        assert_eq!(close.short(), "https close c50");
        assert_eq!(close.plain(), Some(&Load::HttpChurn { conns: 50 }));
        let redis = Load::Tls(Box::new(Load::Redis {
            test: "GET".into(),
            pipeline: 16,
        }));
        assert_eq!(redis.label(), "Redis TLS: GET -c 50 -P 16");
        assert_eq!(redis.short(), "tls get P16");
        let echo = Load::Tls(Box::new(Load::Echo {
            conns: 50,
            size: 64,
            depth: 1,
        }));
        assert_eq!(echo.label(), "TLS: 50 conns × 64 B × 1 in flight");
        assert_eq!(echo.short(), "tls 50×64B×1");
        assert_eq!(https.plain().map(Load::short), Some("c50".to_string()));
    }

    #[test]
    fn churn_labels() {
        let c = Load::HttpChurn { conns: 50 };
        assert!(c.is_churn());
        assert_eq!(c.label(), "http: 50 conns, Connection: close");
        let r = Load::RedisChurn {
            test: "PING_INLINE".into(),
        };
        assert_eq!(r.short(), "ping_inline k0");
        assert!(!Load::Http {
            conns: 50,
            pipeline: 1
        }
        .is_churn());
    }
}
