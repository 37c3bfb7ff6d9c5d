//! Socket options: one getter and one setter per option, each a
//! `getsockopt`/`setsockopt` through nix.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

// TCP_KEEPIDLE: nix has it on Linux and the FreeBSD-likes; Apple names it
// TCP_KEEPALIVE and OpenBSD has no per-socket keep-alive timers.
#[cfg(not(any(
    evio_epoll,
    evio_apple,
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
)))]
use keep_idle::TcpKeepIdle;
#[cfg(any(evio_epoll, target_os = "freebsd", target_os = "dragonfly"))]
use sockopt::TcpKeepIdle;

/// `TCP_KEEPIDLE` defined with nix's own macro where nix lacks it (the
/// macro recurses by bare name, hence the imports).
#[cfg(not(any(
    evio_epoll,
    evio_apple,
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd"
)))]
mod keep_idle {
    use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
    sockopt_impl!(
        /// `TCP_KEEPIDLE`: seconds of silence before the first probe.
        TcpKeepIdle,
        Both,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        u32
    );
}

/// `TCP_DEFER_ACCEPT`, Linux only; nix does not wrap it.
#[cfg(evio_epoll)]
mod defer_accept {
    use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
    sockopt_impl!(
        /// `TCP_DEFER_ACCEPT`: seconds a new connection may stay silent
        /// before `accept` sees it anyway.
        TcpDeferAccept,
        Both,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        i32
    );
}

