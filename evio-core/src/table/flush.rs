//! Writing: queueing output (own, `write_to`, with receipts), marking a
//! close or detach, flushing to the socket, backpressure, and keeping a
//! level-triggered poller's interest in step.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use evio_sys::{net, Interest, Poller};

use super::state::{ConnState, Flags, Origin, Phase};
use super::{ConnTable, Flushed};
use crate::key::{ConnKey, Token};
use crate::receipt::{PendingReceipt, WriteError};

/// Interest from two booleans (never empty: read interest is the fallback).
fn interest(read: bool, write: bool) -> Interest {
    match (read, write) {
        (_, false) => Interest::READABLE,
        (true, true) => Interest::BOTH,
        (false, true) => Interest::WRITABLE,
    }
}

impl<C> ConnTable<C> {
    // ----- writing ----------------------------------------------------------

    pub(super) fn mark_dirty(dirty: &mut Vec<usize>, index: usize, c: &mut ConnState<C>) {
        if !c.flags.has(Flags::DIRTY) {
            c.flags.set(Flags::DIRTY);
            dirty.push(index);
        }
    }

    /// Appends `data` to the output of connection `index`.
    pub(crate) fn write(&mut self, index: usize, data: &[u8]) {
        let c = &mut self.slab[index];
        c.out.push(data, &mut self.pool);
        Self::mark_dirty(&mut self.dirty, index, c);
    }

    /// Appends `data` for an open connection and completes `receipt` once
    /// it is written; fails the receipt if the connection is not open.
    pub(crate) fn write_with_receipt(
        &mut self,
        key: ConnKey,
        data: &[u8],
        receipt: PendingReceipt,
    ) -> bool {
        if !self.takes_events(key) {
            receipt.complete(Err(WriteError::NOT_CONNECTED));
            return false;
        }
        let index = key.index();
        let c = &mut self.slab[index];
        c.out.push(data, &mut self.pool);
        let end = c.written + c.out.pending() as u64;
        c.receipts.push((end, receipt));
        Self::mark_dirty(&mut self.dirty, index, c);
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
        if p.phase != Phase::Open {
            return false;
        }
        p.out.push(data, &mut self.pool);
        Self::mark_dirty(&mut self.dirty, to.index(), p);
        if to == from {
            return true;
        }
        p.flags.set(Flags::PEER_FED);
        if p.out.pending() > high {
            // PEER_PAUSED (not OWN_PAUSED, which only our own flush clears):
            // the peer's flush resumes every writer it paused.
            if !p.waiters.contains(&from) {
                p.waiters.push(from);
            }
            if let Some(me) = self.get_mut(from) {
                me.flags.set(Flags::PEER_PAUSED);
            }
        }
        true
    }

    /// Closes `key` once its output is written. `false` if it is gone or
    /// already detaching (a detach is never turned into a close).
    pub(crate) fn close_later(&mut self, key: ConnKey) -> bool {
        let Some(c) = self
            .slab
            .get_mut(key.index())
            .filter(|c| c.gen == key.gen())
        else {
            return false;
        };
        match c.phase {
            Phase::Detaching => false,
            Phase::Closing => true,
            Phase::Open => {
                c.phase = Phase::Closing;
                Self::mark_dirty(&mut self.dirty, key.index(), c);
                true
            }
        }
    }

    /// Detaches connection `index` once its output is written (ignored for
    /// UDP slots and connections already closing).
    pub(crate) fn detach_later(&mut self, index: usize) {
        let c = &mut self.slab[index];
        if c.phase == Phase::Open && !matches!(c.origin, Origin::Udp(_)) {
            c.phase = Phase::Detaching;
            Self::mark_dirty(&mut self.dirty, index, c);
        }
    }

    /// After a callback on `index`: applies backpressure for its own output
    /// and, for level-triggered pollers, brings its interest up to date.
    pub(crate) fn after_callback<P: Poller>(&mut self, index: usize, poller: &mut P) {
        let Some(c) = self.slab.get_mut(index) else {
            return;
        };
        if c.out.pending() > self.high_water && !c.flags.has(Flags::PEER_FED) {
            c.flags.set(Flags::OWN_PAUSED);
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(index, poller);
        }
    }

