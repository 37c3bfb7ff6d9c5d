//! The Linux body of `bench` (see the binary's own documentation).

use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use evio_benches::cli;
use evio_benches::runner::charts::write_outputs;
use evio_benches::runner::discover::discover;
use evio_benches::runner::execute::{prepare, run_jobs};
use evio_benches::runner::markdown::markdown;
use evio_benches::runner::plan::plan;
use evio_benches::runner::report::{build_mem_rows, build_rows, machine, utc_now, Report};
use evio_benches::runner::settings::{Settings, USAGE};

/// The binary's `main` on Linux.
pub fn main() -> ExitCode {
    let mut s = cli::parse_or_exit("bench", USAGE, Settings::parse);
    let t_start = Instant::now();
    let mut notes = Vec::new();
    if let Err(e) = prepare(&mut s, &mut notes) {
        eprintln!("bench: {e}");
        return ExitCode::from(2);
    }
    let servers = discover(&s, &mut notes);
    let p = plan(&s, &servers, &mut notes);
    for n in &notes {
        eprintln!("bench: note: {n}");
    }
    eprintln!(
        "bench: {} runs ({} mode), binaries from {}",
        p.jobs.len(),
        if s.smoke { "smoke" } else { "full" },
        s.bin_dir.display()
    );
    let out = run_jobs(&s, &p);
    let rep = Report {
        generated_by: "evio-benches bench",
        date_utc: utc_now(),
        machine: machine(),
        rows: build_rows(&p.groups, &out.runs, &out.straces),
        memory: build_mem_rows(&s, &p.mem_servers, &out.mems),
        tls_probes: out.probes,
        settings: s.clone(),
        notes: notes.into_iter().chain(out.notes).collect(),
        failures: out.failures,
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
    if p.jobs.is_empty() {
        eprintln!("bench: nothing ran");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
