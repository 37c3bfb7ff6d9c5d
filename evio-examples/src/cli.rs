//! The command line the example servers share, and how they run:
//! start, print one line, serve until SIGINT/SIGTERM (or until a callback
//! returns `Action::Shutdown`), shut down cleanly.
//!
//! Every binary also serves TLS with `--tls-port N --tls-cert PATH
//! --tls-key PATH` (the same handler on both ports; see [`crate::tls`]),
//! and the proxy dials its backend over TLS with `--backend-tls`.

use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evio_core::{Addr, Builder, EventHandler, LoadBalance};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::tls;

/// What differs between the servers' command lines.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The binary's name, for the usage text.
    pub bin: &'static str,
    /// The name in the startup line: `{name} server started on port N`.
    pub name: &'static str,
    /// The default `--port`.
    pub default_port: u16,
    /// Whether `--udp` is accepted.
    pub udp: bool,
    /// Whether `--backend HOST:PORT` is accepted (and then required).
    pub backend: bool,
    /// The default `--idle-timeout`, in seconds (0: none).
    pub idle_timeout: u64,
    /// The default `--header-timeout` in seconds, for a binary that takes
    /// the flag (the HTTP server); `None`: the flag is refused.
    pub header_timeout: Option<u64>,
    /// The default `--connect-timeout` in seconds, for a binary that takes
    /// the flag (the proxy); `None`: the flag is refused.
    pub connect_timeout: Option<u64>,
    /// The ALPN protocols the TLS port advertises (`http/1.1` for the HTTP
    /// server); empty: no ALPN (a client's offer is ignored).
    pub alpn: &'static [&'static [u8]],
}

/// Parsed flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opts {
    /// `--port N`: TCP (or UDP) port on all interfaces; 0 picks a free one.
    pub port: u16,
    /// `--loops N`: 0 or 1 one loop, -1 one per core, N loops.
    pub loops: isize,
    /// `--balance random|round-robin|least-connections`.
    pub balance: LoadBalance,
    /// `--reuseport`: set `SO_REUSEPORT` on the listener.
    pub reuseport: bool,
    /// `--per-loop-listeners`: every loop gets its own `SO_REUSEPORT`
    /// listener and accepts by itself ([`Builder::per_loop_listeners`]).
    pub per_loop_listeners: bool,
    /// `--unix PATH`: also listen on this unix socket.
    pub unix: Option<PathBuf>,
    /// `--udp`: serve UDP on the port instead of TCP.
    pub udp: bool,
    /// `--backend HOST:PORT`, resolved (the proxy's upstream).
    pub backend: Option<SocketAddr>,
    /// `--idle-timeout SECS`: close connections without a byte read or
    /// written for this long ([`Builder::idle_timeout`]); `None` for 0.
    pub idle_timeout: Option<Duration>,
    /// `--header-timeout SECS` (HTTP): close a connection whose request
    /// head is not complete this long after its first byte, or that sends
    /// nothing this long after it opened; `None` for 0.
    pub header_timeout: Option<Duration>,
    /// `--connect-timeout SECS` (proxy): how long dialing the backend may
    /// take ([`Builder::dial_timeout`]); `None` for 0 (the OS's limit).
    pub connect_timeout: Option<Duration>,
    /// `--tls-port N --tls-cert PATH --tls-key PATH`: also serve TLS.
    pub tls: Option<tls::Listen>,
    /// `--tls-cipher-suites`, `--tls-versions`, `--tls-handshake-timeout`:
    /// for the TLS port and the proxy's TLS dials.
    pub tls_params: tls::Params,
    /// `--backend-tls --backend-ca PATH [--backend-sni NAME]` (proxy):
    /// speak TLS to the backend.
    pub backend_tls: Option<tls::Backend>,
}

