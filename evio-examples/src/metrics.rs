//! The binaries' `--metrics-port`: evio-core's per-loop counters
//! ([`evio_core::LoopMetrics`]) in the Prometheus text format, served by a
//! small evio server of its own on `GET /metrics`.
//!
//! ```text
//! # HELP evio_connections_open Connections open now.
//! # TYPE evio_connections_open gauge
//! evio_connections_open{loop="0"} 3
//! # HELP evio_bytes_read_total Bytes read from sockets (ciphertext for TLS).
//! # TYPE evio_bytes_read_total counter
//! evio_bytes_read_total{loop="0"} 52114
//! ```

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use evio_core::{Action, Conn, EventHandler, LoopMetrics};

/// Each metric: name, type, help, and how to read it from a loop's counters.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&LoopMetrics) -> u64,
);

const METRICS: &[Metric] = &[
    (
        "evio_connections_open",
        "gauge",
        "Connections open now.",
        |m| m.connections_open,
    ),
    (
        "evio_connections_accepted_total",
        "counter",
        "Connections accepted.",
        |m| m.connections_accepted,
    ),
    (
        "evio_connections_closed_total",
        "counter",
        "Connections closed.",
        |m| m.connections_closed,
    ),
    (
        "evio_accept_out_of_fds_total",
        "counter",
        "Times accept failed for lack of file descriptors.",
        |m| m.accept_out_of_fds,
    ),
    (
        "evio_bytes_read_total",
        "counter",
        "Bytes read from sockets (ciphertext for TLS).",
        |m| m.bytes_read,
    ),
    (
        "evio_bytes_written_total",
        "counter",
        "Bytes written to sockets (ciphertext for TLS).",
        |m| m.bytes_written,
    ),
    (
        "evio_wakes_total",
        "counter",
        "Times the loop was woken by another thread.",
        |m| m.wakes,
    ),
    (
        "evio_loop_iterations_total",
        "counter",
        "Event loop iterations.",
        |m| m.iterations,
    ),
    (
        "evio_tls_handshakes_total",
        "counter",
        "TLS handshakes finished.",
        |m| m.tls_handshakes,
    ),
    (
        "evio_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or timed out.",
        |m| m.tls_handshake_failures,
    ),
];

/// The Prometheus text exposition (format 0.0.4) of `loops`' counters, one
/// sample per loop with a `loop` label.
pub fn render(loops: &[LoopMetrics]) -> String {
    let mut out = String::with_capacity(256 * METRICS.len());
    for (name, kind, help, get) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, m) in loops.iter().enumerate() {
            let _ = writeln!(out, "{name}{{loop=\"{i}\"}} {}", get(m));
        }
    }
    out
}

/// A binary's own metrics, appended to the loops' counters.
type Section = Arc<dyn Fn(&mut String) + Send + Sync>;

static SECTIONS: Mutex<Vec<Section>> = Mutex::new(Vec::new());

/// Adds a binary's own metrics to every scrape: `section` appends them, in
/// the Prometheus text format, after the loops' counters (the HTTP proxy's
/// requests, responses and upstream state). Call it before the server
/// starts; sections stay for the life of the process.
pub fn add_section(section: impl Fn(&mut String) + Send + Sync + 'static) {
    SECTIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::new(section));
}

/// [`render`], then every [`add_section`]'s metrics.
fn render_all(loops: &[LoopMetrics]) -> String {
    let mut out = render(loops);
    let sections = SECTIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for section in sections {
        section(&mut out);
    }
    out
}

/// The longest request head the endpoint reads before giving up.
const MAX_HEAD: usize = 8 << 10;

/// The metrics endpoint: answers `GET /metrics` (and `HEAD`) with
/// [`render`] of what `source` returns, anything else with 404 or 405; one
/// request per connection (`Connection: close`).
#[derive(Clone)]
pub struct Endpoint {
    source: Arc<dyn Fn() -> Vec<LoopMetrics> + Send + Sync>,
}

impl Endpoint {
    /// An endpoint reading the counters from `source` (usually
    /// `move || control.metrics()`).
    pub fn new(source: impl Fn() -> Vec<LoopMetrics> + Send + Sync + 'static) -> Endpoint {
        Endpoint {
            source: Arc::new(source),
        }
    }

    fn respond(&self, head: &[u8], conn: &mut Conn<'_, Vec<u8>>) {
        let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let (status, body) = match (method, path) {
            ("GET" | "HEAD", "/metrics") => ("200 OK", render_all(&(self.source)())),
            ("GET" | "HEAD", _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
            _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write(head.as_bytes());
        if method != "HEAD" {
            conn.write(body.as_bytes());
        }
    }
}

impl EventHandler for Endpoint {
    /// The request head read so far.
    type Context = Vec<u8>;

    fn on_data(&mut self, conn: &mut Conn<'_, Vec<u8>>, input: &[u8]) -> Action {
        let head = conn.context_mut();
        head.extend_from_slice(input);
        let complete =
            head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n");
        if !complete {
            if head.len() > MAX_HEAD {
                conn.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                return Action::Close;
            }
            return Action::None;
        }
        let head = std::mem::take(conn.context_mut());
        self.respond(&head, conn);
        Action::Close
    }
}
