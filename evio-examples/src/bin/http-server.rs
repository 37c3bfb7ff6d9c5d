//! `http-server`: HTTP/1.1 with keep-alive and pipelining; `GET /` answers
//! `Hello World!`.
//!
//! ```text
//! http-server --port 8080 --loops -1
//! curl -v http://localhost:8080/
//!
//! http-server --port 8080 --tls-port 8443 --tls-cert cert.pem --tls-key key.pem
//! curl --cacert ca.pem https://localhost:8443/
//! ```
//!
//! The TLS port advertises ALPN `http/1.1`.

use std::process::ExitCode;

use evio_examples::cli;
use evio_examples::http::{self, Config, HttpServer};

fn main() -> ExitCode {
    cli::main(&http::SPEC, |opts| {
        Ok(HttpServer::new(Config {
            header_timeout: opts.header_timeout,
            ..Config::default()
        }))
    })
}
