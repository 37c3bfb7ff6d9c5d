//! Helpers of the evio-examples integration tests: the shared ones come
//! from `evio-test-support`; starting a handler in-process is this crate's.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use evio_core::{Builder, EventHandler, LoadBalance, ServerHandle};

pub use evio_test_support::*;

/// Starts `handler` on `127.0.0.1:0` with `loops` loops; returns the handle
/// and the bound address.
pub fn start<H>(handler: H, loops: isize) -> (ServerHandle<H::Context>, SocketAddr)
where
    H: EventHandler + Clone + Send + 'static,
{
    let server = Builder::new()
        .num_loops(loops)
        .load_balance(LoadBalance::RoundRobin)
        .start(handler, &["tcp://127.0.0.1:0"])
        .expect("server starts");
    let addr = inet(&server.addrs()[0]);
    (server, addr)
}

pub mod tls;
