//! Socket calls an event loop needs, each a thin safe wrapper returning
//! `io::Result` with the OS error code kept.
//!
//! Every socket made here is non-blocking and close-on-exec, and no write
//! can raise `SIGPIPE`: sends use `MSG_NOSIGNAL` where it exists and sockets
//! get `SO_NOSIGPIPE` on Apple platforms.
//!
//! ```
//! use evio_sys::net::{self, Addr, BindOptions};
//! let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
//! let Addr::Inet(addr) = net::local_addr(&listener)? else { unreachable!() };
//! assert_ne!(addr.port(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{cvt, cvt_size};

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

/// Options for the bind helpers.
///
/// ```
/// let opts = evio_sys::net::BindOptions { reuse_port: true, ..Default::default() };
/// assert_eq!(opts.backlog, 1024);
/// ```
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Set `SO_REUSEPORT`, so several sockets can bind one port.
    pub reuse_port: bool,
    /// For IPv6 addresses: `Some(true)` accepts IPv6 only, `Some(false)`
    /// accepts IPv4-mapped addresses too (dual stack), `None` keeps the OS
    /// default.
    pub only_v6: Option<bool>,
    /// The `listen` backlog for stream sockets.
    pub backlog: i32,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            reuse_port: false,
            only_v6: None,
            backlog: 1024,
        }
    }
}

/// Which direction(s) [`shutdown`] closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more reads.
    Read,
    /// No more writes: the peer reads EOF.
    Write,
    /// Both.
    Both,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const SEND_FLAGS: libc::c_int = 0;

