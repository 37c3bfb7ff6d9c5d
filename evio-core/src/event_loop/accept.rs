//! The accepting side of a loop: its listeners and UDP sockets, accepting
//! with back-off, shedding over `max_connections`, handing connections to
//! other loops, and serving datagrams.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use evio_sys::{net, Interest, Poller};

use super::{view, EventLoop};
use crate::addr::Bound;
use crate::balance::Balancer;
use crate::conn::{canonical, Conn, UdpSocket};
use crate::handler::{Action, EventHandler};
use crate::key::{ConnKey, Token};
use crate::mailbox::{Accepted, Msg};
use crate::receipt::{PendingReceipt, WriteError};
use crate::table::Slot;
use crate::warn::RateLimited;
use crate::Addr;

/// Accepts (or datagrams) per listener per event before others get a turn.
const MAX_ACCEPTS_PER_EVENT: usize = 256;
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How soon accepting is retried after other loops were asked to reclaim
/// idle connections.
const RECLAIM_RETRY: Duration = Duration::from_millis(2);
/// Most connections one loop reclaims at a time (nginx drains 32).
const MAX_RECLAIM: usize = 32;

/// The listeners a loop owns and the state of accepting on them.
pub(super) struct Acceptor {
    listeners: Vec<Bound>,
    /// For each UDP listener, its reply slot in the connection table.
    udp_slots: Vec<Option<Slot>>,
    balancer: Balancer,
    /// When to retry accepting (after EMFILE) or resume a busy listener.
    retry: Option<Instant>,
    /// Listeners taken out of the poller while accepting is backed off.
    paused: bool,
    /// Shedding connections over `max_connections` (warned once per episode).
    shedding: bool,
    /// Accept failures, logged at most once a second.
    warned: RateLimited,
    /// Idle connections closed to make room, logged at most once a second.
    reclaimed: RateLimited,
    /// Per listener: whether accepted sockets inherit its `TCP_NODELAY`
    /// (learned from the first one accepted; Linux and the BSDs copy it).
    nodelay: Vec<Option<bool>>,
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
            nodelay: Vec::new(),
            warned: RateLimited::default(),
            reclaimed: RateLimited::default(),
        }
    }

    /// Whether `fd`, just accepted on listener `i`, has `TCP_NODELAY` from
    /// its listener; asked of the first socket only, then remembered.
    fn nodelay_inherited(&mut self, i: usize, fd: &OwnedFd) -> bool {
        if self.nodelay.len() <= i {
            self.nodelay.resize(self.listeners.len().max(i + 1), None);
        }
        *self.nodelay[i].get_or_insert_with(|| net::nodelay(fd).unwrap_or(false))
    }

    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry
    }
}

