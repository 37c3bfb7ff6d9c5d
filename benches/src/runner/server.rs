//! The servers under test: how each is started (nginx and HAProxy from a
//! config written first), waited for, and stopped.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::procfs;
use crate::runner::certs::{self, TlsFiles, OPENSSL_SUITE};
use crate::runner::process::{free_port, kill, spawn, tail, Cpus};
use crate::runner::settings::Settings;

/// What has to be prepared before a server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Nothing: the arguments are complete.
    Plain,
    /// Write an nginx config with this many workers into a fresh prefix
    /// directory first.
    Nginx {
        /// `worker_processes`.
        workers: usize,
    },
    /// [`Setup::Nginx`] with one worker and `listen … deferred`
    /// (`TCP_DEFER_ACCEPT`: a connection is accepted with its request in,
    /// read at once, added to epoll only if it stays open).
    NginxDeferred,
    /// Write an HAProxy config (TCP mode, one thread, forwarding to the
    /// run's backend) into a temp file first.
    Haproxy,
    /// nginx with one worker serving HTTPS only, with the run's certificate
    /// (TLS 1.3, one cipher suite, no session cache, no tickets).
    NginxTls,
    /// HAProxy terminating TLS (the run's certificate, TLS 1.3, one cipher
    /// suite) in front of the run's plain backend.
    HaproxyTls,
    /// nginx with one worker as an HTTP reverse proxy (`proxy_pass` to an
    /// `upstream` with `keepalive 64`, HTTP/1.1, `Connection ""`) in front
    /// of the run's backend.
    NginxProxy,
    /// HAProxy in HTTP mode (`mode http`, `http-reuse always`, one thread)
    /// in front of the run's backend.
    HaproxyHttp,
}

/// The arguments that turn our servers' metrics endpoint on, on the run's
/// second free port.
pub const METRICS_FLAGS: [&str; 2] = ["--metrics-port", "{aux_port}"];

/// How a server is started: `{port}` in an argument becomes the port the
/// load connects to, `{backend}` the backend's `127.0.0.1:PORT`,
/// `{aux_port}` a second free port (our servers' plain listener when the
/// load speaks TLS), `{tls_cert}`, `{tls_key}` and `{tls_pem}` the paths of
/// the run's certificate (see [`crate::runner::certs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The name in the tables.
    pub name: String,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// What to prepare first.
    pub setup: Setup,
}

impl ServerSpec {
    /// A plain server: `program args…`.
    pub fn new(name: &str, program: PathBuf, args: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
            setup: Setup::Plain,
        }
    }

    /// The port of its metrics endpoint once started as `srv`: where it
    /// was given `--metrics-port {aux_port}` (see [`METRICS_FLAGS`]).
    pub fn metrics_port(&self, srv: &Server) -> Option<u16> {
        self.args
            .windows(2)
            .any(|w| w == METRICS_FLAGS)
            .then_some(srv.aux_port)
    }

    /// The same server with `extra` arguments added and named `name`.
    pub fn with(&self, name: String, extra: &[String]) -> Self {
        let mut spec = self.clone();
        spec.name = name;
        spec.args.extend_from_slice(extra);
        spec
    }
}

/// A running server; stopped when dropped.
pub struct Server {
    /// The process started (under strace: strace).
    pub child: Child,
    /// The server process (under strace: strace's child).
    pub pid: i32,
    /// The loopback port it listens on.
    pub port: u16,
    /// The second port, given as `{aux_port}`; 0 when it has none.
    pub aux_port: u16,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Whether it runs under strace.
    pub traced: bool,
}

/// nginx with one worker answering `200 Hello World!` (see
/// [`nginx_conf_workers`]).
pub fn nginx_conf(prefix: &Path, port: u16) -> String {
    nginx_conf_workers(prefix, port, 1)
}

/// nginx with `workers` workers, no access log, unlimited keep-alive
/// requests, answering every request with `200 "Hello World!\r\n"`.
pub fn nginx_conf_workers(prefix: &Path, port: u16, workers: usize) -> String {
    nginx_conf_with(prefix, port, workers, "", None)
}

/// [`nginx_conf`] with `listen … deferred`.
pub fn nginx_conf_deferred(prefix: &Path, port: u16) -> String {
    nginx_conf_with(prefix, port, 1, " deferred", None)
}

/// [`nginx_conf`] serving HTTPS with the run's certificate: TLS 1.3 only,
/// the one cipher suite, and neither a session cache nor tickets, so that
/// every new connection is a full handshake.
pub fn nginx_conf_tls(prefix: &Path, port: u16, f: &TlsFiles) -> String {
    nginx_conf_with(prefix, port, 1, "", Some(f))
}

