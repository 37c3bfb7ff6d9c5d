//! One event loop: a poller, the connections it owns (in a slab), the
//! user's handler, and the channel other threads use to reach it.
//!
//! One iteration: run due timers (tick, idle and connect timeouts, accept
//! retry) → wait for events → read ready connections and call `on_data` →
//! write each connection's reply right after its `on_data` → drain the wake
//! channel → revisit connections that still had input → write whatever else
//! was queued (writes to other connections, from other threads).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use evio_sys::net;
use evio_sys::{Event, Events, Interest, Poller, Waker};
use slab::Slab;

use crate::addr::Bound;
use crate::conn::{Conn, DetachedStream, Output, PendingReceipt};
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
/// Wake-channel messages handled per iteration before I/O gets a turn.
const MAX_MESSAGES_PER_ITERATION: usize = 4096;
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Size of the loop's shared read buffer (and the largest UDP datagram).
const READ_BUFFER: usize = 64 * 1024;
/// `listener` value of dialed connections.
const DIALED: u32 = u32::MAX;

/// Connection flag bits.
pub(crate) mod flags {
    /// Close once output is written; no more reads.
    pub const CLOSING: u16 = 1;
    /// Detach once output is written; no more reads.
    pub const DETACHING: u16 = 2;
    /// Own output above the high-water mark: not reading.
    pub const READ_PAUSED: u16 = 4;
    /// Queued in the loop's dirty list.
    pub const DIRTY: u16 = 8;
    /// A unix stream socket.
    pub const UNIX: u16 = 16;
    /// The slot of a UDP socket (one per UDP listener).
    pub const UDP: u16 = 32;
    /// A dialed connection whose connect has not completed.
    pub const CONNECTING: u16 = 64;
    /// A peer's output (written via `write_to`) is above the high-water mark.
    pub const PEER_PAUSED: u16 = 128;
    /// The poller reported the peer's FIN: reads go on to EOF past short
    /// reads, even when resumed later (edge-triggered pollers report it once).
    pub const PEER_EOF: u16 = 512;
    /// Level-triggered pollers: out of the poller while it waits for
    /// nothing (reading paused, no output), so poll(2) does not report its
    /// unread input on every wait.
    pub const PARKED: u16 = 1024;
    /// Our output holds bytes other connections queued (`write_to`); its
    /// backpressure pauses those writers, not our own reading (in a proxy,
    /// pausing both halves on their own output deadlocks against a peer
    /// that stops reading while its writes are blocked). Cleared when the
    /// output drains.
    pub const PEER_FED: u16 = 2048;
    /// Any reason not to read now.
    pub const NO_READ: u16 = CLOSING | DETACHING | READ_PAUSED | PEER_PAUSED | CONNECTING;
}

/// Identifies one connection for its whole life, even after its slab slot
/// is reused: the slot index plus a per-loop generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnKey {
    index: u32,
    gen: u32,
}

impl ConnKey {
    pub(crate) fn new(index: usize, gen: u32) -> ConnKey {
        ConnKey {
            index: index as u32,
            gen,
        }
    }

    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    pub(crate) fn gen(self) -> u32 {
        self.gen
    }

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
    /// Append to the connection's output; complete the receipt when written.
    Write {
        key: ConnKey,
        data: Vec<u8>,
        receipt: PendingReceipt,
    },
    /// Close the connection after its output is written.
    Close(ConnKey),
    /// Dial an outbound connection into this loop.
    Dial(Addr),
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
    /// Set by a graceful shutdown: loops flush output until then.
    pub(crate) drain_deadline: Mutex<Option<Instant>>,
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

/// One connection's state, in the loop's slab.
pub(crate) struct ConnState<C> {
    /// `None` for UDP slots and once closed.
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) gen: u32,
    /// Index of the accepting address, or `DIALED`.
    pub(crate) listener: u32,
    pub(crate) flags: u16,
    /// Registered interest (level-triggered pollers only).
    pub(crate) interest: Interest,
    /// Idle timeout in ms (0: none).
    pub(crate) idle_ms: u32,
    /// Loop clock (ms) of the last byte read or written.
    pub(crate) last_active: u64,
    /// When this connection's one live idle timer is due (0: none); timer
    /// entries due at another time are stale and lapse.
    pub(crate) idle_due: u64,
    pub(crate) remote: Addr,
    pub(crate) out: Output,
    /// Connections that stopped reading because our output is high
    /// (`write_to`); all are resumed when it drains or we close.
    pub(crate) waiters: smallvec::SmallVec<[ConnKey; 1]>,
    /// Cross-thread writes waiting to be written: (end offset, receipt).
    pub(crate) receipts: Vec<(u64, PendingReceipt)>,
    /// Bytes written to the socket so far (for receipts).
    pub(crate) written: u64,
    pub(crate) ctx: C,
}

