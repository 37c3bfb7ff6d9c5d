//! The closed loop (`--depth` messages in flight per connection) and the
//! stream (`--stream`), over connections opened up front.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evio_benches::pattern::Pattern;
use evio_benches::tls::{self, Stream};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use rustls::ClientConnection;

use crate::common::{epoll_add, Clock, Tally, READABLE};
use crate::Opts;

pub(crate) struct Conn {
    pub(crate) sock: Stream,
    pub(crate) start: usize,
    /// Bytes handed to the send side (closed loop: whole messages).
    pub(crate) issued: u64,
    /// Bytes written to the socket.
    pub(crate) sent: u64,
    /// Bytes read back (and verified).
    pub(crate) recvd: u64,
    /// Issue times of the messages in flight (closed loop).
    pub(crate) times: VecDeque<Instant>,
    pub(crate) alive: bool,
    pub(crate) last_progress: Instant,
}

/// Closed loop or stream over connections opened up front.
pub(crate) struct Gen {
    pub(crate) o: Opts,
    pub(crate) pat: Pattern,
    pub(crate) conns: Vec<Conn>,
    pub(crate) t: Tally,
    pub(crate) running: bool,
    pub(crate) buf: Vec<u8>,
}

impl Gen {
    /// A closed loop (or stream) over `conns`.
    pub(crate) fn new(o: Opts, conns: Vec<Conn>) -> Gen {
        Gen {
            o,
            pat: Pattern::new(),
            conns,
            t: Tally::new(),
            running: true,
            buf: vec![0u8; 1 << 16],
        }
    }

    pub(crate) fn kill(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.alive {
            c.alive = false;
            let _ = c.sock.socket().shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closed loop: hand one more message to the send side.
    pub(crate) fn issue(&mut self, i: usize, now: Instant) {
        let size = self.o.size as u64;
        let c = &mut self.conns[i];
        c.issued += size;
        c.times.push_back(now);
    }

    /// Writes what is due until the socket would block.
    pub(crate) fn flush(&mut self, i: usize) {
        let window = self.o.window;
        let stream = self.o.stream;
        loop {
            let c = &mut self.conns[i];
            if !c.alive {
                return;
            }
            let due = if stream {
                (c.recvd + window).saturating_sub(c.sent)
            } else {
                c.issued - c.sent
            };
            if due == 0 {
                // TLS: records sealed before may still wait for the socket.
                if let Err(e) = c.sock.flush_tls() {
                    self.write_failed(i, e);
                }
                return;
            }
            let chunk = self.pat.slice(c.start, c.sent, due.min(1 << 16) as usize);
            match c.sock.write(chunk) {
                Ok(0) => {
                    self.t.c.errors += 1;
                    self.kill(i);
                    return;
                }
                Ok(n) => c.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.write_failed(i, e),
            }
        }
    }

    /// Counts a failed write (while the load runs) and drops the connection.
    fn write_failed(&mut self, i: usize, e: io::Error) {
        if self.running {
            eprintln!("loadgen: conn {i}: write: {e}");
            self.t.c.errors += 1;
        }
        self.kill(i);
    }

    /// Reads until the socket would block, checking every byte.
    pub(crate) fn read(&mut self, i: usize) {
        let size = self.o.size as u64;
        loop {
            let c = &mut self.conns[i];
            if !c.alive {
                return;
            }
            let n = match c.sock.read(&mut self.buf) {
                Ok(0) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: closed by the server");
                        self.t.c.errors += 1;
                    }
                    self.kill(i);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.running {
                        eprintln!("loadgen: conn {i}: read: {e}");
                        self.t.c.errors += 1;
                    }
                    self.kill(i);
                    return;
                }
            };
            // (TLS hands out one record at a time: read until WouldBlock.)
            let short_read = n < self.buf.len() && !c.sock.is_tls();
            let data = &self.buf[..n];
            if c.recvd + n as u64 > c.sent {
                eprintln!(
                    "loadgen: conn {i}: {} bytes came back but only {} were sent",
                    c.recvd + n as u64,
                    c.sent
                );
                self.t.c.verify_errors += 1;
                self.kill(i);
                return;
            }
            if let Some(pos) = self.pat.verify(c.start, c.recvd, data) {
                eprintln!(
                    "loadgen: conn {i}: wrong byte at stream offset {} (message {}, byte {})",
                    c.recvd + pos as u64,
                    (c.recvd + pos as u64) / size,
                    (c.recvd + pos as u64) % size
                );
                self.t.c.verify_errors += 1;
                self.kill(i);
                return;
            }
            let now = Instant::now();
            c.last_progress = now;
            let before = c.recvd / size;
            c.recvd += n as u64;
            let done = c.recvd / size - before;
            if self.t.measuring {
                self.t.c.bytes += n as u64;
                self.t.c.messages += done;
            }
            self.t.c.total_messages += done;
            if !self.o.stream {
                for _ in 0..done {
                    let t = self.conns[i].times.pop_front().expect("message in flight");
                    if self.t.measuring {
                        let ns = now.duration_since(t).as_nanos() as u64;
                        self.t.hist.saturating_record(ns.max(1));
                    }
                    if self.running {
                        self.issue(i, now);
                    }
                }
            }
            if short_read {
                // The socket is drained: skip the read that would only say
                // WouldBlock. Safe under edge triggering, since bytes that
                // arrive later raise a new event.
                break;
            }
        }
        self.flush(i);
    }