/// `secs` seconds, `None` for 0 (disabled).
fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A `SECS` flag value: a non-negative number of seconds (fractions
/// allowed), `Ok(None)` for 0 (disabled).
fn parse_secs(v: &str) -> Option<Option<Duration>> {
    let s: f64 = v.parse().ok()?;
    let d = Duration::try_from_secs_f64(s).ok()?;
    Some((!d.is_zero()).then_some(d))
}

impl Opts {
    /// The flags' defaults for `spec`.
    pub fn defaults(spec: &Spec) -> Opts {
        Opts {
            port: spec.default_port,
            loops: 0,
            balance: LoadBalance::Random,
            reuseport: false,
            per_loop_listeners: false,
            unix: None,
            udp: false,
            backend: None,
            idle_timeout: secs(spec.idle_timeout),
            header_timeout: spec.header_timeout.and_then(secs),
            connect_timeout: spec.connect_timeout.and_then(secs),
            tls: None,
            tls_params: tls::Params::default(),
            backend_tls: None,
        }
    }

    /// The listen addresses: `tcp://:PORT` (all interfaces, as Go's evio
    /// examples) or `udp://:PORT`, then `tls://:TLS_PORT`, then
    /// `unix://PATH`.
    pub fn addrs(&self) -> Vec<String> {
        let scheme = if self.udp { "udp" } else { "tcp" };
        let query = if self.reuseport {
            "?reuseport=true"
        } else {
            ""
        };
        let mut addrs = vec![format!("{scheme}://:{}{query}", self.port)];
        if let Some(t) = &self.tls {
            addrs.push(format!("tls://:{}{query}", t.port));
        }
        if let Some(path) = &self.unix {
            addrs.push(format!("unix://{}", path.display()));
        }
        addrs
    }

    /// A builder with the flags applied: `--loops`, `--balance`,
    /// `--per-loop-listeners`, `--idle-timeout`, and for the proxy
    /// `--connect-timeout`. Idle connections are reclaimed when the process
    /// runs out of file descriptors ([`Builder::reclaim_idle`]); which
    /// connections are idle is each handler's call
    /// (`Conn::set_reclaimable`). The TLS config is not in it: [`run`] adds
    /// it after reading the files ([`Opts::server_tls_config`]).
    pub fn builder(&self) -> Builder {
        let builder = Builder::new()
            .num_loops(self.loops)
            .load_balance(self.balance)
            .per_loop_listeners(self.per_loop_listeners)
            .idle_timeout(self.idle_timeout)
            .reclaim_idle(true);
        if self.backend.is_some() {
            builder.dial_timeout(self.connect_timeout)
        } else {
            builder
        }
    }

    /// The TLS port's rustls config (`--tls-cert`, `--tls-key`, the suites
    /// and versions, `alpn`), `None` without `--tls-port`.
    ///
    /// # Errors
    /// An unreadable or invalid PEM file, or a key that does not match the
    /// certificate; the message names the file.
    pub fn server_tls_config(
        &self,
        alpn: &[&[u8]],
    ) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
        self.tls
            .as_ref()
            .map(|t| tls::server_config(&t.cert, &t.key, &self.tls_params, alpn))
            .transpose()
    }

    /// The proxy's rustls config for dialing its backend (`--backend-ca`,
    /// the suites and versions) and the server name to ask for, `None`
    /// without `--backend-tls`.
    ///
    /// # Errors
    /// An unreadable or invalid CA file; the message names it.
    pub fn backend_tls_config(&self) -> io::Result<Option<(Arc<rustls::ClientConfig>, String)>> {
        self.backend_tls
            .as_ref()
            .map(|b| {
                let config = tls::client_config(&b.ca, &self.tls_params)?;
                Ok((config, b.server_name.clone()))
            })
            .transpose()
    }
}

/// What went wrong on the command line, or a request for help.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// `-h` / `--help`.
    Help,
    /// A bad flag or value, explained.
    Bad(String),
}

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
        ("", "")
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
         \x20      [--per-loop-listeners] [--unix PATH] [--idle-timeout SECS]{flags}\n\
         \n\
         {backend_help}\
         \x20 --port N                port to listen on, all interfaces (default {port}; 0 picks one)\n\
         \x20 --loops N               event loops: 0 or 1 = one, -1 = one per core (default 0)\n\
         \x20 --balance POLICY        random, round-robin or least-connections (default random)\n\
         \x20 --reuseport             set SO_REUSEPORT on the listener\n\
         \x20 --per-loop-listeners    every loop gets its own SO_REUSEPORT listener and accepts\n\
         \x20                         by itself (the kernel spreads connections; --balance\n\
         \x20                         does not apply)\n\
         \x20 --unix PATH             also listen on the unix socket PATH\n\
         \x20 --idle-timeout SECS     close connections without a byte read or written for\n\
         \x20                         SECS; 0 = never (default {idle})\n\
         {extra}\
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
        idle = spec.idle_timeout,
    )
}

