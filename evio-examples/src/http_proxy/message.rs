//! Heads as the proxy forwards them: a client's request head checked and
//! rewritten for the upstream, an upstream's response head checked and
//! rewritten for the client. Parsed in place by `httparse` (headers on the
//! stack); the rewritten head is appended to a buffer the caller reuses.
//!
//! A request whose framing two parsers could read differently is refused,
//! never forwarded (RFC 9112 §6.3, §11.2): `Content-Length` together with
//! `Transfer-Encoding`, more than one `Content-Length`, a length that is
//! not all digits, a transfer coding that does not end in `chunked`,
//! `Transfer-Encoding` on HTTP/1.0, obs-fold (httparse refuses a header
//! line that starts with a space). The body is then sent with the framing
//! the proxy checked, not the bytes the client chose.

use std::mem::MaybeUninit;

use super::framing::Kind;

/// The most header fields a head may have.
pub(super) const MAX_HEADERS: usize = 100;

/// The longest request or response head.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Headers that describe one hop, not the message: never forwarded
/// (RFC 9110 §7.6.1), nor the ones `Connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "transfer-encoding",
];

/// The `Via` entry this proxy adds.
const VIA: &str = "1.1 evio";

/// Why a request is refused (answered and the connection closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    BadRequest,
    HeadTooLarge,
    NotImplemented,
    ExpectationFailed,
    VersionNotSupported,
    MethodNotAllowed,
}

impl Refusal {
    /// The whole response.
    pub(super) fn response(self) -> &'static [u8] {
        match self {
            Refusal::BadRequest => super::response::BAD_REQUEST,
            Refusal::HeadTooLarge => super::response::HEADERS_TOO_LARGE,
            Refusal::NotImplemented => super::response::NOT_IMPLEMENTED,
            Refusal::ExpectationFailed => super::response::EXPECTATION_FAILED,
            Refusal::VersionNotSupported => super::response::VERSION_NOT_SUPPORTED,
            Refusal::MethodNotAllowed => super::response::METHOD_NOT_ALLOWED,
        }
    }

    /// The status code, for the access log.
    pub(super) fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::HeadTooLarge => 431,
            Refusal::NotImplemented => 501,
            Refusal::ExpectationFailed => 417,
            Refusal::VersionNotSupported => 505,
            Refusal::MethodNotAllowed => 405,
        }
    }
}

/// What the proxy needs to know of a request it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) http10: bool,
    /// Whether the client wants the connection kept after the response.
    pub(super) keep_alive: bool,
    pub(super) body: Kind,
    /// `HEAD`: the response has no body whatever its headers say.
    pub(super) head: bool,
    /// Safe to send twice (RFC 9110 §9.2.2).
    pub(super) idempotent: bool,
    /// `Expect: 100-continue`: the proxy answers `100 Continue` itself.
    pub(super) expect_continue: bool,
    /// A WebSocket upgrade: forwarded with `Upgrade` and `Connection`.
    pub(super) websocket: bool,
    /// The hash of the `--hash-header` value, if the request has one.
    pub(super) header_hash: Option<u64>,
}

/// Where the request came from, for the headers the proxy adds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Origin<'a> {
    /// The client's IP address, as text (`X-Forwarded-For`).
    pub(super) client_ip: &'a str,
    /// Whether the client came over TLS (`X-Forwarded-Proto`).
    pub(super) tls: bool,
    /// `Host` for an HTTP/1.0 request without one.
    pub(super) default_host: &'a str,
    /// `--hash-header`: the header whose value is hashed for balancing.
    pub(super) hash_header: Option<&'a str>,
}

