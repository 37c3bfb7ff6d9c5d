//! Parsing the example servers' flags into [`Opts`]: lexopt splits the
//! command line, the arms below check each value and word each error.

use std::ffi::OsString;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use evio_core::LoadBalance;
use lexopt::Arg::{Long, Short, Value};

use super::{usage, Opts, PollerChoice, Spec};
use crate::tls;

/// `secs` seconds, `None` for 0 (disabled).
pub(super) fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A `SECS` flag value: a non-negative number of seconds (fractions
/// allowed), `Ok(None)` for 0 (disabled).
pub(super) fn parse_secs(v: &str) -> Option<Option<Duration>> {
    let s: f64 = v.parse().ok()?;
    let d = Duration::try_from_secs_f64(s).ok()?;
    Some((!d.is_zero()).then_some(d))
}

/// What went wrong on the command line, or a request for help.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// `-h` / `--help`.
    Help,
    /// `-V` / `--version`.
    Version,
    /// A bad flag or value, explained.
    Bad(String),
}

/// Parses the flags (without the program name).
pub fn parse(spec: &Spec, args: impl IntoIterator<Item = OsString>) -> Result<Opts, CliError> {
    let mut opts = Opts::defaults(spec);
    // TLS flags, checked together at the end.
    let (mut tls_port, mut tls_cert, mut tls_key) = (None, None, None);
    let mut tls_params_given = None;
    let mut handshake_given = false;
    let (mut backend_tls, mut backend_ca, mut backend_sni) = (false, None, None);
    let mut backend_host = String::new();
    let mut parser = lexopt::Parser::from_args(args);
    let lex_error = |e: lexopt::Error| CliError::Bad(e.to_string());
    while let Some(arg) = parser.next().map_err(lex_error)? {
        let flag = match arg {
            Short('h') | Long("help") => return Err(CliError::Help),
            Short('V') | Long("version") => return Err(CliError::Version),
            Long(name) => format!("--{name}"),
            Short(c) => return Err(CliError::Bad(format!("unknown flag \"-{c}\""))),
            Value(v) => return Err(CliError::Bad(format!("unexpected argument {v:?}"))),
        };
        // `--flag value` and `--flag=value` are both accepted (lexopt).
        let mut value = |what: &str| -> Result<String, CliError> {
            parser
                .value()
                .map_err(|_| CliError::Bad(format!("{flag} needs {what}")))?
                .into_string()
                .map_err(|v| CliError::Bad(format!("{flag}: the value is not UTF-8: {v:?}")))
        };
        let bad_value =
            |flag: &str, v: &str| CliError::Bad(format!("invalid value for {flag}: {v:?}"));
        if let Some(takes) = spec.extra.and_then(|x| (x.takes_value)(&flag)) {
            let v = if takes { Some(value("a value")?) } else { None };
            opts.extra.push((flag, v));
            continue;
        }
        match flag.as_str() {
            "--drain-timeout" => {
                let v = value("seconds")?;
                opts.drain_timeout = parse_secs(&v)
                    .ok_or_else(|| bad_value(&flag, &v))?
                    .unwrap_or(Duration::ZERO);
            }
            "--metrics-port" => {
                let v = value("a port number")?;
                opts.metrics_port = Some(v.parse().map_err(|_| bad_value("--metrics-port", &v))?);
            }
            "--log-level" => {
                let v = value("a level")?;
                opts.log_level = super::log::LEVELS
                    .iter()
                    .find(|l| l.eq_ignore_ascii_case(&v))
                    .ok_or_else(|| bad_value("--log-level", &v))?;
            }
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
            "--poller" => {
                let v = value("a backend name")?;
                opts.poller = match v.as_str() {
                    "poll" => PollerChoice::Poll,
                    name if name == PollerChoice::NATIVE_NAME => PollerChoice::Native,
                    "epoll" | "kqueue" => {
                        return Err(CliError::Bad(format!(
                            "--poller {v} is not available on this platform (use {} or poll)",
                            PollerChoice::NATIVE_NAME
                        )))
                    }
                    _ => return Err(bad_value("--poller", &v)),
                };
            }
            "--unix" => opts.unix = Some(PathBuf::from(value("a path")?)),
            "--upgrade-socket" => opts.upgrade_socket = Some(PathBuf::from(value("a path")?)),
            "--upgrade" => opts.upgrade = true,
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
            "--reuseport" => opts.reuseport = true,
            "--per-loop-listeners" => opts.per_loop_listeners = true,
            "--defer-accept" => opts.defer_accept = true,
            "--udp" if spec.udp => opts.udp = true,
            "--backend-tls" if spec.backend => backend_tls = true,
            _ => return Err(CliError::Bad(format!("unknown flag {flag:?}"))),
        }
    }
    if let Some(x) = spec.extra {
        (x.check)(&opts.extra).map_err(CliError::Bad)?;
    }
    if opts.defer_accept && opts.udp {
        return Err(CliError::Bad("--defer-accept is for TCP, not --udp".into()));
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
    if opts.upgrade && opts.upgrade_socket.is_none() {
        return Err(CliError::Bad(
            "--upgrade needs --upgrade-socket PATH".into(),
        ));
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
        Err(CliError::Version) => {
            println!("{} {}", spec.bin, env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        Err(CliError::Bad(msg)) => {
            // The error on one line, then where to look (not the whole
            // help: a script's log keeps the one line that matters).
            eprintln!("{}: {msg}", spec.bin);
            let backend = if spec.backend {
                " --backend HOST:PORT"
            } else {
                spec.extra.map_or("", |x| x.synopsis)
            };
            eprintln!(
                "usage: {}{backend} [OPTIONS]; `{} --help` lists them",
                spec.bin, spec.bin
            );
            std::process::exit(2);
        }
    }
}