/// Parses the flags (without the program name).
pub fn parse(spec: &Spec, args: impl IntoIterator<Item = OsString>) -> Result<Opts, CliError> {
    let mut opts = Opts::defaults(spec);
    let mut args = args.into_iter();
    // TLS flags, checked together at the end.
    let (mut tls_port, mut tls_cert, mut tls_key) = (None, None, None);
    let mut tls_params_given = None;
    let mut handshake_given = false;
    let (mut backend_tls, mut backend_ca, mut backend_sni) = (false, None, None);
    let mut backend_host = String::new();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| CliError::Bad(format!("argument is not UTF-8: {a:?}")))?;
        // `--flag value` and `--flag=value` are both accepted.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |what: &str| -> Result<String, CliError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| CliError::Bad(format!("{flag} needs {what}"))),
            }
        };
        let bad_value =
            |flag: &str, v: &str| CliError::Bad(format!("invalid value for {flag}: {v:?}"));
        match flag.as_str() {
            "-h" | "--help" => return Err(CliError::Help),
            "--port" => {
                let v = value("a port number")?;
                opts.port = v.parse().map_err(|_| bad_value("--port", &v))?;
            }
            "--loops" => {
                let v = value("a number")?;
                opts.loops = v.parse().map_err(|_| bad_value("--loops", &v))?;
                if opts.loops < -1 {
                    return Err(bad_value("--loops", &v));
                }
            }
            "--balance" => {
                let v = value("a policy")?;
                opts.balance = match v.as_str() {
                    "random" => LoadBalance::Random,
                    "round-robin" => LoadBalance::RoundRobin,
                    "least-connections" => LoadBalance::LeastConnections,
                    _ => return Err(bad_value("--balance", &v)),
                };
            }
            "--unix" => opts.unix = Some(PathBuf::from(value("a path")?)),
            "--backend" if spec.backend => {
                let v = value("HOST:PORT")?;
                let resolved = v.to_socket_addrs().ok().and_then(|mut a| a.next());
                opts.backend = Some(resolved.ok_or_else(|| bad_value("--backend", &v))?);
                backend_host = v.rsplit_once(':').map_or("", |(h, _)| h).to_string();
            }
            "--tls-port" => {
                let v = value("a port number")?;
                tls_port = Some(v.parse::<u16>().map_err(|_| bad_value(&flag, &v))?);
            }
            "--tls-cert" => tls_cert = Some(PathBuf::from(value("a path")?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value("a path")?)),
            "--tls-cipher-suites" => {
                let v = value("a list of cipher suites")?;
                let suites = tls::parse_suites(&v).map_err(CliError::Bad)?;
                opts.tls_params.cipher_suites = Some(suites);
                tls_params_given = Some("--tls-cipher-suites");
            }
            "--tls-versions" => {
                let v = value("a list of versions")?;
                opts.tls_params.versions =
                    tls::parse_versions(&v).ok_or_else(|| bad_value(&flag, &v))?;
                tls_params_given = Some("--tls-versions");
            }
            "--tls-handshake-timeout" => {
                let v = value("seconds")?;
                opts.tls_params.handshake_timeout =
                    parse_secs(&v).ok_or_else(|| bad_value(&flag, &v))?;
                handshake_given = true;
            }
            "--tls-no-resumption" => {
                opts.tls_params.no_resumption = true;
                handshake_given = true;
            }
            "--backend-ca" if spec.backend => backend_ca = Some(PathBuf::from(value("a path")?)),
            "--backend-sni" if spec.backend => {
                let v = value("a server name")?;
                if rustls::pki_types::ServerName::try_from(v.as_str()).is_err() {
                    return Err(bad_value(&flag, &v));
                }
                backend_sni = Some(v);
            }
            "--idle-timeout" => {
                let v = value("seconds")?;
                opts.idle_timeout = parse_secs(&v).ok_or_else(|| bad_value(&flag, &v))?;
            }
            "--header-timeout" if spec.header_timeout.is_some() => {
                let v = value("seconds")?;
                opts.header_timeout = parse_secs(&v).ok_or_else(|| bad_value(&flag, &v))?;
            }
            "--connect-timeout" if spec.connect_timeout.is_some() => {
                let v = value("seconds")?;
                opts.connect_timeout = parse_secs(&v).ok_or_else(|| bad_value(&flag, &v))?;
            }
            "--reuseport" | "--per-loop-listeners" | "--udp" | "--backend-tls"
                if inline.is_some() =>
            {
                return Err(CliError::Bad(format!("{flag} takes no value")));
            }
            "--reuseport" => opts.reuseport = true,
            "--per-loop-listeners" => opts.per_loop_listeners = true,
            "--udp" if spec.udp => opts.udp = true,
            "--backend-tls" if spec.backend => backend_tls = true,
            _ => return Err(CliError::Bad(format!("unknown flag {flag:?}"))),
        }
    }
    if spec.backend && opts.backend.is_none() {
        return Err(CliError::Bad("--backend HOST:PORT is required".into()));
    }
    match (tls_port, tls_cert, tls_key) {
        (Some(port), Some(cert), Some(key)) => opts.tls = Some(tls::Listen { port, cert, key }),
        (None, None, None) => {}
        (port, cert, key) => {
            let missing: Vec<&str> = [
                (port.is_none(), "--tls-port"),
                (cert.is_none(), "--tls-cert"),
                (key.is_none(), "--tls-key"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, f)| *f)
            .collect();
            return Err(CliError::Bad(format!(
                "--tls-port, --tls-cert and --tls-key go together (missing {})",
                missing.join(" and ")
            )));
        }
    }
    if handshake_given && opts.tls.is_none() {
        return Err(CliError::Bad(
            "--tls-handshake-timeout needs --tls-port".into(),
        ));
    }
    match (backend_tls, backend_ca) {
        (true, Some(ca)) => {
            let server_name = backend_sni.unwrap_or_else(|| tls::default_sni(&backend_host));
            opts.backend_tls = Some(tls::Backend { ca, server_name });
        }
        (true, None) => {
            return Err(CliError::Bad(
                "--backend-tls needs --backend-ca PATH".into(),
            ))
        }
        (false, Some(_)) => return Err(CliError::Bad("--backend-ca needs --backend-tls".into())),
        (false, None) if backend_sni.is_some() => {
            return Err(CliError::Bad("--backend-sni needs --backend-tls".into()))
        }
        (false, None) => {}
    }
    if let Some(flag) = tls_params_given {
        if opts.tls.is_none() && opts.backend_tls.is_none() {
            let or_backend = if spec.backend {
                " or --backend-tls"
            } else {
                ""
            };
            return Err(CliError::Bad(format!(
                "{flag} needs --tls-port{or_backend}"
            )));
        }
        opts.tls_params.check().map_err(CliError::Bad)?;
    }
    Ok(opts)
}