impl<C> ConnState<C> {
    fn key(&self, index: usize) -> ConnKey {
        ConnKey::new(index, self.gen)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Idle,
    Connect,
}

/// Loop state that callbacks reach through [`Conn`].
pub(crate) struct LoopLocal {
    dirty: Vec<usize>,
    /// Drained output buffers, lent to the next connection that writes: in
    /// the steady state one cache-hot buffer cycles through every
    /// connection (read → on_data → write → drained → back here), and an
    /// idle connection holds no output memory at all.
    pub(crate) spare_out: Vec<Vec<u8>>,
    /// Dialed connections to register with the poller after the callback.
    to_register: Vec<usize>,
    /// Lazy timers: (deadline ms, kind, conn). An idle timer is checked when
    /// due and re-armed from the connection's last activity, so activity
    /// itself costs one store, never a heap operation.
    timers: BinaryHeap<Reverse<(u64, TimerKind, ConnKey)>>,
    epoch: Instant,
    /// Loop clock in ms since `epoch`, refreshed once per iteration while
    /// any timer is in use.
    now_ms: u64,
    next_gen: u32,
    idle_default_ms: u32,
    dial_timeout_ms: u32,
}

fn duration_ms(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| d.as_millis().clamp(1, u32::MAX as u128) as u32)
}

impl LoopLocal {
    pub(crate) fn mark_dirty<C>(&mut self, index: usize, c: &mut ConnState<C>) {
        if c.flags & flags::DIRTY == 0 {
            c.flags |= flags::DIRTY;
            self.dirty.push(index);
        }
    }

    fn next_gen(&mut self) -> u32 {
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0x7fff_ffff;
        gen
    }

    fn refresh_clock(&mut self) {
        self.now_ms = self.epoch.elapsed().as_millis() as u64;
    }

    fn new_state<C>(
        &mut self,
        fd: Option<OwnedFd>,
        listener: u32,
        flags: u16,
        remote: Addr,
        ctx: C,
    ) -> ConnState<C> {
        ConnState {
            fd,
            gen: self.next_gen(),
            listener,
            flags,
            interest: Interest::READABLE,
            idle_ms: 0,
            last_active: self.now_ms,
            idle_due: 0,
            remote,
            out: Output::default(),
            waiters: smallvec::SmallVec::new(),
            receipts: Vec::new(),
            written: 0,
            ctx,
        }
    }

    pub(crate) fn insert_dialed<C>(
        &mut self,
        conns: &mut Slab<ConnState<C>>,
        fd: OwnedFd,
        remote: Addr,
        unix: bool,
        ctx: C,
    ) -> usize {
        let f = flags::CONNECTING | if unix { flags::UNIX } else { 0 };
        let state = self.new_state(Some(fd), DIALED, f, remote, ctx);
        let index = conns.insert(state);
        self.to_register.push(index);
        if self.dial_timeout_ms > 0 {
            self.refresh_clock();
            let key = conns[index].key(index);
            self.timers.push(Reverse((
                self.now_ms + u64::from(self.dial_timeout_ms),
                TimerKind::Connect,
                key,
            )));
        }
        index
    }

    pub(crate) fn set_idle_timeout<C>(
        &mut self,
        index: usize,
        c: &mut ConnState<C>,
        timeout: Option<Duration>,
    ) {
        c.idle_ms = duration_ms(timeout);
        if c.idle_ms == 0 {
            return;
        }
        self.refresh_clock();
        c.last_active = self.now_ms;
        let due = self.now_ms + u64::from(c.idle_ms);
        // A shorter timeout than the scheduled one (e.g. `Options` under a
        // longer server default) needs an earlier timer; the later one lapses.
        if c.idle_due == 0 || due < c.idle_due {
            c.idle_due = due;
            self.timers
                .push(Reverse((due, TimerKind::Idle, c.key(index))));
        }
    }
}

