//! The SVG charts of a report, and writing the JSON, markdown and charts.

use std::fs;
use std::io;
use std::path::Path;

use crate::runner::report::{Report, Row};
use crate::runner::settings::Settings;
use crate::svg;

/// Per workload: title, value axis, and whether the bars are rates (else
/// CPU per request).
const CHARTS: [(&str, &str, &str, bool); 10] = [
    (
        "echo",
        "Echo: server CPU per message (lower is better)",
        "µs of CPU per message",
        false,
    ),
    (
        "echo-metrics",
        "Metrics on vs off: server CPU per message (lower is better)",
        "µs of CPU per message",
        false,
    ),
    (
        "redis",
        "Redis: server CPU per request (lower is better)",
        "µs of CPU per request",
        false,
    ),
    (
        "http",
        "HTTP: server CPU per request (lower is better)",
        "µs of CPU per request",
        false,
    ),
    (
        "loops",
        "Event loops: echo 50 × 64 B (higher is better)",
        "messages per second",
        true,
    ),
    (
        "proxy",
        "TCP proxy: proxy CPU per message (lower is better)",
        "µs of CPU per message",
        false,
    ),
    (
        "http-proxy",
        "HTTP reverse proxy: proxy CPU per request (lower is better)",
        "µs of CPU per request (the proxy only, not the upstream)",
        false,
    ),
    (
        "churn",
        "Connection churn: server CPU per connection (lower is better)",
        "µs of CPU per connection (one request each)",
        false,
    ),
    (
        "tls",
        "TLS: server CPU per request (lower is better)",
        "µs of CPU per request (proxy: per message)",
        false,
    ),
    (
        "scaling",
        "Scaling: requests per second (higher is better)",
        "requests per second",
        true,
    ),
];

/// One series per server: `value` of its row under each load (group).
fn series(
    rows: &[&Row],
    groups: &[String],
    servers: &[String],
    value: impl Fn(&Row) -> Option<f64>,
) -> Vec<(String, Vec<Option<f64>>)> {
    servers
        .iter()
        .map(|sv| {
            let vals = groups
                .iter()
                .map(|g| {
                    rows.iter()
                        .find(|r| &r.load == g && &r.server == sv)
                        .and_then(|r| value(r))
                })
                .collect();
            (sv.clone(), vals)
        })
        .collect()
}

/// The charts: (file name, SVG) — per workload its figure, the ratio to
/// the reference and (where the floor ran) the ratio to the floor; and the
/// memory chart.
pub fn charts(rep: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (w, title, y, use_rate) in CHARTS {
        let rows: Vec<&Row> = rep.rows.iter().filter(|r| r.workload == w).collect();
        if rows.is_empty() {
            continue;
        }
        let mut groups: Vec<String> = Vec::new();
        let mut servers: Vec<String> = Vec::new();
        for r in &rows {
            if !groups.contains(&r.load) {
                groups.push(r.load.clone());
            }
            if !servers.contains(&r.server) {
                servers.push(r.server.clone());
            }
        }
        let short: Vec<String> = groups
            .iter()
            .map(|g| {
                rows.iter()
                    .find(|r| &r.load == g)
                    .map(|r| r.load_short.clone())
                    .unwrap_or_default()
            })
            .collect();
        let chart = svg::Chart {
            title: title.into(),
            y_label: y.into(),
            groups: short.clone(),
            series: series(&rows, &groups, &servers, |r| {
                if use_rate {
                    r.rate
                } else {
                    r.cpu_us_per_req
                }
            }),
        };
        out.push((format!("bench-{w}.svg"), svg::render(&chart)));
        if let Some(reference) = rows.iter().find_map(|r| r.reference.clone()) {
            let chart = svg::Chart {
                title: format!(
                    "{w}: server CPU per request relative to {reference} (lower is better)"
                ),
                y_label: format!("× {reference}'s CPU per request"),
                groups: short.clone(),
                series: series(&rows, &groups, &servers, |r| r.cpu_vs_reference),
            };
            out.push((format!("bench-{w}-ratio.svg"), svg::render(&chart)));
        }
        let mut also: Vec<String> = Vec::new();
        for name in rows.iter().flat_map(|r| r.cpu_vs_also.keys()) {
            if !also.contains(name) {
                also.push(name.clone());
            }
        }
        for to in also {
            let chart = svg::Chart {
                title: format!("{w}: server CPU per request relative to {to} (lower is better)"),
                y_label: format!("× {to}'s CPU per request"),
                groups: short.clone(),
                series: series(&rows, &groups, &servers, |r| {
                    r.cpu_vs_also.get(&to).copied()
                }),
            };
            let file = to.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            out.push((format!("bench-{w}-ratio-{file}.svg"), svg::render(&chart)));
        }
        if rows.iter().any(|r| r.cpu_vs_floor.is_some()) {
            let chart = svg::Chart {
                title: format!(
                    "{w}: server CPU per request relative to the floor server (1.0 = the floor)"
                ),
                y_label: "× the floor's CPU per request".into(),
                groups: short,
                series: series(&rows, &groups, &servers, |r| r.cpu_vs_floor),
            };
            out.push((format!("bench-{w}-floor.svg"), svg::render(&chart)));
        }
    }
    for (tls, name, title) in [
        (false, "bench-memory.svg", "Memory per idle connection"),
        (
            true,
            "bench-tls-memory.svg",
            "Memory per idle TLS connection",
        ),
    ] {
        let rows: Vec<_> = rep.memory.iter().filter(|r| r.tls == tls).collect();
        if rows.is_empty() {
            continue;
        }
        let chart = svg::Chart {
            title: format!("{title} (lower is better)"),
            y_label: "bytes of RSS per connection".into(),
            groups: rows.iter().map(|r| r.server.clone()).collect(),
            series: vec![(
                "bytes per connection".into(),
                rows.iter().map(|r| r.bytes_per_conn).collect(),
            )],
        };
        out.push((name.into(), svg::render(&chart)));
    }
    out
}

/// Writes the JSON to `--out`, the markdown beside it (`.md`) and the
/// charts into the same directory.
pub fn write_outputs(s: &Settings, rep: &Report, md: &str) -> io::Result<()> {
    let dir = s.out_json.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(rep).map_err(io::Error::other)?;
    fs::write(&s.out_json, json + "\n")?;
    fs::write(s.out_json.with_extension("md"), md)?;
    for (name, body) in charts(rep) {
        fs::write(dir.join(name), body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::markdown::tests::http_proxy_report;

    #[test]
    fn http_proxy_charts_include_the_haproxy_ratio() {
        let out = charts(&http_proxy_report([8.0, 10.0, 12.0, 5.0]));
        let files: Vec<&str> = out.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            files,
            [
                "bench-http-proxy.svg",
                "bench-http-proxy-ratio.svg",
                "bench-http-proxy-ratio-haproxy.svg"
            ]
        );
        let (_, svg) = &out[2];
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("relative to haproxy"));
    }
}
