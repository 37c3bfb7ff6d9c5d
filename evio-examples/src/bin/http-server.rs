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
    idle_timeout: 75,
    header_timeout: Some(60),
    connect_timeout: None,
};

fn main() -> ExitCode {
    cli::main(&SPEC, |opts| {
        HttpServer::new(Config {
            header_timeout: opts.header_timeout,
            ..Config::default()
        })
    })
}
