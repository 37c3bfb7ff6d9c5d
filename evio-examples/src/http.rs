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
//! # Requests
//!
//! - Request line: origin-form (`/path?q`) and absolute-form
//!   (`http://host/path`, routed on its path) targets. `HTTP/1.0` and
//!   `HTTP/1.1`; `HTTP/1.2` to `HTTP/1.999` are served as 1.1 and
//!   `HTTP/2.0` and above get `505`, as nginx does.
//! - `Host`: exactly one on HTTP/1.1, and a valid `host[:port]` (RFC 9110
//!   §7.2, RFC 3986 §3.2.2: no spaces, no `/`, no empty name); else `400`.
//! - Bodies, framed by `Content-Length` or `Transfer-Encoding: chunked`,
//!   are read and discarded as they arrive, never buffered, and the response
//!   is sent once the whole body has been read (so the next request starts
//!   where the body ends, whatever the client does). A body over
//!   [`Config::max_body_bytes`] (1 MiB, nginx's `client_max_body_size`)
//!   gets `413` and a close: a declared `Content-Length` at once, a chunked
//!   body as soon as its chunk sizes pass the limit. Chunk extensions are
//!   ignored and trailer fields skipped; a chunk-size line (size and
//!   extensions) or a trailer line longer than [`MAX_CHUNK_LINE`] is a
//!   `400`, and trailer bytes count toward the body limit.
//! - `Expect: 100-continue` on an HTTP/1.1 request with a body, none of
//!   which has arrived yet: `HTTP/1.1 100 Continue` is sent right away,
//!   the final response after the body. Any other expectation gets `417`.
//! - `Transfer-Encoding` other than `chunked`: `501`; with
//!   `Content-Length` too, or on HTTP/1.0: `400` (as nginx).
//!
//! Error responses close the connection.
//!
//! # Output is bounded
//!
//! A client can pipeline thousands of requests without reading a response.
//! The engine stops executing requests once the connection's queued output
//! ([`Sink::output_len`]) passes [`Config::output_high_water`], keeps the
//! unexecuted input in the session, and continues when it is fed again (the
//! server does that from `on_drained`, once the output has been written).

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
/// The default limit of a request body, 1 MiB (nginx's default
/// `client_max_body_size`).
pub const MAX_BODY_BYTES: u64 = 1 << 20;
/// The longest chunk-size line (hex size and chunk extensions) and the
/// longest trailer line of a chunked body, 4 KiB.
pub const MAX_CHUNK_LINE: u16 = 4 << 10;
/// The default output high-water mark of a connection, 1 MiB: evio-core's
/// default high-water mark, so that reading a connection pauses (in
/// evio-core) when executing its requests does (here).
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// While requests wait for the output to drain, the input held may grow to
/// `max(output_high_water, HELD_INPUT_MIN)` plus the head limit before
/// requests run regardless (1 MiB: evio-core's default high-water mark,
/// at which it stops reading the connection anyway).
pub const HELD_INPUT_MIN: usize = 1 << 20;

/// The body `GET /` answers.
pub const BODY: &[u8] = b"Hello World!\r\n";

/// Settings of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest request head (request line and headers); a larger one gets
    /// 431 and a close. This also bounds the input held per connection.
    pub max_header_bytes: usize,
    /// Largest request body (`Content-Length`, or the chunk data and
    /// trailers of a chunked body); a larger one gets 413 and a close.
    /// Bodies are discarded as they arrive: this bounds time, not memory.
    pub max_body_bytes: u64,
    /// Pipelined requests are not executed while more than this many bytes
    /// of responses are queued for the connection; see the
    /// [module docs](self#output-is-bounded). Keep it at or above evio-core's
    /// high-water mark (`Builder::output_water_marks`), so that reading
    /// pauses too; otherwise unexecuted input accumulates (up to
    /// [`HELD_INPUT_MIN`] or this, whichever is larger, plus
    /// `max_header_bytes`; past that requests run regardless and evio-core's
    /// own mark applies).
    pub output_high_water: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_header_bytes: MAX_HEADER_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            output_high_water: OUTPUT_HIGH_WATER,
        }
    }
}

