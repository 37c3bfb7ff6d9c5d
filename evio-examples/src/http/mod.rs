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
//! Error responses close the connection — with a lingering close, so that
//! a client still sending reads the response instead of a reset.
//!
//! # Connections
//!
//! [`HttpServer`] times connections as nginx does: a header timeout
//! (60 s, from a head's first byte and from accept to the first request),
//! a lingering close after closing responses (5 s between reads, 30 s in
//! all), requests held for the output still answered after the client's
//! FIN, and connections marked reclaimable only while no request is in
//! progress. The idle timeout is the `Builder`'s (the binary's
//! `--idle-timeout`, 75 s).
//!
//! # Output is bounded
//!
//! A client can pipeline thousands of requests without reading a response.
//! The engine stops executing requests once the connection's queued output
//! ([`Sink::output_len`]) passes [`Config::output_high_water`], keeps the
//! unexecuted input in the session, and continues when it is fed again (the
//! server does that from `on_drained`, once the output has been written).

use std::time::Duration;

use evio_core::Action;

use crate::Sink;

mod body;
mod head;
mod response;
mod server;
mod session;

use body::BodyKind;
use head::{parse_head, Head, Request};
use response::{routed_status, DateCache, Status, CLOSE, CONTINUE, HEADERS_TOO_LARGE, KEEP_ALIVE};
pub use server::{HttpServer, Stats};
pub use session::Session;
use session::{HEAD_CLOCK, HELD, PENDING_HEAD, PENDING_HTTP10, PENDING_KEEP_ALIVE};

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
    /// How long a request head may take, from its first byte to its end;
    /// also how long a new connection may wait before sending its first
    /// request (nginx's `client_header_timeout`, [`HEADER_TIMEOUT`] by
    /// default). Past it the connection is closed. `None`: no limit.
    /// Timeouts over 24 days count as 24 days. Applied by [`HttpServer`].
    pub header_timeout: Option<Duration>,
    /// Lingering close: after a response that ends the connection while
    /// the client may still be sending, the server shuts down its write
    /// side and reads (discarding) until the client closes, this long
    /// without a byte at most (nginx's `lingering_timeout`,
    /// [`LINGERING_TIMEOUT`]). See [`HttpServer`].
    pub lingering_timeout: Duration,
    /// The longest a lingering close lasts in all (nginx's
    /// `lingering_time`, [`LINGERING_TIME`]).
    pub lingering_time: Duration,
}

/// The default [`Config::header_timeout`], 60 s (nginx's
/// `client_header_timeout`).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// The default [`Config::lingering_timeout`], 5 s (nginx's).
pub const LINGERING_TIMEOUT: Duration = Duration::from_secs(5);
/// The default [`Config::lingering_time`], 30 s (nginx's).
pub const LINGERING_TIME: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Config {
        Config {
            max_header_bytes: MAX_HEADER_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            output_high_water: OUTPUT_HIGH_WATER,
            header_timeout: Some(HEADER_TIMEOUT),
            lingering_timeout: LINGERING_TIMEOUT,
            lingering_time: LINGERING_TIME,
        }
    }
}

