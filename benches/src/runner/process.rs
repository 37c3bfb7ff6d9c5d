//! The processes the runner starts: CPU affinity, pinned spawning, reaping,
//! killing, a watchdog, clean-up on SIGINT/SIGTERM, and finding tools.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{self, Signal};
use nix::unistd::{sysconf, Pid, SysconfVar};

use crate::procfs;

/// The environment variable naming directories (`:`-separated) searched for
/// the external tools before `PATH`: a machine without a package manager
/// can carry `wrk`, `nginx`, `redis-benchmark` … in a directory of its own.
pub const TOOLS_ENV: &str = "EVIO_BENCH_TOOLS";

/// Where a process may run. Cores are numbered 0, 1, … over the cores this
/// process was allowed to use when it started (see [`allowed_cpus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpus {
    /// One core.
    Core(usize),
    /// Every allowed core.
    All,
    /// `count` cores from `first` on.
    Span {
        /// The first core.
        first: usize,
        /// How many cores.
        count: usize,
    },
}

impl Cpus {
    /// How many cores this is.
    pub fn count(self) -> usize {
        match self {
            Cpus::Core(_) => 1,
            Cpus::All => online_cpus(),
            Cpus::Span { count, .. } => count,
        }
    }
}

/// The cores this process may run on, as the kernel numbers them, read on
/// the first call (the runner calls it before it pins itself): in a
/// container these can be fewer than the machine's, and numbered from
/// anywhere.
pub fn allowed_cpus() -> &'static [usize] {
    static ALLOWED: OnceLock<Vec<usize>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        let set = sched_getaffinity(Pid::from_raw(0)).ok();
        let allowed: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| set.as_ref().is_some_and(|s| s.is_set(c).unwrap_or(false)))
            .collect();
        if allowed.is_empty() {
            let online = match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
                Ok(Some(n)) if n > 0 => n as usize,
                _ => 1,
            };
            (0..online).collect()
        } else {
            allowed
        }
    })
}

/// The number of cores this process may use.
pub fn online_cpus() -> usize {
    allowed_cpus().len()
}

/// Pins the calling thread to `cpus`.
pub fn set_affinity(cpus: Cpus) -> io::Result<()> {
    let allowed = allowed_cpus();
    let (first, count) = match cpus {
        Cpus::Core(c) => (c, 1),
        Cpus::All => (0, allowed.len()),
        Cpus::Span { first, count } => (first, count),
    };
    let mut set = CpuSet::new();
    for &c in allowed.iter().skip(first).take(count) {
        set.set(c)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Held while a child is being started; the interrupt handler takes it for
/// good, so that no child starts after it has swept them away.
static SPAWN: Mutex<()> = Mutex::new(());

/// Starts `cmd` pinned to `cpus` (like `taskset -c N`, without an extra
/// process): a child starts with the CPU affinity of the thread that forks
/// it, so this thread moves to `cpus` for the spawn and then back.
pub fn spawn(cmd: &mut Command, cpus: Option<Cpus>) -> io::Result<Child> {
    let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(cpus) = cpus else {
        return cmd.spawn();
    };
    let me = Pid::from_raw(0);
    let old = sched_getaffinity(me)?;
    set_affinity(cpus)?;
    let child = cmd.spawn();
    let restored = sched_setaffinity(me, &old);
    let mut child = child?;
    if let Err(e) = restored {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.into());
    }
    Ok(child)
}

/// Kills and reaps a child when dropped, unless it has been waited for
/// already (an early return, a panic).
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends `sig` to `pid`, ignoring errors (it may be gone already).
pub fn kill(pid: i32, sig: Signal) {
    let _ = signal::kill(Pid::from_raw(pid), sig);
}

/// On SIGINT or SIGTERM, kills every process the runner started (with their
/// children: an nginx worker, strace's tracee), removes the temporary
/// directory and exits with 128 + the signal number. A signal ignored when
/// the runner started (a background job of a script) stays ignored.
pub fn on_interrupt_clean_up(tmp: PathBuf) {
    let got = Arc::new(AtomicUsize::new(0));
    let ignored = procfs::ignored_signals();
    let mut any = false;
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let n = sig as i32;
        if ignored & (1 << (n - 1)) == 0
            && signal_hook::flag::register_usize(n, got.clone(), n as usize).is_ok()
        {
            any = true;
        }
    }
    if !any {
        return;
    }
    std::thread::spawn(move || loop {
        let sig = got.load(Ordering::SeqCst);
        if sig == 0 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // Never released: no child starts from now on.
        let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id() as i32;
        let kids = procfs::tree(me);
        for p in &kids[1..] {
            kill(*p, Signal::SIGKILL);
        }
        let _ = fs::remove_dir_all(&tmp);
        let name = Signal::try_from(sig as i32).map_or("signal", Signal::as_str);
        eprintln!(
            "bench: {name}: killed {} child process(es); stopping",
            kids.len() - 1
        );
        std::process::exit(128 + sig as i32);
    });
}

/// Kills a process that runs past its time; disarmed when dropped.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    /// Watches `pid` for `limit`; `what` names it in the message.
    pub fn new(pid: i32, limit: Duration, what: String) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !d.load(Ordering::Relaxed) {
                if t0.elapsed() > limit {
                    eprintln!("bench: {what} ran past {limit:?}; killing it");
                    kill(pid, Signal::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// The directories searched for a tool: `$EVIO_BENCH_TOOLS`, then `PATH`,
/// then `extra`.
fn tool_dirs(extra: &[&str]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in [TOOLS_ENV, "PATH"] {
        if let Some(v) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&v).filter(|d| !d.as_os_str().is_empty()));
        }
    }
    dirs.extend(extra.iter().map(PathBuf::from));
    dirs
}

/// The first file `name` in `$EVIO_BENCH_TOOLS`, `PATH` or the sbin
/// directories (nginx and haproxy live there).
pub fn which(name: &str) -> Option<PathBuf> {
    tool_dirs(&["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Like [`which`], skipping the file `name` in `not_in` (the real
/// redis-server, not ours).
pub fn which_not_in(name: &str, not_in: &Path) -> Option<PathBuf> {
    let ours = fs::canonicalize(not_in.join(name)).ok();
    tool_dirs(&["/usr/bin", "/usr/local/bin"])
        .into_iter()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .find(|p| fs::canonicalize(p).ok() != ours)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a log file ("" when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_counts() {
        assert_eq!(Cpus::Core(3).count(), 1);
        assert_eq!(Cpus::Span { first: 2, count: 4 }.count(), 4);
        assert!(Cpus::All.count() >= 1);
        assert_eq!(Cpus::All.count(), allowed_cpus().len());
    }

    #[test]
    fn finds_a_tool_on_path() {
        assert!(which("sh").is_some());
        assert!(which("no-such-tool-anywhere").is_none());
    }
}
