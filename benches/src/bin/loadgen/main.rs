//! `loadgen`: a single-threaded, epoll-driven echo load generator.
//!
//! Built on `std` + `nix` only (not on evio-core), so that it cannot share a
//! bug with the server under test. Every byte that comes back is checked
//! against what the connection sent (see `evio_benches::pattern`).
//!
//! Closed loop (default): each connection keeps `--depth` messages of
//! `--size` bytes in flight; when one has fully come back, the next is sent.
//! Stream (`--stream`, like tcpkali): each connection sends a continuous
//! stream of `--size`-byte messages (at most `--window` bytes outstanding)
//! and counts and checks the bytes echoed back.
//!
//! Churn (`--churn`): each of `--conns` concurrent clients connects, sends
//! one `--size`-byte message, reads it back (verified), closes, and starts
//! over: a new connection per request. The rate is connections per second,
//! the latency is from `connect` to the last byte back.
//!
//! `--threads N` splits the connections (or clients) over N threads, each
//! with its own epoll, for servers with more than one core.
//!
//! TLS (`--tls --ca PATH [--sni NAME]`, closed loop and stream): each
//! connection runs one full handshake (rustls with ring, verifying the
//! server's certificate against the PEM file `PATH` for `NAME`, default
//! `localhost`; no session resumption) before the load starts, then sends
//! and checks the same byte stream as plaintext inside the session.
//!
//! Output: one JSON line on stdout, a human line on stderr. With `--marks`,
//! the lines `#start` and `#end` are printed on stdout when the measured
//! interval starts and ends (the runner samples server CPU on them).
//! Exit status 1 when any byte came back wrong or no message completed.
//!
//! Linux only (epoll): elsewhere it says so and exits with status 1.

#[cfg(target_os = "linux")]
mod churn;
#[cfg(target_os = "linux")]
mod closed;
#[cfg(target_os = "linux")]
mod common;
#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
use linux::Opts;

evio_benches::linux_main!("loadgen", "epoll");
