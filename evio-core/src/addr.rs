//! Addresses: parsing `scheme://host:port?reuseport=true&defer_accept=true` listen addresses
//! and binding them, and [`ToAddr`], what `dial` accepts.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use evio_sys::net::{self, Addr, BindOptions};

/// The network of a listen address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    Tcp,
    Tcp4,
    Tcp6,
    Udp,
    Udp4,
    Udp6,
    Unix,
}

impl Network {
    pub(crate) fn is_udp(self) -> bool {
        matches!(self, Network::Udp | Network::Udp4 | Network::Udp6)
    }
}

/// A parsed, not yet bound, listen address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenSpec {
    pub(crate) original: String,
    pub(crate) network: Network,
    /// `host:port` for internet networks, the path for unix.
    pub(crate) target: String,
    pub(crate) reuse_port: bool,
    /// `?defer_accept=true`: `TCP_DEFER_ACCEPT` on the listener, and each
    /// connection read as soon as it is accepted.
    pub(crate) defer_accept: bool,
    /// `tls://`, `tls4://`, `tls6://`: TCP whose connections speak TLS.
    pub(crate) tls: bool,
}

fn invalid(original: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid address {original:?}: {why}"),
    )
}

/// Parses one address; errors name the address and the problem.
pub(crate) fn parse(original: &str) -> io::Result<ListenSpec> {
    let (scheme, rest) = match original.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("tcp", original),
    };
    let tls = matches!(scheme, "tls" | "tls4" | "tls6");
    if tls && !cfg!(feature = "tls") {
        return Err(invalid(
            original,
            "TLS addresses need evio-core's `tls` cargo feature",
        ));
    }
    let network = match scheme {
        "tcp" | "tls" => Network::Tcp,
        "tls4" => Network::Tcp4,
        "tls6" => Network::Tcp6,
        "tcp4" => Network::Tcp4,
        "tcp6" => Network::Tcp6,
        "udp" => Network::Udp,
        "udp4" => Network::Udp4,
        "udp6" => Network::Udp6,
        "unix" => Network::Unix,
        other => {
            return Err(invalid(
                original,
                format!(
                    "unknown scheme {other:?} (expected tcp, tcp4, tcp6, tls, tls4, tls6, udp, udp4, udp6 or unix)"
                ),
            ))
        }
    };
    let (target, query) = match rest.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (rest, None),
    };
    let mut reuse_port = false;
    let mut defer_accept = false;
    // evio: values starting with 1-9, t, T, y or Y mean true.
    let truthy = |v: &str| {
        matches!(
            v.bytes().next(),
            Some(b'1'..=b'9' | b't' | b'T' | b'y' | b'Y')
        )
    };
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "reuseport" => reuse_port = truthy(value),
            "defer_accept" => defer_accept = truthy(value),
            other => return Err(invalid(original, format!("unknown option {other:?}"))),
        }
    }
    if defer_accept && (network == Network::Unix || network.is_udp()) {
        return Err(invalid(original, "defer_accept is for TCP listeners"));
    }
    if network == Network::Unix {
        if target.is_empty() {
            return Err(invalid(original, "missing unix socket path"));
        }
    } else if !target.is_empty() {
        let Some((host, port)) = target.rsplit_once(':') else {
            return Err(invalid(original, "missing port (expected host:port)"));
        };
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(invalid(original, format!("bad port {port:?}")));
        }
        if host.starts_with('[') != host.ends_with(']') {
            return Err(invalid(original, "unbalanced brackets in IPv6 host"));
        }
    }
    Ok(ListenSpec {
        original: original.to_owned(),
        network,
        target: target.to_owned(),
        reuse_port,
        defer_accept,
        tls,
    })
}

/// An address to dial: an [`Addr`], a [`SocketAddr`], or a string in the
/// same syntax as listen addresses — `"tcp://host:port"`, `"tcp4://…"`,
/// `"tcp6://…"`, `"unix://path"`, or a bare `"host:port"` (TCP). An empty
/// host means this machine (`127.0.0.1`, or `::1` for `tcp6`).
///
/// A host name is resolved with the system resolver, which blocks; inside a
/// callback prefer IP literals or an address resolved beforehand.
///
/// ```
/// use evio_core::{Addr, ToAddr};
/// let a = "tcp://127.0.0.1:6379".to_addr()?;
/// assert_eq!(a, Addr::Inet("127.0.0.1:6379".parse().unwrap()));
/// assert_eq!(":80".to_addr()?, Addr::Inet("127.0.0.1:80".parse().unwrap()));
/// assert!("unix:///tmp/app.sock".to_addr()?.as_unix_path().is_some());
/// assert!("udp://127.0.0.1:53".to_addr().is_err()); // streams only
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToAddr {
    /// The address, parsed and resolved.
    ///
    /// # Errors
    /// `InvalidInput` naming the address and the problem (unknown or UDP
    /// scheme, missing or bad port, options), or the resolver's error.
    fn to_addr(&self) -> io::Result<Addr>;
}

impl ToAddr for Addr {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok(self.clone())
    }
}

impl ToAddr for SocketAddr {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok(Addr::Inet(*self))
    }
}

