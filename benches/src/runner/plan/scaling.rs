//! The scaling workload: N loops on N cores, the load on the others
//! (1 → 8 loops on a many-core machine; 1 → 2 here).

use super::{plural, Group, Plan};
use crate::runner::discover::{accepts_flag, Servers};
use crate::runner::load::Load;
use crate::runner::process::Cpus;
use crate::runner::server::{ServerSpec, Setup};
use crate::runner::settings::{missing_tool, Settings};

/// N loops on N cores, the load on the other cores: ours with the acceptor
/// hand-off and with per-loop listeners, tokio multi-thread, nginx with N
/// workers; keep-alive and churn loads.
pub(super) fn plan_scaling(s: &Settings, sv: &Servers, notes: &mut Vec<String>, p: &mut Plan) {
    if !s.pinned {
        notes.push("scaling: needs at least 2 cores; skipped".into());
        return;
    }
    let have_loadgen = s.bin_dir.join("loadgen").is_file();
    if !have_loadgen {
        notes.push("scaling: loadgen not built; echo loads skipped".into());
    }
    if s.tools.wrk.is_none() {
        notes.push(format!(
            "scaling: {}; HTTP loads skipped",
            missing_tool("wrk", "wrk")
        ));
    }
    // Whether our binaries have the flag yet (older builds do not).
    let mut per_loop = Vec::new();
    for spec in sv.ours(|o| &o.echo).into_iter().chain(sv.ours(|o| &o.http)) {
        let ok = accepts_flag(&spec.program, "--per-loop-listeners");
        if !ok {
            notes.push(format!(
                "scaling: {} does not accept --per-loop-listeners; that mode skipped",
                spec.program.display()
            ));
        }
        per_loop.push((spec.program, ok));
    }
    let supports = |spec: &ServerSpec| per_loop.iter().any(|(p, ok)| *ok && *p == spec.program);
    // Loop variants of our servers: hand-off, then per-loop listeners.
    let variants = |specs: Vec<ServerSpec>, n: usize| -> Vec<ServerSpec> {
        let mut v = Vec::new();
        for spec in specs {
            let loops = ["--loops".to_string(), n.to_string()];
            v.push(spec.with(format!("{} --loops {n}", spec.name), &loops));
            if supports(&spec) {
                let flags = [&loops[..], &["--per-loop-listeners".to_string()]].concat();
                v.push(spec.with(
                    format!("{} --loops {n} --per-loop-listeners", spec.name),
                    &flags,
                ));
            }
        }
        v
    };
    for &n in &s.loops {
        if n >= s.cores {
            notes.push(format!(
                "scaling: {n} loop(s) leave no core for the load on this {}-core machine; skipped",
                s.cores
            ));
            continue;
        }
        let load_cores = s.cores - n;
        let scaled = |workload, load, reference: String, servers| Group {
            workload,
            load,
            reference: Some(reference),
            also_vs: Vec::new(),
            servers,
            server_cpus: Some(Cpus::Span { first: 0, count: n }),
            load_cpus: Some(Cpus::Span {
                first: n,
                count: load_cores,
            }),
            load_threads: load_cores,
            server_cores: Some(n),
            backend: None,
        };
        if have_loadgen {
            let mut servers = variants(sv.ours(|o| &o.echo), n);
            let tokio = format!("tokio-echo --threads {n}");
            if let Some(t) = &sv.tokio_echo {
                servers.push(t.with(tokio.clone(), &["--threads".into(), n.to_string()]));
            }
            let keep_alive = Load::Echo {
                conns: 256,
                size: 64,
                depth: 1,
            };
            let churn = Load::EchoChurn {
                workers: 128,
                size: 64,
            };
            for load in [keep_alive, churn] {
                p.groups
                    .push(scaled("scaling", load, tokio.clone(), servers.clone()));
            }
        }
        if s.tools.wrk.is_some() {
            let mut servers = variants(sv.ours(|o| &o.http), n);
            let nginx = format!("nginx {n} worker{}", plural(n));
            if let Some(ng) = &sv.nginx {
                servers.push(ServerSpec {
                    name: nginx.clone(),
                    setup: Setup::Nginx { workers: n },
                    ..ng.clone()
                });
            }
            for load in [
                Load::Http {
                    conns: 256,
                    pipeline: 1,
                },
                Load::HttpChurn { conns: 128 },
            ] {
                p.groups
                    .push(scaled("scaling", load, nginx.clone(), servers.clone()));
            }
        }
    }
}
