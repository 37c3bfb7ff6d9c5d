//! `loadgen --tls` against a small rustls echo server of this test (a
//! thread per connection): every load shape comes back verified, a wrong
//! certificate or name is refused, a corrupted byte inside the session is
//! caught. No wall-clock figure is asserted.

mod common;

use std::sync::Arc;

use common::{echo_through, loadgen, serve, Pki};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A throwaway CA and certificate (TLS 1.3 only): the CA file for
/// `loadgen --ca`, and the server side.
fn certificate() -> Pki {
    Pki::with(&[&rustls::version::TLS13], &[])
}

/// Echoes over TLS on a free port, one thread per connection; `corrupt`
/// flips the byte at stream offset 1000 of every connection.
fn tls_echo(config: Arc<ServerConfig>, corrupt: bool) -> u16 {
    serve(move |sock| {
        let _ = sock.set_nodelay(true);
        let conn = ServerConnection::new(config.clone()).unwrap();
        echo_through(StreamOwned::new(conn, sock), |v, offset| {
            if corrupt && offset <= 1000 && 1000 < offset + v.len() as u64 {
                v[(1000 - offset) as usize] ^= 0x20;
            }
        });
    })
}

#[test]
fn every_shape_over_tls_comes_back_verified() {
    let pki = certificate();
    let port = tls_echo(pki.server.clone(), false);
    let ca = pki.ca.to_str().unwrap();
    for shape in [
        &["--conns", "8", "--size", "64", "--depth", "1"][..],
        &["--conns", "8", "--size", "6", "--depth", "16"][..],
        &["--conns", "2", "--size", "30000", "--depth", "3"][..],
        &["--conns", "4", "--size", "6", "--stream"][..],
    ] {
        let (out, j) = loadgen(port, &[shape, &["--tls", "--ca", ca]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{shape:?}: {stderr}");
        let j = j.unwrap();
        assert_eq!(j["tls"], true);
        assert!(j["messages"].as_u64().unwrap() > 0, "{j}");
        assert_eq!(j["verify_errors"], 0, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
        assert!(stderr.contains("over TLS"), "{stderr}");
    }
}

#[test]
fn refuses_a_certificate_it_cannot_verify() {
    let pki = certificate();
    let other = certificate();
    let port = tls_echo(pki.server.clone(), false);
    let (ca, other) = (pki.ca.to_str().unwrap(), other.ca.to_str().unwrap());
    for args in [
        &["--tls", "--ca", other][..],
        &["--tls", "--ca", ca, "--sni", "example.org"][..],
    ] {
        let (out, j) = loadgen(port, &[&["--conns", "2"], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(j.is_none());
        assert!(stderr.contains("TLS handshake"), "{stderr}");
        assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    }
}

#[test]
fn catches_a_flipped_byte_inside_the_session() {
    let pki = certificate();
    let port = tls_echo(pki.server.clone(), true);
    let args = ["--conns", "2", "--size", "64", "--tls", "--ca"];
    let (out, j) = loadgen(port, &[&args[..], &[pki.ca.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(j.unwrap()["verify_errors"].as_u64().unwrap() >= 1);
}

#[test]
fn tls_flags_are_checked() {
    for (args, want) in [
        (&["--tls"][..], "--tls needs --ca"),
        (&["--ca", "/nonexistent.pem"][..], "--ca is for --tls"),
        (
            &["--tls", "--ca", "/nonexistent.pem"][..],
            "/nonexistent.pem",
        ),
        (
            &["--tls", "--ca", "/nonexistent.pem", "--churn"][..],
            "not --churn",
        ),
    ] {
        let (out, _) = loadgen(9, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn a_plain_run_says_so() {
    // The plain path through `Stream` is unchanged: a tiny plain echo.
    let port = serve(|sock| echo_through(sock, |_, _| {}));
    let (out, j) = loadgen(port, &["--conns", "2"]);
    assert!(out.status.success());
    assert_eq!(j.unwrap()["tls"], false);
}
