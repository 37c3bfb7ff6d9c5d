//! One event loop: a poller, the connections it owns (in a slab), the
//! user's handler, and the channel other threads use to reach it.
//!
//! One iteration: run due timers (tick, accept retry) → wait for events →
//! read ready connections and call `on_data` → drain the wake channel →
//! revisit connections that still had input → `on_pre_write` once, then
//! write every connection with queued output.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use evio_sys::net;
use evio_sys::{Event, Events, Interest, Poller, Waker};
use slab::Slab;

use crate::addr::Bound;
use crate::conn::{Conn, DetachedStream, Output};
use crate::handler::{Action, EventHandler, ServerInfo};
use crate::server::{Balancer, Config};
use crate::Addr;

/// Tokens with this bit set are listeners (index in the low bits); others
/// are connections: generation in bits 32..63, slab index in bits 0..32.
const LISTENER_BIT: u64 = 1 << 63;
/// Reads of one connection per event before others get a turn.
const MAX_READS_PER_EVENT: usize = 16;
/// Accepts (or datagrams) per listener per event before others get a turn.
const MAX_ACCEPTS_PER_EVENT: usize = 256;
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Output buffers larger than this are freed once drained, so an idle
/// connection keeps at most this much.
const KEEP_OUTPUT_CAPACITY: usize = 16 * 1024;
/// Size of the loop's shared read buffer (and the largest UDP datagram).
const READ_BUFFER: usize = 64 * 1024;

// Connection flags.
const CLOSING: u8 = 1;
const DETACHING: u8 = 2;
const READ_PAUSED: u8 = 4;
const DIRTY: u8 = 8;
const UNIX: u8 = 16;

/// Identifies one connection for its whole life, even after its slab slot
/// is reused: the slot index plus a per-loop generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnKey {
    index: u32,
    gen: u32,
}

impl ConnKey {
    /// A key that matches no connection (UDP datagrams).
    const NONE: ConnKey = ConnKey {
        index: u32::MAX,
        gen: u32::MAX,
    };

    fn token(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    fn from_token(token: u64) -> ConnKey {
        ConnKey {
            index: token as u32,
            gen: (token >> 32) as u32,
        }
    }
}

/// What other threads send a loop.
pub(crate) enum Msg {
    /// Call `on_wake` for this connection if it still exists.
    Wake(ConnKey),
    /// A connection accepted by loop 0 for this loop to serve.
    Accepted {
        fd: OwnedFd,
        remote: Addr,
        listener: usize,
        unix: bool,
    },
}

/// The parts of a loop other threads can reach.
pub(crate) struct LoopRemote {
    tx: Sender<Msg>,
    waker: Waker,
    /// Open connections (counted when dispatched, so LeastConnections sees
    /// connections still in flight to the loop).
    pub(crate) conns: AtomicUsize,
}

impl LoopRemote {
    pub(crate) fn new(tx: Sender<Msg>, waker: Waker) -> LoopRemote {
        LoopRemote {
            tx,
            waker,
            conns: AtomicUsize::new(0),
        }
    }

    /// Queues a message and wakes the loop; `false` if the loop has ended.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "evio: waking a loop failed");
        }
        true
    }

    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// State every loop shares.
pub(crate) struct Shared {
    pub(crate) shutdown: AtomicBool,
    pub(crate) loops: Vec<Arc<LoopRemote>>,
    pub(crate) addrs: Vec<Addr>,
    pub(crate) config: Config,
}