/// The protocol engine of one event loop. It writes responses to a
/// [`Sink`], so it runs the same over a connection ([`evio_core::Writer`]),
/// in tests, fuzzers and benchmarks.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    date: DateCache,
    /// The server drains: every response says `Connection: close`.
    draining: bool,
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: Config) -> Engine {
        Engine {
            config,
            date: DateCache::new(),
            draining: false,
        }
    }

    /// From now on every response closes its connection (`Connection:
    /// close`): the server drains ([`crate::drain`]).
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Publishes the current second to every engine cloned from this one
    /// (call it from `on_tick`); returns the delay until the next second.
    pub fn tick(&mut self) -> Duration {
        self.date.tick()
    }

    /// Handles one read of input for `session`, writing responses to `out`.
    /// Returns `Close` when the connection must close after them; then
    /// [`Session::lingers`] tells whether the client may still be sending.
    ///
    /// Requests are executed while `out.output_len()` is at most the output
    /// high-water mark, then held ([`Session::is_held`]): see
    /// [`held`](crate::held) for how the server resumes them.
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
        if session.is_held() {
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
            session.state &= !HELD;
            return Action::None;
        }
        self.date.refresh();
        let data = session.input.begin(packet);
        let mut pos = 0;
        let mut action = Action::None;
        // Whether the client may still be sending when we close: after an
        // error, or with input left after the last response.
        let mut linger = true;
        session.state &= !HELD;
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
                        keep_alive: session.pending_flags & PENDING_KEEP_ALIVE != 0
                            && !self.draining,
                        body: BodyKind::None,
                        expect_continue: false,
                    };
                    session.pending = 0;
                    if !self.respond(&request, out) {
                        action = Action::Close;
                        linger = pos < data.len();
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
                session.state |= HELD;
                break;
            }
            // Parse no more than the limit: a head that is not complete
            // within it is too large, whatever follows.
            let window = &data[pos..data.len().min(pos + limit)];
            let (len, mut request) = match parse_head(window, &self.config) {
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
            request.keep_alive &= !self.draining;
            // A head is complete: the server's header clock stops.
            session.state &= !HEAD_CLOCK;
            if request.body == BodyKind::None {
                if !self.respond(&request, out) {
                    action = Action::Close;
                    linger = pos < data.len();
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
            session.finish(linger);
            return action;
        }
        session.input.end(packet, pos);
        if session.input.is_empty() {
            // Give the buffer back: idle connections hold no heap memory.
            session.input.clear();
        }
        Action::None
    }

    /// Writes the response to `r`; returns whether the connection stays
    /// open after it.
    fn respond<O: Sink + ?Sized>(&self, r: &Request, out: &mut O) -> bool {
        if r.status.code == 200 && r.keep_alive && !r.http10 && !r.head_only {
            out.write(&self.date.hello);
            return true;
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
        r.keep_alive
    }

    /// Answers a request that cannot be served with `status`, and closes
    /// (the session then [`lingers`](Session::lingers)).
    fn error<O: Sink + ?Sized>(&self, status: &'static Status, out: &mut O) -> Action {
        let request = Request {
            status,
            head_only: false,
            http10: false,
            keep_alive: false,
            body: BodyKind::None,
            expect_continue: false,
        };
        let _ = self.respond(&request, out);
        // The client may still be sending (the rest of a body, pipelined
        // requests): the server closes with a lingering close
        // (`Session::lingers`), not at once.
        Action::Close
    }
}

#[cfg(test)]
mod testing {
    use super::*;

    /// One engine with the default config, one session, all of `input`.
    pub(super) fn run(input: &[u8]) -> (String, Action) {
        let mut out = Vec::new();
        let a = Engine::new(Config::default()).feed(&mut Session::default(), input, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), a)
    }

    /// `input` fed in pieces of `chunk` bytes to a fresh engine and session,
    /// each feed asked for no action, `between` called on the session after
    /// each piece; the statuses answered, and the session at the end.
    pub(super) fn run_in_pieces(
        input: &[u8],
        chunk: usize,
        mut between: impl FnMut(&Session),
    ) -> (Vec<String>, Session) {
        let mut e = Engine::new(Config::default());
        let mut s = Session::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            assert_eq!(
                e.feed(&mut s, piece, &mut out),
                Action::None,
                "chunk {chunk}"
            );
            between(&s);
        }
        let out = String::from_utf8_lossy(&out);
        (statuses(&out).into_iter().map(str::to_owned).collect(), s)
    }

    /// The status codes of the responses in `out`, in order.
    pub(super) fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect()
    }
}

/// The `http-server` binary's command line: its name, defaults and the flags
/// it takes beyond the shared ones.
pub const SPEC: crate::cli::Spec = crate::cli::Spec {
    bin: "http-server",
    name: "http",
    default_port: 8080,
    udp: false,
    backend: false,
    idle_timeout: 75,
    header_timeout: Some(60),
    connect_timeout: None,
    alpn: &[b"http/1.1"],
    extra: None,
};

#[cfg(test)]
mod tests {
    use super::testing::{run, run_in_pieces, statuses};
    use super::*;

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
    fn pipelining_and_bodies() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
                    POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /y HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, a) = run(req);
        assert_eq!(statuses(&out), ["200", "405", "404"]);
        assert_eq!(a, Action::None);
        // The same bytes in every split give the same responses.
        for chunk in 1..req.len() {
            let (answered, s) = run_in_pieces(req, chunk, |_| {});
            assert_eq!(answered, ["200", "405", "404"], "chunk {chunk}");
            assert!(s.input.is_empty() && !s.body.active() && s.pending == 0);
        }
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
}
