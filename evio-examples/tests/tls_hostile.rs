//! Hostile and broken TLS peers against the real binaries: garbage instead
//! of a ClientHello, a handshake a byte at a time, peers that close without
//! close_notify (after the handshake, in the middle of it), 1,000 garbage
//! connections with the server's RSS read before and after. Each time a
//! normal TLS client is served meanwhile, the server never dies, and its
//! descriptors come back. Also: the TLS flags' file errors (exit 1, naming
//! the file) and keys in the three PEM formats.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::tls::*;
use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

const ECHO: &str = env!("CARGO_BIN_EXE_echo-server");
const HTTP: &str = env!("CARGO_BIN_EXE_http-server");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// A normal client: handshake, a line echoed, close_notify both ways.
fn served(addr: SocketAddr, pki: &Pki) {
    let mut c = tls_connect(addr, &pki.client);
    c.write_all(b"still serving\n").unwrap();
    let mut got = [0; 14];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still serving\n");
    c.conn.send_close_notify();
    c.flush().unwrap();
    assert_eq!(read_to_close_notify(&mut c), b"");
}

/// The server's answer to `bytes` sent instead of a handshake: it closes,
/// with an alert record at most.
fn refused(addr: SocketAddr, bytes: &[u8]) {
    let mut s = connect(addr);
    // The server may close (and reset) before all of it is written.
    let _ = s.write_all(bytes);
    let got = read_to_close(&mut s);
    assert!(
        got.is_empty() || (got[0] == 0x15 && got.len() <= 7),
        "an alert at most, got {got:?}"
    );
}

fn garbage(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_instead_of_a_client_hello_closes_only_that_connection() {
    let pki = Pki::new();
    let (server, addr) = spawn_tls(ECHO, &pki, &[]);
    let base = open_fds(server.pid());
    // A client in the middle of its session all along.
    let mut long = tls_connect(addr, &pki.client);
    let cases: Vec<Vec<u8>> = vec![
        // Plain HTTP on the TLS port, the usual mistake.
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        garbage(1, 4096),
        garbage(2, 1),
        // A handshake record header claiming 64 KiB, then junk.
        [&[0x16, 0x03, 0x01, 0xff, 0xff][..], &garbage(3, 1000)].concat(),
        // An alert record, then an application-data record before any
        // handshake.
        vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        [&[0x17, 0x03, 0x03, 0x00, 0x10][..], &[0; 16]].concat(),
        // An SSLv2-style ClientHello.
        vec![
            0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
        ],
    ];
    for (i, bytes) in cases.iter().enumerate() {
        refused(addr, bytes);
        served(addr, &pki);
        long.write_all(format!("{i}\n").as_bytes()).unwrap();
        expect(&mut long, format!("{i}\n").as_bytes());
    }
    drop(long);
    wait_for("descriptors to come back", || {
        open_fds(server.pid()) == base
    });
}

fn client_config(
    pki: &Pki,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The client's side of a handshake written one byte per `write` (each its
/// own read on the server), for TLS 1.2 and 1.3; then the session works.
#[test]
fn a_handshake_a_byte_at_a_time_completes() {
    let pki = Pki::new();
    let (_server, addr) = spawn_tls(ECHO, &pki, &[]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_config(&pki, version);
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = ClientConnection::new(config, name).unwrap();
        let mut sock = connect(addr);
        let flush_bytewise = |tls: &mut ClientConnection, sock: &mut std::net::TcpStream| {
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out).unwrap();
            }
            write_bytewise(sock, &out);
        };
        loop {
            flush_bytewise(&mut tls, &mut sock);
            if !tls.is_handshaking() {
                break;
            }
            let n = tls.read_tls(&mut sock).unwrap();
            assert!(n > 0, "{version:?}: closed during the handshake");
            tls.process_new_packets().unwrap();
        }
        assert_eq!(tls.protocol_version(), Some(version.version));
        tls.writer().write_all(b"bytewise\n").unwrap();
        flush_bytewise(&mut tls, &mut sock);
        let mut c = rustls::StreamOwned::new(tls, sock);
        let mut got = [0; 9];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"bytewise\n", "{version:?}");
    }
    served(addr, &pki);
}