/// Per-connection state: a partial request head (or requests not executed
/// yet) held over from earlier reads, where the body being skipped is, and
/// the response that waits for the body's end. 64 bytes, no heap memory
/// while the connection is idle.
#[derive(Debug, Default)]
pub struct Session {
    input: InputStream,
    body: BodyState,
    /// The status code of the response to send when the body ends (0:
    /// none), and its `PENDING_*` flags.
    pending: u16,
    pending_flags: u8,
    /// Execution stopped at the output high-water mark with input held.
    held: bool,
}

impl Session {
    /// Whether requests are waiting for the output to drain: the server
    /// then feeds the session again, with no new input, from `on_drained`.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Bytes of input held: an unfinished request head, or requests not
    /// executed yet because the output is above the high-water mark.
    pub fn held_input(&self) -> usize {
        self.input.len()
    }
}

const PENDING_HEAD: u8 = 1;
const PENDING_HTTP10: u8 = 2;
const PENDING_KEEP_ALIVE: u8 = 4;

/// Where a request body is: the framing of a `Content-Length` or chunked
/// body, decoded a byte at a time (chunk data and `Content-Length` bodies
/// are skipped in bulk).
#[derive(Debug, Default)]
struct BodyState {
    state: Framing,
    /// Bytes left of a `Content-Length` body or of the current chunk; while
    /// reading a chunk size, the size so far.
    left: u64,
    /// Chunked: data and trailer bytes so far (against the body limit).
    seen: u64,
    /// Chunked: bytes of the current chunk-size or trailer line.
    line: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Framing {
    /// No body in progress.
    #[default]
    None,
    /// `left` bytes of a `Content-Length` body.
    Length,
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, or the end of the size.
    Size,
    /// Chunk extensions (ignored) up to the end of the line.
    SizeExt,
    /// `left` bytes of chunk data.
    Data,
    /// The CRLF after chunk data.
    DataEnd,
    DataLf,
    /// The start of a trailer line, or the empty line ending the body.
    TrailerStart,
    /// A trailer line (skipped).
    TrailerLine,
    /// The LF of the final empty line.
    TrailerEndLf,
}

impl BodyState {
    fn active(&self) -> bool {
        self.state != Framing::None
    }

    /// Consumes what `data` holds of the body; returns how many bytes that
    /// was. The body is complete when this leaves the state `None`.
    fn skip(&mut self, data: &[u8], max_body: u64) -> Result<usize, &'static Status> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                Framing::None => break,
                Framing::Length | Framing::Data => {
                    let n = self.left.min((data.len() - pos) as u64);
                    self.left -= n;
                    pos += n as usize;
                    if self.left == 0 {
                        self.state = if self.state == Framing::Length {
                            Framing::None
                        } else {
                            Framing::DataEnd
                        };
                    }
                    continue;
                }
                _ => {}
            }
            let b = data[pos];
            pos += 1;
            self.byte(b, max_body)?;
        }
        Ok(pos)
    }

    /// One byte of chunked framing.
    fn byte(&mut self, b: u8, max_body: u64) -> Result<(), &'static Status> {
        use Framing::*;
        if matches!(self.state, SizeStart | Size | SizeExt | TrailerLine) {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(&BAD_REQUEST);
            }
        }
        match (self.state, b) {
            (SizeStart | Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.left = self.left.saturating_mul(16).saturating_add(digit);
                if self.left > max_body.saturating_sub(self.seen) {
                    return Err(&CONTENT_TOO_LARGE);
                }
                self.state = Size;
            }
            (Size, b';' | b' ' | b'\t' | b'\r') => self.state = SizeExt,
            (Size | SizeExt, b'\n') => {
                self.line = 0;
                self.seen += self.left;
                self.state = if self.left == 0 { TrailerStart } else { Data };
            }
            (SizeExt, _) => {}
            (DataEnd, b'\r') => self.state = DataLf,
            (DataEnd | DataLf, b'\n') => self.state = SizeStart,
            (TrailerStart, b'\r') => self.state = TrailerEndLf,
            (TrailerStart | TrailerEndLf, b'\n') => self.state = None,
            (TrailerStart | TrailerLine, _) => {
                self.seen += 1;
                if self.seen > max_body {
                    return Err(&CONTENT_TOO_LARGE);
                }
                self.state = if b == b'\n' {
                    self.line = 0;
                    TrailerStart
                } else {
                    TrailerLine
                };
            }
            _ => return Err(&BAD_REQUEST),
        }
        Ok(())
    }

    /// Starts skipping a body.
    fn start(&mut self, body: BodyKind) {
        *self = BodyState::default();
        match body {
            BodyKind::None => {}
            BodyKind::Length(n) => {
                self.state = Framing::Length;
                self.left = n;
            }
            BodyKind::Chunked => self.state = Framing::SizeStart,
        }
    }
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
const CONTENT_TOO_LARGE: Status = Status {
    code: 413,
    line: b"HTTP/1.1 413 Content Too Large\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 19\r\n",
    body: b"Content Too Large\r\n",
};
const EXPECTATION_FAILED: Status = Status {
    code: 417,
    line: b"HTTP/1.1 417 Expectation Failed\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 20\r\n",
    body: b"Expectation Failed\r\n",
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
const VERSION_NOT_SUPPORTED: Status = Status {
    code: 505,
    line: b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 28\r\n",
    body: b"HTTP Version Not Supported\r\n",
};
/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const CLOSE: &[u8] = b"Connection: close\r\n";
const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";

/// The statuses a request can be answered with after its body (errors are
/// answered at once).
fn routed_status(code: u16) -> &'static Status {
    match code {
        200 => &OK,
        405 => &METHOD_NOT_ALLOWED,
        _ => &NOT_FOUND,
    }
}

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

