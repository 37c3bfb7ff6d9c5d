//! [`Addr`] and the conversions between std's addresses and nix's sockaddrs.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{getpeername, getsockname, SockaddrLike, SockaddrStorage, UnixAddr};

/// A socket address of either family evio serves: internet or unix.
///
/// ```
/// use evio_sys::net::Addr;
/// let a = Addr::Inet("127.0.0.1:80".parse().unwrap());
/// assert_eq!(a.to_string(), "127.0.0.1:80");
/// assert_eq!(Addr::Unix(Some("/tmp/s".into())).to_string(), "unix:/tmp/s");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A unix socket path; `None` for an unnamed socket (most client ends).
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The internet address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// The unix socket path, if this is a named unix address.
    pub fn as_unix_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(Some(p)) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => a.fmt(f),
            Addr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Inet(a)
    }
}

/// The socket's own address (`getsockname`).
///
/// ```
/// use evio_sys::net::{self, Addr, BindOptions};
/// let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// let Addr::Inet(addr) = net::local_addr(&listener)? else { unreachable!() };
/// assert_ne!(addr.port(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error, e.g. `EBADF`; `InvalidData` for an address family other
/// than internet or unix.
pub fn local_addr(fd: &impl AsFd) -> io::Result<Addr> {
    to_addr(&getsockname::<SockaddrStorage>(fd.as_fd().as_raw_fd())?)
}

/// The connected peer's address (`getpeername`).
///
/// # Errors
/// The OS error, e.g. `ENOTCONN`; `InvalidData` for an address family
/// other than internet or unix.
pub fn peer_addr(fd: &impl AsFd) -> io::Result<Addr> {
    to_addr(&getpeername::<SockaddrStorage>(fd.as_fd().as_raw_fd())?)
}

/// Encodes a unix path as a `sockaddr_un`.
///
/// # Errors
/// `InvalidInput` for a path that is empty, contains NUL or does not fit.
pub(super) fn unix_sockaddr(path: &Path) -> io::Result<UnixAddr> {
    let bytes = path.as_os_str().as_bytes();
    let room = sun_path_len() - 1;
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() > room {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unix socket path {path:?} is empty, contains NUL or is longer than {room} bytes"
            ),
        ));
    }
    Ok(UnixAddr::new(path)?)
}

/// The size of `sockaddr_un.sun_path` (104 or 108 bytes): the last field.
fn sun_path_len() -> usize {
    std::mem::size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path)
}

/// Decodes an address filled by the kernel.
///
/// An unnamed unix socket comes back in several forms (an empty path on
/// Linux, a path of NULs on the BSDs, an abstract name, or a bare family
/// field); all become `Addr::Unix(None)`.
///
/// # Errors
/// `InvalidData` for a family other than internet or unix.
pub(super) fn to_addr(ss: &SockaddrStorage) -> io::Result<Addr> {
    if let Some(sin) = ss.as_sockaddr_in() {
        return Ok(Addr::Inet(SocketAddrV4::from(*sin).into()));
    }
    if let Some(sin6) = ss.as_sockaddr_in6() {
        return Ok(Addr::Inet(SocketAddrV6::from(*sin6).into()));
    }
    if let Some(un) = ss.as_unix_addr() {
        let path = un.path().map(|p| p.as_os_str().as_bytes()).unwrap_or(&[]);
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        let path = (end > 0).then(|| PathBuf::from(OsStr::from_bytes(&path[..end])));
        return Ok(Addr::Unix(path));
    }
    match ss.family() {
        // An unnamed unix peer may come back with no family at all.
        None => Ok(Addr::Unix(None)),
        Some(family) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported address family {family:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_addresses_round_trip() {
        for a in ["127.0.0.1:80", "[::1]:443", "[fe80::1%2]:8080"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(to_addr(&SockaddrStorage::from(a)).unwrap(), Addr::Inet(a));
        }
    }

    #[test]
    fn bad_unix_paths_are_refused() {
        let long = "x".repeat(sun_path_len());
        for bad in ["", "a\0b", long.as_str()] {
            let e = unix_sockaddr(Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let fits = "x".repeat(sun_path_len() - 1);
        unix_sockaddr(Path::new(&fits)).unwrap();
    }
}