/// Peers that go away without close_notify: after the handshake (idle, or
/// with 256 KiB the server is echoing back), and in the middle of it. Each is
/// closed by the server (descriptors come back), which goes on serving.
#[test]
fn peers_closing_without_close_notify_are_cleaned_up() {
    let pki = Pki::new();
    let (server, addr) = spawn_tls(ECHO, &pki, &[]);
    let pid = server.pid();
    let base = open_fds(pid);
    for round in 0..20 {
        // After the handshake, with an echo done.
        let mut c = tls_connect(addr, &pki.client);
        c.write_all(b"x\n").unwrap();
        expect(&mut c, b"x\n");
        c.sock.shutdown(Shutdown::Both).unwrap();
        // With 256 KiB on its way back: the TCP close may come as a reset.
        let mut c = tls_connect(addr, &pki.client);
        c.write_all(&vec![b'y'; 256 << 10]).unwrap();
        drop(c);
        // In the middle of the handshake: a ClientHello, then gone.
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = ClientConnection::new(pki.client.clone(), name).unwrap();
        let mut s = connect(addr);
        let mut hello = Vec::new();
        tls.write_tls(&mut hello).unwrap();
        if round % 2 == 0 {
            hello.truncate(hello.len() / 2);
        }
        s.write_all(&hello).unwrap();
        drop(s);
    }
    served(addr, &pki);
    wait_for("descriptors to come back", || open_fds(pid) == base);
}

