//! The checks the fuzz targets run, shared with the corpus-replay test
//! (`evio-examples/tests/reliability_fuzz.rs` includes this file), so a
//! plain `cargo test` replays every checked-in input through exactly the
//! code `cargo fuzz` runs.
//!
//! Input layout: byte 0 picks the mode (bit 0: small limits; bits 1..4:
//! how many cuts, 15 meaning one byte per read), bytes 1..3 seed the cut
//! positions, the rest is the byte stream a client sent.
//!
//! For every input, each engine (RESP and HTTP) runs twice, on the whole
//! stream as one read and on the same stream cut into reads, and must:
//! - not panic;
//! - answer the split stream with a prefix of what it answers the whole
//!   (the same, when neither run closes the connection);
//! - write only well-formed replies (RESP: a sequence of complete RESP2
//!   replies; HTTP: responses that start with a status line);
//! - never allocate more than the input and the configured limits justify
//!   (a declared length reserves nothing until its bytes arrive).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use evio_core::Action;
use evio_examples::{http, redis, resp::Limits, store::Store, Sink};

// ---- a counting allocator (per thread, so parallel tests don't mix) -------

thread_local! {
    /// Bytes allocated minus bytes freed while counting.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` reached.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The largest single allocation (or reallocation target).
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Counting is on (off while writing to the output sink).
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// A global allocator that counts the calling thread's allocations while
/// [`measure`] runs. Install it in a binary with
/// `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

fn note(delta: isize, size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|l| {
                let v = l.get() + delta;
                l.set(v);
                let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
            });
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only const-initialised thread-locals (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), 0);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What [`measure`] saw: the peak of bytes held and the largest single
/// allocation, both relative to its start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub peak: usize,
    pub largest: usize,
}

/// Runs `f` with the current thread's allocations counted. Counts nothing
/// unless [`Counting`] is the global allocator.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    LARGEST.with(|m| m.set(0));
    let was = ON.with(|on| on.replace(true));
    let r = f();
    ON.with(|on| on.set(was));
    let usage = Usage {
        peak: PEAK.with(|p| p.get()).max(0) as usize,
        largest: LARGEST.with(|m| m.get()),
    };
    (r, usage)
}

/// The output of an engine: kept, but its own growth is not counted (a
/// reply may legitimately be larger than its request: `MGET k k k ...`;
/// output is bounded by the server's output water marks, not the engine).
#[derive(Default)]
pub struct Out(pub Vec<u8>);

impl Sink for Out {
    fn write(&mut self, data: &[u8]) {
        let was = ON.with(|on| on.replace(false));
        self.0.extend_from_slice(data);
        ON.with(|on| on.set(was));
    }

    /// Everything is taken as written at once: the engines never stop at
    /// their output mark here, so whole and split runs stay comparable.
    fn output_len(&self) -> usize {
        0
    }
}

// ---- input decoding --------------------------------------------------------

/// A decoded fuzz input.
pub struct Case<'a> {
    pub small_limits: bool,
    /// Read boundaries (strictly increasing, inside the stream).
    pub cuts: Vec<usize>,
    pub stream: &'a [u8],
}

impl<'a> Case<'a> {
    pub fn decode(data: &'a [u8]) -> Case<'a> {
        if data.len() < 3 {
            return Case {
                small_limits: false,
                cuts: Vec::new(),
                stream: data,
            };
        }
        let mode = data[0];
        let mut seed = (u64::from(data[1]) << 8 | u64::from(data[2])) | 0x1_0000;
        let stream = &data[3..];
        let n = usize::from((mode >> 1) & 15);
        let mut cuts: Vec<usize> = if n == 15 {
            (1..stream.len()).collect()
        } else {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % (stream.len() as u64 + 1)) as usize
                })
                .filter(|&c| c > 0 && c < stream.len())
                .collect()
        };
        cuts.sort_unstable();
        cuts.dedup();
        Case {
            small_limits: mode & 1 != 0,
            cuts,
            stream,
        }
    }

    /// The stream as reads: whole (`split == false`) or cut.
    pub fn reads(&self, split: bool) -> Vec<&'a [u8]> {
        if !split || self.cuts.is_empty() {
            return if self.stream.is_empty() {
                Vec::new()
            } else {
                vec![self.stream]
            };
        }
        let mut v = Vec::with_capacity(self.cuts.len() + 1);
        let mut at = 0;
        for &c in self.cuts.iter().chain(std::iter::once(&self.stream.len())) {
            v.push(&self.stream[at..c]);
            at = c;
        }
        v
    }
}

