//! The results as markdown: one table per workload, the memory table, the
//! before/after table of `--compare`, system calls per connection, the TLS
//! probes and TLS against plain, notes.

use std::fmt::Write as _;

use crate::runner::certs::SUITE;
use crate::runner::discover::OURS;
use crate::runner::report::{MemRow, Report, Row};
use crate::runner::speed;

/// The tables in order: workload and title.
pub const TITLES: [(&str, &str); 10] = [
    ("echo", "Echo (loadgen; CPU vs tokio-echo)"),
    (
        "echo-metrics",
        "Metrics overhead (echo; ours with the metrics endpoint on and scraped every second vs off)",
    ),
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
    (
        "http-proxy",
        "HTTP reverse proxy (wrk -t1 keep-alive → proxy → nginx upstream, 1 worker; proxy CPU vs nginx proxy_pass, 1 worker, and HAProxy mode http, 1 thread)",
    ),
    (
        "churn",
        "Connection churn (a new connection per request; CPU vs tokio-echo, nginx, redis-server)",
    ),
    (
        "tls",
        "TLS (TLS 1.3, TLS13_AES_128_GCM_SHA256 on every server, one ECDSA P-256 certificate; CPU vs nginx, redis-server, HAProxy)",
    ),
    (
        "scaling",
        "Scaling (server on N cores, load on the others; CPU vs tokio multi-thread / nginx N workers)",
    ),
];

/// The targets a workload's table is checked against: our server's CPU per
/// request at most this many times the named server's.
pub const GOALS: [(&str, &str, f64); 2] = [
    ("http-proxy", "nginx", 0.85),
    ("http-proxy", "haproxy", 0.80),
];

/// `v` with `digits` decimals, or `–`.
pub fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

/// A rate as `1.23M`, `45.6k` or `789`, or `–`.
pub fn rate_str(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "–".into(),
    }
}

/// A ratio as `0.93×`, or `–`.
fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}×"))
}

/// The header line, the run's conditions.
fn preamble(rep: &Report, o: &mut String) {
    let s = &rep.settings;
    let m = &rep.machine;
    let _ = writeln!(o, "# evio-rs benchmark results\n");
    let _ = writeln!(
        o,
        "{} UTC, {} ({} cores), Linux {}; {} round(s) A B A B, medians (ratios: median (min–max) of the rounds); {} s runs{}{}.\n",
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
}

/// The ratio to the load's reference: the median, with the range of the
/// per-round ratios when there was more than one round (the spread is
/// what tells noise from a change).
fn vs_reference(r: &Row, rows: &[&Row]) -> String {
    let peer = rows.iter().find(|p| {
        p.load == r.load && Some(&p.server) == r.reference.as_ref() && p.server != r.server
    });
    match peer.map(|p| speed::round_ratios(r, p)) {
        Some(v) if v.len() > 1 => {
            speed::ratio_with_spread(&v).unwrap_or_else(|| ratio(r.cpu_vs_reference))
        }
        _ => ratio(r.cpu_vs_reference),
    }
}

/// One workload's table.
fn table(o: &mut String, title: &str, rows: &[&Row]) {
    let strace = rows.iter().any(|r| r.strace.is_some());
    let floor = rows.iter().any(|r| r.cpu_vs_floor.is_some());
    let mut also: Vec<&String> = Vec::new();
    for name in rows.iter().flat_map(|r| r.cpu_vs_also.keys()) {
        if !also.contains(&name) {
            also.push(name);
        }
    }
    let per_conn = strace && rows.iter().any(|r| r.churn);
    let _ = writeln!(o, "## {title}\n");
    let mut head = String::from("| load | server | req/s | CPU µs/req | CPU vs ref |");
    let mut align = String::from("|---|---|--:|--:|--:|");
    for name in &also {
        let _ = write!(head, " CPU vs {name} |");
        align.push_str("--:|");
    }
    if floor {
        head.push_str(" CPU vs floor |");
        align.push_str("--:|");
    }
    head.push_str(" kernel share | p50 µs | p99 µs | peak RSS MiB |");
    align.push_str("--:|--:|--:|--:|");
    if strace {
        head.push_str(" syscalls/req | epoll_ctl/req |");
        align.push_str("--:|--:|");
    }
    if per_conn {
        head.push_str(" syscalls/conn |");
        align.push_str("--:|");
    }
    let _ = writeln!(o, "{head}\n{align}");
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
            "| {} | {}{} | {} | {} | {} |",
            r.load,
            r.server,
            bad,
            rate_str(r.rate),
            f(r.cpu_us_per_req, 2),
            vs_reference(r, rows),
        );
        for name in &also {
            let _ = write!(o, " {} |", ratio(r.cpu_vs_also.get(*name).copied()));
        }
        if floor {
            let _ = write!(o, " {} |", ratio(r.cpu_vs_floor));
        }
        let _ = write!(
            o,
            " {} | {} | {} | {} |",
            match (r.sys_us_per_req, r.cpu_us_per_req) {
                (Some(k), Some(c)) if c > 0.0 => format!("{:.0} %", k / c * 100.0),
                _ => "–".into(),
            },
            f(r.p50_us, 0),
            f(r.p99_us, 0),
            f(r.peak_rss_kb.map(|k| k / 1024.0), 1),
        );
        let t = r.strace.as_ref();
        if strace {
            let _ = write!(
                o,
                " {} | {} |",
                f(t.map(|t| t.syscalls_per_req), 2),
                f(t.map(|t| t.epoll_ctl_per_req), 2)
            );
        }
        if per_conn {
            let c = t.and_then(|t| t.syscalls_per_conn).filter(|_| r.churn);
            let _ = write!(o, " {} |", f(c, 2));
        }
        o.push('\n');
    }
    o.push('\n');
}

