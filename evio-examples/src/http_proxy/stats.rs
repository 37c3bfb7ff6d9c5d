//! The proxy's counters for the metrics endpoint (`--metrics-port`):
//! requests, responses by status class, refusals, retries, pooled
//! connections reused — kept per loop on cache lines of their own (a
//! relaxed add each, no line shared between loops), summed when scraped —
//! and each upstream's failures and state, from [`Upstreams`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Upstreams;

/// Loops beyond this share slots (a relaxed add stays correct, only the
/// cache line is then shared).
const SLOTS: usize = 64;

/// One loop's counters, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LoopStats {
    requests: AtomicU64,
    /// By status class: 1xx..5xx.
    responses: [AtomicU64; 5],
    refused: AtomicU64,
    retries: AtomicU64,
    pool_reuses: AtomicU64,
}

/// The proxy's counters, shared by every loop's handler.
#[derive(Debug)]
pub struct Stats {
    loops: Vec<LoopStats>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            loops: (0..SLOTS).map(|_| LoopStats::default()).collect(),
        }
    }
}

impl Stats {
    fn at(&self, loop_index: usize) -> &LoopStats {
        &self.loops[loop_index % SLOTS]
    }

    /// A request head was accepted and is being forwarded.
    pub(super) fn request(&self, loop_index: usize) {
        self.at(loop_index).requests.fetch_add(1, Relaxed);
    }

    /// A response with `status` went to a client (the upstream's or the
    /// proxy's own).
    pub(super) fn response(&self, loop_index: usize, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.at(loop_index).responses[class].fetch_add(1, Relaxed);
    }

    /// A request was refused (malformed or ambiguous).
    pub(super) fn refused(&self, loop_index: usize) {
        self.at(loop_index).refused.fetch_add(1, Relaxed);
    }

    /// A request was sent again after its upstream connection failed.
    pub(super) fn retry(&self, loop_index: usize) {
        self.at(loop_index).retries.fetch_add(1, Relaxed);
    }

    /// A request went over a pooled connection.
    pub(super) fn pool_reuse(&self, loop_index: usize) {
        self.at(loop_index).pool_reuses.fetch_add(1, Relaxed);
    }

    fn sum(&self, get: impl Fn(&LoopStats) -> &AtomicU64) -> u64 {
        self.loops.iter().map(|l| get(l).load(Relaxed)).sum()
    }

    /// Appends the counters and `upstreams`' state in the Prometheus text
    /// format.
    pub fn render(&self, upstreams: &Upstreams, out: &mut String) {
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "evio_http_proxy_requests_total",
            "Requests forwarded to an upstream.",
            self.sum(|l| &l.requests),
        );
        counter(
            "evio_http_proxy_refused_total",
            "Requests refused as malformed or ambiguous (400, 405, 417, 431, 501, 505).",
            self.sum(|l| &l.refused),
        );
        counter(
            "evio_http_proxy_retries_total",
            "Requests sent again after their upstream connection failed.",
            self.sum(|l| &l.retries),
        );
        counter(
            "evio_http_proxy_pool_reuses_total",
            "Requests sent over a pooled upstream connection.",
            self.sum(|l| &l.pool_reuses),
        );
        let name = "evio_http_proxy_responses_total";
        let _ = writeln!(
            out,
            "# HELP {name} Responses sent to clients, by status class.\n# TYPE {name} counter"
        );
        for class in 0..5 {
            let v = self.sum(|l| &l.responses[class]);
            let _ = writeln!(out, "{name}{{class=\"{}xx\"}} {v}", class + 1);
        }
        let name = "evio_http_proxy_upstream_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Connect errors, resets and timeouts before a response, per upstream.\n# TYPE {name} counter"
        );
        for i in 0..upstreams.len() {
            let _ = writeln!(
                out,
                "{name}{{upstream=\"{}\"}} {}",
                upstreams.addr(i),
                upstreams.failures(i)
            );
        }
        let name = "evio_http_proxy_upstream_up";
        let _ = writeln!(
            out,
            "# HELP {name} 1 if the upstream takes requests, 0 while it is down.\n# TYPE {name} gauge"
        );
        for i in 0..upstreams.len() {
            let up = u8::from(upstreams.is_up(i));
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {up}", upstreams.addr(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::super::Balance;
    use super::*;

    #[test]
    fn counters_sum_over_loops() {
        let s = Stats::default();
        s.request(0);
        s.request(3);
        s.response(0, 200);
        s.response(3, 502);
        s.response(1, 101);
        let up = SocketAddr::from(([127, 0, 0, 1], 9));
        let u = Upstreams::new(vec![up], Balance::RoundRobin, 1, Duration::from_secs(60));
        u.failed(0);
        let mut out = String::new();
        s.render(&u, &mut out);
        assert!(out.contains("evio_http_proxy_requests_total 2\n"), "{out}");
        assert!(out.contains("evio_http_proxy_responses_total{class=\"2xx\"} 1\n"));
        assert!(out.contains("evio_http_proxy_responses_total{class=\"5xx\"} 1\n"));
        assert!(out.contains("evio_http_proxy_responses_total{class=\"1xx\"} 1\n"));
        assert!(
            out.contains("evio_http_proxy_upstream_failures_total{upstream=\"127.0.0.1:9\"} 1\n")
        );
        assert!(out.contains("evio_http_proxy_upstream_up{upstream=\"127.0.0.1:9\"} 0\n"));
    }
}
