//! The Linux body of `floor-server` (see the binary's own documentation).

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evio_benches::cli::{self, CliError, Mode};
use evio_benches::floor::{http_requests, redis_requests, Framed};
use lexopt::Arg::Long;
use nix::errno::Errno;
#[allow(deprecated)]
use nix::sys::epoll::epoll_ctl;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollOp, EpollTimeout};
use nix::sys::socket::{
    accept4, bind, getsockopt, listen, recv, send, setsockopt, socket, sockopt, AddressFamily,
    Backlog, MsgFlags, SockFlag, SockType, SockaddrIn,
};
use nix::unistd::close;

const USAGE: &str = "\
usage: floor-server --mode echo|redis|http --port N [--defer-accept]

The floor reference: one thread, one edge-triggered epoll, on 127.0.0.1.
  --mode M        echo: write back what was read; redis: +PONG to each
                  request; http: a fixed 200 \"Hello World!\" (required)
  --port N        the port to listen on (required)
  --defer-accept  TCP_DEFER_ACCEPT (1 s) on the listener, as nginx's
                  `listen ... deferred`
  -V, --version   print the name and version
  -h, --help      this text";

/// The listener's epoll token (connections use their descriptor).
const LISTENER: u64 = u64::MAX;
/// Accepts per listener event (evio-core's figure too).
const MAX_ACCEPTS: usize = 256;
/// A request split across reads may hold at most this much.
const CARRY_MAX: usize = 64 * 1024;
const PONG: &[u8] = b"+PONG\r\n";
const HTTP_OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello World!\r\n";
const HTTP_OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: close\r\n\r\nHello World!\r\n";

/// Per connection; empty (no heap memory) in the common case.
#[derive(Default)]
struct Conn {
    /// The start of a request split across reads.
    carry: Vec<u8>,
    /// Reply bytes the socket did not take yet.
    unsent: Vec<u8>,
    /// Close once `unsent` is written.
    close_after: bool,
    /// In epoll (with `--defer-accept`, only once it outlives its first read).
    registered: bool,
}

struct Floor {
    mode: Mode,
    listener: TcpListener,
    /// Accepted sockets inherit the listener's TCP_NODELAY.
    nodelay_inherited: bool,
    /// `TCP_DEFER_ACCEPT` is on: read before registering.
    deferred: bool,
    epoll: Epoll,
    /// Indexed by descriptor.
    conns: Vec<Conn>,
    /// The read buffer, shared by all connections.
    buf: Vec<u8>,
    /// Replies of one read.
    out: Vec<u8>,
}

/// What to do with a connection after handling input.
enum Next {
    Keep,
    Close,
}

fn listen_on(port: u16) -> nix::Result<TcpListener> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    let addr = SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    bind(fd.as_raw_fd(), &addr)?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

