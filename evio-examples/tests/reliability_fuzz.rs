//! Hostile input to the protocol engines, without sockets (issue #7).
//!
//! The checks are the fuzz targets' own (`fuzz/src/harness.rs`, included
//! here), so `cargo test` replays the checked-in fuzz corpus and runs the
//! same checks under `proptest`: no panic, split input answered like the
//! whole, well-formed replies, and allocations bounded by the input and the
//! configured limits, never by a declared length.

#[path = "../../fuzz/src/harness.rs"]
mod harness;

use harness::{measure, Counting};
use proptest::prelude::*;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocator really counts (or every bound below would hold vacuously).
#[test]
fn the_allocation_counter_counts() {
    let (v, usage) = measure(|| vec![0u8; 1 << 20]);
    assert!(
        usage.largest >= 1 << 20 && usage.peak >= 1 << 20,
        "{usage:?}"
    );
    drop(v);
    let (_, usage) = measure(|| ());
    assert_eq!(usage.largest, 0);
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn resp_corpus_replays_clean() {
    let files = corpus("resp");
    assert!(files.len() >= 10, "only {} corpus files", files.len());
    for (name, data) in files {
        eprintln!("resp corpus: {name}");
        harness::resp(&data);
    }
}

#[test]
fn http_corpus_replays_clean() {
    let files = corpus("http");
    assert!(files.len() >= 10, "only {} corpus files", files.len());
    for (name, data) in files {
        eprintln!("http corpus: {name}");
        harness::http(&data);
    }
}

/// A header (mode, seed) followed by `body`, as the fuzz targets read it.
fn framed(mode: u8, seed: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, (seed >> 8) as u8, seed as u8];
    v.extend_from_slice(body);
    v
}

/// Fragments that steer random input toward the parsers' edges.
fn resp_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        (any::<i64>()).prop_map(|n| format!("*{n}\r\n").into_bytes()),
        prop_oneof![any::<u64>(), 0u64..=(1 << 30)].prop_map(|n| format!("${n}\r\n").into_bytes()),
        (0u32..80).prop_map(|n| format!("${n}\r\n").into_bytes()),
        prop::sample::select(vec![
            &b"\r\n"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n",
            b"$1\r\nv\r\n",
            b"GET k\r\n",
            b"MGET k k k k\r\n",
            b"INCR k\r\n",
            b"SET \"a\\x41\" 'b'\r\n",
            b"\"",
            b"'",
            b"QUIT\r\n",
        ])
        .prop_map(|s| s.to_vec()),
    ]
}

fn http_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        (any::<u64>()).prop_map(|n| format!("Content-Length: {n}\r\n").into_bytes()),
        (0u32..64).prop_map(|n| format!("Content-Length: {n}\r\n").into_bytes()),
        prop::sample::select(vec![
            &b"GET / HTTP/1.1\r\n"[..],
            b"HEAD / HTTP/1.0\r\n",
            b"POST /x HTTP/1.1\r\n",
            b"Host: h\r\n",
            b"Connection: close\r\n",
            b"Connection: keep-alive\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            b"\r\n",
            b"\n",
        ])
        .prop_map(|s| s.to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any bytes, any split, either limit set.
    #[test]
    fn resp_any_bytes(mode: u8, seed: u16, body in prop::collection::vec(any::<u8>(), 0..400)) {
        harness::resp(&framed(mode, seed, &body));
    }

    /// Protocol-shaped garbage: real headers, lengths and commands mixed
    /// with random bytes.
    #[test]
    fn resp_shaped_garbage(mode: u8, seed: u16, pieces in prop::collection::vec(resp_piece(), 0..24)) {
        harness::resp(&framed(mode, seed, &pieces.concat()));
    }

    #[test]
    fn http_any_bytes(mode: u8, seed: u16, body in prop::collection::vec(any::<u8>(), 0..400)) {
        harness::http(&framed(mode, seed, &body));
    }

    #[test]
    fn http_shaped_garbage(mode: u8, seed: u16, pieces in prop::collection::vec(http_piece(), 0..24)) {
        harness::http(&framed(mode, seed, &pieces.concat()));
    }

    /// Any declared bulk or multibulk length, with a few bytes of it sent:
    /// memory stays O(bytes received) (the harness's bound), and lengths
    /// over the limit are refused.
    #[test]
    fn resp_gigantic_declared_lengths(
        count in prop_oneof![any::<i64>(), 1i64..8, Just(i64::from(i32::MAX))],
        len in prop_oneof![any::<u64>(), 65u64..=(512 << 20), Just(512 << 20), Just((512 << 20) + 1)],
        mode: u8,
        seed: u16,
    ) {
        let mut input = format!("*{count}\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\nabc").into_bytes();
        harness::resp(&framed(mode, seed, &input));
        input.truncate(input.len() - 3);
        harness::resp(&framed(mode & !1, seed, &input));
    }

    /// Any declared Content-Length: the body is skipped as it arrives,
    /// never buffered; a request inside the body is never answered.
    #[test]
    fn http_gigantic_content_length(len in any::<u64>(), digits in 0usize..3, mode: u8, seed: u16) {
        let value = format!("{len}{}", "9".repeat(digits));
        let body = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        harness::http(&framed(mode, seed, body.as_bytes()));
    }
}
