//! `loadgen --tls` against a small rustls echo server of this test (a
//! thread per connection): every load shape comes back verified, a wrong
//! certificate or name is refused, a corrupted byte inside the session is
//! caught. No wall-clock figure is asserted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Removes the test's directory, pass or fail.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` written to `dir/name.pem`,
/// and a server config (TLS 1.3 only) with it.
fn certificate(dir: &Path, name: &str) -> (PathBuf, Arc<ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ck.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(ck.cert.der().to_vec())], key)
        .unwrap();
    (path, Arc::new(config))
}

/// Echoes over TLS on a free port, one thread per connection; `corrupt`
/// flips the byte at stream offset 1000 of every connection.
fn tls_echo(config: Arc<ServerConfig>, corrupt: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let config = config.clone();
            thread::spawn(move || {
                let _ = sock.set_nodelay(true);
                let conn = ServerConnection::new(config).unwrap();
                let mut s = StreamOwned::new(conn, sock);
                let mut buf = vec![0u8; 1 << 16];
                let mut offset = 0u64;
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if corrupt && offset <= 1000 && 1000 < offset + n as u64 {
                        buf[(1000 - offset) as usize] ^= 0x20;
                    }
                    offset += n as u64;
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn loadgen(port: u16, extra: &[&str]) -> (Output, Option<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--duration", "0.3", "--warmup", "0.05"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap());
    (out, json)
}

fn scratch(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("evio-loadgen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

#[test]
fn every_shape_over_tls_comes_back_verified() {
    let dir = scratch("tls");
    let (ca, config) = certificate(&dir.0, "cert");
    let port = tls_echo(config, false);
    let ca = ca.to_str().unwrap();
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
    let dir = scratch("tls-refuse");
    let (ca, config) = certificate(&dir.0, "cert");
    let (other, _) = certificate(&dir.0, "other");
    let port = tls_echo(config, false);
    let (ca, other) = (ca.to_str().unwrap(), other.to_str().unwrap());
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
    let dir = scratch("tls-flip");
    let (ca, config) = certificate(&dir.0, "cert");
    let port = tls_echo(config, true);
    let args = ["--conns", "2", "--size", "64", "--tls", "--ca"];
    let (out, j) = loadgen(port, &[&args[..], &[ca.to_str().unwrap()]].concat());
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock): Result<TcpStream, _> = sock else {
                return;
            };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = sock.read(&mut buf) {
                    if sock.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (out, j) = loadgen(port, &["--conns", "2"]);
    assert!(out.status.success());
    assert_eq!(j.unwrap()["tls"], false);
}
