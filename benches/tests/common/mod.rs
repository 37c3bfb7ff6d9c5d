//! Helpers of the benches' integration tests: running `loadgen` and the
//! benchmark's servers; the rest comes from `evio-test-support`.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;

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

/// A loopback server of the test on a free port: each connection is
/// handed to `conn` on a thread of its own. Returns the port.
pub fn serve<F>(conn: F) -> u16
where
    F: Fn(TcpStream) + Clone + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let conn = conn.clone();
            thread::spawn(move || conn(sock));
        }
    });
    port
}

/// Writes back what `s` reads, each read first passed through `f` with
/// its offset in the stream (to corrupt, drop or add bytes), until EOF or
/// an error.
pub fn echo_through(mut s: impl Read + Write, mut f: impl FnMut(&mut Vec<u8>, u64)) {
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut v = buf[..n].to_vec();
        f(&mut v, offset);
        offset += n as u64;
        if s.write_all(&v).is_err() {
            return;
        }
    }
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
