//! Writing: queueing output (own, a `Peer`'s, with receipts), marking a
//! close or detach, flushing to the socket, backpressure, and keeping a
//! level-triggered poller's interest in step.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};

use evio_sys::{net, Interest, Poller};
use smallvec::SmallVec;

use super::connection::{Connection, Flags, Origin, Phase, Slot};
use super::output::{Chunk, Output, OutputPool};
use super::{ConnTable, Flushed, LoopState};
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

/// A connection's own writing: queueing, flushing, backpressure, its poller
/// interest. Each takes the loop state (`st`) it shares with the others,
/// lent beside it by the table; what reaches another connection (a `Peer`
/// write, resuming writers paused on this output) is the table's.
impl<C> Connection<C> {
    pub(super) fn mark_dirty(&mut self, slot: Slot, dirty: &mut Vec<Slot>) {
        if !self.flags.contains(Flags::DIRTY) {
            self.flags.insert(Flags::DIRTY);
            dirty.push(slot);
        }
    }

    /// Appends `data` to the output (dropped after `shutdown_write`).
    pub(super) fn write(&mut self, slot: Slot, data: &[u8], st: &mut LoopState) {
        if self.writable() {
            self.out.push(data, &mut st.pool);
            self.mark_dirty(slot, &mut st.dirty);
        }
    }

    /// Queues an owned buffer as it is (dropped after `shutdown_write`).
    pub(super) fn write_chunk(&mut self, slot: Slot, chunk: Chunk, st: &mut LoopState) {
        if self.writable() {
            self.out.push_chunk(chunk);
            self.mark_dirty(slot, &mut st.dirty);
        }
    }

