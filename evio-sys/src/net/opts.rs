//! Socket options: one getter and one setter per option, each a
//! `getsockopt`/`setsockopt` through nix.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

// nix's own macro for an option it lacks here (it recurses by bare name,
// hence the imports).
#[cfg(not(any(
    evio_epoll,
    evio_apple,
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
)))]
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
#[cfg(not(any(
    evio_epoll,
    evio_apple,
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
)))]
sockopt_impl!(
    /// `TCP_KEEPIDLE`, which nix offers on Linux and FreeBSD-likes only.
    TcpKeepIdle,
    Both,
    libc::IPPROTO_TCP,
    libc::TCP_KEEPIDLE,
    u32
);
#[cfg(any(evio_epoll, target_os = "freebsd", target_os = "dragonfly"))]
use sockopt::TcpKeepIdle;

/// Reads and clears the socket's pending error (`SO_ERROR`).
///
/// # Errors
/// The OS error of `getsockopt` itself.
pub fn take_error(fd: &impl AsFd) -> io::Result<Option<io::Error>> {
    let code = getsockopt(fd, sockopt::SocketError)?;
    Ok((code != 0).then(|| io::Error::from_raw_os_error(code)))
}

/// The socket type (`SOCK_STREAM`, `SOCK_DGRAM`) of `fd`.
///
/// # Errors
/// The OS error of `getsockopt`, e.g. `ENOTSOCK`.
pub fn socket_type(fd: &impl AsFd) -> io::Result<libc::c_int> {
    Ok(getsockopt(fd, sockopt::SockType)? as libc::c_int)
}

/// Sets `TCP_NODELAY`: send small writes at once instead of coalescing them
/// (Nagle's algorithm).
///
/// # Errors
/// The OS error of `setsockopt` (e.g. `EOPNOTSUPP` on a unix socket).
pub fn set_nodelay(fd: &impl AsFd, on: bool) -> io::Result<()> {
    Ok(setsockopt(fd, sockopt::TcpNoDelay, &on)?)
}

/// Enables `SO_KEEPALIVE` with probes after `idle` of silence and every
/// `idle` after that (whole seconds, at least 1), or disables it for `None`.
/// OpenBSD has no per-socket timers: only
/// `SO_KEEPALIVE` is set there.
///
/// ```
/// use evio_sys::net::{self, BindOptions};
/// use std::time::Duration;
/// let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// net::set_keepalive(&listener, Some(Duration::from_secs(30)))?;
/// assert!(net::keepalive(&listener)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_keepalive(fd: &impl AsFd, idle: Option<Duration>) -> io::Result<()> {
    let Some(idle) = idle else {
        return Ok(setsockopt(fd, sockopt::KeepAlive, &false)?);
    };
    setsockopt(fd, sockopt::KeepAlive, &true)?;
    let secs = idle.as_secs().clamp(1, i32::MAX as u64) as u32;
    #[cfg(evio_apple)]
    setsockopt(fd, sockopt::TcpKeepAlive, &secs)?;
    #[cfg(not(any(evio_apple, target_os = "openbsd")))]
    setsockopt(fd, TcpKeepIdle, &secs)?;
    #[cfg(not(target_os = "openbsd"))]
    setsockopt(fd, sockopt::TcpKeepInterval, &secs)?;
    #[cfg(target_os = "openbsd")]
    let _ = secs;
    Ok(())
}

/// Returns whether `SO_KEEPALIVE` is on.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn keepalive(fd: &impl AsFd) -> io::Result<bool> {
    Ok(getsockopt(fd, sockopt::KeepAlive)?)
}
