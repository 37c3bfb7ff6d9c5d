//! The HTTP example: HTTP/1.1 with keep-alive and pipelining, answering
//! `GET /` and `HEAD /` with `Hello World!`.
//!
//! Requests are parsed in place by `httparse` (headers on the stack, no
//! allocation), every request of a read is answered before the loop writes,
//! and responses are static pieces plus a header block whose `Date` is
//! refreshed once a second: loop 0's `on_tick` publishes the current second
//! in an atomic, and each loop reformats its own copy when it sees a new
//! second. Nothing is formatted or allocated per request.
//!
//! Request bodies (`Content-Length`) are skipped as they arrive, never
//! buffered and never parsed as requests. `Transfer-Encoding` bodies are
//! refused (411 for chunked, 501 otherwise) and the connection closed, since
//! the end of the body cannot be found without decoding it.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evio_core::{Action, Conn, EventHandler, InputStream, Options};

use crate::Sink;

/// The default limit of a request head (request line and headers together):
/// 8 KiB. (nginx's default allows 8 KiB per line.)
pub const MAX_HEADER_BYTES: usize = 8 << 10;
/// The most headers one request may have.
pub const MAX_HEADERS: usize = 64;

/// The body `GET /` answers.
pub const BODY: &[u8] = b"Hello World!\r\n";

/// Settings of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest request head (request line and headers); a larger one gets
    /// 431 and a close. This also bounds the input held per connection.
    pub max_header_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_header_bytes: MAX_HEADER_BYTES,
        }
    }
}

/// Per-connection state: a partial request head held over from earlier
/// reads, and how much of a request body is still to be skipped.
#[derive(Debug, Default)]
pub struct Session {
    input: InputStream,
    body_left: u64,
}

/// A response status with its static headers and body.
struct Status {
    code: u16,
    line: &'static [u8],
    /// `Content-Type` and `Content-Length` of `body`.
    headers: &'static [u8],
    body: &'static [u8],
}

// Content-Length values are written out; `static_lengths_match` checks them.
const OK: Status = Status {
    code: 200,
    line: b"HTTP/1.1 200 OK\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 14\r\n",
    body: BODY,
};
const NOT_FOUND: Status = Status {
    code: 404,
    line: b"HTTP/1.1 404 Not Found\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 11\r\n",
    body: b"Not Found\r\n",
};
const METHOD_NOT_ALLOWED: Status = Status {
    code: 405,
    line: b"HTTP/1.1 405 Method Not Allowed\r\n",
    headers: b"Allow: GET, HEAD\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n",
    body: b"Method Not Allowed\r\n",
};
const BAD_REQUEST: Status = Status {
    code: 400,
    line: b"HTTP/1.1 400 Bad Request\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 13\r\n",
    body: b"Bad Request\r\n",
};
const LENGTH_REQUIRED: Status = Status {
    code: 411,
    line: b"HTTP/1.1 411 Length Required\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 17\r\n",
    body: b"Length Required\r\n",
};
const HEADERS_TOO_LARGE: Status = Status {
    code: 431,
    line: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 33\r\n",
    body: b"Request Header Fields Too Large\r\n",
};
const NOT_IMPLEMENTED: Status = Status {
    code: 501,
    line: b"HTTP/1.1 501 Not Implemented\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 17\r\n",
    body: b"Not Implemented\r\n",
};
const CLOSE: &[u8] = b"Connection: close\r\n";
const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";

/// The `Server` and `Date` headers, rebuilt when the second changes.
#[derive(Clone, Debug)]
struct DateCache {
    /// Seconds since the epoch, published by loop 0's tick.
    clock: Arc<AtomicU64>,
    /// The second `common` and `hello` were built for.
    secs: u64,
    /// `Server: evio\r\nDate: ...\r\n`
    common: Vec<u8>,
    /// The whole keep-alive `200 OK` response: the hot path is one write.
    hello: Vec<u8>,
}

