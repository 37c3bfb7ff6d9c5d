//! The connection table: every [`Connection`] of one loop, in a slab, and
//! the state they share — the output pool, the dirty, read-again,
//! to-register and released lists, the timers and the clock. It allocates
//! (accepted, dialed, UDP slots), looks up (`slot(key)`, `conn(slot)`),
//! releases and frees ([`ConnTable::reap`], the one place a slot is freed);
//! what needs that shared state or two connections at once (writing and
//! `Peer` writes, backpressure, flushing, closing, timers) is here too, in
//! `flush.rs` and `lifecycle.rs`.
//!
//! The table never calls the handler: operations that end in a callback
//! (a flush that drained or finished a close, an expired timer) report it,
//! and the event loop makes the call. It does the socket writes and keeps
//! the poller registration of each connection in step with its state, with
//! the poller lent by the loop.

mod connection;
mod flush;
mod lifecycle;
mod output;
mod timers;
#[cfg(feature = "tls")]
mod tls;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use evio_sys::{net, Interest, Poller};
use slab::Slab;
use smallvec::SmallVec;

use crate::config::{duration_ms, Config};
use crate::key::{ConnKey, Generations, Token};
use crate::mailbox::Accepted;

use crate::Addr;
pub(crate) use connection::{Connection, Slot};
use connection::{Flags, Idle, Origin, Phase};
pub(crate) use flush::OutputRef;
pub(crate) use output::Chunk;
use output::{Output, OutputPool};
pub(crate) use timers::TimerKind;
use timers::Timers;

/// The event loop's proof that it is between iterations: no callback runs
/// and no [`Slot`] is held, so slots may be freed ([`ConnTable::reap`]).
/// Only the loop makes one.
pub(crate) struct Quiescent(());

impl Quiescent {
    /// For the event loop's own use, once per iteration end.
    pub(crate) fn between_iterations() -> Quiescent {
        Quiescent(())
    }
}

/// What a flush found, for the loop to act on.
#[derive(Debug)]
pub(crate) enum Flushed {
    /// Nothing for the loop to do (output still pending, or nothing queued).
    Pending,
    /// Everything queued is now written (and something was): `on_drained`.
    Drained,
    /// Output done (or a write failed): close, with the error if any.
    Close(Option<io::Error>),
    /// Output done: hand the socket over.
    Detach,
}

/// Every connection of one loop.
pub(crate) struct ConnTable<C> {
    slab: Slab<Connection<C>>,
    gens: Generations,
    /// Dialed connections to register with the poller after the callback
    /// that dialed them.
    to_register: Vec<Slot>,
    /// Released slots, freed by `reap`.
    released: Vec<Slot>,
    idle_default_ms: u32,
    dial_timeout_ms: u32,
    /// Keep the clock current for activity stamps even without timers
    /// (reclaiming the longest-idle connections needs them).
    track_activity: bool,
    /// The server side of TLS listeners, and how long a handshake may take.
    #[cfg(feature = "tls")]
    tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
    #[cfg(feature = "tls")]
    handshake_ms: u32,
    /// What a connection's own operations share with the others, lent to
    /// them beside the connection (`Connection::write`, `Connection::flush`).
    st: LoopState,
}

/// The loop-wide state a connection's operations use: lent to them with
/// the connection, borrowed apart from the slab.
struct LoopState {
    pool: OutputPool,
    /// Connections with output (or a close) queued since their last flush.
    dirty: Vec<Slot>,
    /// Connections to read again: cut short by the fairness cap, or reading
    /// resumed after backpressure.
    again: Vec<ConnKey>,
    /// Connections woken by another one of this loop (`Peer::wake`): their
    /// `on_wake` runs later in this iteration.
    woken: Vec<ConnKey>,
    /// Connections whose poller registration failed: the loop closes them.
    failed: Vec<(ConnKey, io::Error)>,
    timers: Timers,
    high_water: usize,
    low_water: usize,
    /// Bytes written to sockets, for the loop's metrics.
    bytes_written: u64,
}

impl<C> ConnTable<C> {
    pub(crate) fn new(config: &Config) -> ConnTable<C> {
        ConnTable {
            slab: Slab::new(),
            gens: Generations::default(),
            to_register: Vec::new(),
            released: Vec::new(),
            idle_default_ms: duration_ms(config.idle_timeout),
            dial_timeout_ms: duration_ms(config.dial_timeout),
            track_activity: config.reclaim_idle,
            #[cfg(feature = "tls")]
            tls_config: config.tls.clone(),
            #[cfg(feature = "tls")]
            handshake_ms: duration_ms(config.tls_handshake_timeout),
            st: LoopState {
                pool: OutputPool::default(),
                dirty: Vec::new(),
                again: Vec::new(),
                woken: Vec::new(),
                failed: Vec::new(),
                timers: Timers::new(),
                high_water: config.high_water,
                low_water: config.low_water,
                bytes_written: 0,
            },
        }
    }