    /// Moves the dirty list into `into` (which must be empty) for flushing.
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<usize>) {
        std::mem::swap(&mut self.dirty, into);
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Clears the dirty mark of `index`; `true` if it was set (so a flush is
    /// due).
    pub(crate) fn clear_dirty(&mut self, index: usize) -> bool {
        match self.slab.get_mut(index) {
            Some(c) if c.flags.has(Flags::DIRTY) => {
                c.flags.clear(Flags::DIRTY);
                true
            }
            _ => false,
        }
    }

    /// Writes queued output until done or the socket is full, completes
    /// receipts, recycles the buffer, and updates backpressure.
    pub(crate) fn flush<P: Poller>(&mut self, index: usize, poller: &mut P) -> Flushed {
        let Some(c) = self.slab.get_mut(index) else {
            return Flushed::Pending;
        };
        if c.flags.has(Flags::CONNECTING) || matches!(c.origin, Origin::Udp(_)) {
            return Flushed::Pending;
        }
        let Some(fd) = &c.fd else {
            return Flushed::Pending;
        };
        let mut wrote = 0;
        while c.out.pending() > 0 {
            match net::write(fd.as_fd(), c.out.unwritten()) {
                Ok(n) => {
                    c.out.consume(n);
                    wrote += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Flushed::Close(Some(e)),
            }
        }
        if wrote > 0 {
            if c.idle.ms != 0 {
                c.idle.last_active = self.timers.now_ms();
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
        c.out.settle(&mut self.pool);
        if pending == 0 {
            c.flags.clear(Flags::PEER_FED);
            match c.phase {
                Phase::Closing => return Flushed::Close(None),
                Phase::Detaching => return Flushed::Detach,
                Phase::Open => {}
            }
        }
        if pending <= self.low_water {
            if c.flags.has(Flags::OWN_PAUSED) {
                c.flags.clear(Flags::OWN_PAUSED);
                self.again.push(c.key(index));
            }
            for w in std::mem::take(&mut c.waiters) {
                self.resume_waiter(w, poller);
            }
        } else if pending > self.high_water && !c.flags.has(Flags::PEER_FED) {
            c.flags.set(Flags::OWN_PAUSED);
        }
        if wrote > 0 && pending == 0 {
            return Flushed::Drained;
        }
        if !P::EDGE_TRIGGERED {
            self.update_interest(index, poller);
        }
        Flushed::Pending
    }

    /// A connection paused on another's output may read again.
    pub(super) fn resume_waiter<P: Poller>(&mut self, w: ConnKey, poller: &mut P) {
        let Some(wc) = self.get_mut(w) else { return };
        if wc.flags.has(Flags::PEER_PAUSED) {
            wc.flags.clear(Flags::PEER_PAUSED);
            self.again.push(w);
            if !P::EDGE_TRIGGERED {
                self.update_interest(w.index(), poller);
            }
        }
    }

    /// Level-triggered pollers only: keeps the registered interest in step
    /// with what the connection wants, so poll(2) never reports a readiness
    /// nobody will act on. A failure queues the connection for closing.
    fn update_interest<P: Poller>(&mut self, index: usize, poller: &mut P) {
        let Some(c) = self.slab.get_mut(index) else {
            return;
        };
        let Some(fd) = &c.fd else { return };
        let fd = fd.as_raw_fd();
        let read = c.reading();
        let write = c.out.pending() > 0 || c.flags.has(Flags::CONNECTING);
        if !read && !write {
            // Waiting for nothing (e.g. a `write_to` sender paused on its
            // peer's queue): leave the poller, or the loop would spin on the
            // input it is not reading. Resuming comes back here.
            if !c.flags.has(Flags::PARKED) {
                let _ = poller.deregister(fd);
                c.flags.set(Flags::PARKED);
            }
            return;
        }
        let want = interest(read, write);
        let token = Token::Conn(c.key(index)).encode();
        let result = if c.flags.has(Flags::PARKED) {
            c.flags.clear(Flags::PARKED);
            poller.register(fd, token, want)
        } else if want != c.interest {
            poller.reregister(fd, token, want)
        } else {
            return;
        };
        match result {
            Ok(()) => c.interest = want,
            Err(e) => self.failed.push((c.key(index), e)),
        }
    }
}
