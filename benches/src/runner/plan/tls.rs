//! The TLS workload's groups: HTTPS keep-alive and a new connection per
//! request (wrk), Redis over TLS (redis-benchmark `--tls`), a TLS proxy in
//! front of a plain backend (`loadgen --tls`), and the memory of idle TLS
//! connections. Every server uses the run's certificate and is pinned to
//! TLS 1.3 with one cipher suite ([`crate::runner::certs`]).

use super::{Group, Plan};
use crate::runner::certs::{self, our_tls_flags, OPENSSL_SUITE};
use crate::runner::discover::{accepts_args, Servers, REAL_REDIS_FLAGS};
use crate::runner::load::Load;
use crate::runner::memory::{MemServer, Probe};
use crate::runner::server::{ServerSpec, Setup};
use crate::runner::settings::{missing_tool, Settings};

/// Our server `spec` with a TLS listener on `{port}` (its plain listener
/// moves to `{aux_port}`).
pub fn our_tls_variant(spec: &ServerSpec) -> ServerSpec {
    let mut v = spec.clone();
    for a in &mut v.args {
        if a == "{port}" {
            *a = "{aux_port}".into();
        }
    }
    v.args.extend(our_tls_flags());
    v
}

/// Whether our binary `spec` takes the TLS flags (a build without them
/// exits with an error on the first one).
fn takes_tls_flags(s: &Settings, spec: &ServerSpec) -> bool {
    let f = certs::files(s);
    let mut args: Vec<String> = our_tls_flags()
        .into_iter()
        .map(|a| {
            a.replace("{port}", "1")
                .replace("{tls_cert}", &f.cert.display().to_string())
                .replace("{tls_key}", &f.key.display().to_string())
        })
        .collect();
    args.push("--help".into());
    accepts_args(&spec.program, &args)
}

/// The real redis-server serving TLS only (`--port 0`), pinned like the
/// others, with no client certificates.
pub fn real_redis_tls(real: &ServerSpec) -> ServerSpec {
    let args = [
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        "{tls_cert}",
        "--tls-key-file",
        "{tls_key}",
        "--tls-auth-clients",
        "no",
        "--tls-protocols",
        "TLSv1.3",
        "--tls-ciphersuites",
        OPENSSL_SUITE,
    ];
    let args: Vec<&str> = args.into_iter().chain(REAL_REDIS_FLAGS).collect();
    ServerSpec::new(&real.name, real.program.clone(), &args)
}

