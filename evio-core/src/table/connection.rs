//! One connection: its socket, output, TLS session, flags, timers and the
//! handler's context, and what can be asked of or done to it alone. What
//! involves the loop's shared state (the output pool, the dirty and
//! read-again lists, the clock, other connections) is the table's.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use evio_sys::{net, Interest, Poller};
use smallvec::SmallVec;

use super::output::Output;
use crate::key::ConnKey;
use crate::receipt::PendingReceipt;
use crate::Addr;

/// A slot of the connection table, as the loop holds it between the event
/// that named a connection and the end of the iteration.
///
/// Only the table makes one (when it adds a connection, or from a
/// [`ConnKey`] it checked), and it frees slots only in
/// [`ConnTable::reap`](super::ConnTable::reap), between iterations, where no
/// `Slot` survives: so a `Slot` always names the connection it was made
/// for, perhaps closed by now (then [`ConnTable::holds`](super::ConnTable::holds)
/// is `false` and every operation on it does nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(pub(super) usize);

/// Where a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// Accepted by the listener at this index of the server's addresses.
    Listener(u32),
    /// Made by a dial.
    Dialed,
    /// The reply slot of the UDP socket at this index (one datagram at a
    /// time; never a real connection).
    Udp(u32),
}

/// Where a connection is in its life. Reads and events happen only while
/// `Open`; the other two wait for the output to drain, then end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    /// Close once output is written.
    Closing,
    /// Hand the socket over once output is written.
    Detaching,
    /// Closed or detached, `on_closed` / `on_detached` done: the slot waits
    /// for [`ConnTable::reap`](super::ConnTable::reap) to free it.
    Released,
}

bitflags::bitflags! {
    /// Flag bits of a connection (see each constant).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(super) struct Flags: u16 {
        /// A dialed connection whose connect has not completed: no reads, no
        /// writes yet (output waits).
        const CONNECTING = 1 << 0;
        /// Own output above the high-water mark: not reading.
        const OWN_PAUSED = 1 << 1;
        /// A peer's output (fed by our `write_to`) is above the high-water mark:
        /// not reading until it drains.
        const PEER_PAUSED = 1 << 2;
        /// Queued in the table's dirty list.
        const DIRTY = 1 << 3;
        /// A unix stream socket.
        const UNIX = 1 << 4;
        /// The poller reported the peer's FIN: reads go on to EOF past short
        /// reads, even when resumed later (edge-triggered pollers report it once).
        const PEER_EOF = 1 << 5;
        /// In the poller (set by `ConnTable::register`).
        const REGISTERED = 1 << 6;
        /// Our output holds bytes other connections queued (`write_to`); its
        /// backpressure pauses those writers, not our own reading (in a proxy,
        /// pausing both halves on their own output deadlocks against a peer
        /// that stops reading while its writes are blocked). Cleared when the
        /// output drains.
        const PEER_FED = 1 << 7;
        /// The handler paused reading (`Conn::pause_reading`).
        const USER_PAUSED = 1 << 8;
        /// We read the peer's EOF: nothing more to read.
        const READ_EOF = 1 << 9;
        /// Shut our write side down once the output is written
        /// (`Conn::shutdown_write`); later writes are dropped.
        const SHUT_WRITE = 1 << 10;
        /// Our write side is shut down.
        const WRITE_DONE = 1 << 11;
        /// Between requests: may be closed to make room when the server runs
        /// out of descriptors (`Conn::set_reclaimable`).
        const RECLAIMABLE = 1 << 12;
        /// `TCP_NODELAY` is on (inherited from the listener), so `Options`
        /// asking for it costs no system call.
        const NODELAY = 1 << 14;
        /// Level-triggered pollers: the socket is gone both ways and parked
        /// for good (out of the poller, so a hang-up is not reported forever).
        const HUNG_UP = 1 << 13;
    }
}

/// The timers of a connection.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Idle {
    /// Idle timeout in ms (0: none).
    pub(super) ms: u32,
    /// Loop clock (ms) of the last byte read or written.
    pub(super) last_active: u64,
    /// When this connection's one live idle timer is due (0: none); timer
    /// entries due at another time are stale and lapse.
    pub(super) due: u64,
    /// When the handler's timer (`Conn::set_timer`) is due (0: none); as
    /// above, other entries lapse.
    pub(super) user_due: u64,
}