/// Parses the request head at the front of `input`. `Ok(None)`: not all
/// there yet. `Ok(Some((len, request)))`: a head of `len` bytes, rewritten
/// for the upstream and appended to `out`.
///
/// # Errors
/// The refusal to answer with (then close): a malformed or ambiguous head.
pub(super) fn parse_request(
    input: &[u8],
    origin: &Origin<'_>,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, Request)>, Refusal> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(input, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() >= MAX_HEAD => {
            return Err(Refusal::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(Refusal::VersionNotSupported),
        Err(_) => return Err(Refusal::BadRequest),
    };
    if len > MAX_HEAD {
        return Err(Refusal::HeadTooLarge);
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let http10 = req.version == Some(0);
    if method == "CONNECT" {
        return Err(Refusal::MethodNotAllowed);
    }
    let fields = Fields::scan(req.headers)?;
    if fields.transfer_encoding && http10 {
        return Err(Refusal::BadRequest);
    }
    if !http10 && fields.hosts != 1 || fields.hosts > 1 {
        return Err(Refusal::BadRequest);
    }
    let body = fields.body_kind()?;
    if fields.expect_other {
        return Err(Refusal::ExpectationFailed);
    }
    let websocket =
        method == "GET" && fields.upgrade_websocket && fields.connection_upgrade && !http10;
    let request = Request {
        http10,
        keep_alive: if http10 {
            fields.connection_keep_alive
        } else {
            !fields.connection_close
        },
        body,
        head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        expect_continue: fields.expect_continue && !http10,
        websocket,
        header_hash: origin.hash_header.and_then(|name| {
            let h = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))?;
            Some(super::upstreams::fnv1a(&[h.value]))
        }),
    };

    // The request line, always HTTP/1.1 to the upstream (keep-alive).
    for part in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    let mut forwarded_for: Option<&[u8]> = None;
    let mut via: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = Some(h.value);
        } else if name.eq_ignore_ascii_case("via") {
            via = Some(h.value);
        } else if !(is_hop_by_hop(name, &fields)
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("x-forwarded-proto"))
        {
            push_header(out, name.as_bytes(), h.value);
        }
    }
    if fields.hosts == 0 {
        push_header(out, b"Host", origin.default_host.as_bytes());
    }
    match body {
        Kind::Length(n) => push_header(
            out,
            b"Content-Length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        Kind::Chunked => push_header(out, b"Transfer-Encoding", b"chunked"),
        Kind::None | Kind::UntilClose => {}
    }
    if websocket {
        push_header(out, b"Connection", b"Upgrade");
        push_header(out, b"Upgrade", b"websocket");
    }
    push_appended(
        out,
        b"X-Forwarded-For",
        forwarded_for,
        origin.client_ip.as_bytes(),
    );
    let proto: &[u8] = if origin.tls { b"https" } else { b"http" };
    push_header(out, b"X-Forwarded-Proto", proto);
    push_appended(out, b"Via", via, VIA.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(Some((len, request)))
}

/// What the proxy needs to know of a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    /// How its body is delimited on the upstream connection.
    pub(super) body: Kind,
    /// Whether the upstream connection may carry another request after it.
    pub(super) reusable: bool,
}

/// How a response is to be sent to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ToClient {
    /// The client's request was HTTP/1.0 (no chunked framing for it).
    pub(super) http10: bool,
    /// The client connection stays open after this response.
    pub(super) keep_alive: bool,
    /// The request was `HEAD`.
    pub(super) head: bool,
}

/// How the rewritten response frames its body for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reframe {
    /// The upstream's bytes as they are (length, chunked to HTTP/1.1, or no
    /// body).
    Same,
    /// Chunked from the upstream, payload only to an HTTP/1.0 client, whose
    /// connection then closes.
    Dechunk,
    /// Until the upstream closes; the client connection closes after it.
    UntilClose,
}