impl DateCache {
    fn new() -> DateCache {
        let mut cache = DateCache {
            clock: Arc::new(AtomicU64::new(0)),
            secs: u64::MAX,
            common: Vec::new(),
            hello: Vec::new(),
        };
        cache.tick();
        cache
    }

    /// Publishes the current second; returns the time until the next one.
    fn tick(&mut self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.clock.store(now.as_secs(), Ordering::Relaxed);
        self.refresh();
        Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()))
            + Duration::from_millis(1)
    }

    /// Rebuilds the headers if loop 0 published a new second: one atomic
    /// load per read, one format per second.
    fn refresh(&mut self) {
        let secs = self.clock.load(Ordering::Relaxed);
        if secs == self.secs {
            return;
        }
        self.secs = secs;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        self.common.clear();
        self.common.extend_from_slice(b"Server: evio\r\nDate: ");
        self.common.extend_from_slice(date.as_bytes());
        self.common.extend_from_slice(b"\r\n");
        self.hello.clear();
        for part in [OK.line, &self.common, OK.headers, b"\r\n", OK.body] {
            self.hello.extend_from_slice(part);
        }
    }
}

/// What a request asked for, from its headers.
struct Request {
    status: &'static Status,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    body_len: u64,
}

/// The protocol engine of one event loop. It writes responses to a
/// [`Sink`], so it runs the same over a [`Conn`], in tests, fuzzers and
/// benchmarks.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    date: DateCache,
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: Config) -> Engine {
        Engine {
            config,
            date: DateCache::new(),
        }
    }

    /// Publishes the current second to every engine cloned from this one
    /// (call it from `on_tick`); returns the delay until the next second.
    pub fn tick(&mut self) -> Duration {
        self.date.tick()
    }

    /// Handles one read of input for `session`, writing responses to `out`.
    /// Returns `Close` when the connection must close after them.
    pub fn feed<O: Sink + ?Sized>(
        &mut self,
        session: &mut Session,
        packet: &[u8],
        out: &mut O,
    ) -> Action {
        // First the rest of a body that earlier reads did not complete.
        let skip = session.body_left.min(packet.len() as u64);
        session.body_left -= skip;
        let packet = &packet[skip as usize..];
        if packet.is_empty() {
            return Action::None;
        }
        let limit = self.config.max_header_bytes;
        let held = session.input.len();
        if held > 0 && held + packet.len() <= limit && !packet.contains(&b'\n') {
            // A head can only end with a newline: don't parse it again yet.
            let _ = session.input.begin(packet);
            session.input.end(packet, 0);
            return Action::None;
        }
        self.date.refresh();
        let data = session.input.begin(packet);
        let mut pos = 0;
        let mut action = Action::None;
        while pos < data.len() {
            // Uninitialised header slots: nothing to clear per request.
            let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
            let mut req = httparse::Request::new(&mut []);
            // Parse no more than the limit: a head that is not complete
            // within it is too large, whatever follows.
            let window = &data[pos..data.len().min(pos + limit)];
            let (len, request) = match req.parse_with_uninit_headers(window, &mut headers) {
                Ok(httparse::Status::Complete(len)) => (len, inspect(&req)),
                Ok(httparse::Status::Partial) if data.len() - pos <= limit => break,
                Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                    (0, Err(&HEADERS_TOO_LARGE))
                }
                Err(_) => (0, Err(&BAD_REQUEST)),
            };
            let request = match request {
                Ok(r) => r,
                Err(status) => {
                    action = self.error(status, out);
                    break;
                }
            };
            pos += len;
            self.respond(&request, out);
            // Skip the body: what has arrived now, the rest as it arrives.
            let here = (data.len() - pos) as u64;
            if request.body_len <= here {
                pos += request.body_len as usize;
            } else {
                session.body_left = request.body_len - here;
                pos = data.len();
            }
            if !request.keep_alive {
                action = Action::Close;
                break;
            }
        }
        if action != Action::None {
            session.input.clear();
            return action;
        }
        session.input.end(packet, pos);
        if session.input.is_empty() {
            // Give the buffer back: idle connections hold no heap memory.
            session.input.clear();
        }
        Action::None
    }

    fn respond<O: Sink + ?Sized>(&self, r: &Request, out: &mut O) {
        if r.status.code == 200 && r.keep_alive && !r.http10 && !r.head_only {
            return out.write(&self.date.hello);
        }
        out.write(r.status.line);
        out.write(&self.date.common);
        out.write(r.status.headers);
        if !r.keep_alive {
            out.write(CLOSE);
        } else if r.http10 {
            out.write(KEEP_ALIVE);
        }
        out.write(b"\r\n");
        if !r.head_only {
            out.write(r.status.body);
        }
    }

    /// Answers a request that cannot be served with `status`, and closes.
    fn error<O: Sink + ?Sized>(&self, status: &'static Status, out: &mut O) -> Action {
        let request = Request {
            status,
            head_only: false,
            http10: false,
            keep_alive: false,
            body_len: 0,
        };
        self.respond(&request, out);
        Action::Close
    }
}

