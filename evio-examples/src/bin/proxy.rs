//! `proxy`: an L4 TCP proxy. Each client connection gets its own connection
//! to the backend, dialed into the same event loop; bytes are forwarded both
//! ways with backpressure, half-closes are forwarded (a FIN from one side
//! reaches the other after the bytes queued for it, and the other direction
//! stays open), and a side that fails or times out closes the other once its
//! pending bytes are delivered.
//!
//! ```text
//! proxy --port 7000 --backend 127.0.0.1:6379 --loops 2
//! redis-cli -p 7000 ping
//! ```

use std::process::ExitCode;

use evio_examples::cli::{self, Spec};
use evio_examples::proxy;

const SPEC: Spec = Spec {
    bin: "proxy",
    name: "proxy",
    default_port: 7000,
    udp: false,
    backend: true,
    idle_timeout: 60,
    header_timeout: None,
    connect_timeout: Some(5),
};

fn main() -> ExitCode {
    cli::main(&SPEC, |opts| {
        proxy::handler(opts.backend.expect("--backend is required by the parser"))
    })
}