impl ToAddr for str {
    fn to_addr(&self) -> io::Result<Addr> {
        let spec = parse(self)?;
        if spec.reuse_port || spec.defer_accept {
            return Err(invalid(self, "options are for listening, not dialing"));
        }
        if spec.tls {
            return Err(invalid(
                self,
                "dial TLS with dial_tls (it needs a client config and a server name)",
            ));
        }
        match spec.network {
            Network::Unix => Ok(Addr::Unix(Some(PathBuf::from(&spec.target)))),
            n if n.is_udp() => Err(invalid(self, "only stream addresses can be dialed")),
            _ if spec.target.is_empty() => Err(invalid(self, "missing host:port")),
            _ => {
                let (addr, _) = spec.resolve(true)?;
                Ok(Addr::Inet(addr))
            }
        }
    }
}

impl ToAddr for String {
    fn to_addr(&self) -> io::Result<Addr> {
        self.as_str().to_addr()
    }
}

impl<T: ToAddr + ?Sized> ToAddr for &T {
    fn to_addr(&self) -> io::Result<Addr> {
        (**self).to_addr()
    }
}

/// A bound listener or UDP socket.
#[derive(Debug)]
pub(crate) struct Bound {
    /// Shared with the loop's callbacks for UDP sockets (`Conn::send_to`).
    pub(crate) fd: Arc<OwnedFd>,
    /// Which of the server's addresses this is.
    pub(crate) index: usize,
    pub(crate) network: Network,
    pub(crate) addr: Addr,
    /// The socket file, removed when the listener goes (at shutdown, or
    /// when a later address of the same `serve` fails to bind).
    pub(crate) unix_path: Option<PathBuf>,
    /// One of a listener per loop: its loop serves what it accepts (the
    /// kernel balances), instead of handing connections over.
    pub(crate) local: bool,
    /// Its connections speak TLS.
    pub(crate) tls: bool,
    /// `TCP_DEFER_ACCEPT` is on: an accepted connection has data to read.
    pub(crate) deferred: bool,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ListenSpec {
    fn bind_error(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {:?}: {e}", self.original),
        )
    }

    /// Resolves the host and picks the address to bind (or, `dialing`, to
    /// connect to) for this network.
    fn resolve(&self, dialing: bool) -> io::Result<(SocketAddr, Option<bool>)> {
        let (host, port) = match self.target.rsplit_once(':') {
            Some((h, p)) => (
                h,
                if p.is_empty() {
                    0
                } else {
                    p.parse::<u16>().unwrap_or(0)
                },
            ),
            None => ("", 0),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let (want_v4, want_v6) = match self.network {
            Network::Tcp4 | Network::Udp4 => (true, false),
            Network::Tcp6 | Network::Udp6 => (false, true),
            _ => (true, true),
        };
        if host.is_empty() && dialing {
            let ip = if want_v4 {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            };
            return Ok((SocketAddr::new(ip, port), None));
        }
        if host.is_empty() {
            // Unspecified host: dual stack for tcp/udp, IPv6 only for *6.
            return Ok(match (want_v4, want_v6) {
                (true, false) => (
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                    None,
                ),
                (false, true) => (
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                    Some(true),
                ),
                _ => (
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                    Some(false),
                ),
            });
        }
        let candidates: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| invalid(&self.original, format!("cannot resolve host {host:?}: {e}")))?
            .collect();
        // Like Go: prefer IPv4 when both families resolve for tcp/udp.
        let pick = candidates
            .iter()
            .find(|a| a.is_ipv4() && want_v4)
            .or_else(|| candidates.iter().find(|a| a.is_ipv6() && want_v6))
            .copied()
            .ok_or_else(|| {
                invalid(
                    &self.original,
                    format!("host {host:?} has no address of this family"),
                )
            })?;
        let only_v6 = match (pick, want_v4) {
            (SocketAddr::V6(_), false) => Some(true),
            _ => None,
        };
        Ok((pick, only_v6))
    }

    /// Whether the inherited socket `s` can serve this address: a stream
    /// socket for TCP and TLS (an internet one) or unix, a datagram one
    /// for UDP.
    pub(crate) fn can_adopt(&self, s: &net::Inherited) -> bool {
        match (self.network, &s.addr) {
            (Network::Unix, Addr::Unix(_)) => s.stream,
            (n, Addr::Inet(_)) if n.is_udp() => !s.stream,
            (n, Addr::Inet(_)) => n != Network::Unix && s.stream,
            _ => false,
        }
    }

    /// Whether `s` is bound exactly where this address asks (same port and
    /// host, or the same unix path).
    pub(crate) fn is_exactly(&self, s: &net::Inherited) -> bool {
        match &s.addr {
            Addr::Inet(a) => self
                .resolve(false)
                .is_ok_and(|(want, _)| want.port() == a.port() && want.ip() == a.ip()),
            Addr::Unix(Some(p)) => self.network == Network::Unix && Path::new(&self.target) == p,
            Addr::Unix(None) => false,
        }
    }

