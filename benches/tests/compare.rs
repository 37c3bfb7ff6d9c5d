//! `bench-compare` on reports made up here: it names a load that got worse
//! beyond the noise, not one that moved within it, and refuses garbage.

use std::process::Command;

use evio_test_support::TempDir;
use serde_json::json;

/// A report with one echo load: ours and tokio's CPU per round.
fn report(ours: &[f64], tokio: &[f64]) -> serde_json::Value {
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|c| json!({"ok": true, "cpu_us_per_req": c}))
            .collect::<Vec<_>>()
    };
    json!({
        "settings": {"smoke": false, "duration": 3.0, "redis_n": 200000, "rounds": ours.len()},
        "rows": [
            {"workload": "echo", "load": "50 conns", "server": "evio-rs", "reference": "tokio-echo", "rounds": rounds(ours)},
            {"workload": "echo", "load": "50 conns", "server": "evio-rs (baseline)", "reference": "tokio-echo", "rounds": rounds(&[9.0, 9.0, 9.0])},
            {"workload": "echo", "load": "50 conns", "server": "tokio-echo", "reference": "tokio-echo", "rounds": rounds(tokio)},
        ]
    })
}

fn compare(
    dir: &TempDir,
    stored: &serde_json::Value,
    new: &serde_json::Value,
) -> (Option<i32>, String, String) {
    let (a, b) = (dir.path().join("stored.json"), dir.path().join("new.json"));
    std::fs::write(&a, stored.to_string()).unwrap();
    std::fs::write(&b, new.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bench-compare"))
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn names_a_regression_and_lets_noise_pass() {
    let dir = TempDir::new("bench-compare");
    let stored = report(&[4.0, 4.1, 3.9], &[5.0, 5.0, 5.0]);
    // 2 % worse: within the stored spread and the default 5 %.
    let (code, out, err) = compare(&dir, &stored, &report(&[4.1, 4.1, 4.1], &[5.0, 5.0, 5.0]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("within noise"), "{out}");
    // 25 % worse: named, exit 1.
    let (code, out, err) = compare(&dir, &stored, &report(&[5.0, 5.1, 4.9], &[5.0, 5.0, 5.0]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("**worse**"), "{out}");
    assert!(err.contains("echo / 50 conns / evio-rs"), "{err}");
    assert!(
        !err.contains("baseline"),
        "only our own build is judged: {err}"
    );
    // The same CPU on a machine where tokio got faster is a worse ratio.
    let (code, _, _) = compare(&dir, &stored, &report(&[4.0, 4.1, 3.9], &[4.0, 4.0, 4.0]));
    assert_eq!(code, Some(1));
}

#[test]
fn refuses_files_that_are_not_reports() {
    let dir = TempDir::new("bench-compare-bad");
    let (code, _, err) = compare(&dir, &json!({"rows": []}), &json!({"rows": []}));
    assert_eq!(code, Some(2), "{err}");
    let path = dir.path().join("garbage.json");
    std::fs::write(&path, "not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bench-compare"))
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_bench-compare"))
        .arg("--noise")
        .arg("lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
