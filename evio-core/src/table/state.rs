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

/// Flag bits of a connection (see each constant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flags(u16);

impl Flags {
    /// A dialed connection whose connect has not completed: no reads, no
    /// writes yet (output waits).
    pub(super) const CONNECTING: Flags = Flags(1);
    /// Own output above the high-water mark: not reading.
    pub(super) const OWN_PAUSED: Flags = Flags(2);
    /// A peer's output (fed by our `write_to`) is above the high-water mark:
    /// not reading until it drains.
    pub(super) const PEER_PAUSED: Flags = Flags(4);
    /// Queued in the table's dirty list.
    pub(super) const DIRTY: Flags = Flags(8);
    /// A unix stream socket.
    pub(super) const UNIX: Flags = Flags(16);
    /// The poller reported the peer's FIN: reads go on to EOF past short
    /// reads, even when resumed later (edge-triggered pollers report it once).
    pub(super) const PEER_EOF: Flags = Flags(32);
    /// In the poller (set by `ConnTable::register`).
    pub(super) const REGISTERED: Flags = Flags(64);
    /// Our output holds bytes other connections queued (`write_to`); its
    /// backpressure pauses those writers, not our own reading (in a proxy,
    /// pausing both halves on their own output deadlocks against a peer
    /// that stops reading while its writes are blocked). Cleared when the
    /// output drains.
    pub(super) const PEER_FED: Flags = Flags(128);
    /// The handler paused reading (`Conn::pause_reading`).
    pub(super) const USER_PAUSED: Flags = Flags(256);
    /// We read the peer's EOF: nothing more to read.
    pub(super) const READ_EOF: Flags = Flags(512);
    /// Shut our write side down once the output is written
    /// (`Conn::shutdown_write`); later writes are dropped.
    pub(super) const SHUT_WRITE: Flags = Flags(1024);
    /// Our write side is shut down.
    pub(super) const WRITE_DONE: Flags = Flags(2048);
    /// Between requests: may be closed to make room when the server runs
    /// out of descriptors (`Conn::set_reclaimable`).
    pub(super) const RECLAIMABLE: Flags = Flags(4096);
    /// `TCP_NODELAY` is on (inherited from the listener), so `Options`
    /// asking for it costs no system call.
    pub(super) const NODELAY: Flags = Flags(16384);
    /// Level-triggered pollers: the socket is gone both ways and parked
    /// for good (out of the poller, so a hang-up is not reported forever).
    pub(super) const HUNG_UP: Flags = Flags(8192);

    pub(super) fn has(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }

    pub(super) fn set(&mut self, f: Flags) {
        self.0 |= f.0;
    }

    pub(super) fn clear(&mut self, f: Flags) {
        self.0 &= !f.0;
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
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
            && !self.flags.has(
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
            return tls.is_handshaking() && !self.flags.has(Flags::READ_EOF);
        }
        false
    }

    /// Whether writes are still taken (not after `shutdown_write`).
    pub(super) fn writable(&self) -> bool {
        !self.flags.has(Flags::SHUT_WRITE)
    }

    /// Whether the connection takes events (wakes, writes from handles):
    /// open, and a stream connection rather than a UDP reply slot.
    pub(super) fn takes_events(&self) -> bool {
        self.phase == Phase::Open && !matches!(self.origin, Origin::Udp(_))
    }
}
