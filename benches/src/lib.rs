//! Benchmarks of evio: a load generator, peer servers and the runner.
//!
//! This crate deliberately does not depend on `evio-core`: the load generator
//! must not share a bug with the server under test. Everything here is plain
//! `std` + `nix`'s safe system-call wrappers (plus tokio and mio for the two
//! peer echo servers): like everything outside `evio-sys`, it makes no raw
//! system calls of its own.
//!
//! The binaries:
//! * `loadgen` — single-threaded epoll echo client (closed loop or stream),
//!   verifying every byte echoed back;
//! * `tokio-echo`, `mio-echo` — the peer echo servers of the echo race;
//! * `floor-server` — the hand-written epoll reference (echo, Redis PING,
//!   HTTP): the least work and the fewest system calls per request;
//! * `bench` — the runner that pins, alternates, measures and reports.
//!
//! The modules below hold the pieces that the binaries share and that the
//! unit tests can check without a network.

pub mod args;
pub mod floor;
pub mod parse;
pub mod pattern;
pub mod procfs;
pub mod stats;
pub mod svg;
