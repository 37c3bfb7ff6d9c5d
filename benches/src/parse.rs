//! Parsers for the output of the external tools: `redis-benchmark --csv`,
//! `wrk --latency` and `strace -c`.

/// One line of `redis-benchmark --csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisRow {
    /// Test name, e.g. `PING_INLINE`.
    pub test: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in ms, where given.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in ms, where given.
    pub p99_ms: Option<f64>,
}

fn csv_fields(line: &str) -> Vec<String> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect()
}

/// Parses `redis-benchmark --csv` output (redis 6 has only `test,rps`;
/// redis 7 adds a header and latency columns).
pub fn parse_redis_csv(text: &str) -> Vec<RedisRow> {
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        let f = csv_fields(line);
        if f.len() < 2 {
            continue;
        }
        if f[0] == "test" {
            header = f;
            continue;
        }
        let Ok(rps) = f[1].parse::<f64>() else {
            continue;
        };
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| f.get(i))
                .and_then(|v| v.parse::<f64>().ok())
        };
        rows.push(RedisRow {
            test: f[0].clone(),
            rps,
            p50_ms: col("p50_latency_ms"),
            p99_ms: col("p99_latency_ms"),
        });
    }
    rows
}

/// What `wrk --latency` reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WrkResult {
    /// Responses completed.
    pub requests: u64,
    /// Run time in seconds.
    pub secs: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency in µs.
    pub p99_us: Option<f64>,
    /// Socket errors (connect + read + write + timeout).
    pub socket_errors: u64,
    /// Non-2xx or 3xx responses.
    pub bad_status: u64,
}

/// A wrk duration (`345.12us`, `1.20ms`, `5.00s`, `1.00m`) in µs.
pub fn wrk_time_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mul = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(v * mul)
}

/// Parses the text that `wrk --latency` prints.
pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut saw_requests = false;
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        if words.len() >= 4 && words[1] == "requests" && words[2] == "in" {
            r.requests = words[0].parse().ok()?;
            r.secs = wrk_time_us(words[3].trim_end_matches(','))? / 1e6;
            saw_requests = true;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().ok()?;
        } else if words.len() == 2 && words[0] == "50%" {
            r.p50_us = wrk_time_us(words[1]).filter(|v| *v > 0.0);
        } else if words.len() == 2 && words[0] == "99%" {
            // wrk prints 0.00us for a percentile it lost (seen with
            // pipelining): no figure rather than a wrong one.
            r.p99_us = wrk_time_us(words[1]).filter(|v| *v > 0.0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.socket_errors = v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.bad_status = v.trim().parse().ok()?;
        }
    }
    saw_requests.then_some(r)
}

/// The counts of a `strace -c` summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StraceSummary {
    /// Total system calls.
    pub total: u64,
    /// Calls per system call name, most frequent first.
    pub calls: Vec<(String, u64)>,
    /// Failed calls per system call name (those that failed at all).
    pub errors: Vec<(String, u64)>,
}

impl StraceSummary {
    /// Calls of one system call.
    pub fn count(&self, name: &str) -> u64 {
        self.calls
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    }

    /// Failed calls of one system call (e.g. `accept4` that said EAGAIN).
    pub fn failed(&self, name: &str) -> u64 {
        self.errors
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    }
}

/// Parses the table that `strace -c -o FILE` writes:
/// `% time  seconds  usecs/call  calls  errors  syscall` (errors may be
/// blank, so the calls are the fourth column).
pub fn parse_strace(text: &str) -> Option<StraceSummary> {
    let mut s = StraceSummary::default();
    let mut saw_total = false;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 5 || w[0].starts_with('%') || w[0].starts_with('-') {
            continue;
        }
        let Ok(calls) = w[3].parse::<u64>() else {
            continue;
        };
        let name = w[w.len() - 1];
        if name == "total" {
            s.total = calls;
            saw_total = true;
        } else {
            s.calls.push((name.to_string(), calls));
            // Six columns when the errors column is filled in.
            if let (6, Ok(errors)) = (w.len(), w[4].parse::<u64>()) {
                s.errors.push((name.to_string(), errors));
            }
        }
    }
    if !saw_total {
        s.total = s.calls.iter().map(|(_, c)| c).sum();
    }
    s.calls.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (!s.calls.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis7_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"PING_INLINE\",\"454545.47\",\"0.583\",\"0.136\",\"0.575\",\"0.815\",\"1.471\",\"3.551\"\n";
        let rows = parse_redis_csv(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].test, "PING_INLINE");
        assert_eq!(rows[0].rps, 454545.47);
        assert_eq!(rows[0].p50_ms, Some(0.575));
        assert_eq!(rows[0].p99_ms, Some(1.471));
    }

    #[test]
    fn redis6_csv() {
        let rows = parse_redis_csv("\"SET\",\"65963.06\"\n\"GET\",\"70000.00\"\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].test, "GET");
        assert_eq!(rows[1].p50_ms, None);
    }

    #[test]
    fn wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:8080/\n  1 threads and 50 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   345.12us  100.12us   5.00ms   90.00%\n    Req/Sec   140.00k     5.00k  150.00k    80.00%\n  Latency Distribution\n     50%  330.00us\n     75%  400.00us\n     90%  450.00us\n     99%    1.20ms\n  700000 requests in 5.00s, 80.00MB read\n  Socket errors: connect 0, read 2, write 1, timeout 0\n  Non-2xx or 3xx responses: 5\nRequests/sec: 140000.00\nTransfer/sec:     16.00MB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 700000);
        assert_eq!(r.secs, 5.0);
        assert_eq!(r.rps, 140000.0);
        assert_eq!(r.p50_us, Some(330.0));
        assert_eq!(r.p99_us, Some(1200.0));
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.bad_status, 5);
        assert!(parse_wrk("nothing").is_none());
        let lost = text.replace("99%    1.20ms", "99%    0.00us");
        assert_eq!(parse_wrk(&lost).unwrap().p99_us, None);
    }

    #[test]
    fn strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 60.00    0.600000           3    200000           write\n 30.00    0.300000           1    200000     10000 read\n 10.00    0.100000           5     20000           epoll_wait\n  0.00    0.000000           0       100           epoll_ctl\n------ ----------- ----------- --------- --------- ----------------\n100.00    1.000000           2    420100     10000 total\n";
        let s = parse_strace(text).unwrap();
        assert_eq!(s.total, 420100);
        assert_eq!(s.count("read"), 200000);
        assert_eq!(s.count("epoll_ctl"), 100);
        assert_eq!(s.count("accept4"), 0);
        assert_eq!(s.calls[0].0, "read");
    }

    #[test]
    fn strace_errors() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 50.00    0.100000           3      3000      1000 accept4\n 50.00    0.100000           1      2000           close\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.200000           2      5000      1000 total\n";
        let s = parse_strace(text).unwrap();
        assert_eq!(s.count("accept4"), 3000);
        assert_eq!(s.failed("accept4"), 1000);
        assert_eq!(s.failed("close"), 0);
        assert_eq!(s.total, 5000);
    }
}
