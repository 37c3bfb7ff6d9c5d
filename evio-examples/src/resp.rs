//! RESP2, the Redis protocol: an in-place request parser and reply writers.
//!
//! A request is either a multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what
//! clients send) or an inline command (`GET k\r\n`, what people type into
//! `nc`). [`Parser::parse`] reads one request from the front of a buffer
//! and records each argument as a range of that buffer: no copy, no
//! allocation once its argument list has grown to the largest command seen.
//! Only inline commands, whose quoted arguments must be unescaped, are
//! copied (into a scratch buffer the parser keeps).
//!
//! Lengths are checked before anything is reserved: a client that declares a
//! 512 MiB bulk gets nothing until it has actually sent 512 MiB, and
//! [`Incomplete`](Parsed::Incomplete) says how many bytes must be buffered
//! before parsing again can make progress, so a large value arriving in
//! many reads is parsed once, not once per read.

use std::ops::Range;

use crate::Sink;

/// Redis's `proto-max-bulk-len`: the largest bulk string, 512 MiB.
pub const PROTO_MAX_BULK_LEN: usize = 512 << 20;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command and the
/// longest `*N`/`$N` header line, 64 KiB.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 << 10;
/// Redis's `client-query-buffer-limit`: the most input one connection may
/// hold for a request that has not fully arrived, 1 GiB.
pub const QUERY_BUFFER_LIMIT: usize = 1 << 30;
/// The most arguments of one multibulk request (Redis: `INT_MAX`). Nothing
/// is reserved for them up front: argument ranges grow as arguments arrive.
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;

/// The smallest encoding of one multibulk argument: `$0\r\n\r\n`.
const MIN_ARG_LEN: usize = 6;

/// Protocol limits; [`Limits::default`] has Redis's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (`$N` with N above it is refused).
    pub max_bulk_len: usize,
    /// Longest inline command or header line.
    pub max_inline: usize,
    /// Most arguments in one multibulk request.
    pub max_multibulk_len: usize,
    /// Most bytes one connection may buffer for an unfinished request.
    pub query_buffer_limit: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk_len: PROTO_MAX_BULK_LEN,
            max_inline: PROTO_INLINE_MAX_SIZE,
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            query_buffer_limit: QUERY_BUFFER_LIMIT,
        }
    }
}

/// A malformed request. Redis answers each with `-ERR Protocol error: ...`
/// and closes the connection, since it can no longer find where the next
/// request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// A `*N` line longer than the inline limit.
    TooBigMbulkCount,
    /// `*N` with N not an integer, or too large.
    InvalidMultibulkLength,
    /// A `$N` line longer than the inline limit.
    TooBigBulkCount,
    /// `$N` with N not an integer, negative or too large; or a bulk not
    /// followed by CRLF.
    InvalidBulkLength,
    /// A multibulk argument that does not start with `$`.
    ExpectedDollar(u8),
    /// An inline command longer than the inline limit.
    TooBigInline,
    /// An inline command with an unclosed quote.
    UnbalancedQuotes,
}

impl ProtoError {
    /// Writes Redis's error reply for this error.
    pub fn write_reply<O: Sink + ?Sized>(&self, out: &mut O) {
        out.write(b"-ERR Protocol error: ");
        match self {
            ProtoError::TooBigMbulkCount => out.write(b"too big mbulk count string"),
            ProtoError::InvalidMultibulkLength => out.write(b"invalid multibulk length"),
            ProtoError::TooBigBulkCount => out.write(b"too big bulk count string"),
            ProtoError::InvalidBulkLength => out.write(b"invalid bulk length"),
            ProtoError::ExpectedDollar(got) => {
                out.write(b"expected '$', got '");
                // Keep the reply one valid line whatever byte arrived.
                let c = if got.is_ascii_graphic() { *got } else { b' ' };
                out.write(&[c, b'\'']);
            }
            ProtoError::TooBigInline => out.write(b"too big inline request"),
            ProtoError::UnbalancedQuotes => out.write(b"unbalanced quotes in request"),
        }
        out.write(b"\r\n");
    }
}

