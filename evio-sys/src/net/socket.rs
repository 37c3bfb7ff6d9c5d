//! Creating sockets: listeners, connects, accept, and the descriptor flags
//! every socket made here gets (non-blocking, close-on-exec, no `SIGPIPE`).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    self as sock, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrLike,
    SockaddrStorage,
};

use super::addr::{to_addr, unix_sockaddr};
use super::Addr;

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
    /// The `listen` backlog for stream sockets (the OS caps it at its
    /// maximum, `net.core.somaxconn` on Linux).
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

// nix's own macro for options it lacks (it recurses by bare name, hence
// the imports).
#[cfg(evio_apple)]
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
#[cfg(evio_apple)]
sockopt_impl!(
    /// `SO_NOSIGPIPE` (Apple): a write to a closed peer fails with `EPIPE`
    /// instead of raising `SIGPIPE`. Apple has no usable `MSG_NOSIGNAL`.
    NoSigPipe,
    Both,
    libc::SOL_SOCKET,
    libc::SO_NOSIGPIPE,
    bool
);

/// Creates a non-blocking, close-on-exec socket (atomically where the OS
/// allows it).
fn socket(family: AddressFamily, ty: SockType) -> io::Result<OwnedFd> {
    #[cfg(not(evio_apple))]
    let fd = sock::socket(
        family,
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    #[cfg(evio_apple)]
    let fd = {
        let fd = sock::socket(family, ty, SockFlag::empty(), None)?;
        apple_flags(&fd)?;
        fd
    };
    Ok(fd)
}

/// What `SOCK_NONBLOCK | SOCK_CLOEXEC` and `MSG_NOSIGNAL` do elsewhere.
#[cfg(evio_apple)]
fn apple_flags(fd: &OwnedFd) -> io::Result<()> {
    crate::fd::set_cloexec(fd)?;
    set_nonblocking(fd, true)?;
    sock::setsockopt(fd, NoSigPipe, &true)?;
    Ok(())
}

/// Switches `O_NONBLOCK` on or off (off when handing a socket to blocking
/// std I/O, e.g. on detach).
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// evio_sys::net::set_nonblocking(&a, true)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `fcntl`.
pub fn set_nonblocking(fd: &impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let new = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    if new != flags {
        fcntl(fd, FcntlArg::F_SETFL(new))?;
    }
    Ok(())
}

/// Whether `fd` is an open descriptor (cheap `fcntl(F_GETFD)` probe).
///
/// ```
/// use std::os::fd::AsRawFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// assert!(evio_sys::net::is_open(a.as_raw_fd()));
/// assert!(!evio_sys::net::is_open(-1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_open(fd: RawFd) -> bool {
    crate::fd::check_open(fd).is_ok()
}

