//! The rest of a connection's life: dialing, closing and detaching,
//! timers, and the reply slot of a UDP socket.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use evio_sys::{net, Poller};

use super::connection::{Flags, Phase, Slot};
use super::timers::TimerKind;
use super::ConnTable;
use crate::config::duration_ms;
use crate::detached::Handover;
use crate::key::ConnKey;
use crate::receipt::WriteError;
use crate::Addr;

impl<C> ConnTable<C> {
    // ----- dialing ----------------------------------------------------------

    /// A dial's socket became writable (or failed): checks the connect's
    /// result; on success the connection is open and output queued while
    /// connecting (or a close asked for) is due now.
    pub(crate) fn finish_connect(&mut self, slot: Slot) -> io::Result<()> {
        let c = &mut self.slab[slot.0];
        match c.fd.as_ref().map(net::take_error) {
            Some(Ok(None)) => {}
            Some(Ok(Some(e))) | Some(Err(e)) => return Err(e),
            None => return Err(io::ErrorKind::NotConnected.into()),
        }
        c.flags.remove(Flags::CONNECTING);
        // The connect used up the writable edge: flush now what waited
        // (output, a close, a shutdown of the write side).
        if c.out.pending() > 0 || c.phase != Phase::Open || c.flags.contains(Flags::SHUT_WRITE) {
            c.mark_dirty(slot, &mut self.st.dirty);
        }
        Ok(())
    }

    // ----- closing ----------------------------------------------------------

    /// First half of a close: the socket leaves the poller and closes
    /// (one `close` on epoll and kqueue, where that ends the registration),
    /// pending receipts fail with `err` (or `ConnectionAborted`), writers
    /// paused on this connection resume. The slot stays for `on_closed`;
    /// [`release`](Self::release) it afterwards. `false` if it is gone.
    pub(crate) fn begin_close<P: Poller>(
        &mut self,
        slot: Slot,
        err: Option<&io::Error>,
        poller: &mut P,
    ) -> bool {
        let Some(c) = self.slab.get_mut(slot.0).filter(|c| c.held()) else {
            return false;
        };
        if let Some(fd) = c.fd.take() {
            if !c.flags.contains(Flags::HUNG_UP) {
                // Closing drops the registration where the kernel does
                // that itself (epoll, kqueue): no `epoll_ctl(DEL)`.
                let _ = poller.close(fd);
            }
        }
        let why = err.map_or(
            WriteError::from_kind(io::ErrorKind::ConnectionAborted),
            WriteError::from_io,
        );
        for (_, r) in c.receipts.drain(..) {
            r.complete(Err(why));
        }
        c.phase = Phase::Closing;
        match err {
            Some(e) => tracing::debug!(remote = %c.remote, error = %e, "evio: closed with error"),
            None => tracing::debug!(remote = %c.remote, "evio: closed"),
        }
        for w in std::mem::take(&mut c.waiters) {
            self.resume_waiter(w, poller);
        }
        true
    }

    /// Takes the socket of a detaching connection out of the poller and
    /// the table (the slot stays for `on_detached`). Returns it and whether
    /// it is a unix socket.
    pub(crate) fn take_for_detach<P: Poller>(
        &mut self,
        slot: Slot,
        poller: &mut P,
    ) -> Option<Handover> {
        let c = self.slab.get_mut(slot.0).filter(|c| c.held())?;
        let fd = c.fd.take()?;
        if !c.flags.contains(Flags::HUNG_UP) {
            let _ = poller.deregister(fd.as_raw_fd());
        }
        Some(Handover {
            fd,
            unix: c.flags.contains(Flags::UNIX),
            #[cfg(feature = "tls")]
            tls: c.tls.take(),
        })
    }

    /// Shutdown: one last non-blocking attempt to deliver pending output.
    /// (Over TLS: what fits, then `close_notify`.)
    pub(crate) fn write_remaining(&mut self, slot: Slot) {
        if let Some(c) = self.slab.get_mut(slot.0).filter(|c| c.held()) {
            if !c.flags.contains(Flags::CONNECTING) {
                c.phase = Phase::Closing;
                let _ = super::flush::write_out(c);
            }
        }
    }

    /// A drain begins: the connections the handler is told of now
    /// (`on_drain`): open stream connections it has seen. Dials still
    /// connecting and TLS sessions still in their handshake are told when
    /// they open.
    pub(crate) fn begin_drain(&self) -> Vec<ConnKey> {
        let mut told = Vec::new();
        for slot in self.slots() {
            let c = &self.slab[slot.0];
            if c.takes_events() && !c.flags.contains(Flags::CONNECTING) && !c.handshaking() {
                told.push(self.key(slot));
            }
        }
        told
    }

    // ----- timers -----------------------------------------------------------

    /// Sets the idle timeout of `slot` (`None`: none).
    pub(crate) fn set_idle_timeout(&mut self, slot: Slot, timeout: Option<Duration>) {
        let key = self.key(slot);
        let c = &mut self.slab[slot.0];
        c.idle.ms = duration_ms(timeout);
        if c.idle.ms == 0 {
            return;
        }
        let now = self.st.timers.refresh();
        c.idle.last_active = now;
        let due = now + u64::from(c.idle.ms);
        // A shorter timeout than the scheduled one (e.g. `Options` under a
        // longer server default) needs an earlier timer; the later one lapses.
        if c.idle.due == 0 || due < c.idle.due {
            c.idle.due = due;
            self.st.timers.push(due, TimerKind::Idle, key);
        }
    }