impl Shared {
    /// Asks every loop to stop (idempotent).
    pub(crate) fn begin_shutdown(&self) {
        if !self.shutdown.swap(true, Ordering::AcqRel) {
            tracing::debug!("evio: shutdown requested");
            for l in &self.loops {
                l.wake();
            }
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

struct ConnState<C> {
    fd: OwnedFd,
    gen: u32,
    listener: u32,
    flags: u8,
    /// Registered interest (level-triggered pollers only).
    interest: Interest,
    remote: Addr,
    out: Output,
    ctx: C,
}

/// Builds the handler's view of a connection from disjoint loop fields.
macro_rules! view {
    ($c:expr, $index:expr, $shared:expr, $me:expr) => {
        Conn {
            out: &mut $c.out,
            ctx: &mut $c.ctx,
            remote: &$c.remote,
            fd: Some($c.fd.as_fd()),
            listener_addr: &$shared.addrs[$c.listener as usize],
            addr_index: $c.listener as usize,
            key: ConnKey {
                index: $index as u32,
                gen: $c.gen,
            },
            remote_loop: $me,
            is_udp: false,
        }
    };
}

/// Interest from two booleans (never empty: read interest is the fallback).
fn interest(read: bool, write: bool) -> Interest {
    match (read, write) {
        (_, false) => Interest::READABLE,
        (true, true) => Interest::BOTH,
        (false, true) => Interest::WRITABLE,
    }
}

pub(crate) struct EventLoop<P: Poller, H: EventHandler> {
    index: usize,
    poller: P,
    handler: H,
    conns: Slab<ConnState<H::Context>>,
    rx: Receiver<Msg>,
    me: Arc<LoopRemote>,
    shared: Arc<Shared>,
    /// Listeners and UDP sockets (loop 0 only).
    listeners: Vec<Bound>,
    balancer: Balancer,
    buf: Box<[u8]>,
    /// Connections with output to write this iteration.
    dirty: Vec<usize>,
    /// Connections to read again next iteration (fairness cap reached, or
    /// reading resumed after backpressure).
    again: Vec<ConnKey>,
    again_now: Vec<ConnKey>,
    next_gen: u32,
    next_tick: Option<Instant>,
    /// When to retry accepting (after EMFILE) or resume a busy listener.
    accept_retry: Option<Instant>,
    /// Listeners taken out of the poller while accepting is backed off.
    accept_paused: bool,
    udp_out: Output,
}

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        poller: P,
        handler: H,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        listeners: Vec<Bound>,
    ) -> Self {
        EventLoop {
            index,
            poller,
            handler,
            conns: Slab::new(),
            rx,
            me: shared.loops[index].clone(),
            balancer: Balancer::new(shared.config.load_balance, index),
            shared,
            listeners,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            dirty: Vec::new(),
            again: Vec::new(),
            again_now: Vec::new(),
            next_gen: 0,
            next_tick: None,
            accept_retry: None,
            accept_paused: false,
            udp_out: Output::default(),
        }
    }

    /// Runs until shutdown; every connection still open then gets
    /// `on_closed`.
    pub(crate) fn run(mut self) -> io::Result<()> {
        tracing::debug!(index = self.index, "evio: loop started");
        let mut events = Events::with_capacity(1024);
        let result = self.start().and_then(|()| self.serve(&mut events));
        if let Err(e) = &result {
            tracing::error!(index = self.index, error = %e, "evio: loop failed");
            self.shared.begin_shutdown();
        }
        self.close_all();
        tracing::debug!(index = self.index, "evio: loop stopped");
        result
    }

    fn start(&mut self) -> io::Result<()> {
        if self.index != 0 {
            return Ok(());
        }
        self.register_listeners()?;
        let info = ServerInfo {
            addrs: self.shared.addrs.clone(),
            num_loops: self.shared.loops.len(),
        };
        if self.handler.on_serving(&info) == Action::Shutdown {
            self.shared.begin_shutdown();
        }
        self.next_tick = Some(Instant::now());
        Ok(())
    }

    fn register_listeners(&mut self) -> io::Result<()> {
        for (i, l) in self.listeners.iter().enumerate() {
            self.poller.register(
                l.fd.as_raw_fd(),
                LISTENER_BIT | i as u64,
                Interest::READABLE,
            )?;
        }
        Ok(())
    }

    fn serve(&mut self, events: &mut Events) -> io::Result<()> {
        while !self.shared.is_shutdown() {
            self.run_timers();
            if self.shared.is_shutdown() {
                break;
            }
            let timeout = self.timeout();
            self.poller.wait(events, timeout)?;
            for ev in events.iter() {
                self.dispatch(*ev);
            }
            if events.is_woken() {
                self.drain_channel();
            }
            self.read_again();
            self.flush_dirty();
        }
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadline = match (self.next_tick, self.accept_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        if self.next_tick.is_some_and(|t| t <= now) {
            let (delay, action) = self.handler.on_tick();
            self.next_tick = delay.map(|d| Instant::now() + d);
            if action == Action::Shutdown {
                self.shared.begin_shutdown();
            }
        }
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            if self.accept_paused {
                self.accept_paused = false;
                if let Err(e) = self.register_listeners() {
                    tracing::warn!(error = %e, "evio: re-registering listeners failed");
                    self.pause_accepting();
                    return;
                }
            }
            for i in 0..self.listeners.len() {
                self.on_listener(i);
            }
        }
    }

    fn dispatch(&mut self, ev: Event) {
        let token = ev.token();
        if token & LISTENER_BIT != 0 {
            self.on_listener((token & !LISTENER_BIT) as usize);
            return;
        }
        let key = ConnKey::from_token(token);
        if !self.is_live(key) {
            return;
        }
        let broken = ev.is_error() || ev.is_hangup();
        if ev.is_writable() || broken {
            self.flush(key.index as usize);
        }
        if (ev.is_readable() || broken) && self.is_live(key) {
            self.read(key.index as usize, ev.is_read_closed() || broken);
        }
    }

    fn is_live(&self, key: ConnKey) -> bool {
        self.conns
            .get(key.index as usize)
            .is_some_and(|c| c.gen == key.gen)
    }

    // ----- accepting -------------------------------------------------------

    fn on_listener(&mut self, i: usize) {
        if self.accept_paused {
            return;
        }
        match self.listeners.get(i) {
            Some(l) if l.network.is_udp() => self.read_datagrams(i),
            Some(_) => self.accept(i),
            None => {}
        }
    }

    fn accept(&mut self, i: usize) {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let l = &self.listeners[i];
            match net::accept(&l.fd) {
                Ok((fd, remote)) => {
                    let unix = l.unix_path.is_some();
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
        self.accept_retry = Some(Instant::now());
    }

    fn pause_accepting(&mut self) {
        if !self.accept_paused {
            for l in &self.listeners {
                let _ = self.poller.deregister(l.fd.as_raw_fd());
            }
            self.accept_paused = true;
        }
        self.accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
    }

    fn dispatch_conn(&mut self, fd: OwnedFd, remote: Addr, listener: usize, unix: bool) {
        let target = self.balancer.pick(&self.shared.loops);
        let remote_loop = &self.shared.loops[target];
        remote_loop.conns.fetch_add(1, Ordering::AcqRel);
        if target == self.index {
            self.install(fd, remote, listener, unix);
        } else if !remote_loop.send(Msg::Accepted {
            fd,
            remote,
            listener,
            unix,
        }) {
            remote_loop.conns.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn install(&mut self, fd: OwnedFd, remote: Addr, listener: usize, unix: bool) {
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0x7fff_ffff;
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        let key = ConnKey {
            index: index as u32,
            gen,
        };
        let initial = if P::EDGE_TRIGGERED {
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        if let Err(e) = self.poller.register(fd.as_raw_fd(), key.token(), initial) {
            tracing::warn!(error = %e, "evio: registering a connection failed; closing it");
            self.me.conns.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let c = entry.insert(ConnState {
            fd,
            gen,
            listener: listener as u32,
            flags: if unix { UNIX } else { 0 },
            interest: initial,
            remote,
            out: Output::default(),
            ctx: Default::default(),
        });
        let (opts, action) = self
            .handler
            .on_opened(&mut view!(c, index, self.shared, &self.me));
        if !unix {
            if opts.tcp_no_delay {
                let _ = net::set_nodelay(&c.fd, true);
            }
            if let Some(idle) = opts.tcp_keep_alive {
                if let Err(e) = net::set_keepalive(&c.fd, Some(idle)) {
                    tracing::debug!(error = %e, "evio: SO_KEEPALIVE failed");
                }
            }
        }
        self.after(index, action);
    }

    // ----- UDP ------------------------------------------------------------

    fn read_datagrams(&mut self, i: usize) {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let l = &self.listeners[i];
            let (n, from) = match net::recv_from(l.fd.as_fd(), &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors surface here; the socket keeps working.
                    tracing::debug!(error = %e, "evio: udp receive error");
                    continue;
                }
            };
            let remote = Addr::Inet(from);
            let mut ctx = H::Context::default();
            self.udp_out.buf.clear();
            self.udp_out.pos = 0;
            let action = self.handler.on_data(
                &mut Conn {
                    out: &mut self.udp_out,
                    ctx: &mut ctx,
                    remote: &remote,
                    fd: Some(l.fd.as_fd()),
                    listener_addr: &self.shared.addrs[i],
                    addr_index: i,
                    key: ConnKey::NONE,
                    remote_loop: &self.me,
                    is_udp: true,
                },
                &self.buf[..n],
            );
            if !self.udp_out.buf.is_empty() {
                self.handler.on_pre_write();
                if let Err(e) = net::send_to(l.fd.as_fd(), &self.udp_out.buf, &from) {
                    tracing::debug!(error = %e, to = %from, "evio: udp send failed");
                }
            }
            if action == Action::Shutdown {
                self.shared.begin_shutdown();
            }
        }
        self.accept_retry = Some(Instant::now());
    }

    // ----- reading --------------------------------------------------------

    /// Reads until the socket is drained (a short read), the fairness cap, or
    /// the connection stops reading. `to_eof`: the peer closed its side, so
    /// read on past short reads to reach EOF now.
    fn read(&mut self, index: usize, to_eof: bool) {
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(c) = self.conns.get_mut(index) else {
                return;
            };
            if c.flags & (CLOSING | DETACHING | READ_PAUSED) != 0 {
                return;
            }
            match net::read(c.fd.as_fd(), &mut self.buf) {
                Ok(0) => {
                    // EOF: answer what was already accepted, then close.
                    self.after(index, Action::Close);
                    return;
                }
                Ok(n) => {
                    let action = self
                        .handler
                        .on_data(&mut view!(c, index, self.shared, &self.me), &self.buf[..n]);
                    self.after(index, action);
                    if n < self.buf.len() && !to_eof {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(index, Some(e));
                    return;
                }
            }
        }
        if P::EDGE_TRIGGERED {
            if let Some(c) = self.conns.get(index) {
                self.again.push(ConnKey {
                    index: index as u32,
                    gen: c.gen,
                });
            }
        }
    }

    fn read_again(&mut self) {
        if self.again.is_empty() {
            return;
        }
        std::mem::swap(&mut self.again, &mut self.again_now);
        let mut list = std::mem::take(&mut self.again_now);
        for key in list.drain(..) {
            if self.is_live(key) {
                self.read(key.index as usize, false);
            }
        }
        self.again_now = list;
    }

    /// Applies a callback's action and schedules the write of its output.
    fn after(&mut self, index: usize, action: Action) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        match action {
            Action::None => {}
            Action::Close => c.flags |= CLOSING,
            Action::Detach => c.flags |= DETACHING,
            Action::Shutdown => self.shared.begin_shutdown(),
        }
        let pending = c.out.pending();
        if pending > self.shared.config.high_water {
            c.flags |= READ_PAUSED;
        }
        if (pending > 0 || c.flags & (CLOSING | DETACHING) != 0) && c.flags & DIRTY == 0 {
            c.flags |= DIRTY;
            self.dirty.push(index);
        }
    }

    // ----- writing --------------------------------------------------------

    fn flush_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        self.handler.on_pre_write();
        let mut list = std::mem::take(&mut self.dirty);
        for &index in &list {
            match self.conns.get_mut(index) {
                Some(c) if c.flags & DIRTY != 0 => c.flags &= !DIRTY,
                _ => continue,
            }
            self.flush(index);
        }
        list.clear();
        // Keep the allocation unless callbacks during the flush queued more.
        if self.dirty.is_empty() {
            self.dirty = list;
        }
    }

    /// Writes queued output until done or the socket is full, then finishes
    /// a pending close/detach and applies backpressure.
    fn flush(&mut self, index: usize) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        while c.out.pos < c.out.buf.len() {
            match net::write(c.fd.as_fd(), &c.out.buf[c.out.pos..]) {
                Ok(n) => c.out.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(index, Some(e));
                    return;
                }
            }
        }
        let pending = c.out.pending();
        if pending == 0 {
            c.out.pos = 0;
            if c.out.buf.capacity() > KEEP_OUTPUT_CAPACITY {
                c.out.buf = Vec::new();
            } else {
                c.out.buf.clear();
            }
            if c.flags & CLOSING != 0 {
                self.close(index, None);
                return;
            }
            if c.flags & DETACHING != 0 {
                self.detach(index);
                return;
            }
        } else if c.out.pos >= pending {
            // Reclaim the written prefix once it outweighs what is left.
            c.out.buf.drain(..c.out.pos);
            c.out.pos = 0;
        }
        let config = &self.shared.config;
        if c.flags & READ_PAUSED != 0 && pending <= config.low_water {
            c.flags &= !READ_PAUSED;
            if P::EDGE_TRIGGERED {
                self.again.push(ConnKey {
                    index: index as u32,
                    gen: c.gen,
                });
            }
        } else if pending > config.high_water {
            c.flags |= READ_PAUSED;
        }
        if !P::EDGE_TRIGGERED {
            let want = interest(
                c.flags & (READ_PAUSED | CLOSING | DETACHING) == 0,
                pending > 0,
            );
            if want != c.interest {
                let key = ConnKey {
                    index: index as u32,
                    gen: c.gen,
                };
                match self.poller.reregister(c.fd.as_raw_fd(), key.token(), want) {
                    Ok(()) => c.interest = want,
                    Err(e) => self.close(index, Some(e)),
                }
            }
        }
    }

    // ----- closing --------------------------------------------------------

    fn close(&mut self, index: usize, err: Option<io::Error>) {
        let Some(c) = self.conns.try_remove(index) else {
            return;
        };
        let _ = self.poller.deregister(c.fd.as_raw_fd());
        self.me.conns.fetch_sub(1, Ordering::AcqRel);
        let ConnState {
            fd,
            gen,
            listener,
            remote,
            mut out,
            mut ctx,
            ..
        } = c;
        drop(fd);
        match &err {
            Some(e) => tracing::debug!(remote = %remote, error = %e, "evio: closed with error"),
            None => tracing::debug!(remote = %remote, "evio: closed"),
        }
        let action = self.handler.on_closed(
            &mut Conn {
                out: &mut out,
                ctx: &mut ctx,
                remote: &remote,
                fd: None,
                listener_addr: &self.shared.addrs[listener as usize],
                addr_index: listener as usize,
                key: ConnKey {
                    index: index as u32,
                    gen,
                },
                remote_loop: &self.me,
                is_udp: false,
            },
            err,
        );
        if action == Action::Shutdown {
            self.shared.begin_shutdown();
        }
    }

    fn detach(&mut self, index: usize) {
        let Some(c) = self.conns.try_remove(index) else {
            return;
        };
        let _ = self.poller.deregister(c.fd.as_raw_fd());
        self.me.conns.fetch_sub(1, Ordering::AcqRel);
        let ConnState {
            fd,
            gen,
            listener,
            flags,
            remote,
            mut out,
            mut ctx,
            ..
        } = c;
        let mut conn = Conn {
            out: &mut out,
            ctx: &mut ctx,
            remote: &remote,
            fd: None,
            listener_addr: &self.shared.addrs[listener as usize],
            addr_index: listener as usize,
            key: ConnKey {
                index: index as u32,
                gen,
            },
            remote_loop: &self.me,
            is_udp: false,
        };
        let action = match DetachedStream::new(fd, flags & UNIX != 0) {
            Ok(stream) => self.handler.on_detached(&mut conn, stream),
            Err(e) => self.handler.on_closed(&mut conn, Some(e)),
        };
        if action == Action::Shutdown {
            self.shared.begin_shutdown();
        }
    }

    /// Shutdown: one last non-blocking attempt to deliver pending output,
    /// then every connection is closed with `on_closed(None)`.
    fn close_all(&mut self) {
        let indexes: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for index in indexes {
            if let Some(c) = self.conns.get_mut(index) {
                if c.out.pending() > 0 {
                    let _ = net::write(c.fd.as_fd(), &c.out.buf[c.out.pos..]);
                }
            }
            self.close(index, None);
        }
        // Connections handed to this loop but never installed.
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Accepted { .. } = msg {
                self.me.conns.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    // ----- the wake channel ---------------------------------------------

    fn drain_channel(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Wake(key) => {
                    if !self.is_live(key) {
                        continue;
                    }
                    let index = key.index as usize;
                    let c = &mut self.conns[index];
                    // A closing connection takes no more events; its
                    // pending output and close stand.
                    if c.flags & (CLOSING | DETACHING) != 0 {
                        continue;
                    }
                    let action = self
                        .handler
                        .on_wake(&mut view!(c, index, self.shared, &self.me));
                    self.after(index, action);
                }
                Msg::Accepted {
                    fd,
                    remote,
                    listener,
                    unix,
                } => self.install(fd, remote, listener, unix),
            }
        }
    }
}