/// One connection, in the table's slab. Its fields are the table module's;
/// the rest of the crate asks and acts through its methods.
pub(crate) struct Connection<C> {
    /// `None` for UDP slots and once closed.
    pub(super) fd: Option<OwnedFd>,
    pub(super) gen: u32,
    pub(super) origin: Origin,
    pub(super) phase: Phase,
    pub(super) flags: Flags,
    /// Registered interest: what level-triggered pollers wait for now;
    /// for edge-triggered ones, whether writes are watched yet.
    pub(super) interest: Interest,
    pub(super) idle: Idle,
    pub(super) remote: Addr,
    pub(super) out: Output,
    /// Connections that stopped reading because our output is high
    /// (`write_to`); all are resumed when it drains or we close.
    pub(super) waiters: SmallVec<[ConnKey; 1]>,
    /// Cross-thread writes waiting to be written: (end offset, receipt).
    pub(super) receipts: Vec<(u64, PendingReceipt)>,
    /// Bytes written to the socket so far (for receipts).
    pub(super) written: u64,
    /// The TLS session of a TLS connection (boxed: plain connections pay
    /// one pointer).
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Box<crate::tls::TlsSession>>,
    pub(super) ctx: C,
}

impl<C> Connection<C> {
    pub(super) fn key(&self, slot: Slot) -> ConnKey {
        ConnKey::new(slot.0, self.gen)
    }

    /// Whether the slot still holds a connection the loop serves (or is
    /// closing): not yet released.
    pub(super) fn held(&self) -> bool {
        self.phase != Phase::Released
    }

    /// Whether the connection takes reads now.
    pub(super) fn reading(&self) -> bool {
        self.phase == Phase::Open
            && !self.flags.intersects(
                Flags::CONNECTING
                    | Flags::OWN_PAUSED
                    | Flags::PEER_PAUSED
                    | Flags::USER_PAUSED
                    | Flags::READ_EOF,
            )
    }

    /// Whether the socket is read now: while the connection takes reads,
    /// and also while a TLS connection that is closing still has its
    /// handshake to finish — its queued output can only be encrypted and
    /// sent once the handshake is done (a dial written to and closed at
    /// once). Plaintext the peer sends meanwhile is not delivered.
    pub(super) fn takes_input(&self) -> bool {
        self.reading() || (self.phase == Phase::Closing && self.handshaking())
    }

    /// Whether a TLS handshake is still going on (never for plain
    /// connections).
    pub(super) fn handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.is_handshaking() && !self.flags.contains(Flags::READ_EOF);
        }
        false
    }

    /// Whether writes are still taken (not after `shutdown_write`).
    pub(super) fn writable(&self) -> bool {
        !self.flags.contains(Flags::SHUT_WRITE)
    }

    /// Whether the connection takes events (wakes, writes from handles):
    /// open, and a stream connection rather than a UDP reply slot.
    pub(super) fn takes_events(&self) -> bool {
        self.phase == Phase::Open && !matches!(self.origin, Origin::Udp(_))
    }
}

/// What the rest of the crate asks of a connection, and the operations that
/// touch it alone.
impl<C> Connection<C> {
    pub(crate) fn ctx(&self) -> &C {
        &self.ctx
    }

    pub(crate) fn ctx_mut(&mut self) -> &mut C {
        &mut self.ctx
    }

    pub(crate) fn remote(&self) -> &Addr {
        &self.remote
    }

