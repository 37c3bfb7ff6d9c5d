//! One event loop: the poller, the user's handler, the connection table,
//! the wake channel and (on the accepting loop) the listeners, and the
//! dispatch between them.
//!
//! One iteration: run due timers (tick, idle and connect timeouts, accept
//! retry) → wait for events → read ready connections and call `on_data` →
//! write each connection's reply right after its `on_data` → drain the wake
//! channel → revisit connections that still had input → write whatever else
//! was queued (writes to other connections, from other threads).

mod accept;
mod channel;
mod open;
mod timers;
#[cfg(feature = "tls")]
mod tls;

use std::io;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use evio_sys::{net, Event, Events, Poller};

use crate::addr::Bound;
use crate::balance::Balancer;
use crate::conn::{Conn, LoopCtx};
use crate::control::ServerControl;
use crate::detached::DetachedStream;
use crate::handler::{Action, EventHandler, ServerInfo};
use crate::key::{ConnKey, Token};
use crate::mailbox::Msg;
use crate::metrics::Counters;
use crate::shared::Shared;
use crate::table::{ConnTable, Flushed, Quiescent, Slot};
use crate::warn::RateLimited;

/// Reads of one connection per event before others get a turn.
const MAX_READS_PER_EVENT: usize = 16;
/// Wake-channel messages handled per iteration before I/O gets a turn.
const MAX_MESSAGES_PER_ITERATION: usize = 4096;
/// Size of the loop's shared read buffer (and the largest UDP datagram).
const READ_BUFFER: usize = 64 * 1024;

/// Builds the handler's view of the connection in `slot`.
macro_rules! view {
    ($self:ident, $slot:expr) => {
        &mut Conn::new(&mut $self.table, $slot, &$self.ctx)
    };
}
use view;