    /// Sets (or with `None` cancels) the handler's timer of `slot`: it
    /// fires once, `delay` from now. A later call replaces it.
    pub(crate) fn set_timer(&mut self, slot: Slot, delay: Option<Duration>) {
        let key = self.key(slot);
        let c = &mut self.slab[slot.0];
        let Some(delay) = delay else {
            c.idle.user_due = 0;
            return;
        };
        let now = self.st.timers.refresh();
        // At least 1 ms, so 0 stays "none".
        let due = now + (delay.as_millis().min(u64::MAX as u128 / 2) as u64).max(1);
        c.idle.user_due = due;
        self.st.timers.push(due, TimerKind::User, key);
    }

    /// Reclaimable connections to close, longest idle first — as nginx
    /// does, an eighth of them but at least 1 and at most `max` — each
    /// marked between requests, open, with nothing queued and nothing
    /// unread waiting in the socket (checked with a peek, so no byte a
    /// client sent is lost).
    pub(crate) fn reclaim_candidates(&self, max: usize) -> Vec<Slot> {
        let mut idle: Vec<(u64, usize)> = self
            .slab
            .iter()
            .filter(|(_, c)| {
                c.flags.contains(Flags::RECLAIMABLE)
                    && c.phase == Phase::Open
                    && c.out.pending() == 0
                    && !c.flags.contains(Flags::CONNECTING)
            })
            .map(|(i, c)| (c.idle.last_active, i))
            .collect();
        idle.sort_unstable();
        let max = (idle.len() / 8).clamp(1, max.max(1));
        idle.into_iter()
            .map(|(_, i)| i)
            .filter(|&i| {
                self.slab[i]
                    .fd
                    .as_ref()
                    .is_some_and(|fd| matches!(net::has_input(fd.as_fd()), Ok(false)))
            })
            .take(max)
            .map(Slot)
            .collect()
    }

    /// Drops timer entries that can no longer fire: their connection is
    /// gone, or they were superseded.
    pub(super) fn compact_timers(&mut self) {
        let slab = &self.slab;
        self.st.timers.retain(|due, kind, key| {
            let Some(c) = slab
                .get(key.index())
                .filter(|c| c.gen == key.gen() && c.held())
            else {
                return false;
            };
            match kind {
                TimerKind::Idle => due == c.idle.due,
                TimerKind::User => due == c.idle.user_due,
                TimerKind::Connect => c.flags.contains(Flags::CONNECTING),
                #[cfg(feature = "tls")]
                TimerKind::Handshake => c.tls.as_deref().is_some_and(|t| !t.is_open()),
                #[cfg(not(feature = "tls"))]
                TimerKind::Handshake => false,
            }
        });
    }

    /// Gives a new connection the server's default idle timeout, if any.
    pub(crate) fn apply_default_idle(&mut self, slot: Slot) {
        if self.idle_default_ms > 0 {
            let d = Duration::from_millis(u64::from(self.idle_default_ms));
            self.set_idle_timeout(slot, Some(d));
        }
    }

    /// Refreshes the loop clock after a wait, if anything uses it.
    pub(crate) fn refresh_clock(&mut self) {
        if !self.st.timers.is_empty() || self.idle_default_ms > 0 || self.track_activity {
            self.st.timers.refresh();
        }
    }

    /// When the earliest timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.st.timers.next_deadline()
    }

    /// Sets the loop clock to `now`, which the loop read before running
    /// its timers (one clock read for the timers and the wait's timeout).
    pub(crate) fn set_clock(&mut self, now: Instant) {
        self.st.timers.set_now(now);
    }

    /// The next connection whose timer expired by the clock
    /// [`set_clock`](Self::set_clock) set (stale entries lapse, idle timers
    /// of active connections are re-armed).
    pub(crate) fn pop_expired(&mut self) -> Option<(Slot, TimerKind)> {
        if self.st.timers.is_empty() {
            return None;
        }
        let now = self.st.timers.now_ms();
        while let Some((due, kind, key)) = self.st.timers.pop_due(now) {
            let Some(c) = self
                .slab
                .get_mut(key.index())
                .filter(|c| c.gen == key.gen() && c.held())
            else {
                continue;
            };
            match kind {
                TimerKind::Connect => {
                    if c.flags.contains(Flags::CONNECTING) {
                        return Some((Slot(key.index()), kind));
                    }
                }
                #[cfg(feature = "tls")]
                TimerKind::Handshake => {
                    if c.tls.as_deref().is_some_and(|t| !t.is_open()) {
                        return Some((Slot(key.index()), kind));
                    }
                }
                #[cfg(not(feature = "tls"))]
                TimerKind::Handshake => {}
                TimerKind::User => {
                    if due == c.idle.user_due {
                        c.idle.user_due = 0;
                        return Some((Slot(key.index()), kind));
                    }
                }
                TimerKind::Idle => {
                    if due != c.idle.due {
                        continue; // superseded by an earlier timer
                    }
                    if c.idle.ms == 0 {
                        c.idle.due = 0;
                        continue;
                    }
                    let expires = c.idle.last_active + u64::from(c.idle.ms);
                    if expires <= now {
                        return Some((Slot(key.index()), kind));
                    }
                    c.idle.due = expires;
                    self.st.timers.push(expires, TimerKind::Idle, key);
                }
            }
        }
        None
    }

    // ----- UDP --------------------------------------------------------------

    /// Prepares the UDP slot for one datagram from `from`.
    pub(crate) fn udp_begin(&mut self, slot: Slot, from: SocketAddr)
    where
        C: Default,
    {
        let c = &mut self.slab[slot.0];
        c.remote = Addr::Inet(from);
        c.ctx = C::default();
        c.out.clear();
    }

    /// The reply the handler wrote for the datagram, if any.
    pub(crate) fn udp_reply(&mut self, slot: Slot) -> Option<&[u8]> {
        let c = &mut self.slab[slot.0];
        c.flags.remove(Flags::DIRTY);
        (c.out.pending() > 0).then(|| c.out.first())
    }
}