/// Interest from two booleans (never empty: read interest is the fallback).
fn interest(read: bool, write: bool) -> Interest {
    match (read, write) {
        (_, false) => Interest::READABLE,
        (true, true) => Interest::BOTH,
        (false, true) => Interest::WRITABLE,
    }
}

/// Builds the handler's view of connection `$index`.
macro_rules! view {
    ($self:ident, $index:expr) => {
        Conn {
            conns: &mut $self.conns,
            index: $index,
            local: &mut $self.local,
            shared: &$self.shared,
            me: &$self.me,
        }
    };
}

pub(crate) struct EventLoop<P: Poller, H: EventHandler> {
    index: usize,
    poller: P,
    handler: H,
    conns: Slab<ConnState<H::Context>>,
    local: LoopLocal,
    rx: Receiver<Msg>,
    me: Arc<LoopRemote>,
    shared: Arc<Shared>,
    /// Listeners and UDP sockets (loop 0 only).
    listeners: Vec<Bound>,
    /// For each UDP listener, its slot in `conns`.
    udp_slots: Vec<Option<usize>>,
    balancer: Balancer,
    buf: Box<[u8]>,
    /// Connections to read again next iteration (fairness cap reached, or
    /// reading resumed after backpressure).
    again: Vec<ConnKey>,
    again_now: Vec<ConnKey>,
    next_tick: Option<Instant>,
    /// When to retry accepting (after EMFILE) or resume a busy listener.
    accept_retry: Option<Instant>,
    /// Listeners taken out of the poller while accepting is backed off.
    accept_paused: bool,
    /// Shedding connections over `max_connections` (warned once per episode).
    shedding: bool,
}

