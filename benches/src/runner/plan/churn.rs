//! The churn workload: a new connection per request. Echo (loadgen
//! `--churn`) against tokio, HTTP (wrk with `Connection: close`) against
//! nginx, Redis (`redis-benchmark -k 0`) against redis-server, each with
//! the floor. Servers that can defer accepting until the first bytes arrive
//! (Linux `TCP_DEFER_ACCEPT`) run a second time that way: ours with
//! `--defer-accept`, nginx with `listen … deferred`, the floor with
//! `--defer-accept`; tokio and redis-server have no such setting.

use super::{Group, Plan};
use crate::runner::discover::{accepts_flag, Servers};
use crate::runner::load::Load;
use crate::runner::server::{ServerSpec, Setup};
use crate::runner::settings::{missing_tool, Settings};

const DEFER: &str = "--defer-accept";

/// `specs`, each followed by its `--defer-accept` variant where the binary
/// takes the flag (an older build in `--compare` may not).
fn with_deferred(specs: Vec<ServerSpec>) -> Vec<ServerSpec> {
    let mut v = Vec::new();
    for spec in specs {
        let deferred = accepts_flag(&spec.program, DEFER)
            .then(|| spec.with(format!("{} {DEFER}", spec.name), &[DEFER.into()]));
        v.push(spec);
        v.extend(deferred);
    }
    v
}

/// The floor and its deferred variant (same binary: it always has the flag).
fn floor_pair(floor: &Option<ServerSpec>) -> Vec<ServerSpec> {
    floor
        .iter()
        .flat_map(|f| {
            [
                f.clone(),
                f.with(format!("{} {DEFER}", f.name), &[DEFER.into()]),
            ]
        })
        .collect()
}

pub(super) fn plan_churn(s: &Settings, sv: &Servers, notes: &mut Vec<String>, p: &mut Plan) {
    let group =
        |load, reference: &str, servers| Group::pinned(s, "churn", load, reference, servers);
    if s.bin_dir.join("loadgen").is_file() {
        let mut servers = with_deferred(sv.ours(|o| &o.echo));
        servers.extend(sv.tokio_echo.clone());
        servers.extend(floor_pair(&sv.floor_echo));
        let load = Load::EchoChurn {
            workers: 50,
            size: 64,
        };
        p.groups.push(group(load, "tokio-echo", servers));
    } else {
        notes.push("churn: loadgen not built; echo churn skipped".into());
    }
    if s.tools.wrk.is_some() {
        let mut servers = with_deferred(sv.ours(|o| &o.http));
        if let Some(nginx) = &sv.nginx {
            servers.push(nginx.clone());
            servers.push(ServerSpec {
                name: "nginx deferred".into(),
                setup: Setup::NginxDeferred,
                ..nginx.clone()
            });
        }
        servers.extend(floor_pair(&sv.floor_http));
        p.groups
            .push(group(Load::HttpChurn { conns: 50 }, "nginx", servers));
    } else {
        notes.push(format!(
            "churn: {}; HTTP churn skipped",
            missing_tool("wrk", "wrk")
        ));
    }
    if s.tools.redis_benchmark.is_some() {
        let tests: &[&str] = if s.smoke {
            &["PING_INLINE"]
        } else {
            &["PING_INLINE", "SET"]
        };
        for &test in tests {
            let mut servers = with_deferred(sv.ours(|o| &o.redis));
            servers.extend(sv.real_redis.clone());
            if test == "PING_INLINE" {
                servers.extend(floor_pair(&sv.floor_redis));
            }
            let load = Load::RedisChurn { test: test.into() };
            p.groups.push(group(load, "redis-server", servers));
        }
    } else {
        notes.push(format!(
            "churn: {}; Redis churn skipped",
            missing_tool("redis-benchmark", "redis-tools")
        ));
    }
}
