//! The runner's settings: command line, defaults (full and smoke), where
//! the binaries and the external tools are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use lexopt::Arg::Long;
use lexopt::Parser;

use crate::cli::{self, CliError};
use crate::runner::process::{online_cpus, which, which_not_in, TOOLS_ENV};

/// The runner's usage text.
pub const USAGE: &str = "\
usage: bench [--smoke] [--strace] [--rounds N] [--duration SECS] [--warmup SECS]
             [--workloads echo,redis,http,memory,loops,proxy,http-proxy,churn,tls,
                          scaling,echo-metrics]
             [--out FILE.json] [--mem-conns N] [--redis-n N] [--compare DIR]
             [--loops 1,2,4,8]

Expects `cargo build --release --workspace` to have been run. Binaries are
taken from $EVIO_BIN_DIR, else target/release of the workspace; external
tools (wrk, nginx, redis-benchmark, redis-server, haproxy, strace) from
$EVIO_BENCH_TOOLS (directories, `:`-separated), then PATH.
  --smoke        short runs, 1 round, a subset of the loads (CI); default
                 output in target/bench-smoke/ instead of docs/
  --strace       one extra round per server under `strace -c -f`:
                 system calls (and epoll_ctl calls) per request and, for
                 the churn loads, per connection
  --rounds N     A B A B rounds (default 5, smoke 1)
  --duration S   measured seconds of each echo/http run (default 5, smoke 0.5;
                 wrk rounds up to whole seconds)
  --warmup S     echo warm-up seconds (default 1, smoke 0.1)
  --workloads L  default: all but scaling and echo-metrics (echo,redis,
                 http,memory,loops,proxy,http-proxy,churn,tls);
                 echo-metrics: the echo loads against ours with the
                 metrics endpoint off and on (--metrics-port, scraped
                 every second), A B A B; http-proxy: wrk -c50 through
                 HTTP reverse proxies (ours, nginx, HAProxy, our L4 proxy)
                 to one nginx; tls: HTTPS, Redis over TLS, a TLS proxy
                 and idle TLS connections, TLS 1.3 with one cipher suite
                 and a throwaway ECDSA P-256 certificate (smoke: HTTPS
                 keep-alive, Redis -P 16, the proxy at 64 B x 1)
  --out FILE     results JSON (default docs/bench-results.json, or
                 docs/bench-scaling.json for --workloads scaling); the
                 markdown (.md) and SVG charts go next to it
  --mem-conns N  idle connections of the memory workload (default 10000,
                 smoke 1000)
  --redis-n N    redis-benchmark requests per test at -P 1; scaled by the
                 pipeline depth; a quarter of it for -k 0 (default 200000,
                 smoke 20000)
  --compare DIR  also run our servers from DIR (release binaries of another
                 build, e.g. the main branch), labelled \"evio-rs (baseline)\",
                 alternated with the rest
  --loops LIST   loop counts of the scaling workload (default 1,2,4,8; those
                 that leave no core for the load are skipped)
  -V, --version  print the name and version
  -h, --help     this text";

/// Every workload, in the order they run.
pub const ALL_WORKLOADS: [&str; 11] = [
    "echo",
    "echo-metrics",
    "redis",
    "http",
    "memory",
    "loops",
    "proxy",
    "http-proxy",
    "churn",
    "tls",
    "scaling",
];

/// The workloads run only when `--workloads` names them: scaling needs a
/// many-core machine, echo-metrics is a question of its own (what the
/// metrics endpoint costs).
pub const OPT_IN_WORKLOADS: [&str; 2] = ["echo-metrics", "scaling"];

/// The workloads run when `--workloads` is not given: all but the opt-in
/// ones, in order.
pub fn default_workloads() -> Vec<&'static str> {
    ALL_WORKLOADS
        .into_iter()
        .filter(|w| !OPT_IN_WORKLOADS.contains(w))
        .collect()
}

/// The external tools, found once at start (`None`: not installed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tools {
    /// `strace`, for `--strace`.
    pub strace: Option<PathBuf>,
    /// `redis-benchmark`.
    pub redis_benchmark: Option<PathBuf>,
    /// `wrk`.
    pub wrk: Option<PathBuf>,
    /// `nginx`.
    pub nginx: Option<PathBuf>,
    /// `haproxy`.
    pub haproxy: Option<PathBuf>,
    /// The real `redis-server` (`$EVIO_REAL_REDIS`, else the first one
    /// found that is not ours).
    pub real_redis: Option<PathBuf>,
}