/// What [`Parser::parse`] found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A request of `len` bytes; read its arguments with [`Parser::argv`].
    Command {
        /// Bytes the request takes.
        len: usize,
        /// Inline request: its arguments live in the parser's scratch buffer.
        inline: bool,
    },
    /// `len` bytes that hold no command (an empty line, `*0`): skip them.
    Skip(usize),
    /// The request has not fully arrived. Parsing again before the buffer
    /// holds `need` bytes cannot make progress.
    Incomplete {
        /// The buffer length worth waiting for.
        need: usize,
    },
}

/// The RESP request parser. Keep one per event loop and reuse it: it owns
/// the argument list and the inline scratch buffer.
#[derive(Debug, Default)]
pub struct Parser {
    args: Vec<Range<usize>>,
    scratch: Vec<u8>,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses the request at the front of `buf`.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtoError> {
        self.args.clear();
        match buf.first() {
            None => Ok(Parsed::Incomplete { need: 1 }),
            Some(b'*') => self.parse_multibulk(buf, limits),
            Some(_) => self.parse_inline(buf, limits),
        }
    }

    /// The arguments of the request that [`parse`](Parser::parse) just
    /// returned as [`Parsed::Command`]; `buf` is the buffer given to it.
    pub fn argv<'a>(&'a self, buf: &'a [u8], inline: bool) -> Argv<'a> {
        Argv {
            base: if inline { &self.scratch } else { buf },
            ranges: &self.args,
        }
    }

    /// Releases the memory a very large request left behind.
    pub fn trim(&mut self) {
        if self.args.capacity() > 4096 {
            self.args = Vec::new();
        }
        if self.scratch.capacity() > PROTO_INLINE_MAX_SIZE {
            self.scratch = Vec::new();
        }
    }

    fn parse_multibulk(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtoError> {
        let (count, mut pos) = match header(buf, 0, limits) {
            Header::Incomplete => {
                return Ok(Parsed::Incomplete {
                    need: buf.len() + 1,
                })
            }
            Header::TooLong => return Err(ProtoError::TooBigMbulkCount),
            Header::Invalid => return Err(ProtoError::InvalidMultibulkLength),
            Header::Done(n, end) => (n, end),
        };
        if count <= 0 {
            // `*0` and `*-1`: no command (Redis skips them too).
            return Ok(Parsed::Skip(pos));
        }
        let count = count as usize;
        if count > limits.max_multibulk_len {
            return Err(ProtoError::InvalidMultibulkLength);
        }
        for i in 0..count {
            // A lower bound of the bytes still to come: every remaining
            // argument needs at least `$0\r\n\r\n`.
            let rest = (count - i).saturating_mul(MIN_ARG_LEN);
            let Some(&first) = buf.get(pos) else {
                return Ok(Parsed::Incomplete {
                    need: pos.saturating_add(rest),
                });
            };
            if first != b'$' {
                return Err(ProtoError::ExpectedDollar(first));
            }
            let (len, start) = match header(buf, pos, limits) {
                Header::Incomplete => {
                    let need = (buf.len() + 1).max(pos.saturating_add(rest));
                    return Ok(Parsed::Incomplete { need });
                }
                Header::TooLong => return Err(ProtoError::TooBigBulkCount),
                Header::Invalid => return Err(ProtoError::InvalidBulkLength),
                Header::Done(n, end) => (n, end),
            };
            if len < 0 || len as u64 > limits.max_bulk_len as u64 {
                return Err(ProtoError::InvalidBulkLength);
            }
            let end = start + len as usize;
            if buf.len() < end + 2 {
                let need = (end + 2).saturating_add(rest - MIN_ARG_LEN);
                return Ok(Parsed::Incomplete { need });
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtoError::InvalidBulkLength);
            }
            self.args.push(start..end);
            pos = end + 2;
        }
        Ok(Parsed::Command {
            len: pos,
            inline: false,
        })
    }

