//! The runner end to end on the peer servers only (echo and memory), with
//! tiny durations. Checks what it writes, never a timing figure.

use std::path::Path;
use std::process::{Command, Output};

use evio_test_support::TempDir;

/// Links the benches binaries `names` (built beside this test's) into `dir`.
fn link_bins(dir: &Path, names: &[&str]) {
    let exe_dir = Path::new(env!("CARGO_BIN_EXE_loadgen")).parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for name in names {
        std::os::unix::fs::symlink(exe_dir.join(name), dir.join(name)).unwrap();
    }
}

/// `bench --smoke --warmup 0 --duration 0.3 ARGS --out OUT_JSON` on the
/// binaries in `bin`, which must succeed; its output and its JSON report.
fn bench(bin: &Path, args: &[&str], out_json: &Path) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .env("EVIO_BIN_DIR", bin)
        .args(["--smoke", "--duration", "0.3", "--warmup", "0"])
        .args(args)
        .arg("--out")
        .arg(out_json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = std::fs::read_to_string(out_json).unwrap();
    (out, serde_json::from_str(&report).unwrap())
}

#[test]
fn bench_runs_echo_and_memory_on_the_peers() {
    let guard = TempDir::new("bench-test");
    let tmp = guard.path().to_path_buf();
    let bin = tmp.join("bin");
    // Only the peers: this test must not depend on evio's own servers.
    link_bins(&bin, &["loadgen", "tokio-echo", "mio-echo"]);
    let out_json = tmp.join("out/results.json");
    let args = ["--workloads", "echo,memory,loops", "--mem-conns", "100"];
    let (out, j) = bench(&bin, &args, &out_json);
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    let (bin, base) = (tmp.join("bin"), tmp.join("baseline"));
    link_bins(&bin, &["loadgen", "tokio-echo", "floor-server"]);
    // A stand-in "baseline build": mio-echo under our echo server's name.
    link_bins(&base, &["mio-echo"]);
    std::fs::rename(base.join("mio-echo"), base.join("echo-server")).unwrap();
    let out_json = tmp.join("out/results.json");
    let args = ["--workloads", "churn", "--compare", base.to_str().unwrap()];
    let (out, j) = bench(&bin, &args, &out_json);
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
