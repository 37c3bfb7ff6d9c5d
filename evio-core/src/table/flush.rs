//! Writing: queueing output (own, a `Peer`'s, with receipts), marking a
//! close or detach, flushing to the socket, backpressure, and keeping a
//! level-triggered poller's interest in step.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};

use evio_sys::{net, Interest, Poller};

use super::connection::{Connection, Flags, Origin, Phase, Slot};
use super::output::{Chunk, Output, OutputPool};
use super::{ConnTable, Flushed};
use crate::key::{ConnKey, Token};
use crate::receipt::{PendingReceipt, WriteError};

/// Cross-thread writes up to this size are copied into the connection's
/// buffer; larger ones are queued as they are.
const SMALL_WRITE: usize = 4096;

/// A connection's output, borrowed apart from its context (see
/// `Conn::split`).
pub(crate) struct OutputRef<'a> {
    out: &'a mut Output,
    flags: &'a mut Flags,
    pool: &'a mut OutputPool,
    dirty: &'a mut Vec<Slot>,
    slot: Slot,
}

impl OutputRef<'_> {
    fn mark_dirty(&mut self) {
        if !self.flags.contains(Flags::DIRTY) {
            self.flags.insert(Flags::DIRTY);
            self.dirty.push(self.slot);
        }
    }

    /// As `ConnTable::write`.
    pub(crate) fn write(&mut self, data: &[u8]) {
        if !self.flags.contains(Flags::SHUT_WRITE) {
            self.out.push(data, self.pool);
            self.mark_dirty();
        }
    }

    /// As `ConnTable::write_chunk`.
    pub(crate) fn write_chunk(&mut self, chunk: Chunk) {
        if !self.flags.contains(Flags::SHUT_WRITE) {
            self.out.push_chunk(chunk);
            self.mark_dirty();
        }
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.out.pending()
    }
}

