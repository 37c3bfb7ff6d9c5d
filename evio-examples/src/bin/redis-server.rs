//! `redis-server`: a RESP2 key-value server (strings, TTLs, pipelining).
//!
//! ```text
//! redis-server --port 6380
//! redis-cli -p 6380 set hello world
//!
//! redis-server --port 6380 --tls-port 6381 --tls-cert cert.pem --tls-key key.pem
//! redis-cli --tls --cacert ca.pem -p 6381 ping
//! ```

use std::process::ExitCode;

use evio_examples::cli::{self, Spec};
use evio_examples::redis::{Config, RedisServer};

const SPEC: Spec = Spec {
    bin: "redis-server",
    name: "redis",
    default_port: 6380,
    udp: false,
    backend: false,
    idle_timeout: 300,
    header_timeout: None,
    connect_timeout: None,
    alpn: &[],
    extra: None,
};

fn main() -> ExitCode {
    cli::main(&SPEC, |opts| {
        // The loop count decides the store: unshared for one loop, sharded
        // locks for several.
        Ok(RedisServer::new(Config {
            loops: opts.loops,
            ..Config::default()
        }))
    })
}
