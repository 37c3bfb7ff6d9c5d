//! The `http-proxy` binary's own flags ([`EXTRA`]), beyond the ones every
//! example server takes ([`crate::cli`]), and the [`Settings`] they make.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Extra, ExtraFlag, Opts};
use crate::tls;

use super::probe::Probe;
use super::upstreams::MAX_UPSTREAMS;
use super::{Balance, Config, Upstreams};

/// The flags, for [`Spec::extra`](crate::cli::Spec::extra).
pub static EXTRA: Extra = Extra {
    takes_value,
    check,
    synopsis: " --upstream HOST:PORT [--upstream HOST:PORT ...]",
    help: "  --upstream HOST:PORT    an upstream server; repeat for more (at least one, at most 64)\n\
           \x20 --balance POLICY        round-robin (default), least-conn, or hash (consistent\n\
           \x20                         hashing on the client address, or on --hash-header)\n\
           \x20 --hash-header NAME      with --balance hash: hash this request header instead\n\
           \x20 --upstream-tls          speak TLS to the upstreams (SNI and verification)\n\
           \x20 --upstream-ca PATH      the CA certificates (PEM) to trust (default: the system's)\n\
           \x20 --upstream-sni NAME     the server name sent and verified (default: the first\n\
           \x20                         --upstream host if a name, localhost for an address)\n\
           \x20 --upstream-header-timeout SECS  the response head must arrive within SECS of\n\
           \x20                         the request's end, else 504 (default 60)\n\
           \x20 --upstream-idle-timeout SECS  close an upstream connection in use that is\n\
           \x20                         silent for SECS (default 60)\n\
           \x20 --client-header-timeout SECS  a client's request head must be complete SECS\n\
           \x20                         after it starts (or after the connection opens), else\n\
           \x20                         408 and close (default 60)\n\
           \x20 --keepalive-timeout SECS  close idle pooled upstream connections after SECS\n\
           \x20                         (default 60)\n\
           \x20 --max-fails N           failures in a row that mark an upstream down (default 3;\n\
           \x20                         0 = never)\n\
           \x20 --fail-timeout SECS     how long an upstream stays down after them (default 10)\n\
           \x20 --health-check PATH     probe every upstream with GET PATH; one that does not\n\
           \x20                         answer 2xx or 3xx is down until it does\n\
           \x20 --health-interval SECS  between probes (default 2)\n\
           \x20 --access-log            one line per request on stdout\n\
           \x20 --connect-timeout SECS  give up connecting to an upstream after SECS; 0 = the\n\
           \x20                         OS's limit (default 5)\n",
};

fn takes_value(flag: &str) -> Option<bool> {
    match flag {
        "--upstream-tls" | "--access-log" => Some(false),
        "--upstream"
        | "--balance"
        | "--hash-header"
        | "--upstream-ca"
        | "--upstream-sni"
        | "--upstream-header-timeout"
        | "--upstream-idle-timeout"
        | "--client-header-timeout"
        | "--keepalive-timeout"
        | "--max-fails"
        | "--fail-timeout"
        | "--health-check"
        | "--health-interval" => Some(true),
        _ => None,
    }
}

fn check(flags: &[ExtraFlag]) -> Result<(), String> {
    Flags::parse(flags).map(|_| ())
}

/// The flags, checked.
#[derive(Clone, Debug)]
struct Flags {
    upstreams: Vec<SocketAddr>,
    first_host: String,
    balance: Balance,
    hash_header: Option<String>,
    upstream_tls: bool,
    upstream_ca: Option<PathBuf>,
    upstream_sni: Option<String>,
    config: Config,
    max_fails: u32,
    fail_timeout: Duration,
    health_check: Option<String>,
    health_interval: Duration,
}

/// A `SECS` value: `None` for 0.
fn secs(flag: &str, v: &str) -> Result<Option<Duration>, String> {
    let bad = || format!("invalid value for {flag}: {v:?}");
    let s: f64 = v.parse().map_err(|_| bad())?;
    let d = Duration::try_from_secs_f64(s).map_err(|_| bad())?;
    Ok((!d.is_zero()).then_some(d))
}

