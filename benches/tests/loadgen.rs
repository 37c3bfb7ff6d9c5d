//! The load generator against the peer servers, and against servers that
//! corrupt, drop or close: it must notice. No wall-clock figure is asserted.

mod common;

use std::process::Output;

use common::{echo_through, serve, start};

/// `loadgen` (see `common::loadgen`), which must print its JSON line.
fn loadgen(port: u16, extra: &[&str]) -> (Output, serde_json::Value) {
    let (out, json) = common::loadgen(port, extra);
    let json = json.unwrap_or_else(|| {
        panic!(
            "no JSON line; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn check_clean(out: &Output, j: &serde_json::Value) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(j["messages"].as_u64().unwrap() > 0);
    assert_eq!(j["verify_errors"], 0);
    assert_eq!(j["errors"], 0);
}

#[test]
fn peers_echo_every_load_correctly() {
    for bin in [
        env!("CARGO_BIN_EXE_tokio-echo"),
        env!("CARGO_BIN_EXE_mio-echo"),
    ] {
        let (_srv, port) = start(bin, &[]);
        for args in [
            &["--conns", "8", "--size", "64", "--depth", "1"][..],
            &["--conns", "8", "--size", "6", "--depth", "16"][..],
            &["--conns", "40", "--size", "1024", "--depth", "2"][..],
            &["--conns", "2", "--size", "30000", "--depth", "3"][..],
            &["--conns", "4", "--size", "6", "--stream"][..],
        ] {
            let (out, j) = loadgen(port, args);
            check_clean(&out, &j);
            if args.contains(&"--stream") {
                assert_eq!(j["mode"], "stream");
                assert!(j["p50_us"].is_null());
            } else {
                assert!(j["p50_us"].as_f64().unwrap() > 0.0);
                assert!(j["p999_us"].as_f64().unwrap() >= j["p50_us"].as_f64().unwrap());
            }
        }
    }
}

#[test]
fn marks_frame_the_json_line() {
    let (_srv, port) = start(env!("CARGO_BIN_EXE_mio-echo"), &[]);
    let (out, _) = loadgen(port, &["--conns", "2", "--marks"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], "#start");
    assert_eq!(lines[1], "#end");
    assert!(lines[2].starts_with('{'));
}

/// A server that echoes through `f`, on its own threads.
fn bad_server(f: fn(&mut Vec<u8>, u64)) -> u16 {
    serve(move |s| echo_through(s, f))
}

#[test]
fn catches_a_flipped_byte() {
    let port = bad_server(|v, total| {
        // corrupt one byte somewhere after the first 1000
        if total <= 1000 && total + v.len() as u64 > 1000 {
            let i = (1000 - total) as usize;
            v[i] ^= 0x40;
        }
    });
    let (out, j) = loadgen(port, &["--conns", "1", "--size", "64"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["verify_errors"], 1);
}

#[test]
fn catches_a_dropped_message() {
    let port = bad_server(|v, total| {
        // drop the 10th 64-byte message
        if total <= 9 * 64 && total + v.len() as u64 >= 10 * 64 {
            let i = (9 * 64 - total) as usize;
            v.drain(i..i + 64);
        }
    });
    let (out, j) = loadgen(port, &["--conns", "1", "--size", "64", "--depth", "4"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["verify_errors"], 1);
}

#[test]
fn catches_extra_bytes() {
    let port = bad_server(|v, total| {
        if total == 0 {
            v.push(b'!');
        }
    });
    let (out, j) = loadgen(port, &["--conns", "1", "--size", "64"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["verify_errors"], 1);
}

#[test]
fn counts_a_server_that_closes() {
    let port = serve(drop);
    let (out, j) = loadgen(port, &["--conns", "3"]);
    // nothing completed: failure, and the closes are errors
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["messages"], 0);
    assert_eq!(j["errors"], 3);
}

#[test]
fn churn_and_threads_against_the_peers() {
    for bin in [
        env!("CARGO_BIN_EXE_tokio-echo"),
        env!("CARGO_BIN_EXE_mio-echo"),
    ] {
        let (_srv, port) = start(bin, &[]);
        let (out, j) = loadgen(port, &["--churn", "--conns", "8", "--size", "64"]);
        check_clean(&out, &j);
        assert_eq!(j["mode"], "churn");
        assert!(j["p50_us"].as_f64().unwrap() > 0.0);
        let (out, j) = loadgen(port, &["--conns", "8", "--threads", "3"]);
        check_clean(&out, &j);
        assert_eq!(j["threads"], 3);
    }
}

#[test]
fn churn_counts_a_server_that_closes_at_once() {
    let port = serve(drop);
    let (out, j) = loadgen(port, &["--churn", "--conns", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["messages"], 0);
    assert!(j["errors"].as_u64().unwrap() > 0);
}
