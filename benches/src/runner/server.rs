//! The servers under test: how each is started (nginx and HAProxy from a
//! config written first), waited for, and stopped.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::procfs;
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
    /// Write an HAProxy config (TCP mode, one thread, forwarding to the
    /// run's backend) into a temp file first.
    Haproxy,
}

/// How a server is started: `{port}` in an argument becomes the port,
/// `{backend}` the backend's `127.0.0.1:PORT`.
#[derive(Debug, Clone)]
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
    let p = prefix.display();
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
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{ return 200 \"Hello World!\\r\\n\"; }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// HAProxy as a plain L4 proxy: TCP mode, one thread, no logging, every
/// connection forwarded to `backend`.
pub fn haproxy_conf(port: u16, backend: u16) -> String {
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
         \x20   bind 127.0.0.1:{port}\n\
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
    backend: Option<u16>,
) -> Result<Vec<String>, String> {
    let backend_addr = format!("127.0.0.1:{}", backend.unwrap_or(0));
    match spec.setup {
        Setup::Plain => Ok(spec
            .args
            .iter()
            .map(|a| {
                a.replace("{port}", &port.to_string())
                    .replace("{backend}", &backend_addr)
            })
            .collect()),
        Setup::Haproxy => {
            let backend = backend.ok_or("haproxy needs a backend")?;
            let conf = s.tmp.join(format!("haproxy-{port}.cfg"));
            fs::write(&conf, haproxy_conf(port, backend)).map_err(|e| e.to_string())?;
            Ok(vec!["-f".into(), conf.display().to_string(), "-db".into()])
        }
        Setup::Nginx { workers } => {
            let prefix = s.tmp.join(format!("nginx-{port}"));
            fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            let conf = prefix.join("nginx.conf");
            fs::write(&conf, nginx_conf_workers(&prefix, port, workers))
                .map_err(|e| e.to_string())?;
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
    let args = server_args(s, spec, port, backend)?;
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
        assert!(c.contains("listen 127.0.0.1:8080;"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("worker_processes 1;"));
        assert!(c.contains(r#"return 200 "Hello World!\r\n";"#));
    }

    #[test]
    fn nginx_config_workers() {
        let c = nginx_conf_workers(Path::new("/tmp/x"), 8080, 4);
        assert!(c.contains("worker_processes 4;"));
    }

    #[test]
    fn haproxy_config_is_tcp_one_thread_loopback() {
        let c = haproxy_conf(7000, 7001);
        assert!(c.contains("mode tcp"));
        assert!(c.contains("nbthread 1"));
        assert!(c.contains("bind 127.0.0.1:7000"));
        assert!(c.contains("server echo 127.0.0.1:7001"));
    }
}