/// Parses the process's flags; prints the usage and exits with status 2 on
/// a bad flag (0 for `--help`).
pub fn parse_or_exit(spec: &Spec) -> Opts {
    match parse(spec, std::env::args_os().skip(1)) {
        Ok(opts) => opts,
        Err(CliError::Help) => {
            print!("{}", usage(spec));
            std::process::exit(0);
        }
        Err(CliError::Bad(msg)) => {
            eprint!("{}: {msg}\n\n{}", spec.bin, usage(spec));
            std::process::exit(2);
        }
    }
}

/// Starts `handler` on the addresses of `opts`, prints the startup line and
/// serves until SIGINT or SIGTERM (then shuts down: connections are closed,
/// the unix socket file is removed) or until the server stops by itself.
///
/// With `--tls-port` the TLS config is loaded first (an unreadable or
/// invalid PEM file is an error naming it) and the same handler serves the
/// TLS port, ALPN [`Spec::alpn`].
pub fn run<H>(spec: &Spec, opts: &Opts, handler: H) -> io::Result<()>
where
    H: EventHandler + Clone + Send + 'static,
{
    let mut builder = opts.builder();
    if let Some(config) = opts.server_tls_config(spec.alpn)? {
        builder = builder
            .tls_config(config)
            .tls_handshake_timeout(opts.tls_params.handshake_timeout);
    }
    // Install the handlers first, so that a signal right after the startup
    // line is not lost. A second SIGINT/SIGTERM exits at once (status 1).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    raise_fd_limit();
    let server = builder.start(handler, &opts.addrs())?;
    let port = match server.addrs().first() {
        Some(Addr::Inet(a)) => a.port(),
        _ => opts.port,
    };
    let proto = if opts.udp { " (udp)" } else { "" };
    // The TLS listener is the second address (see `Opts::addrs`).
    let tls = match (&opts.tls, server.addrs().get(1)) {
        (Some(_), Some(Addr::Inet(a))) => format!(" and TLS port {}", a.port()),
        _ => String::new(),
    };
    let unix = match &opts.unix {
        Some(p) => format!(" and unix socket {}", p.display()),
        None => String::new(),
    };
    eprintln!(
        "{} server started on port {port}{proto}{tls}{unix}",
        spec.name
    );
    // `ServerHandle::shutdown` and `wait` consume the handle, so one thread
    // watches both the flag and the server.
    while !server.is_shutting_down() {
        if stop.load(Ordering::Relaxed) {
            return server.shutdown();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as redis-server does:
/// the usual soft default (1024) would cap a server at ~1,000 clients.
/// Failing to raise it is not an error; the server then sheds accepts at the
/// lower limit (see `docs/reliability.md`).
fn raise_fd_limit() {
    if let Err(e) = evio_sys::net::raise_fd_limit(u64::MAX) {
        eprintln!("note: could not raise the open-file limit: {e}");
    }
}

/// A binary's whole `main`: flags, handler, run; exit status 0 after a clean
/// shutdown, 1 on an error (`make` failing too: say, a TLS file it could
/// not read), 2 on a bad flag.
pub fn main<H>(spec: &Spec, make: impl FnOnce(&Opts) -> io::Result<H>) -> ExitCode
where
    H: EventHandler + Clone + Send + 'static,
{
    let opts = parse_or_exit(spec);
    match make(&opts).and_then(|handler| run(spec, &opts, handler)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", spec.bin);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        bin: "echo-server",
        name: "echo",
        default_port: 5000,
        udp: true,
        backend: false,
        idle_timeout: 60,
        header_timeout: None,
        connect_timeout: None,
        alpn: &[],
    };

    fn p(args: &[&str]) -> Result<Opts, CliError> {
        parse(&SPEC, args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_flags() {
        let o = p(&[]).unwrap();
        assert_eq!(o, Opts::defaults(&SPEC));
        assert_eq!(o.addrs(), ["tcp://:5000"]);
        let o = p(&[
            "--port",
            "1",
            "--loops=-1",
            "--balance",
            "least-connections",
            "--reuseport",
            "--unix",
            "/tmp/s",
            "--udp",
        ])
        .unwrap();
        assert_eq!(o.port, 1);
        assert_eq!(o.loops, -1);
        assert_eq!(o.balance, LoadBalance::LeastConnections);
        assert_eq!(o.addrs(), ["udp://:1?reuseport=true", "unix:///tmp/s"]);
    }

    #[test]
    fn timeouts_and_listeners() {
        let o = p(&[]).unwrap();
        assert_eq!(o.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!((o.header_timeout, o.connect_timeout), (None, None));
        assert!(!o.per_loop_listeners);
        let o = p(&["--idle-timeout", "0", "--per-loop-listeners"]).unwrap();
        assert_eq!(o.idle_timeout, None);
        assert!(o.per_loop_listeners);
        let o = p(&["--idle-timeout=0.25"]).unwrap();
        assert_eq!(o.idle_timeout, Some(Duration::from_millis(250)));
        for bad in [
            &["--idle-timeout"][..],
            &["--idle-timeout", "-1"],
            &["--idle-timeout", "x"],
            &["--idle-timeout", "inf"],
            &["--idle-timeout", "NaN"],
            &["--per-loop-listeners=yes"],
            // Only the HTTP server and the proxy take these.
            &["--header-timeout", "1"],
            &["--connect-timeout", "1"],
        ] {
            assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
        }
        let http = Spec {
            header_timeout: Some(60),
            udp: false,
            ..SPEC
        };
        let o = parse(&http, []).unwrap();
        assert_eq!(o.header_timeout, Some(Duration::from_secs(60)));
        let o = parse(&http, ["--header-timeout", "0"].map(OsString::from)).unwrap();
        assert_eq!(o.header_timeout, None);
        let o = parse(&http, ["--header-timeout", "1.5"].map(OsString::from)).unwrap();
        assert_eq!(o.header_timeout, Some(Duration::from_millis(1500)));
        let text = usage(&http);
        assert!(text.contains("--header-timeout SECS") && text.contains("(default 60)"));
        assert!(!usage(&SPEC).contains("--header-timeout"));
        assert!(usage(&SPEC).contains("--per-loop-listeners"));
        assert!(usage(&SPEC).contains("--idle-timeout SECS"));
    }

    #[test]
    fn bad_flags() {
        for bad in [
            &["--nope"][..],
            &["--port"],
            &["--port", "70000"],
            &["--port", "x"],
            &["--loops", "-2"],
            &["--balance", "fair"],
            &["--reuseport=yes"],
            &["extra"],
        ] {
            assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
        }
        assert_eq!(p(&["--help"]), Err(CliError::Help));
        let no_udp = Spec { udp: false, ..SPEC };
        assert!(parse(&no_udp, [OsString::from("--udp")]).is_err());
        assert!(!usage(&no_udp).contains("--udp"));
        assert!(usage(&SPEC).contains("--udp"));
        assert!(parse(&SPEC, ["--backend", "127.0.0.1:1"].map(OsString::from)).is_err());
    }

    #[test]
    fn tls_flags() {
        let o = p(&[
            "--tls-port",
            "0",
            "--tls-cert",
            "c.pem",
            "--tls-key=k.pem",
            "--reuseport",
            "--unix",
            "/tmp/s",
        ])
        .unwrap();
        let t = o.tls.as_ref().unwrap();
        assert_eq!(
            (t.port, t.cert.to_str(), t.key.to_str()),
            (0, Some("c.pem"), Some("k.pem"))
        );
        // TLS is the second address: `run` reads its port from there.
        assert_eq!(
            o.addrs(),
            [
                "tcp://:5000?reuseport=true",
                "tls://:0?reuseport=true",
                "unix:///tmp/s"
            ]
        );
        assert_eq!(o.tls_params, tls::Params::default());
        let o = p(&[
            "--tls-port=8443",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-cipher-suites",
            "TLS13_AES_128_GCM_SHA256",
            "--tls-versions",
            "1.3",
            "--tls-handshake-timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            o.tls_params,
            tls::Params {
                cipher_suites: Some(vec!["TLS13_AES_128_GCM_SHA256".into()]),
                versions: vec![tls::Version::Tls13],
                handshake_timeout: Some(Duration::from_millis(500)),
                no_resumption: false,
            }
        );
        let o = p(&[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-handshake-timeout=0",
        ]);
        assert_eq!(o.unwrap().tls_params.handshake_timeout, None);
        let o = p(&[
            "--tls-port=1",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-no-resumption",
        ]);
        assert!(o.unwrap().tls_params.no_resumption);
        for bad in [
            // All three path flags or none.
            &["--tls-port", "1"][..],
            &["--tls-cert", "c", "--tls-key", "k"],
            &["--tls-port", "1", "--tls-key", "k"],
            &["--tls-port", "70000", "--tls-cert", "c", "--tls-key", "k"],
            &["--tls-port", "1", "--tls-cert", "c", "--tls-key"],
            // The other TLS flags need a TLS port here.
            &["--tls-versions", "1.3"],
            &["--tls-cipher-suites", "TLS13_AES_128_GCM_SHA256"],
            &["--tls-handshake-timeout", "1"],
            // Bad values.
            &[
                "--tls-port=1",
                "--tls-cert=c",
                "--tls-key=k",
                "--tls-versions=1.1",
            ],
            &[
                "--tls-port=1",
                "--tls-cert=c",
                "--tls-key=k",
                "--tls-cipher-suites=RC4",
            ],
            &[
                "--tls-port=1",
                "--tls-cert=c",
                "--tls-key=k",
                "--tls-handshake-timeout=-1",
            ],
            // No suite for the versions allowed.
            &[
                "--tls-port=1",
                "--tls-cert=c",
                "--tls-key=k",
                "--tls-versions=1.2",
                "--tls-cipher-suites=TLS13_AES_128_GCM_SHA256",
            ],
            // Only the proxy dials.
            &["--backend-tls"],
            &["--backend-ca", "ca.pem"],
        ] {
            assert!(matches!(p(bad), Err(CliError::Bad(_))), "{bad:?}");
        }
        let Err(CliError::Bad(msg)) = p(&["--tls-port", "1", "--tls-key", "k"]) else {
            panic!()
        };
        assert!(msg.contains("missing --tls-cert"), "{msg}");
        let text = usage(&SPEC);
        for flag in [
            "--tls-port N",
            "--tls-cert PATH",
            "--tls-key PATH",
            "--tls-cipher-suites LIST",
            "--tls-versions LIST",
            "--tls-handshake-timeout SECS",
            "TLS13_AES_128_GCM_SHA256",
        ] {
            assert!(text.contains(flag), "{flag}");
        }
        assert!(!text.contains("ALPN") && !text.contains("--backend-tls"));
        let http = Spec {
            alpn: &[b"http/1.1"],
            ..SPEC
        };
        assert!(usage(&http).contains("ALPN: http/1.1"));
    }

    #[test]
    fn backend_flag() {
        let proxy = Spec {
            bin: "proxy",
            name: "proxy",
            default_port: 7000,
            udp: false,
            backend: true,
            idle_timeout: 60,
            header_timeout: None,
            connect_timeout: Some(5),
            alpn: &[],
        };
        let pp = |args: &[&str]| parse(&proxy, args.iter().map(OsString::from));
        let o = pp(&["--backend", "127.0.0.1:6379", "--port", "0"]).unwrap();
        assert_eq!(o.backend, Some("127.0.0.1:6379".parse().unwrap()));
        let o = pp(&["--backend=localhost:80"]).unwrap();
        assert_eq!(o.backend.unwrap().port(), 80);
        assert!(o.backend.unwrap().ip().is_loopback());
        for bad in [
            &[][..],
            &["--backend"],
            &["--backend", "nope"],
            &["--backend", "127.0.0.1"],
            &["--backend", "127.0.0.1:99999"],
            &["--port", "1"],
        ] {
            assert!(matches!(pp(bad), Err(CliError::Bad(_))), "{bad:?}");
        }
        assert!(usage(&proxy).contains("--backend HOST:PORT"));
        assert!(usage(&proxy).contains("--connect-timeout SECS"));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        let o = pp(&["--backend=localhost:80", "--connect-timeout", "0"]).unwrap();
        assert_eq!(o.connect_timeout, None);
        assert!(!usage(&SPEC).contains("--backend"));

        // --backend-tls: the CA is required; SNI defaults to the host.
        let o = pp(&[
            "--backend=127.0.0.1:1",
            "--backend-tls",
            "--backend-ca",
            "ca.pem",
        ])
        .unwrap();
        let b = o.backend_tls.unwrap();
        assert_eq!(
            (b.ca.to_str(), b.server_name.as_str()),
            (Some("ca.pem"), "localhost")
        );
        let o = pp(&["--backend-tls", "--backend-ca=ca", "--backend=localhost:1"]).unwrap();
        assert_eq!(o.backend_tls.unwrap().server_name, "localhost");
        let o = pp(&[
            "--backend=[::1]:1",
            "--backend-tls",
            "--backend-ca=ca",
            "--backend-sni",
            "redis.internal",
        ])
        .unwrap();
        assert_eq!(o.backend_tls.unwrap().server_name, "redis.internal");
        // The suites and versions may apply to the dials alone.
        let o = pp(&[
            "--backend=127.0.0.1:1",
            "--backend-tls",
            "--backend-ca=ca",
            "--tls-versions=1.3",
        ]);
        assert_eq!(o.unwrap().tls_params.versions, [tls::Version::Tls13]);
        for bad in [
            &["--backend=127.0.0.1:1", "--backend-tls"][..],
            &["--backend=127.0.0.1:1", "--backend-ca=ca"],
            &["--backend=127.0.0.1:1", "--backend-sni=x"],
            &[
                "--backend=127.0.0.1:1",
                "--backend-tls=yes",
                "--backend-ca=ca",
            ],
            &[
                "--backend=127.0.0.1:1",
                "--backend-tls",
                "--backend-ca=ca",
                "--backend-sni=a b",
            ],
            &["--backend=127.0.0.1:1", "--tls-versions=1.3"],
        ] {
            assert!(matches!(pp(bad), Err(CliError::Bad(_))), "{bad:?}");
        }
        let text = usage(&proxy);
        for flag in ["--backend-tls", "--backend-ca PATH", "--backend-sni NAME"] {
            assert!(text.contains(flag), "{flag}");
        }
    }
}