/// How a request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// What a request asked for, from its head.
struct Request {
    status: &'static Status,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    body: BodyKind,
    /// `Expect: 100-continue` on HTTP/1.1.
    expect_continue: bool,
}

/// The outcome of parsing a request head.
enum Head {
    /// Not all there yet.
    Partial,
    /// A head of this many bytes.
    Done(usize, Request),
    /// A head that cannot be served: answer this and close.
    Refused(&'static Status),
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
    ///
    /// Requests are executed while `out.output_len()` is at most the output
    /// high-water mark; the rest of the input is kept, and
    /// [`Session::is_held`] is true. Feed the session again, with an empty
    /// `packet`, once the output has drained (`on_drained`) to continue
    /// with the held input; new input fed meanwhile is appended to it.
    pub fn feed<O: Sink + ?Sized>(
        &mut self,
        session: &mut Session,
        packet: &[u8],
        out: &mut O,
    ) -> Action {
        let limit = self.config.max_header_bytes;
        let high = self.config.output_high_water;
        // While held, input waits up to this much; past it requests run
        // regardless (evio-core then pauses reading on its own mark).
        let cap = high.max(HELD_INPUT_MIN).saturating_add(limit);
        let held = session.input.len();
        if session.held {
            if out.output_len() > high && held + packet.len() <= cap {
                let _ = session.input.begin(packet);
                session.input.end(packet, 0);
                return Action::None;
            }
        } else if held > 0
            && !session.body.active()
            && held + packet.len() <= limit
            && !packet.contains(&b'\n')
        {
            // A head can only end with a newline: don't parse it again yet.
            let _ = session.input.begin(packet);
            session.input.end(packet, 0);
            return Action::None;
        }
        if held == 0 && packet.is_empty() {
            session.held = false;
            return Action::None;
        }
        self.date.refresh();
        let data = session.input.begin(packet);
        let mut pos = 0;
        let mut action = Action::None;
        session.held = false;
        loop {
            if session.body.active() {
                // Skip the body: what has arrived now, the rest as it comes.
                match session.body.skip(&data[pos..], self.config.max_body_bytes) {
                    Ok(n) => pos += n,
                    Err(status) => {
                        action = self.error(status, out);
                        break;
                    }
                }
                if session.body.active() {
                    break;
                }
                if session.pending != 0 {
                    let request = Request {
                        status: routed_status(session.pending),
                        head_only: session.pending_flags & PENDING_HEAD != 0,
                        http10: session.pending_flags & PENDING_HTTP10 != 0,
                        keep_alive: session.pending_flags & PENDING_KEEP_ALIVE != 0,
                        body: BodyKind::None,
                        expect_continue: false,
                    };
                    session.pending = 0;
                    self.respond(&request, out);
                    if !request.keep_alive {
                        action = Action::Close;
                        break;
                    }
                }
                continue;
            }
            if pos == data.len() {
                break;
            }
            // Past the mark, stop executing: unless the input waiting has
            // itself grown past the cap (evio-core was told to read on).
            if out.output_len() > high && data.len() - pos <= cap {
                session.held = true;
                break;
            }
            // Parse no more than the limit: a head that is not complete
            // within it is too large, whatever follows.
            let window = &data[pos..data.len().min(pos + limit)];
            let (len, request) = match parse_head(window, &self.config) {
                Head::Done(len, request) => (len, request),
                Head::Partial if data.len() - pos <= limit => break,
                Head::Partial => {
                    action = self.error(&HEADERS_TOO_LARGE, out);
                    break;
                }
                Head::Refused(status) => {
                    action = self.error(status, out);
                    break;
                }
            };
            pos += len;
            if request.body == BodyKind::None {
                self.respond(&request, out);
                if !request.keep_alive {
                    action = Action::Close;
                    break;
                }
                continue;
            }
            // A body follows: answer once it has been read.
            if request.expect_continue && pos == data.len() {
                out.write(CONTINUE);
            }
            session.body.start(request.body);
            session.pending = request.status.code;
            session.pending_flags = if request.head_only { PENDING_HEAD } else { 0 }
                | if request.http10 { PENDING_HTTP10 } else { 0 }
                | if request.keep_alive {
                    PENDING_KEEP_ALIVE
                } else {
                    0
                };
        }
        if action != Action::None {
            *session = Session::default();
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
            body: BodyKind::None,
            expect_continue: false,
        };
        self.respond(&request, out);
        // TODO(lingering): the client may still be sending (the rest of a
        // body, pipelined requests); closing with unread input makes the
        // kernel send RST, which can destroy this response before the client
        // reads it. Once evio-core has a half-close API, shut down the write
        // side here and drain input for a bounded time (nginx's
        // lingering_close) instead of closing at once.
        Action::Close
    }
}

/// Parses the request head at the front of `window`.
fn parse_head(window: &[u8], config: &Config) -> Head {
    // Uninitialised header slots: nothing to clear per request.
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(len)) => {
            let http10 = req.version == Some(0);
            let method = req.method.unwrap_or("");
            let target = req.path.unwrap_or("");
            match inspect(method, target, http10, req.headers, config) {
                Ok(request) => Head::Done(len, request),
                Err(status) => Head::Refused(status),
            }
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Refused(&HEADERS_TOO_LARGE),
        // httparse knows only HTTP/1.0 and 1.1 (`HTTP/1.10` fails on the
        // newline after `HTTP/1.1`).
        Err(httparse::Error::Version | httparse::Error::NewLine) => {
            parse_other_version(window, config)
        }
        Err(_) => Head::Refused(&BAD_REQUEST),
    }
}

