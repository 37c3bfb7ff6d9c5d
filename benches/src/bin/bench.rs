//! `bench`: the benchmark runner of evio (see docs/benchmarks.md).
//!
//! For each workload it starts each server pinned to core 0 and the load
//! tool pinned to core 1, alternates the servers (A B A B …) for `--rounds`
//! rounds, and reports the medians of requests/s, server CPU per request
//! (utime + stime from /proc, over the measured interval, divided by the
//! requests done), latency and peak RSS; with `--strace`, one more round per
//! server under `strace -c -f` gives system calls per request.
//!
//! It builds nothing: run `cargo build --release --workspace` first. The
//! binaries are looked up in `$EVIO_BIN_DIR`, else `target/release` of the
//! workspace.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evio_benches::args::Args;
use evio_benches::parse::{parse_redis_csv, parse_strace, parse_wrk};
use evio_benches::pattern::Pattern;
use evio_benches::procfs;
use evio_benches::stats::{median, median_opt};
use evio_benches::svg;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{self, Signal};
use nix::unistd::{sysconf, Pid, SysconfVar};
use serde::Serialize;

const USAGE: &str = "\
usage: bench [--smoke] [--strace] [--rounds N] [--duration SECS] [--warmup SECS]
             [--workloads echo,redis,http,memory,loops,proxy] [--out FILE.json]
             [--mem-conns N] [--redis-n N]

Expects `cargo build --release --workspace` to have been run. Binaries are
taken from $EVIO_BIN_DIR, else target/release of the workspace.
  --smoke        ~1 s per run, 1 round, small counts (CI); default output
                 in target/bench-smoke/ instead of docs/
  --strace       one extra round per server under `strace -c -f`:
                 system calls and epoll_ctl calls per request
  --rounds N     A B A B rounds (default 5, smoke 1)
  --duration S   measured seconds of each echo/http run (default 5, smoke 1)
  --warmup S     echo warm-up seconds (default 1, smoke 0.2)
  --out FILE     results JSON (default docs/bench-results.json); the
                 markdown (.md) and SVG charts go next to it
  --mem-conns N  idle connections of the memory workload (default 10000,
                 smoke 2000)
  --redis-n N    redis-benchmark requests per test at -P 1; scaled by the
                 pipeline depth (default 200000, smoke 20000)";

const ALL_WORKLOADS: [&str; 6] = ["echo", "redis", "http", "memory", "loops", "proxy"];

// ---------------------------------------------------------------- settings

#[derive(Debug, Clone, Serialize)]
struct Settings {
    smoke: bool,
    strace: bool,
    rounds: usize,
    duration: f64,
    warmup: f64,
    workloads: Vec<String>,
    mem_conns: usize,
    redis_n: u64,
    pinned: bool,
    bin_dir: PathBuf,
    #[serde(skip)]
    out_json: PathBuf,
    #[serde(skip)]
    tmp: PathBuf,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(p) if p.join("Cargo.toml").exists() => p.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

fn bin_dir(root: &Path) -> PathBuf {
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

fn online_cpus() -> usize {
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 1,
    }
}

fn parse_settings() -> Result<Settings, String> {
    let mut a = Args::from_env();
    if a.flag("--help") || a.flag("-h") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let smoke = a.flag("--smoke");
    let strace = a.flag("--strace");
    let rounds = a.value_or("--rounds", if smoke { 1 } else { 5 })?;
    let duration = a.value_or("--duration", if smoke { 1.0 } else { 5.0 })?;
    let warmup = a.value_or("--warmup", if smoke { 0.2 } else { 1.0 })?;
    let wl: String = a.value_or("--workloads", ALL_WORKLOADS.join(","))?;
    let mem_conns = a.value_or("--mem-conns", if smoke { 2000 } else { 10_000 })?;
    let redis_n = a.value_or("--redis-n", if smoke { 20_000 } else { 200_000 })?;
    let out: Option<PathBuf> = a.value("--out")?;
    a.finish()?;
    let mut workloads = Vec::new();
    for w in wl.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if !ALL_WORKLOADS.contains(&w) {
            return Err(format!(
                "unknown workload {w:?} (known: {})",
                ALL_WORKLOADS.join(",")
            ));
        }
        workloads.push(w.to_string());
    }
    if rounds == 0 || !(duration > 0.0 && duration <= 600.0) || !(0.0..=60.0).contains(&warmup) {
        return Err(
            "--rounds must be positive, --duration in (0, 600], --warmup in [0, 60]".into(),
        );
    }
    let root = workspace_root();
    let out_json = out.unwrap_or_else(|| {
        if smoke {
            root.join("target/bench-smoke/bench-results.json")
        } else {
            root.join("docs/bench-results.json")
        }
    });
    let tmp = std::env::temp_dir().join(format!("evio-bench-{}", std::process::id()));
    Ok(Settings {
        smoke,
        strace,
        rounds,
        duration,
        warmup,
        workloads,
        mem_conns,
        redis_n,
        pinned: online_cpus() >= 2,
        bin_dir: bin_dir(&root),
        out_json,
        tmp,
    })
}

// ---------------------------------------------------------------- processes

/// Where a process may run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cpus {
    /// One core.
    Core(usize),
    /// Every online core.
    All,
}

/// Pins the calling thread to `cpus`.
fn set_affinity(cpus: Cpus) -> io::Result<()> {
    let mut set = CpuSet::new();
    match cpus {
        Cpus::Core(c) => set.set(c)?,
        Cpus::All => {
            for c in 0..online_cpus().min(CpuSet::count()) {
                set.set(c)?;
            }
        }
    }
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Held while a child is being started; the interrupt handler takes it for
/// good, so that no child starts after it has swept them away.
static SPAWN: Mutex<()> = Mutex::new(());

/// Starts `cmd` pinned to `cpus` (like `taskset -c N`, without an extra
/// process): a child starts with the CPU affinity of the thread that forks
/// it, so this thread moves to `cpus` for the spawn and then back.
fn spawn(cmd: &mut Command, cpus: Option<Cpus>) -> io::Result<Child> {
    let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(cpus) = cpus else {
        return cmd.spawn();
    };
    let me = Pid::from_raw(0);
    let old = sched_getaffinity(me)?;
    set_affinity(cpus)?;
    let child = cmd.spawn();
    let restored = sched_setaffinity(me, &old);
    let mut child = child?;
    if let Err(e) = restored {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.into());
    }
    Ok(child)
}

/// Kills and reaps a child when dropped, unless it has been waited for
/// already (an early return, a panic).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn kill(pid: i32, sig: Signal) {
    let _ = signal::kill(Pid::from_raw(pid), sig);
}

