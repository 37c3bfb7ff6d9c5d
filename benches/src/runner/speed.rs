//! The speed goals (issue 24): for each load that has one, our CPU per
//! request against the peer's, the spread of that ratio over the rounds,
//! the floor server's ratio to the same peer, and whether the goal is met.

use std::fmt::Write as _;

use crate::runner::discover::OURS;
use crate::runner::report::Row;
use crate::stats::median;

/// One goal: in `workload`, on the load labelled `load`, `server`'s CPU
/// per request is at most `max` times `peer`'s.
pub struct Goal {
    /// The workload (`redis`, `churn`, ...).
    pub workload: &'static str,
    /// The start of the load's label.
    pub load: &'static str,
    /// Our server (or its variant, e.g. `evio-rs --defer-accept`).
    pub server: &'static str,
    /// The server it is compared with.
    pub peer: &'static str,
    /// The largest ratio that meets the goal.
    pub max: f64,
}

const fn goal(
    workload: &'static str,
    load: &'static str,
    server: &'static str,
    peer: &'static str,
    max: f64,
) -> Goal {
    Goal {
        workload,
        load,
        server,
        peer,
        max,
    }
}

/// The goals, in the order the issue lists them.
pub const GOALS: [Goal; 9] = [
    goal(
        "redis",
        "PING_INLINE -c 50 -P 1",
        OURS,
        "redis-server",
        0.85,
    ),
    goal("redis", "SET -c 50 -P 8", OURS, "redis-server", 0.80),
    goal("http", "50 conns", OURS, "nginx", 0.85),
    goal(
        "churn",
        "http: 50 conns, Connection: close",
        OURS,
        "nginx",
        0.85,
    ),
    goal(
        "churn",
        "http: 50 conns, Connection: close",
        "evio-rs --defer-accept",
        "nginx deferred",
        0.85,
    ),
    goal(
        "churn",
        "redis: PING_INLINE -c 50 -k 0",
        OURS,
        "redis-server",
        0.80,
    ),
    goal(
        "proxy",
        "50 conns × 64 B × 1 in flight",
        OURS,
        "haproxy",
        0.90,
    ),
    goal("echo", "50 conns × 64 B × 1 in flight", OURS, "floor", 1.02),
    goal("http-proxy", "50 conns", OURS, "nginx", 0.85),
];

/// The per-round ratios of `a`'s CPU per request to `b`'s (rounds that
/// both finished).
pub fn round_ratios(a: &Row, b: &Row) -> Vec<f64> {
    a.rounds
        .iter()
        .zip(&b.rounds)
        .filter(|(x, y)| x.ok && y.ok)
        .filter_map(|(x, y)| Some(x.cpu_us_per_req? / y.cpu_us_per_req?))
        .filter(|r| r.is_finite())
        .collect()
}

/// `0.89× (0.82–0.98)`: the median of the per-round ratios and their
/// range; just the median for one round.
pub fn ratio_with_spread(v: &[f64]) -> Option<String> {
    let mid = median(v)?;
    if v.len() < 2 {
        return Some(format!("{mid:.2}×"));
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(format!("{mid:.2}× ({min:.2}–{max:.2})"))
}

/// The "Speed goals" section; nothing when no goal's load ran.
pub fn section(o: &mut String, rows: &[Row]) {
    let find = |g: &Goal, server: &str| {
        rows.iter()
            .find(|r| r.workload == g.workload && r.load.starts_with(g.load) && r.server == server)
    };
    let mut lines = Vec::new();
    for g in &GOALS {
        let (Some(ours), Some(peer)) = (find(g, g.server), find(g, g.peer)) else {
            continue;
        };
        let ratios = round_ratios(ours, peer);
        let Some(shown) = ratio_with_spread(&ratios) else {
            continue;
        };
        let floor = if g.peer == "floor" {
            "1.00×".to_string()
        } else {
            let floor_server = if g.server.ends_with("--defer-accept") {
                "floor --defer-accept"
            } else {
                "floor"
            };
            find(g, floor_server)
                .and_then(|f| median(&round_ratios(f, peer)))
                .map_or("–".into(), |v| format!("{v:.2}×"))
        };
        let met = match median(&ratios) {
            Some(v) if v <= g.max => "met",
            Some(_) => "not met",
            None => "–",
        };
        lines.push(format!(
            "| {} {} | {} | {} | {shown} | {floor} | ≤ {:.2}× | {met} |",
            g.workload, g.load, g.server, g.peer, g.max
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Speed goals\n");
    let _ = writeln!(
        o,
        "Server CPU per request, ours over the peer's: the median of the rounds and their range; \
         the floor server's ratio to the same peer beside it (what zero user-space cost would give).\n"
    );
    let _ = writeln!(
        o,
        "| load | ours | peer | ratio (min–max) | floor | goal | |"
    );
    let _ = writeln!(o, "|---|---|---|--:|--:|--:|---|");
    for l in lines {
        let _ = writeln!(o, "{l}");
    }
    o.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::load::RunResult;
    use crate::runner::markdown::tests::http_proxy_report;

    fn round(cpu: f64) -> RunResult {
        RunResult {
            ok: true,
            rate: 1.0,
            cpu_us_per_req: Some(cpu),
            ..Default::default()
        }
    }

    #[test]
    fn spread_is_the_range_of_the_round_ratios() {
        let mut rep = http_proxy_report([8.0, 10.0, 12.0, 5.0]);
        rep.rows[0].rounds = vec![round(8.0), round(9.0), round(7.0)];
        rep.rows[1].rounds = vec![round(10.0), round(10.0), round(10.0)];
        assert_eq!(
            ratio_with_spread(&round_ratios(&rep.rows[0], &rep.rows[1])).unwrap(),
            "0.80× (0.70–0.90)"
        );
        let mut o = String::new();
        section(&mut o, &rep.rows);
        assert!(o.contains("## Speed goals"), "{o}");
        assert!(
            o.contains(
                "| http-proxy 50 conns | evio-rs | nginx | 0.80× (0.70–0.90) | – | ≤ 0.85× | met |"
            ),
            "{o}"
        );
        // A failed round is left out of the ratios.
        rep.rows[0].rounds[2].ok = false;
        assert_eq!(round_ratios(&rep.rows[0], &rep.rows[1]), vec![0.8, 0.9]);
    }

    #[test]
    fn no_goal_load_no_section() {
        let mut o = String::new();
        section(&mut o, &[]);
        assert!(o.is_empty());
    }
}