/// Writes queued output until it is all written or the socket is full:
/// plaintext to the socket, or through the TLS session (encrypted, then its
/// records). Counts plaintext in `c.written`. Returns the bytes that left
/// and how many records still wait inside the TLS session (0 or 1: it says
/// only whether).
///
/// Either way it returns only once [`has_unsent`] is false or the socket
/// refused more: on an edge-triggered poller no event comes for a socket
/// that never filled up, so stopping early would stall the connection.
pub(super) fn write_out<C>(c: &mut Connection<C>) -> io::Result<(usize, usize)> {
    let Some(fd) = c.fd.as_ref().map(|fd| fd.as_fd()) else {
        return Ok((0, 0));
    };
    #[cfg(feature = "tls")]
    if let Some(tls) = c.tls.as_deref_mut() {
        let done_writing = c.phase == Phase::Closing || c.flags.contains(Flags::SHUT_WRITE);
        let mut wrote = 0;
        loop {
            // rustls takes plaintext only while its unsent records stay
            // under its buffer limit (64 KiB): encrypt, write, and again
            // until the plaintext is gone or the socket is full.
            let encrypted = c.out.feed_to(|bytes| tls.encrypt(bytes));
            c.written += encrypted as u64;
            if done_writing && c.out.pending() == 0 && !tls.is_handshaking() {
                tls.close_notify();
            }
            wrote += tls.write_to(fd)?;
            if tls.wants_write() || c.out.pending() == 0 || !tls.takes_plaintext() {
                break;
            }
        }
        return Ok((wrote, usize::from(tls.wants_write())));
    }
    let mut wrote = 0;
    while c.out.pending() > 0 {
        match c.out.write_to(fd) {
            Ok(n) => wrote += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.written += wrote as u64;
    Ok((wrote, 0))
}

/// Whether bytes wait that the socket could take now: queued plaintext
/// (on a TLS connection, only once the session encrypts it: not during
/// the handshake), or records inside the TLS session. This is what write
/// interest follows: while it holds after a flush the socket is full, and
/// writability must be watched.
pub(super) fn has_unsent<C>(c: &Connection<C>) -> bool {
    #[cfg(feature = "tls")]
    if let Some(tls) = c.tls.as_deref() {
        return tls.wants_write() || (c.out.pending() > 0 && tls.takes_plaintext());
    }
    c.out.pending() > 0
}

/// Whether the connection speaks TLS (its plaintext must be encrypted).
fn is_tls<C>(c: &Connection<C>) -> bool {
    #[cfg(feature = "tls")]
    return c.tls.is_some();
    #[cfg(not(feature = "tls"))]
    {
        let _ = c;
        false
    }
}

/// Whether the handler has seen the connection open (a TLS connection
/// opens when its handshake finishes), so `on_drained` may fire.
fn opened<C>(c: &Connection<C>) -> bool {
    #[cfg(feature = "tls")]
    if let Some(tls) = c.tls.as_deref() {
        return tls.is_open();
    }
    let _ = c;
    true
}

/// Interest from two booleans: with neither, only errors and hang-ups.
fn interest(read: bool, write: bool) -> Interest {
    match (read, write) {
        (false, false) => Interest::NONE,
        (true, false) => Interest::READABLE,
        (true, true) => Interest::BOTH,
        (false, true) => Interest::WRITABLE,
    }
}

impl<C> ConnTable<C> {
    // ----- writing ----------------------------------------------------------

    pub(super) fn mark_dirty(dirty: &mut Vec<Slot>, slot: Slot, c: &mut Connection<C>) {
        if !c.flags.contains(Flags::DIRTY) {
            c.flags.insert(Flags::DIRTY);
            dirty.push(slot);
        }
    }

    /// Appends `data` to the output of the connection in `slot` (dropped after
    /// `shutdown_write`).
    pub(crate) fn write(&mut self, slot: Slot, data: &[u8]) {
        let c = &mut self.slab[slot.0];
        if c.writable() {
            c.out.push(data, &mut self.pool);
            Self::mark_dirty(&mut self.dirty, slot, c);
        }
    }

    /// Queues an owned buffer as it is (dropped after `shutdown_write`).
    pub(crate) fn write_chunk(&mut self, slot: Slot, chunk: Chunk) {
        let c = &mut self.slab[slot.0];
        if c.writable() {
            c.out.push_chunk(chunk);
            Self::mark_dirty(&mut self.dirty, slot, c);
        }
    }

    /// Writes several slices: with nothing queued, at once with one
    /// `writev` (no copy; the rest, if the socket takes less, is queued);
    /// otherwise queued after what is there.
    pub(crate) fn write_vectored(&mut self, slot: Slot, bufs: &[IoSlice<'_>]) {
        let c = &mut self.slab[slot.0];
        if !c.writable() {
            return;
        }
        let direct = c.out.pending() == 0
            && !c.flags.contains(Flags::CONNECTING)
            && !matches!(c.origin, Origin::Udp(_))
            && !is_tls(c);
        let mut skip = 0;
        if let (true, Some(fd)) = (direct, &c.fd) {
            if let Ok(n) = net::writev(fd.as_fd(), bufs) {
                skip = n;
                c.written += n as u64;
                if n > 0 {
                    c.idle.last_active = self.timers.now_ms();
                    self.bytes_written += n as u64;
                }
            }
            // An error is met again (and handled) by the next flush.
        }
        for b in bufs {
            let b: &[u8] = b;
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            c.out.push(&b[skip..], &mut self.pool);
            skip = 0;
        }
        if c.out.pending() > 0 {
            Self::mark_dirty(&mut self.dirty, slot, c);
        }
    }

    /// The context and the output of the connection in `slot`, borrowed apart.
    pub(crate) fn split(&mut self, slot: Slot) -> (&mut C, OutputRef<'_>) {
        let c = &mut self.slab[slot.0];
        let out = OutputRef {
            out: &mut c.out,
            flags: &mut c.flags,
            pool: &mut self.pool,
            dirty: &mut self.dirty,
            slot,
        };
        (&mut c.ctx, out)
    }

    /// Queues `data` (as it is, no copy) for an open connection and
    /// completes `receipt` once it is written; fails the receipt if the
    /// connection is not open or its write side is shut.
    pub(crate) fn write_with_receipt(
        &mut self,
        key: ConnKey,
        data: Vec<u8>,
        receipt: PendingReceipt,
    ) -> bool {
        let writable = self
            .get(key)
            .is_some_and(|c| c.takes_events() && c.writable());
        if !writable {
            receipt.complete(Err(WriteError::NOT_CONNECTED));
            return false;
        }
        let slot = Slot(key.index());
        let c = &mut self.slab[slot.0];
        if data.len() <= SMALL_WRITE {
            // Small: a copy into the (pooled) buffer is cheaper than a
            // buffer of its own in the queue.
            c.out.push(&data, &mut self.pool);
        } else {
            c.out.push_chunk(Chunk::Vec(data));
        }
        let end = c.written + c.out.pending() as u64;
        if end <= c.written {
            // Nothing queued before it and nothing in it: done already.
            receipt.complete(Ok(()));
            return true;
        }
        c.receipts.push((end, receipt));
        Self::mark_dirty(&mut self.dirty, slot, c);
        true
    }

    /// `from` appends `data` to the output of `to` (a proxy's other half);
    /// `false` if `to` is gone or closing. When `to`'s queue passes the
    /// high-water mark, `from` stops being read until it drains.
    pub(crate) fn write_to(&mut self, from: ConnKey, to: ConnKey, data: &[u8]) -> bool {
        let high = self.high_water;
        let Some(p) = self.slab.get_mut(to.index()).filter(|p| p.gen == to.gen()) else {
            return false;
        };
        if p.phase != Phase::Open || !p.writable() {
            return false;
        }
        p.out.push(data, &mut self.pool);
        Self::mark_dirty(&mut self.dirty, Slot(to.index()), p);
        if to == from {
            return true;
        }
        p.flags.insert(Flags::PEER_FED);
        if p.out.pending() > high {
            // PEER_PAUSED (not OWN_PAUSED, which only our own flush clears):
            // the peer's flush resumes every writer it paused.
            if !p.waiters.contains(&from) {
                p.waiters.push(from);
            }
            if let Some(me) = self.get_mut(from) {
                me.flags.insert(Flags::PEER_PAUSED);
            }
        }
        true
    }

    /// Closes `key` once its output is written. `false` if it is gone or
    /// already detaching (a detach is never turned into a close).
    pub(crate) fn close_later(&mut self, key: ConnKey) -> bool {
        let Some((c, dirty)) = self.get_mut_and_dirty(key) else {
            return false;
        };
        match c.phase {
            Phase::Detaching | Phase::Released => false,
            Phase::Closing => true,
            Phase::Open => {
                c.phase = Phase::Closing;
                Self::mark_dirty(dirty, Slot(key.index()), c);
                true
            }
        }
    }

    /// Shuts down the write side of `key` once its output is written (the
    /// peer reads EOF); reading goes on. `false` if it is gone or not open.
    pub(crate) fn shutdown_write_later(&mut self, key: ConnKey) -> bool {
        let Some((c, dirty)) = self.get_mut_and_dirty(key) else {
            return false;
        };
        if c.phase != Phase::Open || matches!(c.origin, Origin::Udp(_)) {
            return false;
        }
        c.flags.insert(Flags::SHUT_WRITE);
        Self::mark_dirty(dirty, Slot(key.index()), c);
        true
    }

    /// Pauses or resumes reading `slot` (the handler's own flow control,
    /// apart from backpressure). Resuming reads what arrived meanwhile.
    pub(crate) fn set_read_paused(&mut self, slot: Slot, paused: bool) {
        let c = &mut self.slab[slot.0];
        if paused {
            c.flags.insert(Flags::USER_PAUSED);
        } else if c.flags.contains(Flags::USER_PAUSED) {
            c.flags.remove(Flags::USER_PAUSED);
            let key = c.key(slot);
            self.again.push(key);
        }
    }

    /// Detaches the connection in `slot` once its output is written (ignored for
    /// UDP slots and connections already closing).
    pub(crate) fn detach_later(&mut self, slot: Slot) {
        let c = &mut self.slab[slot.0];
        if c.phase == Phase::Open && !matches!(c.origin, Origin::Udp(_)) {
            c.phase = Phase::Detaching;
            Self::mark_dirty(&mut self.dirty, slot, c);
        }
    }

    /// After a callback on `slot`: applies backpressure for its own output
    /// and, for level-triggered pollers, brings its interest up to date.
    pub(crate) fn after_callback<P: Poller>(&mut self, slot: Slot, poller: &mut P) {
        let Some(c) = self.slab.get_mut(slot.0) else {
            return;
        };
        if c.out.pending() > self.high_water && !c.flags.contains(Flags::PEER_FED) {
            c.flags.insert(Flags::OWN_PAUSED);
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(slot, poller);
        }
    }

    /// Moves the dirty list into `into` (which must be empty) for flushing.
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<Slot>) {
        std::mem::swap(&mut self.dirty, into);
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Clears the dirty mark of `slot`; `true` if it was set (so a flush is
    /// due).
    pub(crate) fn clear_dirty(&mut self, slot: Slot) -> bool {
        match self.slab.get_mut(slot.0) {
            Some(c) if c.flags.contains(Flags::DIRTY) => {
                c.flags.remove(Flags::DIRTY);
                true
            }
            _ => false,
        }
    }

    /// Writes queued output until done or the socket is full, completes
    /// receipts, recycles the buffer, and updates backpressure.
    pub(crate) fn flush<P: Poller>(&mut self, slot: Slot, poller: &mut P) -> Flushed {
        let Some(c) = self.slab.get_mut(slot.0).filter(|c| c.held()) else {
            return Flushed::Pending;
        };
        if c.flags.contains(Flags::CONNECTING) || matches!(c.origin, Origin::Udp(_)) {
            return Flushed::Pending;
        }
        if c.fd.is_none() {
            return Flushed::Pending;
        }
        let (wrote, backlog) = match write_out(c) {
            Ok(r) => r,
            Err(e) => return Flushed::Close(Some(e)),
        };
        if wrote > 0 {
            c.idle.last_active = self.timers.now_ms();
            self.bytes_written += wrote as u64;
        }
        let is_open = opened(c);
        // Over TLS, a write is done once its records are on the socket.
        if !c.receipts.is_empty() && backlog == 0 {
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
        let pending = c.out.pending() + backlog;
        let unsent = has_unsent(c);
        c.out.settle(&mut self.pool);
        if pending == 0 {
            c.flags.remove(Flags::PEER_FED);
            match c.phase {
                Phase::Closing => return Flushed::Close(None),
                Phase::Detaching => return Flushed::Detach,
                Phase::Open | Phase::Released => {}
            }
            if c.flags.contains(Flags::SHUT_WRITE) && !c.flags.contains(Flags::WRITE_DONE) {
                c.flags.insert(Flags::WRITE_DONE);
                if c.flags.contains(Flags::READ_EOF) {
                    // Both directions are done.
                    return Flushed::Close(None);
                }
                let shut =
                    c.fd.as_ref()
                        .map(|fd| net::shutdown(fd, net::Shutdown::Write));
                if let Some(Err(e)) = shut {
                    return Flushed::Close(Some(e));
                }
            }
        }
        if pending <= self.low_water {
            if c.flags.contains(Flags::OWN_PAUSED) {
                c.flags.remove(Flags::OWN_PAUSED);
                self.again.push(c.key(slot));
            }
            for w in std::mem::take(&mut c.waiters) {
                self.resume_waiter(w, poller);
            }
        } else if pending > self.high_water && !c.flags.contains(Flags::PEER_FED) {
            c.flags.insert(Flags::OWN_PAUSED);
        }
        if wrote > 0 && pending == 0 && is_open {
            return Flushed::Drained;
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(slot, poller);
        } else if unsent {
            // The socket is full: its next writable edge flushes again.
            self.watch_writes(slot, poller);
        }
        Flushed::Pending
    }

    /// Edge-triggered pollers: a write could not finish, so writability is
    /// watched from now on — one `epoll_ctl(MOD)` in the connection's life,
    /// paid only by connections that fill their socket buffer. One not yet
    /// registered gets both interests when it is. A failure queues the
    /// connection for closing.
    fn watch_writes<P: Poller>(&mut self, slot: Slot, poller: &mut P) {
        let Some(c) = self.slab.get_mut(slot.0) else {
            return;
        };
        if !c.flags.contains(Flags::REGISTERED) || c.interest.is_writable() {
            return;
        }
        let Some(fd) = &c.fd else { return };
        let token = Token::Conn(c.key(slot)).encode();
        match poller.reregister(fd.as_raw_fd(), token, Interest::BOTH) {
            Ok(()) => c.interest = Interest::BOTH,
            Err(e) => self.failed.push((c.key(slot), e)),
        }
    }

    /// A connection paused on another's output may read again.
    pub(super) fn resume_waiter<P: Poller>(&mut self, w: ConnKey, poller: &mut P) {
        let Some(wc) = self.get_mut(w) else { return };
        if wc.flags.contains(Flags::PEER_PAUSED) {
            wc.flags.remove(Flags::PEER_PAUSED);
            self.again.push(w);
            if !P::EDGE_TRIGGERED {
                self.update_interest(Slot(w.index()), poller);
            }
        }
    }

    /// Level-triggered pollers only: keeps the registered interest in step
    /// with what the connection wants, so poll(2) never reports a readiness
    /// nobody will act on. A connection that waits for nothing (paused, or
    /// a `write_to` sender waiting on its peer) stays registered for errors
    /// only, so a reset is noticed even then. A failure queues the
    /// connection for closing.
    fn update_interest<P: Poller>(&mut self, slot: Slot, poller: &mut P) {
        let Some(c) = self.slab.get_mut(slot.0) else {
            return;
        };
        let Some(fd) = &c.fd else { return };
        if c.flags.contains(Flags::HUNG_UP) {
            return; // out of the poller for good; resuming reads directly
        }
        let read = c.takes_input();
        let write = has_unsent(c) || c.flags.contains(Flags::CONNECTING);
        let want = interest(read, write);
        if want == c.interest {
            return;
        }
        let token = Token::Conn(c.key(slot)).encode();
        match poller.reregister(fd.as_raw_fd(), token, want) {
            Ok(()) => c.interest = want,
            Err(e) => self.failed.push((c.key(slot), e)),
        }
    }
}