    /// The connection in `slot` and the loop state, borrowed apart.
    fn with_state(&mut self, slot: Slot) -> (&mut Connection<C>, &mut LoopState) {
        (&mut self.slab[slot.0], &mut self.st)
    }

    // ----- lookup ---------------------------------------------------------

    /// The one liveness check: the slot exists and still holds the
    /// connection `key` named.
    fn get(&self, key: ConnKey) -> Option<&Connection<C>> {
        self.slab
            .get(key.index())
            .filter(|c| c.gen == key.gen() && c.held())
    }

    fn get_mut(&mut self, key: ConnKey) -> Option<&mut Connection<C>> {
        self.slab
            .get_mut(key.index())
            .filter(|c| c.gen == key.gen() && c.held())
    }

    /// A live connection and the dirty list, borrowed apart (to queue it
    /// for a flush).
    fn get_mut_and_dirty(&mut self, key: ConnKey) -> Option<(&mut Connection<C>, &mut Vec<Slot>)> {
        let c = self
            .slab
            .get_mut(key.index())
            .filter(|c| c.gen == key.gen() && c.held())?;
        Some((c, &mut self.st.dirty))
    }

    /// The slot of the connection `key` names, if it is still in the table.
    pub(crate) fn slot(&self, key: ConnKey) -> Option<Slot> {
        self.get(key).map(|_| Slot(key.index()))
    }

    /// Whether `key` names a connection that is still in the table.
    pub(crate) fn is_live(&self, key: ConnKey) -> bool {
        self.get(key).is_some()
    }

    /// Whether `key` names an open stream connection (not closing, not
    /// detaching, not a UDP slot): the ones wakes and handle writes reach.
    pub(crate) fn takes_events(&self, key: ConnKey) -> bool {
        self.get(key).is_some_and(Connection::takes_events)
    }

    /// The key of the connection in `slot`.
    pub(crate) fn key(&self, slot: Slot) -> ConnKey {
        self.slab[slot.0].key(slot)
    }

    /// Whether `slot` still holds its connection (it has not been closed
    /// and released).
    pub(crate) fn holds(&self, slot: Slot) -> bool {
        self.slab[slot.0].held()
    }

    /// The connection in `slot` (closed ones too: see [`Slot`]).
    pub(crate) fn conn(&self, slot: Slot) -> &Connection<C> {
        &self.slab[slot.0]
    }

    /// The connection in `slot`, mutably.
    pub(crate) fn conn_mut(&mut self, slot: Slot) -> &mut Connection<C> {
        &mut self.slab[slot.0]
    }

