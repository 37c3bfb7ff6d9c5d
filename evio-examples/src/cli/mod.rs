//! The command line the example servers share, and how they run:
//! start, print one line, serve until SIGINT/SIGTERM (a drain) or SIGQUIT
//! (at once), or until a callback returns `Action::Shutdown`; shut down
//! cleanly.
//!
//! Every binary also serves TLS with `--tls-port N --tls-cert PATH
//! --tls-key PATH` (the same handler on both ports; see [`crate::tls`]),
//! and the proxy dials its backend over TLS with `--backend-tls`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use evio_core::upgrade::{Successor, UpgradeSocket};
use evio_core::{Addr, Builder, EventHandler, LoadBalance, PollPoller};
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};

use crate::tls;
use supervise::{Job, Kept, Startup, Supervised};

mod help;
pub mod log;
mod parse;
mod supervise;
#[cfg(test)]
mod tests;

pub use help::usage;
use parse::secs;
pub use parse::{parse, parse_or_exit, CliError};

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
    /// A binary's own flags, beyond the shared ones (the HTTP proxy's).
    pub extra: Option<&'static Extra>,
}

/// One of a binary's own flags as given: its name (with the dashes) and
/// value (`None` for a switch).
pub type ExtraFlag = (String, Option<String>);

/// A binary's own flags: recognised here, collected in [`Opts::extra`] in
/// order, checked by `check` (its message is a bad-flag error, exit 2) and
/// interpreted by the binary. An extra flag wins over a shared one of the
/// same name (the HTTP proxy's `--balance` picks upstreams, not loops).
#[derive(Clone, Copy, Debug)]
pub struct Extra {
    /// `Some(true)` for a flag that takes a value, `Some(false)` for a
    /// switch, `None` for a flag that is not one of them.
    pub takes_value: fn(&str) -> Option<bool>,
    /// Checks the collected flags together.
    pub check: fn(&[ExtraFlag]) -> Result<(), String>,
    /// The synopsis part, e.g. `" --upstream HOST:PORT..."`.
    pub synopsis: &'static str,
    /// The help lines, each starting with two spaces.
    pub help: &'static str,
}

/// `--poller`: which readiness backend the loops use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollerChoice {
    /// The platform's own (`epoll` on Linux, `kqueue` on macOS and the
    /// BSDs): [`evio_core::DefaultPoller`].
    #[default]
    Native,
    /// The portable poll(2) backend, [`evio_core::PollPoller`]
    /// (level-triggered; for comparison and for platforms without one).
    Poll,
}

impl PollerChoice {
    /// The name the platform's own backend is given on the command line.
    pub const NATIVE_NAME: &'static str = if cfg!(any(target_os = "linux", target_os = "android")) {
        "epoll"
    } else if cfg!(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )) {
        "kqueue"
    } else {
        "poll"
    };
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
    /// `--poller epoll|kqueue|poll`: the platform's backend (default) or
    /// the portable poll(2) one.
    pub poller: PollerChoice,
    /// `--reuseport`: set `SO_REUSEPORT` on the listener.
    pub reuseport: bool,
    /// `--per-loop-listeners`: every loop gets its own `SO_REUSEPORT`
    /// listener and accepts by itself ([`Builder::per_loop_listeners`]).
    pub per_loop_listeners: bool,
    /// `--defer-accept`: TCP listeners accept a connection only once it
    /// has sent something (`?defer_accept=true`, Linux `TCP_DEFER_ACCEPT`).
    pub defer_accept: bool,
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
    /// `--log-level off|error|warn|info|debug|trace` (default `warn`);
    /// `RUST_LOG`, when set, wins ([`log::init`]).
    pub log_level: &'static str,
    /// `--drain-timeout SECS` (default 10): on SIGINT/SIGTERM, how long
    /// connections may take to write what is queued before they are
    /// closed anyway.
    pub drain_timeout: Duration,
    /// `--upgrade-socket PATH`: listen there for a successor process
    /// ([`evio_core::upgrade`]).
    pub upgrade_socket: Option<PathBuf>,
    /// `--upgrade`: start as the successor of the server listening at
    /// `--upgrade-socket`.
    pub upgrade: bool,
    /// `--metrics-port N`: serve the loops' counters in the Prometheus text
    /// format on `GET /metrics` ([`crate::metrics`]); off by default.
    pub metrics_port: Option<u16>,
    /// The binary's own flags ([`Spec::extra`]), in order: name (with the
    /// dashes) and value.
    pub extra: Vec<ExtraFlag>,
}