/// Creates a non-blocking, close-on-exec socket.
fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    let fd = {
        // SAFETY: plain syscall; the result is checked and owned below.
        let raw =
            cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` was just returned by the kernel and is owned by no one else.
        unsafe { OwnedFd::from_raw_fd(raw) }
    };
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let fd = {
        // SAFETY: plain syscall; the result is checked and owned below.
        let raw = cvt(unsafe { libc::socket(domain, ty, 0) })?;
        // SAFETY: `raw` was just returned by the kernel and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(&fd)?;
        set_nonblocking(&fd, true)?;
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1)?;
        fd
    };
    Ok(fd)
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a live fd we own.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Switches `O_NONBLOCK` on or off (off when handing a socket to blocking
/// std I/O, e.g. on detach).
///
/// # Errors
/// The OS error of `fcntl`.
pub fn set_nonblocking(fd: &impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL on a live, borrowed fd.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL with flags derived from the fd's own.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

fn setsockopt_int(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn getsockopt_int(fd: &impl AsFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Encodes an internet address as a `sockaddr_storage` and its length.
fn inet_to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            {
                sin.sin_len = size_of::<libc::sockaddr_in>() as u8;
            }
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            ))]
            {
                sin6.sin6_len = size_of::<libc::sockaddr_in6>() as u8;
            }
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Encodes a unix path as a `sockaddr_un`.
fn unix_to_raw(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unix socket path {:?} is empty, contains NUL or is longer than {} bytes",
                path,
                sun.sun_path.len() - 1
            ),
        ));
    }
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let base = size_of::<libc::sockaddr_un>() - sun.sun_path.len();
    let len = base + bytes.len() + 1;
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    {
        sun.sun_len = len as u8;
    }
    Ok((sun, len as libc::socklen_t))
}

/// Decodes a `sockaddr_storage` filled by the kernel.
fn raw_to_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<Addr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel said the family is AF_INET, so the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(Addr::Inet(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel said the family is AF_INET6, so the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Ok(Addr::Inet(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))))
        }
        libc::AF_UNIX => {
            // SAFETY: the kernel said the family is AF_UNIX, so the storage holds a sockaddr_un.
            let sun = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
            let base = size_of::<libc::sockaddr_un>() - sun.sun_path.len();
            let n = (len as usize).saturating_sub(base).min(sun.sun_path.len());
            let raw: Vec<u8> = sun.sun_path[..n].iter().map(|&c| c as u8).collect();
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            if end == 0 {
                Ok(Addr::Unix(None))
            } else {
                Ok(Addr::Unix(Some(PathBuf::from(OsStr::from_bytes(
                    &raw[..end],
                )))))
            }
        }
        // An unnamed unix peer may come back with a zero family and length.
        0 if len as usize <= size_of::<libc::sa_family_t>() => Ok(Addr::Unix(None)),
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported address family {family}"),
        )),
    }
}

fn bind_raw(fd: &OwnedFd, storage: *const libc::sockaddr, len: libc::socklen_t) -> io::Result<()> {
    // SAFETY: `storage` points to a live sockaddr of `len` bytes built by this module.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), storage, len) })?;
    Ok(())
}

fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a live fd we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

fn inet_socket(addr: &SocketAddr, ty: libc::c_int, opts: &BindOptions) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = socket(domain, ty)?;
    // TCP: rebind at once over TIME_WAIT. Not UDP, where SO_REUSEADDR
    // lets a second socket bind the same port and steal its datagrams.
    if ty == libc::SOCK_STREAM {
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if opts.reuse_port {
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if let (SocketAddr::V6(_), Some(only)) = (addr, opts.only_v6) {
        setsockopt_int(
            &fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            only as libc::c_int,
        )?;
    }
    let (storage, len) = inet_to_raw(addr);
    bind_raw(&fd, (&storage as *const libc::sockaddr_storage).cast(), len)?;
    Ok(fd)
}

/// Binds and listens on a TCP address; returns the non-blocking listener.
///
/// `SO_REUSEADDR` is always set; `SO_REUSEPORT` and `IPV6_V6ONLY` follow
/// `opts`.
///
/// # Errors
/// The OS error of `socket`, `setsockopt`, `bind` (e.g. `EADDRINUSE`,
/// `EADDRNOTAVAIL`) or `listen`.
pub fn tcp_listener(addr: SocketAddr, opts: &BindOptions) -> io::Result<OwnedFd> {
    let fd = inet_socket(&addr, libc::SOCK_STREAM, opts)?;
    listen(&fd, opts.backlog)?;
    Ok(fd)
}

/// Binds a non-blocking UDP socket.
///
/// # Errors
/// The OS error of `socket`, `setsockopt` or `bind`.
pub fn udp_socket(addr: SocketAddr, opts: &BindOptions) -> io::Result<OwnedFd> {
    inet_socket(&addr, libc::SOCK_DGRAM, opts)
}

/// Binds and listens on a unix stream socket at `path`.
///
/// A stale socket file (a socket nobody listens on) is removed first. A live
/// socket is left alone and reported as `AddrInUse`; a path that exists but
/// is not a socket is never deleted and is reported as `AlreadyExists`.
///
/// # Errors
/// As above, or the OS error of `socket`, `bind` (e.g. `EACCES`, `ENOENT`
/// for a missing directory) or `listen`; `InvalidInput` for a path too long
/// for `sockaddr_un`.
pub fn unix_listener(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let (sun, len) = unix_to_raw(path)?;
    remove_stale_unix_socket(path)?;
    let fd = socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
    bind_raw(&fd, (&sun as *const libc::sockaddr_un).cast(), len)?;
    listen(&fd, backlog)?;
    Ok(fd)
}

fn remove_stale_unix_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server is already listening on {}", path.display()),
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

/// Accepts one connection from a non-blocking listener. The new socket is
/// non-blocking and close-on-exec.
///
/// # Errors
/// `WouldBlock` when no connection is pending; otherwise the OS error, e.g.
/// `EMFILE`/`ENFILE` when out of descriptors, `ECONNABORTED`.
pub fn accept(listener: &impl AsFd) -> io::Result<(OwnedFd, Addr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let lfd = listener.as_fd().as_raw_fd();
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    // SAFETY: the kernel writes at most `len` bytes into `storage`.
    let raw = unsafe {
        libc::accept4(
            lfd,
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    // SAFETY: the kernel writes at most `len` bytes into `storage`.
    let raw = unsafe { libc::accept(lfd, storage.as_mut_ptr().cast(), &mut len) };
    let raw = cvt(raw)?;
    // SAFETY: `raw` was just returned by the kernel and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        set_cloexec(&fd)?;
        set_nonblocking(&fd, true)?;
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1)?;
    }
    // SAFETY: zero-initialised above, and the kernel filled `len` bytes of it.
    let storage = unsafe { storage.assume_init() };
    let addr = raw_to_addr(&storage, len)?;
    Ok((fd, addr))
}

/// Starts a non-blocking TCP connect. Completion is signalled by the socket
/// becoming writable; then check [`take_error`].
///
/// # Errors
/// The OS error of `socket` or `connect`, except `EINPROGRESS`, which is the
/// normal result.
pub fn tcp_connect(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = socket(domain, libc::SOCK_STREAM)?;
    let (storage, len) = inet_to_raw(&addr);
    // SAFETY: `storage` is a live sockaddr of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    match cvt(r) {
        Ok(_) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e),
    }
}

/// Starts a non-blocking connect to a unix stream socket.
///
/// # Errors
/// `InvalidInput` for a path too long for `sockaddr_un`; otherwise the OS
/// error of `socket` or `connect` (e.g. `ENOENT`, `ECONNREFUSED`, or
/// `EAGAIN` when the listener's backlog is full), except `EINPROGRESS`.
pub fn unix_connect(path: &Path) -> io::Result<OwnedFd> {
    let (sun, len) = unix_to_raw(path)?;
    let fd = socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
    // SAFETY: `sun` is a live sockaddr_un of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    match cvt(r) {
        Ok(_) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e),
    }
}

/// Reads and clears the socket's pending error (`SO_ERROR`).
///
/// # Errors
/// The OS error of `getsockopt` itself.
pub fn take_error(fd: &impl AsFd) -> io::Result<Option<io::Error>> {
    let code = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((code != 0).then(|| io::Error::from_raw_os_error(code)))
}

/// Reads into `buf`. `Ok(0)` means EOF.
///
/// # Errors
/// `WouldBlock` when nothing is available; otherwise the OS error, e.g.
/// `ECONNRESET`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Writes `buf` to a connected stream socket without ever raising `SIGPIPE`.
///
/// # Errors
/// `WouldBlock` when the send buffer is full; otherwise the OS error, e.g.
/// `EPIPE` or `ECONNRESET` for a closed peer.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    cvt_size(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), SEND_FLAGS) })
}

/// Writes several buffers with one `sendmsg` (a vectored write) to a
/// connected stream socket, without ever raising `SIGPIPE`. Returns the bytes
/// written, which may end inside any buffer.
///
/// # Errors
/// As [`write`].
pub fn writev(fd: BorrowedFd<'_>, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, MsgFlags};
    sendmsg::<()>(
        fd.as_raw_fd(),
        bufs,
        &[],
        MsgFlags::from_bits_truncate(SEND_FLAGS),
        None,
    )
    .map_err(io::Error::from)
}

/// Whether `e` says the address family is not supported
/// (`EAFNOSUPPORT`: e.g. IPv6 on a machine without it).
pub fn is_family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// Whether `e` says the process or the system is out of file descriptors
/// (`EMFILE`, `ENFILE`).
pub fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether unread bytes wait in a stream socket's receive queue (a
/// non-blocking one-byte peek; nothing is consumed). `false` at EOF.
///
/// # Errors
/// The OS error of `recv`, e.g. `ECONNRESET`.
pub fn has_input(fd: BorrowedFd<'_>) -> io::Result<bool> {
    use nix::sys::socket::{recv, MsgFlags};
    let mut byte = [0u8; 1];
    match recv(
        fd.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EAGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Receives one datagram and its sender.
///
/// # Errors
/// `WouldBlock` when no datagram is queued; otherwise the OS error.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` and at
    // most `len` bytes into `storage`.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            storage.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised above, and the kernel filled `len` bytes of it.
    let storage = unsafe { storage.assume_init() };
    match raw_to_addr(&storage, len)? {
        Addr::Inet(a) => Ok((n, a)),
        Addr::Unix(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram from a non-internet address",
        )),
    }
}

