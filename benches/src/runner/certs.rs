//! What the TLS workload pins on every server, and its throwaway
//! certificate: one self-signed ECDSA P-256 certificate, made in the
//! runner's scratch directory at start and removed with it (nothing secret
//! is checked in).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::runner::settings::Settings;

/// The one cipher suite every TLS server is pinned to, as rustls names it
/// (our servers' `--tls-cipher-suites`, and what the probe reports).
pub const SUITE: &str = "TLS13_AES_128_GCM_SHA256";

/// The same suite as OpenSSL names it (nginx, redis-server, HAProxy).
pub const OPENSSL_SUITE: &str = "TLS_AES_128_GCM_SHA256";

/// The name the certificate is for, and the clients' SNI.
pub const SNI: &str = "localhost";

/// The certificate's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate (PEM); also the clients' CA file.
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// Certificate and key in one PEM file (HAProxy's `crt`).
    pub pem: PathBuf,
}

/// Where the certificate of this run lives (in the scratch directory).
pub fn files(s: &Settings) -> TlsFiles {
    let dir = s.tmp.join("tls");
    TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        pem: dir.join("cert-and-key.pem"),
    }
}

/// Writes `body` to `path`, readable by the owner only.
fn write_private(path: &PathBuf, body: &str) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(body.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes a fresh self-signed ECDSA P-256 certificate for `localhost` and
/// `127.0.0.1` (not a CA: rustls refuses a CA certificate used by a server)
/// and writes its files.
pub fn make_cert(f: &TlsFiles) -> Result<(), String> {
    let names = vec![SNI.to_string(), "127.0.0.1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| format!("rcgen: {e}"))?;
    if let Some(dir) = f.cert.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let cert = ck.cert.pem();
    let key = ck.key_pair.serialize_pem();
    fs::write(&f.cert, &cert).map_err(|e| format!("{}: {e}", f.cert.display()))?;
    write_private(&f.key, &key)?;
    write_private(&f.pem, &format!("{cert}{key}"))
}

/// The flags that give one of our servers a TLS listener on `{port}` with
/// the run's certificate, pinned like the peers (its plain `--port` moves
/// to `{aux_port}`), with session resumption off like the peers' (every
/// new connection makes a full handshake).
pub fn our_tls_flags() -> Vec<String> {
    [
        "--tls-port",
        "{port}",
        "--tls-cert",
        "{tls_cert}",
        "--tls-key",
        "{tls_key}",
        "--tls-versions",
        "1.3",
        "--tls-cipher-suites",
        SUITE,
        "--tls-no-resumption",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    #[test]
    fn a_p256_certificate_and_its_key() {
        let dir = std::env::temp_dir().join(format!("evio-certs-{}", std::process::id()));
        let f = TlsFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            pem: dir.join("ck.pem"),
        };
        make_cert(&f).unwrap();
        let cert = CertificateDer::from_pem_file(&f.cert).unwrap();
        let key = PrivateKeyDer::from_pem_file(&f.key).unwrap();
        let both = fs::read_to_string(&f.pem).unwrap();
        let mode = fs::metadata(&f.key).unwrap().permissions();
        let _ = fs::remove_dir_all(&dir);
        // The key is PKCS#8 and signs with ECDSA P-256 / SHA-256.
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider.key_provider.load_private_key(key).unwrap();
        assert_eq!(signing.algorithm(), rustls::SignatureAlgorithm::ECDSA);
        assert!(cert.len() > 100);
        assert!(both.contains("BEGIN CERTIFICATE") && both.contains("BEGIN PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn our_flags_pin_tls_1_3_and_the_suite() {
        let f = our_tls_flags().join(" ");
        assert!(f.contains("--tls-versions 1.3"));
        assert!(f.contains("--tls-cipher-suites TLS13_AES_128_GCM_SHA256"));
        assert!(f.starts_with("--tls-port {port}"));
    }
}
