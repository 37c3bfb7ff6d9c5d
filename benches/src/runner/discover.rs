//! The servers there are: ours (from the build under test and, with
//! `--compare`, from another directory), the peers, the floor server and
//! the external servers, each as a [`ServerSpec`].

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::runner::process::Reap;
use crate::runner::server::{ServerSpec, Setup};
use crate::runner::settings::{missing_tool, Settings};

/// Our servers' name in the tables.
pub const OURS: &str = "evio-rs";
/// The hand-written floor server's name in the tables.
pub const FLOOR: &str = "floor";
/// Marks the copies of our servers taken from `--compare DIR`.
pub const BASELINE: &str = "(baseline)";

/// What the real redis-server is told beside its ports: no snapshots, no
/// append-only file, room for the memory workload's clients.
pub const REAL_REDIS_FLAGS: [&str; 6] =
    ["--save", "", "--appendonly", "no", "--maxclients", "30000"];

/// The name of the baseline copy of our server `name`:
/// `evio-rs --loops 2` → `evio-rs (baseline) --loops 2`.
pub fn baseline_name(name: &str) -> String {
    name.replacen(OURS, &format!("{OURS} {BASELINE}"), 1)
}

/// Our servers from one directory of binaries.
#[derive(Debug, Clone, Default)]
pub struct Ours {
    /// `echo-server`.
    pub echo: Option<ServerSpec>,
    /// `http-server`.
    pub http: Option<ServerSpec>,
    /// `redis-server`.
    pub redis: Option<ServerSpec>,
    /// `proxy --backend {backend}`.
    pub proxy: Option<ServerSpec>,
    /// `http-proxy --upstream {backend}` (the HTTP/1.1 reverse proxy).
    pub http_proxy: Option<ServerSpec>,
}

impl Ours {
    /// Our servers in `dir`, named `label`; a note for each one missing.
    fn find(dir: &Path, label: &str, notes: &mut Vec<String>) -> Ours {
        let bin = |name: &str, notes: &mut Vec<String>| bin_spec(dir, name, label, notes);
        Ours {
            echo: bin("echo-server", notes),
            http: bin("http-server", notes),
            redis: bin("redis-server", notes),
            proxy: bin("proxy", notes).map(|spec| {
                spec.with(spec.name.clone(), &["--backend".into(), "{backend}".into()])
            }),
            http_proxy: bin("http-proxy", notes).map(|spec| {
                spec.with(
                    spec.name.clone(),
                    &["--upstream".into(), "{backend}".into()],
                )
            }),
        }
    }
}

/// `dir/name --port {port}` named `label`, if built.
fn bin_spec(dir: &Path, name: &str, label: &str, notes: &mut Vec<String>) -> Option<ServerSpec> {
    let p = dir.join(name);
    if p.is_file() {
        Some(ServerSpec::new(label, p, &["--port", "{port}"]))
    } else {
        notes.push(format!(
            "{label}: {} not found (run `cargo build --release --workspace`); skipped",
            p.display()
        ));
        None
    }
}

/// Every server found.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    /// Ours, from the build under test.
    pub ours: Ours,
    /// Ours, from `--compare DIR`.
    pub baseline: Option<Ours>,
    /// The tokio peer.
    pub tokio_echo: Option<ServerSpec>,
    /// The mio peer.
    pub mio_echo: Option<ServerSpec>,
    /// The real redis-server.
    pub real_redis: Option<ServerSpec>,
    /// nginx, one worker.
    pub nginx: Option<ServerSpec>,
    /// HAProxy, one thread.
    pub haproxy: Option<ServerSpec>,
    /// `floor-server --mode echo`.
    pub floor_echo: Option<ServerSpec>,
    /// `floor-server --mode redis`.
    pub floor_redis: Option<ServerSpec>,
    /// `floor-server --mode http`.
    pub floor_http: Option<ServerSpec>,
}

impl Servers {
    /// Our server picked by `pick`, then its baseline copy (if any).
    pub fn ours(&self, pick: fn(&Ours) -> &Option<ServerSpec>) -> Vec<ServerSpec> {
        let mut v: Vec<ServerSpec> = pick(&self.ours).iter().cloned().collect();
        if let Some(b) = &self.baseline {
            v.extend(pick(b).iter().cloned());
        }
        v
    }
}

/// Finds the servers: ours and the peers in the binary directory, the
/// baseline in `--compare DIR`, the others among the tools.
pub fn discover(s: &Settings, notes: &mut Vec<String>) -> Servers {
    let floor = bin_spec(&s.bin_dir, "floor-server", FLOOR, notes);
    let floor_mode = |mode: &str| {
        floor
            .as_ref()
            .map(|f| f.with(FLOOR.into(), &["--mode".into(), mode.into()]))
    };
    let real_redis = match &s.tools.real_redis {
        Some(p) => Some(ServerSpec::new(
            "redis-server",
            p.clone(),
            &["--port", "{port}", "--bind", "127.0.0.1"]
                .into_iter()
                .chain(REAL_REDIS_FLAGS)
                .collect::<Vec<_>>(),
        )),
        None => {
            notes.push(missing_tool("redis-server (the real one)", "redis-server"));
            None
        }
    };
    let nginx = match &s.tools.nginx {
        Some(p) => Some(ServerSpec {
            setup: Setup::Nginx { workers: 1 },
            ..ServerSpec::new("nginx", p.clone(), &[])
        }),
        None => {
            notes.push(missing_tool("nginx", "nginx-light"));
            None
        }
    };
    let haproxy = match &s.tools.haproxy {
        Some(p) => Some(ServerSpec {
            setup: Setup::Haproxy,
            ..ServerSpec::new("haproxy", p.clone(), &[])
        }),
        None => {
            notes.push(missing_tool("haproxy", "haproxy"));
            None
        }
    };
    Servers {
        ours: Ours::find(&s.bin_dir, OURS, notes),
        baseline: s
            .compare
            .as_ref()
            .map(|d| Ours::find(d, &baseline_name(OURS), notes)),
        tokio_echo: bin_spec(&s.bin_dir, "tokio-echo", "tokio-echo", notes),
        mio_echo: bin_spec(&s.bin_dir, "mio-echo", "mio-echo", notes),
        real_redis,
        nginx,
        haproxy,
        floor_echo: floor_mode("echo"),
        floor_redis: floor_mode("redis"),
        floor_http: floor_mode("http"),
    }
}

/// Whether `program` accepts `flag` (a flag it does not know makes it exit
/// with an error before `--help` is seen).
pub fn accepts_flag(program: &Path, flag: &str) -> bool {
    accepts_args(program, &[flag.to_string(), "--help".to_string()])
}

/// Whether `program args…` exits with status 0 within 5 s (`args` ending
/// in `--help`: whether it takes the flags before it).
pub fn accepts_args(program: &Path, args: &[String]) -> bool {
    let Ok(child) = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut child = Reap(child);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        match child.0.try_wait() {
            Ok(Some(st)) => return st.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
    false
}
