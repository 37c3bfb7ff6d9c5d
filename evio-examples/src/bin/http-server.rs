//! `http-server`: HTTP/1.1 with keep-alive and pipelining; `GET /` answers
//! `Hello World!`.
//!
//! ```text
//! http-server --port 8080 --loops -1
//! curl -v http://localhost:8080/
//! ```

use std::process::ExitCode;

use evio_examples::cli::{self, Spec};
use evio_examples::http::{Config, HttpServer};

const SPEC: Spec = Spec {
    bin: "http-server",
    name: "http",
    default_port: 8080,
    udp: false,
    backend: false,
};

fn main() -> ExitCode {
    cli::main(&SPEC, |_| HttpServer::new(Config::default()))
}
