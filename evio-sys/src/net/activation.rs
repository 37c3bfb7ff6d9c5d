//! systemd socket activation: the listening sockets a service manager
//! passed to this process (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`;
//! see `sd_listen_fds(3)`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use super::addr::{local_addr, Addr};
use super::opts::socket_type;
use super::socket::set_nonblocking;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;
/// More than any service manager passes: a larger `LISTEN_FDS` is garbage.
const MAX_FDS: usize = 1024;

/// One socket passed by the service manager.
#[derive(Debug)]
pub struct Inherited {
    /// The socket, now non-blocking and close-on-exec.
    pub fd: OwnedFd,
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=`), if given.
    pub name: Option<String>,
    /// Its local address.
    pub addr: Addr,
    /// `SOCK_STREAM` (`true`) or `SOCK_DGRAM` (`false`).
    pub stream: bool,
}

impl Inherited {
    /// Checks that `fd` is a socket, makes it non-blocking and
    /// close-on-exec, and reads its type and local address: a socket some
    /// other process passed to this one (a service manager, or a server
    /// handing over with [`send_frame`](super::send_frame)).
    ///
    /// ```
    /// use evio_sys::net::{self, BindOptions, Inherited};
    /// let l = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
    /// let s = Inherited::from_socket(l, Some("web".into()))?;
    /// assert!(s.stream && s.addr.as_inet().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidData` for a descriptor that is not a socket; the OS error of
    /// `fcntl` or `getsockname`.
    pub fn from_socket(fd: OwnedFd, name: Option<String>) -> io::Result<Inherited> {
        let kind = socket_type(&fd).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("not a socket: {e}"))
        })?;
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        set_nonblocking(&fd, true)?;
        Ok(Inherited {
            addr: local_addr(&fd)?,
            stream: kind == libc::SOCK_STREAM,
            name,
            fd,
        })
    }
}

/// Takes the sockets systemd socket activation passed to this process: none
/// unless `LISTEN_PID` names this process. The variables are removed, so a
/// second call (or a child process) finds none; each descriptor is made
/// non-blocking and close-on-exec. Call it early, before other threads
/// read the environment: removing a variable is not thread-safe against C
/// code reading it (it is left alone when none is set).
///
/// ```
/// // Not started by a service manager: nothing.
/// assert!(evio_sys::net::take_activation_sockets()?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `InvalidData` for a `LISTEN_FDS` that is not a count, or a passed
/// descriptor that is not open or not a socket (the variables are removed
/// anyway).
pub fn take_activation_sockets() -> io::Result<Vec<Inherited>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    // Taken once: not by a second server of this process, not by children.
    // The environment is only written when there is something to remove:
    // `unsetenv` races with C code reading it (getaddrinfo does) on other
    // threads, so a process never activated never pays that.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        if std::env::var_os(var).is_some() {
            std::env::remove_var(var);
        }
    }
    if !for_us {
        return Ok(Vec::new());
    }
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let count = count.unwrap_or_default();
    let n: usize = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| n <= MAX_FDS)
        .ok_or_else(|| {
            bad(format!(
                "socket activation: LISTEN_FDS={count:?} is not a count"
            ))
        })?;
    let names: Vec<&str> = names
        .as_deref()
        .map_or(Vec::new(), |s| s.split(':').collect());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = FIRST_FD + i as RawFd;
        crate::fd::check_open(raw)
            .map_err(|e| bad(format!("socket activation: descriptor {raw}: {e}")))?;
        // SAFETY: `raw` is open (checked just above) and was passed to this
        // process by its service manager for it to own; the variables that
        // name it are gone, so nothing else takes it a second time.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = names
            .get(i)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string());
        out.push(
            Inherited::from_socket(fd, name)
                .map_err(|e| bad(format!("socket activation: descriptor {raw}: {e}")))?,
        );
    }
    Ok(out)
}