    /// Drives the connections until the clock's end.
    pub(crate) fn run(mut self, clock: Clock) -> Result<Tally, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| format!("epoll_create1: {}", io::Error::from(e)))?;
        for (i, c) in self.conns.iter().enumerate() {
            epoll_add(&epoll, c.sock.socket(), i as u64).map_err(|e| format!("epoll_ctl: {e}"))?;
        }
        let o = self.o.clone();
        self.t.begin(&clock, o.warmup);
        for i in 0..self.conns.len() {
            if !o.stream {
                for _ in 0..o.depth {
                    self.issue(i, clock.t0);
                }
            }
            self.flush(i);
        }
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut now;
        loop {
            now = Instant::now();
            if self.t.advance(&clock, now) || self.conns.iter().all(|c| !c.alive) {
                break;
            }
            let n = match epoll.wait(&mut events, clock.timeout_ms(self.t.measuring, now)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("epoll_wait: {}", io::Error::from(e))),
            };
            for ev in &events[..n] {
                let i = ev.data() as usize;
                let bits = ev.events();
                if bits.intersects(READABLE) {
                    self.read(i);
                }
                if bits.contains(EpollFlags::EPOLLOUT) {
                    self.flush(i);
                }
            }
        }
        self.t.finish(now);
        self.running = false;
        // A connection whose data is overdue (nothing came back for a long
        // time while bytes were outstanding) counts as stalled.
        let overdue = Duration::from_secs_f64((o.duration / 2.0).max(1.0));
        self.t.stalled = self
            .conns
            .iter()
            .filter(|c| {
                c.alive && c.sent > c.recvd && now.duration_since(c.last_progress) > overdue
            })
            .count() as u64;
        self.t.closed = self.conns.iter().filter(|c| !c.alive).count();
        Ok(self.t)
    }
}

/// Opens the connections of the closed loop (or stream) up front, each with
/// its TLS handshake done under `--tls`.
pub(crate) fn connect_all(o: &Opts) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let mut sock = TcpStream::connect_timeout(&o.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {} (conn {i}): {e}", o.addr))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        let sock = match &o.tls {
            None => {
                sock.set_nonblocking(true).map_err(|e| e.to_string())?;
                Stream::Plain(sock)
            }
            Some((config, name)) => {
                let handshake = |sock: &mut TcpStream| -> io::Result<ClientConnection> {
                    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
                    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
                    let mut conn = ClientConnection::new(config.clone(), name.clone())
                        .map_err(io::Error::other)?;
                    tls::handshake(&mut conn, sock)?;
                    Ok(conn)
                };
                let conn = handshake(&mut sock)
                    .map_err(|e| format!("TLS handshake with {} (conn {i}): {e}", o.addr))?;
                Stream::tls(conn, sock).map_err(|e| e.to_string())?
            }
        };
        conns.push(Conn {
            sock,
            start: Pattern::start_for(i),
            issued: 0,
            sent: 0,
            recvd: 0,
            times: VecDeque::with_capacity(o.depth),
            alive: true,
            last_progress: Instant::now(),
        });
    }
    Ok(conns)
}
