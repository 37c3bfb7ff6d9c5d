//! Request heads: the request line (methods, targets, versions) and the
//! header checks (`Host`, framing, `Connection`, `Expect`).

use std::mem::MaybeUninit;

use super::body::BodyKind;
use super::response::{
    Status, BAD_REQUEST, CONTENT_TOO_LARGE, EXPECTATION_FAILED, HEADERS_TOO_LARGE,
    METHOD_NOT_ALLOWED, NOT_FOUND, NOT_IMPLEMENTED, OK, VERSION_NOT_SUPPORTED,
};
use super::{Config, MAX_HEADERS};

/// What a request asked for, from its head.
pub(super) struct Request {
    pub(super) status: &'static Status,
    pub(super) head_only: bool,
    pub(super) http10: bool,
    pub(super) keep_alive: bool,
    pub(super) body: BodyKind,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub(super) expect_continue: bool,
}

/// The outcome of parsing a request head.
pub(super) enum Head {
    /// Not all there yet.
    Partial,
    /// A head of this many bytes.
    Done(usize, Request),
    /// A head that cannot be served: answer this and close.
    Refused(&'static Status),
}

/// Parses the request head at the front of `window`.
pub(super) fn parse_head(window: &[u8], config: &Config) -> Head {
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
        && host.iter().all(|&b| REG_NAME[usize::from(b)])
}

/// The bytes of a `reg-name` (and `%`), by value: one lookup per byte of
/// every request's Host instead of a scan of the punctuation list.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        i += 1;
    }
    table
};

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

#[cfg(test)]
mod tests {
    use super::super::testing::{run, statuses};
    use super::super::{Config, Engine, Session};
    use evio_core::Action;

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
}