/// Our server's ratios against the workload's [`GOALS`], one line (none
/// where the workload has no goal or our server did not run).
fn goals(o: &mut String, workload: &str, rows: &[&Row]) {
    let Some(ours) = rows.iter().find(|r| r.server == OURS) else {
        return;
    };
    let mut parts = Vec::new();
    for (w, to, max) in GOALS {
        if w != workload {
            continue;
        }
        let v = if ours.reference.as_deref() == Some(to) {
            ours.cpu_vs_reference
        } else {
            ours.cpu_vs_also.get(to).copied()
        };
        let verdict = match v {
            Some(v) if v <= max => "met",
            Some(_) => "not met",
            None => "not measured",
        };
        parts.push(format!("≤ {max:.2}× {to}: {} ({verdict})", ratio(v)));
    }
    if !parts.is_empty() {
        let _ = writeln!(
            o,
            "Goals, {OURS}'s CPU per request: {}.\n",
            parts.join("; ")
        );
    }
}

/// The calls per accepted connection of the traced churn runs.
fn per_connection(o: &mut String, rows: &[&Row]) {
    let traced: Vec<&&Row> = rows
        .iter()
        .filter(|r| r.churn && r.strace.as_ref().is_some_and(|t| !t.per_conn.is_empty()))
        .collect();
    if traced.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### System calls per connection (churn, traced runs; start-up and shutdown included)\n"
    );
    let _ = writeln!(
        o,
        "| load | server | calls per accepted connection |\n|---|---|---|"
    );
    for r in traced {
        let calls: Vec<String> = r.strace.as_ref().map_or(Vec::new(), |t| {
            t.per_conn
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect()
        });
        let _ = writeln!(o, "| {} | {} | {} |", r.load, r.server, calls.join(", "));
    }
    o.push('\n');
}