pub(crate) struct EventLoop<P: Poller, H: EventHandler> {
    poller: P,
    handler: H,
    table: ConnTable<H::Context>,
    ctx: LoopCtx<H::Context>,
    rx: Receiver<Msg>,
    accept: accept::Acceptor,
    buf: Box<[u8]>,
    /// Reused lists (no allocation per iteration).
    again: Vec<ConnKey>,
    /// Scratch for the woken list (kept for its capacity).
    woken: Vec<ConnKey>,
    dirty: Vec<Slot>,
    /// `on_tick` (loop 0).
    next_tick: Option<Instant>,
    /// `on_loop_tick` (every loop).
    next_loop_tick: Option<Instant>,
    /// Per-connection failures (registration, TLS setup), logged at most
    /// once a second.
    warned: RateLimited,
    /// What this loop did, published once per iteration.
    counters: Counters,
    /// Plaintext out of TLS sessions, for `on_data` (allocated with the
    /// first TLS connection).
    #[cfg(feature = "tls")]
    plain: Option<Box<[u8]>>,
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
        let udp_sockets = accept::udp_sockets(&listeners, shared.addrs.len());
        EventLoop {
            poller,
            handler,
            table: ConnTable::new(&shared.config),
            accept: accept::Acceptor::new(
                listeners,
                Balancer::new(shared.config.load_balance, index),
            ),
            ctx: LoopCtx {
                index,
                me: shared.loops[index].clone(),
                control: ServerControl::new(shared.clone()),
                shared,
                udp_sockets,
            },
            rx,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            again: Vec::new(),
            woken: Vec::new(),
            dirty: Vec::new(),
            next_tick: None,
            next_loop_tick: None,
            warned: RateLimited::default(),
            counters: Counters::default(),
            #[cfg(feature = "tls")]
            plain: None,
        }
    }

    /// Runs until shutdown; every connection still open then gets
    /// `on_closed`.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let index = self.ctx.index;
        tracing::debug!(index, "evio: loop started");
        let mut events = Events::with_capacity(1024);
        let result = self.start().and_then(|()| self.serve(&mut events));
        if let Err(e) = &result {
            tracing::error!(index, error = %e, "evio: loop failed");
            self.ctx.shared.begin_shutdown();
        }
        self.close_all();
        tracing::debug!(index, "evio: loop stopped");
        result
    }

    fn start(&mut self) -> io::Result<()> {
        self.start_listeners()?;
        self.next_loop_tick = Some(Instant::now());
        if self.ctx.index != 0 {
            return Ok(());
        }
        let info = ServerInfo {
            addrs: self.ctx.shared.addrs.clone(),
            num_loops: self.ctx.shared.loops.len(),
            control: self.ctx.control.clone(),
        };
        if self.handler.on_serving(&info) == Action::Shutdown {
            self.ctx.shared.begin_shutdown();
        }
        self.next_tick = Some(Instant::now());
        Ok(())
    }

    fn serve(&mut self, events: &mut Events) -> io::Result<()> {
        while !self.ctx.shared.is_shutdown() {
            self.iteration(events, None)?;
        }
        if let Some(deadline) = self.ctx.shared.drain_deadline() {
            self.drain(events, deadline)?;
        }
        Ok(())
    }

    fn iteration(&mut self, events: &mut Events, deadline: Option<Instant>) -> io::Result<()> {
        self.counters.iterations += 1;
        // One clock read for the timers and the wait's timeout (unless a
        // timer's callback ran).
        let now = self.run_timers(Instant::now());
        // What timer callbacks wrote goes out before the loop sleeps.
        self.flush_dirty();
        let mut timeout = self.timeout(now);
        if let Some(d) = deadline {
            // Draining: once a timer closed the last connection there is
            // nothing to wait for (the drain ends after this iteration).
            let left = if self.table.all_released() {
                Duration::ZERO
            } else {
                d.saturating_duration_since(Instant::now())
            };
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        self.poller.wait(events, timeout)?;
        self.table.refresh_clock();
        for ev in events.iter() {
            self.dispatch(*ev);
        }
        if events.is_woken() {
            self.counters.wakes += 1;
            self.drain_channel();
        }
        self.read_again();
        self.run_woken();
        self.flush_dirty();
        // Every callback of this iteration has returned and no slot is
        // held: the one point where closed connections' slots are freed.
        self.table.reap(&Quiescent::between_iterations());
        self.publish_metrics();
        Ok(())
    }

    /// Publishes the counters for `ServerControl::metrics` (a relaxed store
    /// each, once per iteration: nothing on the hot path).
    fn publish_metrics(&self) {
        self.ctx
            .me
            .publish(&self.counters, self.table.bytes_written());
    }

    /// Graceful shutdown (a drain): stop accepting, tell the handler of
    /// each open connection (`on_drain`: by default it closes once its
    /// output is written), and serve on until every connection has closed
    /// or the deadline passes.
    fn drain(&mut self, events: &mut Events, deadline: Instant) -> io::Result<()> {
        self.stop_listeners();
        for key in self.table.begin_drain() {
            // An earlier `on_drain` may have closed this one.
            let Some(slot) = self
                .table
                .slot(key)
                .filter(|_| self.table.takes_events(key))
            else {
                continue;
            };
            let action = self.handler.on_drain(view!(self, slot));
            self.after(slot, action);
        }
        self.flush_dirty();
        // What closed just now is released, not freed: free it, or the
        // table would not look empty and the loop would sleep until the
        // deadline with nothing left to drain.
        self.table.reap(&Quiescent::between_iterations());
        // The deadline is read again each time: a hard stop during the
        // drain moves it to now.
        loop {
            let deadline = self.ctx.shared.drain_deadline().unwrap_or(deadline);
            if self.table.is_empty() || Instant::now() >= deadline {
                break;
            }
            self.iteration(events, Some(deadline))?;
        }
        Ok(())
    }

    fn dispatch(&mut self, ev: Event) {
        let key = match Token::decode(ev.token()) {
            Token::Listener(i) => return self.on_listener(i),
            Token::Conn(key) => key,
        };
        let Some(slot) = self.table.slot(key) else {
            return;
        };
        let broken = ev.is_error() || ev.is_hangup();
        if self.table.conn(slot).is_connecting() {
            // The peer may have answered and shut down before this event
            // (edge-triggered pollers report that FIN once, here).
            if ev.is_read_closed() {
                self.table.conn_mut(slot).note_peer_eof();
            }
            if ev.is_writable() || broken {
                self.finish_connect(slot);
            }
            return;
        }
        if ev.is_read_closed() {
            self.table.conn_mut(slot).note_peer_eof();
        }
        if ev.is_writable() || broken {
            self.flush(slot);
        }
        if !self.table.holds(slot) {
            return;
        }
        if broken && !self.table.conn(slot).reads_now() {
            // Nothing reads it now (paused, or past its EOF), so no read
            // will report this: a reset must still end the connection.
            if let Some(e) = self.table.conn(slot).socket_error() {
                self.close(slot, Some(e));
                return;
            }
            if !P::EDGE_TRIGGERED && ev.is_hangup() {
                self.table.conn_mut(slot).park_hung_up(&mut self.poller);
            }
        }
        if ev.is_readable() || broken {
            self.read(slot, ev.is_read_closed() || broken);
        }
    }

    // ----- reading --------------------------------------------------------

    /// Reads until the socket is drained (a short read), the fairness cap, or
    /// the connection stops reading. `to_eof`: the peer closed its side, so
    /// read on past short reads to reach EOF now.
    fn read(&mut self, slot: Slot, to_eof: bool) {
        // A FIN reported while reading was paused or cut short by the
        // fairness cap is not reported again: remember it, or a half-closed
        // peer would wait for our close forever.
        let to_eof = to_eof || self.table.conn(slot).peer_eof();
        #[cfg(feature = "tls")]
        if self.table.conn(slot).is_tls() && !self.tls_resume(slot) {
            return;
        }
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(fd) = self.table.conn(slot).read_fd() else {
                return;
            };
            match net::read(fd, &mut self.buf) {
                Ok(0) => {
                    self.at_eof(slot);
                    return;
                }
                Ok(n) => {
                    self.counters.bytes_read += n as u64;
                    self.table.touch(slot);
                    if !self.deliver(slot, n) {
                        return;
                    }
                    if n < self.buf.len() && !to_eof {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(slot, Some(e));
                    return;
                }
            }
        }
        self.read_more_later(slot);
    }

    /// Gives `self.buf[..n]`, just read, to the handler (through the TLS
    /// session on a TLS connection). `false` when reading should stop.
    fn deliver(&mut self, slot: Slot, n: usize) -> bool {
        #[cfg(feature = "tls")]
        if self.table.conn(slot).is_tls() {
            return self.tls_deliver(slot, n);
        }
        let action = self.handler.on_data(view!(self, slot), &self.buf[..n]);
        self.after(slot, action);
        // Write the reply now, while the connection (and its kernel
        // socket) is hot in cache, not after the batch.
        if self.table.clear_dirty(slot) {
            self.handler.on_pre_write();
            self.flush(slot);
        }
        true
    }

    /// The socket reached EOF.
    fn at_eof(&mut self, slot: Slot) {
        #[cfg(feature = "tls")]
        if self.table.conn(slot).is_tls() {
            if !self.table.conn(slot).reads_now() {
                // Read only to finish the handshake of a closing
                // connection (`takes_input`): it never will now.
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: the peer closed the connection during the handshake",
                );
                self.close(slot, Some(e));
                return;
            }
            // What came before the EOF is delivered, then a clean end
            // (close_notify came) or a truncation.
            self.table.conn_mut(slot).tls().feed_eof();
            self.tls_deliver(slot, 0);
            return;
        }
        self.peer_finished(slot);
    }

    /// The peer finished sending (EOF, or TLS `close_notify`): `on_eof`,
    /// then close if our side is done too.
    fn peer_finished(&mut self, slot: Slot) {
        let write_done = self.table.conn_mut(slot).note_read_eof();
        let action = self.handler.on_eof(view!(self, slot));
        if write_done && action != Action::Shutdown {
            // Our side was already shut down: both are done.
            self.close(slot, None);
        } else {
            self.after(slot, action);
        }
    }

    /// The fairness cap cut a read short: come back next iteration where
    /// no event will say so (edge-triggered pollers, a parked socket).
    fn read_more_later(&mut self, slot: Slot) {
        if self.table.holds(slot) && (P::EDGE_TRIGGERED || self.table.conn(slot).is_hung_up()) {
            let key = self.table.key(slot);
            self.table.read_again_later(key);
        }
    }

    fn read_again(&mut self) {
        if !self.table.has_again() {
            return;
        }
        let mut list = std::mem::take(&mut self.again);
        self.table.take_again(&mut list);
        for key in list.drain(..) {
            if let Some(slot) = self.table.slot(key) {
                self.read(slot, false);
            }
        }
        self.again = list;
    }

    /// Runs `on_wake` for the connections another one woke (`Peer::wake`)
    /// this iteration; those they wake in turn run in the next one.
    fn run_woken(&mut self) {
        if !self.table.has_woken() {
            return;
        }
        let mut list = std::mem::take(&mut self.woken);
        self.table.take_woken(&mut list);
        for key in list.drain(..) {
            if let Some(slot) = self.table.slot(key) {
                if self.table.takes_events(key) {
                    let action = self.handler.on_wake(view!(self, slot));
                    self.after(slot, action);
                }
            }
        }
        self.woken = list;
    }

    /// Applies a callback's action, registers connections it dialed, and
    /// updates backpressure.
    fn after(&mut self, slot: Slot, action: Action) {
        self.register_dialed();
        if !self.table.holds(slot) {
            return;
        }
        match action {
            Action::None => {}
            Action::Close => {
                let key = self.table.key(slot);
                self.table.close_later(key);
            }
            Action::Detach => self.table.detach_later(slot),
            Action::Shutdown => self.ctx.shared.begin_shutdown(),
        }
        self.table.after_callback(slot, &mut self.poller);
        self.close_failed();
    }

    // ----- writing --------------------------------------------------------

    fn flush_dirty(&mut self) {
        // on_drained may queue more output; keep going until none is left.
        while self.table.has_dirty() {
            let mut list = std::mem::take(&mut self.dirty);
            self.table.take_dirty(&mut list);
            for &slot in &list {
                // Entries already written right after their on_data have
                // their dirty mark cleared.
                if self.table.clear_dirty(slot) {
                    self.handler.on_pre_write();
                    self.flush(slot);
                }
            }
            list.clear();
            self.dirty = list;
        }
        self.close_failed();
    }

    /// Flushes one connection and acts on what the flush found.
    fn flush(&mut self, slot: Slot) {
        match self.table.flush(slot, &mut self.poller) {
            Flushed::Pending => {}
            Flushed::Close(err) => self.close(slot, err),
            Flushed::Detach => self.detach(slot),
            Flushed::Drained => {
                let action = self.handler.on_drained(view!(self, slot));
                self.after(slot, action);
            }
        }
    }

    // ----- closing --------------------------------------------------------

    /// Closes the socket, then fires `on_closed` (also for a dial that never
    /// connected: the error is its result) with the context still readable,
    /// then frees the slot.
    fn close(&mut self, slot: Slot, err: Option<io::Error>) {
        if !self.table.begin_close(slot, err.as_ref(), &mut self.poller) {
            return;
        }
        self.ctx.me.count_closed();
        self.counters.closed += 1;
        let action = self.handler.on_closed(view!(self, slot), err);
        self.table.release(slot);
        self.register_dialed();
        if action == Action::Shutdown {
            self.ctx.shared.begin_shutdown();
        }
    }

    /// Closes connections whose poller registration failed.
    fn close_failed(&mut self) {
        while let Some((key, e)) = self.table.take_failed() {
            if let Some(slot) = self.table.slot(key) {
                self.close(slot, Some(e));
            }
        }
    }

    fn detach(&mut self, slot: Slot) {
        let Some(handover) = self.table.take_for_detach(slot, &mut self.poller) else {
            return;
        };
        self.ctx.me.count_closed();
        self.counters.closed += 1;
        let action = match DetachedStream::new(handover) {
            Ok(stream) => self.handler.on_detached(view!(self, slot), stream),
            Err(e) => self.handler.on_closed(view!(self, slot), Some(e)),
        };
        self.table.release(slot);
        if action == Action::Shutdown {
            self.ctx.shared.begin_shutdown();
        }
    }

    /// Shutdown: one last non-blocking attempt to deliver pending output,
    /// then every connection is closed with `on_closed(None)`.
    fn close_all(&mut self) {
        self.stop_listeners();
        for slot in self.table.slots() {
            self.table.write_remaining(slot);
            self.close(slot, None);
        }
        self.table.reap(&Quiescent::between_iterations());
        self.publish_metrics();
        // Messages that arrived too late: fail their receipts, drop fds.
        // (Bounded, as in `drain_channel`; whatever arrives later is
        // dropped with the channel, and a dropped write fails its receipt.)
        for _ in 0..self.rx.len() {
            let Ok(msg) = self.rx.try_recv() else { break };
            if let Msg::Accepted(_) = msg {
                self.ctx.me.count_closed();
            }
        }
    }
}