/// The UDP sockets among `listeners`, by address index (for
/// `Conn::send_to` and replies from other threads).
pub(super) fn udp_sockets(listeners: &[Bound], addrs: usize) -> Vec<Option<UdpSocket>> {
    let mut v = vec![None; addrs];
    for l in listeners.iter().filter(|l| l.network.is_udp()) {
        let v6 = matches!(l.addr, Addr::Inet(SocketAddr::V6(_)));
        v[l.index] = Some(UdpSocket {
            fd: l.fd.clone(),
            v6,
        });
    }
    v
}

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    /// Creates the UDP reply slots and registers the listeners.
    pub(super) fn start_listeners(&mut self) -> io::Result<()> {
        for l in &self.accept.listeners {
            let slot = l
                .network
                .is_udp()
                .then(|| self.table.insert_udp_slot(l.index));
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
        let handed_over = self.ctx.shared.is_handed_over();
        for mut l in self.accept.listeners.drain(..) {
            if !self.accept.paused {
                let _ = self.poller.deregister(l.fd.as_raw_fd());
            }
            if handed_over {
                // The successor serves this socket, file and all.
                l.unix_path = None;
            }
        }
        for slot in self.accept.udp_slots.drain(..).flatten() {
            self.table.release(slot);
        }
        self.ctx.udp_sockets.clear();
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
                self.accept.warned.warn(|held| {
                    tracing::warn!(error = %e, suppressed = held, "evio: re-registering listeners failed")
                });
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
            match net::accept(&*l.fd) {
                Ok((fd, remote)) => {
                    let remote = canonical(remote);
                    let (unix, index, local, tls, deferred) =
                        (l.unix_path.is_some(), l.index, l.local, l.tls, l.deferred);
                    let nodelay = !unix && self.accept.nodelay_inherited(i, &fd);
                    if self.over_capacity() {
                        // Shed it now: the peer sees a close instead of a
                        // wait in the backlog, and nothing is allocated.
                        drop(fd);
                        tracing::debug!(remote = %remote, "evio: at max_connections; closed");
                        continue;
                    }
                    tracing::debug!(remote = %remote, listener = index, "evio: accepted");
                    let accepted = Accepted {
                        fd,
                        remote,
                        listener: index,
                        unix,
                        nodelay,
                        tls,
                        deferred,
                    };
                    if local {
                        self.ctx.me.count_open();
                        self.install(accepted);
                    } else {
                        self.dispatch_conn(accepted);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    if net::is_out_of_fds(&e) {
                        self.counters.accept_out_of_fds += 1;
                    }
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection
                    // stays in the backlog. Make room by closing idle
                    // connections if allowed, else stop polling the listener
                    // for a while instead of spinning on it.
                    if self.make_room(&e) {
                        continue;
                    }
                    self.accept.warned.warn(|held| {
                        tracing::warn!(
                            error = %e,
                            suppressed = held,
                            "evio: accept failed; pausing accepts for {ACCEPT_BACKOFF:?}"
                        )
                    });
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

    /// Out of descriptors with `Builder::reclaim_idle` on: closes this
    /// loop's longest-idle reclaimable connections; `true` if any closed
    /// (accept again now). Otherwise asks the other loops to reclaim theirs
    /// and retries shortly.
    fn make_room(&mut self, e: &io::Error) -> bool {
        if !net::is_out_of_fds(e) || !self.ctx.shared.config.reclaim_idle {
            return false;
        }
        let closed = self.reclaim(MAX_RECLAIM);
        if closed > 0 {
            // Out of descriptors is an operator's problem even when idle
            // clients pay for it: raise `nofile` (docs/operations.md).
            self.accept.reclaimed.warn(|held| {
                tracing::warn!(
                    error = %e,
                    closed,
                    suppressed = held,
                    "evio: out of file descriptors; closed the longest-idle connections to accept new ones"
                )
            });
            return true;
        }
        let me = self.ctx.index;
        let mut asked = false;
        for (i, l) in self.ctx.shared.loops.iter().enumerate() {
            if i != me {
                asked |= l.send(Msg::Reclaim(MAX_RECLAIM));
            }
        }
        if asked {
            self.pause_accepting();
            self.accept.retry = Some(Instant::now() + RECLAIM_RETRY);
            return false;
        }
        false
    }

    /// Closes up to `max` of this loop's reclaimable connections, longest
    /// idle first; returns how many.
    pub(super) fn reclaim(&mut self, max: usize) -> usize {
        let victims = self.table.reclaim_candidates(max);
        for &slot in &victims {
            let e = io::Error::other("evio: closed to make room: out of file descriptors");
            self.close(slot, Some(e));
        }
        if !victims.is_empty() {
            tracing::debug!(count = victims.len(), "evio: reclaimed idle connections");
        }
        victims.len()
    }

    /// A cross-thread write to a UDP datagram's sender.
    pub(super) fn send_datagram(
        &mut self,
        slot: ConnKey,
        to: SocketAddr,
        data: &[u8],
        receipt: PendingReceipt,
    ) {
        let socket = self
            .table
            .slot(slot)
            .and_then(|s| self.table.conn(s).listener())
            .and_then(|i| self.ctx.udp_sockets.get(i).cloned().flatten());
        let result = match socket {
            Some(socket) => socket.send_to(data, to).map(drop),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        receipt.complete(result.map_err(|e| WriteError::from_io(&e)));
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
    fn dispatch_conn(&mut self, accepted: Accepted) {
        let loops = &self.ctx.shared.loops;
        let target = self.accept.balancer.pick(loops);
        let remote_loop = &loops[target];
        remote_loop.count_open();
        if target == self.ctx.index {
            self.install(accepted);
        } else if !remote_loop.send(Msg::Accepted(accepted)) {
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
            self.counters.bytes_read += n as u64;
            // Reported as IPv4 if it is, answered at the address it came from.
            let sender = SocketAddr::new(from.ip().to_canonical(), from.port());
            self.table.udp_begin(slot, sender);
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
