//! TLS helpers of the evio-examples integration tests: the example
//! binaries' TLS port; certificates and clients come from
//! `evio-test-support`.

use std::net::SocketAddr;

pub use evio_test_support::{
    client_config, read_to_close_notify, read_to_end_tls, real_redis_tls, run_for, tls_connect,
    Bin, Pki, TlsClient as Client,
};

use super::spawn;

/// The TLS port in a binary's startup line (`... and TLS port N`).
pub fn tls_port(bin: &Bin) -> u16 {
    bin.tls_port()
}

/// Starts `bin` with `--port 0`, the TLS flags of `pki` and `args`;
/// returns it and its TLS address.
pub fn spawn_tls(bin: &str, pki: &Pki, args: &[&str]) -> (Bin, SocketAddr) {
    let mut all: Vec<String> = vec!["--port".into(), "0".into()];
    all.extend(pki.flags());
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let b = spawn(bin, &all);
    let addr = ([127, 0, 0, 1], tls_port(&b)).into();
    (b, addr)
}