impl Opts {
    /// The flags' defaults for `spec`.
    pub fn defaults(spec: &Spec) -> Opts {
        Opts {
            port: spec.default_port,
            loops: 0,
            balance: LoadBalance::Random,
            poller: PollerChoice::Native,
            reuseport: false,
            per_loop_listeners: false,
            defer_accept: false,
            unix: None,
            udp: false,
            backend: None,
            idle_timeout: secs(spec.idle_timeout),
            header_timeout: spec.header_timeout.and_then(secs),
            connect_timeout: spec.connect_timeout.and_then(secs),
            tls: None,
            tls_params: tls::Params::default(),
            backend_tls: None,
            log_level: log::DEFAULT_LEVEL,
            metrics_port: None,
            upgrade_socket: None,
            upgrade: false,
            drain_timeout: Duration::from_secs(10),
            extra: Vec::new(),
        }
    }

    /// The listen addresses: `tcp://:PORT` (all interfaces, as Go's evio
    /// examples) or `udp://:PORT`, then `tls://:TLS_PORT`, then
    /// `unix://PATH`; `--reuseport` and `--defer-accept` as options.
    pub fn addrs(&self) -> Vec<String> {
        let scheme = if self.udp { "udp" } else { "tcp" };
        let options: Vec<&str> = [
            (self.reuseport, "reuseport=true"),
            (self.defer_accept && !self.udp, "defer_accept=true"),
        ]
        .iter()
        .filter_map(|&(on, o)| on.then_some(o))
        .collect();
        let query = if options.is_empty() {
            String::new()
        } else {
            format!("?{}", options.join("&"))
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
        if self.backend.is_some() || self.connect_timeout.is_some() {
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

/// How long a metrics connection may stay silent.
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `handler` on the addresses of `opts`, prints the startup line and
/// serves until a signal or until the server stops by itself. SIGINT and
/// SIGTERM drain ([`crate::drain`]): accepting stops, each connection
/// closes at its next request boundary, the rest after `--drain-timeout`
/// (a second signal exits at once, status 1). SIGQUIT stops at once: one
/// last attempt to write what is queued, then every connection closes.
/// Either way the unix socket file is removed (unless a successor took it).
///
/// With `--upgrade` the listening sockets come from the server at
/// `--upgrade-socket` ([`evio_core::upgrade::Successor`]), which drains
/// once this one serves; with `--upgrade-socket` the server then listens
/// there for its own successor, on a thread of its own, and drains once
/// one has taken over.
///
/// With `--tls-port` the TLS config is loaded first (an unreadable or
/// invalid PEM file is an error naming it) and the same handler serves the
/// TLS port, ALPN [`Spec::alpn`]. `--poller poll` runs the loops on
/// [`PollPoller`] instead of the platform's backend.
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
    // line is not lost. SIGINT/SIGTERM drain (a second one exits at once,
    // status 1); SIGQUIT stops now.
    let stop = Arc::new(AtomicBool::new(false));
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    signal_hook::flag::register(SIGQUIT, quit.clone())?;
    raise_fd_limit();
    let mut successor = match (&opts.upgrade_socket, opts.upgrade) {
        (Some(path), true) => Some(Successor::connect(path)?),
        _ => None,
    };
    if let Some(s) = &mut successor {
        builder = builder.inherit(s.take_sockets());
    }
    // Everything that needs the running server happens on loop 0 once it
    // serves (see `supervise`): the loop runs on this thread.
    let startup: Startup<'_, H::Context> = Box::new(move |info| {
        let control = info.control.clone();
        // The metrics endpoint: a one-loop evio server of its own, reading
        // the main server's counters (it adds no work to the main loops).
        // Its port is shared (SO_REUSEPORT) so that a successor can bind it
        // while this process still runs.
        let metrics = match opts.metrics_port {
            Some(p) => {
                let control = control.clone();
                let endpoint = crate::metrics::Endpoint::new(move || control.metrics());
                // A scraper that connects and stalls is dropped (as any
                // client of the servers is, after their idle timeout).
                let builder = Builder::new().idle_timeout(Some(METRICS_IDLE_TIMEOUT));
                Some(builder.start(endpoint, &[format!("tcp://:{p}?reuseport=true")])?)
            }
            None => None,
        };
        // The old server drains once told; its upgrade socket file is gone
        // then, and this one listens at the same path.
        let took_over = successor.map(|s| s.ready());
        if let Some(path) = &opts.upgrade_socket {
            let upgrades = UpgradeSocket::bind(path)?;
            let drain_timeout = opts.drain_timeout;
            std::thread::Builder::new()
                .name("evio-upgrade".into())
                .spawn(move || {
                    if let Err(e) = upgrades.serve(&control, drain_timeout) {
                        tracing::error!(error = %e, "upgrade socket failed; no more upgrades");
                    }
                })?;
        }
        eprintln!(
            "{}",
            startup_line(spec, opts, &info.addrs, metrics.as_ref().map(|m| m.addrs()))
        );
        match took_over {
            Some(Ok(pid)) => eprintln!(
                "{}: took over from process {pid}, which is draining",
                spec.bin
            ),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "upgrade: the old server did not confirm its drain")
            }
            None => {}
        }
        Ok(metrics.map(|m| Box::new(m) as Kept))
    });
    // A drain (a signal, or a successor taking over) runs until the server
    // stops; SIGQUIT meanwhile cuts it short.
    let job = Job::new(startup, stop, quit, opts.drain_timeout);
    let handler = Supervised::new(handler, &job);
    let served = match opts.poller {
        PollerChoice::Native => builder.serve(handler, &opts.addrs()),
        PollerChoice::Poll => builder
            .poller(|_| PollPoller::new())
            .serve(handler, &opts.addrs()),
    };
    let finished = job.finish();
    served.and(finished)
}

