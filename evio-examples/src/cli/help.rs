//! The usage text of the example servers.

use super::Spec;
use crate::tls;

/// The usage text for `spec`.
pub fn usage(spec: &Spec) -> String {
    let mut extra = String::new();
    if spec.udp {
        extra.push_str("  --udp                   serve UDP on the port instead of TCP\n");
    }
    if let Some(d) = spec.header_timeout {
        extra.push_str(&format!(
            "  --header-timeout SECS   close a connection whose request head is not complete\n\
             \x20                         SECS after its first byte, or that sends nothing for SECS\n\
             \x20                         after it opened (nginx's client_header_timeout);\n\
             \x20                         0 = never (default {d})\n"
        ));
    }
    if let Some(d) = spec.connect_timeout {
        extra.push_str(&format!(
            "  --connect-timeout SECS  give up connecting to the backend after SECS; 0 = the OS's\n\
             \x20                         limit (default {d})\n"
        ));
    }
    let (backend, backend_help) = if spec.backend {
        (
            " --backend HOST:PORT",
            "  --backend HOST:PORT     where to forward connections (required)\n",
        )
    } else {
        spec.extra.map_or(("", ""), |x| (x.synopsis, x.help))
    };
    extra.push_str(&format!(
        "  --tls-port N            also serve TLS on port N, all interfaces (0 picks one),\n\
         \x20                         with the same handler as --port{alpn}\n\
         \x20 --tls-cert PATH         the certificate chain, PEM, the server's certificate\n\
         \x20                         first (--tls-port, --tls-cert and --tls-key go together)\n\
         \x20 --tls-key PATH          its private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC)\n\
         \x20 --tls-cipher-suites LIST  comma-separated rustls suite names, in order of\n\
         \x20                         preference; a TLS 1.2 suite's ECDSA or RSA must be the\n\
         \x20                         key's type (default: all of these)\n\
         {suites}\
         \x20 --tls-versions LIST     1.2, 1.3 or 1.2,1.3 (default 1.2,1.3)\n\
         \x20 --tls-no-resumption     no session cache or tickets: every connection makes\n\
         \x20                         a full handshake (for benchmarks)\n\
         \x20 --tls-handshake-timeout SECS  close a connection whose handshake is not done\n\
         \x20                         SECS after it was accepted; 0 = never (default {hs})\n",
        alpn = if spec.alpn.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = spec
                .alpn
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            format!("; ALPN: {}", names.join(", "))
        },
        suites = tls::suite_names()
            .iter()
            .map(|n| format!("                            {n}\n"))
            .collect::<String>(),
        hs = tls::HANDSHAKE_TIMEOUT.as_secs(),
    ));
    if spec.backend {
        extra.push_str(
            "  --backend-tls           speak TLS to the backend (needs --backend-ca); the\n\
             \x20                         suites and versions are the --tls-* ones\n\
             \x20 --backend-ca PATH       the CA certificates (PEM) the backend's must chain to\n\
             \x20 --backend-sni NAME      the server name sent and verified (default: the\n\
             \x20                         --backend host if it is a name, localhost for an\n\
             \x20                         IP address)\n",
        );
    }
    let flags = [
        (spec.udp, " [--udp]"),
        (spec.header_timeout.is_some(), " [--header-timeout SECS]"),
        (spec.connect_timeout.is_some(), " [--connect-timeout SECS]"),
        (
            true,
            "\n       [--tls-port N --tls-cert PATH --tls-key PATH] [--tls-cipher-suites LIST]\n\
             \x20      [--tls-versions LIST] [--tls-handshake-timeout SECS] [--tls-no-resumption]",
        ),
        (
            spec.backend,
            "\n       [--backend-tls --backend-ca PATH [--backend-sni NAME]]",
        ),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| *f)
    .collect::<String>();
    format!(
        "usage: {bin}{backend} [--port N] [--loops N] [--balance POLICY] [--reuseport]\n\
         \x20      [--per-loop-listeners] [--defer-accept] [--unix PATH] [--poller NAME]\n\
         \x20      [--idle-timeout SECS] [--log-level LEVEL] [--metrics-port N]{flags}\n\
         \n\
         {backend_help}\
         \x20 --port N                port to listen on, all interfaces (default {port}; 0 picks one)\n\
         \x20 --loops N               event loops: 0 or 1 = one, -1 = one per core (default 0)\n\
         \x20 --balance POLICY        random, round-robin or least-connections (default random)\n\
         \x20 --reuseport             set SO_REUSEPORT on the listener\n\
         \x20 --per-loop-listeners    every loop gets its own SO_REUSEPORT listener and accepts\n\
         \x20                         by itself (the kernel spreads connections; --balance\n\
         \x20                         does not apply)\n\
         \x20 --defer-accept          accept a TCP connection only once it has sent something\n\
         \x20                         (Linux TCP_DEFER_ACCEPT): it is read at once, and one\n\
         \x20                         answered with a close never reaches epoll. Not for\n\
         \x20                         protocols where the server speaks first\n\
         \x20 --unix PATH             also listen on the unix socket PATH\n\
         \x20 --poller NAME           the event backend: {native} (default) or poll (the\n\
         \x20                         portable, level-triggered poll(2) one)\n\
         \x20 --idle-timeout SECS     close connections without a byte read or written for\n\
         \x20                         SECS; 0 = never (default {idle})\n\
         {extra}\
         \x20 --drain-timeout SECS    on SIGINT/SIGTERM (or after an upgrade): stop accepting,\n\
         \x20                         close each connection at its next request boundary (HTTP\n\
         \x20                         answers with Connection: close), wait up to SECS for the\n\
         \x20                         rest, then close it (default 10); SIGQUIT stops at once\n\
         \x20 --upgrade-socket PATH   listen on the unix socket PATH for a successor: a new\n\
         \x20                         process started with --upgrade takes the listening\n\
         \x20                         sockets, then this one drains (zero-downtime restart)\n\
         \x20 --upgrade               start as that successor: take the listening sockets from\n\
         \x20                         the server at --upgrade-socket PATH, serve them, tell it\n\
         \x20                         to drain, then listen on PATH for the next successor\n\
         \x20 --metrics-port N        serve the loops' counters (connections, bytes, wakes, TLS\n\
         \x20                         handshakes) as Prometheus text on GET /metrics, port N\n\
         \x20                         on all interfaces (0 picks one); off by default\n\
         \x20 --log-level LEVEL       off, error, warn, info, debug or trace: what is logged to\n\
         \x20                         stderr (default warn); RUST_LOG, when set, wins and takes\n\
         \x20                         tracing's filter syntax (RUST_LOG=evio_core=debug)\n\
         \x20 -V, --version           print the name and version\n\
         \x20 -h, --help              print this help\n\
         \n\
         SECS may have a fraction (0.5). {reclaim}\n",
        bin = spec.bin,
        reclaim = if spec.backend {
            "The idle timeout applies to both sides of a pair.\n\
             A proxied connection is never between requests, so none is closed to make\n\
             room when the process runs out of file descriptors."
        } else {
            "When the process runs out of file descriptors, the\n\
             longest-idle connections between requests are closed to make room."
        },
        port = spec.default_port,
        native = super::PollerChoice::NATIVE_NAME,
        idle = spec.idle_timeout,
    )
}
