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
//! - [`cli`]: the flags they all share, and the run-until-signal loop.
//!
//! Engines write their replies to a [`Sink`]: a [`Conn`] in the servers, a
//! `Vec<u8>` in tests, fuzzers and benchmarks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use evio_core::Conn;

pub mod cli;
pub mod echo;
pub mod http;
pub mod proxy;
pub mod redis;
pub mod resp;
pub mod store;

/// Where an engine writes its output.
pub trait Sink {
    /// Appends `data` to the output.
    fn write(&mut self, data: &[u8]);
}

impl Sink for Vec<u8> {
    fn write(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

impl<C> Sink for Conn<'_, C> {
    fn write(&mut self, data: &[u8]) {
        // The inherent `Conn::write`: queue the bytes for the socket.
        Conn::write(self, data);
    }
}
