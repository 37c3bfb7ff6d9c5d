//! The example servers of evio-rs, as a library.
//!
//! Each binary in `src/bin/` is a thin `main` over a module here, so the
//! protocol code can be unit-tested, fuzzed and benchmarked without sockets:
//!
//! - [`echo`]: echoes every byte (TCP, UDP, unix).
//! - [`http`]: a keep-alive, pipelining HTTP/1.1 "Hello World!" server.
//! - [`redis`]: a RESP2 key-value server; [`resp`] parses the protocol and
//!   [`store`] keeps the data.
//! - [`proxy`]: an L4 TCP proxy, both directions forwarded inside one loop.
//! - [`http_proxy`]: an HTTP/1.1 reverse proxy with per-loop upstream
//!   pools, streaming bodies, retries and health checks.
//! - [`cli`]: the flags they all share, and the run-until-signal loop.
//! - [`tls`]: the rustls configs behind the `--tls-*` flags (every binary
//!   also serves TLS with `--tls-port`; the proxy dials TLS backends).
//!
//! Engines write their replies to a [`Sink`]: in the servers a [`Writer`],
//! the connection's output borrowed beside its context (the engine's
//! session) with [`Conn::split`]; a `Vec<u8>` in tests, fuzzers and
//! benchmarks. A sink also tells how much output is queued
//! ([`Sink::output_len`]), so that an engine stops executing pipelined
//! requests while a client is not reading its replies (see
//! [`redis::Engine::feed`] and [`http::Engine::feed`]).
//!
//! [`held`] is how the HTTP and Redis servers hold requests while a client
//! does not read its replies. The binaries log with `tracing` to stderr
//! ([`cli`]: `--log-level`, `RUST_LOG`); repeated warnings go through
//! [`evio_core::RateLimited`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use evio_core::{Conn, Writer};

pub mod cli;
pub mod drain;
pub mod echo;
pub mod held;
pub mod http;
pub mod http_proxy;
pub mod metrics;
pub mod proxy;
pub mod redis;
pub mod resp;
pub mod store;
pub mod tls;

/// Where an engine writes its output.
pub trait Sink {
    /// Appends `data` to the output.
    fn write(&mut self, data: &[u8]);

    /// Bytes queued and not yet written to the peer. Engines stop executing
    /// pipelined requests while this is above their output high-water mark.
    fn output_len(&self) -> usize;
}

/// A `Vec` is output that is never written anywhere: everything appended
/// stays queued, so [`output_len`](Sink::output_len) is its length (clear
/// it to simulate the peer reading).
impl Sink for Vec<u8> {
    fn write(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }

    fn output_len(&self) -> usize {
        self.len()
    }
}

/// The servers' sink: a connection's output, borrowed apart from its
/// context (the engine's session) with [`Conn::split`].
impl Sink for Writer<'_> {
    fn write(&mut self, data: &[u8]) {
        // The inherent `Writer::write`: queue the bytes for the socket.
        Writer::write(self, data);
    }

    fn output_len(&self) -> usize {
        Writer::output_len(self)
    }
}

/// A whole connection as a sink, for handlers that keep their state
/// elsewhere than in the connection's context.
impl<C> Sink for Conn<'_, C> {
    fn write(&mut self, data: &[u8]) {
        // The inherent `Conn::write`: queue the bytes for the socket.
        Conn::write(self, data);
    }

    fn output_len(&self) -> usize {
        Conn::output_len(self)
    }
}
