//! Message bodies as they stream through: where a `Content-Length` or
//! chunked body ends, checked byte by byte, so that the proxy forwards
//! exactly one message and knows where the next one starts.
//!
//! Chunked framing is strict (RFC 9112 §7.1): hex sizes without sign or
//! spaces, CRLF line ends (a bare LF is an error, not a line end: two
//! parsers that disagree on line ends are how requests get smuggled),
//! lines of at most [`MAX_LINE`] bytes, sizes below 2^60.

/// The longest chunk-size line (size and extensions) or trailer line.
pub(super) const MAX_LINE: u16 = 4096;

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (a response without length, HTTP/1.0 style).
    UntilClose,
}

/// A body that is not well framed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadFraming;

/// What one [`Body::advance`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Step {
    /// Bytes of the input that belong to this body.
    pub(super) used: usize,
    /// Whether the body ended within them.
    pub(super) done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `left` bytes of a `Content-Length` body, or the body until close.
    Bytes,
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, extensions, or the CR ending the size line.
    Size,
    /// Extensions up to the CR.
    Ext,
    /// The LF of the size line.
    SizeLf,
    /// `left` bytes of chunk data.
    Data,
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// The start of a trailer line, or the CR of the empty last line.
    TrailerStart,
    /// A trailer line (forwarded as it is) up to its CR.
    Trailer,
    TrailerLf,
    /// The LF of the empty line that ends the body.
    LastLf,
    Done,
}

/// Where a body being streamed is.
#[derive(Clone, Debug)]
pub(super) struct Body {
    kind: Kind,
    phase: Phase,
    /// Bytes left of a `Content-Length` body or of the current chunk; while
    /// reading a chunk size, the size so far.
    left: u64,
    /// Bytes of the current size or trailer line.
    line: u16,
}

impl Body {
    /// The start of a body of `kind`.
    pub(super) fn new(kind: Kind) -> Body {
        let (phase, left) = match kind {
            Kind::None | Kind::Length(0) => (Phase::Done, 0),
            Kind::Length(n) => (Phase::Bytes, n),
            Kind::UntilClose => (Phase::Bytes, u64::MAX),
            Kind::Chunked => (Phase::SizeStart, 0),
        };
        Body {
            kind,
            phase,
            left,
            line: 0,
        }
    }

