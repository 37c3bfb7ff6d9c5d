//! Tests of the command line.

use std::ffi::OsString;

use super::*;

/// The echo server's: UDP, no backend, no header timeout.
const SPEC: Spec = crate::echo::SPEC;

fn p(args: &[&str]) -> Result<Opts, CliError> {
    parse(&SPEC, args.iter().map(OsString::from))
}

#[test]
fn defaults_and_flags() {
    let o = p(&[]).unwrap();
    assert_eq!(o, Opts::defaults(&SPEC));
    assert_eq!(o.addrs(), ["tcp://:5000"]);
    let o = p(&[
        "--port",
        "1",
        "--loops=-1",
        "--balance",
        "least-connections",
        "--reuseport",
        "--unix",
        "/tmp/s",
        "--udp",
    ])
    .unwrap();
    assert_eq!(o.port, 1);
    assert_eq!(o.loops, -1);
    assert_eq!(o.balance, LoadBalance::LeastConnections);
    assert_eq!(o.addrs(), ["udp://:1?reuseport=true", "unix:///tmp/s"]);
}

#[test]
fn timeouts_and_listeners() {
    let o = p(&[]).unwrap();
    assert_eq!(o.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!((o.header_timeout, o.connect_timeout), (None, None));
    assert!(!o.per_loop_listeners);
    let o = p(&["--idle-timeout", "0", "--per-loop-listeners"]).unwrap();
    assert_eq!(o.idle_timeout, None);
    assert!(o.per_loop_listeners);
    let o = p(&["--defer-accept", "--reuseport", "--port", "7"]).unwrap();
    assert_eq!(o.addrs(), ["tcp://:7?reuseport=true&defer_accept=true"]);
    assert!(p(&["--defer-accept", "--udp"]).is_err());
    assert!(p(&["--defer-accept=yes"]).is_err());
    let o = p(&["--idle-timeout=0.25"]).unwrap();
    assert_eq!(o.idle_timeout, Some(Duration::from_millis(250)));
    for bad in [
        &["--idle-timeout"][..],
        &["--idle-timeout", "-1"],
        &["--idle-timeout", "x"],
        &["--idle-timeout", "inf"],
        &["--idle-timeout", "NaN"],
        &["--per-loop-listeners=yes"],
        // Only the HTTP server and the proxy take these.
        &["--header-timeout", "1"],
        &["--connect-timeout", "1"],
    ] {
        assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
    }
    let http = Spec {
        header_timeout: Some(60),
        udp: false,
        ..SPEC
    };
    let o = parse(&http, []).unwrap();
    assert_eq!(o.header_timeout, Some(Duration::from_secs(60)));
    let o = parse(&http, ["--header-timeout", "0"].map(OsString::from)).unwrap();
    assert_eq!(o.header_timeout, None);
    let o = parse(&http, ["--header-timeout", "1.5"].map(OsString::from)).unwrap();
    assert_eq!(o.header_timeout, Some(Duration::from_millis(1500)));
    let text = usage(&http);
    assert!(text.contains("--header-timeout SECS") && text.contains("(default 60)"));
    assert!(!usage(&SPEC).contains("--header-timeout"));
    assert!(usage(&SPEC).contains("--per-loop-listeners"));
    assert!(usage(&SPEC).contains("--idle-timeout SECS"));
}

#[test]
fn bad_flags() {
    for bad in [
        &["--nope"][..],
        &["--port"],
        &["--port", "70000"],
        &["--port", "x"],
        &["--loops", "-2"],
        &["--balance", "fair"],
        &["--reuseport=yes"],
        &["extra"],
    ] {
        assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
    }
    assert_eq!(p(&["--help"]), Err(CliError::Help));
    let no_udp = Spec { udp: false, ..SPEC };
    assert!(parse(&no_udp, [OsString::from("--udp")]).is_err());
    assert!(!usage(&no_udp).contains("--udp"));
    assert!(usage(&SPEC).contains("--udp"));
    assert!(parse(&SPEC, ["--backend", "127.0.0.1:1"].map(OsString::from)).is_err());
}

#[test]
fn tls_flags() {
    let o = p(&[
        "--tls-port",
        "0",
        "--tls-cert",
        "c.pem",
        "--tls-key=k.pem",
        "--reuseport",
        "--unix",
        "/tmp/s",
    ])
    .unwrap();
    let t = o.tls.as_ref().unwrap();
    assert_eq!(
        (t.port, t.cert.to_str(), t.key.to_str()),
        (0, Some("c.pem"), Some("k.pem"))
    );
    // TLS is the second address: `run` reads its port from there.
    assert_eq!(
        o.addrs(),
        [
            "tcp://:5000?reuseport=true",
            "tls://:0?reuseport=true",
            "unix:///tmp/s"
        ]
    );
    assert_eq!(o.tls_params, tls::Params::default());
    let o = p(&[
        "--tls-port=8443",
        "--tls-cert=c",
        "--tls-key=k",
        "--tls-cipher-suites",
        "TLS13_AES_128_GCM_SHA256",
        "--tls-versions",
        "1.3",
        "--tls-handshake-timeout",
        "0.5",
    ])
    .unwrap();
    assert_eq!(
        o.tls_params,
        tls::Params {
            cipher_suites: Some(vec!["TLS13_AES_128_GCM_SHA256".into()]),
            versions: vec![tls::Version::Tls13],
            handshake_timeout: Some(Duration::from_millis(500)),
            no_resumption: false,
        }
    );
    let o = p(&[
        "--tls-port=1",
        "--tls-cert=c",
        "--tls-key=k",
        "--tls-handshake-timeout=0",
    ]);
    assert_eq!(o.unwrap().tls_params.handshake_timeout, None);
    let o = p(&[
        "--tls-port=1",
        "--tls-cert=c",
        "--tls-key=k",
        "--tls-no-resumption",
    ]);
    assert!(o.unwrap().tls_params.no_resumption);
    for bad in [
        // All three path flags or none.
        &["--tls-port", "1"][..],
        &["--tls-cert", "c", "--tls-key", "k"],
        &["--tls-port", "1", "--tls-key", "k"],
        &["--tls-port", "70000", "--tls-cert", "c", "--tls-key", "k"],
        &["--tls-port", "1", "--tls-cert", "c", "--tls-key"],
        // The other TLS flags need a TLS port here.
        &["--tls-versions", "1.3"],
        &["--tls-cipher-suites", "TLS13_AES_128_GCM_SHA256"],
        &["--tls-handshake-timeout", "1"],
        // Bad values.
        &[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-versions=1.1",
        ],
        &[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-cipher-suites=RC4",
        ],
        &[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-handshake-timeout=-1",
        ],
        // No suite for the versions allowed.
        &[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-versions=1.2",
            "--tls-cipher-suites=TLS13_AES_128_GCM_SHA256",
        ],
        // Only the proxy dials.
        &["--backend-tls"],
        &["--backend-ca", "ca.pem"],
    ] {
        assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
    }
    let Err(CliError::Bad(msg)) = p(&["--tls-port", "1", "--tls-key", "k"]) else {
        panic!()
    };
    assert!(msg.contains("missing --tls-cert"), "{msg}");
    let text = usage(&SPEC);
    for flag in [
        "--tls-port N",
        "--tls-cert PATH",
        "--tls-key PATH",
        "--tls-cipher-suites LIST",
        "--tls-versions LIST",
        "--tls-handshake-timeout SECS",
        "TLS13_AES_128_GCM_SHA256",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
    assert!(!text.contains("ALPN") && !text.contains("--backend-tls"));
    let http = Spec {
        alpn: &[b"http/1.1"],
        ..SPEC
    };
    assert!(usage(&http).contains("ALPN: http/1.1"));
}

#[test]
fn backend_flag() {
    let proxy = crate::proxy::SPEC;
    let pp = |args: &[&str]| parse(&proxy, args.iter().map(OsString::from));
    let o = pp(&["--backend", "127.0.0.1:6379", "--port", "0"]).unwrap();
    assert_eq!(o.backend, Some("127.0.0.1:6379".parse().unwrap()));
    let o = pp(&["--backend=localhost:80"]).unwrap();
    assert_eq!(o.backend.unwrap().port(), 80);
    assert!(o.backend.unwrap().ip().is_loopback());
    for bad in [
        &[][..],
        &["--backend"],
        &["--backend", "nope"],
        &["--backend", "127.0.0.1"],
        &["--backend", "127.0.0.1:99999"],
        &["--port", "1"],
    ] {
        assert!(matches!(pp(bad), Err(CliError::Bad(_))), "{bad:?}");
    }
    assert!(usage(&proxy).contains("--backend HOST:PORT"));
    assert!(usage(&proxy).contains("--connect-timeout SECS"));
    assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
    let o = pp(&["--backend=localhost:80", "--connect-timeout", "0"]).unwrap();
    assert_eq!(o.connect_timeout, None);
    assert!(!usage(&SPEC).contains("--backend"));

    // --backend-tls: the CA is required; SNI defaults to the host.
    let o = pp(&[
        "--backend=127.0.0.1:1",
        "--backend-tls",
        "--backend-ca",
        "ca.pem",
    ])
    .unwrap();
    let b = o.backend_tls.unwrap();
    assert_eq!(
        (b.ca.to_str(), b.server_name.as_str()),
        (Some("ca.pem"), "localhost")
    );
    let o = pp(&["--backend-tls", "--backend-ca=ca", "--backend=localhost:1"]).unwrap();
    assert_eq!(o.backend_tls.unwrap().server_name, "localhost");
    let o = pp(&[
        "--backend=[::1]:1",
        "--backend-tls",
        "--backend-ca=ca",
        "--backend-sni",
        "redis.internal",
    ])
    .unwrap();
    assert_eq!(o.backend_tls.unwrap().server_name, "redis.internal");
    // The suites and versions may apply to the dials alone.
    let o = pp(&[
        "--backend=127.0.0.1:1",
        "--backend-tls",
        "--backend-ca=ca",
        "--tls-versions=1.3",
    ]);
    assert_eq!(o.unwrap().tls_params.versions, [tls::Version::Tls13]);
    for bad in [
        &["--backend=127.0.0.1:1", "--backend-tls"][..],
        &["--backend=127.0.0.1:1", "--backend-ca=ca"],
        &["--backend=127.0.0.1:1", "--backend-sni=x"],
        &[
            "--backend=127.0.0.1:1",
            "--backend-tls=yes",
            "--backend-ca=ca",
        ],
        &[
            "--backend=127.0.0.1:1",
            "--backend-tls",
            "--backend-ca=ca",
            "--backend-sni=a b",
        ],
        &["--backend=127.0.0.1:1", "--tls-versions=1.3"],
    ] {
        assert!(matches!(pp(bad), Err(CliError::Bad(_))), "{bad:?}");
    }
    let text = usage(&proxy);
    for flag in ["--backend-tls", "--backend-ca PATH", "--backend-sni NAME"] {
        assert!(text.contains(flag), "{flag}");
    }
}

#[test]
fn poller_choice() {
    assert_eq!(p(&[]).unwrap().poller, PollerChoice::Native);
    assert_eq!(p(&["--poller", "poll"]).unwrap().poller, PollerChoice::Poll);
    let native = p(&["--poller", PollerChoice::NATIVE_NAME]).unwrap().poller;
    assert_eq!(
        native == PollerChoice::Native,
        PollerChoice::NATIVE_NAME != "poll"
    );
    assert!(matches!(p(&["--poller", "select"]), Err(CliError::Bad(m)) if m.contains("--poller")));
    let other = if PollerChoice::NATIVE_NAME == "kqueue" {
        "epoll"
    } else {
        "kqueue"
    };
    assert!(
        matches!(p(&["--poller", other]), Err(CliError::Bad(m)) if m.contains("not available"))
    );
    assert!(usage(&SPEC).contains("--poller NAME"));
}