/// On SIGINT or SIGTERM, kills every process the runner started (with their
/// children: an nginx worker, strace's tracee), removes the temporary
/// directory and exits with 128 + the signal number. A signal ignored when
/// the runner started (a background job of a script) stays ignored.
fn on_interrupt_clean_up(tmp: PathBuf) {
    let got = Arc::new(AtomicUsize::new(0));
    let ignored = procfs::ignored_signals();
    let mut any = false;
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let n = sig as i32;
        if ignored & (1 << (n - 1)) == 0
            && signal_hook::flag::register_usize(n, got.clone(), n as usize).is_ok()
        {
            any = true;
        }
    }
    if !any {
        return;
    }
    std::thread::spawn(move || loop {
        let sig = got.load(Ordering::SeqCst);
        if sig == 0 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // Never released: no child starts from now on.
        let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id() as i32;
        let kids = procfs::tree(me);
        for p in &kids[1..] {
            kill(*p, Signal::SIGKILL);
        }
        let _ = fs::remove_dir_all(&tmp);
        let name = Signal::try_from(sig as i32).map_or("signal", Signal::as_str);
        eprintln!(
            "bench: {name}: killed {} child process(es); stopping",
            kids.len() - 1
        );
        std::process::exit(128 + sig as i32);
    });
}

