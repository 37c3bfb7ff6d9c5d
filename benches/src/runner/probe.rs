//! The TLS probe: before a TLS server's runs, two connections from a rustls
//! client that offers TLS 1.2 and 1.3 with every cipher suite and key
//! exchange group of ring (so the server's own choice shows), each with a
//! full handshake and one verified round trip. It records what was
//! negotiated, and whether the second connection resumed the first one's
//! session (a server that resumes does no full handshake for a client that
//! offers a ticket — `wrk` does, see docs/benchmarks.md).

use serde::Serialize;

use crate::pattern::Pattern;
use crate::runner::certs::{self, SUITE};
use crate::runner::load::Load;
use crate::runner::memory::{connect, round_trip, tls_connect, Probe};
use crate::runner::server::Server;
use crate::runner::settings::Settings;
use crate::tls;

/// What one server negotiated with the probe.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsProbe {
    /// The server's name in the tables.
    pub server: String,
    /// The load it was probed for (its first TLS group).
    pub load: String,
    /// Both connections made their handshake and round trip.
    pub ok: bool,
    /// Protocol version (`TLSv1_3`).
    pub version: Option<String>,
    /// Cipher suite, as rustls names it.
    pub suite: Option<String>,
    /// Key exchange group (`X25519`, …).
    pub kx_group: Option<String>,
    /// ALPN protocol (offered: `http/1.1` to HTTP servers).
    pub alpn: Option<String>,
    /// Whether the second connection resumed the first one's session.
    pub resumed: Option<bool>,
    /// Why it failed, or what is wrong with what was negotiated.
    pub note: String,
}

impl TlsProbe {
    /// Whether the server was pinned as the workload wants: TLS 1.3 with
    /// [`SUITE`].
    pub fn pinned(&self) -> bool {
        self.version.as_deref() == Some("TLSv1_3") && self.suite.as_deref() == Some(SUITE)
    }
}

/// The probe's round trip for a load over TLS: what its server answers.
pub fn probe_for(load: &Load) -> Probe {
    match load.plain().unwrap_or(load) {
        Load::Http { .. } | Load::HttpChurn { .. } => Probe::HttpGet,
        Load::Redis { .. } | Load::RedisChurn { .. } => Probe::RedisPing,
        _ => Probe::Echo,
    }
}

/// What one connection saw.
struct Seen {
    version: Option<String>,
    suite: Option<String>,
    kx_group: Option<String>,
    alpn: Option<String>,
    resumed: bool,
}

fn once(
    port: u16,
    config: &std::sync::Arc<rustls::ClientConfig>,
    probe: Probe,
) -> Result<Seen, String> {
    let sock = connect(port).map_err(|e| format!("connect: {e}"))?;
    let mut stream = tls_connect(config, sock).map_err(|e| format!("handshake: {e}"))?;
    round_trip(&mut stream, probe, &Pattern::new(), 0).map_err(|e| format!("round trip: {e}"))?;
    let c = &stream.conn;
    let seen = Seen {
        version: c.protocol_version().map(|v| format!("{v:?}")),
        suite: c
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite())),
        kx_group: c
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())),
        alpn: c
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    };
    stream.conn.send_close_notify();
    let _ = stream.conn.complete_io(&mut stream.sock);
    Ok(seen)
}

/// Probes the TLS server `srv` (named `server`, probed for `load`), whose
/// requests are `probe` round trips.
pub fn probe_tls(s: &Settings, srv: &Server, probe: Probe, server: &str, load: &str) -> TlsProbe {
    let mut p = TlsProbe {
        server: server.to_string(),
        load: load.to_string(),
        ..Default::default()
    };
    let alpn: &[&[u8]] = if probe == Probe::HttpGet {
        &[b"http/1.1"]
    } else {
        &[]
    };
    let config = match tls::client_config(&certs::files(s).cert, true, alpn) {
        Ok(c) => c,
        Err(e) => {
            p.note = e;
            return p;
        }
    };
    let first = match once(srv.port, &config, probe) {
        Ok(seen) => seen,
        Err(e) => {
            p.note = format!("first connection: {e}");
            return p;
        }
    };
    p.version = first.version;
    p.suite = first.suite;
    p.kx_group = first.kx_group;
    p.alpn = first.alpn;
    match once(srv.port, &config, probe) {
        Ok(second) => {
            p.resumed = Some(second.resumed);
            p.ok = true;
        }
        Err(e) => p.note = format!("second connection: {e}"),
    }
    if p.ok && !p.pinned() {
        p.note = format!(
            "negotiated {} {}, not TLSv1_3 {SUITE}: the server is not pinned",
            p.version.as_deref().unwrap_or("?"),
            p.suite.as_deref().unwrap_or("?")
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_means_tls13_and_the_suite() {
        let mut p = TlsProbe {
            version: Some("TLSv1_3".into()),
            suite: Some(SUITE.into()),
            ..Default::default()
        };
        assert!(p.pinned());
        p.suite = Some("TLS13_AES_256_GCM_SHA384".into());
        assert!(!p.pinned());
        p.suite = Some(SUITE.into());
        p.version = Some("TLSv1_2".into());
        assert!(!p.pinned());
    }
}