/// Feeds `reads` one by one until an action ends the connection; checks
/// after every read that the engine holds no more than `bound(fed, read)`
/// bytes and made no single allocation larger than that.
fn drive(
    reads: &[&[u8]],
    mut feed: impl FnMut(&[u8], &mut Out) -> Action,
    bound: impl Fn(usize, usize) -> usize,
) -> (Vec<u8>, Action) {
    let mut out = Out::default();
    let mut fed = 0;
    let mut held_before = 0usize;
    for read in reads {
        fed += read.len();
        let (action, usage) = measure(|| feed(read, &mut out));
        let limit = bound(fed, read.len());
        assert!(
            usage.largest <= limit,
            "one allocation of {} bytes after {fed} bytes of input (bound {limit})",
            usage.largest
        );
        assert!(
            held_before + usage.peak <= limit.saturating_mul(2),
            "{} bytes held after {fed} bytes of input (bound {limit})",
            held_before + usage.peak
        );
        // What the engine kept: the counter's end value is not exposed, so
        // keep the peak (an over-estimate) for the next read's check.
        held_before = (held_before + usage.peak).min(limit.saturating_mul(2));
        if action != Action::None {
            return (out.0, action);
        }
    }
    (out.0, Action::None)
}

fn check_split<T: std::fmt::Debug>(whole: &(Vec<u8>, Action), split: &(Vec<u8>, Action), what: T) {
    assert!(
        whole.0.starts_with(&split.0),
        "{what:?}: split output {:?} is not a prefix of whole output {:?}",
        String::from_utf8_lossy(&split.0),
        String::from_utf8_lossy(&whole.0)
    );
    if whole.1 == Action::None && split.1 == Action::None {
        assert_eq!(
            String::from_utf8_lossy(&whole.0),
            String::from_utf8_lossy(&split.0),
            "{what:?}: split and whole differ though neither closed"
        );
    }
}

// ---- RESP ------------------------------------------------------------------

/// The small limits of the fuzz mode with bit 0 set: every limit is reachable
/// with a few hundred bytes.
pub const SMALL_RESP: Limits = Limits {
    max_bulk_len: 64,
    max_inline: 48,
    max_multibulk_len: 8,
    query_buffer_limit: 256,
};

/// The RESP engine (parser, commands, store) against one input.
pub fn resp(data: &[u8]) {
    let case = Case::decode(data);
    let limits = if case.small_limits {
        SMALL_RESP
    } else {
        Limits::default()
    };
    let run = |split: bool| {
        let mut engine = redis::Engine::new(Store::for_loops(1), limits);
        let mut session = redis::Session::default();
        // Everything kept is O(input): values and keys in the store, the
        // held request, argument ranges (16 bytes per >= 2 input bytes),
        // hash-table growth. Never O(a declared length).
        let r = drive(
            &case.reads(split),
            |p, out| engine.feed(&mut session, p, out),
            |fed, _| 64 * fed + (64 << 10),
        );
        drop(session);
        r
    };
    let whole = run(false);
    let split = run(true);
    // Keys set with a TTL may expire between (or during) the two runs, so
    // their replies legitimately differ: compare only runs without one.
    if !sets_a_ttl(case.stream, &limits) {
        check_split(&whole, &split, "resp");
    }
    check_resp_replies(&whole.0);
    check_resp_replies(&split.0);
}

