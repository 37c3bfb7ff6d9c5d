//! TLS for the example servers: the `--tls-*` flags' values, and the rustls
//! configurations built from them (the *ring* provider, TLS 1.2 and 1.3).
//!
//! evio-core does the TLS itself (a `tls://` listener, `Conn::dial_tls`);
//! what an application chooses is in the rustls configs, made here:
//!
//! - [`server_config`]: the certificate chain and key from PEM files, the
//!   cipher suites and versions allowed, and the ALPN protocols a binary
//!   advertises (`http/1.1` for the HTTP server).
//! - [`client_config`]: for the proxy's `--backend-tls`, the CA
//!   certificates to trust from a PEM file, with the same suites and
//!   versions.
//!
//! PEM files are read with rustls's own parser
//! ([`rustls::pki_types::pem::PemObject`]); errors name the file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};

/// The default TLS handshake timeout of the binaries (evio-core's own).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS protocol version (`--tls-versions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 (`1.2`).
    Tls12,
    /// TLS 1.3 (`1.3`).
    Tls13,
}

impl Version {
    /// Parses `1.2` or `1.3`.
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "1.2" => Some(Version::Tls12),
            "1.3" => Some(Version::Tls13),
            _ => None,
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            Version::Tls12 => &rustls::version::TLS12,
            Version::Tls13 => &rustls::version::TLS13,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Tls12 => "1.2",
            Version::Tls13 => "1.3",
        })
    }
}

/// The TLS settings every TLS config of a process shares: the served TLS
/// port's and the proxy's backend dials'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `--tls-cipher-suites`: rustls suite names, in the order given;
    /// `None`: all of the provider's (its order).
    pub cipher_suites: Option<Vec<String>>,
    /// `--tls-versions`: the versions allowed (default both).
    pub versions: Vec<Version>,
    /// `--tls-handshake-timeout`: how long an accepted connection's
    /// handshake may take; `None`: no limit.
    pub handshake_timeout: Option<Duration>,
    /// `--tls-no-resumption`: no session cache and no tickets, so every
    /// connection makes a full handshake (benchmarks compare full ones).
    pub no_resumption: bool,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            cipher_suites: None,
            versions: vec![Version::Tls12, Version::Tls13],
            handshake_timeout: Some(HANDSHAKE_TIMEOUT),
            no_resumption: false,
        }
    }
}

/// The name of a cipher suite as rustls spells it
/// (`TLS13_AES_128_GCM_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`).
pub fn suite_name(suite: &SupportedCipherSuite) -> String {
    format!("{:?}", suite.suite())
}

/// Every suite name the *ring* provider knows, in its order of preference.
pub fn suite_names() -> Vec<String> {
    ring::ALL_CIPHER_SUITES.iter().map(suite_name).collect()
}

