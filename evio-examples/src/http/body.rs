//! Request bodies: `Content-Length` bodies and chunked framing, skipped as
//! they arrive.

use super::response::{Status, BAD_REQUEST, CONTENT_TOO_LARGE};
use super::MAX_CHUNK_LINE;

/// How a request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Where a request body is: the framing of a `Content-Length` or chunked
/// body, decoded a byte at a time (chunk data and `Content-Length` bodies
/// are skipped in bulk).
#[derive(Debug, Default)]
pub(super) struct BodyState {
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
    pub(super) fn active(&self) -> bool {
        self.state != Framing::None
    }

    /// Consumes what `data` holds of the body; returns how many bytes that
    /// was. The body is complete when this leaves the state `None`.
    pub(super) fn skip(&mut self, data: &[u8], max_body: u64) -> Result<usize, &'static Status> {
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
    pub(super) fn start(&mut self, body: BodyKind) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_in_pieces, statuses};
    use super::super::{Config, Engine, Session};
    use evio_core::Action;

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
            let (answered, _) = run_in_pieces(req, chunk, |s| {
                assert!(s.input.len() < 64, "chunk {chunk}: {} held", s.input.len());
            });
            assert_eq!(answered, ["405", "404"], "chunk {chunk}");
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
}
