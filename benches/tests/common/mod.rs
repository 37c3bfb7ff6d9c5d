//! Helpers of the benches' integration tests: running `loadgen` and the
//! benchmark's servers; the rest comes from `evio-test-support`.
#![allow(dead_code, unused_imports)]

use std::process::{Command, Output};

pub use evio_test_support::*;

/// Runs `loadgen` against loopback `port` for 0.3 s with `extra` flags;
/// returns its output and its JSON line, if it printed one.
pub fn loadgen(port: u16, extra: &[&str]) -> (Output, Option<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--duration", "0.3", "--warmup", "0.05"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap());
    (out, json)
}

/// Starts `bin --port P [args]` on a free port and waits until it accepts.
pub fn start(bin: &str, args: &[&str]) -> (Process, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(args).args(["--port", &port.to_string()]);
    let server = Process::start(cmd);
    wait_port(port);
    (server, port)
}
