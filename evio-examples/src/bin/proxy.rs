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
//!
//! With `--tls-port N --tls-cert PATH --tls-key PATH` it also terminates TLS
//! in front of the backend (TLS clients, plain backend); with
//! `--backend-tls --backend-ca PATH [--backend-sni NAME]` it speaks TLS to
//! the backend. A client's `close_notify` is forwarded as a FIN, a
//! backend's FIN as `close_notify`.
//!
//! ```text
//! proxy --port 7000 --tls-port 7443 --tls-cert cert.pem --tls-key key.pem --backend 127.0.0.1:6379
//! redis-cli --tls --cacert ca.pem -p 7443 ping
//! proxy --port 7000 --backend 127.0.0.1:6380 --backend-tls --backend-ca ca.pem
//! ```

use std::process::ExitCode;

use evio_examples::cli;
use evio_examples::proxy;

fn main() -> ExitCode {
    cli::main(&proxy::SPEC, |opts| {
        let proxy = proxy::handler(opts.backend.expect("--backend is required by the parser"));
        Ok(match opts.backend_tls_config()? {
            Some((config, server_name)) => proxy.with_backend_tls(config, server_name),
            None => proxy,
        })
    })
}