/// Plans the TLS groups, and returns the servers of the idle-connection
/// runs (which go after the groups); every skip leaves a note.
pub fn plan_tls(
    s: &Settings,
    sv: &Servers,
    notes: &mut Vec<String>,
    p: &mut Plan,
) -> Vec<MemServer> {
    // Ours, where the binary takes the TLS flags.
    let ours = |pick, what: &str, notes: &mut Vec<String>| -> Vec<ServerSpec> {
        let mut v = Vec::new();
        for spec in sv.ours(pick) {
            if takes_tls_flags(s, &spec) {
                v.push(our_tls_variant(&spec));
            } else {
                notes.push(format!(
                    "tls: {} ({}) does not take --tls-port/--tls-cert/--tls-key/--tls-versions/--tls-cipher-suites; left out of the {what} loads",
                    spec.program.display(),
                    spec.name
                ));
            }
        }
        v
    };
    let http = ours(|o| &o.http, "HTTPS", notes);
    let redis = ours(|o| &o.redis, "Redis TLS", notes);
    let proxy = ours(|o| &o.proxy, "TLS proxy", notes);
    let nginx = sv.nginx.as_ref().map(|n| ServerSpec {
        setup: Setup::NginxTls,
        ..n.clone()
    });
    let real_redis = sv.real_redis.as_ref().map(real_redis_tls);
    let haproxy = sv.haproxy.as_ref().map(|h| ServerSpec {
        setup: Setup::HaproxyTls,
        ..h.clone()
    });
    let with = |mut v: Vec<ServerSpec>, peer: &Option<ServerSpec>| {
        v.extend(peer.iter().cloned());
        v
    };
    let tls = |inner: Load| Load::Tls(Box::new(inner));
    let group = |load, reference: &str, servers| Group::pinned(s, "tls", load, reference, servers);

    if s.tools.wrk.is_some() {
        let servers = with(http.clone(), &nginx);
        let keep_alive = tls(Load::Http {
            conns: 50,
            pipeline: 1,
        });
        p.groups.push(group(keep_alive, "nginx", servers.clone()));
        if !s.smoke {
            let close = tls(Load::HttpChurn { conns: 50 });
            p.groups.push(group(close, "nginx", servers));
        }
    } else {
        notes.push(format!(
            "tls: {}; HTTPS skipped",
            missing_tool("wrk", "wrk")
        ));
    }

    if s.tools.redis_benchmark.is_some() {
        let servers = with(redis.clone(), &real_redis);
        let tests: Vec<(&str, usize)> = if s.smoke {
            vec![("PING_INLINE", 16)]
        } else {
            [1, 16]
                .into_iter()
                .flat_map(|p| ["PING_INLINE", "SET", "GET"].map(|t| (t, p)))
                .collect()
        };
        for (test, pipeline) in tests {
            let load = tls(Load::Redis {
                test: test.into(),
                pipeline,
            });
            p.groups.push(group(load, "redis-server", servers.clone()));
        }
    } else {
        notes.push(format!(
            "tls: {}; Redis TLS skipped",
            missing_tool("redis-benchmark", "redis-tools")
        ));
    }

    // The proxy's backend: the floor echo server (plain), else mio-echo.
    let backend = sv.floor_echo.clone().or_else(|| sv.mio_echo.clone());
    match backend {
        _ if !s.bin_dir.join("loadgen").is_file() => {
            notes.push("tls: loadgen not built; TLS proxy skipped".into());
        }
        None => notes
            .push("tls: no echo backend (floor-server, mio-echo) built; TLS proxy skipped".into()),
        Some(backend) => {
            let servers = with(proxy, &haproxy);
            let shapes: &[(usize, usize, usize)] = if s.smoke {
                &[(50, 64, 1)]
            } else {
                &[(50, 64, 1), (50, 6, 16)]
            };
            for &(conns, size, depth) in shapes {
                let mut g = group(
                    tls(Load::Echo { conns, size, depth }),
                    "haproxy",
                    servers.clone(),
                );
                // The backend shares the load generator's core.
                g.backend = Some(backend.clone());
                p.groups.push(g);
            }
        }
    }

    let mut servers = Vec::new();
    if !s.smoke {
        let mem = |spec: &ServerSpec, suffix: &str, probe| MemServer {
            spec: ServerSpec {
                name: format!("{} ({suffix})", spec.name),
                ..spec.clone()
            },
            probe,
            tls: true,
        };
        for spec in with(http, &nginx) {
            servers.push(mem(&spec, "HTTPS", Probe::HttpGet));
        }
        for spec in with(redis, &real_redis) {
            servers.push(mem(&spec, "Redis TLS", Probe::RedisPing));
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::discover::{Ours, FLOOR, OURS};
    use crate::runner::plan::tests::{configured, names, settings};
    use crate::runner::plan::{plan, Job};
    use std::path::PathBuf;

    fn spec(name: &str, program: &str, args: &[&str]) -> Option<ServerSpec> {
        Some(ServerSpec::new(name, PathBuf::from(program), args))
    }

    /// Ours from `program` (`/bin/true` takes any flag, `/bin/false` none).
    fn servers(program: &str) -> Servers {
        let port = ["--port", "{port}"];
        Servers {
            ours: Ours {
                echo: spec(OURS, program, &port),
                http: spec(OURS, program, &port),
                redis: spec(OURS, program, &port),
                proxy: spec(
                    OURS,
                    program,
                    &["--port", "{port}", "--backend", "{backend}"],
                ),
                http_proxy: None,
            },
            real_redis: spec("redis-server", "/usr/bin/redis-server", &port),
            nginx: configured("nginx", Setup::Nginx { workers: 1 }),
            haproxy: configured("haproxy", Setup::Haproxy),
            floor_echo: spec(FLOOR, "/bin/true", &["--mode", "echo"]),
            ..Servers::default()
        }
    }

    #[test]
    fn every_tls_load_against_its_peer() {
        let s = settings("--workloads tls", "evio-plan-tls");
        let mut notes = Vec::new();
        let p = plan(&s, &servers("/bin/true"), &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        // HTTPS keep-alive and close, 6 Redis, 2 proxy shapes.
        assert_eq!(p.groups.len(), 2 + 6 + 2);
        assert!(p.groups.iter().all(|g| g.workload == "tls"));
        let https = &p.groups[0];
        assert_eq!(names(https), [OURS, "nginx"]);
        assert_eq!(https.reference.as_deref(), Some("nginx"));
        assert_eq!(https.servers[1].setup, Setup::NginxTls);
        let ours = https.servers[0].args.join(" ");
        assert!(
            ours.starts_with("--port {aux_port} --tls-port {port} --tls-cert {tls_cert}"),
            "{ours}"
        );
        assert!(ours.ends_with(
            "--tls-versions 1.3 --tls-cipher-suites TLS13_AES_128_GCM_SHA256 --tls-no-resumption"
        ));
        assert!(p.groups[1].load.is_churn());
        let redis = &p.groups[2];
        assert_eq!(names(redis), [OURS, "redis-server"]);
        let real = redis.servers[1].args.join(" ");
        assert!(real.starts_with("--port 0 --tls-port {port}"), "{real}");
        assert!(real.contains("--tls-protocols TLSv1.3 --tls-ciphersuites TLS_AES_128_GCM_SHA256"));
        let proxy = &p.groups[8];
        assert_eq!(names(proxy), [OURS, "haproxy"]);
        assert_eq!(proxy.servers[1].setup, Setup::HaproxyTls);
        assert_eq!(proxy.backend.as_ref().unwrap().name, FLOOR);
        assert!(proxy.servers[0]
            .args
            .join(" ")
            .contains("--backend {backend}"));
        assert!(proxy
            .label()
            .starts_with("TLS proxy, plain backend: 50 conns"));
        // Idle TLS connections: ours and nginx (HTTPS), ours and redis-server.
        let mem: Vec<&str> = p.mem_servers.iter().map(|m| m.spec.name.as_str()).collect();
        assert_eq!(
            mem,
            [
                "evio-rs (HTTPS)",
                "nginx (HTTPS)",
                "evio-rs (Redis TLS)",
                "redis-server (Redis TLS)"
            ]
        );
        assert!(p.mem_servers.iter().all(|m| m.tls));
        assert_eq!(p.mem_servers[0].probe, Probe::HttpGet);
        // One probe per distinct server, before its first group's runs.
        let probes: Vec<(usize, usize)> = p
            .jobs
            .iter()
            .filter_map(|j| match *j {
                Job::Probe { group, server } => Some((group, server)),
                _ => None,
            })
            .collect();
        assert_eq!(probes, [(0, 0), (0, 1), (2, 0), (2, 1), (8, 0), (8, 1)]);
        assert_eq!(
            p.jobs[0],
            Job::Probe {
                group: 0,
                server: 0
            }
        );
        // The idle-connection runs (4 servers × 5 rounds) come last.
        let n = p.jobs.len();
        assert!(p.jobs[n - 20..]
            .iter()
            .all(|j| matches!(j, Job::Mem { .. })));
        assert!(matches!(p.jobs[n - 21], Job::Run { .. }));
    }

    #[test]
    fn smoke_keeps_three_loads_and_ours_needs_the_flags() {
        let s = settings("--smoke --workloads tls", "evio-plan-tls-smoke");
        let mut notes = Vec::new();
        let p = plan(&s, &servers("/bin/true"), &mut notes);
        let shorts: Vec<String> = p.groups.iter().map(Group::short).collect();
        assert_eq!(
            shorts,
            ["https c50", "tls ping_inline P16", "tls proxy 50×64B×1"]
        );
        assert!(p.mem_servers.is_empty());
        // A build without the TLS flags: ours left out, with a note each.
        let p = plan(&s, &servers("/bin/false"), &mut notes);
        assert_eq!(names(&p.groups[0]), ["nginx"]);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("does not take --tls-port"), "{notes:?}");
    }
}