    /// Whether no slot is in use (released ones count until reaped).
    pub(crate) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Whether no slot holds a connection any more (closed ones may wait
    /// for [`reap`](ConnTable::reap)). Walks the slab: drain paths only.
    pub(crate) fn all_released(&self) -> bool {
        self.slab.iter().all(|(_, c)| !c.held())
    }

    /// Every slot holding a connection (allocates: shutdown paths only).
    pub(crate) fn slots(&self) -> Vec<Slot> {
        self.slab
            .iter()
            .filter(|(_, c)| c.held())
            .map(|(i, _)| Slot(i))
            .collect()
    }

    /// Bytes written to sockets so far (ciphertext, for TLS).
    pub(crate) fn bytes_written(&self) -> u64 {
        self.st.bytes_written
    }

    /// Bytes queued on the connection `key`, if it is live.
    pub(crate) fn output_len_of(&self, key: ConnKey) -> Option<usize> {
        self.get(key).map(|c| c.out.pending())
    }

    // ----- adding and removing ------------------------------------------------

    fn new_state(
        &mut self,
        fd: Option<OwnedFd>,
        origin: Origin,
        flags: Flags,
        remote: Addr,
        ctx: C,
    ) -> Connection<C> {
        Connection {
            fd,
            gen: self.gens.next(),
            origin,
            phase: Phase::Open,
            flags,
            interest: Interest::READABLE,
            idle: Idle {
                last_active: self.st.timers.now_ms(),
                ..Idle::default()
            },
            remote,
            out: Output::default(),
            waiters: SmallVec::new(),
            receipts: Vec::new(),
            written: 0,
            #[cfg(feature = "tls")]
            tls: None,
            ctx,
        }
    }

    /// Adds an accepted connection; register it next.
    pub(crate) fn insert_accepted(&mut self, a: Accepted) -> io::Result<Slot>
    where
        C: Default,
    {
        let mut flags = Flags::default();
        if a.unix {
            flags.insert(Flags::UNIX);
        }
        if a.nodelay {
            flags.insert(Flags::NODELAY);
        }
        let origin = Origin::Listener(a.listener as u32);
        #[allow(unused_mut)]
        let mut state = self.new_state(Some(a.fd), origin, flags, a.remote, C::default());
        #[cfg(feature = "tls")]
        if a.tls {
            let session = self
                .tls_config
                .as_ref()
                .map(crate::tls::TlsSession::server)
                .ok_or_else(|| io::Error::other("TLS listener without a config"))?;
            state.tls = Some(Box::new(session?));
        }
        let slot = Slot(self.slab.insert(state));
        #[cfg(feature = "tls")]
        if a.tls {
            self.arm_handshake_timer(slot);
        }
        Ok(slot)
    }

    /// Starts a non-blocking connect to `addr` and adds it; it is registered
    /// after the current callback (see
    /// [`take_to_register`](Self::take_to_register)) and timed out after the
    /// dial timeout. On an immediate failure the context comes back with
    /// the error.
    pub(crate) fn dial(&mut self, addr: &Addr, ctx: C) -> Result<ConnKey, (io::Error, C)> {
        let fd = match addr {
            Addr::Inet(a) => net::tcp_connect(*a),
            Addr::Unix(Some(path)) => net::unix_connect(path),
            Addr::Unix(None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot dial an unnamed unix address",
            )),
        };
        match fd {
            Ok(fd) => Ok(self.insert_dialed(fd, addr.clone(), matches!(addr, Addr::Unix(_)), ctx)),
            Err(e) => Err((e, ctx)),
        }
    }

    fn insert_dialed(&mut self, fd: OwnedFd, remote: Addr, unix: bool, ctx: C) -> ConnKey {
        let flags = Flags::CONNECTING | if unix { Flags::UNIX } else { Flags::default() };
        let state = self.new_state(Some(fd), Origin::Dialed, flags, remote, ctx);
        let slot = Slot(self.slab.insert(state));
        let key = self.key(slot);
        self.to_register.push(slot);
        if self.dial_timeout_ms > 0 {
            let now = self.st.timers.refresh();
            self.st.timers.push(
                now + u64::from(self.dial_timeout_ms),
                TimerKind::Connect,
                key,
            );
        }
        key
    }

    /// Adds a dial that failed at once, to be closed with its error (so it
    /// is reported like a connect that fails later).
    pub(crate) fn insert_failed_dial(&mut self, remote: Addr, ctx: C) -> Slot {
        let state = self.new_state(None, Origin::Dialed, Flags::CONNECTING, remote, ctx);
        Slot(self.slab.insert(state))
    }

    /// Adds the reply slot of the UDP socket at `listener`.
    pub(crate) fn insert_udp_slot(&mut self, listener: usize) -> Slot
    where
        C: Default,
    {
        let state = self.new_state(
            None,
            Origin::Udp(listener as u32),
            Flags::default(),
            Addr::Unix(None),
            C::default(),
        );
        Slot(self.slab.insert(state))
    }

    /// Ends a connection's time in the table (after `on_closed` /
    /// `on_detached`, or for one the handler never saw): from now on its
    /// key is dead and `holds` is `false`, but the slot stays taken, so
    /// no `Slot` the loop still holds can come to name another connection.
    /// [`reap`](Self::reap) frees it.
    pub(crate) fn release(&mut self, slot: Slot) {
        let c = &mut self.slab[slot.0];
        c.phase = Phase::Released;
        c.flags.remove(Flags::DIRTY);
        self.released.push(slot);
    }

    /// Frees the released slots: the one place a slot is freed. It takes
    /// the loop's [`Quiescent`] proof, which only the loop holds and only
    /// between iterations, when no callback runs and no `Slot` is kept
    /// (a callback's `Conn` borrows the table, so it could not call this
    /// anyway, and it has no proof to give).
    pub(crate) fn reap(&mut self, _: &Quiescent) {
        for slot in self.released.drain(..) {
            self.slab.remove(slot.0);
        }
        // Timers lapse lazily; under churn the entries of closed
        // connections would pile up for a whole timeout. Drop them once
        // they outnumber the live ones (each connection has at most three
        // live timers), so the heap stays proportional to what is open.
        if self.st.timers.len() > 6 * self.slab.len() + 1024 {
            self.compact_timers();
        }
    }