/// nginx with one worker as an HTTP/1.1 reverse proxy: every request goes
/// to `backend` through an `upstream` block that keeps up to 64 idle
/// connections open (`keepalive 64`, unlimited requests on each), with
/// `proxy_http_version 1.1` and an empty `Connection` header so that the
/// upstream connections stay open; no access log, as [`nginx_conf`].
pub fn nginx_conf_proxy(prefix: &Path, port: u16, backend: u16) -> String {
    let upstream = format!(
        "\x20   upstream up {{\n\
         \x20       server 127.0.0.1:{backend};\n\
         \x20       keepalive 64;\n\
         \x20       keepalive_requests 1000000000;\n\
         \x20   }}\n"
    );
    let location = "\x20       location / {\n\
                    \x20           proxy_pass http://up;\n\
                    \x20           proxy_http_version 1.1;\n\
                    \x20           proxy_set_header Connection \"\";\n\
                    \x20       }\n";
    nginx_conf_full(prefix, port, 1, "", None, &upstream, location)
}

fn nginx_conf_with(
    prefix: &Path,
    port: u16,
    workers: usize,
    listen_opts: &str,
    tls: Option<&TlsFiles>,
) -> String {
    let location = "\x20       location / { return 200 \"Hello World!\\r\\n\"; }\n";
    nginx_conf_full(prefix, port, workers, listen_opts, tls, "", location)
}

/// The nginx config: `upstream` goes into the `http` block before the
/// server, `location` into the server.
fn nginx_conf_full(
    prefix: &Path,
    port: u16,
    workers: usize,
    listen_opts: &str,
    tls: Option<&TlsFiles>,
    upstream: &str,
    location: &str,
) -> String {
    let p = prefix.display();
    let (ssl, tls) = match tls {
        None => ("", String::new()),
        Some(f) => (
            " ssl",
            format!(
                "\x20       ssl_certificate {};\n\
                 \x20       ssl_certificate_key {};\n\
                 \x20       ssl_protocols TLSv1.3;\n\
                 \x20       ssl_conf_command Ciphersuites {OPENSSL_SUITE};\n\
                 \x20       ssl_session_cache off;\n\
                 \x20       ssl_session_tickets off;\n",
                f.cert.display(),
                f.key.display()
            ),
        ),
    };
    format!(
        "worker_processes {workers};\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         worker_rlimit_nofile 30000;\n\
         events {{ worker_connections 20000; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   keepalive_requests 1000000000;\n\
         \x20   client_body_temp_path {p}/body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         {upstream}\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port}{listen_opts}{ssl};\n\
         {tls}\
         {location}\
         \x20   }}\n\
         }}\n"
    )
}

/// HAProxy as a plain L4 proxy: TCP mode, one thread, no logging, every
/// connection forwarded to `backend`.
pub fn haproxy_conf(port: u16, backend: u16) -> String {
    haproxy_conf_with(port, backend, None)
}

/// [`haproxy_conf`] terminating TLS on `port` with the run's certificate
/// (TLS 1.3 only, the one cipher suite), forwarding plaintext to
/// `backend`.
pub fn haproxy_conf_tls(port: u16, backend: u16, f: &TlsFiles) -> String {
    haproxy_conf_with(port, backend, Some(f))
}

/// HAProxy as an HTTP/1.1 reverse proxy: `mode http`, one thread, no
/// logging, keep-alive on both sides (its default), idle server
/// connections shared between clients (`http-reuse always`), every request
/// forwarded to `backend`.
pub fn haproxy_conf_http(port: u16, backend: u16) -> String {
    format!(
        "global\n\
         \x20   nbthread 1\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode http\n\
         \x20   option http-keep-alive\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 120s\n\
         \x20   timeout server 120s\n\
         \x20   timeout http-request 10s\n\
         \x20   timeout http-keep-alive 120s\n\
         frontend fe\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend be\n\
         backend be\n\
         \x20   http-reuse always\n\
         \x20   server web 127.0.0.1:{backend}\n"
    )
}

fn haproxy_conf_with(port: u16, backend: u16, tls: Option<&TlsFiles>) -> String {
    let ssl = tls.map_or(String::new(), |f| {
        format!(
            " ssl crt {} ssl-min-ver TLSv1.3 ciphersuites {OPENSSL_SUITE}",
            f.pem.display()
        )
    });
    format!(
        "global\n\
         \x20   nbthread 1\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 120s\n\
         \x20   timeout server 120s\n\
         frontend fe\n\
         \x20   bind 127.0.0.1:{port}{ssl}\n\
         \x20   default_backend be\n\
         backend be\n\
         \x20   server echo 127.0.0.1:{backend}\n"
    )
}

