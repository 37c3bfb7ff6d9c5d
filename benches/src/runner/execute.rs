//! Running the plan: preparing the runner's own process (fd limit, pinning,
//! clean-up on interrupt), then every job in order, with one progress line
//! each on stderr.

use std::collections::BTreeMap;
use std::fs;
use std::net::Shutdown;

use crate::runner::certs;
use crate::runner::load::{run_load, RunResult};
use crate::runner::markdown::{f, rate_str};
use crate::runner::memory::{run_memory, MemResult};
use crate::runner::plan::{Job, Plan};
use crate::runner::probe::{probe_for, probe_tls, TlsProbe};
use crate::runner::process::{on_interrupt_clean_up, online_cpus, set_affinity, Cpus};
use crate::runner::report::{strace_row, StraceRow};
use crate::runner::scrape::{Scraper, Scrapes, SCRAPE_EVERY};
use crate::runner::server::{start_backend, start_server};
use crate::runner::settings::{missing_tool, Settings};

/// File descriptors the runner asks for (itself and, inherited, its
/// children).
pub const WANT_FDS: u64 = 65_536;

/// Prepares the runner: raises `RLIMIT_NOFILE` (shrinking the memory
/// workload if it stays too low), pins itself to the load's core, arms the
/// clean-up on SIGINT/SIGTERM, creates the scratch directory and, for the
/// TLS workload, the run's certificate in it; every compromise becomes a
/// note.
pub fn prepare(s: &mut Settings, notes: &mut Vec<String>) -> Result<(), String> {
    let limit = evio_sys::net::raise_fd_limit(WANT_FDS).unwrap_or(0);
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
    if s.strace && s.tools.strace.is_none() {
        notes.push(format!(
            "--strace: {}; no syscall counts",
            missing_tool("strace", "strace")
        ));
        s.strace = false;
    }
    if s.bin_dir.components().any(|c| c.as_os_str() == "debug") {
        notes.push(format!(
            "binaries from {} look like a debug build: figures are not representative",
            s.bin_dir.display()
        ));
    }
    fs::create_dir_all(&s.tmp).map_err(|e| format!("{}: {e}", s.tmp.display()))?;
    if s.runs("tls") {
        if let Err(e) = certs::make_cert(&certs::files(s)) {
            notes.push(format!("tls: no certificate ({e}); TLS workload skipped"));
            s.workloads.retain(|w| w != "tls");
        }
    }
    Ok(())
}

/// What the jobs produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per (group, server): every round.
    pub runs: BTreeMap<(usize, usize), Vec<RunResult>>,
    /// Per (group, server): the traced run.
    pub straces: BTreeMap<(usize, usize), StraceRow>,
    /// Per memory server: every round.
    pub mems: BTreeMap<usize, Vec<MemResult>>,
    /// The TLS probes, in run order.
    pub probes: Vec<TlsProbe>,
    /// Remarks from the runs (a server that resumes TLS sessions).
    pub notes: Vec<String>,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

