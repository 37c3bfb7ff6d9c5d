//! `mio-echo`: a hand-tuned echo server on plain `mio` 1.x, as a peer in the
//! echo race. One thread, edge-triggered (mio always is), each socket
//! registered once for READABLE | WRITABLE so that no `epoll_ctl` happens per
//! message. On readiness: read until WouldBlock (or a short read, which means
//! the socket is drained) into one shared buffer, write each chunk straight
//! back, keep only the unwritten tail per connection (a buffer that is reused,
//! so no allocation per message). Events that only report writability cost no
//! system call unless there is a backlog to write. While a connection has a
//! backlog over `MAX_PENDING` it stops reading until the peer drains it.
//!
//! Usage: `mio-echo --port N` (listens on 127.0.0.1).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use evio_benches::cli::{self, CliError};
use lexopt::Arg::Long;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const MAX_PENDING: usize = 1 << 20;

struct Conn {
    sock: TcpStream,
    /// Bytes read but not yet written back: `pending[off..]`.
    pending: Vec<u8>,
    off: usize,
    /// Readiness to read not yet used up (the last read did not see
    /// WouldBlock). Edge-triggered events also come for mere writability
    /// (each ACK that frees send space): those must cost no `read`.
    readable: bool,
}

impl Conn {
    /// Writes the backlog. Ok(true) when it is empty now.
    fn flush(&mut self) -> io::Result<bool> {
        while self.off < self.pending.len() {
            match self.sock.write(&self.pending[self.off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.off = 0;
        Ok(true)
    }

    /// Echoes `data`: straight to the socket when there is no backlog, the
    /// unwritten tail (or all of it, behind a backlog) to the backlog.
    fn echo(&mut self, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        if self.off == self.pending.len() {
            while done < data.len() {
                match self.sock.write(&data[done..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if done < data.len() {
            self.pending.extend_from_slice(&data[done..]);
        }
        Ok(())
    }

    /// Serves the connection until it would block. Err or Ok(false): close.
    fn drive(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        loop {
            if self.off < self.pending.len()
                && !self.flush()?
                && self.pending.len() - self.off >= MAX_PENDING
            {
                // Wait for WRITABLE before reading more.
                return Ok(true);
            }
            if !self.readable {
                return Ok(true);
            }
            match self.sock.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.echo(&buf[..n])?;
                    if n < buf.len() {
                        // A short read drained the socket: skip the read
                        // that would only say WouldBlock (as tokio does).
                        // Safe under edge triggering: bytes that arrive
                        // later raise a new event.
                        self.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

const USAGE: &str = "\
usage: mio-echo --port N

The mio peer of the echo race (and the proxy workload's backend), on
127.0.0.1: one thread, edge-triggered.
  --port N       the port to listen on (required)
  -V, --version  print the name and version
  -h, --help     this text";

fn parse(p: &mut lexopt::Parser) -> Result<u16, CliError> {
    let mut port = None;
    while let Some(arg) = p.next()? {
        match arg {
            Long("port") => port = Some(cli::value(p, "--port")?),
            other => return Err(cli::unexpected(other)),
        }
    }
    Ok(port.ok_or("--port N is required")?)
}

fn main() -> io::Result<()> {
    let port = cli::parse_or_exit("mio-echo", USAGE, parse);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("mio-echo: serving on {addr}");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut sock,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                sock,
                                pending: Vec::new(),
                                off: 0,
                                readable: true,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // e.g. EMFILE: keep serving what we have.
                            eprintln!("mio-echo: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                conn.readable = true;
            }
            if !conn.readable && conn.off == conn.pending.len() {
                continue; // writable only, nothing to write: no syscall
            }
            // An error closes the connection, like EOF.
            let keep = conn.drive(&mut buf).unwrap_or(false);
            if !keep {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(i);
            }
        }
    }
}