/// The slow path for a request line whose version httparse refuses:
/// `HTTP/1.2`..`HTTP/1.999` are served as 1.1, `HTTP/2.0` and above get
/// 505, anything else 400 (as nginx does).
fn parse_other_version(window: &[u8], config: &Config) -> Head {
    // httparse skipped empty lines before the request line; so do we.
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let Some(nl) = window[start..].iter().position(|&b| b == b'\n') else {
        return Head::Partial;
    };
    let line = &window[start..start + nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Refused(&BAD_REQUEST);
    };
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| is_tchar(b));
    let visible = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b > b' ' && b != 0x7f);
    let (Some((major, minor)), true, true) = (
        version.strip_prefix(b"HTTP/").and_then(|v| {
            let dot = v.iter().position(|&b| b == b'.')?;
            Some((number(&v[..dot])?, number(&v[dot + 1..])?))
        }),
        token(method),
        visible(target),
    ) else {
        return Head::Refused(&BAD_REQUEST);
    };
    match major {
        0 => return Head::Refused(&BAD_REQUEST),
        1 => {}
        _ => return Head::Refused(&VERSION_NOT_SUPPORTED),
    }
    let _ = minor; // 1.x, x >= 2 (1.0 and 1.1 took the fast path)
    let body = start + nl + 1;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&window[body..], &mut headers) {
        Ok(httparse::Status::Complete((len, headers))) => {
            // Both are ASCII: checked above.
            let method = std::str::from_utf8(method).unwrap_or("");
            let target = std::str::from_utf8(target).unwrap_or("");
            match inspect(method, target, false, headers, config) {
                Ok(request) => Head::Done(body + len, request),
                Err(status) => Head::Refused(status),
            }
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Refused(&HEADERS_TOO_LARGE),
        Err(_) => Head::Refused(&BAD_REQUEST),
    }
}

