//! The responses the proxy makes itself: refusals and gateway errors, each
//! closing the connection, and `100 Continue`.

/// A complete error response that closes the connection.
macro_rules! closing {
    ($name:ident, $status:literal) => {
        #[doc = concat!("`", $status, "`, then close.")]
        pub(super) const $name: &[u8] = concat!(
            "HTTP/1.1 ",
            $status,
            "\r\nContent-Length: 0\r\nConnection: close\r\nVia: 1.1 evio\r\n\r\n"
        )
        .as_bytes();
    };
}

closing!(BAD_REQUEST, "400 Bad Request");
closing!(REQUEST_TIMEOUT, "408 Request Timeout");
closing!(HEADERS_TOO_LARGE, "431 Request Header Fields Too Large");
closing!(NOT_IMPLEMENTED, "501 Not Implemented");
closing!(EXPECTATION_FAILED, "417 Expectation Failed");
closing!(VERSION_NOT_SUPPORTED, "505 HTTP Version Not Supported");
closing!(METHOD_NOT_ALLOWED, "405 Method Not Allowed");
closing!(BAD_GATEWAY, "502 Bad Gateway");
closing!(SERVICE_UNAVAILABLE, "503 Service Unavailable");
closing!(GATEWAY_TIMEOUT, "504 Gateway Timeout");

/// The interim response to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
