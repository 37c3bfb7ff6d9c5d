//! Certificates made on the fly for the TLS tests, and rustls clients.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

/// A certificate for `localhost` and configs that trust it.
pub struct Pki {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// A fresh certificate; both sides speak `versions` and offer `alpn`.
pub fn pki_with(versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&[u8]]) -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let mut server = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Pki {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// Every TLS version, no ALPN.
pub fn pki() -> Pki {
    pki_with(rustls::ALL_VERSIONS, &[])
}

/// A blocking rustls client over TCP.
pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A TLS client of `addr` for the name `localhost` (the handshake runs on
/// the first read or write), with a 10 s read timeout.
pub fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tls_client(tcp, config)
}

/// A TLS client for the name `localhost` over a connected socket.
pub fn tls_client(tcp: TcpStream, config: &Arc<ClientConfig>) -> TlsClient {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    StreamOwned::new(conn, tcp)
}