impl Tools {
    /// Looks the tools up (see [`which`]); `bin_dir` holds our binaries,
    /// whose `redis-server` is not the real one.
    pub fn find(bin_dir: &Path) -> Tools {
        Tools {
            strace: which("strace"),
            redis_benchmark: which("redis-benchmark"),
            wrk: which("wrk"),
            nginx: which("nginx"),
            haproxy: which("haproxy"),
            real_redis: std::env::var_os("EVIO_REAL_REDIS")
                .map(PathBuf::from)
                .or_else(|| which_not_in("redis-server", bin_dir)),
        }
    }
}

/// Everything a run needs to know; recorded in the results JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Smoke mode: short runs, one round, a subset of the loads.
    pub smoke: bool,
    /// Add the traced runs (system calls per request).
    pub strace: bool,
    /// A B A B rounds.
    pub rounds: usize,
    /// Measured seconds per echo/http run.
    pub duration: f64,
    /// Echo warm-up seconds.
    pub warmup: f64,
    /// The workloads to run, in order.
    pub workloads: Vec<String>,
    /// Idle connections of the memory workload.
    pub mem_conns: usize,
    /// redis-benchmark requests per test at `-P 1`.
    pub redis_n: u64,
    /// Whether servers and loads are pinned to cores.
    pub pinned: bool,
    /// Where our binaries, loadgen and the peers are.
    pub bin_dir: PathBuf,
    /// Where the baseline copies of our servers are (`--compare`).
    pub compare: Option<PathBuf>,
    /// Loop counts of the scaling workload.
    pub loops: Vec<usize>,
    /// Online cores.
    pub cores: usize,
    /// The external tools found.
    pub tools: Tools,
    /// The results JSON (markdown and charts beside it).
    #[serde(skip)]
    pub out_json: PathBuf,
    /// Scratch directory (configs, logs, strace output), removed at exit.
    #[serde(skip)]
    pub tmp: PathBuf,
}

/// The workspace root (where `Cargo.toml` of the workspace is), else the
/// current directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(p) if p.join("Cargo.toml").exists() => p.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Where the binaries are: `$EVIO_BIN_DIR`, else the runner's own directory
/// when it is a `release` directory, else `target/release` of the workspace.
pub fn bin_dir(root: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("EVIO_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(d) = &exe_dir {
        if d.file_name().is_some_and(|n| n == "release") {
            return d.clone();
        }
    }
    let release = root.join("target").join("release");
    if release.join("loadgen").exists() {
        return release;
    }
    exe_dir.unwrap_or(release)
}

/// A comma-separated list of positive numbers (`1,2,4,8`).
pub fn parse_list(text: &str) -> Result<Vec<usize>, String> {
    let v: Result<Vec<usize>, _> = text
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect();
    match v {
        Ok(v) if !v.is_empty() && !v.contains(&0) => Ok(v),
        _ => Err(format!(
            "bad list {text:?}: want positive numbers like 1,2,4,8"
        )),
    }
}