/// `{name} server started on port N` with the other ports and the unix
/// socket.
fn startup_line(spec: &Spec, opts: &Opts, addrs: &[Addr], metrics: Option<&[Addr]>) -> String {
    let port = match addrs.first() {
        Some(Addr::Inet(a)) => a.port(),
        _ => opts.port,
    };
    let proto = if opts.udp { " (udp)" } else { "" };
    // The TLS listener is the second address (see `Opts::addrs`).
    let tls = match (&opts.tls, addrs.get(1)) {
        (Some(_), Some(Addr::Inet(a))) => format!(" and TLS port {}", a.port()),
        _ => String::new(),
    };
    let unix = match &opts.unix {
        Some(p) => format!(" and unix socket {}", p.display()),
        None => String::new(),
    };
    let metrics = match metrics.and_then(|m| m.first()) {
        Some(Addr::Inet(a)) => format!(" and metrics port {}", a.port()),
        _ => String::new(),
    };
    format!(
        "{} server started on port {port}{proto}{tls}{unix}{metrics}",
        spec.name
    )
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
    if let Err(e) = log::init(opts.log_level) {
        eprintln!(
            "{}: {e}; logging at --log-level {}",
            spec.bin, opts.log_level
        );
    }
    match make(&opts).and_then(|handler| run(spec, &opts, handler)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", spec.bin);
            ExitCode::FAILURE
        }
    }
}
