//! Reading a process's CPU time and memory from `/proc`.
//!
//! Server CPU per request is `utime + stime` (from `/proc/PID/stat`, in clock
//! ticks, converted with `sysconf(_SC_CLK_TCK)`) taken before and after the
//! measured interval, summed over the server's process tree (nginx runs a
//! master and a worker), divided by the requests done in that interval.

use std::collections::HashMap;
use std::fs;

use nix::unistd::{sysconf, SysconfVar};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
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
pub fn tree_cpu_ticks(pid: i32) -> CpuTicks {
    tree(pid)
        .into_iter()
        .filter_map(stat)
        .fold(CpuTicks::default(), |t, s| CpuTicks {
            user: t.user + s.utime,
            sys: t.sys + s.stime,
        })
}

/// User and system CPU time of a process tree, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// `utime`: time in the process's own code.
    pub user: u64,
    /// `stime`: time in the kernel on its behalf (system calls, and the
    /// network stack work they do).
    pub sys: u64,
}

impl CpuTicks {
    /// `user + sys`.
    pub fn total(self) -> u64 {
        self.user + self.sys
    }

    /// `self - earlier`, per field (saturating).
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
        }
    }
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

/// The hexadecimal signal mask of a `Sig*:` line (`SigIgn`, `SigBlk`) of a
/// `/proc/PID/status` text: bit `n - 1` stands for signal `n`.
pub fn parse_sig_mask(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The signals this process ignores (`SigIgn` of `/proc/self/status`);
/// 0 when it cannot be read.
pub fn ignored_signals() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_sig_mask(&t, "SigIgn"))
        .unwrap_or(0)
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
    fn parses_sig_mask() {
        let text = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000006\n";
        let ign = parse_sig_mask(text, "SigIgn").unwrap();
        // SIGINT (2) and SIGQUIT (3).
        assert_eq!(ign, (1 << 1) | (1 << 2));
        assert_eq!(parse_sig_mask(text, "SigBlk"), Some(0));
        assert_eq!(parse_sig_mask(text, "SigCgt"), None);
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