    /// Serves the inherited socket `s` (systemd socket activation) for this
    /// address instead of binding: the listener options (`TCP_NODELAY`,
    /// `defer_accept`) are applied as to a bound one; its unix socket file,
    /// if any, is the service manager's and is left alone.
    pub(crate) fn adopt(&self, index: usize, s: net::Inherited) -> io::Result<Bound> {
        if !self.network.is_udp() && !matches!(s.addr, Addr::Unix(_)) {
            let _ = net::set_nodelay(&s.fd, true);
            if self.defer_accept {
                net::set_defer_accept(&s.fd, Some(Duration::from_secs(1)))
                    .map_err(|e| self.bind_error(e))?;
            }
        }
        Ok(Bound {
            fd: Arc::new(s.fd),
            index,
            network: self.network,
            addr: s.addr,
            unix_path: None,
            local: false,
            tls: self.tls,
            deferred: self.defer_accept,
        })
    }

    /// Binds the address `copies` times: once normally; more than once
    /// (a listener per loop) with `SO_REUSEPORT`, every copy on the port the
    /// first one got, each accepting on its own (`Bound::local`). A unix
    /// path is bound once whatever `copies` says. An unspecified-host dual
    /// stack falls back to IPv4 when the machine has no IPv6.
    pub(crate) fn bind(&self, index: usize, copies: usize) -> io::Result<Vec<Bound>> {
        if self.network == Network::Unix {
            let path = PathBuf::from(&self.target);
            let fd = net::unix_listener(&path, 1024).map_err(|e| self.bind_error(e))?;
            return Ok(vec![Bound {
                fd: Arc::new(fd),
                index,
                network: self.network,
                addr: Addr::Unix(Some(path.clone())),
                unix_path: Some(path),
                local: false,
                tls: false,
                deferred: false,
            }]);
        }
        let (addr, only_v6) = self.resolve(false)?;
        let mut opts = BindOptions {
            reuse_port: self.reuse_port || copies > 1,
            only_v6,
            ..BindOptions::default()
        };
        let bind = |addr: SocketAddr, opts: &BindOptions| {
            if self.network.is_udp() {
                net::udp_socket(addr, opts)
            } else {
                net::tcp_listener(addr, opts)
            }
        };
        let first = match bind(addr, &opts) {
            Ok(fd) => fd,
            Err(e)
                if only_v6 == Some(false)
                    && addr.ip().is_unspecified()
                    && net::is_family_unsupported(&e) =>
            {
                opts.only_v6 = None;
                let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
                bind(v4, &opts).map_err(|e| self.bind_error(e))?
            }
            Err(e) => return Err(self.bind_error(e)),
        };
        let bound = net::local_addr(&first).map_err(|e| self.bind_error(e))?;
        let tcp = !self.network.is_udp();
        let mut fds = vec![first];
        if let (true, Addr::Inet(exact)) = (copies > 1, &bound) {
            for _ in 1..copies {
                fds.push(bind(*exact, &opts).map_err(|e| self.bind_error(e))?);
            }
        }
        if tcp {
            // Set once here; accepted sockets inherit it (checked on the
            // first accept, and set per connection where they do not).
            for fd in &fds {
                let _ = net::set_nodelay(fd, true);
                if self.defer_accept {
                    // nginx's and HAProxy's choice of 1 s: a silent client
                    // is accepted after about one SYN-ACK retransmission.
                    net::set_defer_accept(fd, Some(Duration::from_secs(1)))
                        .map_err(|e| self.bind_error(e))?;
                }
            }
        }
        Ok(fds
            .into_iter()
            .map(|fd| Bound {
                fd: Arc::new(fd),
                index,
                network: self.network,
                addr: bound.clone(),
                unix_path: None,
                local: copies > 1,
                tls: self.tls,
                deferred: self.defer_accept,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_defaults() {
        assert_eq!(parse(":5000").unwrap().network, Network::Tcp);
        assert_eq!(parse("tcp4://127.0.0.1:1").unwrap().network, Network::Tcp4);
        assert_eq!(parse("udp6://[::1]:1").unwrap().network, Network::Udp6);
        let u = parse("unix://sock").unwrap();
        assert_eq!((u.network, u.target.as_str()), (Network::Unix, "sock"));
        assert_eq!(parse("tcp://").unwrap().target, "");
    }

    #[test]
    fn reuseport_values() {
        for (q, want) in [
            ("true", true),
            ("1", true),
            ("Yes", true),
            ("false", false),
            ("0", false),
            ("", false),
        ] {
            let s = parse(&format!("tcp://:1?reuseport={q}")).unwrap();
            assert_eq!(s.reuse_port, want, "{q}");
        }
    }

    #[test]
    fn bad_addresses_name_the_problem() {
        let e = parse("tulip://howdy").unwrap_err().to_string();
        assert!(e.contains("tulip") && e.contains("unknown scheme"), "{e}");
        let e = parse("howdy").unwrap_err().to_string();
        assert!(e.contains("howdy") && e.contains("missing port"), "{e}");
        assert!(parse("tcp://:99999").is_err());
        assert!(parse("tcp://:1?color=red").is_err());
        assert!(parse("unix://").is_err());
    }
}