    /// Whether the whole body has gone by.
    pub(super) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Takes the body's bytes from the front of `input`: how many belong to
    /// it and whether it ended. `data` gets the payload (chunk data without
    /// the framing, all of a length-delimited body), for a receiver that
    /// cannot take chunked framing; a proxy passing the framing on forwards
    /// `input[..used]` instead.
    ///
    /// # Errors
    /// A malformed chunk size, line end or line length.
    pub(super) fn advance(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Step, BadFraming> {
        let mut i = 0;
        while i < input.len() && self.phase != Phase::Done {
            let b = input[i];
            match self.phase {
                Phase::Bytes | Phase::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.left).unwrap_or(usize::MAX));
                    data(&input[i..i + n]);
                    i += n;
                    if self.kind != Kind::UntilClose {
                        self.left -= n as u64;
                    }
                    if self.left == 0 {
                        self.phase = if self.phase == Phase::Data {
                            Phase::DataCr
                        } else {
                            Phase::Done
                        };
                    }
                    continue;
                }
                Phase::SizeStart => {
                    let d = hex(b).ok_or(BadFraming)?;
                    self.left = u64::from(d);
                    self.line = 1;
                    self.phase = Phase::Size;
                }
                Phase::Size => match (b, hex(b)) {
                    (_, Some(d)) => {
                        if self.left >= 1 << 56 {
                            return Err(BadFraming);
                        }
                        self.left = self.left << 4 | u64::from(d);
                        self.line_byte()?;
                    }
                    (b';', _) => {
                        self.line_byte()?;
                        self.phase = Phase::Ext;
                    }
                    (b'\r', _) => self.phase = Phase::SizeLf,
                    _ => return Err(BadFraming),
                },
                Phase::Ext => match b {
                    b'\r' => self.phase = Phase::SizeLf,
                    b'\n' => return Err(BadFraming),
                    _ => self.line_byte()?,
                },
                Phase::SizeLf => {
                    if b != b'\n' {
                        return Err(BadFraming);
                    }
                    self.line = 0;
                    self.phase = if self.left == 0 {
                        Phase::TrailerStart
                    } else {
                        Phase::Data
                    };
                }
                Phase::DataCr => self.expect(b, b'\r', Phase::DataLf)?,
                Phase::DataLf => self.expect(b, b'\n', Phase::SizeStart)?,
                Phase::TrailerStart => match b {
                    b'\r' => self.phase = Phase::LastLf,
                    b'\n' | b' ' | b'\t' => return Err(BadFraming),
                    _ => {
                        self.line = 1;
                        self.phase = Phase::Trailer;
                    }
                },
                Phase::Trailer => match b {
                    b'\r' => self.phase = Phase::TrailerLf,
                    b'\n' => return Err(BadFraming),
                    _ => self.line_byte()?,
                },
                Phase::TrailerLf => self.expect(b, b'\n', Phase::TrailerStart)?,
                Phase::LastLf => self.expect(b, b'\n', Phase::Done)?,
                Phase::Done => unreachable!("the loop stops at Done"),
            }
            i += 1;
        }
        Ok(Step {
            used: i,
            done: self.phase == Phase::Done,
        })
    }

    fn line_byte(&mut self) -> Result<(), BadFraming> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(BadFraming);
        }
        Ok(())
    }

    fn expect(&mut self, got: u8, want: u8, next: Phase) -> Result<(), BadFraming> {
        if got != want {
            return Err(BadFraming);
        }
        self.line = 0;
        self.phase = next;
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; the bytes used, the payload
    /// and whether it ended.
    fn feed(kind: Kind, input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), BadFraming> {
        let mut body = Body::new(kind);
        let (mut used, mut payload) = (0, Vec::new());
        for piece in input.chunks(step) {
            let s = body.advance(piece, |d| payload.extend_from_slice(d))?;
            used += s.used;
            if s.done {
                return Ok((used, payload, true));
            }
        }
        Ok((used, payload, false))
    }

    #[test]
    fn length_bodies_end_where_they_say() {
        for step in [1, 3, 100] {
            let (used, payload, done) = feed(Kind::Length(5), b"helloGET /", step).unwrap();
            assert_eq!((used, &payload[..], done), (5, &b"hello"[..], true));
        }
        assert!(Body::new(Kind::Length(0)).is_done());
        assert!(Body::new(Kind::None).is_done());
    }

    #[test]
    fn until_close_takes_everything() {
        let (used, payload, done) = feed(Kind::UntilClose, b"abc", 2).unwrap();
        assert_eq!((used, &payload[..], done), (3, &b"abc"[..], false));
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let wire = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (used, payload, done) = feed(Kind::Chunked, wire, step).unwrap();
            assert_eq!(used, wire.len() - 4, "step {step}");
            assert_eq!(payload, b"hello0123456789");
            assert!(done);
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",       // bare LF
            b"5\r\nhelloXX0\r\n\r\n",       // no CRLF after data
            b"5\r\nhello\r\n0\r\n\n",       // bare LF at the end
            b"5\r\nhello\r\n0\r\n foo\r\n", // folded trailer
            b"1000000000000000000\r\n",     // too big
        ] {
            assert_eq!(feed(Kind::Chunked, bad, 1), Err(BadFraming), "{bad:?}");
        }
        let long = format!("5;{}\r\n", "e".repeat(usize::from(MAX_LINE)));
        assert_eq!(feed(Kind::Chunked, long.as_bytes(), 7), Err(BadFraming));
    }
}
