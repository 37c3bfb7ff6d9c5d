//! The HTTP proxy workload: `wrk -c50` keep-alive `GET /` through an
//! HTTP/1.1 reverse proxy to one nginx upstream (one worker, `return 200`).
//! The proxies, each on one core with one loop / worker / thread: ours
//! (`http-proxy --upstream … --loops 1`), nginx (`proxy_pass` to an
//! `upstream` with `keepalive 64`), HAProxy (`mode http`, `http-reuse
//! always`), and, as a reference, our L4 `proxy` forwarding the same bytes
//! without parsing them. The figure is the proxy's CPU per request (its own
//! process tree, not the upstream's), against nginx's and HAProxy's.

use super::{Group, Plan};
use crate::runner::discover::Servers;
use crate::runner::load::Load;
use crate::runner::server::{ServerSpec, Setup};
use crate::runner::settings::{missing_tool, Settings};

/// The suffix of our L4 proxy's row (`evio-rs L4 proxy`).
pub const L4_PROXY: &str = "L4 proxy";

/// The name of the upstream nginx (its log file, the progress notes).
const UPSTREAM: &str = "nginx upstream";

/// `--loops 1`: each proxy runs one loop.
fn one_loop() -> [String; 2] {
    ["--loops".into(), "1".into()]
}

