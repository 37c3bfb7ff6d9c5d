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

use evio_examples::cli;
use evio_examples::echo::{self, Echo};

fn main() -> ExitCode {
    cli::main(&echo::SPEC, |_| Ok(Echo))
}