/// 1 to 3 decimal digits (an HTTP version number, as nginx reads them).
fn number(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}

/// RFC 9110's `tchar`: the characters of a method or header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads what the engine needs from a parsed request head.
fn inspect(
    method: &str,
    target: &str,
    http10: bool,
    headers: &[httparse::Header<'_>],
    config: &Config,
) -> Result<Request, &'static Status> {
    let (mut close, mut keep_alive, mut hosts) = (false, false, 0);
    let mut content_length: Option<u64> = None;
    let mut transfer_encodings = 0;
    let mut chunked = false;
    let (mut expect_continue, mut expect_other) = (false, false);
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(&BAD_REQUEST)?;
            // Two different lengths: the body's end is ambiguous.
            if content_length.is_some_and(|b| b != n) {
                return Err(&BAD_REQUEST);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
            // nginx accepts exactly `chunked`; codings it cannot undo
            // (`gzip, chunked`) are not implemented.
            chunked = trim(h.value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(trim(h.value)) {
                return Err(&BAD_REQUEST);
            }
        } else if name.eq_ignore_ascii_case("expect") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    expect_other = true;
                }
            }
        }
    }
    // HTTP/1.1 requires exactly one Host header (RFC 9112, section 3.2).
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(&BAD_REQUEST);
    }
    let body = match (transfer_encodings, content_length) {
        (0, None) => BodyKind::None,
        (0, Some(0)) => BodyKind::None,
        (0, Some(n)) => BodyKind::Length(n),
        // Both framings, two codings, or a coding on HTTP/1.0: the body's
        // end is ambiguous (request smuggling); nginx refuses these too.
        (1, None) if !http10 && chunked => BodyKind::Chunked,
        (1, None) if !http10 => return Err(&NOT_IMPLEMENTED),
        _ => return Err(&BAD_REQUEST),
    };
    if matches!(body, BodyKind::Length(n) if n > config.max_body_bytes) {
        return Err(&CONTENT_TOO_LARGE);
    }
    // RFC 9110, section 10.1.1: HTTP/1.0 requests' expectations are ignored.
    if expect_other && !http10 {
        return Err(&EXPECTATION_FAILED);
    }
    let path = route_path(target).ok_or(&BAD_REQUEST)?;
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
        body,
        expect_continue: expect_continue && !http10 && body != BodyKind::None,
    })
}

/// The path to route a request target on: an origin-form target itself,
/// the path of an absolute-form one (`http://host:port/path?q`, `/` if it
/// has none), `*` for the asterisk form; `None` for anything else.
fn route_path(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if !scheme_ok || !valid_host(&rest.as_bytes()[..end]) {
        return None;
    }
    match &rest[end..] {
        "" => Some("/"),
        p if p.starts_with('/') => Some(p),
        // `http://host?q`: the path is empty, that is `/`.
        _ => Some("/"),
    }
}

