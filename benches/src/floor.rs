//! Request framing for `floor-server`: how many complete requests a buffer
//! holds and how many bytes they take — Redis inline lines and RESP arrays,
//! HTTP request heads. Apart from the server so that tests can check it.

/// The complete requests at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framed {
    /// Complete requests.
    pub requests: usize,
    /// Bytes they take (the rest is an incomplete request).
    pub used: usize,
    /// HTTP: the last counted request asked for `Connection: close` (no
    /// request after it is counted).
    pub close: bool,
}

/// Input that is not a Redis request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Redis: counts the complete requests — inline commands (`PING\r\n`,
/// redis-benchmark's PING_INLINE) and RESP arrays of bulk strings
/// (`*1\r\n$4\r\nPING\r\n`, PING_MBULK). Empty inline lines are skipped
/// without a reply, as Redis does.
pub fn redis_requests(buf: &[u8]) -> Result<Framed, Malformed> {
    let mut f = Framed::default();
    while f.used < buf.len() {
        let rest = &buf[f.used..];
        let len = if rest[0] == b'*' {
            match resp_array_len(rest)? {
                Some(len) => len,
                None => break,
            }
        } else {
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    if !rest[..nl].trim_ascii().is_empty() {
                        f.requests += 1;
                    }
                    f.used += nl + 1;
                    continue;
                }
                None => break,
            }
        };
        f.requests += 1;
        f.used += len;
    }
    Ok(f)
}

/// The length of the RESP array at the front of `buf`; `None` while it is
/// incomplete.
fn resp_array_len(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let Some((items, mut pos)) = header(buf, 0, b'*')? else {
        return Ok(None);
    };
    for _ in 0..items {
        let Some((len, data)) = header(buf, pos, b'$')? else {
            return Ok(None);
        };
        pos = data + len + 2;
        if pos > buf.len() {
            return Ok(None);
        }
        if &buf[pos - 2..pos] != b"\r\n" {
            return Err(Malformed);
        }
    }
    Ok(Some(pos))
}

/// `<kind><decimal>\r\n` at `pos`: the number and where the next line
/// starts; `None` while the line is incomplete.
fn header(buf: &[u8], pos: usize, kind: u8) -> Result<Option<(usize, usize)>, Malformed> {
    let Some(&first) = buf.get(pos) else {
        return Ok(None);
    };
    if first != kind {
        return Err(Malformed);
    }
    let line = &buf[pos + 1..];
    let Some(nl) = line.iter().position(|&b| b == b'\n') else {
        return if line.len() > 20 {
            Err(Malformed)
        } else {
            Ok(None)
        };
    };
    let digits = line[..nl].strip_suffix(b"\r").ok_or(Malformed)?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Malformed);
    }
    let n = digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    Ok(Some((n, pos + 1 + nl + 1)))
}

/// HTTP: counts the complete request heads (each ends with `\r\n\r\n`;
/// request bodies are not expected), stopping after one that asks for
/// `Connection: close`.
pub fn http_requests(buf: &[u8]) -> Framed {
    let mut f = Framed::default();
    while let Some(end) = buf[f.used..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &buf[f.used..f.used + end + 4];
        f.requests += 1;
        f.used += end + 4;
        if asks_close(head) {
            f.close = true;
            break;
        }
    }
    f
}

/// Whether a request head holds `Connection: close` (any case).
fn asks_close(head: &[u8]) -> bool {
    const CLOSE: &[u8] = b"\nconnection: close";
    head.windows(CLOSE.len())
        .any(|w| w.eq_ignore_ascii_case(CLOSE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(requests: usize, used: usize) -> Framed {
        Framed {
            requests,
            used,
            close: false,
        }
    }

    #[test]
    fn redis_inline_and_arrays() {
        assert_eq!(redis_requests(b"PING\r\n"), Ok(framed(1, 6)));
        assert_eq!(redis_requests(b"PING\r\nPING\r\nPI"), Ok(framed(2, 12)));
        let mbulk = b"*1\r\n$4\r\nPING\r\n";
        assert_eq!(redis_requests(mbulk), Ok(framed(1, 14)));
        let set = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nv\r\nxy\r\n";
        assert_eq!(redis_requests(set), Ok(framed(1, set.len())));
        assert_eq!(redis_requests(b"\r\nPING\r\n"), Ok(framed(1, 8)));
    }

    #[test]
    fn redis_split_anywhere() {
        let two = b"*1\r\n$4\r\nPING\r\nPING\r\n";
        for cut in 0..two.len() {
            let first = redis_requests(&two[..cut]).unwrap();
            let mut rest = two[first.used..cut].to_vec();
            rest.extend_from_slice(&two[cut..]);
            let second = redis_requests(&rest).unwrap();
            assert_eq!(first.requests + second.requests, 2, "cut at {cut}");
            assert_eq!(second.used, rest.len());
        }
    }

    #[test]
    fn redis_malformed() {
        assert_eq!(redis_requests(b"*1\r\n#4\r\n"), Err(Malformed));
        assert_eq!(redis_requests(b"*x\r\n"), Err(Malformed));
        assert_eq!(redis_requests(b"*1\r\n$4\r\nPINGxx"), Err(Malformed));
        assert_eq!(redis_requests(b"*1\r\n$99999999999\r\n"), Err(Malformed));
    }

    #[test]
    fn http_heads() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(http_requests(get), framed(1, get.len()));
        let two = [&get[..], &get[..], b"GET / HT"].concat();
        assert_eq!(http_requests(&two), framed(2, 2 * get.len()));
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n";
        let both = [&close[..], &get[..]].concat();
        assert_eq!(
            http_requests(&both),
            Framed {
                requests: 1,
                used: close.len(),
                close: true
            }
        );
        assert_eq!(http_requests(b"GET / HTTP/1.1\r\n"), framed(0, 0));
    }
}
