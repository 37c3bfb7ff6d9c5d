//! Churn (`--churn`): clients that connect, send one message, read it
//! back and close, over and over.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evio_benches::pattern::Pattern;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::common::{connect_nonblocking, epoll_add, Clock, Tally, READABLE};
use crate::Opts;

/// One churn client: its current connection.
pub(crate) struct Client {
    pub(crate) sock: Option<TcpStream>,
    /// Bumped for every connection, and part of the epoll token, so that an
    /// event of a closed connection is not taken for the next one's.
    pub(crate) generation: u32,
    /// Pattern offset of this connection's message.
    pub(crate) start: usize,
    pub(crate) sent: usize,
    pub(crate) recvd: usize,
    /// When `connect` was called.
    pub(crate) opened: Instant,
    pub(crate) last_progress: Instant,
}

/// Churn: clients that connect, send one message, read it back, close.
pub(crate) struct Churn {
    pub(crate) o: Opts,
    pub(crate) pat: Pattern,
    pub(crate) epoll: Epoll,
    pub(crate) clients: Vec<Client>,
    /// Gives every connection its own pattern offset.
    pub(crate) next_conn: usize,
    /// Clients whose connect failed at once; retried after a pause.
    pub(crate) retry: Vec<usize>,
    /// When to retry them.
    pub(crate) retry_at: Option<Instant>,
    /// Error lines printed so far (a few, not thousands).
    pub(crate) complaints: usize,
    pub(crate) t: Tally,
    pub(crate) running: bool,
    pub(crate) buf: Vec<u8>,
}

impl Churn {
    pub(crate) fn new(o: Opts, clients: usize, first_conn: usize) -> Result<Churn, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| format!("epoll_create1: {}", io::Error::from(e)))?;
        let now = Instant::now();
        let clients = (0..clients)
            .map(|_| Client {
                sock: None,
                generation: 0,
                start: 0,
                sent: 0,
                recvd: 0,
                opened: now,
                last_progress: now,
            })
            .collect();
        Ok(Churn {
            buf: vec![0u8; o.size.max(4096)],
            o,
            pat: Pattern::new(),
            epoll,
            clients,
            next_conn: first_conn,
            retry: Vec::new(),
            retry_at: None,
            complaints: 0,
            t: Tally::new(),
            running: true,
        })
    }

    pub(crate) fn complain(&mut self, i: usize, what: &str) {
        if self.running && self.complaints < 5 {
            self.complaints += 1;
            eprintln!("loadgen: client {i}: {what}");
        }
    }

    /// Counts a failed connect of client `i` and retries it in 10 ms
    /// (e.g. when no local port is free).
    pub(crate) fn retry_later(&mut self, i: usize, why: String) {
        self.t.c.errors += 1;
        self.complain(i, &why);
        self.retry.push(i);
        self.retry_at
            .get_or_insert_with(|| Instant::now() + Duration::from_millis(10));
    }

    /// Opens client `i`'s next connection.
    pub(crate) fn open(&mut self, i: usize) {
        let now = Instant::now();
        let sock = match connect_nonblocking(self.o.addr) {
            Ok(sock) => sock,
            Err(e) => return self.retry_later(i, format!("connect: {e}")),
        };
        let c = &mut self.clients[i];
        c.generation = c.generation.wrapping_add(1);
        let token = (u64::from(c.generation) << 32) | i as u64;
        if let Err(e) = epoll_add(&self.epoll, &sock, token) {
            return self.retry_later(i, format!("epoll_ctl: {e}"));
        }
        c.sock = Some(sock);
        c.start = Pattern::start_for(self.next_conn);
        self.next_conn += 1;
        c.sent = 0;
        c.recvd = 0;
        c.opened = now;
        c.last_progress = now;
    }

    /// Ends client `i`'s connection (an error when `why` is given) and
    /// opens the next one.
    pub(crate) fn finish(&mut self, i: usize, why: Option<String>) {
        self.clients[i].sock = None; // close
        if let Some(why) = why {
            if self.running {
                self.t.c.errors += 1;
            }
            self.complain(i, &why);
        }
        if self.running {
            self.open(i);
        }
    }

    pub(crate) fn event(&mut self, token: u64, bits: EpollFlags) {
        let i = (token & 0xffff_ffff) as usize;
        let c = &self.clients[i];
        if c.sock.is_none() || u64::from(c.generation) != token >> 32 {
            return; // an event of a connection closed already
        }
        if let Err(why) = self.send(i) {
            return self.finish(i, Some(why));
        }
        if bits.intersects(READABLE) {
            self.receive(i);
        }
    }

    /// Sends what is left of the message.
    pub(crate) fn send(&mut self, i: usize) -> Result<(), String> {
        let size = self.o.size;
        let c = &mut self.clients[i];
        let Some(sock) = &c.sock else { return Ok(()) };
        while c.sent < size {
            let chunk = self.pat.slice(c.start, c.sent as u64, size - c.sent);
            match (&*sock).write(chunk) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// Reads and checks the echo; closes when all of it is back.
    pub(crate) fn receive(&mut self, i: usize) {
        let size = self.o.size;
        loop {
            let c = &mut self.clients[i];
            let Some(sock) = &c.sock else { return };
            let n = match (&*sock).read(&mut self.buf) {
                Ok(0) => return self.finish(i, Some("closed by the server".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.finish(i, Some(format!("read: {e}"))),
            };
            let data = &self.buf[..n];
            if c.recvd + n > c.sent {
                self.t.c.verify_errors += 1;
                let why = format!("{} bytes came back, {} were sent", c.recvd + n, c.sent);
                return self.finish(i, Some(why));
            }
            if let Some(pos) = self.pat.verify(c.start, c.recvd as u64, data) {
                self.t.c.verify_errors += 1;
                let why = format!("wrong byte at offset {}", c.recvd + pos);
                return self.finish(i, Some(why));
            }
            let now = Instant::now();
            c.recvd += n;
            c.last_progress = now;
            if c.recvd == size {
                let ns = now.duration_since(c.opened).as_nanos() as u64;
                if self.t.measuring {
                    self.t.c.messages += 1;
                    self.t.c.bytes += size as u64;
                    self.t.hist.saturating_record(ns.max(1));
                }
                self.t.c.total_messages += 1;
                return self.finish(i, None);
            }
        }
    }

    /// Runs the clients until the clock's end.
    pub(crate) fn run(mut self, clock: Clock) -> Result<Tally, String> {
        self.t.begin(&clock, self.o.warmup);
        for i in 0..self.clients.len() {
            self.open(i);
        }
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut now;
        loop {
            now = Instant::now();
            if self.t.advance(&clock, now) {
                break;
            }
            let mut timeout = clock.timeout_ms(self.t.measuring, now);
            if self.retry_at.is_some() {
                timeout = timeout.min(10);
            }
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("epoll_wait: {}", io::Error::from(e))),
            };
            for ev in &events[..n] {
                self.event(ev.data(), ev.events());
            }
            if self.retry_at.is_some_and(|t| Instant::now() >= t) {
                self.retry_at = None;
                for i in std::mem::take(&mut self.retry) {
                    self.open(i);
                }
            }
        }
        self.t.finish(now);
        self.running = false;
        let overdue = Duration::from_secs_f64((self.o.duration / 2.0).max(1.0));
        self.t.stalled = self
            .clients
            .iter()
            .filter(|c| c.sock.is_some() && now.duration_since(c.last_progress) > overdue)
            .count() as u64;
        Ok(self.t)
    }
}