/// Sets `TCP_DEFER_ACCEPT` on a TCP listener: `accept` sees a connection
/// only once its first bytes have arrived (or after about `wait` of
/// silence, when Linux lets it through anyway), so the first read of an
/// accepted socket finds data and needs no readiness event. `None` turns
/// it off. For protocols where the client speaks first (HTTP, Redis); a
/// server that greets first (SMTP, MySQL) would keep its clients waiting
/// `wait`. nginx calls this `listen … deferred`, HAProxy `defer-accept`.
///
/// ```
/// use evio_sys::net::{self, BindOptions};
/// use std::time::Duration;
/// let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// # #[cfg(target_os = "linux")] {
/// net::set_defer_accept(&listener, Some(Duration::from_secs(1)))?;
/// assert!(net::defer_accept(&listener)?.is_some());
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `setsockopt`; `Unsupported` where the option does not
/// exist (everywhere but Linux and Android: the BSDs' accept filters need
/// a kernel module and are not used here).
pub fn set_defer_accept(fd: &impl AsFd, wait: Option<Duration>) -> io::Result<()> {
    #[cfg(evio_epoll)]
    {
        let secs = wait.map_or(0, |w| w.as_secs().clamp(1, i32::MAX as u64) as i32);
        Ok(setsockopt(fd, defer_accept::TcpDeferAccept, &secs)?)
    }
    #[cfg(not(evio_epoll))]
    {
        let _ = (fd, wait);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Returns the listener's `TCP_DEFER_ACCEPT` wait (as the kernel rounded
/// it), or `None` when it is off.
///
/// # Errors
/// The OS error of `getsockopt`; `Unsupported` off Linux and Android.
pub fn defer_accept(fd: &impl AsFd) -> io::Result<Option<Duration>> {
    #[cfg(evio_epoll)]
    {
        let secs = getsockopt(fd, defer_accept::TcpDeferAccept)?;
        Ok((secs > 0).then(|| Duration::from_secs(secs as u64)))
    }
    #[cfg(not(evio_epoll))]
    {
        let _ = fd;
        Err(io::ErrorKind::Unsupported.into())
    }
}

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

/// Returns whether `TCP_NODELAY` is on.
///
/// # Errors
/// The OS error of `getsockopt` (e.g. `EOPNOTSUPP` on a unix socket).
pub fn nodelay(fd: &impl AsFd) -> io::Result<bool> {
    Ok(getsockopt(fd, sockopt::TcpNoDelay)?)
}

/// Enables `SO_KEEPALIVE` with probes after `idle` of silence and every
/// `idle` after that (whole seconds, at least 1), or disables it for `None`.
/// How many unanswered probes end the connection is the OS default unless
/// set with [`set_keepalive_probes`]. OpenBSD has no per-socket timers: only
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

/// Sets how many unanswered keep-alive probes end the connection
/// (`TCP_KEEPCNT`); pair it with [`set_keepalive`].
///
/// # Errors
/// The OS error of `setsockopt` (e.g. `EINVAL` for 0 on Linux);
/// `Unsupported` on OpenBSD, which has no `TCP_KEEPCNT`.
pub fn set_keepalive_probes(fd: &impl AsFd, probes: u32) -> io::Result<()> {
    #[cfg(not(target_os = "openbsd"))]
    return Ok(setsockopt(fd, sockopt::TcpKeepCount, &probes)?);
    #[cfg(target_os = "openbsd")]
    {
        let _ = (fd, probes);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Returns how many unanswered keep-alive probes end the connection
/// (`TCP_KEEPCNT`).
///
/// # Errors
/// The OS error of `getsockopt`; `Unsupported` on OpenBSD.
pub fn keepalive_probes(fd: &impl AsFd) -> io::Result<u32> {
    #[cfg(not(target_os = "openbsd"))]
    return Ok(getsockopt(fd, sockopt::TcpKeepCount)?);
    #[cfg(target_os = "openbsd")]
    {
        let _ = fd;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Sets the kernel send buffer size (`SO_SNDBUF`), in bytes. Linux doubles
/// the value for its bookkeeping, so [`send_buffer_size`] then reports
/// twice as much; every OS clamps it to its limits.
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_send_buffer_size(fd: &impl AsFd, bytes: usize) -> io::Result<()> {
    Ok(setsockopt(fd, sockopt::SndBuf, &bytes)?)
}

/// The kernel send buffer size (`SO_SNDBUF`), in bytes.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn send_buffer_size(fd: &impl AsFd) -> io::Result<usize> {
    Ok(getsockopt(fd, sockopt::SndBuf)?)
}

/// Sets the kernel receive buffer size (`SO_RCVBUF`), in bytes; see
/// [`set_send_buffer_size`] for how the OS adjusts it.
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_recv_buffer_size(fd: &impl AsFd, bytes: usize) -> io::Result<()> {
    Ok(setsockopt(fd, sockopt::RcvBuf, &bytes)?)
}

/// The kernel receive buffer size (`SO_RCVBUF`), in bytes.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn recv_buffer_size(fd: &impl AsFd) -> io::Result<usize> {
    Ok(getsockopt(fd, sockopt::RcvBuf)?)
}

/// `SO_LINGER` in seconds (Apple's `SO_LINGER` counts clock ticks; its
/// `SO_LINGER_SEC` is used there).
#[cfg(not(evio_apple))]
use sockopt::Linger;
#[cfg(evio_apple)]
use sockopt::LingerSec as Linger;

/// Sets `SO_LINGER`: with `Some(t)`, closing the socket waits up to `t`
/// (whole seconds) for unsent data to go out, and `Some(Duration::ZERO)`
/// makes close reset the connection (RST) instead of a graceful FIN;
/// `None` (the default) closes at once and lets the kernel send the rest.
///
/// ```
/// use evio_sys::net::{self, BindOptions};
/// use std::time::Duration;
/// let s = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// net::set_linger(&s, Some(Duration::ZERO))?;
/// assert_eq!(net::linger(&s)?, Some(Duration::ZERO));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_linger(fd: &impl AsFd, linger: Option<Duration>) -> io::Result<()> {
    let value = libc::linger {
        l_onoff: linger.is_some() as libc::c_int,
        l_linger: linger.map_or(0, |d| {
            d.as_secs().min(libc::c_int::MAX as u64) as libc::c_int
        }),
    };
    Ok(setsockopt(fd, Linger, &value)?)
}

/// Returns `SO_LINGER`: `None` when off, else the linger time.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn linger(fd: &impl AsFd) -> io::Result<Option<Duration>> {
    let value = getsockopt(fd, Linger)?;
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
}
