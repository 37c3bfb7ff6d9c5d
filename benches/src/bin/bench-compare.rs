//! `bench-compare STORED.json NEW.json [--noise FRACTION]`: compares a run
//! of `bench` with a stored one and names every load where one of our
//! servers got worse by more than the noise.
//!
//! The figure compared is each of our servers' CPU per request relative to
//! the load's reference peer in the same run (`cpu_vs_reference`: tokio's
//! echo, redis-server, nginx, HAProxy), so that two runs on machines of
//! different speed still compare. For each load it prints the per-round
//! ratios' min / median / max of both runs: the spread is what tells noise
//! from a change. A load is a regression when the new median exceeds the
//! stored median by more than the larger of `--noise` (default 0.05) and
//! the stored run's own spread ((max - min) / median). Exit status: 0 none,
//! 1 some regression, 2 bad usage or unreadable files.

use std::collections::BTreeMap;
use std::process::ExitCode;

use evio_benches::cli::{self, CliError};
use evio_benches::stats::median;
use serde_json::Value;

const USAGE: &str = "\
usage: bench-compare STORED.json NEW.json [--noise FRACTION]

Compares each of our servers' CPU per request relative to its load's
reference peer in two `bench` reports; a load whose new median exceeds the
stored one by more than the noise is named. Exit status: 0 none worse,
1 some worse, 2 bad usage or unreadable files.
  --noise F      the least change that counts (default 0.05; the stored
                 run's own spread, (max - min) / median, when larger)
  -V, --version  print the name and version
  -h, --help     this text";

/// Per-round CPU ratios of one server to its load's reference, by
/// (workload, load, server).
type Ratios = BTreeMap<(String, String, String), Vec<f64>>;

fn ratios(report: &Value) -> Ratios {
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let cpu_rounds = |row: &Value| -> Vec<Option<f64>> {
        row["rounds"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|round| {
                        (round["ok"] == true)
                            .then(|| round["cpu_us_per_req"].as_f64())
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Ratios::new();
    for row in &rows {
        let server = row["server"].as_str().unwrap_or("");
        let ours = server.starts_with("evio-rs") && !server.contains("(baseline)");
        let Some(reference) = row["reference"].as_str().filter(|_| ours) else {
            continue;
        };
        let same_load = |r: &&Value| r["workload"] == row["workload"] && r["load"] == row["load"];
        let Some(peer) = rows
            .iter()
            .filter(same_load)
            .find(|r| r["server"].as_str() == Some(reference))
        else {
            continue;
        };
        let per_round: Vec<f64> = cpu_rounds(row)
            .into_iter()
            .zip(cpu_rounds(peer))
            .filter_map(|(a, b)| Some(a? / b?))
            .filter(|r| r.is_finite())
            .collect();
        if per_round.is_empty() {
            continue;
        }
        let key = (
            row["workload"].as_str().unwrap_or("").to_string(),
            row["load"].as_str().unwrap_or("").to_string(),
            server.to_string(),
        );
        out.insert(key, per_round);
    }
    out
}

fn spread(v: &[f64]) -> (f64, f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, median(v).unwrap_or(f64::NAN), max)
}

fn load(path: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: not a bench report: {e}"))
}

/// `(stored, new, noise)` from the command line.
fn parse(parser: &mut lexopt::Parser) -> Result<(String, String, f64), CliError> {
    use lexopt::Arg::{Long, Value};
    let (mut files, mut noise) = (Vec::new(), 0.05f64);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("noise") => {
                noise = cli::value(parser, "--noise")?;
                if !(noise.is_finite() && noise >= 0.0) {
                    return Err(format!("invalid value for --noise: \"{noise}\"").into());
                }
            }
            Value(v) => files.push(v.to_string_lossy().into_owned()),
            other => return Err(cli::unexpected(other)),
        }
    }
    match <[String; 2]>::try_from(files) {
        Ok([stored, new]) => Ok((stored, new, noise)),
        Err(_) => Err("two report files are needed".into()),
    }
}

fn main() -> ExitCode {
    let (stored, new, noise) = cli::parse_or_exit("bench-compare", USAGE, parse);
    let (stored, new) = match (load(&stored), load(&new)) {
        (Ok(s), Ok(n)) => (s, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("bench-compare: {e}");
            return ExitCode::from(2);
        }
    };
    // Short smoke runs against full ones (or other run lengths) are not
    // like with like: say so, the verdicts stay.
    for key in ["smoke", "duration", "redis_n", "rounds"] {
        let (a, b) = (&stored["settings"][key], &new["settings"][key]);
        if a != b {
            eprintln!("bench-compare: warning: the runs differ in {key} ({a} vs {b}): compare like with like");
        }
    }
    let (before, after) = (ratios(&stored), ratios(&new));
    println!("| workload | load | server | stored ratio min / median / max | new ratio min / median / max | change | verdict |");
    println!("|---|---|---|--:|--:|--:|---|");
    let mut worse = Vec::new();
    let mut compared = 0;
    for (key, now) in &after {
        let Some(then) = before.get(key) else {
            continue;
        };
        compared += 1;
        let (t0, t, t1) = spread(then);
        let (n0, n, n1) = spread(now);
        let allowed = noise.max((t1 - t0) / t);
        let change = n / t - 1.0;
        let verdict = if change > allowed {
            worse.push(format!("{} / {} / {}", key.0, key.1, key.2));
            "**worse**"
        } else if change < -allowed {
            "better"
        } else {
            "within noise"
        };
        println!(
            "| {} | {} | {} | {t0:.2}× / {t:.2}× / {t1:.2}× | {n0:.2}× / {n:.2}× / {n1:.2}× | {:+.1} % (noise ±{:.1} %) | {verdict} |",
            key.0,
            key.1,
            key.2,
            change * 100.0,
            allowed * 100.0
        );
    }
    if compared == 0 {
        eprintln!("bench-compare: the two reports share no load of ours");
        return ExitCode::from(2);
    }
    if worse.is_empty() {
        eprintln!("bench-compare: {compared} loads compared, none worse than the noise");
        ExitCode::SUCCESS
    } else {
        eprintln!("bench-compare: worse than the noise: {}", worse.join("; "));
        ExitCode::from(1)
    }
}