/// A listen backlog nix accepts: values above `SOMAXCONN` mean "the OS
/// maximum", which the kernel would have capped them to anyway.
fn backlog(n: i32) -> Backlog {
    match Backlog::new(n) {
        Ok(b) => b,
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        Err(_) if n > 0 => Backlog::MAXALLOWABLE,
        Err(_) if n > 0 => Backlog::MAXCONN,
        Err(_) => Backlog::new(0).unwrap_or(Backlog::MAXCONN),
    }
}

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn inet_socket(addr: &SocketAddr, ty: SockType, opts: &BindOptions) -> io::Result<OwnedFd> {
    let fd = socket(family(addr), ty)?;
    // TCP: rebind at once over TIME_WAIT. Not UDP, where SO_REUSEADDR lets
    // a second socket bind the same port and steal its datagrams.
    if ty == SockType::Stream {
        sock::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if opts.reuse_port {
        sock::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    if let (SocketAddr::V6(_), Some(only)) = (addr, opts.only_v6) {
        sock::setsockopt(&fd, sockopt::Ipv6V6Only, &only)?;
    }
    sock::bind(fd.as_raw_fd(), &SockaddrStorage::from(*addr))?;
    Ok(fd)
}

/// Binds and listens on a TCP address; returns the non-blocking listener.
///
/// `SO_REUSEADDR` is always set (for TCP only: on UDP it would let another
/// socket share the port); `SO_REUSEPORT` and `IPV6_V6ONLY` follow
/// `opts`.
///
/// Options set on the listener carry over to accepted sockets where the OS
/// copies them: on Linux `TCP_NODELAY`, `SO_KEEPALIVE` (and the keep-alive
/// timers), buffer sizes and `SO_LINGER` are inherited (checked by this
/// crate's tests for `TCP_NODELAY` and `SO_KEEPALIVE`); other systems may
/// differ, so read them back on an accepted socket when it matters.
///
/// ```
/// use evio_sys::net::{self, BindOptions};
/// let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// net::set_nodelay(&listener, true)?; // accepted sockets inherit it on Linux
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `socket`, `setsockopt`, `bind` (e.g. `EADDRINUSE`,
/// `EADDRNOTAVAIL`) or `listen`.
pub fn tcp_listener(addr: SocketAddr, opts: &BindOptions) -> io::Result<OwnedFd> {
    let fd = inet_socket(&addr, SockType::Stream, opts)?;
    sock::listen(&fd, backlog(opts.backlog))?;
    Ok(fd)
}

/// Binds a non-blocking UDP socket.
///
/// # Errors
/// The OS error of `socket`, `setsockopt` or `bind`.
pub fn udp_socket(addr: SocketAddr, opts: &BindOptions) -> io::Result<OwnedFd> {
    inet_socket(&addr, SockType::Datagram, opts)
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
pub fn unix_listener(path: &Path, backlog_len: i32) -> io::Result<OwnedFd> {
    let addr = unix_sockaddr(path)?;
    remove_stale_unix_socket(path)?;
    let fd = socket(AddressFamily::Unix, SockType::Stream)?;
    sock::bind(fd.as_raw_fd(), &addr)?;
    sock::listen(&fd, backlog(backlog_len))?;
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
    // Raw libc: nix's accept/accept4 pass no address buffer, and asking for
    // the peer afterwards would cost a getpeername per connection.
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let lfd = listener.as_fd().as_raw_fd();
    // SAFETY: `storage` is a writable sockaddr_storage and `len` its size;
    // the kernel writes at most `len` bytes and stores the real length.
    #[cfg(not(evio_apple))]
    let raw = unsafe {
        libc::accept4(
            lfd,
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    // SAFETY: as above (Apple has no accept4).
    #[cfg(evio_apple)]
    let raw = unsafe { libc::accept(lfd, storage.as_mut_ptr().cast(), &mut len) };
    let raw = Errno::result(raw)?;
    // SAFETY: `raw` was just returned by the kernel and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    #[cfg(evio_apple)]
    apple_flags(&fd)?;
    // SAFETY: `storage` holds `len` bytes of address written by the kernel
    // (zeroed beyond); nix checks `len` against the family it reads.
    let addr = unsafe { SockaddrStorage::from_raw(storage.as_ptr().cast(), Some(len)) };
    // Fewer bytes than a family field: an unnamed unix peer.
    let addr = match addr {
        Some(ss) => to_addr(&ss)?,
        None => Addr::Unix(None),
    };
    Ok((fd, addr))
}

/// Starts a connect on a fresh socket; `EINPROGRESS` is the normal result.
fn connect(family: AddressFamily, addr: &dyn SockaddrLike) -> io::Result<OwnedFd> {
    let fd = socket(family, SockType::Stream)?;
    match sock::connect(fd.as_raw_fd(), addr) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

/// Starts a non-blocking TCP connect. Completion is signalled by the socket
/// becoming writable; then check [`take_error`](super::take_error).
///
/// # Errors
/// The OS error of `socket` or `connect`, except `EINPROGRESS`, which is the
/// normal result.
pub fn tcp_connect(addr: SocketAddr) -> io::Result<OwnedFd> {
    connect(family(&addr), &SockaddrStorage::from(addr))
}

/// Starts a non-blocking connect to a unix stream socket.
///
/// # Errors
/// `InvalidInput` for a path too long for `sockaddr_un`; otherwise the OS
/// error of `socket` or `connect` (e.g. `ENOENT`, `ECONNREFUSED`, or
/// `EAGAIN` when the listener's backlog is full), except `EINPROGRESS`.
pub fn unix_connect(path: &Path) -> io::Result<OwnedFd> {
    connect(AddressFamily::Unix, &unix_sockaddr(path)?)
}
