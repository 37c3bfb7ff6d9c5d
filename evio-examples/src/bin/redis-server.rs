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

use evio_examples::cli;
use evio_examples::redis::{self, Config, RedisServer};

fn main() -> ExitCode {
    cli::main(&redis::SPEC, |opts| {
        // The loop count decides the store: unshared for one loop, sharded
        // locks for several.
        Ok(RedisServer::new(Config {
            loops: opts.loops,
            ..Config::default()
        }))
    })
}