/// Kills a process that runs past its time.
struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn new(pid: i32, limit: Duration, what: String) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !d.load(Ordering::Relaxed) {
                if t0.elapsed() > limit {
                    eprintln!("bench: {what} ran past {limit:?}; killing it");
                    kill(pid, Signal::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The first `name` on PATH that is not the one in `not_in`.
fn which_not_in(name: &str, not_in: &Path) -> Option<PathBuf> {
    let ours = fs::canonicalize(not_in.join(name)).ok();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .find(|p| fs::canonicalize(p).ok() != ours)
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------- servers

#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    Plain,
    /// Write an nginx config into a fresh prefix directory first.
    Nginx,
    /// Write an HAProxy config (TCP mode, one thread, forwarding to the
    /// run's backend) into a temp file first.
    Haproxy,
}

/// How a server is started: `{port}` in an argument becomes the port.
#[derive(Debug, Clone)]
struct ServerSpec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    setup: Setup,
}

impl ServerSpec {
    fn new(name: &str, program: PathBuf, args: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
            setup: Setup::Plain,
        }
    }
}

struct Server {
    child: Child,
    /// The server process (under strace: strace's child).
    pid: i32,
    port: u16,
    log: PathBuf,
    traced: bool,
}

fn nginx_conf(prefix: &Path, port: u16) -> String {
    let p = prefix.display();
    format!(
        "worker_processes 1;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         worker_rlimit_nofile 30000;\n\
         events {{ worker_connections 20000; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   keepalive_requests 1000000000;\n\
         \x20   client_body_temp_path {p}/body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{ return 200 \"Hello World!\\r\\n\"; }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// HAProxy as a plain L4 proxy: TCP mode, one thread, no logging, every
/// connection forwarded to `backend`.
fn haproxy_conf(port: u16, backend: u16) -> String {
    format!(
        "global\n\
         \x20   nbthread 1\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 120s\n\
         \x20   timeout server 120s\n\
         frontend fe\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend be\n\
         backend be\n\
         \x20   server echo 127.0.0.1:{backend}\n"
    )
}

/// Starts a server on a free port. `backend`: the port a proxy forwards to
/// (`{backend}` in an argument becomes `127.0.0.1:PORT`).
fn start_server(
    s: &Settings,
    spec: &ServerSpec,
    cpus: Option<Cpus>,
    strace_out: Option<&Path>,
    backend: Option<u16>,
) -> Result<Server, String> {
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let backend_addr = format!("127.0.0.1:{}", backend.unwrap_or(0));
    let mut args: Vec<String> = spec
        .args
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{backend}", &backend_addr)
        })
        .collect();
    if spec.setup == Setup::Haproxy {
        let backend = backend.ok_or("haproxy needs a backend")?;
        let conf = s.tmp.join(format!("haproxy-{port}.cfg"));
        fs::write(&conf, haproxy_conf(port, backend)).map_err(|e| e.to_string())?;
        args = vec!["-f".into(), conf.display().to_string(), "-db".into()];
    }
    if spec.setup == Setup::Nginx {
        let prefix = s.tmp.join(format!("nginx-{port}"));
        fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, nginx_conf(&prefix, port)).map_err(|e| e.to_string())?;
        let pre = prefix.display().to_string();
        args = vec![
            "-p".into(),
            pre.clone(),
            "-e".into(),
            format!("{pre}/error.log"),
            "-c".into(),
            conf.display().to_string(),
            "-g".into(),
            "daemon off;".into(),
        ];
    }
    let log = s
        .tmp
        .join(format!("{}-{port}.log", spec.name.replace(' ', "_")));
    let logf = fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut cmd = if let Some(out) = strace_out {
        let mut c = Command::new("strace");
        c.arg("-c").arg("-f").arg("-o").arg(out).arg(&spec.program);
        c
    } else {
        Command::new(&spec.program)
    };
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf);
    let child =
        spawn(&mut cmd, cpus).map_err(|e| format!("start {}: {e}", spec.program.display()))?;
    let mut srv = Server {
        pid: child.id() as i32,
        child,
        port,
        log,
        traced: strace_out.is_some(),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = srv.child.try_wait() {
            return Err(format!(
                "{} exited at start ({st}); its log:\n{}",
                spec.name,
                tail(&srv.log, 10)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            srv.stop();
            return Err(format!(
                "{} did not accept connections on {addr}",
                spec.name
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if srv.traced {
        // The server is strace's child.
        let t0 = Instant::now();
        loop {
            let t = procfs::tree(srv.pid);
            if let Some(&p) = t.get(1) {
                srv.pid = p;
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("cannot find the traced server process".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Let it settle (nginx: the worker starts after the master binds).
    std::thread::sleep(Duration::from_millis(if s.smoke { 50 } else { 200 }));
    Ok(srv)
}

impl Server {
    fn stop(&mut self) {
        let root = self.child.id() as i32;
        let tree = procfs::tree(root);
        kill(self.pid, Signal::SIGTERM);
        let t0 = Instant::now();
        let limit = Duration::from_secs(if self.traced { 10 } else { 3 });
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if t0.elapsed() > limit => {
                    for p in &tree {
                        kill(*p, Signal::SIGKILL);
                    }
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        // Leftovers (e.g. an nginx worker).
        for p in &tree[1..] {
            if procfs::stat(*p).is_some_and(|st| st.ppid == root || st.ppid == 1) {
                kill(*p, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// The group's backend (for proxies), started fresh for one run on the load
/// generator's core; stopped when dropped.
fn start_backend(s: &Settings, g: &Group) -> Result<Option<Server>, String> {
    match &g.backend {
        Some(spec) => start_server(s, spec, g.load_cpus, None, None)
            .map(Some)
            .map_err(|e| format!("backend: {e}")),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------- loads

#[derive(Debug, Clone, PartialEq)]
enum Load {
    Echo {
        conns: usize,
        size: usize,
        depth: usize,
    },
    Redis {
        test: String,
        pipeline: usize,
    },
    Http {
        conns: usize,
        pipeline: usize,
    },
}

impl Load {
    fn label(&self) -> String {
        match self {
            Load::Echo { conns, size, depth } => {
                format!("{conns} conns × {size} B × {depth} in flight")
            }
            Load::Redis { test, pipeline } => format!("{test} -c 50 -P {pipeline}"),
            Load::Http { conns, pipeline: 1 } => format!("{conns} conns"),
            Load::Http { conns, pipeline } => format!("{conns} conns, pipeline {pipeline}"),
        }
    }

    fn short(&self) -> String {
        match self {
            Load::Echo { conns, size, depth } => format!("{conns}×{size}B×{depth}"),
            Load::Redis { test, pipeline } => format!("{} P{pipeline}", test.to_lowercase()),
            Load::Http { conns, pipeline: 1 } => format!("c{conns}"),
            Load::Http { conns, pipeline } => format!("c{conns} P{pipeline}"),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Default, Serialize)]
struct RunResult {
    ok: bool,
    requests: u64,
    secs: f64,
    rate: f64,
    cpu_us_per_req: Option<f64>,
    /// The kernel's part of `cpu_us_per_req` (stime).
    sys_us_per_req: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    peak_rss_kb: Option<u64>,
    errors: u64,
    verify_errors: u64,
    /// Requests over the server's whole life (echo: warm-up included); what
    /// strace's counts are divided by.
    total_requests: u64,
    note: String,
}

fn cpu_us_per_req(ticks: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| ticks as f64 / procfs::clk_tck() / requests as f64 * 1e6)
}

impl RunResult {
    /// Sets the CPU figures from the server's ticks before and after.
    fn set_cpu(&mut self, before: procfs::CpuTicks, after: procfs::CpuTicks, requests: u64) {
        let d = after.since(before);
        self.cpu_us_per_req = cpu_us_per_req(d.total(), requests);
        self.sys_us_per_req = cpu_us_per_req(d.sys, requests);
    }
}

fn run_load(
    s: &Settings,
    load: &Load,
    srv: &Server,
    cpus: Option<Cpus>,
    label: &str,
) -> Result<RunResult, String> {
    let log = s.tmp.join(format!("load-{}.log", srv.port));
    let logf = fs::File::create(&log).map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", srv.port);
    let mut r = RunResult::default();
    match load {
        Load::Echo { conns, size, depth } => {
            let mut cmd = Command::new(s.bin_dir.join("loadgen"));
            cmd.args(["--addr", &addr, "--marks"])
                .args(["--conns", &conns.to_string(), "--size", &size.to_string()])
                .args(["--depth", &depth.to_string()])
                .args(["--duration", &s.duration.to_string()])
                .args(["--warmup", &s.warmup.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(logf);
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
                    l if l.starts_with('{') => {
                        json = serde_json::from_str::<serde_json::Value>(l).ok()
                    }
                    _ => {}
                }
            }
            let st = child.0.wait().map_err(|e| e.to_string())?;
            let Some(j) = json else {
                return Err(format!(
                    "loadgen gave no result ({st}):\n{}",
                    tail(&log, 10)
                ));
            };
            let f = |k: &str| j.get(k).and_then(|v| v.as_f64());
            let u = |k: &str| j.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            r.requests = u("messages");
            r.total_requests = u("total_messages");
            r.secs = f("secs").unwrap_or(0.0);
            r.rate = f("rate").unwrap_or(0.0);
            r.p50_us = f("p50_us");
            r.p99_us = f("p99_us");
            r.p999_us = f("p999_us");
            r.errors = u("errors") + u("stalled");
            r.verify_errors = u("verify_errors");
            if let (Some(a), Some(b)) = (c0, c1) {
                r.set_cpu(a, b, r.requests);
            }
            r.ok = st.success() && r.verify_errors == 0 && r.requests > 0;
            if !r.ok {
                r.note = format!("loadgen: {st}: {}", tail(&log, 3).replace('\n', " | "));
            }
        }
        Load::Redis { test, pipeline } => {
            let n = s.redis_n * *pipeline as u64;
            let mut cmd = Command::new("redis-benchmark");
            cmd.args(["-h", "127.0.0.1", "-p", &srv.port.to_string(), "-c", "50"])
                .args(["-n", &n.to_string(), "-P", &pipeline.to_string()])
                .args(["-t", &test.to_lowercase(), "--csv"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(logf);
            let c0 = procfs::tree_cpu_ticks(srv.pid);
            let child = spawn(&mut cmd, cpus).map_err(|e| format!("start redis-benchmark: {e}"))?;
            let limit = Duration::from_secs(if s.smoke { 60 } else { 300 });
            let wd = Watchdog::new(
                child.id() as i32,
                limit,
                format!("redis-benchmark ({label})"),
            );
            let t0 = Instant::now();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            drop(wd);
            let c1 = procfs::tree_cpu_ticks(srv.pid);
            let text = String::from_utf8_lossy(&out.stdout);
            let rows = parse_redis_csv(&text);
            let Some(row) = rows.first() else {
                return Err(format!(
                    "redis-benchmark gave no result ({}): {} {}",
                    out.status,
                    text.trim(),
                    tail(&log, 5)
                ));
            };
            r.requests = n;
            r.total_requests = n;
            r.secs = t0.elapsed().as_secs_f64();
            r.rate = row.rps;
            r.p50_us = row.p50_ms.map(|v| v * 1e3);
            r.p99_us = row.p99_ms.map(|v| v * 1e3);
            r.set_cpu(c0, c1, n);
            r.ok = out.status.success() && row.rps > 0.0;
        }
        Load::Http { conns, pipeline } => {
            let secs = s.duration.ceil().max(1.0) as u64;
            let mut cmd = Command::new("wrk");
            cmd.args([
                "-t1",
                &format!("-c{conns}"),
                &format!("-d{secs}s"),
                "--latency",
            ]);
            if *pipeline > 1 {
                let script = s.tmp.join("pipeline.lua");
                fs::write(&script, include_str!("../../pipeline.lua"))
                    .map_err(|e| e.to_string())?;
                cmd.arg("-s").arg(&script);
            }
            cmd.arg(format!("http://{addr}/"));
            if *pipeline > 1 {
                cmd.args(["--", &pipeline.to_string()]);
            }
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(logf);
            let c0 = procfs::tree_cpu_ticks(srv.pid);
            let child = spawn(&mut cmd, cpus).map_err(|e| format!("start wrk: {e}"))?;
            let wd = Watchdog::new(
                child.id() as i32,
                Duration::from_secs(secs + 60),
                format!("wrk ({label})"),
            );
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            drop(wd);
            let c1 = procfs::tree_cpu_ticks(srv.pid);
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(w) = parse_wrk(&text) else {
                return Err(format!(
                    "wrk gave no result ({}): {} {}",
                    out.status,
                    text.trim(),
                    tail(&log, 5)
                ));
            };
            r.requests = w.requests;
            r.total_requests = w.requests;
            r.secs = w.secs;
            r.rate = w.rps;
            r.p50_us = w.p50_us;
            r.p99_us = w.p99_us;
            r.errors = w.socket_errors + w.bad_status;
            r.verify_errors = w.bad_status;
            r.set_cpu(c0, c1, w.requests);
            r.ok = out.status.success() && w.requests > 0 && w.bad_status == 0;
            if w.bad_status > 0 {
                r.note = format!("{} non-2xx/3xx responses", w.bad_status);
            }
        }
    }
    let hwm = procfs::tree_status_kb(srv.pid, "VmHWM");
    r.peak_rss_kb = (hwm > 0).then_some(hwm);
    Ok(r)
}

// ---------------------------------------------------------------- memory

#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    Echo,
    RedisPing,
}

#[derive(Debug, Clone, Default, Serialize)]
struct MemResult {
    ok: bool,
    conns: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    bytes_per_conn: f64,
    note: String,
}

fn round_trip(sock: &mut TcpStream, probe: Probe, pat: &Pattern, i: usize) -> io::Result<()> {
    let start = Pattern::start_for(i);
    let (req, want): (Vec<u8>, Vec<u8>) = match probe {
        Probe::Echo => {
            let m = pat.slice(start, 0, 64).to_vec();
            (m.clone(), m)
        }
        Probe::RedisPing => (b"PING\r\n".to_vec(), b"+PONG\r\n".to_vec()),
    };
    sock.write_all(&req)?;
    let mut got = vec![0u8; want.len()];
    sock.read_exact(&mut got)?;
    if got != want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrong reply {:?}", String::from_utf8_lossy(&got)),
        ));
    }
    Ok(())
}

/// Opens the idle connections; returns them so that the caller can stop the
/// server before they close (the TIME_WAIT entries then land on the server's
/// side, and the client's ports stay free).
fn run_memory(s: &Settings, srv: &Server, probe: Probe) -> (MemResult, Vec<TcpStream>) {
    let mut m = MemResult {
        conns: s.mem_conns,
        ..Default::default()
    };
    let addr: SocketAddr = ([127, 0, 0, 1], srv.port).into();
    m.rss_before_kb = procfs::tree_status_kb(srv.pid, "VmRSS");
    let pat = Pattern::new();
    let mut socks = Vec::with_capacity(s.mem_conns);
    let t0 = Instant::now();
    for i in 0..s.mem_conns {
        let res = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).and_then(|mut sock| {
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            sock.set_write_timeout(Some(Duration::from_secs(5)))?;
            sock.set_nodelay(true)?;
            round_trip(&mut sock, probe, &pat, i)?;
            Ok(sock)
        });
        match res {
            Ok(sock) => socks.push(sock),
            Err(e) => {
                m.note = format!("connection {i}: {e}");
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            m.note = format!("gave up after {i} connections (120 s)");
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    m.rss_after_kb = procfs::tree_status_kb(srv.pid, "VmRSS");
    m.ok = socks.len() == s.mem_conns && m.note.is_empty();
    if !socks.is_empty() {
        m.bytes_per_conn =
            (m.rss_after_kb as f64 - m.rss_before_kb as f64) * 1024.0 / socks.len() as f64;
    }
    (m, socks)
}

// ---------------------------------------------------------------- plan

/// One load run against several servers, A B A B.
struct Group {
    workload: &'static str,
    load: Load,
    reference: Option<String>,
    servers: Vec<ServerSpec>,
    server_cpus: Option<Cpus>,
    load_cpus: Option<Cpus>,
    /// For proxies: the server behind them (started fresh for each run,
    /// on `load_cpus`), whose port replaces `{backend}`.
    backend: Option<ServerSpec>,
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Run {
        group: usize,
        server: usize,
        round: usize,
    },
    Strace {
        group: usize,
        server: usize,
    },
    Mem {
        server: usize,
        round: usize,
    },
}

struct Servers {
    ours_echo: Option<ServerSpec>,
    ours_http: Option<ServerSpec>,
    ours_redis: Option<ServerSpec>,
    tokio_echo: Option<ServerSpec>,
    mio_echo: Option<ServerSpec>,
    real_redis: Option<ServerSpec>,
    nginx: Option<ServerSpec>,
    ours_proxy: Option<ServerSpec>,
    haproxy: Option<ServerSpec>,
}

const OURS: &str = "evio-rs";

fn discover(s: &Settings, notes: &mut Vec<String>) -> Servers {
    let bin = |name: &str, label: &str, notes: &mut Vec<String>| {
        let p = s.bin_dir.join(name);
        if p.is_file() {
            Some(ServerSpec::new(label, p, &["--port", "{port}"]))
        } else {
            notes.push(format!(
                "{label}: {} not found (run `cargo build --release --workspace`); skipped",
                p.display()
            ));
            None
        }
    };
    let real_redis = match std::env::var_os("EVIO_REAL_REDIS")
        .map(PathBuf::from)
        .or_else(|| which_not_in("redis-server", &s.bin_dir))
    {
        Some(p) => Some(ServerSpec::new(
            "redis-server",
            p,
            &[
                "--port",
                "{port}",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "30000",
            ],
        )),
        None => {
            notes
                .push("redis-server (the real one) not found: apt-get install redis-server".into());
            None
        }
    };
    let nginx = match which("nginx") {
        Some(p) => Some(ServerSpec {
            setup: Setup::Nginx,
            ..ServerSpec::new("nginx", p, &[])
        }),
        None => {
            notes.push("nginx not found: apt-get install nginx-light".into());
            None
        }
    };
    let haproxy = match which("haproxy") {
        Some(p) => Some(ServerSpec {
            setup: Setup::Haproxy,
            ..ServerSpec::new("haproxy", p, &[])
        }),
        None => {
            notes.push("haproxy not found: apt-get install haproxy".into());
            None
        }
    };
    let ours_proxy = bin("proxy", OURS, notes).map(|mut spec| {
        spec.args
            .extend(["--backend".to_string(), "{backend}".to_string()]);
        spec
    });
    Servers {
        ours_echo: bin("echo-server", OURS, notes),
        ours_http: bin("http-server", OURS, notes),
        ours_redis: bin("redis-server", OURS, notes),
        tokio_echo: bin("tokio-echo", "tokio-echo", notes),
        mio_echo: bin("mio-echo", "mio-echo", notes),
        real_redis,
        nginx,
        ours_proxy,
        haproxy,
    }
}

fn plan(
    s: &Settings,
    sv: &Servers,
    notes: &mut Vec<String>,
) -> (Vec<Group>, Vec<(ServerSpec, Probe)>, Vec<Job>) {
    let pinned = s.pinned;
    let (server_cpus, load_cpus) = if pinned {
        (Some(Cpus::Core(0)), Some(Cpus::Core(1)))
    } else {
        (None, None)
    };
    let have_loadgen = s.bin_dir.join("loadgen").is_file();
    let mut groups = Vec::new();
    let mut mem_servers = Vec::new();
    let mut jobs = Vec::new();
    let some = |v: &[&Option<ServerSpec>]| -> Vec<ServerSpec> {
        v.iter().filter_map(|x| (*x).clone()).collect()
    };
    for w in &s.workloads {
        let first_group = groups.len();
        match w.as_str() {
            "echo" => {
                if !have_loadgen {
                    notes.push("echo: loadgen not built; skipped".into());
                    continue;
                }
                let servers = some(&[&sv.ours_echo, &sv.tokio_echo, &sv.mio_echo]);
                for (conns, size, depth) in [(50, 64, 1), (50, 6, 16), (1000, 1024, 1)] {
                    groups.push(Group {
                        workload: "echo",
                        load: Load::Echo { conns, size, depth },
                        reference: Some("tokio-echo".into()),
                        servers: servers.clone(),
                        server_cpus,
                        load_cpus,
                        backend: None,
                    });
                }
            }
            "redis" => {
                if which("redis-benchmark").is_none() {
                    notes.push(
                        "redis: redis-benchmark not found (apt-get install redis-tools); skipped"
                            .into(),
                    );
                    continue;
                }
                let servers = some(&[&sv.ours_redis, &sv.real_redis]);
                for pipeline in [1, 8, 16] {
                    for test in ["PING_INLINE", "SET", "GET"] {
                        groups.push(Group {
                            workload: "redis",
                            load: Load::Redis {
                                test: test.into(),
                                pipeline,
                            },
                            reference: Some("redis-server".into()),
                            servers: servers.clone(),
                            server_cpus,
                            load_cpus,
                            backend: None,
                        });
                    }
                }
            }
            "http" => {
                if which("wrk").is_none() {
                    notes.push("http: wrk not found (apt-get install wrk); skipped".into());
                    continue;
                }
                let servers = some(&[&sv.ours_http, &sv.nginx]);
                for (conns, pipeline) in [(50, 1), (256, 1), (50, 16)] {
                    groups.push(Group {
                        workload: "http",
                        load: Load::Http { conns, pipeline },
                        reference: Some("nginx".into()),
                        servers: servers.clone(),
                        server_cpus,
                        load_cpus,
                        backend: None,
                    });
                }
            }
            "memory" => {
                for (spec, probe) in [
                    (&sv.ours_echo, Probe::Echo),
                    (&sv.tokio_echo, Probe::Echo),
                    (&sv.mio_echo, Probe::Echo),
                    (&sv.ours_redis, Probe::RedisPing),
                    (&sv.real_redis, Probe::RedisPing),
                ] {
                    if let Some(spec) = spec {
                        let mut spec = spec.clone();
                        if probe == Probe::RedisPing && spec.name == OURS {
                            spec.name = format!("{OURS} (redis)");
                        }
                        mem_servers.push((spec, probe));
                    }
                }
                for round in 0..s.rounds {
                    for server in 0..mem_servers.len() {
                        jobs.push(Job::Mem { server, round });
                    }
                }
            }
            "loops" => {
                let Some(ours) = &sv.ours_echo else {
                    notes.push("loops: our echo-server is not built; skipped".into());
                    continue;
                };
                if !have_loadgen {
                    notes.push("loops: loadgen not built; skipped".into());
                    continue;
                }
                let servers = [1, 2]
                    .map(|n| {
                        let mut spec = ours.clone();
                        spec.name = format!("{OURS} --loops {n}");
                        spec.args.extend(["--loops".to_string(), n.to_string()]);
                        spec
                    })
                    .to_vec();
                groups.push(Group {
                    workload: "loops",
                    load: Load::Echo {
                        conns: 50,
                        size: 64,
                        depth: 1,
                    },
                    reference: Some(format!("{OURS} --loops 1")),
                    servers,
                    server_cpus: pinned.then_some(Cpus::All),
                    load_cpus: pinned.then_some(Cpus::All),
                    backend: None,
                });
            }
            "proxy" => {
                if !have_loadgen {
                    notes.push("proxy: loadgen not built; skipped".into());
                    continue;
                }
                let Some(backend) = sv.mio_echo.clone() else {
                    notes.push("proxy: mio-echo (the backend) is not built; skipped".into());
                    continue;
                };
                let servers = some(&[&sv.ours_proxy, &sv.haproxy]);
                for (conns, size, depth) in [(50, 64, 1), (50, 6, 16)] {
                    groups.push(Group {
                        workload: "proxy",
                        load: Load::Echo { conns, size, depth },
                        reference: Some("haproxy".into()),
                        servers: servers.clone(),
                        server_cpus,
                        // The backend shares the load generator's core.
                        load_cpus,
                        backend: Some(backend.clone()),
                    });
                }
            }
            _ => unreachable!("checked in parse_settings"),
        }
        for (g, group) in groups.iter().enumerate().skip(first_group) {
            let n = group.servers.len();
            if n == 0 {
                notes.push(format!("{w}: no server to run; skipped"));
                continue;
            }
            for round in 0..s.rounds {
                for server in 0..n {
                    jobs.push(Job::Run {
                        group: g,
                        server,
                        round,
                    });
                }
            }
            if s.strace {
                for server in 0..n {
                    jobs.push(Job::Strace { group: g, server });
                }
            }
        }
    }
    (groups, mem_servers, jobs)
}

// ---------------------------------------------------------------- results

#[derive(Debug, Clone, Serialize)]
struct StraceRow {
    requests: u64,
    syscalls: u64,
    syscalls_per_req: f64,
    epoll_ctl: u64,
    epoll_ctl_per_req: f64,
    top: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    workload: String,
    load: String,
    load_short: String,
    server: String,
    reference: Option<String>,
    ok_rounds: usize,
    rate: Option<f64>,
    cpu_us_per_req: Option<f64>,
    /// Median kernel (stime) part of the CPU per request.
    sys_us_per_req: Option<f64>,
    cpu_vs_reference: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    peak_rss_kb: Option<f64>,
    rounds: Vec<RunResult>,
    strace: Option<StraceRow>,
}

#[derive(Debug, Clone, Serialize)]
struct MemRow {
    server: String,
    conns: usize,
    ok_rounds: usize,
    rss_before_kb: Option<f64>,
    rss_after_kb: Option<f64>,
    bytes_per_conn: Option<f64>,
    rounds: Vec<MemResult>,
}

#[derive(Debug, Clone, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    clk_tck: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    generated_by: &'static str,
    date_utc: String,
    machine: Machine,
    settings: Settings,
    notes: Vec<String>,
    failures: Vec<String>,
    rows: Vec<Row>,
    memory: Vec<MemRow>,
}

fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        cpu,
        cores: online_cpus(),
        kernel,
        clk_tck: procfs::clk_tck(),
    }
}

/// UTC date and time, from the system clock (no date crate).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn build_rows(
    groups: &[Group],
    runs: &BTreeMap<(usize, usize), Vec<RunResult>>,
    straces: &BTreeMap<(usize, usize), StraceRow>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let first = rows.len();
        for (si, spec) in group.servers.iter().enumerate() {
            let rounds = runs.get(&(g, si)).cloned().unwrap_or_default();
            let ok: Vec<&RunResult> = rounds.iter().filter(|r| r.ok).collect();
            let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                median_opt(&ok.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            rows.push(Row {
                workload: group.workload.to_string(),
                load: group.load.label(),
                load_short: group.load.short(),
                server: spec.name.clone(),
                reference: group.reference.clone(),
                ok_rounds: ok.len(),
                rate: med(&|r| Some(r.rate)),
                cpu_us_per_req: med(&|r| r.cpu_us_per_req),
                sys_us_per_req: med(&|r| r.sys_us_per_req),
                cpu_vs_reference: None,
                p50_us: med(&|r| r.p50_us),
                p99_us: med(&|r| r.p99_us),
                peak_rss_kb: med(&|r| r.peak_rss_kb.map(|v| v as f64)),
                rounds,
                strace: straces.get(&(g, si)).cloned(),
            });
        }
        let reference = group.reference.as_ref().and_then(|name| {
            rows[first..]
                .iter()
                .find(|r| &r.server == name)
                .and_then(|r| r.cpu_us_per_req)
        });
        if let Some(base) = reference.filter(|b| *b > 0.0) {
            for r in &mut rows[first..] {
                r.cpu_vs_reference = r.cpu_us_per_req.map(|c| c / base);
            }
        }
    }
    rows
}

fn build_mem_rows(
    s: &Settings,
    mem_servers: &[(ServerSpec, Probe)],
    mems: &BTreeMap<usize, Vec<MemResult>>,
) -> Vec<MemRow> {
    mem_servers
        .iter()
        .enumerate()
        .map(|(i, (spec, _))| {
            let rounds = mems.get(&i).cloned().unwrap_or_default();
            let ok: Vec<&MemResult> = rounds.iter().filter(|m| m.ok).collect();
            let med = |f: &dyn Fn(&MemResult) -> f64| {
                median(&ok.iter().map(|m| f(m)).collect::<Vec<_>>())
            };
            MemRow {
                server: spec.name.clone(),
                conns: s.mem_conns,
                ok_rounds: ok.len(),
                rss_before_kb: med(&|m| m.rss_before_kb as f64),
                rss_after_kb: med(&|m| m.rss_after_kb as f64),
                bytes_per_conn: med(&|m| m.bytes_per_conn),
                rounds,
            }
        })
        .collect()
}

fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

fn rate_str(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "–".into(),
    }
}

fn markdown(rep: &Report) -> String {
    let s = &rep.settings;
    let m = &rep.machine;
    let mut o = String::new();
    let _ = writeln!(o, "# evio-rs benchmark results\n");
    let _ = writeln!(
        o,
        "{} UTC, {} ({} cores), Linux {}; {} round(s) A B A B, medians; {} s runs{}{}.\n",
        rep.date_utc,
        m.cpu,
        m.cores,
        m.kernel,
        s.rounds,
        s.duration,
        if s.smoke {
            ", **smoke mode** (too short for conclusions)"
        } else {
            ""
        },
        if s.pinned {
            "; server on core 0, load on core 1"
        } else {
            "; not pinned (fewer than 2 cores)"
        }
    );
    let titles = [
        ("echo", "Echo (loadgen; CPU vs tokio-echo)"),
        (
            "redis",
            "Redis (redis-benchmark -c 50; CPU vs redis-server)",
        ),
        ("http", "HTTP (wrk -t1; CPU vs nginx, 1 worker)"),
        (
            "loops",
            "Event loops (echo 50 conns × 64 B × 1, server and load unpinned)",
        ),
        (
            "proxy",
            "TCP proxy (loadgen → proxy → mio-echo; proxy CPU vs HAProxy, 1 thread)",
        ),
    ];
    for (w, title) in titles {
        let rows: Vec<&Row> = rep.rows.iter().filter(|r| r.workload == w).collect();
        if rows.is_empty() {
            continue;
        }
        let strace = rows.iter().any(|r| r.strace.is_some());
        let _ = writeln!(o, "## {title}\n");
        let _ = write!(
            o,
            "| load | server | req/s | CPU µs/req | CPU vs ref | kernel share | p50 µs | p99 µs | peak RSS MiB |"
        );
        if strace {
            let _ = write!(o, " syscalls/req | epoll_ctl/req |");
        }
        let _ = write!(o, "\n|---|---|--:|--:|--:|--:|--:|--:|--:|");
        if strace {
            let _ = write!(o, "--:|--:|");
        }
        o.push('\n');
        for r in rows {
            let bad = if r.ok_rounds < r.rounds.len() {
                format!(
                    " ({} of {} failed)",
                    r.rounds.len() - r.ok_rounds,
                    r.rounds.len()
                )
            } else {
                String::new()
            };
            let _ = write!(
                o,
                "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
                r.load,
                r.server,
                bad,
                rate_str(r.rate),
                f(r.cpu_us_per_req, 2),
                r.cpu_vs_reference
                    .map_or("–".into(), |v| format!("{v:.2}×")),
                match (r.sys_us_per_req, r.cpu_us_per_req) {
                    (Some(k), Some(c)) if c > 0.0 => format!("{:.0} %", k / c * 100.0),
                    _ => "–".into(),
                },
                f(r.p50_us, 0),
                f(r.p99_us, 0),
                f(r.peak_rss_kb.map(|k| k / 1024.0), 1),
            );
            if strace {
                let _ = write!(
                    o,
                    " {} | {} |",
                    f(r.strace.as_ref().map(|t| t.syscalls_per_req), 2),
                    f(r.strace.as_ref().map(|t| t.epoll_ctl_per_req), 2)
                );
            }
            o.push('\n');
        }
        o.push('\n');
    }
    if !rep.memory.is_empty() {
        let _ = writeln!(
            o,
            "## Memory per idle connection (one round trip each, then idle)\n"
        );
        let _ = writeln!(
            o,
            "| server | connections | RSS before MiB | RSS after MiB | bytes per connection |\n|---|--:|--:|--:|--:|"
        );
        for r in &rep.memory {
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} |",
                r.server,
                if r.ok_rounds < r.rounds.len() {
                    " (failed)"
                } else {
                    ""
                },
                r.conns,
                f(r.rss_before_kb.map(|k| k / 1024.0), 1),
                f(r.rss_after_kb.map(|k| k / 1024.0), 1),
                f(r.bytes_per_conn, 0)
            );
        }
        o.push('\n');
    }
    if !rep.notes.is_empty() || !rep.failures.is_empty() {
        let _ = writeln!(o, "## Notes\n");
        for n in &rep.notes {
            let _ = writeln!(o, "- {n}");
        }
        for n in &rep.failures {
            let _ = writeln!(o, "- FAILED: {n}");
        }
        o.push('\n');
    }
    o.truncate(o.trim_end().len());
    o.push('\n');
    o
}

fn charts(rep: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (w, title, y, use_rate) in [
        (
            "echo",
            "Echo: server CPU per message (lower is better)",
            "µs of CPU per message",
            false,
        ),
        (
            "redis",
            "Redis: server CPU per request (lower is better)",
            "µs of CPU per request",
            false,
        ),
        (
            "http",
            "HTTP: server CPU per request (lower is better)",
            "µs of CPU per request",
            false,
        ),
        (
            "loops",
            "Event loops: echo 50 × 64 B (higher is better)",
            "messages per second",
            true,
        ),
        (
            "proxy",
            "TCP proxy: proxy CPU per message (lower is better)",
            "µs of CPU per message",
            false,
        ),
    ] {
        let rows: Vec<&Row> = rep.rows.iter().filter(|r| r.workload == w).collect();
        if rows.is_empty() {
            continue;
        }
        let mut groups: Vec<String> = Vec::new();
        let mut servers: Vec<String> = Vec::new();
        for r in &rows {
            if !groups.contains(&r.load) {
                groups.push(r.load.clone());
            }
            if !servers.contains(&r.server) {
                servers.push(r.server.clone());
            }
        }
        let series = servers
            .iter()
            .map(|sv| {
                let vals = groups
                    .iter()
                    .map(|g| {
                        rows.iter()
                            .find(|r| &r.load == g && &r.server == sv)
                            .and_then(|r| if use_rate { r.rate } else { r.cpu_us_per_req })
                    })
                    .collect();
                (sv.clone(), vals)
            })
            .collect();
        let short = |label: &str| {
            rows.iter()
                .find(|r| r.load == label)
                .map(|r| r.load_short.clone())
                .unwrap_or_default()
        };
        let ratios = servers
            .iter()
            .map(|sv| {
                let vals = groups
                    .iter()
                    .map(|g| {
                        rows.iter()
                            .find(|r| &r.load == g && &r.server == sv)
                            .and_then(|r| r.cpu_vs_reference)
                    })
                    .collect();
                (sv.clone(), vals)
            })
            .collect();
        let chart = svg::Chart {
            title: title.into(),
            y_label: y.into(),
            groups: groups.iter().map(|g| short(g)).collect(),
            series,
        };
        out.push((format!("bench-{w}.svg"), svg::render(&chart)));
        if let Some(reference) = rows.iter().find_map(|r| r.reference.clone()) {
            let chart = svg::Chart {
                title: format!(
                    "{w}: server CPU per request relative to {reference} (lower is better)"
                ),
                y_label: format!("× {reference}'s CPU per request"),
                groups: groups.iter().map(|g| short(g)).collect(),
                series: ratios,
            };
            out.push((format!("bench-{w}-ratio.svg"), svg::render(&chart)));
        }
    }
    if !rep.memory.is_empty() {
        let chart = svg::Chart {
            title: "Memory per idle connection (lower is better)".into(),
            y_label: "bytes of RSS per connection".into(),
            groups: rep.memory.iter().map(|r| r.server.clone()).collect(),
            series: vec![(
                "bytes per connection".into(),
                rep.memory.iter().map(|r| r.bytes_per_conn).collect(),
            )],
        };
        out.push(("bench-memory.svg".into(), svg::render(&chart)));
    }
    out
}

// ---------------------------------------------------------------- main

/// `[ 7/75]`: the progress tag of run `i` of `n`.
fn tag(i: usize, n: usize) -> String {
    let w = n.to_string().len();
    format!("[{i:>w$}/{n}]")
}

fn progress(i: usize, n: usize, what: &str, r: &Result<RunResult, String>) {
    let t = tag(i, n);
    match r {
        Ok(r) if r.ok => eprintln!(
            "{t} {what}: {} req/s, CPU {} µs/req, p99 {} µs",
            rate_str(Some(r.rate)),
            f(r.cpu_us_per_req, 2),
            f(r.p99_us, 0)
        ),
        Ok(r) => eprintln!("{t} {what}: FAILED {}", r.note),
        Err(e) => eprintln!("{t} {what}: FAILED {e}"),
    }
}

fn strace_row(path: &Path, requests: u64) -> Result<StraceRow, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sum =
        parse_strace(&text).ok_or_else(|| format!("no strace summary in {}", path.display()))?;
    let per = |v: u64| v as f64 / requests.max(1) as f64;
    Ok(StraceRow {
        requests,
        syscalls: sum.total,
        syscalls_per_req: per(sum.total),
        epoll_ctl: sum.count("epoll_ctl"),
        epoll_ctl_per_req: per(sum.count("epoll_ctl")),
        top: sum.calls.iter().take(8).cloned().collect(),
    })
}

fn write_outputs(s: &Settings, rep: &Report, md: &str) -> io::Result<()> {
    let dir = s.out_json.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(rep).map_err(io::Error::other)?;
    fs::write(&s.out_json, json + "\n")?;
    fs::write(s.out_json.with_extension("md"), md)?;
    for (name, body) in charts(rep) {
        fs::write(dir.join(name), body)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut s = match parse_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let t_start = Instant::now();
    let mut notes = Vec::new();
    let limit = evio_sys::net::raise_fd_limit(65_536).unwrap_or(0);
    let need = s.mem_conns as u64 + 256;
    if limit < need {
        let n = limit.saturating_sub(256) as usize;
        notes.push(format!(
            "RLIMIT_NOFILE is {limit}: memory workload reduced from {} to {n} connections",
            s.mem_conns
        ));
        s.mem_conns = n;
    }
    if s.pinned {
        if let Err(e) = set_affinity(Cpus::Core(1)) {
            notes.push(format!(
                "cannot pin (sched_setaffinity: {e}); runs are not pinned"
            ));
            s.pinned = false;
        }
    } else {
        notes.push(format!(
            "only {} core(s): runs are not pinned",
            online_cpus()
        ));
    }
    on_interrupt_clean_up(s.tmp.clone());
    if s.strace && which("strace").is_none() {
        notes.push("--strace: strace not found (apt-get install strace); no syscall counts".into());
        s.strace = false;
    }
    if s.bin_dir.components().any(|c| c.as_os_str() == "debug") {
        notes.push(format!(
            "binaries from {} look like a debug build: figures are not representative",
            s.bin_dir.display()
        ));
    }
    if let Err(e) = fs::create_dir_all(&s.tmp) {
        eprintln!("bench: {}: {e}", s.tmp.display());
        return ExitCode::from(2);
    }
    let servers = discover(&s, &mut notes);
    let (groups, mem_servers, jobs) = plan(&s, &servers, &mut notes);
    for n in &notes {
        eprintln!("bench: note: {n}");
    }
    eprintln!(
        "bench: {} runs ({} mode), binaries from {}",
        jobs.len(),
        if s.smoke { "smoke" } else { "full" },
        s.bin_dir.display()
    );

    let mut runs: BTreeMap<(usize, usize), Vec<RunResult>> = BTreeMap::new();
    let mut straces: BTreeMap<(usize, usize), StraceRow> = BTreeMap::new();
    let mut mems: BTreeMap<usize, Vec<MemResult>> = BTreeMap::new();
    let mut failures = Vec::new();
    let n = jobs.len();
    for (i, job) in jobs.iter().enumerate() {
        let i = i + 1;
        match *job {
            Job::Run {
                group,
                server,
                round,
            } => {
                let g = &groups[group];
                let spec = &g.servers[server];
                let what = format!(
                    "{} {} round {}/{} {}",
                    g.workload,
                    g.load.short(),
                    round + 1,
                    s.rounds,
                    spec.name
                );
                let res = start_backend(&s, g).and_then(|backend| {
                    let port = backend.as_ref().map(|b| b.port);
                    start_server(&s, spec, g.server_cpus, None, port).and_then(|mut srv| {
                        let r = run_load(&s, &g.load, &srv, g.load_cpus, &what);
                        srv.stop();
                        r
                    })
                });
                progress(i, n, &what, &res);
                let r = res.unwrap_or_else(|e| RunResult {
                    note: e,
                    ..Default::default()
                });
                if !r.ok {
                    failures.push(format!("{what}: {}", r.note));
                }
                runs.entry((group, server)).or_default().push(r);
            }
            Job::Strace { group, server } => {
                let g = &groups[group];
                let spec = &g.servers[server];
                let what = format!("{} {} strace {}", g.workload, g.load.short(), spec.name);
                let out = s.tmp.join(format!("strace-{group}-{server}.txt"));
                let res = start_backend(&s, g).and_then(|backend| {
                    let port = backend.as_ref().map(|b| b.port);
                    let mut srv = start_server(&s, spec, g.server_cpus, Some(&out), port)?;
                    let r = run_load(&s, &g.load, &srv, g.load_cpus, &what);
                    srv.stop();
                    let r = r?;
                    if !r.ok {
                        return Err(r.note);
                    }
                    strace_row(&out, r.total_requests)
                });
                match res {
                    Ok(row) => {
                        eprintln!(
                            "{} {what}: {:.2} syscalls/req, {:.3} epoll_ctl/req ({} requests)",
                            tag(i, n),
                            row.syscalls_per_req,
                            row.epoll_ctl_per_req,
                            row.requests
                        );
                        straces.insert((group, server), row);
                    }
                    Err(e) => {
                        eprintln!("{} {what}: FAILED {e}", tag(i, n));
                        failures.push(format!("{what}: {e}"));
                    }
                }
            }
            Job::Mem { server, round } => {
                let (spec, probe) = &mem_servers[server];
                let what = format!(
                    "memory {} conns round {}/{} {}",
                    s.mem_conns,
                    round + 1,
                    s.rounds,
                    spec.name
                );
                let cpus = s.pinned.then_some(Cpus::Core(0));
                let m = match start_server(&s, spec, cpus, None, None) {
                    Ok(mut srv) => {
                        let (m, socks) = run_memory(&s, &srv, *probe);
                        srv.stop();
                        for sock in &socks {
                            let _ = sock.shutdown(Shutdown::Both);
                        }
                        drop(socks);
                        m
                    }
                    Err(e) => MemResult {
                        note: e,
                        ..Default::default()
                    },
                };
                if m.ok {
                    eprintln!(
                        "{} {what}: {:.0} bytes/conn (RSS {} → {} KiB)",
                        tag(i, n),
                        m.bytes_per_conn,
                        m.rss_before_kb,
                        m.rss_after_kb
                    );
                } else {
                    eprintln!("{} {what}: FAILED {}", tag(i, n), m.note);
                    failures.push(format!("{what}: {}", m.note));
                }
                mems.entry(server).or_default().push(m);
            }
        }
    }

    let rep = Report {
        generated_by: "evio-benches bench",
        date_utc: utc_now(),
        machine: machine(),
        rows: build_rows(&groups, &runs, &straces),
        memory: build_mem_rows(&s, &mem_servers, &mems),
        settings: s.clone(),
        notes,
        failures,
    };
    let md = markdown(&rep);
    print!("{md}");
    let _ = fs::remove_dir_all(&s.tmp);
    if let Err(e) = write_outputs(&s, &rep, &md) {
        eprintln!("bench: writing results: {e}");
        return ExitCode::from(1);
    }
    eprintln!(
        "bench: done in {:.0} s; results in {} (+ .md, bench-*.svg beside it)",
        t_start.elapsed().as_secs_f64(),
        s.out_json.display()
    );
    if !rep.failures.is_empty() {
        eprintln!("bench: {} run(s) failed", rep.failures.len());
        return ExitCode::from(1);
    }
    if jobs.is_empty() {
        eprintln!("bench: nothing ran");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
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
    fn nginx_config_is_loopback_and_quiet() {
        let c = nginx_conf(Path::new("/tmp/x"), 8080);
        assert!(c.contains("listen 127.0.0.1:8080;"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("worker_processes 1;"));
        assert!(c.contains(r#"return 200 "Hello World!\r\n";"#));
    }

    #[test]
    fn haproxy_config_is_tcp_one_thread_loopback() {
        let c = haproxy_conf(7000, 7001);
        assert!(c.contains("mode tcp"));
        assert!(c.contains("nbthread 1"));
        assert!(c.contains("bind 127.0.0.1:7000"));
        assert!(c.contains("server echo 127.0.0.1:7001"));
    }

    #[test]
    fn date_format() {
        let d = utc_now();
        assert_eq!(d.len(), 16);
        assert!(d.starts_with("20"));
    }

    #[test]
    fn reference_ratio() {
        let spec = |n: &str| ServerSpec::new(n, PathBuf::from("/bin/true"), &[]);
        let groups = vec![Group {
            workload: "echo",
            load: Load::Echo {
                conns: 50,
                size: 64,
                depth: 1,
            },
            reference: Some("tokio-echo".into()),
            servers: vec![spec("evio-rs"), spec("tokio-echo")],
            server_cpus: None,
            load_cpus: None,
            backend: None,
        }];
        let run = |cpu: f64| RunResult {
            ok: true,
            rate: 1000.0,
            cpu_us_per_req: Some(cpu),
            ..Default::default()
        };
        let mut runs = BTreeMap::new();
        runs.insert((0, 0), vec![run(9.0), run(8.0), run(100.0)]);
        runs.insert((0, 1), vec![run(6.0), run(4.0)]);
        let rows = build_rows(&groups, &runs, &BTreeMap::new());
        assert_eq!(rows[0].cpu_us_per_req, Some(9.0));
        assert_eq!(rows[1].cpu_us_per_req, Some(5.0));
        assert_eq!(rows[0].cpu_vs_reference, Some(1.8));
        assert_eq!(rows[1].cpu_vs_reference, Some(1.0));
    }
}