/// Whether any request of `stream` is a `SET` with an `EX` or `PX` option,
/// parsed exactly as the engine parses it.
fn sets_a_ttl(stream: &[u8], limits: &Limits) -> bool {
    let mut parser = evio_examples::resp::Parser::new();
    let mut pos = 0;
    while pos < stream.len() {
        let buf = &stream[pos..];
        match parser.parse(buf, limits) {
            Ok(evio_examples::resp::Parsed::Command { len, inline }) => {
                let argv = parser.argv(buf, inline);
                if argv.get(0).eq_ignore_ascii_case(b"set")
                    && argv
                        .iter_from(3)
                        .any(|a| a.eq_ignore_ascii_case(b"ex") || a.eq_ignore_ascii_case(b"px"))
                {
                    return true;
                }
                pos += len;
            }
            Ok(evio_examples::resp::Parsed::Skip(len)) => pos += len,
            _ => return false,
        }
    }
    false
}

/// Checks that `out` is a sequence of complete, well-formed RESP2 replies.
pub fn check_resp_replies(out: &[u8]) {
    let mut pos = 0;
    while pos < out.len() {
        pos = reply(out, pos).unwrap_or_else(|| {
            panic!(
                "malformed reply at byte {pos} of {:?}",
                String::from_utf8_lossy(out)
            )
        });
    }
}

/// One reply at `pos`; returns where the next starts.
fn reply(out: &[u8], pos: usize) -> Option<usize> {
    let kind = *out.get(pos)?;
    let rest = &out[pos + 1..];
    let cr = rest.iter().position(|&b| b == b'\r' || b == b'\n')?;
    if rest.get(cr..cr + 2)? != b"\r\n" {
        return None;
    }
    let line = &rest[..cr];
    let next = pos + 1 + cr + 2;
    let int = || evio_examples::resp::parse_i64(line);
    match kind {
        b'+' | b'-' => Some(next),
        b':' => int().map(|_| next),
        b'$' => match int()? {
            -1 => Some(next),
            n if n >= 0 => {
                let end = next + n as usize;
                (out.get(end..end + 2)? == b"\r\n").then_some(end + 2)
            }
            _ => None,
        },
        b'*' => match int()? {
            -1 => Some(next),
            n if n >= 0 => (0..n).try_fold(next, |p, _| reply(out, p)),
            _ => None,
        },
        _ => None,
    }
}

// ---- HTTP ------------------------------------------------------------------

/// The small head limit of the fuzz mode with bit 0 set.
pub const SMALL_HTTP: usize = 128;

/// The HTTP engine against one input.
pub fn http(data: &[u8]) {
    let case = Case::decode(data);
    let config = http::Config {
        max_header_bytes: if case.small_limits {
            SMALL_HTTP
        } else {
            http::MAX_HEADER_BYTES
        },
        // Small limits reach the body limit with a few hundred bytes too.
        max_body_bytes: if case.small_limits {
            SMALL_HTTP as u64
        } else {
            http::MAX_BODY_BYTES
        },
        ..http::Config::default()
    };
    let engine = http::Engine::new(config);
    let run = |split: bool| {
        let mut engine = engine.clone();
        let mut session = http::Session::default();
        // Nothing is stored: a connection holds at most one unfinished
        // head (the configured limit), whatever it declares or sends.
        let limit = config.max_header_bytes;
        drive(
            &case.reads(split),
            |p, out| engine.feed(&mut session, p, out),
            |_, read| 2 * (limit + read) + 4096,
        )
    };
    let whole = run(false);
    let split = run(true);
    check_split(&whole, &split, "http");
    let out = &whole.0;
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 "),
        "response does not start with a status line: {:?}",
        String::from_utf8_lossy(out)
    );
    // Every response announces its length; each starts a status line.
    let responses = out.windows(9).filter(|w| w == b"HTTP/1.1 ").count();
    let heads = out.windows(4).filter(|w| w == b"\r\n\r\n").count();
    assert!(heads >= responses, "a response without an end of head");
}
