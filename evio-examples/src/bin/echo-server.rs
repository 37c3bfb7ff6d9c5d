//! `echo-server`: echoes every byte back (TCP, or UDP with `--udp`, and a
//! unix socket with `--unix PATH`).
//!
//! ```text
//! echo-server --port 5000
//! nc localhost 5000
//!
//! echo-server --port 5000 --tls-port 5443 --tls-cert cert.pem --tls-key key.pem
//! openssl s_client -connect localhost:5443 -CAfile ca.pem
//! ```

use std::process::ExitCode;

use evio_examples::cli::{self, Spec};
use evio_examples::echo::Echo;

const SPEC: Spec = Spec {
    bin: "echo-server",
    name: "echo",
    default_port: 5000,
    udp: true,
    backend: false,
    idle_timeout: 60,
    header_timeout: None,
    connect_timeout: None,
    alpn: &[],
    extra: None,
};

fn main() -> ExitCode {
    cli::main(&SPEC, |_| Ok(Echo))
}
