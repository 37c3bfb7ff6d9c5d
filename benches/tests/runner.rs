//! The runner end to end on the peer servers only (echo and memory), with
//! tiny durations. Checks what it writes, never a timing figure.

use std::path::PathBuf;
use std::process::Command;

use evio_test_support::TempDir;

#[test]
fn bench_runs_echo_and_memory_on_the_peers() {
    let guard = TempDir::new("bench-test");
    let tmp = guard.path().to_path_buf();
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Only the peers: this test must not depend on evio's own servers.
    for name in ["loadgen", "tokio-echo", "mio-echo"] {
        let src = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"))
            .parent()
            .unwrap()
            .join(name);
        std::os::unix::fs::symlink(&src, bin.join(name)).unwrap();
    }
    let out_json = tmp.join("out/results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .env("EVIO_BIN_DIR", &bin)
        .args(["--smoke", "--workloads", "echo,memory,loops"])
        .args(["--duration", "0.3", "--warmup", "0", "--mem-conns", "100"])
        .arg("--out")
        .arg(&out_json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("| 50 conns × 64 B × 1 in flight | tokio-echo |"),
        "{md}"
    );
    assert!(md.contains("## Memory per idle connection"), "{md}");
    // evio's servers are not in the bin dir: skipped with a message
    assert!(stderr.contains("echo-server not found"), "{stderr}");
    assert!(
        stderr.contains("loops: our echo-server is not built; skipped"),
        "{stderr}"
    );

    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * 2);
    for r in rows {
        assert_eq!(r["ok_rounds"], 1, "{r}");
        assert!(r["cpu_us_per_req"].is_number(), "{r}");
        assert!(r["rate"].as_f64().unwrap() > 0.0);
    }
    let tokio = &rows[0];
    assert_eq!(tokio["server"], "tokio-echo");
    // 1.0, or null where 0.3 s gave too few clock ticks to divide by
    assert!(tokio["cpu_vs_reference"] == 1.0 || tokio["cpu_vs_reference"].is_null());
    // (plus the real redis-server where it is installed)
    let mem = j["memory"].as_array().unwrap();
    for name in ["tokio-echo", "mio-echo"] {
        let m = mem.iter().find(|m| m["server"] == name).unwrap();
        assert_eq!(m["ok_rounds"], 1, "{m}");
    }
    let md_file = std::fs::read_to_string(out_json.with_extension("md")).unwrap();
    assert_eq!(md_file, md);
    for svg in ["bench-echo.svg", "bench-memory.svg"] {
        let s = std::fs::read_to_string(out_json.parent().unwrap().join(svg)).unwrap();
        assert!(s.starts_with("<svg"));
    }
}

#[test]
fn bench_runs_churn_with_the_floor_and_a_baseline() {
    let guard = TempDir::new("bench-churn");
    let tmp = guard.path().to_path_buf();
    let exe_dir = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = tmp.join("bin");
    let base = tmp.join("baseline");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&base).unwrap();
    for name in ["loadgen", "tokio-echo", "floor-server"] {
        std::os::unix::fs::symlink(exe_dir.join(name), bin.join(name)).unwrap();
    }
    // A stand-in "baseline build": mio-echo under our echo server's name.
    std::os::unix::fs::symlink(exe_dir.join("mio-echo"), base.join("echo-server")).unwrap();
    let out_json = tmp.join("out/results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .env("EVIO_BIN_DIR", &bin)
        .args(["--smoke", "--workloads", "churn"])
        .args(["--duration", "0.3", "--warmup", "0"])
        .arg("--compare")
        .arg(&base)
        .arg("--out")
        .arg(&out_json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let rows = j["rows"].as_array().unwrap();
    let echo: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["load_short"] == "echo churn 50×64B")
        .collect();
    let names: Vec<&str> = echo.iter().map(|r| r["server"].as_str().unwrap()).collect();
    // mio-echo takes no --defer-accept, so the baseline has no such row;
    // the floor has both.
    assert_eq!(
        names,
        [
            "evio-rs (baseline)",
            "tokio-echo",
            "floor",
            "floor --defer-accept"
        ]
    );
    for r in &echo {
        assert_eq!(r["ok_rounds"], 1, "{r}");
        assert!(r["rate"].as_f64().unwrap() > 0.0, "{r}");
    }
    // 1.0, or null where 0.3 s gave too few clock ticks to divide by
    let floor = echo[2];
    assert!(floor["cpu_vs_floor"] == 1.0 || floor["cpu_vs_floor"].is_null());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("## Connection churn"), "{md}");
}

#[test]
fn http_proxy_is_a_workload() {
    // Needs no tool: the usage names it, and a bad list names it as known.
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let usage = String::from_utf8_lossy(&out.stdout);
    assert!(usage.contains("proxy,http-proxy,churn"), "{usage}");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--workloads", "http-proxy,nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown workload \"nope\""), "{err}");
    assert!(err.contains("http-proxy"), "{err}");
}