/// Parses the response head at the front of `input` for a request `to`.
/// `Ok(None)`: not all there yet. `Ok(Some((len, response, reframe,
/// client_keep_alive)))`: appended to `out`, rewritten for the client.
///
/// # Errors
/// `()` for a head that cannot be passed on (malformed, too large,
/// conflicting lengths): the proxy answers 502.
pub(super) fn parse_response(
    input: &[u8],
    to: ToClient,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, Response, Reframe, bool)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(input) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Ok(None),
        _ => return Err(()),
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let fields = Fields::scan(resp.headers).map_err(|_| ())?;
    let no_body = to.head || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        Kind::None
    } else if fields.transfer_encoding {
        if fields.chunked_last {
            Kind::Chunked
        } else {
            Kind::UntilClose
        }
    } else if let Some(n) = fields.content_length {
        Kind::Length(n)
    } else if fields.content_length_bad {
        return Err(());
    } else {
        Kind::UntilClose
    };
    // Both lengths: framed by the coding, but not to be trusted again.
    let both_lengths = fields.transfer_encoding && fields.content_length.is_some();
    let reusable = !http10 && !fields.connection_close && body != Kind::UntilClose && !both_lengths;
    let reframe = match body {
        Kind::Chunked if to.http10 => Reframe::Dechunk,
        Kind::UntilClose => Reframe::UntilClose,
        _ => Reframe::Same,
    };
    let keep_alive = to.keep_alive && reframe == Reframe::Same;
    let interim = (100..200).contains(&status);

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut via: Option<&[u8]> = None;
    let switching = status == 101;
    for h in resp.headers.iter() {
        let name = h.name;
        let framing = name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        if name.eq_ignore_ascii_case("via") {
            via = Some(h.value);
        } else if switching && name.eq_ignore_ascii_case("upgrade") {
            push_header(out, b"Upgrade", h.value);
        } else if framing && no_body && !interim && !switching {
            // HEAD and 304 keep the length they describe.
            if name.eq_ignore_ascii_case("content-length") && fields.content_length.is_some() {
                push_header(out, name.as_bytes(), h.value);
            }
        } else if !(framing || is_hop_by_hop(name, &fields)) {
            push_header(out, name.as_bytes(), h.value);
        }
    }
    match (body, reframe) {
        (Kind::Length(n), _) => push_header(
            out,
            b"Content-Length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        (Kind::Chunked, Reframe::Same) => push_header(out, b"Transfer-Encoding", b"chunked"),
        _ => {}
    }
    if switching {
        push_header(out, b"Connection", b"Upgrade");
    } else if !interim {
        match (keep_alive, to.http10) {
            (true, true) => push_header(out, b"Connection", b"keep-alive"),
            (false, _) => push_header(out, b"Connection", b"close"),
            (true, false) => {}
        }
    }
    push_appended(out, b"Via", via, VIA.as_bytes());
    out.extend_from_slice(b"\r\n");
    let response = Response {
        status,
        body,
        reusable,
    };
    Ok(Some((len, response, reframe, keep_alive)))
}

/// What the header fields of a head say about framing and the connection.
#[derive(Debug, Default)]
struct Fields<'h> {
    hosts: usize,
    content_length: Option<u64>,
    content_length_bad: bool,
    transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    chunked_last: bool,
    /// Codings other than `chunked` (a request with them gets 501).
    other_codings: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    upgrade_websocket: bool,
    expect_continue: bool,
    expect_other: bool,
    /// Header names listed in `Connection` (hop-by-hop too; no allocation
    /// unless there are any).
    named: Vec<&'h [u8]>,
}

