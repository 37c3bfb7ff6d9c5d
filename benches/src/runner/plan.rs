//! What runs: the groups (one load against several servers, A B A B) of
//! each workload, and the ordered list of jobs. The churn, HTTP proxy and
//! TLS and scaling workloads' groups are planned in their submodules (`runner/plan/`).

mod churn;
mod http_proxy;
mod scaling;
mod tls;

pub use tls::{our_tls_variant, real_redis_tls};

use crate::runner::discover::{accepts_args, Servers, OURS};
use crate::runner::load::Load;
use crate::runner::memory::{MemServer, Probe};
use crate::runner::probe::probe_for;
use crate::runner::process::Cpus;
use crate::runner::server::{ServerSpec, METRICS_FLAGS};
use crate::runner::settings::{missing_tool, Settings};

/// The echo workload's loads: connections, message size, messages in
/// flight per connection.
pub const ECHO_SHAPES: [(usize, usize, usize); 3] = [(50, 64, 1), (50, 6, 16), (1000, 1024, 1)];

/// One load run against several servers, A B A B.
#[derive(Debug, Clone)]
pub struct Group {
    /// The workload it belongs to (`echo`, `churn`, `scaling`, …).
    pub workload: &'static str,
    /// The load.
    pub load: Load,
    /// The server the others are compared with.
    pub reference: Option<String>,
    /// More servers every server's CPU is compared with, beside the
    /// reference (the HTTP proxy workload: HAProxy beside nginx).
    pub also_vs: Vec<String>,
    /// The servers, in table order.
    pub servers: Vec<ServerSpec>,
    /// Where the servers run.
    pub server_cpus: Option<Cpus>,
    /// Where the load tool (and a proxy's backend) runs.
    pub load_cpus: Option<Cpus>,
    /// Threads of the load tool (loadgen `--threads`, wrk `-t`).
    pub load_threads: usize,
    /// Cores given to the server (scaling), shown beside the load.
    pub server_cores: Option<usize>,
    /// For proxies: the server behind them (started fresh for each run,
    /// on `load_cpus`), whose port replaces `{backend}`.
    pub backend: Option<ServerSpec>,
}

impl Group {
    /// A group on the usual cores: the server on core 0, the load on core 1
    /// (unpinned on one core).
    pub fn pinned(
        s: &Settings,
        workload: &'static str,
        load: Load,
        reference: &str,
        servers: Vec<ServerSpec>,
    ) -> Group {
        Group {
            workload,
            load,
            reference: Some(reference.to_string()),
            also_vs: Vec::new(),
            servers,
            server_cpus: s.pinned.then_some(Cpus::Core(0)),
            load_cpus: s.pinned.then_some(Cpus::Core(1)),
            load_threads: 1,
            server_cores: None,
            backend: None,
        }
    }

    /// The load's label, with the server's cores where they vary (and
    /// saying so where a TLS load goes through a proxy).
    pub fn label(&self) -> String {
        let load = match (&self.backend, self.load.plain()) {
            (Some(_), Some(plain)) => format!("TLS proxy, plain backend: {}", plain.label()),
            _ => self.load.label(),
        };
        match self.server_cores {
            Some(n) => format!("{load}, server on {n} core{}", plural(n)),
            None => load,
        }
    }