/// Parses a comma-separated list of suite names (case does not matter)
/// into rustls's spelling.
///
/// # Errors
/// The first name the provider does not know, with the known ones.
pub fn parse_suites(list: &str) -> Result<Vec<String>, String> {
    let known = suite_names();
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim) {
        match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(k) if !out.contains(k) => out.push(k.clone()),
            Some(_) => {}
            None => {
                return Err(format!(
                    "unknown TLS cipher suite {name:?} (known: {})",
                    known.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

/// Parses a comma-separated list of versions (`1.2`, `1.3`).
pub fn parse_versions(list: &str) -> Option<Vec<Version>> {
    let mut out = Vec::new();
    for v in list.split(',') {
        let v = Version::parse(v)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Some(out)
}

impl Params {
    /// The *ring* provider restricted to the chosen suites.
    pub fn provider(&self) -> CryptoProvider {
        let mut provider = ring::default_provider();
        if let Some(names) = &self.cipher_suites {
            provider.cipher_suites = names
                .iter()
                .filter_map(|n| {
                    ring::ALL_CIPHER_SUITES
                        .iter()
                        .find(|s| &suite_name(s) == n)
                        .copied()
                })
                .collect();
        }
        provider
    }

    fn rustls_versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        self.versions.iter().map(|v| v.rustls()).collect()
    }

    /// Checks that at least one chosen suite belongs to a chosen version
    /// (rustls refuses a config without one).
    ///
    /// # Errors
    /// What does not fit, to print as a usage error.
    pub fn check(&self) -> Result<(), String> {
        let versions = self.rustls_versions();
        if self
            .provider()
            .cipher_suites
            .iter()
            .any(|s| versions.contains(&s.version()))
        {
            Ok(())
        } else {
            let v: Vec<String> = self.versions.iter().map(Version::to_string).collect();
            Err(format!(
                "none of the TLS cipher suites is for TLS {}",
                v.join(" or ")
            ))
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads the PEM certificates in `path` (a server's chain, its own
/// certificate first, or CA certificates).
///
/// # Errors
/// A file that cannot be read, is not PEM, or holds no certificate; the
/// message names the file.
pub fn load_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let what = |e: &dyn fmt::Display| {
        invalid(format!(
            "cannot read the TLS certificates in {}: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(&"no CERTIFICATE in it (PEM expected)"));
    }
    Ok(certs)
}

/// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), the first in the file.
///
/// # Errors
/// A file that cannot be read or holds no key; the message names the file.
pub fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let e = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY in it (PEM expected)".to_string()
            }
            e => e.to_string(),
        };
        invalid(format!(
            "cannot read the TLS private key in {}: {e}",
            path.display()
        ))
    })
}

/// A server config: the chain in `cert` with the key in `key` (PEM files),
/// `params`' suites and versions, and the ALPN protocols `alpn` (none: the
/// server does not take part in ALPN).
///
/// # Errors
/// A file that cannot be read or parsed, a key rustls cannot use, or a key
/// that does not belong to the certificate; the message names the files.
pub fn server_config(
    cert: &Path,
    key: &Path,
    params: &Params,
    alpn: &[&[u8]],
) -> io::Result<Arc<ServerConfig>> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(params.provider()))
        .with_protocol_versions(&params.rustls_versions())
        .map_err(|e| invalid(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            let (cert, key) = (cert.display(), key.display());
            invalid(match e {
                rustls::Error::InconsistentKeys(_) => {
                    format!("the TLS key in {key} is not the key of the certificate in {cert}")
                }
                rustls::Error::InvalidCertificate(e) => {
                    format!("the TLS certificate in {cert} is not a valid certificate: {e:?}")
                }
                e => format!("TLS certificate {cert} with key {key}: {e}"),
            })
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if params.no_resumption {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// A client config trusting the CA certificates in the PEM file `ca`, with
/// `params`' suites and versions (the proxy's `--backend-tls`).
///
/// # Errors
/// A file that cannot be read, holds no certificate or a certificate rustls
/// cannot use as a trust anchor; the message names the file.
pub fn client_config(ca: &Path, params: &Params) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|e| {
            invalid(format!(
                "a TLS CA certificate in {} cannot be used: {e}",
                ca.display()
            ))
        })?;
    }
    client_config_trusting(roots, params)
}

/// A client config trusting the system's CA certificates (as found by
/// `rustls-native-certs`: `SSL_CERT_FILE`, or the distribution's bundle),
/// with `params`' suites and versions (the HTTP proxy's `--upstream-tls`
/// without `--upstream-ca`).
///
/// # Errors
/// No usable system certificate was found.
pub fn system_client_config(params: &Params) -> io::Result<Arc<ClientConfig>> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(invalid(format!(
            "no system CA certificates found ({} errors); give --upstream-ca PATH",
            found.errors.len()
        )));
    }
    client_config_trusting(roots, params)
}

fn client_config_trusting(roots: RootCertStore, params: &Params) -> io::Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(Arc::new(params.provider()))
        .with_protocol_versions(&params.rustls_versions())
        .map_err(|e| invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server name the proxy asks its backend for by default: the host of
/// `--backend HOST:PORT` when it is a name, `localhost` for an IP address
/// (a certificate for an address is rare; loopback backends usually carry
/// `localhost`).
pub fn default_sni(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() || bare.is_empty() {
        "localhost".to_string()
    } else {
        bare.to_string()
    }
}

/// The paths of `--tls-cert` and `--tls-key` and the port they serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `--tls-port N`: TLS on all interfaces; 0 picks a free port.
    pub port: u16,
    /// `--tls-cert PATH`: the certificate chain, PEM.
    pub cert: PathBuf,
    /// `--tls-key PATH`: its private key, PEM.
    pub key: PathBuf,
}

/// The proxy's `--backend-tls`, `--backend-ca` and `--backend-sni`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `--backend-ca PATH`: the CA certificates (PEM) to trust.
    pub ca: PathBuf,
    /// `--backend-sni NAME`: the name sent (SNI) and verified.
    pub server_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_versions() {
        assert_eq!(
            parse_suites("tls13_aes_128_gcm_sha256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
                .unwrap(),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        let err = parse_suites("TLS13_AES_128_GCM_SHA256,RC4").unwrap_err();
        assert!(err.contains("\"RC4\"") && err.contains("TLS13_AES_256_GCM_SHA384"));
        assert!(parse_suites("").is_err());
        assert_eq!(
            parse_versions("1.3,1.2").unwrap(),
            [Version::Tls13, Version::Tls12]
        );
        assert_eq!(parse_versions("1.2,1.2").unwrap(), [Version::Tls12]);
        for bad in ["", "1.1", "1.2,", "tls1.3"] {
            assert_eq!(parse_versions(bad), None, "{bad}");
        }
        let params = Params {
            cipher_suites: Some(parse_suites("TLS13_AES_128_GCM_SHA256").unwrap()),
            ..Params::default()
        };
        assert_eq!(params.provider().cipher_suites.len(), 1);
        assert!(params.check().is_ok());
        let tls12_only = Params {
            versions: vec![Version::Tls12],
            ..params
        };
        assert!(tls12_only.check().unwrap_err().contains("TLS 1.2"));
        assert_eq!(
            Params::default().provider().cipher_suites.len(),
            suite_names().len()
        );
    }

    #[test]
    fn sni_defaults() {
        assert_eq!(default_sni("127.0.0.1"), "localhost");
        assert_eq!(default_sni("[::1]"), "localhost");
        assert_eq!(default_sni("redis.internal"), "redis.internal");
        assert_eq!(default_sni("localhost"), "localhost");
    }
}