impl<'h> Fields<'h> {
    fn scan(headers: &[httparse::Header<'h>]) -> Result<Fields<'h>, Refusal> {
        let mut f = Fields::default();
        for h in headers {
            let name = h.name;
            let value = h.value;
            if name.eq_ignore_ascii_case("host") {
                f.hosts += 1;
            } else if name.eq_ignore_ascii_case("content-length") {
                if f.content_length.is_some() || f.content_length_bad {
                    // Two lengths, equal or not: refused (as nginx does).
                    return Err(Refusal::BadRequest);
                }
                match parse_length(value) {
                    Some(n) => f.content_length = Some(n),
                    None => f.content_length_bad = true,
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                f.transfer_encoding = true;
                for coding in tokens(value) {
                    f.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    if !f.chunked_last {
                        f.other_codings = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for t in tokens(value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        f.connection_close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        f.connection_keep_alive = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        f.connection_upgrade = true;
                    } else if f.named.len() < 16 {
                        f.named.push(t);
                    } else {
                        return Err(Refusal::BadRequest);
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                f.upgrade_websocket |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
            } else if name.eq_ignore_ascii_case("expect") {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    f.expect_continue = true;
                } else {
                    f.expect_other = true;
                }
            }
        }
        Ok(f)
    }

    /// A request's body framing.
    fn body_kind(&self) -> Result<Kind, Refusal> {
        match (self.transfer_encoding, self.content_length) {
            (true, Some(_)) => Err(Refusal::BadRequest),
            (true, None) if self.content_length_bad => Err(Refusal::BadRequest),
            (true, None) if !self.chunked_last => Err(Refusal::BadRequest),
            (true, None) if self.other_codings => Err(Refusal::NotImplemented),
            (true, None) => Ok(Kind::Chunked),
            (false, _) if self.content_length_bad => Err(Refusal::BadRequest),
            (false, Some(0) | None) => Ok(Kind::None),
            (false, Some(n)) => Ok(Kind::Length(n)),
        }
    }
}

fn is_hop_by_hop(name: &str, fields: &Fields<'_>) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || fields
            .named
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// A `Content-Length` value: digits only (no sign, no spaces, no list).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `name: previous, ours`, or `name: ours`.
fn push_appended(out: &mut Vec<u8>, name: &[u8], previous: Option<&[u8]>, ours: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    if let Some(p) = previous {
        out.extend_from_slice(p);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ours);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        client_ip: "10.0.0.1",
        tls: false,
        default_host: "up:80",
        hash_header: None,
    };

    fn request(head: &str) -> Result<Option<(usize, Request, String)>, Refusal> {
        let mut out = Vec::new();
        let r = parse_request(head.as_bytes(), &ORIGIN, &mut out)?;
        Ok(r.map(|(len, req)| (len, req, String::from_utf8(out).unwrap())))
    }

    #[test]
    fn a_request_is_rewritten_for_the_upstream() {
        let head = "GET /a?b HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\n\
                    X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\
                    X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nVia: 1.0 a\r\nAccept: */*\r\n\r\n";
        let (len, req, out) = request(head).unwrap().unwrap();
        assert_eq!(len, head.len());
        assert!(req.keep_alive && req.idempotent && !req.http10);
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
             X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nX-Forwarded-Proto: http\r\nVia: 1.0 a, 1.1 evio\r\n\r\n"
        );
    }

    #[test]
    fn partial_heads_wait() {
        assert_eq!(request("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert_eq!(request(head), Err(Refusal::BadRequest), "{head:?}");
        }
        let gz = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(request(gz), Err(Refusal::NotImplemented));
    }

    #[test]
    fn bodies_are_framed_by_what_was_checked() {
        let (_, req, out) =
            request("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(req.body, Kind::Chunked);
        assert!(!req.idempotent);
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        let (_, req, _) = request("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.body, Kind::Length(7));
    }

    #[test]
    fn http10_without_host_gets_the_upstreams() {
        let (_, req, out) = request("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(req.http10 && !req.keep_alive);
        assert!(out.starts_with("GET / HTTP/1.1\r\nHost: up:80\r\n"));
    }

    #[test]
    fn websocket_upgrades_keep_their_headers() {
        let (_, req, out) = request(
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(req.websocket);
        assert!(out.contains("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
        assert!(out.contains("Sec-WebSocket-Key: k\r\n"));
    }

    fn response(head: &str, to: ToClient) -> (Response, Reframe, bool, String) {
        let mut out = Vec::new();
        let (_, r, f, k) = parse_response(head.as_bytes(), to, &mut out)
            .unwrap()
            .unwrap();
        (r, f, k, String::from_utf8(out).unwrap())
    }

    const HTTP11: ToClient = ToClient {
        http10: false,
        keep_alive: true,
        head: false,
    };

    #[test]
    fn responses_are_reframed() {
        let (r, f, k, out) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nKeep-Alive: x\r\n\r\n",
            HTTP11,
        );
        assert_eq!(
            (r.body, r.reusable, f, k),
            (Kind::Length(5), false, Reframe::Same, true)
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 evio\r\n\r\n"
        );
        let (r, f, k, out) = response("HTTP/1.1 200 OK\r\n\r\n", HTTP11);
        assert_eq!(
            (r.body, f, k),
            (Kind::UntilClose, Reframe::UntilClose, false)
        );
        assert!(out.contains("Connection: close\r\n"));
        let to10 = ToClient {
            http10: true,
            ..HTTP11
        };
        let (r, f, k, out) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            to10,
        );
        assert_eq!(
            (r.body, r.reusable, f, k),
            (Kind::Chunked, true, Reframe::Dechunk, false)
        );
        assert!(!out.contains("chunked"));
        let head = ToClient {
            head: true,
            ..HTTP11
        };
        let (r, _, k, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", head);
        assert_eq!((r.body, k), (Kind::None, true));
        assert!(out.contains("Content-Length: 99\r\n"));
        let (r, ..) = response("HTTP/1.1 304 Not Modified\r\n\r\n", HTTP11);
        assert_eq!(r.body, Kind::None);
    }

    #[test]
    fn conflicting_response_lengths_are_refused() {
        let mut out = Vec::new();
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(parse_response(two, HTTP11, &mut out), Err(()));
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(parse_response(bad, HTTP11, &mut out), Err(()));
    }
}