/// The arguments for `spec` on `port`, writing nginx's or HAProxy's config
/// into the scratch directory first.
fn server_args(
    s: &Settings,
    spec: &ServerSpec,
    port: u16,
    aux_port: u16,
    backend: Option<u16>,
) -> Result<Vec<String>, String> {
    let backend_addr = format!("127.0.0.1:{}", backend.unwrap_or(0));
    let tls = certs::files(s);
    match spec.setup {
        Setup::Plain => Ok(spec
            .args
            .iter()
            .map(|a| {
                a.replace("{port}", &port.to_string())
                    .replace("{aux_port}", &aux_port.to_string())
                    .replace("{backend}", &backend_addr)
                    .replace("{tls_cert}", &tls.cert.display().to_string())
                    .replace("{tls_key}", &tls.key.display().to_string())
                    .replace("{tls_pem}", &tls.pem.display().to_string())
            })
            .collect()),
        Setup::Haproxy | Setup::HaproxyTls | Setup::HaproxyHttp => {
            let backend = backend.ok_or("haproxy needs a backend")?;
            let conf = s.tmp.join(format!("haproxy-{port}.cfg"));
            let text = match spec.setup {
                Setup::HaproxyTls => haproxy_conf_tls(port, backend, &tls),
                Setup::HaproxyHttp => haproxy_conf_http(port, backend),
                _ => haproxy_conf(port, backend),
            };
            fs::write(&conf, text).map_err(|e| e.to_string())?;
            Ok(vec!["-f".into(), conf.display().to_string(), "-db".into()])
        }
        Setup::Nginx { .. } | Setup::NginxDeferred | Setup::NginxTls | Setup::NginxProxy => {
            let prefix = s.tmp.join(format!("nginx-{port}"));
            fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            let conf = prefix.join("nginx.conf");
            let text = match spec.setup {
                Setup::Nginx { workers } => nginx_conf_workers(&prefix, port, workers),
                Setup::NginxDeferred => nginx_conf_deferred(&prefix, port),
                Setup::NginxProxy => {
                    let backend = backend.ok_or("nginx as a proxy needs a backend")?;
                    nginx_conf_proxy(&prefix, port, backend)
                }
                _ => nginx_conf_tls(&prefix, port, &tls),
            };
            fs::write(&conf, text).map_err(|e| e.to_string())?;
            let pre = prefix.display().to_string();
            Ok(vec![
                "-p".into(),
                pre.clone(),
                "-e".into(),
                format!("{pre}/error.log"),
                "-c".into(),
                conf.display().to_string(),
                "-g".into(),
                "daemon off;".into(),
            ])
        }
    }
}

