//! Reading a process's CPU time and memory from `/proc`.
//!
//! Server CPU per request is `utime + stime` (from `/proc/PID/stat`, in clock
//! ticks, converted with `sysconf(_SC_CLK_TCK)`) taken before and after the
//! measured interval, summed over the server's process tree (nginx runs a
//! master and a worker), divided by the requests done in that interval.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Fields of `/proc/PID/stat` that the runner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent process id.
    pub ppid: i32,
    /// User CPU time, in clock ticks.
    pub utime: u64,
    /// System CPU time, in clock ticks.
    pub stime: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of one process.
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid` and all its descendants that are alive now.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(s) = stat(p) {
                children.entry(s.ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// utime + stime, in clock ticks, summed over `pid`'s process tree.
pub fn tree_cpu_ticks(pid: i32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.utime + s.stime)
        .sum()
}

/// The value in kB of a `Vm*:` line of a `/proc/PID/status` text.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A `/proc/PID/status` value in kB (`VmHWM`, `VmRSS`) summed over the tree.
pub fn tree_status_kb(pid: i32, key: &str) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|t| parse_status_kb(&t, key))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_name() {
        let text = "1234 (we ird) (name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 37 12 0 0 20 0 1 0 5 1000 100";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 1,
                utime: 37,
                stime: 12
            }
        );
    }

    #[test]
    fn parses_status() {
        let text = "Name:\tx\nVmPeak:\t  10 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(5120));
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(4096));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn own_process() {
        let me = std::process::id() as i32;
        assert!(stat(me).is_some());
        assert!(tree(me).contains(&me));
        assert!(tree_status_kb(me, "VmHWM") > 0);
        assert!(clk_tck() > 0.0);
    }
}
