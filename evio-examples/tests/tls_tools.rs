//! The binaries' TLS ports with real clients: curl (keep-alive, ALPN,
//! `Expect: 100-continue`), wrk over https, openssl s_client (TLS 1.2 and
//! 1.3, pinned suites and versions, a wrong SNI, a stalled handshake),
//! redis-cli and redis-benchmark with `--tls` (byte-identical to a real
//! redis-server with `--tls-port`). Each test is skipped, with a message,
//! when its tool is missing; each is bounded in time.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::tls::*;
use common::*;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

const HTTP: &str = env!("CARGO_BIN_EXE_http-server");
const REDIS: &str = env!("CARGO_BIN_EXE_redis-server");

const LIMIT: Duration = Duration::from_secs(20);

/// `None` (the test is skipped, with a message) without `tool`; else fresh
/// certificates and `bin` serving TLS with them and `args`.
fn serving(tool: &str, bin: &str, args: &[&str]) -> Option<(Pki, Bin, SocketAddr)> {
    if skip_without(tool) {
        return None;
    }
    let pki = Pki::new();
    let (server, addr) = spawn_tls(bin, &pki, args);
    Some((pki, server, addr))
}

/// `curl` resolving `localhost` to 127.0.0.1, trusting the test CA.
fn curl(pki: &Pki, port: u16) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&pki.ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
    c
}