/// Sends one datagram to `to`.
///
/// # Errors
/// `WouldBlock` when the send buffer is full; otherwise the OS error, e.g.
/// `EMSGSIZE`.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], to: &SocketAddr) -> io::Result<usize> {
    let (storage, len) = inet_to_raw(to);
    // SAFETY: `buf` and `storage` are live for the call with the lengths given.
    cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            SEND_FLAGS,
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    })
}

/// Sets `TCP_NODELAY`.
///
/// # Errors
/// The OS error of `setsockopt` (e.g. `EOPNOTSUPP` on a unix socket).
pub fn set_nodelay(fd: &impl AsFd, on: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on as libc::c_int)
}

/// Enables `SO_KEEPALIVE` with probes after `idle` of silence and every
/// `idle` after that (whole seconds, at least 1), or disables it for `None`.
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_keepalive(fd: &impl AsFd, idle: Option<Duration>) -> io::Result<()> {
    let Some(idle) = idle else {
        return setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 0);
    };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    let secs = idle.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPALIVE, secs)?;
    #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "openbsd")))]
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    #[cfg(not(target_os = "openbsd"))]
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)?;
    Ok(())
}

/// Sets `SO_LINGER`: `Some(d)` makes `close` wait up to `d` (whole
/// seconds) for unsent data, and `Some(Duration::ZERO)` makes it reset the
/// connection at once; `None` restores the default (a background close).
///
/// # Errors
/// The OS error of `setsockopt`.
pub fn set_linger(fd: &impl AsFd, linger: Option<Duration>) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let value = libc::linger {
        l_onoff: linger.is_some() as libc::c_int,
        l_linger: linger.map_or(0, |d| d.as_secs().min(i32::MAX as u64) as libc::c_int),
    };
    setsockopt(fd, sockopt::Linger, &value).map_err(io::Error::from)
}