impl Settings {
    /// Settings from `args` (without the program name): see [`Settings::parse`].
    ///
    /// # Errors
    /// As [`Settings::parse`].
    pub fn from_args<I, S>(args: I) -> Result<Settings, CliError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Settings::parse(&mut cli::parser(args))
    }

    /// Settings from the command line ([`USAGE`]).
    ///
    /// # Errors
    /// [`CliError::Help`] / [`CliError::Version`] when asked for, else
    /// [`CliError::Bad`] for an unknown flag, a bad value or settings that
    /// do not go together.
    pub fn parse(p: &mut Parser) -> Result<Settings, CliError> {
        let (mut smoke, mut strace) = (false, false);
        let (mut rounds, mut duration, mut warmup) = (None, None, None);
        let (mut mem_conns, mut redis_n) = (None, None);
        let mut wl = default_workloads().join(",");
        let mut out: Option<PathBuf> = None;
        let mut compare: Option<PathBuf> = None;
        let mut loops = "1,2,4,8".to_string();
        while let Some(arg) = p.next()? {
            match arg {
                Long("smoke") => smoke = true,
                Long("strace") => strace = true,
                Long("rounds") => rounds = Some(cli::value(p, "--rounds")?),
                Long("duration") => duration = Some(cli::value(p, "--duration")?),
                Long("warmup") => warmup = Some(cli::value(p, "--warmup")?),
                Long("workloads") => wl = cli::value(p, "--workloads")?,
                Long("mem-conns") => mem_conns = Some(cli::value(p, "--mem-conns")?),
                Long("redis-n") => redis_n = Some(cli::value(p, "--redis-n")?),
                Long("out") => out = Some(cli::value(p, "--out")?),
                Long("compare") => compare = Some(cli::value(p, "--compare")?),
                Long("loops") => loops = cli::value(p, "--loops")?,
                other => return Err(cli::unexpected(other)),
            }
        }
        // The defaults depend on --smoke, wherever it is on the line.
        let rounds = rounds.unwrap_or(if smoke { 1 } else { 5 });
        let duration = duration.unwrap_or(if smoke { 0.5 } else { 5.0 });
        let warmup = warmup.unwrap_or(if smoke { 0.1 } else { 1.0 });
        let mem_conns = mem_conns.unwrap_or(if smoke { 1000 } else { 10_000 });
        let redis_n = redis_n.unwrap_or(if smoke { 20_000 } else { 200_000 });
        let mut workloads = Vec::new();
        for w in wl.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if !ALL_WORKLOADS.contains(&w) {
                return Err(CliError::Bad(format!(
                    "unknown workload {w:?} (known: {})",
                    ALL_WORKLOADS.join(",")
                )));
            }
            workloads.push(w.to_string());
        }
        if rounds == 0 || !(duration > 0.0 && duration <= 600.0) || !(0.0..=60.0).contains(&warmup)
        {
            return Err(CliError::Bad(
                "--rounds must be positive, --duration in (0, 600], --warmup in [0, 60]".into(),
            ));
        }
        if let Some(dir) = &compare {
            if !dir.is_dir() {
                return Err(CliError::Bad(format!(
                    "--compare {}: not a directory",
                    dir.display()
                )));
            }
        }
        let root = workspace_root();
        let name = if workloads == ["scaling"] {
            "bench-scaling.json"
        } else {
            "bench-results.json"
        };
        let out_json = out.unwrap_or_else(|| {
            if smoke {
                root.join("target/bench-smoke").join(name)
            } else {
                root.join("docs").join(name)
            }
        });
        let tmp = std::env::temp_dir().join(format!("evio-bench-{}", std::process::id()));
        let bin_dir = bin_dir(&root);
        let cores = online_cpus();
        Ok(Settings {
            smoke,
            strace,
            rounds,
            duration,
            warmup,
            workloads,
            mem_conns,
            redis_n,
            pinned: cores >= 2,
            tools: Tools::find(&bin_dir),
            bin_dir,
            compare,
            loops: parse_list(&loops)?,
            cores,
            out_json,
            tmp,
        })
    }

    /// Whether workload `w` was selected.
    pub fn runs(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

/// The line that says how to get a missing tool (apt on Debian, or
/// `$EVIO_BENCH_TOOLS` where there is no package manager).
pub fn missing_tool(tool: &str, package: &str) -> String {
    format!("{tool} not found (apt-get install {package}, or put it in ${TOOLS_ENV})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> std::str::SplitWhitespace<'_> {
        s.split_whitespace()
    }

    #[test]
    fn defaults_and_smoke() {
        let s = Settings::from_args(args("")).unwrap();
        assert_eq!(s.rounds, 5);
        assert_eq!(s.workloads, default_workloads());
        assert!(!s.runs("echo-metrics"));
        assert!(!s.runs("scaling"));
        assert!(s.runs("http-proxy"));
        assert!(s.out_json.ends_with("docs/bench-results.json"));
        let s = Settings::from_args(args("--smoke --workloads scaling --loops 1,2")).unwrap();
        assert_eq!(s.rounds, 1);
        assert_eq!(s.loops, [1, 2]);
        assert!(s
            .out_json
            .ends_with("target/bench-smoke/bench-scaling.json"));
    }

    #[test]
    fn bad_arguments() {
        assert!(Settings::from_args(args("--workloads nope")).is_err());
        let s = Settings::from_args(args("--smoke --workloads http-proxy")).unwrap();
        assert_eq!(s.workloads, ["http-proxy"]);
        assert!(Settings::from_args(args("--loops 0,2")).is_err());
        assert!(Settings::from_args(args("--rounds 0")).is_err());
        assert!(Settings::from_args(args("--compare /no/such/dir")).is_err());
        assert!(Settings::from_args(args("--bogus")).is_err());
        assert_eq!(parse_list("1, 2,4,").unwrap(), [1, 2, 4]);
    }
}