    fn parse_inline(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtoError> {
        // The line, without its CRLF or LF, may take `max_inline` bytes.
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > limits.max_inline + 1 {
                return Err(ProtoError::TooBigInline);
            }
            return Ok(Parsed::Incomplete {
                need: buf.len() + 1,
            });
        };
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        if line.len() > limits.max_inline {
            return Err(ProtoError::TooBigInline);
        }
        split_args(line, &mut self.scratch, &mut self.args)?;
        if self.args.is_empty() {
            Ok(Parsed::Skip(nl + 1))
        } else {
            Ok(Parsed::Command {
                len: nl + 1,
                inline: true,
            })
        }
    }
}

/// The arguments of one request, borrowed from the input (or, for inline
/// requests, from the parser's scratch buffer).
#[derive(Clone, Copy, Debug)]
pub struct Argv<'a> {
    base: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Argv<'a> {
    /// How many arguments, the command name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none (never, for a parsed command).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`; 0 is the command name.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.base[self.ranges[i].clone()]
    }

    /// The arguments from `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let base = self.base;
        self.ranges[from.min(self.ranges.len())..]
            .iter()
            .map(move |r| &base[r.clone()])
    }
}

enum Header {
    Incomplete,
    TooLong,
    Invalid,
    /// The number, and where the line after it starts.
    Done(i64, usize),
}

/// Reads a `*N\r\n` or `$N\r\n` line starting at `pos`.
fn header(buf: &[u8], pos: usize, limits: &Limits) -> Header {
    let line = &buf[pos..];
    // Look no further than a legal header line can reach, so that the
    // outcome does not depend on how much input has arrived.
    let window = &line[..line.len().min(limits.max_inline)];
    match window.iter().position(|&b| b == b'\r') {
        None if line.len() > limits.max_inline => Header::TooLong,
        None => Header::Incomplete,
        Some(cr) if cr + 1 == line.len() => Header::Incomplete,
        Some(cr) if line[cr + 1] != b'\n' => Header::Invalid,
        Some(cr) => match parse_i64(&line[1..cr]) {
            Some(n) => Header::Done(n, pos + cr + 2),
            None => Header::Invalid,
        },
    }
}

/// Parses a decimal integer the way Redis's `string2ll` does: an optional
/// `-`, digits, no `+`, no spaces, no leading zeros, no `-0`, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate negatively so that i64::MIN fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Splits an inline command into arguments like Redis's `sdssplitargs`:
/// whitespace separates arguments; `"..."` understands `\n \r \t \b \a \\
/// \" \xHH`; `'...'` understands `\'`; a closing quote must be followed by
/// whitespace or the end of the line.
fn split_args(
    line: &[u8],
    scratch: &mut Vec<u8>,
    args: &mut Vec<Range<usize>>,
) -> Result<(), ProtoError> {
    scratch.clear();
    let at = |i: usize| line.get(i).copied();
    let is_space = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_space) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = scratch.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let Some(c) = at(p) else {
                if in_dq || in_sq {
                    return Err(ProtoError::UnbalancedQuotes);
                }
                break;
            };
            let quote = match (in_dq, in_sq) {
                (true, _) => Some(b'"'),
                (_, true) => Some(b'\''),
                _ => None,
            };
            if quote == Some(c) {
                // A closing quote must end the argument.
                if at(p + 1).is_some_and(|n| !is_space(n)) {
                    return Err(ProtoError::UnbalancedQuotes);
                }
                p += 1;
                break;
            } else if in_dq {
                let hex = |i| at(i).and_then(|h: u8| (h as char).to_digit(16));
                if c == b'\\'
                    && at(p + 1) == Some(b'x')
                    && hex(p + 2).is_some()
                    && hex(p + 3).is_some()
                {
                    scratch.push((hex(p + 2).unwrap_or(0) * 16 + hex(p + 3).unwrap_or(0)) as u8);
                    p += 3;
                } else if c == b'\\' && p + 1 < line.len() {
                    p += 1;
                    scratch.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else {
                    scratch.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == Some(b'\'') {
                    p += 1;
                    scratch.push(b'\'');
                } else {
                    scratch.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        p += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => scratch.push(c),
                }
            }
            p += 1;
        }
        args.push(start..scratch.len());
    }
}