/// Starts a server on a free port, pinned to `cpus`, under `strace -c -f`
/// when `strace_out` is given, and waits until it accepts connections.
/// `backend`: the port a proxy forwards to.
pub fn start_server(
    s: &Settings,
    spec: &ServerSpec,
    cpus: Option<Cpus>,
    strace_out: Option<&Path>,
    backend: Option<u16>,
) -> Result<Server, String> {
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let mut aux_port = 0;
    if spec.args.iter().any(|a| a.contains("{aux_port}")) {
        while aux_port == 0 || aux_port == port {
            aux_port = free_port().map_err(|e| format!("free port: {e}"))?;
        }
    }
    let args = server_args(s, spec, port, aux_port, backend)?;
    let log = s
        .tmp
        .join(format!("{}-{port}.log", spec.name.replace([' ', '/'], "_")));
    let logf = fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut cmd = if let Some(out) = strace_out {
        let strace = s.tools.strace.as_ref().ok_or("strace not found")?;
        let mut c = Command::new(strace);
        c.arg("-c").arg("-f").arg("-o").arg(out).arg(&spec.program);
        c
    } else {
        Command::new(&spec.program)
    };
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf);
    let child =
        spawn(&mut cmd, cpus).map_err(|e| format!("start {}: {e}", spec.program.display()))?;
    let mut srv = Server {
        pid: child.id() as i32,
        child,
        port,
        aux_port,
        log,
        traced: strace_out.is_some(),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = srv.child.try_wait() {
            return Err(format!(
                "{} exited at start ({st}); its log:\n{}",
                spec.name,
                tail(&srv.log, 10)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            srv.stop();
            return Err(format!(
                "{} did not accept connections on {addr}",
                spec.name
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if srv.traced {
        // The server is strace's child.
        let t0 = Instant::now();
        loop {
            let t = procfs::tree(srv.pid);
            if let Some(&p) = t.get(1) {
                srv.pid = p;
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("cannot find the traced server process".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Let it settle (nginx: the workers start after the master binds).
    std::thread::sleep(Duration::from_millis(if s.smoke { 50 } else { 200 }));
    Ok(srv)
}

impl Server {
    /// SIGTERM, then SIGKILL to the whole tree after 3 s (10 s traced).
    pub fn stop(&mut self) {
        let root = self.child.id() as i32;
        let tree = procfs::tree(root);
        kill(self.pid, Signal::SIGTERM);
        let t0 = Instant::now();
        let limit = Duration::from_secs(if self.traced { 10 } else { 3 });
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if t0.elapsed() > limit => {
                    for p in &tree {
                        kill(*p, Signal::SIGKILL);
                    }
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        // Leftovers (e.g. an nginx worker).
        for p in &tree[1..] {
            if procfs::stat(*p).is_some_and(|st| st.ppid == root || st.ppid == 1) {
                kill(*p, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A proxy's backend, started fresh for one run on `cpus`; `None` when the
/// load has no backend.
pub fn start_backend(
    s: &Settings,
    backend: Option<&ServerSpec>,
    cpus: Option<Cpus>,
) -> Result<Option<Server>, String> {
    match backend {
        Some(spec) => start_server(s, spec, cpus, None, None)
            .map(Some)
            .map_err(|e| format!("backend: {e}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_is_loopback_and_quiet() {
        let c = nginx_conf(Path::new("/tmp/x"), 8080);
        assert_contains(
            &c,
            &[
                "listen 127.0.0.1:8080;",
                "access_log off;",
                "worker_processes 1;",
                r#"return 200 "Hello World!\r\n";"#,
            ],
        );
    }

    #[test]
    fn nginx_config_workers() {
        let c = nginx_conf_workers(Path::new("/tmp/x"), 8080, 4);
        assert!(c.contains("worker_processes 4;"));
    }

    /// `config` has every one of `lines`.
    fn assert_contains(config: &str, lines: &[&str]) {
        for line in lines {
            assert!(config.contains(line), "{line:?} missing from:\n{config}");
        }
    }

    fn files() -> TlsFiles {
        TlsFiles {
            cert: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
            pem: "/t/both.pem".into(),
        }
    }

    #[test]
    fn nginx_tls_config_pins_and_does_full_handshakes() {
        let c = nginx_conf_tls(Path::new("/tmp/x"), 8443, &files());
        assert_contains(
            &c,
            &[
                "listen 127.0.0.1:8443 ssl;",
                "ssl_certificate /t/cert.pem;",
                "ssl_certificate_key /t/key.pem;",
                "ssl_protocols TLSv1.3;",
                "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
                "ssl_session_cache off;",
                "ssl_session_tickets off;",
                "worker_processes 1;",
                "access_log off;",
            ],
        );
        // The plain config has none of it.
        assert!(!nginx_conf(Path::new("/tmp/x"), 8080).contains("ssl"));
    }

    #[test]
    fn haproxy_tls_config_terminates_tls() {
        let c = haproxy_conf_tls(7443, 7001, &files());
        assert_contains(
&c,
&[
"bind 127.0.0.1:7443 ssl crt /t/both.pem ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256\n",
"mode tcp",
"server echo 127.0.0.1:7001",
],
);
    }

    #[test]
    fn nginx_proxy_config_keeps_upstream_connections() {
        let c = nginx_conf_proxy(Path::new("/tmp/x"), 8080, 9090);
        assert_contains(
            &c,
            &[
                "worker_processes 1;",
                "access_log off;",
                "listen 127.0.0.1:8080;",
                "    upstream up {\n        server 127.0.0.1:9090;\n        keepalive 64;\n",
                "proxy_pass http://up;",
                "proxy_http_version 1.1;",
                r#"proxy_set_header Connection "";"#,
            ],
        );
        // A proxy: it answers nothing itself.
        assert!(!c.contains("return 200"));
        // The upstream block is inside `http`, before the server.
        let (http, up, server) = (
            c.find("http {").unwrap(),
            c.find("upstream up").unwrap(),
            c.find("server {").unwrap(),
        );
        assert!(http < up && up < server);
        // The plain config is unchanged.
        let plain = nginx_conf(Path::new("/tmp/x"), 8080);
        assert!(!plain.contains("upstream"));
        assert!(!plain.contains("proxy_pass"));
    }

    #[test]
    fn haproxy_http_config_reuses_server_connections() {
        let c = haproxy_conf_http(7000, 7001);
        assert!(c.contains("mode http\n"));
        assert!(!c.contains("mode tcp"));
        assert_contains(
            &c,
            &[
                "nbthread 1",
                "http-reuse always",
                "option http-keep-alive",
                "timeout connect 5s",
                "timeout http-keep-alive 120s",
                "bind 127.0.0.1:7000\n",
                "server web 127.0.0.1:7001\n",
            ],
        );
        assert!(!c.contains("log "));
    }

    #[test]
    fn haproxy_config_is_tcp_one_thread_loopback() {
        let c = haproxy_conf(7000, 7001);
        assert_contains(
            &c,
            &[
                "mode tcp",
                "nbthread 1",
                "bind 127.0.0.1:7000",
                "server echo 127.0.0.1:7001",
            ],
        );
    }
}