impl Flags {
    fn parse(flags: &[ExtraFlag]) -> Result<Flags, String> {
        let mut f = Flags {
            upstreams: Vec::new(),
            first_host: String::new(),
            balance: Balance::RoundRobin,
            hash_header: None,
            upstream_tls: false,
            upstream_ca: None,
            upstream_sni: None,
            config: Config::default(),
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
            health_check: None,
            health_interval: Duration::from_secs(2),
        };
        for (flag, value) in flags {
            let v = value.as_deref().unwrap_or("");
            let bad = || format!("invalid value for {flag}: {v:?}");
            match flag.as_str() {
                "--upstream" => {
                    let addr = v
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| format!("--upstream {v:?}: not a reachable HOST:PORT"))?;
                    if f.upstreams.is_empty() {
                        f.first_host = v.rsplit_once(':').map_or("", |(h, _)| h).to_string();
                    }
                    f.upstreams.push(addr);
                }
                "--balance" => {
                    f.balance = match v {
                        "round-robin" => Balance::RoundRobin,
                        "least-conn" => Balance::LeastConn,
                        "hash" => Balance::Hash,
                        _ => return Err(bad()),
                    }
                }
                "--hash-header" => {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                        return Err(bad());
                    }
                    f.hash_header = Some(v.to_string());
                }
                "--upstream-tls" => f.upstream_tls = true,
                "--upstream-ca" => f.upstream_ca = Some(PathBuf::from(v)),
                "--upstream-sni" => {
                    if rustls::pki_types::ServerName::try_from(v).is_err() {
                        return Err(bad());
                    }
                    f.upstream_sni = Some(v.to_string());
                }
                "--upstream-header-timeout" => f.config.upstream_header_timeout = secs(flag, v)?,
                "--upstream-idle-timeout" => f.config.upstream_idle_timeout = secs(flag, v)?,
                "--client-header-timeout" => f.config.client_header_timeout = secs(flag, v)?,
                "--keepalive-timeout" => f.config.keepalive_timeout = secs(flag, v)?,
                "--max-fails" => f.max_fails = v.parse().map_err(|_| bad())?,
                "--fail-timeout" => f.fail_timeout = secs(flag, v)?.unwrap_or(Duration::ZERO),
                "--health-check" => {
                    if !v.starts_with('/') || v.bytes().any(|b| b.is_ascii_whitespace()) {
                        return Err(bad());
                    }
                    f.health_check = Some(v.to_string());
                }
                "--health-interval" => {
                    f.health_interval = secs(flag, v)?.ok_or_else(bad)?;
                }
                "--access-log" => f.config.access_log = true,
                _ => unreachable!("takes_value lists every flag"),
            }
        }
        if f.upstreams.is_empty() {
            return Err("--upstream HOST:PORT is required".into());
        }
        if f.upstreams.len() > MAX_UPSTREAMS {
            return Err(format!("at most {MAX_UPSTREAMS} --upstream"));
        }
        if f.hash_header.is_some() && f.balance != Balance::Hash {
            return Err("--hash-header needs --balance hash".into());
        }
        if !f.upstream_tls && (f.upstream_ca.is_some() || f.upstream_sni.is_some()) {
            return Err("--upstream-ca and --upstream-sni need --upstream-tls".into());
        }
        f.config.hash_header = f.hash_header.clone();
        Ok(f)
    }
}

/// What the flags make: the upstreams, the handler's config, the probe.
#[derive(Debug)]
pub struct Settings {
    /// The upstreams, their balancing and health limits.
    pub upstreams: Arc<Upstreams>,
    /// The handler's config (with the TLS client config loaded).
    pub config: Config,
    /// `--health-check`: what to probe, if anything.
    pub probe: Option<Probe>,
}

impl Settings {
    /// Reads the flags collected in `opts.extra` (checked by the parser)
    /// and loads the TLS client config.
    ///
    /// # Errors
    /// An unreadable CA file, or no system CA certificates.
    pub fn from_opts(opts: &Opts) -> std::io::Result<Settings> {
        let f = Flags::parse(&opts.extra).map_err(std::io::Error::other)?;
        let mut config = f.config.clone();
        if f.upstream_tls {
            let client = match &f.upstream_ca {
                Some(ca) => tls::client_config(ca, &opts.tls_params)?,
                None => tls::system_client_config(&opts.tls_params)?,
            };
            let name = f
                .upstream_sni
                .clone()
                .unwrap_or_else(|| tls::default_sni(&f.first_host));
            config.upstream_tls = Some((client, name));
        }
        let upstreams = Arc::new(Upstreams::new(
            f.upstreams,
            f.balance,
            f.max_fails,
            f.fail_timeout,
        ));
        let probe = f.health_check.map(|path| Probe {
            path,
            interval: f.health_interval,
            tls: config.upstream_tls.clone(),
        });
        Ok(Settings {
            upstreams,
            config,
            probe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, String> {
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = match takes_value(a).expect("a known flag") {
                true => Some(it.next().expect("a value").to_string()),
                false => None,
            };
            flags.push((a.to_string(), v));
        }
        Flags::parse(&flags)
    }

    #[test]
    fn flags_make_the_config() {
        let f = parse(&[
            "--upstream",
            "127.0.0.1:8080",
            "--upstream",
            "localhost:8081",
            "--balance",
            "hash",
            "--hash-header",
            "X-User",
            "--upstream-header-timeout",
            "0.5",
            "--keepalive-timeout",
            "0",
            "--access-log",
        ])
        .unwrap();
        assert_eq!(f.upstreams.len(), 2);
        assert_eq!(f.first_host, "127.0.0.1");
        assert_eq!(f.balance, Balance::Hash);
        assert_eq!(f.config.hash_header.as_deref(), Some("X-User"));
        assert_eq!(
            f.config.upstream_header_timeout,
            Some(Duration::from_millis(500))
        );
        assert_eq!(f.config.keepalive_timeout, None);
        assert!(f.config.access_log);
    }

    #[test]
    fn bad_flags_say_why() {
        for (args, msg) in [
            (&[][..], "--upstream HOST:PORT is required"),
            (&["--upstream", "nowhere"][..], "not a reachable HOST:PORT"),
            (
                &["--upstream", "127.0.0.1:1", "--balance", "random"],
                "invalid value for --balance",
            ),
            (
                &["--upstream", "127.0.0.1:1", "--hash-header", "X"],
                "needs --balance hash",
            ),
            (
                &["--upstream", "127.0.0.1:1", "--upstream-ca", "a.pem"],
                "need --upstream-tls",
            ),
            (
                &["--upstream", "127.0.0.1:1", "--health-check", "ping"],
                "--health-check",
            ),
            (
                &["--upstream", "127.0.0.1:1", "--max-fails", "-1"],
                "--max-fails",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(msg), "{args:?}: {err}");
        }
    }
}
