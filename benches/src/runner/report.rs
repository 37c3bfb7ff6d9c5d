//! The results: per-server rows with medians over the rounds and ratios (to
//! the reference, to the floor, to the baseline), strace figures, the
//! machine, and the report that is written as JSON.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::parse::parse_strace;
use crate::procfs;
use crate::runner::discover::{baseline_name, BASELINE, FLOOR, OURS};
use crate::runner::load::{Load, RunResult};
use crate::runner::memory::{MemResult, MemServer};
use crate::runner::plan::Group;
use crate::runner::probe::TlsProbe;
use crate::runner::process::online_cpus;
use crate::runner::settings::Settings;
use crate::stats::{median, median_opt};

/// System calls of a traced run.
#[derive(Debug, Clone, Serialize)]
pub struct StraceRow {
    /// Requests over the server's life (what the counts are divided by).
    pub requests: u64,
    /// All system calls.
    pub syscalls: u64,
    /// `syscalls / requests`.
    pub syscalls_per_req: f64,
    /// `epoll_ctl` calls.
    pub epoll_ctl: u64,
    /// `epoll_ctl / requests`.
    pub epoll_ctl_per_req: f64,
    /// The most frequent calls.
    pub top: Vec<(String, u64)>,
    /// Connections the server accepted (successful `accept4` and `accept`).
    pub connections: u64,
    /// `syscalls / connections` (when it accepted any).
    pub syscalls_per_conn: Option<f64>,
    /// The most frequent calls per accepted connection.
    pub per_conn: Vec<(String, f64)>,
}

/// One server under one load: medians over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The workload.
    pub workload: String,
    /// The load's label.
    pub load: String,
    /// The load's short label.
    pub load_short: String,
    /// The server's name.
    pub server: String,
    /// The server the ratio is taken against.
    pub reference: Option<String>,
    /// Every request came on a new connection.
    pub churn: bool,
    /// For a load over TLS: the same load without TLS (its workload and
    /// label), where the same server's plain figures are.
    pub plain: Option<PlainLoad>,
    /// Rounds that succeeded.
    pub ok_rounds: usize,
    /// Median requests per second.
    pub rate: Option<f64>,
    /// Median server CPU per request, µs.
    pub cpu_us_per_req: Option<f64>,
    /// Median kernel (stime) part of the CPU per request.
    pub sys_us_per_req: Option<f64>,
    /// CPU per request relative to the reference's.
    pub cpu_vs_reference: Option<f64>,
    /// CPU per request relative to each of the group's further references
    /// ([`Group::also_vs`]) that ran, by server name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_vs_also: BTreeMap<String, f64>,
    /// CPU per request relative to the floor server's (where it ran).
    pub cpu_vs_floor: Option<f64>,
    /// Ours: CPU per request relative to the baseline copy's (`--compare`).
    pub cpu_vs_baseline: Option<f64>,
    /// Cores given to the server (scaling).
    pub server_cores: Option<usize>,
    /// Median latency, µs.
    pub p50_us: Option<f64>,
    /// Median 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// Median peak RSS, KiB.
    pub peak_rss_kb: Option<f64>,
    /// Every round.
    pub rounds: Vec<RunResult>,
    /// The traced run.
    pub strace: Option<StraceRow>,
}

/// Where a TLS load's plain counterpart is in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlainLoad {
    /// Its workload (`http`, `churn`, `redis`, `proxy`).
    pub workload: String,
    /// Its label.
    pub load: String,
}

impl PlainLoad {
    /// The plain counterpart of `group`'s load, if it runs over TLS.
    pub fn of(group: &Group) -> Option<PlainLoad> {
        let plain = group.load.plain()?;
        let workload = match plain {
            Load::Http { .. } => "http",
            Load::HttpChurn { .. } | Load::RedisChurn { .. } | Load::EchoChurn { .. } => "churn",
            Load::Redis { .. } => "redis",
            Load::Echo { .. } if group.backend.is_some() => "proxy",
            _ => "echo",
        };
        Some(PlainLoad {
            workload: workload.into(),
            load: plain.label(),
        })
    }
}