/// A `Host` value (or the authority of an absolute-form target):
/// `host[:port]`, where host is a bracketed IP literal or a name of RFC
/// 3986's `reg-name` characters (letters, digits, `-._~`, `%`, and
/// `!$&'()*+,;=`), not empty and without `..` (as nginx); port is digits.
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b))
        {
            return false;
        }
        (&b"ip"[..], &rest[close + 1..])
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(colon) => (&v[..colon], &v[colon..]),
            None => (v, &b""[..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok
        && !host.is_empty()
        && !host.windows(2).any(|w| w == b"..")
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
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

/// A `Content-Length`: decimal digits only (no sign, no spaces), leading
/// zeros allowed, at most `i64::MAX` (nginx's `off_t`; more is a 400, as
/// there). Values over the body limit are refused (413) by the caller.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (n <= i64::MAX as u64).then_some(n)
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

    // ---- output bound: resume held requests once the output drained ----
    fn on_drained(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        if !conn.context().is_held() {
            return Action::None;
        }
        let mut session = std::mem::take(conn.context_mut());
        let action = self.engine.feed(&mut session, &[], conn);
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
        assert!(std::mem::size_of::<Session>() <= 64);
    }

    #[test]
    fn static_lengths_match() {
        for s in [
            &OK,
            &NOT_FOUND,
            &METHOD_NOT_ALLOWED,
            &BAD_REQUEST,
            &CONTENT_TOO_LARGE,
            &EXPECTATION_FAILED,
            &HEADERS_TOO_LARGE,
            &NOT_IMPLEMENTED,
            &VERSION_NOT_SUPPORTED,
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
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "405",
                Action::None,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "501",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                "501",
                Action::Close,
            ),
            (b"GARBAGE\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/2.0\r\n\r\n", "505", Action::Close),
            (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", "505", Action::Close),
            (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", "200", Action::None),
            (b"GET / HTTP/1.9\r\nHost: x\r\n\r\n", "200", Action::None),
            (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", "200", Action::None),
            (b"GET / HTTP/1.2\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", "400", Action::Close),
            (b"GET / HTTP/1.1\r\nHost: a.b:80\r\n\r\n", "200", Action::None),
            (b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "200", Action::None),
            (b"GET / HTTP/1.1\r\nHost: a_b~!\r\n\r\n", "200", Action::None),
            (b"GET http://x/ HTTP/1.1\r\nHost: y\r\n\r\n", "200", Action::None),
            (b"GET HTTP://x:8/?q HTTP/1.1\r\nHost: y\r\n\r\n", "200", Action::None),
            (b"GET http://x HTTP/1.1\r\nHost: y\r\n\r\n", "200", Action::None),
            (b"GET http://x/a HTTP/1.1\r\nHost: y\r\n\r\n", "404", Action::None),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", "400", Action::Close),
            (b"GET http://a b/ HTTP/1.1\r\nHost: y\r\n\r\n", "400", Action::Close),
            (b"GET http:/x HTTP/1.1\r\nHost: y\r\n\r\n", "400", Action::Close),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n",
                "400",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\n",
                "413",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
                "413",
                Action::Close,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nabcde",
                "405",
                Action::None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n",
                "417",
                Action::Close,
            ),
            (
                b"GET / HTTP/1.0\r\nExpect: foo\r\n\r\n",
                "200",
                Action::Close,
            ),
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
            assert!(s.input.is_empty() && !s.body.active() && s.pending == 0);
        }
    }

    #[test]
    fn head_limit() {
        let mut e = Engine::new(Config {
            max_header_bytes: 64,
            ..Config::default()
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
    fn expect_continue() {
        // 100 Continue when a body is expected and none of it is here yet;
        // the final response after the body.
        let mut e = Engine::new(Config::default());
        let mut s = Session::default();
        let mut out = Vec::new();
        let head =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n";
        assert_eq!(e.feed(&mut s, head, &mut out), Action::None);
        assert_eq!(out, CONTINUE);
        assert_eq!(e.feed(&mut s, b"abc", &mut out), Action::None);
        assert_eq!(out, CONTINUE);
        assert_eq!(
            e.feed(&mut s, b"deGET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut out),
            Action::None
        );
        let text = String::from_utf8_lossy(&out);
        assert_eq!(statuses(&text), ["100", "405", "200"], "{text}");
        // Body already here, no body, or HTTP/1.0: no 100.
        for req in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nz"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nz",
        ] {
            let (out, _) = run(req);
            assert!(!out.contains(" 100 "), "{out}");
            assert_eq!(statuses(&out).len(), 1, "{out}");
        }
        // Too large: 413 and no 100.
        let (out, a) = run(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!((statuses(&out), a), (vec!["413"], Action::Close));
    }

    #[test]
    fn chunked_bodies() {
        let req: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n\
            5;name=value\r\nGET /\r\n00000A \r\n0123456789\r\n1\nx\n0\r\nTrailer: t\r\nMore: m\r\n\r\n\
            GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
        let whole = run(req);
        assert_eq!(statuses(&whole.0), ["405", "404"]);
        assert_eq!(whole.1, Action::None);
        // Any split: the same, and nothing held between reads but a head.
        for chunk in 1..req.len() {
            let mut e = Engine::new(Config::default());
            let mut s = Session::default();
            let mut out = Vec::new();
            for piece in req.chunks(chunk) {
                assert_eq!(e.feed(&mut s, piece, &mut out), Action::None);
                assert!(s.input.len() < 64, "chunk {chunk}: {} held", s.input.len());
            }
            assert_eq!(statuses(&String::from_utf8_lossy(&out)), ["405", "404"]);
        }
        let bad: &[&[u8]] = &[
            b"z\r\n",
            b" 5\r\nabcde\r\n0\r\n\r\n",
            b"5\r\nabcdeXX0\r\n\r\n",
            b"5\r\nabcde\r0\r\n\r\n",
            b"0\r\n\rX",
        ];
        for body in bad {
            let req = [
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                *body,
            ]
            .concat();
            let (out, a) = run(&req);
            assert_eq!(
                (statuses(&out), a),
                (vec!["400"], Action::Close),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // The body limit: data in chunks, then trailers, count.
        let limit = |body: &[u8]| {
            let mut e = Engine::new(Config {
                max_body_bytes: 10,
                ..Config::default()
            });
            let req = [
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                body,
            ]
            .concat();
            let mut out = Vec::new();
            let a = e.feed(&mut Session::default(), &req, &mut out);
            (String::from_utf8_lossy(&out).into_owned(), a)
        };
        assert_eq!(
            statuses(&limit(b"5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n").0),
            ["405"]
        );
        assert_eq!(statuses(&limit(b"5\r\n12345\r\n6\r\n").0), ["413"]);
        assert_eq!(statuses(&limit(b"b\r\n").0), ["413"]);
        assert_eq!(statuses(&limit(b"ffffffffffffffffffffffff\r\n").0), ["413"]);
        assert_eq!(
            statuses(&limit(b"5\r\n12345\r\n0\r\nT: 1234\r\n\r\n").0),
            ["413"]
        );
        // Lines are bounded: endless zeros, extensions, or trailer lines.
        let zeros = [b"0".repeat(5000), b"\r\n".to_vec()].concat();
        assert_eq!(statuses(&limit(&zeros).0), ["400"]);
        let ext = [b"1;".to_vec(), b"e".repeat(5000)].concat();
        assert_eq!(
            statuses(
                &run(&[
                    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                    &ext
                ]
                .concat())
                .0
            ),
            ["400"]
        );
    }

    #[test]
    fn pipelining_stops_at_the_output_mark() {
        let high = 4096;
        let mut e = Engine::new(Config {
            output_high_water: high,
            ..Config::default()
        });
        let mut s = Session::default();
        let mut out = Vec::new();
        let one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n";
        let input = one.repeat(1000);
        assert_eq!(e.feed(&mut s, &input, &mut out), Action::None);
        let reply = out.len();
        assert!(s.is_held() && s.held_input() > 0);
        assert!(out.len() <= high + 200, "{} queued", out.len());
        // Input that arrives meanwhile is held, not executed.
        assert_eq!(e.feed(&mut s, one, &mut out), Action::None);
        assert_eq!(out.len(), reply);
        // The peer reads: each resume adds at most the mark and one reply.
        let mut all = std::mem::take(&mut out);
        let mut rounds = 0;
        while s.is_held() {
            assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
            assert!(out.len() <= high + 200);
            all.append(&mut out);
            rounds += 1;
        }
        assert!(rounds > 10);
        let text = String::from_utf8_lossy(&all);
        let got = statuses(&text);
        assert_eq!(got.len(), 2002);
        assert!(got.chunks(2).all(|p| p == ["200", "404"]));
        assert_eq!(s.held_input(), 0);
        // Feeding nothing to an idle session does nothing.
        assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
        assert!(out.is_empty());
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
