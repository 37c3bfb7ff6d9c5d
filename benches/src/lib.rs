//! Benchmarks of evio: a load generator, peer servers and the runner.
//!
//! This crate deliberately does not depend on `evio-core`: the load generator
//! must not share a bug with the server under test. Everything here is plain
//! `std` + `nix`'s safe system-call wrappers (plus tokio and mio for the two
//! peer echo servers, rustls for the TLS loads, and `evio-sys`, the OS
//! layer, for raising the fd limit): like everything outside `evio-sys`, it makes no raw system calls
//! of its own.
//!
//! The binaries:
//! * `loadgen` — epoll echo client (closed loop, stream, or churn: a new
//!   connection per message; one or more threads; plain or, with `--tls`,
//!   over a verified TLS session per connection), verifying every byte
//!   echoed back;
//! * `tokio-echo`, `mio-echo` — the peer echo servers of the echo race
//!   (`tokio-echo --threads N` for the scaling workload);
//! * `floor-server` — the hand-written epoll reference (echo, Redis PING,
//!   HTTP): the least work and the fewest system calls per request;
//! * `bench` — the runner that pins, alternates, measures and reports (its
//!   pieces are in [`runner`]).
//!
//! The modules below hold the pieces that the binaries share and that the
//! unit tests can check without a network.
//!
//! The kit runs on Linux (epoll, /proc, CPU affinity; ring's C code for
//! TLS). Elsewhere (macOS, the BSDs) the crate type-checks with the
//! portable pieces only: `procfs`, `runner` and `tls` are left out,
//! `tokio-echo`, `mio-echo`, `soak-client` and `bench-compare` build, and
//! `loadgen`, `floor-server` and `bench` say "linux only".

#![warn(missing_docs)]

pub mod cli;
pub mod floor;
pub mod parse;
pub mod pattern;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod runner;
pub mod stats;
pub mod svg;
#[cfg(target_os = "linux")]
pub mod tls;