/// One server of the memory workload.
#[derive(Debug, Clone, Serialize)]
pub struct MemRow {
    /// The server's name.
    pub server: String,
    /// Its connections spoke TLS (the TLS workload).
    pub tls: bool,
    /// Connections asked for.
    pub conns: usize,
    /// Rounds that succeeded.
    pub ok_rounds: usize,
    /// Median RSS before, KiB.
    pub rss_before_kb: Option<f64>,
    /// Median RSS with the connections idle, KiB.
    pub rss_after_kb: Option<f64>,
    /// Median bytes per idle connection.
    pub bytes_per_conn: Option<f64>,
    /// Every round.
    pub rounds: Vec<MemResult>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Online cores.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Clock ticks per second.
    pub clk_tck: f64,
}

/// Everything a run produced (the results JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `"evio-benches bench"`.
    pub generated_by: &'static str,
    /// `YYYY-MM-DD HH:MM`, UTC.
    pub date_utc: String,
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub settings: Settings,
    /// Skips and other remarks.
    pub notes: Vec<String>,
    /// Runs that failed.
    pub failures: Vec<String>,
    /// One row per server and load.
    pub rows: Vec<Row>,
    /// The memory workload (and the TLS workload's idle connections).
    pub memory: Vec<MemRow>,
    /// What each TLS server negotiated with the probe.
    pub tls_probes: Vec<TlsProbe>,
}

/// This machine.
pub fn machine() -> Machine {
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
pub fn utc_now() -> String {
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

/// The rows of every group: medians of the rounds that succeeded, and the
/// ratios to the reference, the floor and the baseline of the same group.
pub fn build_rows(
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
                load: group.label(),
                load_short: group.short(),
                server: spec.name.clone(),
                reference: group.reference.clone(),
                churn: group.load.is_churn(),
                plain: PlainLoad::of(group),
                ok_rounds: ok.len(),
                rate: med(&|r| Some(r.rate)),
                cpu_us_per_req: med(&|r| r.cpu_us_per_req),
                sys_us_per_req: med(&|r| r.sys_us_per_req),
                cpu_vs_reference: None,
                cpu_vs_also: BTreeMap::new(),
                cpu_vs_floor: None,
                cpu_vs_baseline: None,
                server_cores: group.server_cores,
                p50_us: med(&|r| r.p50_us),
                p99_us: med(&|r| r.p99_us),
                peak_rss_kb: med(&|r| r.peak_rss_kb.map(|v| v as f64)),
                rounds,
                strace: straces.get(&(g, si)).cloned(),
            });
        }
        let rows = &mut rows[first..];
        let cpu_of = |rows: &[Row], name: &str| {
            rows.iter()
                .find(|r| r.server == name)
                .and_then(|r| r.cpu_us_per_req)
                .filter(|c| *c > 0.0)
        };
        let reference = group.reference.as_deref().and_then(|n| cpu_of(rows, n));
        let also: Vec<(&String, f64)> = group
            .also_vs
            .iter()
            .filter_map(|n| cpu_of(rows, n).map(|c| (n, c)))
            .collect();
        let floor = cpu_of(rows, FLOOR);
        let baselines: Vec<Option<f64>> = rows
            .iter()
            .map(|r| {
                let ours = r.server.starts_with(OURS) && !r.server.contains(BASELINE);
                ours.then(|| cpu_of(rows, &baseline_name(&r.server)))
                    .flatten()
            })
            .collect();
        for (r, base) in rows.iter_mut().zip(baselines) {
            let ratio = |to: Option<f64>| r.cpu_us_per_req.zip(to).map(|(c, b)| c / b);
            r.cpu_vs_reference = ratio(reference);
            for &(name, cpu) in &also {
                if let Some(v) = ratio(Some(cpu)) {
                    r.cpu_vs_also.insert(name.clone(), v);
                }
            }
            r.cpu_vs_floor = ratio(floor);
            r.cpu_vs_baseline = ratio(base);
        }
    }
    rows
}

