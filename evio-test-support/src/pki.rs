//! Certificates made on the fly (nothing secret is checked in) and
//! blocking rustls clients.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned,
    SupportedProtocolVersion,
};

use crate::net::{connect, read_until_end, Target};
use crate::process::TempDir;

/// A throwaway CA and a certificate it signed for `localhost` and
/// `127.0.0.1`: as rustls configs, and as PEM files in a temporary
/// directory (removed when dropped) for binaries and real clients.
pub struct Pki {
    /// The temporary directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (what clients trust: `--cacert`, `--upstream-ca`).
    pub ca: PathBuf,
    /// The server's chain: its certificate, then the CA's.
    pub cert: PathBuf,
    /// The server's key, PKCS#8.
    pub key: PathBuf,
    /// A server config with the certificate.
    pub server: Arc<ServerConfig>,
    /// A client config trusting the CA.
    pub client: Arc<ClientConfig>,
    _files: TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    /// Every TLS version, no ALPN.
    pub fn new() -> Pki {
        Pki::with(rustls::ALL_VERSIONS, &[])
    }

    /// Both sides speak `versions` and offer `alpn`.
    pub fn with(versions: &[&'static SupportedProtocolVersion], alpn: &[&[u8]]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "evio test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();

        let files = TempDir::new("pki");
        let write = |name: &str, text: &str| {
            let path = files.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = write("ca.pem", &ca_cert.pem());
        let cert_path = write("cert.pem", &format!("{}{}", cert.pem(), ca_cert.pem()));
        let key_path = write("key.pem", &key.serialize_pem());

        let chain = vec![
            CertificateDer::from(cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, der_key)
            .unwrap();
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .unwrap();
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Pki {
            dir: files.path().to_path_buf(),
            ca,
            cert: cert_path,
            key: key_path,
            server: Arc::new(server),
            client: Arc::new(client),
            _files: files,
        }
    }

    /// The example binaries' TLS flags: `--tls-port 0 --tls-cert .. --tls-key ..`.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--tls-port".into(),
            "0".into(),
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// The client config with `alpn` offered.
    pub fn client_with_alpn(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut c = (*self.client).clone();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

/// A rustls client config (ring, TLS 1.2 and 1.3) trusting the CA
/// certificates in the PEM file `ca`.
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A blocking rustls client over TCP.
pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A TLS client for the name `localhost` over a connected socket; the
/// handshake runs on the first read or write.
pub fn tls_client(tcp: TcpStream, config: &Arc<ClientConfig>) -> TlsClient {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Connects to `addr` (with [`connect`]'s timeouts) and completes the
/// handshake for `localhost`; panics if it fails.
pub fn tls_connect(addr: impl Target, config: &Arc<ClientConfig>) -> TlsClient {
    let addr: SocketAddr = addr.socket_addr();
    let mut c = tls_client(connect(addr), config);
    while c.conn.is_handshaking() {
        c.conn
            .complete_io(&mut c.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    }
    c
}

/// Reads until the server's `close_notify` (a clean TLS end); panics on a
/// truncation, a reset or a timeout.
pub fn read_to_close_notify(c: &mut TlsClient) -> Vec<u8> {
    match read_until_end(c) {
        (out, None) => out,
        (out, Some(e)) => panic!(
            "waiting for close_notify: {e} (got {:?})",
            String::from_utf8_lossy(&out)
        ),
    }
}

/// Reads until the server ends the connection: `(bytes, true)` after its
/// `close_notify`, `(bytes, false)` after an EOF without one (a
/// truncation) or a reset; panics on a timeout or a TLS error.
pub fn read_to_end_tls(c: &mut TlsClient) -> (Vec<u8>, bool) {
    match read_until_end(c) {
        (out, None) => (out, true),
        (out, Some(e))
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            (out, false)
        }
        (out, Some(e)) => panic!(
            "waiting for the end: {e} (got {:?})",
            String::from_utf8_lossy(&out)
        ),
    }
}