/// Returns whether `SO_KEEPALIVE` is on.
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn keepalive(fd: &impl AsFd) -> io::Result<bool> {
    Ok(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0)
}

/// Shuts down one or both directions of a connected socket.
///
/// # Errors
/// The OS error of `shutdown`, e.g. `ENOTCONN`.
pub fn shutdown(fd: &impl AsFd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: plain syscall on a live, borrowed fd.
    cvt(unsafe { libc::shutdown(fd.as_fd().as_raw_fd(), how) })?;
    Ok(())
}

fn sock_name(
    fd: &impl AsFd,
    f: unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int,
) -> io::Result<Addr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `f` is getsockname or getpeername; the kernel writes at most
    // `len` bytes into `storage`.
    cvt(unsafe {
        f(
            fd.as_fd().as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised above, and the kernel filled `len` bytes of it.
    let storage = unsafe { storage.assume_init() };
    raw_to_addr(&storage, len)
}

/// The socket's own address (`getsockname`).
///
/// # Errors
/// The OS error, e.g. `EBADF`.
pub fn local_addr(fd: &impl AsFd) -> io::Result<Addr> {
    sock_name(fd, libc::getsockname)
}

/// The connected peer's address (`getpeername`).
///
/// # Errors
/// The OS error, e.g. `ENOTCONN`.
pub fn peer_addr(fd: &impl AsFd) -> io::Result<Addr> {
    sock_name(fd, libc::getpeername)
}

/// The socket type (`SOCK_STREAM`, `SOCK_DGRAM`) of `fd`.
///
/// # Errors
/// The OS error of `getsockopt`, e.g. `ENOTSOCK`.
pub fn socket_type(fd: &impl AsFd) -> io::Result<libc::c_int> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

/// Whether `fd` is an open descriptor (cheap `fcntl(F_GETFD)` probe).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table; an invalid fd gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Raises the soft `RLIMIT_NOFILE` to `want` (capped at the hard limit) and
/// returns the new soft limit. Servers and tests that hold many connections
/// call this at start.
///
/// # Errors
/// The OS error of `getrlimit`/`setrlimit`.
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    // SAFETY: rlimit is plain old data; all-zero is a valid value.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel fills the live `lim`.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let target = (want as libc::rlim_t).min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: passes a live, initialised rlimit.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur as u64)
}

/// Sets the soft `RLIMIT_NOFILE` to exactly `soft` (at most the hard
/// limit); used to provoke and test descriptor exhaustion.
///
/// # Errors
/// The OS error of `getrlimit`/`setrlimit`.
pub fn set_fd_limit(soft: u64) -> io::Result<()> {
    // SAFETY: rlimit is plain old data; all-zero is a valid value.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel fills the live `lim`.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    lim.rlim_cur = (soft as libc::rlim_t).min(lim.rlim_max);
    // SAFETY: passes a live, initialised rlimit.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    Ok(())
}