/// The memory rows: medians of the rounds that succeeded.
pub fn build_mem_rows(
    s: &Settings,
    mem_servers: &[MemServer],
    mems: &BTreeMap<usize, Vec<MemResult>>,
) -> Vec<MemRow> {
    mem_servers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let spec = &m.spec;
            let rounds = mems.get(&i).cloned().unwrap_or_default();
            let ok: Vec<&MemResult> = rounds.iter().filter(|m| m.ok).collect();
            let med = |f: &dyn Fn(&MemResult) -> f64| {
                median(&ok.iter().map(|m| f(m)).collect::<Vec<_>>())
            };
            MemRow {
                server: spec.name.clone(),
                tls: m.tls,
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

/// The figures of a `strace -c -f -o FILE` summary, per request and per
/// accepted connection.
pub fn strace_row(path: &Path, requests: u64) -> Result<StraceRow, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sum =
        parse_strace(&text).ok_or_else(|| format!("no strace summary in {}", path.display()))?;
    let per = |v: u64| v as f64 / requests.max(1) as f64;
    let accepted = |name: &str| sum.count(name).saturating_sub(sum.failed(name));
    let connections = accepted("accept4") + accepted("accept");
    let per_conn = |v: u64| v as f64 / connections as f64;
    Ok(StraceRow {
        requests,
        syscalls: sum.total,
        syscalls_per_req: per(sum.total),
        epoll_ctl: sum.count("epoll_ctl"),
        epoll_ctl_per_req: per(sum.count("epoll_ctl")),
        top: sum.calls.iter().take(8).cloned().collect(),
        connections,
        syscalls_per_conn: (connections > 0).then(|| per_conn(sum.total)),
        per_conn: if connections > 0 {
            sum.calls
                .iter()
                .take(8)
                .map(|(n, c)| (n.clone(), per_conn(*c)))
                .collect()
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::server::ServerSpec;
    use std::path::PathBuf;

    #[test]
    fn date_format() {
        let d = utc_now();
        assert_eq!(d.len(), 16);
        assert!(d.starts_with("20"));
    }

    fn echo_group(servers: &[&str]) -> Group {
        let spec = |n: &str| ServerSpec::new(n, PathBuf::from("/bin/true"), &[]);
        Group {
            workload: "echo",
            load: Load::Echo {
                conns: 50,
                size: 64,
                depth: 1,
            },
            reference: Some("tokio-echo".into()),
            also_vs: Vec::new(),
            servers: servers.iter().map(|n| spec(n)).collect(),
            server_cpus: None,
            load_cpus: None,
            load_threads: 1,
            server_cores: None,
            backend: None,
        }
    }

    fn run(cpu: f64) -> RunResult {
        RunResult {
            ok: true,
            rate: 1000.0,
            cpu_us_per_req: Some(cpu),
            ..Default::default()
        }
    }

    #[test]
    fn reference_ratio() {
        let groups = vec![echo_group(&["evio-rs", "tokio-echo"])];
        let mut runs = BTreeMap::new();
        runs.insert((0, 0), vec![run(9.0), run(8.0), run(100.0)]);
        runs.insert((0, 1), vec![run(6.0), run(4.0)]);
        let rows = build_rows(&groups, &runs, &BTreeMap::new());
        assert_eq!(rows[0].cpu_us_per_req, Some(9.0));
        assert_eq!(rows[1].cpu_us_per_req, Some(5.0));
        assert_eq!(rows[0].cpu_vs_reference, Some(1.8));
        assert_eq!(rows[1].cpu_vs_reference, Some(1.0));
    }

    #[test]
    fn further_references() {
        let mut g = echo_group(&["evio-rs", "nginx", "haproxy", "evio-rs L4 proxy"]);
        g.reference = Some("nginx".into());
        g.also_vs = vec!["haproxy".into(), "not-run".into()];
        let mut runs = BTreeMap::new();
        runs.insert((0, 0), vec![run(6.0)]);
        runs.insert((0, 1), vec![run(8.0)]);
        runs.insert((0, 2), vec![run(10.0)]);
        runs.insert((0, 3), vec![run(5.0)]);
        let rows = build_rows(&[g], &runs, &BTreeMap::new());
        assert_eq!(rows[0].cpu_vs_reference, Some(0.75));
        assert_eq!(rows[0].cpu_vs_also.get("haproxy"), Some(&0.6));
        assert_eq!(rows[2].cpu_vs_also.get("haproxy"), Some(&1.0));
        assert_eq!(rows[3].cpu_vs_also.get("haproxy"), Some(&0.5));
        // A further reference that did not run gives no ratio.
        assert_eq!(rows[0].cpu_vs_also.len(), 1);
        let j = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(j["cpu_vs_also"]["haproxy"], 0.6);
        // Left out of the JSON where a group has none.
        let rows = build_rows(&[echo_group(&["x"])], &runs, &BTreeMap::new());
        let j = serde_json::to_value(&rows[0]).unwrap();
        assert!(j.get("cpu_vs_also").is_none());
    }

    #[test]
    fn a_tls_row_knows_its_plain_counterpart() {
        let mut g = echo_group(&["evio-rs", "haproxy"]);
        g.load = Load::Tls(Box::new(g.load.clone()));
        g.backend = Some(ServerSpec::new("floor", PathBuf::from("/bin/true"), &[]));
        let rows = build_rows(&[g], &BTreeMap::new(), &BTreeMap::new());
        let want = PlainLoad {
            workload: "proxy".into(),
            load: "50 conns × 64 B × 1 in flight".into(),
        };
        assert_eq!(rows[0].plain.as_ref(), Some(&want));
        assert!(!rows[0].churn);
        let close = Group {
            load: Load::Tls(Box::new(Load::HttpChurn { conns: 50 })),
            ..echo_group(&["nginx"])
        };
        let rows = build_rows(&[close], &BTreeMap::new(), &BTreeMap::new());
        assert!(rows[0].churn);
        assert_eq!(rows[0].plain.as_ref().unwrap().workload, "churn");
        let plain = build_rows(&[echo_group(&["x"])], &BTreeMap::new(), &BTreeMap::new());
        assert!(plain[0].plain.is_none());
    }

    #[test]
    fn floor_and_baseline_ratios() {
        let groups = vec![echo_group(&[
            "evio-rs",
            "evio-rs (baseline)",
            "tokio-echo",
            "floor",
        ])];
        let mut runs = BTreeMap::new();
        runs.insert((0, 0), vec![run(6.0)]);
        runs.insert((0, 1), vec![run(5.0)]);
        runs.insert((0, 2), vec![run(6.0)]);
        runs.insert((0, 3), vec![run(4.0)]);
        let rows = build_rows(&groups, &runs, &BTreeMap::new());
        assert_eq!(rows[0].cpu_vs_floor, Some(1.5));
        assert_eq!(rows[3].cpu_vs_floor, Some(1.0));
        assert_eq!(rows[0].cpu_vs_baseline, Some(1.2));
        assert_eq!(rows[1].cpu_vs_baseline, None);
        assert_eq!(rows[2].cpu_vs_baseline, None);
    }

    #[test]
    fn strace_per_connection() {
        let dir = std::env::temp_dir().join(format!("evio-strace-row-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("strace.txt");
        let text = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 40.00    0.100000           3      1500       500 accept4\n 30.00    0.100000           1      1000           close\n 30.00    0.100000           1      1000           epoll_ctl\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.300000           2      3500       500 total\n";
        fs::write(&path, text).unwrap();
        let row = strace_row(&path, 2000).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(row.connections, 1000);
        assert_eq!(row.syscalls_per_conn, Some(3.5));
        assert_eq!(row.syscalls_per_req, 1.75);
        assert_eq!(row.per_conn[0], ("accept4".to_string(), 1.5));
    }
}
