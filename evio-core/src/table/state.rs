//! One connection's state, as the connection table keeps it.

use std::os::fd::OwnedFd;

use evio_sys::Interest;
use smallvec::SmallVec;

use super::output::Output;
use crate::key::ConnKey;
use crate::receipt::PendingReceipt;
use crate::Addr;

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

/// One connection, in the table's slab. Only the table module touches it.
pub(super) struct ConnState<C> {
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

impl<C> ConnState<C> {
    pub(super) fn key(&self, index: usize) -> ConnKey {
        ConnKey::new(index, self.gen)
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