/// 1,000 connections sending garbage (50 at a time) against the HTTP
/// server's TLS port: each is refused, a normal client is served every
/// 100, and the server's RSS after is within 4 MiB of before (a leak of a
/// rustls session, a few KiB, per connection would pass that).
#[test]
fn a_thousand_garbage_connections_do_not_grow_rss() {
    let pki = Pki::new();
    let (server, addr) = spawn_tls(HTTP, &pki, &[]);
    let pid = server.pid();
    let base = open_fds(pid);
    let batch = |n: usize, seed: u32| {
        for round in 0..n / 50 {
            let threads: Vec<_> = (0..50)
                .map(|i| {
                    let bytes = garbage(seed + (round * 50 + i) as u32, 600);
                    thread::spawn(move || refused(addr, &bytes))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
    };
    // Warm up the allocator and the loop's buffers first.
    batch(200, 1);
    served_http(addr, &pki);
    let before = rss_kib(pid);
    for hundred in 0..10 {
        batch(100, 10_000 + hundred * 100);
        served_http(addr, &pki);
    }
    let after = rss_kib(pid);
    eprintln!("http-server RSS: {before} KiB before, {after} KiB after 1,000 garbage connections");
    assert!(
        after <= before + 4096,
        "RSS grew from {before} to {after} KiB"
    );
    wait_for("descriptors to come back", || open_fds(pid) == base);
}

fn served_http(addr: SocketAddr, pki: &Pki) {
    let mut c = tls_connect(addr, &pki.client);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = String::from_utf8(read_to_close_notify(&mut c)).unwrap();
    assert!(resp.ends_with("Hello World!\r\n"), "{resp}");
}

// ----- the TLS flags' files ----------------------------------------------------------

/// Runs `bin args` (which must exit at once); returns its status and stderr.
fn exits(bin: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let (status, _, err) = run_for(cmd, TIMEOUT, b"");
    (status, err)
}

#[test]
fn unreadable_or_invalid_pem_files_exit_1_naming_the_file() {
    let pki = Pki::new();
    let other = Pki::new();
    let scratch = TempDir::new("badpem");
    let dir = scratch.path();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let not_pem = write("not-pem.txt", "hello, I am not a certificate\n");
    let bad_b64 = write(
        "bad-base64.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let not_x509 = write(
        "not-x509.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    );
    let missing = dir.join("missing.pem").display().to_string();
    let a_dir = dir.display().to_string();
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let other_key = other.key.display().to_string();
    let cases: &[(&str, &str, &[&str])] = &[
        (&missing, &key, &[&missing, "No such file"]),
        (&a_dir, &key, &[&a_dir]),
        (&not_pem, &key, &[&not_pem, "no CERTIFICATE"]),
        (&bad_b64, &key, &[&bad_b64]),
        (&not_x509, &key, &[&not_x509]),
        (&cert, &missing, &[&missing, "private key"]),
        // A certificate where the key should be.
        (&cert, &cert, &[&cert, "no PRIVATE KEY"]),
        // Another certificate's key.
        (&cert, &other_key, &[&cert, &other_key]),
    ];
    for bin in [ECHO, HTTP] {
        for (c, k, want) in cases {
            let (status, err) = exits(
                bin,
                &[
                    "--port",
                    "0",
                    "--tls-port",
                    "0",
                    "--tls-cert",
                    c,
                    "--tls-key",
                    k,
                ],
            );
            assert_eq!(status, Some(1), "{c} {k}: {err}");
            for w in *want {
                assert!(err.contains(w), "{c} {k}: wanted {w:?} in {err}");
            }
            assert!(!err.contains("usage:"), "{err}");
        }
    }
    // The proxy's CA file.
    let (status, err) = exits(
        PROXY,
        &[
            "--port",
            "0",
            "--backend",
            "127.0.0.1:1",
            "--backend-tls",
            "--backend-ca",
            &not_pem,
        ],
    );
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains(&not_pem), "{err}");
    // Flags that do not go together are usage errors (2), before any file
    // is read.
    for args in [
        &["--tls-port", "0", "--tls-cert", &missing][..],
        &["--tls-key", &key],
        &["--tls-versions", "1.3"],
    ] {
        let (status, err) = exits(ECHO, args);
        assert_eq!(status, Some(2), "{args:?}: {err}");
        assert!(err.contains("usage:"), "{err}");
    }
}

/// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys, made with
/// the openssl tool, load as PKCS#8 ones do.
#[test]
fn sec1_and_pkcs1_keys_are_accepted() {
    if skip_without("openssl") {
        return;
    }
    let pki = Pki::new();
    let openssl = |args: &[&str]| {
        let (status, out, err) = run_for(
            {
                let mut c = Command::new("openssl");
                c.args(args);
                c
            },
            Duration::from_secs(60),
            b"",
        );
        assert_eq!(status, Some(0), "openssl {args:?}: {out}{err}");
    };
    // The test key (PKCS#8) rewritten as SEC1.
    let sec1 = pki.dir.join("sec1.pem");
    openssl(&[
        "pkey",
        "-traditional",
        "-in",
        pki.key.to_str().unwrap(),
        "-out",
        sec1.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let cert = pki.cert.display().to_string();
    let server = spawn(
        ECHO,
        &[
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-cert",
            &cert,
            "--tls-key",
            sec1.to_str().unwrap(),
        ],
    );
    served(([127, 0, 0, 1], tls_port(&server)).into(), &pki);

    // An RSA key in PKCS#1 and a self-signed certificate for it.
    let rsa = pki.dir.join("rsa.pem");
    let rsa_cert = pki.dir.join("rsa-cert.pem");
    openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        rsa.to_str().unwrap(),
        "2048",
    ]);
    assert!(std::fs::read_to_string(&rsa)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        rsa.to_str().unwrap(),
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-days",
        "1",
        "-out",
        rsa_cert.to_str().unwrap(),
    ]);
    let server = spawn(
        HTTP,
        &[
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-cert",
            rsa_cert.to_str().unwrap(),
            "--tls-key",
            rsa.to_str().unwrap(),
        ],
    );
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-tls1_2",
        "-ign_eof",
        "-verify_return_error",
        "-CAfile",
    ])
    .arg(&rsa_cert)
    .args(["-connect", &format!("127.0.0.1:{}", tls_port(&server))]);
    let (status, out, err) = run_for(
        cmd,
        Duration::from_secs(20),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.contains("Cipher is ECDHE-RSA-"), "{out}");
    assert!(out.contains("Hello World!"), "{out}");
}