/// What each TLS server negotiated with the probe.
fn probes(o: &mut String, rep: &Report) {
    if rep.tls_probes.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### What each TLS server negotiated (probe: a rustls client offering TLS 1.2 and 1.3, every suite and group of ring; two connections)\n"
    );
    let _ = writeln!(
        o,
        "| server | probed for | version | cipher suite | key exchange | ALPN | 2nd connection resumed | note |\n|---|---|---|---|---|---|---|---|"
    );
    for p in &rep.tls_probes {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "–".into());
        let resumed = match p.resumed {
            Some(true) => "yes",
            Some(false) => "no",
            None => "–",
        };
        let note = if p.ok && p.note.is_empty() {
            String::new()
        } else {
            format!("FAILED: {}", p.note)
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {resumed} | {note} |",
            p.server,
            p.load,
            v(&p.version),
            v(&p.suite),
            v(&p.kx_group),
            v(&p.alpn),
        );
    }
    let _ = writeln!(
        o,
        "\nEvery server is pinned to TLS 1.3 and {SUITE}; the probe offers more, so a server that was not pinned shows here (and its probe fails).\n"
    );
}

/// Each TLS load against the same load without TLS, for the same server
/// in the same run: what TLS costs.
fn tls_vs_plain(o: &mut String, rep: &Report) {
    let mut lines = Vec::new();
    for r in rep.rows.iter().filter(|r| r.workload == "tls") {
        let Some(plain) = &r.plain else { continue };
        let Some(p) = rep
            .rows
            .iter()
            .find(|p| p.workload == plain.workload && p.load == plain.load && p.server == r.server)
        else {
            continue;
        };
        let calls = |r: &Row| r.strace.as_ref().map(|t| t.syscalls_per_req);
        let over = r.cpu_us_per_req.zip(p.cpu_us_per_req).map(|(t, p)| t / p);
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.load,
            r.server,
            f(r.cpu_us_per_req, 2),
            f(p.cpu_us_per_req, 2),
            ratio(over),
            f(calls(r), 2),
            f(calls(p), 2),
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### TLS against plain (the same server and load without TLS, same run)\n"
    );
    let _ = writeln!(
        o,
        "| load | server | CPU µs/req TLS | CPU µs/req plain | TLS / plain | syscalls/req TLS | syscalls/req plain |\n|---|---|--:|--:|--:|--:|--:|"
    );
    for l in lines {
        let _ = writeln!(o, "{l}");
    }
    o.push('\n');
}

/// The memory table of `rows` under `title`.
fn memory(o: &mut String, title: &str, rows: &[&MemRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "{title}\n");
    let _ = writeln!(
        o,
        "| server | connections | RSS before MiB | RSS after MiB | bytes per connection |\n|---|--:|--:|--:|--:|"
    );
    for r in rows {
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

/// Ours against the baseline copy (`--compare`), load by load.
fn before_after(o: &mut String, rows: &[Row]) {
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.cpu_vs_baseline.is_some())
        .collect();
    if ours.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## Before/after (`--compare`: CPU per request of this build vs the baseline's, same run)\n"
    );
    let _ = writeln!(
        o,
        "| workload | load | server | CPU µs/req | baseline µs/req | ratio |\n|---|---|---|--:|--:|--:|"
    );
    for r in ours {
        let base = r
            .cpu_us_per_req
            .zip(r.cpu_vs_baseline)
            .map(|(c, ratio)| c / ratio);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.load,
            r.server,
            f(r.cpu_us_per_req, 2),
            f(base, 2),
            ratio(r.cpu_vs_baseline)
        );
    }
    o.push('\n');
}