    /// Writes several slices: with nothing queued, at once with one
    /// `writev` (no copy; the rest, if the socket takes less, is queued);
    /// otherwise queued after what is there.
    pub(super) fn write_vectored(&mut self, slot: Slot, bufs: &[IoSlice<'_>], st: &mut LoopState) {
        if !self.writable() {
            return;
        }
        let direct = self.out.pending() == 0
            && !self.flags.contains(Flags::CONNECTING)
            && !matches!(self.origin, Origin::Udp(_))
            && !is_tls(self);
        let mut skip = 0;
        if let (true, Some(fd)) = (direct, &self.fd) {
            if let Ok(n) = net::writev(fd.as_fd(), bufs) {
                skip = n;
                self.written += n as u64;
                if n > 0 {
                    self.idle.last_active = st.timers.now_ms();
                    st.bytes_written += n as u64;
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
            self.out.push(&b[skip..], &mut st.pool);
            skip = 0;
        }
        if self.out.pending() > 0 {
            self.mark_dirty(slot, &mut st.dirty);
        }
    }

    /// Queues a cross-thread write (as it is above `SMALL_WRITE`) with its
    /// receipt, completed once the bytes are written.
    fn write_with_receipt(
        &mut self,
        slot: Slot,
        data: Vec<u8>,
        receipt: PendingReceipt,
        st: &mut LoopState,
    ) {
        if data.len() <= SMALL_WRITE {
            // Small: a copy into the (pooled) buffer is cheaper than a
            // buffer of its own in the queue.
            self.out.push(&data, &mut st.pool);
        } else {
            self.out.push_chunk(Chunk::Vec(data));
        }
        let end = self.written + self.out.pending() as u64;
        if end <= self.written {
            // Nothing queued before it and nothing in it: done already.
            receipt.complete(Ok(()));
            return;
        }
        self.receipts.push((end, receipt));
        self.mark_dirty(slot, &mut st.dirty);
    }

    /// Writes queued output until done or the socket is full, completes
    /// receipts, recycles the buffer, and updates backpressure. Returns what
    /// the loop must do, and the writers paused on this output that may
    /// read again (the table resumes them: they are other connections).
    fn flush<P: Poller>(
        &mut self,
        slot: Slot,
        st: &mut LoopState,
        poller: &mut P,
    ) -> (Flushed, SmallVec<[ConnKey; 1]>) {
        let none = SmallVec::new();
        if self.flags.contains(Flags::CONNECTING)
            || matches!(self.origin, Origin::Udp(_))
            || self.fd.is_none()
        {
            return (Flushed::Pending, none);
        }
        let (wrote, backlog) = match write_out(self) {
            Ok(r) => r,
            Err(e) => return (Flushed::Close(Some(e)), none),
        };
        if wrote > 0 {
            self.idle.last_active = st.timers.now_ms();
            st.bytes_written += wrote as u64;
        }
        let is_open = opened(self);
        // Over TLS, a write is done once its records are on the socket.
        if !self.receipts.is_empty() && backlog == 0 {
            let written = self.written;
            let done = self
                .receipts
                .iter()
                .take_while(|(end, _)| *end <= written)
                .count();
            for (_, r) in self.receipts.drain(..done) {
                r.complete(Ok(()));
            }
        }
        let pending = self.out.pending() + backlog;
        let unsent = has_unsent(self);
        self.out.settle(&mut st.pool);
        if pending == 0 {
            self.flags.remove(Flags::PEER_FED);
            match self.phase {
                Phase::Closing => return (Flushed::Close(None), none),
                Phase::Detaching => return (Flushed::Detach, none),
                Phase::Open | Phase::Released => {}
            }
            if self.flags.contains(Flags::SHUT_WRITE) && !self.flags.contains(Flags::WRITE_DONE) {
                self.flags.insert(Flags::WRITE_DONE);
                if self.flags.contains(Flags::READ_EOF) {
                    // Both directions are done.
                    return (Flushed::Close(None), none);
                }
                let shut = self
                    .fd
                    .as_ref()
                    .map(|fd| net::shutdown(fd, net::Shutdown::Write));
                if let Some(Err(e)) = shut {
                    return (Flushed::Close(Some(e)), none);
                }
            }
        }
        let mut resumed = none;
        if pending <= st.low_water {
            if self.flags.contains(Flags::OWN_PAUSED) {
                self.flags.remove(Flags::OWN_PAUSED);
                st.again.push(self.key(slot));
            }
            resumed = std::mem::take(&mut self.waiters);
        } else if pending > st.high_water && !self.flags.contains(Flags::PEER_FED) {
            self.flags.insert(Flags::OWN_PAUSED);
        }
        if wrote > 0 && pending == 0 && is_open {
            return (Flushed::Drained, resumed);
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(slot, &mut st.failed, poller);
        } else if unsent {
            // The socket is full: its next writable edge flushes again.
            self.watch_writes(slot, &mut st.failed, poller);
        }
        (Flushed::Pending, resumed)
    }

    /// After a callback: backpressure for its own output (a peer's bytes
    /// pause their writer instead, `PEER_FED`).
    fn apply_backpressure(&mut self, high_water: usize) {
        if self.out.pending() > high_water && !self.flags.contains(Flags::PEER_FED) {
            self.flags.insert(Flags::OWN_PAUSED);
        }
    }

    /// Edge-triggered pollers: a write could not finish, so writability is
    /// watched from now on — one `epoll_ctl(MOD)` in the connection's life,
    /// paid only by connections that fill their socket buffer. One not yet
    /// registered gets both interests when it is. A failure queues the
    /// connection for closing.
    fn watch_writes<P: Poller>(
        &mut self,
        slot: Slot,
        failed: &mut Vec<(ConnKey, io::Error)>,
        poller: &mut P,
    ) {
        if !self.flags.contains(Flags::REGISTERED) || self.interest.is_writable() {
            return;
        }
        let Some(fd) = &self.fd else { return };
        let token = Token::Conn(self.key(slot)).encode();
        match poller.reregister(fd.as_raw_fd(), token, Interest::BOTH) {
            Ok(()) => self.interest = Interest::BOTH,
            Err(e) => failed.push((self.key(slot), e)),
        }
    }

    /// Level-triggered pollers only: keeps the registered interest in step
    /// with what the connection wants, so poll(2) never reports a readiness
    /// nobody will act on. A connection that waits for nothing (paused, or
    /// a `Peer` writer waiting on its peer) stays registered for errors
    /// only, so a reset is noticed even then. A failure queues the
    /// connection for closing.
    fn update_interest<P: Poller>(
        &mut self,
        slot: Slot,
        failed: &mut Vec<(ConnKey, io::Error)>,
        poller: &mut P,
    ) {
        let Some(fd) = &self.fd else { return };
        if self.flags.contains(Flags::HUNG_UP) {
            return; // out of the poller for good; resuming reads directly
        }
        let read = self.takes_input();
        let write = has_unsent(self) || self.flags.contains(Flags::CONNECTING);
        let want = interest(read, write);
        if want == self.interest {
            return;
        }
        let token = Token::Conn(self.key(slot)).encode();
        match poller.reregister(fd.as_raw_fd(), token, want) {
            Ok(()) => self.interest = want,
            Err(e) => failed.push((self.key(slot), e)),
        }
    }

    /// Marks the connection to close once its output is written. `false`
    /// if it is detaching (a detach is never turned into a close).
    fn close_later(&mut self, slot: Slot, dirty: &mut Vec<Slot>) -> bool {
        match self.phase {
            Phase::Detaching | Phase::Released => false,
            Phase::Closing => true,
            Phase::Open => {
                self.phase = Phase::Closing;
                self.mark_dirty(slot, dirty);
                true
            }
        }
    }
}

impl<C> ConnTable<C> {
    // ----- writing ----------------------------------------------------------

    /// Appends `data` to the output of the connection in `slot` (dropped
    /// after `shutdown_write`).
    pub(crate) fn write(&mut self, slot: Slot, data: &[u8]) {
        let (c, st) = self.with_state(slot);
        c.write(slot, data, st);
    }

    /// Queues an owned buffer as it is (dropped after `shutdown_write`).
    pub(crate) fn write_chunk(&mut self, slot: Slot, chunk: Chunk) {
        let (c, st) = self.with_state(slot);
        c.write_chunk(slot, chunk, st);
    }

    /// See [`Connection::write_vectored`].
    pub(crate) fn write_vectored(&mut self, slot: Slot, bufs: &[IoSlice<'_>]) {
        let (c, st) = self.with_state(slot);
        c.write_vectored(slot, bufs, st);
    }

    /// The context and the output of the connection in `slot`, borrowed apart.
    pub(crate) fn split(&mut self, slot: Slot) -> (&mut C, OutputRef<'_>) {
        let (c, st) = self.with_state(slot);
        let out = OutputRef {
            out: &mut c.out,
            flags: &mut c.flags,
            pool: &mut st.pool,
            dirty: &mut st.dirty,
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
        let (c, st) = self.with_state(slot);
        c.write_with_receipt(slot, data, receipt, st);
        true
    }

    /// `from` appends `data` to the output of `to` (a proxy's other half);
    /// `false` if `to` is gone or closing. When `to`'s queue passes the
    /// high-water mark, `from` stops being read until it drains.
    pub(crate) fn write_to(&mut self, from: ConnKey, to: ConnKey, data: &[u8]) -> bool {
        let Some(slot) = self.slot(to) else {
            return false;
        };
        let (p, st) = self.with_state(slot);
        if p.phase != Phase::Open || !p.writable() {
            return false;
        }
        p.write(slot, data, st);
        if to == from {
            return true;
        }
        p.flags.insert(Flags::PEER_FED);
        if p.out.pending() > st.high_water {
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
        c.close_later(Slot(key.index()), dirty)
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
        c.mark_dirty(Slot(key.index()), dirty);
        true
    }

    /// Pauses or resumes reading `slot` (the handler's own flow control,
    /// apart from backpressure). Resuming reads what arrived meanwhile.
    pub(crate) fn set_read_paused(&mut self, slot: Slot, paused: bool) {
        let (c, st) = self.with_state(slot);
        if paused {
            c.flags.insert(Flags::USER_PAUSED);
        } else if c.flags.contains(Flags::USER_PAUSED) {
            c.flags.remove(Flags::USER_PAUSED);
            st.again.push(c.key(slot));
        }
    }

    /// Detaches the connection in `slot` once its output is written (ignored for
    /// UDP slots and connections already closing).
    pub(crate) fn detach_later(&mut self, slot: Slot) {
        let (c, st) = self.with_state(slot);
        if c.phase == Phase::Open && !matches!(c.origin, Origin::Udp(_)) {
            c.phase = Phase::Detaching;
            c.mark_dirty(slot, &mut st.dirty);
        }
    }

    /// After a callback on `slot`: applies backpressure for its own output
    /// and, for level-triggered pollers, brings its interest up to date.
    pub(crate) fn after_callback<P: Poller>(&mut self, slot: Slot, poller: &mut P) {
        let (c, st) = self.with_state(slot);
        c.apply_backpressure(st.high_water);
        if !P::EDGE_TRIGGERED {
            c.update_interest(slot, &mut st.failed, poller);
        }
    }

    /// Moves the dirty list into `into` (which must be empty) for flushing.
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<Slot>) {
        std::mem::swap(&mut self.st.dirty, into);
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.st.dirty.is_empty()
    }

    /// Clears the dirty mark of `slot`; `true` if it was set (so a flush is
    /// due).
    pub(crate) fn clear_dirty(&mut self, slot: Slot) -> bool {
        let c = &mut self.slab[slot.0];
        let was = c.flags.contains(Flags::DIRTY);
        c.flags.remove(Flags::DIRTY);
        was
    }

    /// Flushes the connection in `slot` ([`Connection::flush`]) and resumes
    /// the writers its drained output paused.
    pub(crate) fn flush<P: Poller>(&mut self, slot: Slot, poller: &mut P) -> Flushed {
        if !self.holds(slot) {
            return Flushed::Pending;
        }
        let (c, st) = self.with_state(slot);
        let (flushed, resumed) = c.flush(slot, st, poller);
        for w in resumed {
            self.resume_waiter(w, poller);
        }
        flushed
    }

    /// A connection paused on another's output may read again.
    pub(super) fn resume_waiter<P: Poller>(&mut self, w: ConnKey, poller: &mut P) {
        let Some(slot) = self.slot(w) else { return };
        let (wc, st) = self.with_state(slot);
        if wc.flags.contains(Flags::PEER_PAUSED) {
            wc.flags.remove(Flags::PEER_PAUSED);
            st.again.push(w);
            if !P::EDGE_TRIGGERED {
                wc.update_interest(slot, &mut st.failed, poller);
            }
        }
    }
}
