//! Responses: the statuses with their static headers and bodies, and the
//! `Server`/`Date` header block, rebuilt once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::BODY;

/// A response status with its static headers and body.
pub(super) struct Status {
    pub(super) code: u16,
    pub(super) line: &'static [u8],
    /// `Content-Type` and `Content-Length` of `body`.
    pub(super) headers: &'static [u8],
    pub(super) body: &'static [u8],
}

// Content-Length values are written out; `static_lengths_match` checks them.
pub(super) const OK: Status = Status {
    code: 200,
    line: b"HTTP/1.1 200 OK\r\n",
    headers: b"Content-Type: text/plain\r\nContent-Length: 14\r\n",
    body: BODY,
};

/// Defines a plain-text error status whose body is its reason phrase:
/// the reason is written once, so the status line and the body agree.
macro_rules! error_status {
    ($name:ident, $code:literal, $reason:literal, $len:literal $(, $extra:literal)?) => {
        pub(super) const $name: Status = Status {
            code: $code,
            line: concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n").as_bytes(),
            headers: concat!(
                $($extra,)?
                "Content-Type: text/plain\r\nContent-Length: ",
                $len,
                "\r\n"
            )
            .as_bytes(),
            body: concat!($reason, "\r\n").as_bytes(),
        };
    };
}
error_status!(NOT_FOUND, 404, "Not Found", 11);
error_status!(
    METHOD_NOT_ALLOWED,
    405,
    "Method Not Allowed",
    20,
    "Allow: GET, HEAD\r\n"
);
error_status!(BAD_REQUEST, 400, "Bad Request", 13);
error_status!(CONTENT_TOO_LARGE, 413, "Content Too Large", 19);
error_status!(EXPECTATION_FAILED, 417, "Expectation Failed", 20);
error_status!(
    HEADERS_TOO_LARGE,
    431,
    "Request Header Fields Too Large",
    33
);
error_status!(NOT_IMPLEMENTED, 501, "Not Implemented", 17);
error_status!(VERSION_NOT_SUPPORTED, 505, "HTTP Version Not Supported", 28);

/// The interim response to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
pub(super) const CLOSE: &[u8] = b"Connection: close\r\n";
pub(super) const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";

/// The statuses a request can be answered with after its body (errors are
/// answered at once).
pub(super) fn routed_status(code: u16) -> &'static Status {
    match code {
        200 => &OK,
        405 => &METHOD_NOT_ALLOWED,
        _ => &NOT_FOUND,
    }
}

/// The `Server` and `Date` headers, rebuilt when the second changes.
#[derive(Clone, Debug)]
pub(super) struct DateCache {
    /// Seconds since the epoch, published by loop 0's tick.
    pub(super) clock: Arc<AtomicU64>,
    /// The second `common` and `hello` were built for.
    secs: u64,
    /// `Server: evio\r\nDate: ...\r\n`
    pub(super) common: Vec<u8>,
    /// The whole keep-alive `200 OK` response: the hot path is one write.
    pub(super) hello: Vec<u8>,
}

impl DateCache {
    pub(super) fn new() -> DateCache {
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
    pub(super) fn tick(&mut self) -> Duration {
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
    pub(super) fn refresh(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn date_is_cached() {
        let d = DateCache::new();
        let date = std::str::from_utf8(&d.common).unwrap();
        assert!(
            date.starts_with("Server: evio\r\nDate: ") && date.ends_with(" GMT\r\n"),
            "{date}"
        );
        assert_eq!(date.len(), "Server: evio\r\nDate: \r\n".len() + 29);
        assert!(d.hello.starts_with(OK.line) && d.hello.ends_with(BODY));
        // A clone shares the clock: a tick on one refreshes the other's header.
        let mut a = d.clone();
        let mut b = d.clone();
        a.clock.store(0, Ordering::Relaxed);
        b.refresh();
        assert!(String::from_utf8_lossy(&b.common).contains("Thu, 01 Jan 1970 00:00:00 GMT"));
        a.tick();
        b.refresh();
        assert!(!String::from_utf8_lossy(&b.common).contains("1970"));
    }
}