/// The whole markdown report.
pub fn markdown(rep: &Report) -> String {
    let mut o = String::new();
    preamble(rep, &mut o);
    speed::section(&mut o, &rep.rows);
    for (w, title) in TITLES {
        let rows: Vec<&Row> = rep.rows.iter().filter(|r| r.workload == w).collect();
        let tls_mem: Vec<&MemRow> = rep.memory.iter().filter(|m| m.tls).collect();
        let tls = w == "tls" && !(rep.tls_probes.is_empty() && tls_mem.is_empty());
        if rows.is_empty() && !tls {
            continue;
        }
        if rows.is_empty() {
            let _ = writeln!(o, "## {title}\n");
        } else {
            table(&mut o, title, &rows);
            goals(&mut o, w, &rows);
            per_connection(&mut o, &rows);
        }
        if w == "tls" {
            probes(&mut o, rep);
            tls_vs_plain(&mut o, rep);
            let t = "### Memory per idle TLS connection (a full handshake and one round trip each, then idle)";
            memory(&mut o, t, &tls_mem);
        }
    }
    before_after(&mut o, &rep.rows);
    let plain_mem: Vec<&MemRow> = rep.memory.iter().filter(|m| !m.tls).collect();
    let t = "## Memory per idle connection (one round trip each, then idle)";
    memory(&mut o, t, &plain_mem);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runner::load::{Load, RunResult};
    use crate::runner::plan::Group;
    use crate::runner::report::{build_rows, machine};
    use crate::runner::server::ServerSpec;
    use crate::runner::settings::Settings;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A report of the HTTP proxy workload's one load, with these CPU
    /// figures (µs per request) for ours, nginx, HAProxy and the L4 proxy.
    pub(crate) fn http_proxy_report(cpu: [f64; 4]) -> Report {
        let names = ["evio-rs", "nginx", "haproxy", "evio-rs L4 proxy"];
        let g = Group {
            workload: "http-proxy",
            load: Load::Http {
                conns: 50,
                pipeline: 1,
            },
            reference: Some("nginx".into()),
            also_vs: vec!["haproxy".into()],
            servers: names
                .iter()
                .map(|n| ServerSpec::new(n, PathBuf::from("/bin/true"), &[]))
                .collect(),
            server_cpus: None,
            load_cpus: None,
            load_threads: 1,
            server_cores: None,
            backend: Some(ServerSpec::new(
                "nginx upstream",
                PathBuf::from("/bin/true"),
                &[],
            )),
        };
        let mut runs = BTreeMap::new();
        for (i, c) in cpu.into_iter().enumerate() {
            let r = RunResult {
                ok: true,
                rate: 20_000.0,
                cpu_us_per_req: Some(c),
                ..Default::default()
            };
            runs.insert((0, i), vec![r]);
        }
        Report {
            generated_by: "test",
            date_utc: "2026-01-01 00:00".into(),
            machine: machine(),
            settings: Settings::from_args([""; 0]).unwrap(),
            notes: Vec::new(),
            failures: Vec::new(),
            rows: build_rows(&[g], &runs, &BTreeMap::new()),
            memory: Vec::new(),
            tls_probes: Vec::new(),
        }
    }

    #[test]
    fn http_proxy_table_has_both_ratios_and_the_goals() {
        let md = markdown(&http_proxy_report([8.0, 10.0, 12.0, 5.0]));
        assert!(md.contains("## HTTP reverse proxy ("), "{md}");
        assert!(
            md.contains("| load | server | req/s | CPU µs/req | CPU vs ref | CPU vs haproxy |"),
            "{md}"
        );
        assert!(
            md.contains("| 50 conns | evio-rs | 20.0k | 8.00 | 0.80× | 0.67× |"),
            "{md}"
        );
        assert!(md.contains("| 50 conns | haproxy | 20.0k | 12.00 | 1.20× | 1.00× |"));
        assert!(md.contains("| 50 conns | evio-rs L4 proxy | 20.0k | 5.00 | 0.50× | 0.42× |"));
        assert!(
            md.contains("Goals, evio-rs's CPU per request: ≤ 0.85× nginx: 0.80× (met); ≤ 0.80× haproxy: 0.67× (met)."),
            "{md}"
        );
        let md = markdown(&http_proxy_report([9.0, 10.0, 10.0, 5.0]));
        assert!(md.contains("≤ 0.85× nginx: 0.90× (not met); ≤ 0.80× haproxy: 0.90× (not met)"));
    }

    #[test]
    fn numbers() {
        assert_eq!(f(Some(1.234), 2), "1.23");
        assert_eq!(f(None, 2), "–");
        assert_eq!(rate_str(Some(1_500_000.0)), "1.50M");
        assert_eq!(rate_str(Some(42_300.0)), "42.3k");
        assert_eq!(rate_str(Some(12.0)), "12");
        assert_eq!(ratio(Some(0.5)), "0.50×");
    }
}