#[test]
fn curl_https_keep_alive_alpn_http11() {
    let Some((pki, _server, addr)) = serving("curl", HTTP, &[]) else {
        return;
    };
    let url = format!("https://localhost:{}/", addr.port());
    // Two requests on one curl: the second must reuse the connection.
    let mut cmd = curl(&pki, addr.port());
    cmd.args([
        "-v",
        "-w",
        "[%{num_connects} %{http_version} %{http_code}]\n",
    ])
    .args([&url, &url]);
    let (status, out, err) = run_for(cmd, LIMIT, b"");
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(
        out, "Hello World!\r\n[1 1.1 200]\nHello World!\r\n[0 1.1 200]\n",
        "{err}"
    );
    // curl offers h2 and http/1.1; the server accepts http/1.1.
    assert!(err.contains("ALPN: offers h2,http/1.1"), "{err}");
    assert!(err.contains("ALPN: server accepted http/1.1"), "{err}");
    assert!(err.contains("SSL certificate verify ok"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");
    assert_eq!(err.matches("SSL connection using").count(), 1, "{err}");
}

#[test]
fn curl_https_expect_100_continue() {
    let Some((pki, _server, addr)) = serving("curl", HTTP, &[]) else {
        return;
    };
    let body = pki.dir.join("body.bin");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let url = format!("https://localhost:{}/", addr.port());
    let mut cmd = curl(&pki, addr.port());
    cmd.args(["-v", "--http1.1", "-H", "Expect: 100-continue"])
        .args(["--expect100-timeout", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{size_upload}\n", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(&url);
    let (status, out, err) = run_for(cmd, LIMIT, b"");
    assert_eq!(status, Some(0), "{err}");
    // 100 Continue at once (curl would wait 10 s for it otherwise), then
    // the body, then the final status: POST / is 405 here.
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
    assert_eq!(out, "405 100000\n", "{err}");
}

#[test]
fn wrk_https_two_seconds_no_errors() {
    let Some((_pki, _server, addr)) = serving("wrk", HTTP, &["--loops", "2"]) else {
        return;
    };
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", "-d2s", "--timeout", "5s"])
        .arg(format!("https://127.0.0.1:{}/", addr.port()));
    let (status, out, err) = run_for(cmd, LIMIT, b"");
    assert_eq!(status, Some(0), "{out}{err}");
    let requests: u64 = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count: {out}"));
    assert!(requests > 0, "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
}

/// `openssl s_client` against `addr` with `args`, sending an HTTP request
/// that closes the connection.
fn s_client(pki: &Pki, addr: SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(&pki.ca)
        .args(["-ign_eof"])
        .args(args);
    run_for(
        cmd,
        LIMIT,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn s_client_tls12_and_tls13_handshake_and_request() {
    let Some((pki, _server, addr)) = serving("openssl", HTTP, &[]) else {
        return;
    };
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (status, out, err) = s_client(
            &pki,
            addr,
            &[
                flag,
                "-servername",
                "localhost",
                "-verify_hostname",
                "localhost",
                "-verify_return_error",
            ],
        );
        assert_eq!(status, Some(0), "{flag}: {out}{err}");
        assert!(out.contains(&format!("New, {version}, Cipher is")), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Hello World!"), "{out}");
    }
}

#[test]
fn s_client_sees_pinned_suites_and_versions() {
    if skip_without("openssl") {
        return;
    }
    let pki = Pki::new();
    // TLS 1.3 only, one suite.
    let (_s13, addr) = spawn_tls(
        HTTP,
        &pki,
        &[
            "--tls-versions",
            "1.3",
            "--tls-cipher-suites",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ],
    );
    let (status, out, err) = s_client(&pki, addr, &["-tls1_3"]);
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(
        out.contains("New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256"),
        "{out}"
    );
    let (status, out, err) = s_client(&pki, addr, &["-tls1_2"]);
    assert_ne!(status, Some(0), "TLS 1.2 refused: {out}{err}");
    assert!(!out.contains("Hello World!"), "{out}");
    // TLS 1.2 only, one suite (ECDSA: the test key is EC).
    let (_s12, addr) = spawn_tls(
        HTTP,
        &pki,
        &[
            "--tls-versions=1.2",
            "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
    );
    let (status, out, err) = s_client(&pki, addr, &[]);
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(
        out.contains("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{out}"
    );
    assert!(out.contains("Hello World!"), "{out}");
    let (status, out, _) = s_client(&pki, addr, &["-tls1_3"]);
    assert_ne!(status, Some(0), "TLS 1.3 refused: {out}");
}

/// The server has one certificate: rustls with a single certificate
/// ignores the SNI, so a client asking for another name (or none) still
/// completes the handshake with the `localhost` certificate and is served;
/// a client that checks the name rejects it.
#[test]
fn s_client_wrong_sni_gets_the_one_certificate() {
    let Some((pki, _server, addr)) = serving("openssl", HTTP, &[]) else {
        return;
    };
    for sni in [&["-servername", "other.example"][..], &["-noservername"]] {
        let (status, out, err) = s_client(&pki, addr, sni);
        assert_eq!(status, Some(0), "{sni:?}: {out}{err}");
        assert!(out.contains("CN = localhost"), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains("Hello World!"), "{out}");
    }
    let (status, out, err) = s_client(
        &pki,
        addr,
        &[
            "-servername",
            "other.example",
            "-verify_hostname",
            "other.example",
            "-verify_return_error",
        ],
    );
    assert_ne!(status, Some(0), "{out}{err}");
    assert!(
        format!("{out}{err}").contains("hostname mismatch"),
        "{out}{err}"
    );
    assert!(!out.contains("Hello World!"), "{out}");
}

/// The first half of a real ClientHello.
fn half_client_hello(pki: &Pki) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(pki.client.clone(), name).unwrap();
    let mut hello = Vec::new();
    c.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100 && hello[0] == 0x16, "a handshake record");
    hello.truncate(hello.len() / 2);
    hello
}

/// A client that stops in the middle of its ClientHello is closed by the
/// handshake timeout (1 s here), and clients are served meanwhile.
#[test]
fn stalled_handshake_is_cut_by_the_timeout_while_others_are_served() {
    let pki = Pki::new();
    let (_server, addr) = spawn_tls(HTTP, &pki, &["--tls-handshake-timeout", "1"]);
    let mut stalled: Vec<_> = (0..3)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&half_client_hello(&pki)).unwrap();
            s
        })
        .collect();
    // Still open while the handshake may go on.
    for s in &mut stalled {
        assert_open(s);
    }
    // Served while they stall: a rustls client, and s_client if present.
    let mut c = tls_connect(addr, &pki.client);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = String::from_utf8(read_to_close_notify(&mut c)).unwrap();
    assert!(resp.ends_with("Hello World!\r\n"), "{resp}");
    if have("openssl") {
        let (status, out, err) = s_client(&pki, addr, &["-tls1_3"]);
        assert_eq!(status, Some(0), "{out}{err}");
        assert!(out.contains("Hello World!"), "{out}");
    }
    for s in &mut stalled {
        // Closed well before the default timeout (10 s), with no response
        // (the handshake never finished) or an alert at most.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let got = read_to_close(s);
        assert!(
            got.is_empty() || got[0] == 0x15,
            "an alert at most: {got:?}"
        );
    }
}

/// The same commands through redis-cli --tls to our server and to a real
/// redis-server with --tls-port: the same output; and the same bytes on
/// the wire from a rustls client.
#[test]
fn redis_cli_tls_is_byte_identical_to_real_redis() {
    if skip_without("redis-cli") {
        return;
    }
    let pki = Pki::new();
    let Some(real) = real_redis_tls(&pki) else {
        return;
    };
    let (_ours, ours) = spawn_tls(REDIS, &pki, &[]);
    let commands: &[&[&str]] = &[
        &["PING"],
        &["SET", "greeting", "hello world"],
        &["GET", "greeting"],
        &["GET", "missing"],
        &["PING", "with an argument"],
        &["SET", "n", "41"],
        &["INCR", "n"],
    ];
    let cli = |addr: SocketAddr, args: &[&str]| {
        let (out, err) = redis_cli_tls(&pki, addr, args, LIMIT);
        assert!(err.is_empty(), "{args:?}: {err}");
        out
    };
    for args in commands {
        assert_eq!(cli(ours, args), cli(real.addr, args), "{args:?}");
    }
    assert_eq!(cli(ours, &["GET", "greeting"]), "hello world\n");

    // The raw replies, pipelined, ending with a marker.
    let wire = |addr: SocketAddr| {
        let mut c = tls_connect(addr, &pki.client);
        c.write_all(
            b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\x00\xff\r\nGET k\r\nGET nope\r\n\
              *2\r\n$4\r\nPING\r\n$2\r\nhi\r\nDEL k nope\r\nECHO end-marker\r\n",
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0; 4096];
        while !got.ends_with(b"$10\r\nend-marker\r\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let theirs = wire(real.addr);
    assert_eq!(
        String::from_utf8_lossy(&wire(ours)),
        String::from_utf8_lossy(&theirs)
    );
    assert!(theirs.starts_with(b"+PONG\r\n+OK\r\n$3\r\nv\x00\xff\r\n$-1\r\n"));
}

#[test]
fn redis_benchmark_tls_pipelined_and_not() {
    let Some((pki, _ours, addr)) = serving("redis-benchmark", REDIS, &[]) else {
        return;
    };
    for pipeline in ["1", "16"] {
        let mut cmd = Command::new("redis-benchmark");
        cmd.args(["--tls", "--cacert"])
            .arg(&pki.ca)
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(["-t", "ping_inline,set,get", "-n", "20000", "-c", "20"])
            .args(["-P", pipeline, "-q"]);
        let (status, out, err) = run_for(cmd, Duration::from_secs(120), b"");
        let out = out.replace('\r', "\n");
        assert_eq!(status, Some(0), "-P {pipeline}: {out}{err}");
        assert_eq!(
            out.matches("requests per second").count(),
            3,
            "-P {pipeline}: {out}{err}"
        );
        let all = format!("{out}{err}").to_lowercase();
        assert!(
            !all.contains("error") && !all.contains("warning"),
            "-P {pipeline}: {out}{err}"
        );
    }
}