/// `[ 7/75]`: the progress tag of run `i` of `n`.
pub fn tag(i: usize, n: usize) -> String {
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

/// A run whose metrics endpoint was scraped fails unless every scrape was
/// answered (the endpoint was on, and the figure includes its work).
fn scraped(mut r: RunResult, scrapes: Option<Scrapes>) -> RunResult {
    match scrapes {
        Some(got) if r.ok && (got.ok == 0 || got.failed > 0) => {
            r.ok = false;
            r.note = format!(
                "metrics endpoint: {} of {} scrapes failed",
                got.failed,
                got.ok + got.failed
            );
            r
        }
        _ => r,
    }
}

/// Runs every job of the plan in order.
pub fn run_jobs(s: &Settings, p: &Plan) -> Outcome {
    let mut out = Outcome::default();
    let n = p.jobs.len();
    for (i, job) in p.jobs.iter().enumerate() {
        let i = i + 1;
        match *job {
            Job::Run {
                group,
                server,
                round,
            } => {
                let g = &p.groups[group];
                let spec = &g.servers[server];
                let what = format!(
                    "{} {} round {}/{} {}",
                    g.workload,
                    g.short(),
                    round + 1,
                    s.rounds,
                    spec.name
                );
                let res = start_backend(s, g.backend.as_ref(), g.load_cpus).and_then(|backend| {
                    let port = backend.as_ref().map(|b| b.port);
                    start_server(s, spec, g.server_cpus, None, port).and_then(|mut srv| {
                        let scraper = spec
                            .metrics_port(&srv)
                            .map(|port| Scraper::start(port, SCRAPE_EVERY));
                        let r = run_load(s, &g.load, &srv, g.load_cpus, g.load_threads, &what);
                        let scrapes = scraper.map(Scraper::stop);
                        srv.stop();
                        r.map(|r| scraped(r, scrapes))
                    })
                });
                progress(i, n, &what, &res);
                let r = res.unwrap_or_else(|e| RunResult {
                    note: e,
                    ..Default::default()
                });
                if !r.ok {
                    out.failures.push(format!("{what}: {}", r.note));
                }
                out.runs.entry((group, server)).or_default().push(r);
            }
            Job::Strace { group, server } => {
                let g = &p.groups[group];
                let spec = &g.servers[server];
                let what = format!("{} {} strace {}", g.workload, g.short(), spec.name);
                let file = s.tmp.join(format!("strace-{group}-{server}.txt"));
                let res = start_backend(s, g.backend.as_ref(), g.load_cpus).and_then(|backend| {
                    let port = backend.as_ref().map(|b| b.port);
                    let mut srv = start_server(s, spec, g.server_cpus, Some(&file), port)?;
                    let r = run_load(s, &g.load, &srv, g.load_cpus, g.load_threads, &what);
                    srv.stop();
                    let r = r?;
                    if !r.ok {
                        return Err(r.note);
                    }
                    strace_row(&file, r.total_requests)
                });
                match res {
                    Ok(row) => {
                        let per_conn = match (g.load.is_churn(), row.syscalls_per_conn) {
                            (true, Some(c)) => format!(", {c:.2} syscalls/conn"),
                            _ => String::new(),
                        };
                        eprintln!(
                            "{} {what}: {:.2} syscalls/req, {:.3} epoll_ctl/req{per_conn} ({} requests)",
                            tag(i, n),
                            row.syscalls_per_req,
                            row.epoll_ctl_per_req,
                            row.requests
                        );
                        out.straces.insert((group, server), row);
                    }
                    Err(e) => {
                        eprintln!("{} {what}: FAILED {e}", tag(i, n));
                        out.failures.push(format!("{what}: {e}"));
                    }
                }
            }
            Job::Probe { group, server } => {
                let g = &p.groups[group];
                let spec = &g.servers[server];
                let what = format!("{} {} TLS probe {}", g.workload, g.short(), spec.name);
                let pr = start_backend(s, g.backend.as_ref(), g.load_cpus).and_then(|backend| {
                    let port = backend.as_ref().map(|b| b.port);
                    let mut srv = start_server(s, spec, g.server_cpus, None, port)?;
                    let pr = probe_tls(s, &srv, probe_for(&g.load), &spec.name, &g.label());
                    srv.stop();
                    Ok(pr)
                });
                let pr = pr.unwrap_or_else(|e| TlsProbe {
                    server: spec.name.clone(),
                    load: g.label(),
                    note: e,
                    ..Default::default()
                });
                let t = tag(i, n);
                if pr.ok && pr.note.is_empty() {
                    eprintln!(
                        "{t} {what}: {} {} {} alpn {} resumed {}",
                        pr.version.as_deref().unwrap_or("?"),
                        pr.suite.as_deref().unwrap_or("?"),
                        pr.kx_group.as_deref().unwrap_or("?"),
                        pr.alpn.as_deref().unwrap_or("-"),
                        pr.resumed.map_or("?", |r| if r { "yes" } else { "no" })
                    );
                } else {
                    eprintln!("{t} {what}: FAILED {}", pr.note);
                    out.failures.push(format!("{what}: {}", pr.note));
                }
                let churn = p.groups.iter().any(|o| {
                    o.load.plain().is_some_and(|l| l.is_churn()) && o.servers.contains(spec)
                });
                if pr.resumed == Some(true) && churn {
                    out.notes.push(format!(
                        "tls: {} resumed a TLS session for the probe's second connection; wrk resumes when it can, so its HTTPS Connection: close runs are not all full handshakes",
                        spec.name
                    ));
                }
                out.probes.push(pr);
            }
            Job::Mem { server, round } => {
                let mem = &p.mem_servers[server];
                let spec = &mem.spec;
                let what = format!(
                    "memory {} conns round {}/{} {}",
                    s.mem_conns,
                    round + 1,
                    s.rounds,
                    spec.name
                );
                let cpus = s.pinned.then_some(Cpus::Core(0));
                let m = match start_server(s, spec, cpus, None, None) {
                    Ok(mut srv) => {
                        let (m, socks) = run_memory(s, &srv, mem);
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
                    out.failures.push(format!("{what}: {}", m.note));
                }
                out.mems.entry(server).or_default().push(m);
            }
        }
    }
    out
}