/// Reads what the engine needs from a parsed request head.
fn inspect(req: &httparse::Request<'_, '_>) -> Result<Request, &'static Status> {
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut hosts) = (false, false, 0);
    let mut body_len: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(&BAD_REQUEST)?;
            // Two different lengths: the body's end is ambiguous.
            if body_len.is_some_and(|b| b != n) {
                return Err(&BAD_REQUEST);
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked = tokens(h.value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            transfer_encoding = Some(chunked);
        } else if name.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    match transfer_encoding {
        Some(true) => return Err(&LENGTH_REQUIRED),
        Some(false) => return Err(&NOT_IMPLEMENTED),
        None => {}
    }
    // HTTP/1.1 requires exactly one Host header (RFC 9112, section 3.2).
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(&BAD_REQUEST);
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let get_or_head = method == "GET" || method == "HEAD";
    let status = match (path, get_or_head) {
        ("/", true) => &OK,
        ("/", false) => &METHOD_NOT_ALLOWED,
        _ => &NOT_FOUND,
    };
    Ok(Request {
        status,
        head_only: method == "HEAD",
        http10,
        keep_alive: if http10 { keep_alive && !close } else { !close },
        body_len: body_len.unwrap_or(0),
    })
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

/// `s` without leading and trailing spaces and tabs.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A `Content-Length`: decimal digits only (no sign, no spaces), at most
/// what a `u64` holds.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Server-wide counters, shared by all loops.
#[derive(Debug, Default)]
pub struct Stats {
    opened: AtomicUsize,
}

impl Stats {
    /// Connections accepted so far.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
}

/// The HTTP server: an [`Engine`] per loop, the clock on loop 0's tick.
#[derive(Clone, Debug)]
pub struct HttpServer {
    engine: Engine,
    stats: Arc<Stats>,
}

impl HttpServer {
    /// A server with `config`.
    pub fn new(config: Config) -> HttpServer {
        HttpServer {
            engine: Engine::new(config),
            stats: Arc::default(),
        }
    }

    /// The server's counters (shared: read them while it runs).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}

impl EventHandler for HttpServer {
    type Context = Session;

    fn on_opened(&mut self, _conn: &mut Conn<'_, Session>) -> (Options, Action) {
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> Action {
        // The engine needs the session and the connection's output at once:
        // move the (small) session out of the connection for the call.
        let mut session = std::mem::take(conn.context_mut());
        let action = self.engine.feed(&mut session, input, conn);
        *conn.context_mut() = session;
        action
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        (Some(self.engine.tick()), Action::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (String, Action) {
        let mut out = Vec::new();
        let a = Engine::new(Config::default()).feed(&mut Session::default(), input, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), a)
    }

    fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect()
    }

    #[test]
    fn idle_connection_state_is_small() {
        assert!(std::mem::size_of::<Session>() <= 48);
    }

    #[test]
    fn static_lengths_match() {
        for s in [
            &OK,
            &NOT_FOUND,
            &METHOD_NOT_ALLOWED,
            &BAD_REQUEST,
            &LENGTH_REQUIRED,
            &HEADERS_TOO_LARGE,
            &NOT_IMPLEMENTED,
        ] {
            let headers = std::str::from_utf8(s.headers).unwrap();
            assert!(
                headers.ends_with(&format!("Content-Length: {}\r\n", s.body.len())),
                "{headers}"
            );
        }
    }

    #[test]
    fn hello_and_keep_alive() {
        let (out, a) = run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\nServer: evio\r\nDate: "),
            "{out}"
        );
        assert!(
            out.ends_with("Content-Length: 14\r\n\r\nHello World!\r\n"),
            "{out}"
        );
        assert!(!out.contains("Connection"));
        assert_eq!(a, Action::None);
        let (out, a) = run(b"HEAD /?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.ends_with("Content-Length: 14\r\n\r\n"), "{out}");
        assert_eq!(a, Action::None);
    }

    #[test]
    fn statuses_and_close_rules() {
        let cases: &[(&[u8], &str, Action)] = &[
            (b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "404", Action::None),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                "405",
                Action::None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "200",
                Action::Close,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", "200", Action::Close),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                "200",
                Action::None,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", "400", Action::Close),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                "411",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                "501",
                Action::Close,
            ),
            (b"GARBAGE\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/2.0\r\n\r\n", "400", Action::Close),
        ];
        for (req, status, action) in cases {
            let (out, a) = run(req);
            assert_eq!(
                statuses(&out),
                [*status],
                "{}",
                String::from_utf8_lossy(req)
            );
            assert_eq!(a, *action, "{}", String::from_utf8_lossy(req));
            assert_eq!(
                out.contains("Connection: close"),
                *action == Action::Close,
                "{out}"
            );
        }
        assert!(run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .0
            .contains("Connection: keep-alive"));
    }

    #[test]
    fn pipelining_and_bodies() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
                    POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /y HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, a) = run(req);
        assert_eq!(statuses(&out), ["200", "405", "404"]);
        assert_eq!(a, Action::None);
        // The same bytes in every split give the same responses.
        for chunk in 1..req.len() {
            let mut e = Engine::new(Config::default());
            let mut s = Session::default();
            let mut out = Vec::new();
            for piece in req.chunks(chunk) {
                assert_eq!(e.feed(&mut s, piece, &mut out), Action::None);
            }
            assert_eq!(
                statuses(&String::from_utf8_lossy(&out)),
                ["200", "405", "404"],
                "chunk {chunk}"
            );
            assert!(s.input.is_empty() && s.body_left == 0);
        }
    }

    #[test]
    fn head_limit() {
        let mut e = Engine::new(Config {
            max_header_bytes: 64,
        });
        let mut out = Vec::new();
        let mut s = Session::default();
        assert_eq!(
            e.feed(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\nX: ", &mut out),
            Action::None
        );
        assert_eq!(e.feed(&mut s, &[b'a'; 40], &mut out), Action::Close);
        assert_eq!(statuses(&String::from_utf8_lossy(&out)), ["431"]);
        let (out, _) = run(format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        )
        .as_bytes());
        assert_eq!(statuses(&out), ["431"]);
        let many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
        let (out, _) = run(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
        assert_eq!(statuses(&out), ["431"]);
    }

    #[test]
    fn date_is_cached() {
        let e = Engine::new(Config::default());
        let date = std::str::from_utf8(&e.date.common).unwrap();
        assert!(
            date.starts_with("Server: evio\r\nDate: ") && date.ends_with(" GMT\r\n"),
            "{date}"
        );
        assert_eq!(date.len(), "Server: evio\r\nDate: \r\n".len() + 29);
        // A clone shares the clock: a tick on one refreshes the other's header.
        let mut a = e.clone();
        let mut b = e.clone();
        a.date.clock.store(0, Ordering::Relaxed);
        b.date.refresh();
        assert!(String::from_utf8_lossy(&b.date.common).contains("Thu, 01 Jan 1970 00:00:00 GMT"));
        a.tick();
        b.date.refresh();
        assert!(!String::from_utf8_lossy(&b.date.common).contains("1970"));
    }
}
