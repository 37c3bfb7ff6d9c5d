//! Running programs for tests (each killed when its guard drops), what
//! `/proc` says about them, and temporary directories.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::net::{within, TIMEOUT};

/// A directory of this test process, removed with what is in it when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `what`.
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "evio-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A path for a unix socket of this test process (not created).
pub fn temp_sock(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("evio-test-{}-{}.sock", std::process::id(), name))
}

/// A child process, killed and reaped when dropped.
pub struct Process(pub Child);

impl Process {
    /// Starts `cmd` with its output discarded.
    pub fn start(mut cmd: Command) -> Process {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Process(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running server binary that printed a startup line naming its port
/// (`... on port N ...`, as the evio examples do), killed when dropped.
pub struct Bin {
    pub child: Child,
    /// Its startup line.
    pub line: String,
    /// The port the startup line names.
    pub port: u16,
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bin {
    /// The process id (the binary's own, also when started through
    /// `prlimit`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// The TLS port in the startup line (`... and TLS port N`).
    pub fn tls_port(&self) -> u16 {
        port_after(&self.line, "TLS port ")
            .unwrap_or_else(|| panic!("no TLS port in {:?}", self.line))
    }

    /// The metrics port in the startup line (`... metrics port N`).
    pub fn metrics_port(&self) -> u16 {
        port_after(&self.line, "metrics port ")
            .unwrap_or_else(|| panic!("no metrics port in {:?}", self.line))
    }
}

/// The number right after `marker` in `line`.
fn port_after(line: &str, marker: &str) -> Option<u16> {
    line.split(marker)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
}

/// Starts `cmd` with stdin and stdout null and stderr piped.
fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// Starts `cmd` (a server binary, or `prlimit ... -- binary`) and sends
/// each line of its stderr to the returned receiver (from a thread that
/// ends with stderr or the receiver); waits for the startup line. Returns
/// the child, the port the startup line names and the receiver, for the
/// lines after it.
pub fn spawn_logging(cmd: Command) -> (Child, u16, mpsc::Receiver<String>) {
    let mut child = spawn_quiet(cmd);
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = lines.recv_timeout(TIMEOUT).expect("the startup line");
    let port = port_after(&first, "on port ").unwrap_or_else(|| panic!("no port in {first:?}"));
    (child, port, lines)
}

/// Starts `cmd` (a server binary, or `prlimit ... -- binary`) with stderr
/// piped, and waits for its startup line; stderr is drained afterwards so
/// warnings never block the server.
pub fn spawn_bin(cmd: Command) -> Bin {
    let mut child = spawn_quiet(cmd);
    let stderr = child.stderr.take().unwrap();
    let line = within("the startup line", move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        line
    });
    let port = port_after(&line, "on port ").unwrap_or_else(|| panic!("no port in {line:?}"));
    Bin { child, line, port }
}

/// [`spawn_bin`] of `bin` with `args`.
pub fn spawn(bin: &str, args: &[&str]) -> Bin {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    spawn_bin(cmd)
}

/// Runs `cmd` with `stdin` as its input and a time limit; returns its exit
/// status (`None`: killed at the limit), stdout and stderr.
pub fn run_for(mut cmd: Command, limit: Duration, stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Whether `program` can be run (found on `PATH`).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether a test that needs `tool` must be skipped: `true`, with a
/// message, where `tool` is not installed.
pub fn skip_without(tool: &str) -> bool {
    if have(tool) {
        return false;
    }
    eprintln!("{tool} not installed: skipped");
    true
}

/// Fails unless this process's RSS grew by less than `limit` bytes since
/// it was `before` (an [`rss`] reading).
pub fn assert_rss_grew_less_than(before: usize, limit: usize) {
    let grown = rss().saturating_sub(before);
    assert!(grown < limit, "memory grew by {} MiB", grown >> 20);
}

/// How many file descriptors process `pid` has open (Linux `/proc`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
pub fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Resident memory of process `pid` in KiB (`VmRSS`, Linux).
pub fn rss_kib(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}