impl<P: Poller, H: EventHandler> EventLoop<P, H> {
    pub(crate) fn new(
        index: usize,
        poller: P,
        handler: H,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        listeners: Vec<Bound>,
    ) -> Self {
        let config = &shared.config;
        EventLoop {
            index,
            poller,
            handler,
            conns: Slab::new(),
            local: LoopLocal {
                dirty: Vec::new(),
                spare_out: Vec::new(),
                to_register: Vec::new(),
                timers: BinaryHeap::new(),
                epoch: Instant::now(),
                now_ms: 0,
                next_gen: 0,
                idle_default_ms: duration_ms(config.idle_timeout),
                dial_timeout_ms: duration_ms(config.dial_timeout),
            },
            rx,
            me: shared.loops[index].clone(),
            balancer: Balancer::new(config.load_balance, index),
            udp_slots: Vec::new(),
            shared,
            listeners,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            again: Vec::new(),
            again_now: Vec::new(),
            next_tick: None,
            accept_retry: None,
            accept_paused: false,
            shedding: false,
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
        for (i, l) in self.listeners.iter().enumerate() {
            let slot = l.network.is_udp().then(|| {
                let state = self.local.new_state(
                    None,
                    i as u32,
                    flags::UDP,
                    Addr::Unix(None),
                    Default::default(),
                );
                self.conns.insert(state)
            });
            self.udp_slots.push(slot);
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
            self.iteration(events, None)?;
        }
        let deadline = *self
            .shared
            .drain_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(deadline) = deadline {
            self.drain(events, deadline)?;
        }
        Ok(())
    }

    fn iteration(&mut self, events: &mut Events, deadline: Option<Instant>) -> io::Result<()> {
        self.run_timers();
        let mut timeout = self.timeout();
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        self.poller.wait(events, timeout)?;
        if !self.local.timers.is_empty() || self.local.idle_default_ms > 0 {
            self.local.refresh_clock();
        }
        for ev in events.iter() {
            self.dispatch(*ev);
        }
        if events.is_woken() {
            self.drain_channel();
        }
        self.read_again();
        self.flush_dirty();
        Ok(())
    }

    /// Graceful shutdown: stop accepting, stop reading, keep writing until
    /// every connection has flushed and closed or the deadline passes.
    fn drain(&mut self, events: &mut Events, deadline: Instant) -> io::Result<()> {
        for l in self.listeners.drain(..) {
            let _ = self.poller.deregister(l.fd.as_raw_fd());
        }
        for slot in self.udp_slots.drain(..).flatten() {
            self.conns.remove(slot);
        }
        self.next_tick = None;
        self.accept_retry = None;
        let indexes: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for index in indexes {
            let c = &mut self.conns[index];
            c.flags |= flags::CLOSING;
            self.local.mark_dirty(index, c);
        }
        self.flush_dirty();
        while !self.conns.is_empty() && Instant::now() < deadline {
            self.iteration(events, Some(deadline))?;
        }
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self
            .local
            .timers
            .peek()
            .map(|Reverse((ms, _, _))| self.local.epoch + Duration::from_millis(*ms));
        let deadline = [self.next_tick, self.accept_retry, timer]
            .into_iter()
            .flatten()
            .min()?;
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
        if !self.local.timers.is_empty() {
            self.local.refresh_clock();
            self.run_conn_timers();
        }
    }

    fn run_conn_timers(&mut self) {
        let now = self.local.now_ms;
        while let Some(&Reverse((due, kind, key))) = self.local.timers.peek() {
            if due > now {
                break;
            }
            self.local.timers.pop();
            let Some(c) = self.conns.get_mut(key.index()) else {
                continue;
            };
            if c.gen != key.gen() {
                continue;
            }
            match kind {
                TimerKind::Connect => {
                    if c.flags & flags::CONNECTING != 0 {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        self.close(key.index(), Some(e));
                    }
                }
                TimerKind::Idle => {
                    if due != c.idle_due {
                        continue; // superseded by an earlier timer
                    }
                    if c.idle_ms == 0 {
                        c.idle_due = 0;
                        continue;
                    }
                    let expires = c.last_active + u64::from(c.idle_ms);
                    if expires <= now {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "idle timeout");
                        self.close(key.index(), Some(e));
                    } else {
                        c.idle_due = expires;
                        self.local
                            .timers
                            .push(Reverse((expires, TimerKind::Idle, key)));
                    }
                }
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
        let Some(c) = self.conns.get_mut(key.index()) else {
            return;
        };
        if c.gen != key.gen {
            return;
        }
        let broken = ev.is_error() || ev.is_hangup();
        if c.flags & flags::CONNECTING != 0 {
            if ev.is_writable() || broken {
                self.finish_connect(key.index());
            }
            return;
        }
        if ev.is_read_closed() {
            c.flags |= flags::PEER_EOF;
        }
        if ev.is_writable() || broken {
            self.flush(key.index());
        }
        if (ev.is_readable() || broken) && self.is_live(key) {
            self.read(key.index(), ev.is_read_closed() || broken);
        }
    }

    fn is_live(&self, key: ConnKey) -> bool {
        self.conns
            .get(key.index())
            .is_some_and(|c| c.gen == key.gen)
    }

    // ----- accepting and dialing ---------------------------------------------

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
        self.accept_retry = Some(Instant::now());
    }

    /// Whether `Builder::max_connections` connections are open.
    fn over_capacity(&mut self) -> bool {
        let Some(max) = self.shared.config.max_connections else {
            return false;
        };
        let open: usize = self
            .shared
            .loops
            .iter()
            .map(|l| l.conns.load(Ordering::Acquire))
            .sum();
        let over = open >= max;
        if over && !self.shedding {
            tracing::warn!(
                max,
                "evio: max_connections reached; closing new connections"
            );
        }
        self.shedding = over;
        over
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
        let f = if unix { flags::UNIX } else { 0 };
        let state = self
            .local
            .new_state(Some(fd), listener as u32, f, remote, Default::default());
        let index = self.conns.insert(state);
        if self.register(index).is_ok() {
            self.open(index);
        }
    }

    /// Adds a new connection to the poller; on failure it is dropped quietly
    /// (it was never opened).
    fn register(&mut self, index: usize) -> io::Result<()> {
        let c = &mut self.conns[index];
        let want = if P::EDGE_TRIGGERED {
            Interest::BOTH
        } else if c.flags & flags::CONNECTING != 0 {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = c.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        match self.poller.register(fd, c.key(index).token(), want) {
            Ok(()) => {
                c.interest = want;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "evio: registering a connection failed; closing it");
                self.conns.remove(index);
                self.me.conns.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Fires `on_opened`, applies its options and action.
    fn open(&mut self, index: usize) {
        if self.local.idle_default_ms > 0 {
            let c = &mut self.conns[index];
            let idle = Some(Duration::from_millis(u64::from(self.local.idle_default_ms)));
            self.local.set_idle_timeout(index, c, idle);
        }
        let (opts, action) = self.handler.on_opened(&mut view!(self, index));
        let c = &mut self.conns[index];
        if let (Some(fd), false) = (&c.fd, c.flags & flags::UNIX != 0) {
            if opts.tcp_no_delay {
                let _ = net::set_nodelay(fd, true);
            }
            if let Some(idle) = opts.tcp_keep_alive {
                if let Err(e) = net::set_keepalive(fd, Some(idle)) {
                    tracing::debug!(error = %e, "evio: SO_KEEPALIVE failed");
                }
            }
        }
        if let Some(idle) = opts.idle_timeout {
            self.local.set_idle_timeout(index, c, Some(idle));
        }
        self.after(index, action);
    }

    fn finish_connect(&mut self, index: usize) {
        let c = &mut self.conns[index];
        let err = match c.fd.as_ref().map(net::take_error) {
            Some(Ok(None)) => None,
            Some(Ok(Some(e))) | Some(Err(e)) => Some(e),
            None => Some(io::ErrorKind::NotConnected.into()),
        };
        if let Some(e) = err {
            self.close(index, Some(e));
            return;
        }
        c.flags &= !flags::CONNECTING;
        // Output queued or a close asked for while connecting was skipped
        // by `flush`, and the connect used up the writable edge: do it now.
        if c.out.pending() > 0 || c.flags & flags::CLOSING != 0 {
            self.local.mark_dirty(index, c);
        }
        tracing::debug!(remote = %c.remote, "evio: dialed");
        self.open(index);
        if self
            .conns
            .get(index)
            .is_some_and(|c| c.flags & flags::NO_READ == 0)
        {
            self.read(index, false);
        }
    }

    fn dial(&mut self, addr: Addr) {
        let fd = match &addr {
            Addr::Inet(a) => net::tcp_connect(*a),
            Addr::Unix(Some(p)) => net::unix_connect(p),
            Addr::Unix(None) => Err(io::ErrorKind::InvalidInput.into()),
        };
        match fd {
            Ok(fd) => {
                let unix = matches!(addr, Addr::Unix(_));
                self.me.conns.fetch_add(1, Ordering::AcqRel);
                self.local
                    .insert_dialed(&mut self.conns, fd, addr, unix, Default::default());
                self.register_dialed();
            }
            Err(e) => {
                // Reported like a connect that fails later: `on_closed`
                // with the error, no `on_opened`.
                tracing::debug!(error = %e, addr = %addr, "evio: dial failed");
                let state =
                    self.local
                        .new_state(None, DIALED, flags::CONNECTING, addr, Default::default());
                let index = self.conns.insert(state);
                self.me.conns.fetch_add(1, Ordering::AcqRel);
                self.close(index, Some(e));
            }
        }
    }

    fn register_dialed(&mut self) {
        while let Some(index) = self.local.to_register.pop() {
            if self.conns.contains(index) {
                let _ = self.register(index);
            }
        }
    }

    // ----- UDP ------------------------------------------------------------

    fn read_datagrams(&mut self, i: usize) {
        let Some(slot) = self.udp_slots[i] else {
            return;
        };
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let fd = self.listeners[i].fd.as_fd();
            let (n, from) = match net::recv_from(fd, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors surface here; the socket keeps working.
                    tracing::debug!(error = %e, "evio: udp receive error");
                    continue;
                }
            };
            let c = &mut self.conns[slot];
            c.remote = Addr::Inet(from);
            c.ctx = Default::default();
            c.out.buf.clear();
            c.out.pos = 0;
            let action = self.handler.on_data(&mut view!(self, slot), &self.buf[..n]);
            let c = &mut self.conns[slot];
            c.flags &= !flags::DIRTY;
            if !c.out.buf.is_empty() {
                self.handler.on_pre_write();
                let c = &self.conns[slot];
                if let Err(e) = net::send_to(self.listeners[i].fd.as_fd(), &c.out.buf, &from) {
                    tracing::debug!(error = %e, to = %from, "evio: udp send failed");
                }
            }
            if action == Action::Shutdown {
                self.shared.begin_shutdown();
            }
            self.register_dialed();
        }
        self.accept_retry = Some(Instant::now());
    }

    // ----- reading --------------------------------------------------------

    /// Reads until the socket is drained (a short read), the fairness cap, or
    /// the connection stops reading. `to_eof`: the peer closed its side, so
    /// read on past short reads to reach EOF now.
    fn read(&mut self, index: usize, to_eof: bool) {
        // A FIN reported while reading was paused or cut short by the
        // fairness cap is not reported again: remember it, or a half-closed
        // peer would wait for our close forever.
        let to_eof = to_eof
            || self
                .conns
                .get(index)
                .is_some_and(|c| c.flags & flags::PEER_EOF != 0);
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(c) = self.conns.get_mut(index) else {
                return;
            };
            if c.flags & flags::NO_READ != 0 {
                return;
            }
            let Some(fd) = &c.fd else { return };
            match net::read(fd.as_fd(), &mut self.buf) {
                Ok(0) => {
                    // EOF: answer what was already accepted, then close.
                    self.after(index, Action::Close);
                    return;
                }
                Ok(n) => {
                    if c.idle_ms != 0 {
                        c.last_active = self.local.now_ms;
                    }
                    let action = self
                        .handler
                        .on_data(&mut view!(self, index), &self.buf[..n]);
                    self.after(index, action);
                    // Write the reply now, while the connection (and its
                    // kernel socket) is hot in cache, not after the batch.
                    if let Some(c) = self.conns.get_mut(index) {
                        if c.flags & flags::DIRTY != 0 {
                            c.flags &= !flags::DIRTY;
                            self.handler.on_pre_write();
                            self.flush(index);
                        }
                    }
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
                self.again.push(c.key(index));
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
                self.read(key.index(), false);
            }
        }
        self.again_now = list;
    }

    /// Applies a callback's action: close/detach marks, backpressure, and
    /// registration of connections the callback dialed.
    fn after(&mut self, index: usize, action: Action) {
        if !self.local.to_register.is_empty() {
            self.register_dialed();
        }
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        match action {
            Action::None => {}
            Action::Close => {
                c.flags |= flags::CLOSING;
                self.local.mark_dirty(index, c);
            }
            Action::Detach => {
                c.flags |= flags::DETACHING;
                self.local.mark_dirty(index, c);
            }
            Action::Shutdown => self.shared.begin_shutdown(),
        }
        if c.out.pending() > self.shared.config.high_water && c.flags & flags::PEER_FED == 0 {
            c.flags |= flags::READ_PAUSED;
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(index);
        }
    }

    /// Level-triggered pollers only: keeps the registered interest in step
    /// with what the connection wants, so poll(2) never reports a readiness
    /// nobody will act on.
    fn update_interest(&mut self, index: usize) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        let Some(fd) = &c.fd else { return };
        let fd = fd.as_raw_fd();
        let read = c.flags & flags::NO_READ == 0;
        let write = c.out.pending() > 0 || c.flags & flags::CONNECTING != 0;
        if !read && !write {
            // Waiting for nothing (a `write_to` sender paused on its peer's
            // queue): leave the poller, or the loop would spin on the input
            // it is not reading. Resuming comes back here.
            if c.flags & flags::PARKED == 0 {
                let _ = self.poller.deregister(fd);
                c.flags |= flags::PARKED;
            }
            return;
        }
        let want = interest(read, write);
        let token = c.key(index).token();
        let result = if c.flags & flags::PARKED != 0 {
            c.flags &= !flags::PARKED;
            self.poller.register(fd, token, want)
        } else if want != c.interest {
            self.poller.reregister(fd, token, want)
        } else {
            return;
        };
        match result {
            Ok(()) => c.interest = want,
            Err(e) => self.close(index, Some(e)),
        }
    }

    // ----- writing --------------------------------------------------------

    fn flush_dirty(&mut self) {
        if self.local.dirty.is_empty() {
            return;
        }
        // on_drained may queue more output; keep going until none is left.
        let mut list = Vec::new();
        while !self.local.dirty.is_empty() {
            std::mem::swap(&mut list, &mut self.local.dirty);
            for &index in &list {
                // Entries already written right after their on_data have
                // their DIRTY mark cleared.
                match self.conns.get_mut(index) {
                    Some(c) if c.flags & flags::DIRTY != 0 => c.flags &= !flags::DIRTY,
                    _ => continue,
                }
                self.handler.on_pre_write();
                self.flush(index);
            }
            list.clear();
        }
        // Keep the allocation for the next iteration.
        self.local.dirty = list;
    }

    /// Writes queued output until done or the socket is full, then finishes
    /// a pending close/detach and applies backpressure.
    fn flush(&mut self, index: usize) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        if c.flags & (flags::CONNECTING | flags::UDP) != 0 {
            return;
        }
        let Some(fd) = &c.fd else { return };
        let before = c.out.pos;
        while c.out.pos < c.out.buf.len() {
            match net::write(fd.as_fd(), &c.out.buf[c.out.pos..]) {
                Ok(n) => c.out.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(index, Some(e));
                    return;
                }
            }
        }
        let wrote = c.out.pos - before;
        if wrote > 0 {
            if c.idle_ms != 0 {
                c.last_active = self.local.now_ms;
            }
            c.written += wrote as u64;
            if !c.receipts.is_empty() {
                let written = c.written;
                let done = c
                    .receipts
                    .iter()
                    .take_while(|(end, _)| *end <= written)
                    .count();
                for (_, r) in c.receipts.drain(..done) {
                    r.complete(Ok(()));
                }
            }
        }
        let pending = c.out.pending();
        if pending == 0 {
            c.flags &= !flags::PEER_FED;
            c.out.recycle(&mut self.local.spare_out);
            if c.flags & flags::CLOSING != 0 {
                self.close(index, None);
                return;
            }
            if c.flags & flags::DETACHING != 0 {
                self.detach(index);
                return;
            }
        } else if c.out.pos >= pending {
            // Reclaim the written prefix once it outweighs what is left.
            c.out.buf.drain(..c.out.pos);
            c.out.pos = 0;
        }
        let config = &self.shared.config;
        if pending <= config.low_water {
            if c.flags & flags::READ_PAUSED != 0 {
                c.flags &= !flags::READ_PAUSED;
                self.again.push(c.key(index));
            }
            for w in std::mem::take(&mut c.waiters) {
                self.resume_waiter(w);
            }
        } else if pending > config.high_water && c.flags & flags::PEER_FED == 0 {
            c.flags |= flags::READ_PAUSED;
        }
        if wrote > 0 && pending == 0 {
            let action = self.handler.on_drained(&mut view!(self, index));
            if action != Action::None || !P::EDGE_TRIGGERED || !self.local.to_register.is_empty() {
                self.after(index, action);
            }
        } else if !P::EDGE_TRIGGERED {
            self.update_interest(index);
        }
    }

    /// A connection paused on our output may read again.
    fn resume_waiter(&mut self, w: ConnKey) {
        if let Some(wc) = self.conns.get_mut(w.index()) {
            if wc.gen == w.gen && wc.flags & flags::PEER_PAUSED != 0 {
                wc.flags &= !flags::PEER_PAUSED;
                self.again.push(w);
                if !P::EDGE_TRIGGERED {
                    self.update_interest(w.index());
                }
            }
        }
    }

    // ----- closing --------------------------------------------------------

    /// Closes the socket, then fires `on_closed` (if `on_opened` fired) with
    /// the context still readable, then frees the slot.
    fn close(&mut self, index: usize, err: Option<io::Error>) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        if let Some(fd) = c.fd.take() {
            let _ = self.poller.deregister(fd.as_raw_fd());
        }
        self.me.conns.fetch_sub(1, Ordering::AcqRel);
        let kind = err
            .as_ref()
            .map_or(io::ErrorKind::ConnectionAborted, |e| e.kind());
        for (_, r) in c.receipts.drain(..) {
            r.complete(Err(kind));
        }
        c.flags |= flags::CLOSING;
        match &err {
            Some(e) => tracing::debug!(remote = %c.remote, error = %e, "evio: closed with error"),
            None => tracing::debug!(remote = %c.remote, "evio: closed"),
        }
        for w in std::mem::take(&mut c.waiters) {
            self.resume_waiter(w);
        }
        // Also for a dial that never connected: the error is its result.
        let action = self.handler.on_closed(&mut view!(self, index), err);
        self.conns.remove(index);
        if !self.local.to_register.is_empty() {
            self.register_dialed();
        }
        if action == Action::Shutdown {
            self.shared.begin_shutdown();
        }
    }

    fn detach(&mut self, index: usize) {
        let c = &mut self.conns[index];
        let Some(fd) = c.fd.take() else { return };
        let _ = self.poller.deregister(fd.as_raw_fd());
        self.me.conns.fetch_sub(1, Ordering::AcqRel);
        let unix = c.flags & flags::UNIX != 0;
        let action = match DetachedStream::new(fd, unix) {
            Ok(stream) => self.handler.on_detached(&mut view!(self, index), stream),
            Err(e) => self.handler.on_closed(&mut view!(self, index), Some(e)),
        };
        self.conns.remove(index);
        if action == Action::Shutdown {
            self.shared.begin_shutdown();
        }
    }

    /// Shutdown: one last non-blocking attempt to deliver pending output,
    /// then every connection is closed with `on_closed(None)`.
    fn close_all(&mut self) {
        for slot in self.udp_slots.drain(..).flatten() {
            self.conns.try_remove(slot);
        }
        let indexes: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for index in indexes {
            if let Some(c) = self.conns.get_mut(index) {
                if let (Some(fd), true) = (&c.fd, c.out.pending() > 0) {
                    let _ = net::write(fd.as_fd(), &c.out.buf[c.out.pos..]);
                }
            }
            self.close(index, None);
        }
        // Messages that arrived too late: fail their receipts, drop fds.
        // (Bounded, as in `drain_channel`; whatever arrives later is
        // dropped with the channel, and a dropped write fails its receipt.)
        for _ in 0..self.rx.len() {
            let Ok(msg) = self.rx.try_recv() else { break };
            match msg {
                Msg::Accepted { .. } => {
                    self.me.conns.fetch_sub(1, Ordering::AcqRel);
                }
                Msg::Write { receipt, .. } => receipt.complete(Err(io::ErrorKind::NotConnected)),
                _ => {}
            }
        }
    }

    // ----- the wake channel ---------------------------------------------

    fn drain_channel(&mut self) {
        // A bounded batch: threads sending faster than the loop handles
        // must not keep it here (no I/O, no shutdown). Messages sent later
        // wake the poller again; for the rest of a long backlog, re-arm
        // the wake so the next wait does not block.
        let queued = self.rx.len();
        if queued > MAX_MESSAGES_PER_ITERATION {
            self.me.wake();
        }
        for _ in 0..queued.min(MAX_MESSAGES_PER_ITERATION) {
            let Ok(msg) = self.rx.try_recv() else { break };
            match msg {
                Msg::Wake(key) => {
                    // A closing connection takes no more events; its
                    // pending output and close stand.
                    if !self.is_open(key) {
                        continue;
                    }
                    let action = self.handler.on_wake(&mut view!(self, key.index()));
                    self.after(key.index(), action);
                }
                Msg::Write { key, data, receipt } => {
                    if !self.is_open(key) {
                        receipt.complete(Err(io::ErrorKind::NotConnected));
                        continue;
                    }
                    let index = key.index();
                    let c = &mut self.conns[index];
                    c.out.lend(&mut self.local.spare_out);
                    c.out.buf.extend_from_slice(&data);
                    let end = c.written + c.out.pending() as u64;
                    c.receipts.push((end, receipt));
                    self.local.mark_dirty(index, c);
                    self.after(index, Action::None);
                }
                Msg::Close(key) => {
                    if self.is_live(key) {
                        self.after(key.index(), Action::Close);
                    }
                }
                Msg::Dial(addr) => self.dial(addr),
                Msg::Accepted {
                    fd,
                    remote,
                    listener,
                    unix,
                } => {
                    if self.shared.is_shutdown() {
                        self.me.conns.fetch_sub(1, Ordering::AcqRel);
                        continue;
                    }
                    self.install(fd, remote, listener, unix);
                }
            }
        }
    }

    /// Live, and neither closing nor detaching.
    fn is_open(&self, key: ConnKey) -> bool {
        self.conns.get(key.index()).is_some_and(|c| {
            c.gen == key.gen && c.flags & (flags::CLOSING | flags::DETACHING | flags::UDP) == 0
        })
    }
}
