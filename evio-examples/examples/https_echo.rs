//! The README's TLS example: one handler on `tcp://:8080` and
//! `tls://:8443`, answering each request with itself (a toy: it takes one
//! read for one request). The certificate chain and key are `cert.pem` and
//! `key.pem` in the current directory.
//!
//! ```text
//! cargo run -p evio-examples --example https_echo
//! curl --cacert cert.pem https://localhost:8443/
//! ```

use std::sync::Arc;

use evio_core::{Action, Builder, Conn, EventHandler};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

#[derive(Clone)]
struct HttpEcho;

impl EventHandler for HttpEcho {
    type Context = ();
    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        // Plaintext in, plaintext out: evio-core does the TLS.
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", input.len());
        conn.write(head.as_bytes());
        conn.write(input);
        Action::None
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chain = CertificateDer::pem_file_iter("cert.pem")?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file("key.pem")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Builder::new()
        .tls_config(Arc::new(config))
        .serve(HttpEcho, &["tcp://:8080", "tls://:8443"])?;
    Ok(())
}