/// Whether a socket accepted from `listener` has TCP_NODELAY without being
/// told (Linux copies it from the listener): one probe connection at start.
fn nodelay_is_inherited(listener: &TcpListener) -> io::Result<bool> {
    let _client = TcpStream::connect(listener.local_addr()?)?;
    let t0 = Instant::now();
    loop {
        match listener.accept() {
            Ok((probe, _)) => return Ok(getsockopt(&probe, sockopt::TcpNoDelay)?),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && t0.elapsed().as_secs() < 5 => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Floor {
    fn run(&mut self) -> io::Result<()> {
        self.epoll.add(
            &self.listener,
            EpollEvent::new(EpollFlags::EPOLLIN, LISTENER),
        )?;
        let mut events = vec![EpollEvent::empty(); 1024];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for ev in &events[..n] {
                if ev.data() == LISTENER {
                    self.accept_all();
                } else {
                    self.ready(ev.data() as RawFd, ev.events());
                }
            }
        }
    }

    /// One accepted, non-blocking socket.
    fn accept_one(&self) -> nix::Result<RawFd> {
        if self.nodelay_inherited {
            return accept4(
                &self.listener,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            )
            .map(IntoRawFd::into_raw_fd);
        }
        // Not inherited here: TCP_NODELAY and O_NONBLOCK per connection.
        let errno = |e: io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let (sock, _) = self.listener.accept().map_err(errno)?;
        sock.set_nodelay(true).map_err(errno)?;
        sock.set_nonblocking(true).map_err(errno)?;
        Ok(sock.into_raw_fd())
    }

    /// Accepts until EAGAIN, at most 256 at a time so that events of open
    /// connections are not starved (the listener is level-triggered: what
    /// is left, or fails for lack of descriptors, is reported again).
    fn accept_all(&mut self) {
        for _ in 0..MAX_ACCEPTS {
            let fd = match self.accept_one() {
                Ok(fd) => fd,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(_) => return,
            };
            let i = fd as usize;
            if self.conns.len() <= i {
                self.conns.resize_with(i + 1, Conn::default);
            }
            // Deferred: the request is there; answer it before epoll hears
            // of the socket, and only add a socket that stays open.
            if self.deferred && !self.ready(fd, EpollFlags::EPOLLIN) {
                continue;
            }
            let mut flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
            if !self.conns[i].unsent.is_empty() {
                flags |= EpollFlags::EPOLLOUT;
            }
            if self.ctl(EpollOp::EpollCtlAdd, fd, flags).is_err() {
                self.close(fd);
                continue;
            }
            self.conns[i].registered = true;
        }
    }

    #[allow(deprecated)]
    fn ctl(&self, op: EpollOp, fd: RawFd, flags: EpollFlags) -> nix::Result<()> {
        let mut ev = EpollEvent::new(flags, fd as u64);
        epoll_ctl(self.epoll.0.as_raw_fd(), op, fd, &mut ev)
    }

    /// Handles one readiness event; `false` if the connection closed.
    fn ready(&mut self, fd: RawFd, flags: EpollFlags) -> bool {
        let i = fd as usize;
        if flags.contains(EpollFlags::EPOLLOUT) && !self.conns[i].unsent.is_empty() {
            let unsent = std::mem::take(&mut self.conns[i].unsent);
            if self.write(fd, &unsent).is_err() {
                return self.close(fd);
            }
            if !self.conns[i].unsent.is_empty() {
                return true; // Still full: read no more until it drains.
            }
            if self.conns[i].close_after {
                return self.close(fd);
            }
        }
        if !flags.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLERR,
        ) {
            return true;
        }
        loop {
            let n = match recv(fd, &mut self.buf, MsgFlags::empty()) {
                Ok(0) => return self.close(fd),
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => return self.close(fd),
            };
            if let Next::Close = self.answer(fd, n) {
                return self.close(fd);
            }
            if !self.conns[i].unsent.is_empty() {
                // The peer is not reading: read no more until the replies
                // are out (the EPOLLOUT event reports input still waiting).
                return true;
            }
            if n < self.buf.len() {
                // Drained: under edge triggering, later bytes raise a new event.
                break;
            }
        }
        if flags.contains(EpollFlags::EPOLLRDHUP) {
            // The peer has sent all it will, and it has been answered: skip
            // the read that would return 0 (once the answer is out).
            if self.conns[i].unsent.is_empty() {
                return self.close(fd);
            }
            self.conns[i].close_after = true;
        }
        true
    }

    /// Answers the `n` bytes just read.
    fn answer(&mut self, fd: RawFd, n: usize) -> Next {
        let i = fd as usize;
        if self.mode == Mode::Echo {
            let data = std::mem::take(&mut self.buf);
            let res = self.write(fd, &data[..n]);
            self.buf = data;
            return if res.is_ok() { Next::Keep } else { Next::Close };
        }
        let conn = &mut self.conns[i];
        let data: &[u8] = if conn.carry.is_empty() {
            &self.buf[..n]
        } else {
            conn.carry.extend_from_slice(&self.buf[..n]);
            &conn.carry
        };
        let framed = match self.mode {
            Mode::Redis => match redis_requests(data) {
                Ok(f) => f,
                Err(_) => return Next::Close,
            },
            _ => http_requests(data),
        };
        let Framed {
            requests,
            used,
            close,
        } = framed;
        let rest = data.len() - used;
        if rest > CARRY_MAX {
            return Next::Close;
        }
        if conn.carry.is_empty() {
            conn.carry.extend_from_slice(&self.buf[used..n]);
        } else {
            conn.carry.drain(..used);
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let reply = if self.mode == Mode::Redis {
            PONG
        } else {
            HTTP_OK
        };
        for k in 0..requests {
            let last = k + 1 == requests;
            out.extend_from_slice(if close && last { HTTP_OK_CLOSE } else { reply });
        }
        let res = self.write(fd, &out);
        self.out = out;
        match (res, close) {
            (Err(_), _) => Next::Close,
            (Ok(()), false) => Next::Keep,
            (Ok(()), true) if self.conns[i].unsent.is_empty() => Next::Close,
            (Ok(()), true) => {
                self.conns[i].close_after = true;
                Next::Keep
            }
        }
    }

    /// One write; what the socket does not take waits, with EPOLLOUT armed.
    fn write(&mut self, fd: RawFd, data: &[u8]) -> nix::Result<()> {
        let i = fd as usize;
        if !self.conns[i].unsent.is_empty() {
            self.conns[i].unsent.extend_from_slice(data);
            return Ok(());
        }
        let mut off = 0;
        while off < data.len() {
            match send(fd, &data[off..], MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => off += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    self.conns[i].unsent.extend_from_slice(&data[off..]);
                    if !self.conns[i].registered {
                        return Ok(()); // Added with EPOLLOUT.
                    }
                    let flags = EpollFlags::EPOLLIN
                        | EpollFlags::EPOLLOUT
                        | EpollFlags::EPOLLRDHUP
                        | EpollFlags::EPOLLET;
                    return self.ctl(EpollOp::EpollCtlMod, fd, flags);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes without `epoll_ctl(DEL)`: the close removes it from epoll.
    /// Returns `false` (the connection is gone).
    fn close(&mut self, fd: RawFd) -> bool {
        self.conns[fd as usize] = Conn::default();
        let _ = close(fd);
        false
    }
}

fn parse(p: &mut lexopt::Parser) -> Result<(Mode, u16, bool), CliError> {
    let (mut mode, mut port, mut deferred) = (None, None, false);
    while let Some(arg) = p.next()? {
        match arg {
            Long("mode") => mode = Some(cli::choice(p, "--mode", &cli::MODES)?),
            Long("port") => port = Some(cli::value(p, "--port")?),
            Long("defer-accept") => deferred = true,
            other => return Err(cli::unexpected(other)),
        }
    }
    let mode = mode.ok_or("--mode echo|redis|http is required")?;
    let port = port.ok_or("--port N is required")?;
    Ok((mode, port, deferred))
}

/// The binary's `main` on Linux.
pub fn main() -> ExitCode {
    let (mode, port, deferred) = cli::parse_or_exit("floor-server", USAGE, parse);
    if let Err(e) = evio_sys::net::raise_fd_limit(u64::MAX) {
        eprintln!("floor-server: note: cannot raise the open-file limit: {e}");
    }
    let setup = || -> io::Result<Floor> {
        let listener = listen_on(port)?;
        // The probe sends nothing, so defer only after it.
        let nodelay_inherited = nodelay_is_inherited(&listener)?;
        if deferred {
            evio_sys::net::set_defer_accept(&listener, Some(Duration::from_secs(1)))?;
        }
        Ok(Floor {
            mode,
            listener,
            nodelay_inherited,
            deferred,
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
            out: Vec::new(),
        })
    };
    let mut floor = match setup() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("floor-server: 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "floor-server: {mode:?} on 127.0.0.1:{port}; TCP_NODELAY inherited from the listener: {}{}",
        if floor.nodelay_inherited {
            "yes"
        } else {
            "no, set per connection"
        },
        if deferred { "; TCP_DEFER_ACCEPT" } else { "" }
    );
    match floor.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor-server: {e}");
            ExitCode::from(1)
        }
    }
}