    /// The load's short label, with the server's cores where they vary.
    pub fn short(&self) -> String {
        let load = match (&self.backend, self.load.plain()) {
            (Some(_), Some(plain)) => format!("tls proxy {}", plain.short()),
            _ => self.load.short(),
        };
        match self.server_cores {
            Some(n) => format!("{load} n{n}"),
            None => load,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One step of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A measured run of one server of a group.
    Run {
        /// Index into the groups.
        group: usize,
        /// Index into the group's servers.
        server: usize,
        /// Round, from 0.
        round: usize,
    },
    /// A run under `strace -c -f`.
    Strace {
        /// Index into the groups.
        group: usize,
        /// Index into the group's servers.
        server: usize,
    },
    /// The TLS probe of one server of a TLS group (before its runs; once
    /// per server, in the first group that has it).
    Probe {
        /// Index into the groups.
        group: usize,
        /// Index into the group's servers.
        server: usize,
    },
    /// A memory run.
    Mem {
        /// Index into the memory servers.
        server: usize,
        /// Round, from 0.
        round: usize,
    },
}

/// The groups, the memory workload's servers and the jobs, in run order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One load against several servers each.
    pub groups: Vec<Group>,
    /// The memory workload's servers and their round trip.
    pub mem_servers: Vec<MemServer>,
    /// Everything to run, in order (A B A B within each group).
    pub jobs: Vec<Job>,
}

impl Plan {
    /// Adds memory servers and their runs, A B A B.
    pub fn push_memory(&mut self, s: &Settings, servers: Vec<MemServer>) {
        let first = self.mem_servers.len();
        self.mem_servers.extend(servers);
        for round in 0..s.rounds {
            for server in first..self.mem_servers.len() {
                self.jobs.push(Job::Mem { server, round });
            }
        }
    }
}

/// What makes two specs the same server (for probing each once, per kind
/// of round trip).
fn spec_key(spec: &ServerSpec) -> String {
    format!(
        "{}\0{}\0{:?}\0{:?}",
        spec.name,
        spec.program.display(),
        spec.args,
        spec.setup
    )
}

/// Plans the selected workloads; every skip leaves a note.
pub fn plan(s: &Settings, sv: &Servers, notes: &mut Vec<String>) -> Plan {
    let mut p = Plan::default();
    let group = |workload, load, reference: &str, servers| {
        Group::pinned(s, workload, load, reference, servers)
    };
    let have_loadgen = s.bin_dir.join("loadgen").is_file();
    let some = |v: &[&Option<ServerSpec>]| -> Vec<ServerSpec> {
        v.iter().filter_map(|x| (*x).clone()).collect()
    };
    // The TLS servers probed so far.
    let mut probed = Vec::new();
    for w in &s.workloads {
        let first_group = p.groups.len();
        // Memory servers that run after the workload's groups.
        let mut mem_after = Vec::new();
        match w.as_str() {
            "echo" => {
                if !have_loadgen {
                    notes.push("echo: loadgen not built; skipped".into());
                    continue;
                }
                let mut servers = sv.ours(|o| &o.echo);
                servers.extend(some(&[&sv.tokio_echo, &sv.mio_echo, &sv.floor_echo]));
                for (conns, size, depth) in ECHO_SHAPES {
                    let load = Load::Echo { conns, size, depth };
                    p.groups
                        .push(group("echo", load, "tokio-echo", servers.clone()));
                }
            }
            "echo-metrics" => plan_echo_metrics(s, sv, notes, &mut p),
            "redis" => {
                if s.tools.redis_benchmark.is_none() {
                    notes.push(format!(
                        "redis: {}; skipped",
                        missing_tool("redis-benchmark", "redis-tools")
                    ));
                    continue;
                }
                let mut servers = sv.ours(|o| &o.redis);
                servers.extend(some(&[&sv.real_redis]));
                let tests: Vec<(&str, usize)> = if s.smoke {
                    vec![("PING_INLINE", 1), ("SET", 8), ("GET", 16)]
                } else {
                    [1, 8, 16]
                        .into_iter()
                        .flat_map(|p| ["PING_INLINE", "SET", "GET"].map(|t| (t, p)))
                        .collect()
                };
                for (test, pipeline) in tests {
                    let mut servers = servers.clone();
                    // The floor answers +PONG to everything: PING only.
                    if test == "PING_INLINE" {
                        servers.extend(some(&[&sv.floor_redis]));
                    }
                    let load = Load::Redis {
                        test: test.into(),
                        pipeline,
                    };
                    p.groups.push(group("redis", load, "redis-server", servers));
                }
            }
            "http" => {
                if s.tools.wrk.is_none() {
                    notes.push(format!("http: {}; skipped", missing_tool("wrk", "wrk")));
                    continue;
                }
                let mut servers = sv.ours(|o| &o.http);
                servers.extend(some(&[&sv.nginx, &sv.floor_http]));
                let shapes: &[(usize, usize)] = if s.smoke {
                    &[(50, 1), (50, 16)]
                } else {
                    &[(50, 1), (256, 1), (50, 16)]
                };
                for &(conns, pipeline) in shapes {
                    let load = Load::Http { conns, pipeline };
                    p.groups.push(group("http", load, "nginx", servers.clone()));
                }
            }
            "memory" => {
                let mem = |spec, probe| MemServer {
                    spec,
                    probe,
                    tls: false,
                };
                let mut specs = Vec::new();
                for spec in sv.ours(|o| &o.echo) {
                    specs.push(mem(spec, Probe::Echo));
                }
                for spec in some(&[&sv.tokio_echo, &sv.mio_echo]) {
                    specs.push(mem(spec, Probe::Echo));
                }
                for mut spec in sv.ours(|o| &o.redis) {
                    spec.name = format!("{} (redis)", spec.name);
                    specs.push(mem(spec, Probe::RedisPing));
                }
                for spec in some(&[&sv.real_redis]) {
                    specs.push(mem(spec, Probe::RedisPing));
                }
                p.push_memory(s, specs);
            }
            "loops" => {
                let ours = sv.ours(|o| &o.echo);
                if ours.is_empty() {
                    notes.push("loops: our echo-server is not built; skipped".into());
                    continue;
                }
                if !have_loadgen {
                    notes.push("loops: loadgen not built; skipped".into());
                    continue;
                }
                let servers = ours
                    .iter()
                    .flat_map(|spec| {
                        [1, 2].map(|n| {
                            spec.with(
                                format!("{} --loops {n}", spec.name),
                                &["--loops".into(), n.to_string()],
                            )
                        })
                    })
                    .collect();
                let load = Load::Echo {
                    conns: 50,
                    size: 64,
                    depth: 1,
                };
                let mut g = group("loops", load, &format!("{OURS} --loops 1"), servers);
                g.server_cpus = s.pinned.then_some(Cpus::All);
                g.load_cpus = s.pinned.then_some(Cpus::All);
                p.groups.push(g);
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
                let mut servers = sv.ours(|o| &o.proxy);
                servers.extend(some(&[&sv.haproxy]));
                let shapes: &[(usize, usize, usize)] = if s.smoke {
                    &[(50, 64, 1)]
                } else {
                    &[(50, 64, 1), (50, 6, 16)]
                };
                for &(conns, size, depth) in shapes {
                    let load = Load::Echo { conns, size, depth };
                    let mut g = group("proxy", load, "haproxy", servers.clone());
                    // The backend shares the load generator's core.
                    g.backend = Some(backend.clone());
                    p.groups.push(g);
                }
            }
            "http-proxy" => http_proxy::plan_http_proxy(s, sv, notes, &mut p),
            "churn" => churn::plan_churn(s, sv, notes, &mut p),
            "tls" => mem_after = tls::plan_tls(s, sv, notes, &mut p),
            "scaling" => scaling::plan_scaling(s, sv, notes, &mut p),
            _ => unreachable!("checked in Settings::parse"),
        }
        for (g, group) in p.groups.iter().enumerate().skip(first_group) {
            let n = group.servers.len();
            if n == 0 {
                notes.push(format!("{w} {}: no server to run; skipped", group.short()));
                continue;
            }
            if group.load.plain().is_some() {
                let probe = probe_for(&group.load);
                for (server, spec) in group.servers.iter().enumerate() {
                    let key = format!("{}\0{probe:?}", spec_key(spec));
                    if !probed.contains(&key) {
                        probed.push(key);
                        p.jobs.push(Job::Probe { group: g, server });
                    }
                }
            }
            for round in 0..s.rounds {
                for server in 0..n {
                    p.jobs.push(Job::Run {
                        group: g,
                        server,
                        round,
                    });
                }
            }
            if s.strace {
                for server in 0..n {
                    p.jobs.push(Job::Strace { group: g, server });
                }
            }
        }
        p.push_memory(s, mem_after);
    }
    p
}

/// The echo loads against each of our echo servers with the metrics
/// endpoint off (the reference) and on (`--metrics-port`, scraped every
/// second during the run: see [`crate::runner::scrape`]), A B A B.
fn plan_echo_metrics(s: &Settings, sv: &Servers, notes: &mut Vec<String>, p: &mut Plan) {
    if !s.bin_dir.join("loadgen").is_file() {
        notes.push("echo-metrics: loadgen not built; skipped".into());
        return;
    }
    let mut servers = Vec::new();
    for spec in sv.ours(|o| &o.echo) {
        let flags: Vec<String> = METRICS_FLAGS.iter().map(|f| f.to_string()).collect();
        let probe = [METRICS_FLAGS[0].to_string(), "0".into(), "--help".into()];
        if !accepts_args(&spec.program, &probe) {
            notes.push(format!(
                "echo-metrics: {} does not accept {}; skipped",
                spec.program.display(),
                METRICS_FLAGS[0]
            ));
            continue;
        }
        let on = spec.with(format!("{} {}", spec.name, METRICS_FLAGS[0]), &flags);
        servers.extend([spec, on]);
    }
    if servers.is_empty() {
        notes.push("echo-metrics: our echo-server is not built; skipped".into());
        return;
    }
    for (conns, size, depth) in ECHO_SHAPES {
        let load = Load::Echo { conns, size, depth };
        let g = Group::pinned(s, "echo-metrics", load, OURS, servers.clone());
        p.groups.push(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::discover::{Ours, FLOOR};
    use crate::runner::server::Setup;
    use std::path::PathBuf;

    /// Settings for `args` with wrk and redis-benchmark "installed" and a
    /// loadgen in a scratch binary directory (removed when dropped); the
    /// planning tests of every workload share it.
    pub(crate) struct Scratch(pub(crate) Settings);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0.bin_dir);
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Settings;
        fn deref(&self) -> &Settings {
            &self.0
        }
    }

    impl std::ops::DerefMut for Scratch {
        fn deref_mut(&mut self) -> &mut Settings {
            &mut self.0
        }
    }

    pub(crate) fn settings(args: &str, dir: &str) -> Scratch {
        let mut s = Settings::from_args(args.split_whitespace()).unwrap();
        s.bin_dir = std::env::temp_dir().join(format!("{dir}-{}", std::process::id()));
        std::fs::create_dir_all(&s.bin_dir).unwrap();
        std::fs::write(s.bin_dir.join("loadgen"), "").unwrap();
        let tool = Some(PathBuf::from("/bin/true"));
        s.tools.wrk = tool.clone();
        s.tools.redis_benchmark = tool;
        s.pinned = true;
        Scratch(s)
    }

    /// A server with a config written first (nginx, HAProxy), as
    /// `/bin/true`.
    pub(crate) fn configured(name: &str, setup: Setup) -> Option<ServerSpec> {
        Some(ServerSpec {
            setup,
            ..ServerSpec::new(name, PathBuf::from("/bin/true"), &[])
        })
    }

    fn spec(name: &str, program: &str) -> Option<ServerSpec> {
        Some(ServerSpec::new(name, PathBuf::from(program), &[]))
    }

    /// Ours from `program` (`/bin/true` accepts any flag, `/bin/false` none).
    fn servers(program: &str) -> Servers {
        let ours = Ours {
            echo: spec(OURS, program),
            http: spec(OURS, program),
            redis: spec(OURS, program),
            proxy: None,
            http_proxy: None,
        };
        Servers {
            ours,
            tokio_echo: spec("tokio-echo", "/bin/true"),
            real_redis: spec("redis-server", "/bin/true"),
            nginx: spec("nginx", "/bin/true"),
            floor_echo: spec(FLOOR, "/bin/true"),
            floor_redis: spec(FLOOR, "/bin/true"),
            floor_http: spec(FLOOR, "/bin/true"),
            ..Servers::default()
        }
    }

    /// The servers of `g`, by name, in table order.
    pub(super) fn names(g: &Group) -> Vec<&str> {
        g.servers.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn churn_and_the_floor() {
        let s = settings("--smoke --workloads redis,churn", "evio-plan-churn");
        let mut notes = Vec::new();
        let p = plan(&s, &servers("/bin/true"), &mut notes);
        let redis: Vec<&Group> = p.groups.iter().filter(|g| g.workload == "redis").collect();
        assert_eq!(redis.len(), 3);
        assert_eq!(names(redis[0]), [OURS, "redis-server", FLOOR]);
        // The floor answers PING only.
        assert_eq!(names(redis[1]), [OURS, "redis-server"]);
        let churn: Vec<&Group> = p.groups.iter().filter(|g| g.workload == "churn").collect();
        assert_eq!(churn.len(), 3);
        assert!(churn.iter().all(|g| g.load.is_churn()));
        let deferred = format!("{OURS} --defer-accept");
        let floor_deferred = format!("{FLOOR} --defer-accept");
        assert_eq!(
            names(churn[0]),
            [OURS, &deferred, "tokio-echo", FLOOR, &floor_deferred]
        );
        assert_eq!(churn[1].reference.as_deref(), Some("nginx"));
        assert_eq!(
            names(churn[1]),
            [
                OURS,
                &deferred,
                "nginx",
                "nginx deferred",
                FLOOR,
                &floor_deferred
            ]
        );
        assert_eq!(churn[1].servers[3].setup, Setup::NginxDeferred);
        assert_eq!(churn[1].servers[5].args, ["--defer-accept"]);
        let runs: usize = p.groups.iter().map(|g| g.servers.len()).sum();
        assert_eq!(p.jobs.len(), runs);
    }

    #[test]
    fn scaling_spans_and_skips() {
        let mut s = settings("--workloads scaling --loops 1,2,4", "evio-plan-scaling");
        s.cores = 4;
        let mut notes = Vec::new();
        let p = plan(&s, &servers("/bin/true"), &mut notes);
        assert!(notes.iter().any(|n| n.contains("4 loop(s) leave no core")));
        assert_eq!(p.groups.len(), 2 * 4);
        let g = &p.groups[4];
        assert_eq!(g.server_cpus, Some(Cpus::Span { first: 0, count: 2 }));
        assert_eq!(g.load_cpus, Some(Cpus::Span { first: 2, count: 2 }));
        assert_eq!(g.load_threads, 2);
        assert_eq!(
            names(g),
            [
                "evio-rs --loops 2",
                "evio-rs --loops 2 --per-loop-listeners",
                "tokio-echo --threads 2"
            ]
        );
        assert!(g.label().ends_with("server on 2 cores"));
        let http = &p.groups[6];
        assert_eq!(http.reference.as_deref(), Some("nginx 2 workers"));
        assert_eq!(http.servers[2].setup, Setup::Nginx { workers: 2 });
        // A build without --per-loop-listeners: that mode is left out.
        let p = plan(&s, &servers("/bin/false"), &mut notes);
        assert_eq!(
            names(&p.groups[0]),
            ["evio-rs --loops 1", "tokio-echo --threads 1"]
        );
        assert!(notes
            .iter()
            .any(|n| n.contains("does not accept --per-loop-listeners")));
    }

    #[test]
    fn echo_metrics_pairs_ours_off_and_on() {
        let s = settings("--rounds 3 --workloads echo-metrics", "evio-plan-metrics");
        let mut notes = Vec::new();
        let p = plan(&s, &servers("/bin/true"), &mut notes);
        assert_eq!(p.groups.len(), ECHO_SHAPES.len());
        let on = format!("{OURS} --metrics-port");
        for g in &p.groups {
            assert_eq!(g.workload, "echo-metrics");
            assert_eq!(g.reference.as_deref(), Some(OURS));
            assert_eq!(names(g), [OURS, on.as_str()]);
            assert_eq!(g.servers[1].args, METRICS_FLAGS);
        }
        // Interleaved: off, on, off, on, ...
        let order: Vec<usize> = p
            .jobs
            .iter()
            .take(4)
            .map(|j| match j {
                Job::Run { server, .. } => *server,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, [0, 1, 0, 1]);
        assert_eq!(p.jobs.len(), ECHO_SHAPES.len() * 2 * 3);
        // A build without the flag: skipped, with a note.
        let p = plan(&s, &servers("/bin/false"), &mut notes);
        assert!(p.groups.is_empty());
        assert!(notes
            .iter()
            .any(|n| n.contains("does not accept --metrics-port")));
    }
}
