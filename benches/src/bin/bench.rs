//! `bench`: the benchmark runner of evio (see docs/benchmarks.md).
//!
//! For each workload it starts each server pinned to core 0 and the load
//! tool pinned to core 1, alternates the servers (A B A B …) for `--rounds`
//! rounds, and reports the medians of requests/s, server CPU per request
//! (utime + stime from /proc, over the measured interval, divided by the
//! requests done), latency and peak RSS; with `--strace`, one more round per
//! server under `strace -c -f` gives system calls per request.
//!
//! It builds nothing: run `cargo build --release --workspace` first. The
//! pieces live in `evio_benches::runner`; this is only the sequence.
//!
//! Linux only (/proc, sched_setaffinity, epoll): elsewhere it says so and exits with status 1.

#[cfg(target_os = "linux")]
#[path = "bench/linux.rs"]
mod linux;

evio_benches::linux_main!("bench", "/proc, sched_setaffinity, epoll");