    /// The socket (`None` for UDP slots and once closed).
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// The socket to read, if the connection takes reads now.
    pub(crate) fn read_fd(&self) -> Option<BorrowedFd<'_>> {
        if !self.takes_input() {
            return None;
        }
        self.fd()
    }

    /// The index of the address that accepted the connection (or owns the
    /// UDP socket); `None` for a dialed connection.
    pub(crate) fn listener(&self) -> Option<usize> {
        match self.origin {
            Origin::Listener(i) | Origin::Udp(i) => Some(i as usize),
            Origin::Dialed => None,
        }
    }

    pub(crate) fn is_udp(&self) -> bool {
        matches!(self.origin, Origin::Udp(_))
    }

    pub(crate) fn is_unix(&self) -> bool {
        self.flags.contains(Flags::UNIX)
    }

    /// Whether the connection speaks TLS (never without the `tls` feature).
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The TLS session of a TLS connection.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(&mut self) -> &mut crate::tls::TlsSession {
        self.tls.as_deref_mut().expect("a TLS connection")
    }

    /// What a handler may ask of the TLS session, if there is one.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_info(&self) -> Option<crate::tls::TlsInfo<'_>> {
        self.tls.as_deref().map(crate::tls::TlsSession::info)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn output_len(&self) -> usize {
        self.out.pending()
    }

    /// A dial whose connect has not completed.
    pub(crate) fn is_connecting(&self) -> bool {
        self.flags.contains(Flags::CONNECTING)
    }

    /// Whether the connection reads now (not paused, not at EOF, open).
    pub(crate) fn reads_now(&self) -> bool {
        self.reading()
    }

    /// Whether reading is only paused (backpressure or the handler), not
    /// ended: input read meanwhile must be kept.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn reads_paused(&self) -> bool {
        self.phase == Phase::Open
            && !self.flags.contains(Flags::READ_EOF)
            && self
                .flags
                .intersects(Flags::OWN_PAUSED | Flags::PEER_PAUSED | Flags::USER_PAUSED)
    }

    /// Whether the handler paused reading (`Conn::pause_reading`).
    pub(crate) fn is_read_paused(&self) -> bool {
        self.flags.contains(Flags::USER_PAUSED)
    }

    /// Records that the peer shut down its side (reported once by
    /// edge-triggered pollers).
    pub(crate) fn note_peer_eof(&mut self) {
        self.flags.insert(Flags::PEER_EOF);
    }

    pub(crate) fn peer_eof(&self) -> bool {
        self.flags.contains(Flags::PEER_EOF)
    }

    /// We read the peer's EOF: no more reads. `true` if our write side is
    /// already shut down too, so the connection is finished.
    pub(crate) fn note_read_eof(&mut self) -> bool {
        self.flags.insert(Flags::READ_EOF);
        self.flags.contains(Flags::WRITE_DONE)
    }

    /// The socket's pending error (`SO_ERROR`), taken.
    pub(crate) fn socket_error(&self) -> Option<io::Error> {
        match self.fd.as_ref().map(net::take_error) {
            Some(Ok(e)) => e,
            Some(Err(e)) => Some(e),
            None => None,
        }
    }

    /// Whether the socket is parked out of the poller for good (see
    /// [`park_hung_up`](Self::park_hung_up)): no event will come for it.
    pub(crate) fn is_hung_up(&self) -> bool {
        self.flags.contains(Flags::HUNG_UP)
    }

    /// Level-triggered pollers: the socket hung up (both directions are
    /// closed) while nothing reads it. Takes it out of the poller for good,
    /// or the hang-up would be reported on every wait; what it still holds
    /// is read directly when reading resumes.
    pub(crate) fn park_hung_up<P: Poller>(&mut self, poller: &mut P) {
        if let (Some(fd), false) = (&self.fd, self.flags.contains(Flags::HUNG_UP)) {
            let _ = poller.deregister(fd.as_raw_fd());
            // Gone both ways: once reading resumes, read on to the EOF,
            // since no event will come for it.
            self.flags.insert(Flags::HUNG_UP | Flags::PEER_EOF);
        }
    }

    /// Marks the connection as between requests (or not): it may then be
    /// closed to make room when the server runs out of descriptors.
    pub(crate) fn set_reclaimable(&mut self, yes: bool) {
        self.flags.set(Flags::RECLAIMABLE, yes);
    }

    /// Sets `TCP_NODELAY` as `Options` asks, unless it already is so.
    pub(crate) fn apply_nodelay(&mut self, on: bool) {
        if self.flags.contains(Flags::UNIX) || self.flags.contains(Flags::NODELAY) == on {
            return;
        }
        if let Some(fd) = &self.fd {
            if net::set_nodelay(fd, on).is_ok() {
                self.flags.set(Flags::NODELAY, on);
            }
        }
    }
}