// ---- Reply writers -------------------------------------------------------

/// `+OK`
pub const OK: &[u8] = b"+OK\r\n";
/// `+PONG`
pub const PONG: &[u8] = b"+PONG\r\n";
/// The RESP2 null bulk string.
pub const NIL: &[u8] = b"$-1\r\n";
/// An empty array.
pub const EMPTY_ARRAY: &[u8] = b"*0\r\n";

/// Writes `{prefix}{n}\r\n` with one write and no allocation.
fn write_header<O: Sink + ?Sized>(out: &mut O, prefix: u8, n: i64) {
    let mut line = [0u8; 24];
    line[0] = prefix;
    let mut digits = itoa::Buffer::new();
    let d = digits.format(n).as_bytes();
    line[1..1 + d.len()].copy_from_slice(d);
    line[1 + d.len()..3 + d.len()].copy_from_slice(b"\r\n");
    out.write(&line[..3 + d.len()]);
}

/// Writes an integer reply, `:n`.
pub fn write_int<O: Sink + ?Sized>(out: &mut O, n: i64) {
    write_header(out, b':', n);
}

/// Writes a bulk string reply, `$len` and the bytes.
pub fn write_bulk<O: Sink + ?Sized>(out: &mut O, value: &[u8]) {
    write_header(out, b'$', value.len() as i64);
    out.write(value);
    out.write(b"\r\n");
}

/// Writes an array header, `*n`; the `n` elements follow.
pub fn write_array<O: Sink + ?Sized>(out: &mut O, n: usize) {
    write_header(out, b'*', n as i64);
}

