//! The accepting side of a loop: its listeners and UDP sockets, accepting
//! with back-off, shedding over `max_connections`, handing connections to
//! other loops, and serving datagrams.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use evio_sys::{net, Interest, Poller};

use super::{view, EventLoop};
use crate::addr::Bound;
use crate::balance::Balancer;
use crate::conn::Conn;
use crate::handler::{Action, EventHandler};
use crate::key::Token;
use crate::remote::Msg;
use crate::Addr;

/// Accepts (or datagrams) per listener per event before others get a turn.
const MAX_ACCEPTS_PER_EVENT: usize = 256;
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The listeners a loop owns and the state of accepting on them.
pub(super) struct Acceptor {
    listeners: Vec<Bound>,
    /// For each UDP listener, its reply slot in the connection table.
    udp_slots: Vec<Option<usize>>,
    balancer: Balancer,
    /// When to retry accepting (after EMFILE) or resume a busy listener.
    retry: Option<Instant>,
    /// Listeners taken out of the poller while accepting is backed off.
    paused: bool,
    /// Shedding connections over `max_connections` (warned once per episode).
    shedding: bool,
}

impl Acceptor {
    pub(super) fn new(listeners: Vec<Bound>, balancer: Balancer) -> Acceptor {
        Acceptor {
            listeners,
            udp_slots: Vec::new(),
            balancer,
            retry: None,
            paused: false,
            shedding: false,
        }
    }

    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry
    }
}

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Creates the UDP reply slots and registers the listeners.
    pub(super) fn start_listeners(&mut self) -> io::Result<()> {
        for (i, l) in self.accept.listeners.iter().enumerate() {
            let slot = l.network.is_udp().then(|| self.table.insert_udp_slot(i));
            self.accept.udp_slots.push(slot);
        }
        self.register_listeners()
    }

    fn register_listeners(&mut self) -> io::Result<()> {
        for (i, l) in self.accept.listeners.iter().enumerate() {
            self.poller.register(
                l.fd.as_raw_fd(),
                Token::Listener(i).encode(),
                Interest::READABLE,
            )?;
        }
        Ok(())
    }

    /// Stops accepting for good (shutdown): listeners leave the poller and
    /// close, UDP reply slots go.
    pub(super) fn stop_listeners(&mut self) {
        for l in self.accept.listeners.drain(..) {
            if !self.accept.paused {
                let _ = self.poller.deregister(l.fd.as_raw_fd());
            }
        }
        for slot in self.accept.udp_slots.drain(..).flatten() {
            self.table.remove(slot);
        }
        self.accept.retry = None;
    }

    pub(super) fn on_listener(&mut self, i: usize) {
        if self.accept.paused {
            return;
        }
        match self.accept.listeners.get(i) {
            Some(l) if l.network.is_udp() => self.read_datagrams(i),
            Some(_) => self.accept(i),
            None => {}
        }
    }

    /// The retry timer fired: re-register paused listeners and accept what
    /// waits.
    pub(super) fn retry_accepting(&mut self) {
        self.accept.retry = None;
        if self.accept.paused {
            self.accept.paused = false;
            if let Err(e) = self.register_listeners() {
                tracing::warn!(error = %e, "evio: re-registering listeners failed");
                self.pause_accepting();
                return;
            }
        }
        for i in 0..self.accept.listeners.len() {
            self.on_listener(i);
        }
    }

    fn accept(&mut self, i: usize) {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let l = &self.accept.listeners[i];
            match net::accept(&l.fd) {
                Ok((fd, remote)) => {
                    let unix = l.unix_path.is_some();
                    if self.over_capacity() {
                        // Shed it now: the peer sees a close instead of a
                        // wait in the backlog, and nothing is allocated.
                        drop(fd);
                        tracing::debug!(remote = %remote, "evio: at max_connections; closed");
                        continue;
                    }
                    tracing::debug!(remote = %remote, listener = i, "evio: accepted");
                    self.dispatch_conn(fd, remote, i, unix);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection
                    // stays in the backlog; stop polling the listener for a
                    // while instead of spinning on it.
                    tracing::warn!(error = %e, listener = i, "evio: accept failed; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.pause_accepting();
                    return;
                }
            }
        }
        // More may be pending: come back after other work.
        self.accept.retry = Some(Instant::now());
    }

    /// Whether `Builder::max_connections` connections are open.
    fn over_capacity(&mut self) -> bool {
        let Some(max) = self.ctx.shared.config.max_connections else {
            return false;
        };
        let over = self.ctx.shared.open_connections() >= max;
        if over && !self.accept.shedding {
            tracing::warn!(
                max,
                "evio: max_connections reached; closing new connections"
            );
        }
        self.accept.shedding = over;
        over
    }

    fn pause_accepting(&mut self) {
        if !self.accept.paused {
            for l in &self.accept.listeners {
                let _ = self.poller.deregister(l.fd.as_raw_fd());
            }
            self.accept.paused = true;
        }
        self.accept.retry = Some(Instant::now() + ACCEPT_BACKOFF);
    }

    /// Serves an accepted connection here or hands it to the loop the
    /// balancer picks.
    fn dispatch_conn(&mut self, fd: OwnedFd, remote: Addr, listener: usize, unix: bool) {
        let loops = &self.ctx.shared.loops;
        let target = self.accept.balancer.pick(loops);
        let remote_loop = &loops[target];
        remote_loop.count_open();
        if target == self.ctx.index {
            self.install(fd, remote, listener, unix);
        } else if !remote_loop.send(Msg::Accepted {
            fd,
            remote,
            listener,
            unix,
        }) {
            remote_loop.count_closed();
        }
    }

    fn read_datagrams(&mut self, i: usize) {
        let Some(slot) = self.accept.udp_slots[i] else {
            return;
        };
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let fd = self.accept.listeners[i].fd.as_fd();
            let (n, from) = match net::recv_from(fd, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors surface here; the socket keeps working.
                    tracing::debug!(error = %e, "evio: udp receive error");
                    continue;
                }
            };
            self.table.udp_begin(slot, from);
            let action = self.handler.on_data(view!(self, slot), &self.buf[..n]);
            if self.table.udp_reply(slot).is_some() {
                self.handler.on_pre_write();
                let fd = self.accept.listeners[i].fd.as_fd();
                if let Some(reply) = self.table.udp_reply(slot) {
                    if let Err(e) = net::send_to(fd, reply, &from) {
                        tracing::debug!(error = %e, to = %from, "evio: udp send failed");
                    }
                }
            }
            if action == Action::Shutdown {
                self.ctx.shared.begin_shutdown();
            }
            self.register_dialed();
        }
        self.accept.retry = Some(Instant::now());
    }
}