pub(super) fn plan_http_proxy(s: &Settings, sv: &Servers, notes: &mut Vec<String>, p: &mut Plan) {
    if s.tools.wrk.is_none() {
        notes.push(format!(
            "http-proxy: {}; skipped",
            missing_tool("wrk", "wrk")
        ));
        return;
    }
    let Some(nginx) = &sv.nginx else {
        notes.push(format!(
            "http-proxy: {} (it is the upstream); skipped",
            missing_tool("nginx", "nginx-light")
        ));
        return;
    };
    // The upstream: the HTTP workload's nginx (one worker, keep-alive,
    // unlimited requests per connection, no access log).
    let upstream = ServerSpec {
        name: UPSTREAM.into(),
        setup: Setup::Nginx { workers: 1 },
        ..nginx.clone()
    };
    let mut servers: Vec<ServerSpec> = sv
        .ours(|o| &o.http_proxy)
        .into_iter()
        .map(|spec| spec.with(spec.name.clone(), &one_loop()))
        .collect();
    servers.push(ServerSpec {
        setup: Setup::NginxProxy,
        ..nginx.clone()
    });
    if let Some(h) = &sv.haproxy {
        servers.push(ServerSpec {
            setup: Setup::HaproxyHttp,
            ..h.clone()
        });
    }
    for spec in sv.ours(|o| &o.proxy) {
        servers.push(spec.with(format!("{} {L4_PROXY}", spec.name), &one_loop()));
    }
    let load = Load::Http {
        conns: 50,
        pipeline: 1,
    };
    let mut g = Group::pinned(s, "http-proxy", load, "nginx", servers);
    g.also_vs = sv.haproxy.iter().map(|h| h.name.clone()).collect();
    // The upstream shares the load generator's core, as the proxy
    // workload's backend does: the proxy is alone on its core.
    g.backend = Some(upstream);
    p.groups.push(g);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::discover::{Ours, BASELINE, OURS};
    use crate::runner::plan::tests::{configured, names, settings};
    use crate::runner::plan::{plan, Job};
    use crate::runner::process::Cpus;
    use std::path::PathBuf;

    fn spec(name: &str, args: &[&str]) -> Option<ServerSpec> {
        Some(ServerSpec::new(name, PathBuf::from("/bin/true"), args))
    }

    fn ours(name: &str) -> Ours {
        Ours {
            proxy: spec(name, &["--port", "{port}", "--backend", "{backend}"]),
            http_proxy: spec(name, &["--port", "{port}", "--upstream", "{backend}"]),
            ..Ours::default()
        }
    }

    fn servers() -> Servers {
        Servers {
            ours: ours(OURS),
            nginx: configured("nginx", Setup::Nginx { workers: 1 }),
            haproxy: configured("haproxy", Setup::Haproxy),
            ..Servers::default()
        }
    }

    #[test]
    fn four_proxies_in_front_of_one_nginx() {
        for args in ["--workloads http-proxy", "--smoke --workloads http-proxy"] {
            let s = settings(args, "evio-plan-http-proxy");
            let mut notes = Vec::new();
            let p = plan(&s, &servers(), &mut notes);
            assert!(notes.is_empty(), "{notes:?}");
            // One load, in smoke mode too: wrk -t1 -c50, keep-alive.
            assert_eq!(p.groups.len(), 1);
            let g = &p.groups[0];
            assert_eq!(g.workload, "http-proxy");
            assert_eq!(
                g.load,
                Load::Http {
                    conns: 50,
                    pipeline: 1
                }
            );
            assert_eq!(g.short(), "c50");
            assert_eq!(g.load_threads, 1);
            let l4 = format!("{OURS} {L4_PROXY}");
            assert_eq!(names(g), [OURS, "nginx", "haproxy", &l4]);
            assert_eq!(g.reference.as_deref(), Some("nginx"));
            assert_eq!(g.also_vs, ["haproxy"]);
            // Ours: one loop, the upstream's address for {backend}.
            assert_eq!(
                g.servers[0].args.join(" "),
                "--port {port} --upstream {backend} --loops 1"
            );
            assert_eq!(g.servers[0].setup, Setup::Plain);
            assert_eq!(g.servers[1].setup, Setup::NginxProxy);
            assert_eq!(g.servers[2].setup, Setup::HaproxyHttp);
            assert_eq!(
                g.servers[3].args.join(" "),
                "--port {port} --backend {backend} --loops 1"
            );
            // The upstream: nginx with one worker, on the load's core; the
            // proxy alone on core 0.
            let up = g.backend.as_ref().unwrap();
            assert_eq!(up.setup, Setup::Nginx { workers: 1 });
            assert_eq!(up.name, UPSTREAM);
            assert_eq!(g.server_cpus, Some(Cpus::Core(0)));
            assert_eq!(g.load_cpus, Some(Cpus::Core(1)));
            // A B C D per round, no TLS probe.
            assert_eq!(p.jobs.len(), 4 * s.rounds);
            assert!(p.jobs.iter().all(|j| matches!(j, Job::Run { .. })));
        }
    }

    #[test]
    fn strace_adds_one_traced_run_per_proxy() {
        let mut s = settings("--smoke --workloads http-proxy", "evio-plan-http-proxy-st");
        s.strace = true;
        let p = plan(&s, &servers(), &mut Vec::new());
        let traced = p
            .jobs
            .iter()
            .filter(|j| matches!(j, Job::Strace { .. }))
            .count();
        assert_eq!(traced, 4);
    }

    #[test]
    fn the_baseline_and_missing_pieces() {
        let s = settings("--smoke --workloads http-proxy", "evio-plan-http-proxy-b");
        let mut sv = servers();
        sv.baseline = Some(ours(&format!("{OURS} {BASELINE}")));
        let p = plan(&s, &sv, &mut Vec::new());
        assert_eq!(
            names(&p.groups[0]),
            [
                OURS,
                "evio-rs (baseline)",
                "nginx",
                "haproxy",
                "evio-rs L4 proxy",
                "evio-rs (baseline) L4 proxy"
            ]
        );
        // Without our http-proxy (not built yet) and HAProxy: the others
        // still run, and nothing is compared with HAProxy.
        let mut sv = servers();
        sv.ours.http_proxy = None;
        sv.haproxy = None;
        let p = plan(&s, &sv, &mut Vec::new());
        assert_eq!(names(&p.groups[0]), ["nginx", "evio-rs L4 proxy"]);
        assert!(p.groups[0].also_vs.is_empty());
        // Without nginx there is no upstream; without wrk no load.
        let mut notes = Vec::new();
        let p = plan(
            &s,
            &Servers {
                nginx: None,
                ..servers()
            },
            &mut notes,
        );
        assert!(p.groups.is_empty());
        assert!(
            notes[0].starts_with("http-proxy: nginx not found"),
            "{notes:?}"
        );
        let mut s = s;
        s.tools.wrk = None;
        let mut notes = Vec::new();
        let p = plan(&s, &servers(), &mut notes);
        assert!(p.groups.is_empty() && p.jobs.is_empty());
        assert!(
            notes[0].starts_with("http-proxy: wrk not found"),
            "{notes:?}"
        );
    }
}
