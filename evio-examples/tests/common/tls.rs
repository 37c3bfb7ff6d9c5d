//! TLS helpers for the integration tests: a throwaway CA and a `localhost`
//! certificate made with rcgen into a temporary directory (nothing secret
//! is checked in), rustls clients, the binaries' TLS port, and a real
//! `redis-server` with `--tls-port`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{spawn, Bin, TIMEOUT};

/// A CA, and a certificate it signed for `localhost` and `127.0.0.1`, as
/// PEM files in a temporary directory (removed when dropped).
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (what clients trust: `--cacert`, `--backend-ca`).
    pub ca: PathBuf,
    /// The server's chain: its certificate, then the CA's.
    pub cert: PathBuf,
    /// The server's key, PKCS#8.
    pub key: PathBuf,
    /// A rustls client trusting the CA (both versions, no ALPN).
    pub client: Arc<ClientConfig>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new temporary directory for this test process.
pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "evio-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Pki {
    /// A fresh CA and server certificate.
    pub fn new() -> Pki {
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

        let dir = temp_dir("pki");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = write("ca.pem", &ca_cert.pem());
        let cert_path = write("cert.pem", &format!("{}{}", cert.pem(), ca_cert.pem()));
        let key_path = write("key.pem", &key.serialize_pem());
        let client = client_config(&ca);
        Pki {
            dir,
            ca,
            cert: cert_path,
            key: key_path,
            client,
        }
    }

    /// `--tls-port 0 --tls-cert .. --tls-key ..`.
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

/// A rustls client config (ring, TLS 1.2 and 1.3) trusting the CA in `ca`.
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A blocking rustls client.
pub type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and runs the handshake for `localhost`.
pub fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Client {
    let tcp = super::connect(addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut c = StreamOwned::new(conn, tcp);
    while c.conn.is_handshaking() {
        c.conn
            .complete_io(&mut c.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    }
    c
}

/// Reads until the server's `close_notify` (a clean TLS end); panics on a
/// truncation, a reset or a timeout.
pub fn read_to_close_notify(c: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 16 << 10];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "waiting for close_notify: {e} (got {:?})",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Reads until the server ends the connection: `(bytes, true)` after its
/// `close_notify`, `(bytes, false)` after an EOF without one (a
/// truncation) or a reset; panics on a timeout or a TLS error.
pub fn read_to_end_tls(c: &mut Client) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0; 16 << 10];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return (out, false)
            }
            Err(e) => panic!(
                "waiting for the end: {e} (got {:?})",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// The TLS port in a binary's startup line (`... and TLS port N`).
pub fn tls_port(bin: &Bin) -> u16 {
    bin.line
        .split("TLS port ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no TLS port in {:?}", bin.line))
}

/// Starts `bin` with `--port 0`, the TLS flags of `pki` and `args`;
/// returns it and its TLS address.
pub fn spawn_tls(bin: &str, pki: &Pki, args: &[&str]) -> (Bin, SocketAddr) {
    let mut all: Vec<String> = vec!["--port".into(), "0".into()];
    all.extend(pki.flags());
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let b = spawn(bin, &all);
    let addr = ([127, 0, 0, 1], tls_port(&b)).into();
    (b, addr)
}

/// Runs `cmd` with a time limit; returns its exit status (`None`: killed
/// at the limit), stdout and stderr.
pub fn run_for(mut cmd: Command, limit: Duration, stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let out = String::from_utf8_lossy(&o.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&e.join().unwrap()).into_owned();
    (status, out, err)
}

/// A real `redis-server` serving TLS only (`--port 0`), killed when
/// dropped.
pub struct RealRedisTls {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for RealRedisTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a real `redis-server --port 0 --tls-port P` with `pki`'s
/// certificate on a free loopback port; `None` (with a message) without
/// `redis-server`, or one built without TLS. Retried on another port when
/// it exits or does not answer `PING` over TLS (the free port may be taken
/// first).
pub fn real_redis_tls(pki: &Pki) -> Option<RealRedisTls> {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&pki.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("redis-server not found on PATH: skipped");
            return None;
        };
        let log = child.stdout.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = { log }.read_to_string(&mut s);
            s
        });
        let mut real = RealRedisTls {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if real.child.try_wait().ok().flatten().is_some() {
                let log = log.join().unwrap_or_default();
                if log.contains("TLS") && log.contains("not supported") {
                    eprintln!("redis-server was built without TLS: skipped");
                    return None;
                }
                break; // it could not listen there: another port
            }
            if answers_ping_tls(real.addr, &pki.client) {
                return Some(real);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-server --tls-port did not start");
}

/// Whether `addr` answers `PING` with `+PONG` over TLS within a second.
fn answers_ping_tls(addr: SocketAddr, config: &Arc<ClientConfig>) -> bool {
    let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut c = StreamOwned::new(conn, tcp);
    let mut buf = [0; 7];
    c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Resident memory of process `pid` in KiB (`VmRSS`, Linux).
pub fn rss_kib(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}