    /// Adds the connection in `slot` to the poller. Edge-triggered pollers watch
    /// reads for good and writes from the first write that cannot finish
    /// (or at once, for a connect in progress or output already waiting):
    /// a connection that never fills its socket buffer then never gets an
    /// `EPOLLOUT` event, not even the one a registration with write
    /// interest reports at once. Level-triggered ones watch what it waits
    /// for.
    pub(crate) fn register<P: Poller>(&mut self, slot: Slot, poller: &mut P) -> io::Result<()> {
        let c = &mut self.slab[slot.0];
        let want = if P::EDGE_TRIGGERED {
            if c.flags.contains(Flags::CONNECTING) || flush::has_unsent(c) {
                Interest::BOTH
            } else {
                Interest::READABLE
            }
        } else if c.flags.contains(Flags::CONNECTING) {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = c.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        poller.register(fd, Token::Conn(c.key(slot)).encode(), want)?;
        c.interest = want;
        c.flags.insert(Flags::REGISTERED);
        Ok(())
    }

    /// The next dialed connection to register, if a callback dialed one.
    pub(crate) fn take_to_register(&mut self) -> Option<Slot> {
        self.to_register.pop()
    }

    /// The next connection whose registration failed, to be closed.
    pub(crate) fn take_failed(&mut self) -> Option<(ConnKey, io::Error)> {
        self.st.failed.pop()
    }

    // ----- reading ----------------------------------------------------------

    /// Records activity (for the idle timer and for reclaiming the
    /// longest idle first).
    pub(crate) fn touch(&mut self, slot: Slot) {
        self.slab[slot.0].idle.last_active = self.st.timers.now_ms();
    }

    /// Queues `key` to be read again next iteration.
    pub(crate) fn read_again_later(&mut self, key: ConnKey) {
        self.st.again.push(key);
    }

    pub(crate) fn has_again(&self) -> bool {
        !self.st.again.is_empty()
    }

    /// Moves the read-again list into `into` (which must be empty).
    pub(crate) fn take_again(&mut self, into: &mut Vec<ConnKey>) {
        std::mem::swap(&mut self.st.again, into);
    }

    /// Queues `key`'s `on_wake` for later in this iteration; `false` if it
    /// is gone or takes no more events.
    pub(crate) fn wake_later(&mut self, key: ConnKey) -> bool {
        if !self.takes_events(key) {
            return false;
        }
        self.st.woken.push(key);
        true
    }

    pub(crate) fn has_woken(&self) -> bool {
        !self.st.woken.is_empty()
    }

    /// Moves the woken list into `into` (which must be empty).
    pub(crate) fn take_woken(&mut self, into: &mut Vec<ConnKey>) {
        std::mem::swap(&mut self.st.woken, into);
    }

    /// The context of the connection `key`, if it is live.
    pub(crate) fn ctx_of(&mut self, key: ConnKey) -> Option<&mut C> {
        let slot = self.slot(key)?;
        Some(self.conn_mut(slot).ctx_mut())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    /// Under churn with a long idle timeout, the timer heap holds the
    /// entries of open connections, not of every connection of the last
    /// timeout period.
    #[test]
    fn timers_of_closed_connections_do_not_pile_up() {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(300)),
            ..Config::default()
        };
        let mut table: ConnTable<()> = ConnTable::new(&config);
        let mut peers = Vec::new();
        for round in 0..20_000 {
            let (a, b) = UnixStream::pair().unwrap();
            let slot = table
                .insert_accepted(Accepted {
                    fd: a.into(),
                    remote: Addr::Unix(None),
                    listener: 0,
                    unix: true,
                    nodelay: false,
                    tls: false,
                    deferred: false,
                })
                .unwrap();
            table.apply_default_idle(slot);
            table.set_timer(slot, Some(Duration::from_secs(60)));
            // Ten stay open; the rest come and go.
            if round % 2000 == 0 {
                peers.push(b);
            } else {
                table.release(slot);
                table.reap(&Quiescent::between_iterations());
            }
        }
        assert_eq!(table.slab.len(), 10);
        assert!(
            table.st.timers.len() <= 6 * 10 + 1024 + 2,
            "{} timer entries for 10 connections",
            table.st.timers.len()
        );
        // The live ones still fire.
        table.compact_timers();
        assert_eq!(
            table.st.timers.len(),
            20,
            "an idle timer and a user timer each"
        );
    }
}