/// Writes an error reply, `-{msg}` (`msg` starts with its code, e.g. `ERR`).
pub fn write_error<O: Sink + ?Sized>(out: &mut O, msg: &str) {
    out.write(b"-");
    out.write(msg.as_bytes());
    out.write(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtoError> {
        let mut p = Parser::new();
        let lim = Limits::default();
        let mut pos = 0;
        let mut cmds = Vec::new();
        loop {
            match p.parse(&input[pos..], &lim)? {
                Parsed::Command { len, inline } => {
                    let argv = p.argv(&input[pos..], inline);
                    cmds.push(argv.iter_from(0).map(|a| a.to_vec()).collect());
                    pos += len;
                }
                Parsed::Skip(n) => pos += n,
                Parsed::Incomplete { .. } => return Ok(cmds),
            }
        }
    }

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelines() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![args(&["GET", "k"]), args(&["PING"])]);
    }

    #[test]
    fn binary_safe_bulk() {
        let got = parse_all(b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\0\xff\r\n").unwrap();
        assert_eq!(got[0][1], b"\r\n\0\xff");
    }

    #[test]
    fn zero_and_negative_counts_are_skipped() {
        let got = parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![args(&["PING"])]);
    }

    #[test]
    fn incomplete_reports_what_to_wait_for() {
        let mut p = Parser::new();
        let lim = Limits::default();
        let full = b"*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            match p.parse(&full[..cut], &lim).unwrap() {
                Parsed::Incomplete { need } => {
                    assert!(need > cut, "cut {cut}: need {need}");
                    assert!(need <= full.len(), "cut {cut}: need {need} overshoots");
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(
            p.parse(full, &lim).unwrap(),
            Parsed::Command {
                len: full.len(),
                inline: false
            }
        );
        // A declared 512 MiB bulk asks for its bytes, but nothing is reserved.
        let huge = b"*2\r\n$3\r\nSET\r\n$536870912\r\nabc";
        match p.parse(huge, &lim).unwrap() {
            Parsed::Incomplete { need } => assert_eq!(need, 13 + 12 + (512 << 20) + 2),
            other => panic!("{other:?}"),
        }
        assert!(p.args.capacity() < 16);
    }

    #[test]
    fn malformed_multibulk() {
        let e = |s: &[u8]| Parser::new().parse(s, &Limits::default()).unwrap_err();
        assert_eq!(e(b"*x\r\n"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"*1x\r\n"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"*01\r\n"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"*1\rx"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"*99999999999\r\n"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"*1\r\n+3\r\n"), ProtoError::ExpectedDollar(b'+'));
        assert_eq!(e(b"*1\r\n$-1\r\n"), ProtoError::InvalidBulkLength);
        assert_eq!(e(b"*1\r\n$536870913\r\n"), ProtoError::InvalidBulkLength);
        assert_eq!(e(b"*1\r\n$x\r\n"), ProtoError::InvalidBulkLength);
        assert_eq!(e(b"*1\r\n$1\r\nab\r\n"), ProtoError::InvalidBulkLength);
        let long = [b"*1".as_slice(), &[b'1'; 70_000]].concat();
        assert_eq!(e(&long), ProtoError::TooBigMbulkCount);
        let long = [b"*1\r\n$1".as_slice(), &[b'1'; 70_000]].concat();
        assert_eq!(e(&long), ProtoError::TooBigBulkCount);
    }

    #[test]
    fn limits_are_configurable() {
        let lim = Limits {
            max_bulk_len: 4,
            max_inline: 8,
            max_multibulk_len: 2,
            ..Limits::default()
        };
        let e = |s: &[u8]| Parser::new().parse(s, &lim).unwrap_err();
        assert_eq!(e(b"*1\r\n$5\r\n"), ProtoError::InvalidBulkLength);
        assert_eq!(e(b"*3\r\n"), ProtoError::InvalidMultibulkLength);
        assert_eq!(e(b"PING PING\r\n"), ProtoError::TooBigInline);
        assert_eq!(e(b"PING PINGS"), ProtoError::TooBigInline);
        assert!(Parser::new().parse(b"PING PIN\r\n", &lim).is_ok());
        assert!(Parser::new().parse(b"PING PIN\n", &lim).is_ok());
        assert!(Parser::new().parse(b"*1\r\n$4\r\nPING\r\n", &lim).is_ok());
    }

    #[test]
    fn inline_commands() {
        let got = parse_all(b"SET k v\r\n\r\n  GET\tk  \nPING\r\n").unwrap();
        assert_eq!(
            got,
            vec![
                args(&["SET", "k", "v"]),
                args(&["GET", "k"]),
                args(&["PING"])
            ]
        );
        let got = parse_all(b"SET \"a b\\n\\x41\\\"\" 'it\\'s'\r\n").unwrap();
        assert_eq!(got, vec![args(&["SET", "a b\nA\"", "it's"])]);
        let got = parse_all(b"ECHO \"\"\r\n").unwrap();
        assert_eq!(got, vec![args(&["ECHO", ""])]);
        let e = |s: &[u8]| Parser::new().parse(s, &Limits::default()).unwrap_err();
        assert_eq!(e(b"SET \"a\r\n"), ProtoError::UnbalancedQuotes);
        assert_eq!(e(b"SET \"a\"b\r\n"), ProtoError::UnbalancedQuotes);
        assert_eq!(e(b"SET 'a\r\n"), ProtoError::UnbalancedQuotes);
    }

    #[test]
    fn string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_int(&mut out, -42);
        write_bulk(&mut out, b"hi");
        write_array(&mut out, 3);
        write_error(&mut out, "ERR x");
        ProtoError::ExpectedDollar(b'\n').write_reply(&mut out);
        assert_eq!(
            out,
            b":-42\r\n$2\r\nhi\r\n*3\r\n-ERR x\r\n-ERR Protocol error: expected '$', got ' '\r\n"
        );
    }
}
