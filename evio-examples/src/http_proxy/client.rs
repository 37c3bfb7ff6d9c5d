//! The client side: reading request heads and bodies, choosing an upstream
//! connection (pooled or new), retrying, and answering what the upstream
//! side reports ([`Event`]).

use std::mem;
use std::time::Instant;

use std::time::Duration;

use evio_core::{Action, Conn, ConnId};

use super::framing::{Body, Kind};
use super::message::{parse_request, Origin, Refusal, ToClient};
use super::response::{
    BAD_GATEWAY, CONTINUE, GATEWAY_TIMEOUT, REQUEST_TIMEOUT, SERVICE_UNAVAILABLE,
};
use super::upstreams::fnv1a;
use super::{
    as_upstream, log_request, me_client, send, Client, ClientPhase, HttpProxy, Side, UpstreamConn,
    UpstreamPhase, REPLAY_LIMIT,
};
use crate::drain;

/// How long a client connection closed after an early response may go on
/// sending before it is closed anyway (nginx's `lingering_time` is 30 s,
/// between reads 5 s).
pub(super) const LINGER: Duration = Duration::from_secs(5);

/// What an upstream connection tells its client (then wakes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// The response has been forwarded whole; `keep_alive`: the client
    /// connection may take another request.
    Done { keep_alive: bool },
    /// The upstream connection failed before a response head: `retry`
    /// whether sending the request elsewhere is safe, `timed_out` for a
    /// `504` instead of a `502`; `stale`: it was a pooled connection the
    /// upstream had closed meanwhile (the same upstream may be tried again,
    /// on a new connection).
    Failed {
        retry: bool,
        timed_out: bool,
        stale: bool,
    },
    /// The upstream connection ended in the middle of the response (or of
    /// a tunnel): the client connection closes after what was forwarded.
    Truncated,
    /// The upstream switched protocols: the client connection is a tunnel.
    Tunnel,
}

impl Event {
    /// The upstream's answer cannot be passed on (malformed, or a `101` to
    /// a request that asked for no upgrade): `502`, not retried, since the
    /// request may have been processed.
    pub(super) const UNUSABLE: Event = Event::Failed {
        retry: false,
        timed_out: false,
        stale: false,
    };
}

impl HttpProxy {
    pub(super) fn client_opened(&mut self, conn: &mut Conn<'_, Side>) {
        let ip = match conn.remote_addr().as_inet() {
            Some(a) => a.ip().to_string(),
            None => "unix".to_string(),
        };
        let tls = conn.tls().is_some();
        *conn.context_mut() = Side::Client(Client {
            ip,
            tls,
            header_timer: true,
            ..Client::default()
        });
        conn.set_timer(self.config.client_header_timeout);
        conn.set_reclaimable(true);
    }

    pub(super) fn client_data(&mut self, conn: &mut Conn<'_, Side>, input: &[u8]) -> Action {
        let c = me_client(conn);
        if input.is_empty() {
            return self.client_wake(conn);
        }
        match c.phase {
            ClientPhase::Head if !c.held.is_empty() => {
                // The rest of a partial head: parse it whole.
                c.held.extend_from_slice(input);
                let held = mem::take(&mut c.held);
                let action = self.client_feed(conn, &held);
                self.give_back_buffer(conn, held);
                action
            }
            _ => self.client_feed(conn, input),
        }
    }

    /// Puts `buf`'s capacity back as the held buffer, if that is empty.
    fn give_back_buffer(&mut self, conn: &mut Conn<'_, Side>, mut buf: Vec<u8>) {
        let c = me_client(conn);
        if c.held.is_empty() && buf.capacity() <= 2 * super::message::MAX_HEAD {
            buf.clear();
            c.held = buf;
        }
    }

    /// Takes `data` in the client's current phase, request after request.
    fn client_feed(&mut self, conn: &mut Conn<'_, Side>, mut data: &[u8]) -> Action {
        loop {
            let c = me_client(conn);
            match c.phase {
                ClientPhase::Head => {
                    if data.is_empty() {
                        return Action::None;
                    }
                    if !c.header_timer || mem::take(&mut c.drain_grace) {
                        c.header_timer = true;
                        conn.set_timer(self.config.client_header_timeout);
                    }
                    let c = me_client(conn);
                    c.replay.clear();
                    let origin = Origin {
                        client_ip: &c.ip,
                        tls: c.tls,
                        default_host: &self.default_host,
                        hash_header: self.config.hash_header.as_deref(),
                    };
                    match parse_request(data, &origin, &mut c.replay) {
                        Ok(None) => {
                            c.held.extend_from_slice(data);
                            return Action::None;
                        }
                        Err(refusal) => return self.refuse(conn, refusal),
                        Ok(Some((len, request))) => {
                            data = &data[len..];
                            if let Some(action) = self.start_request(conn, request) {
                                return action;
                            }
                        }
                    }
                }
                ClientPhase::Body => {
                    let mut body = c.body.take().expect("a body in progress");
                    let step = match body.advance(data, |_| {}) {
                        Ok(step) => step,
                        Err(_) => return self.refuse(conn, Refusal::BadRequest),
                    };
                    c.body = Some(body);
                    let (forward, rest) = data.split_at(step.used);
                    if c.replayable {
                        if c.replay.len() + forward.len() <= REPLAY_LIMIT {
                            c.replay.extend_from_slice(forward);
                        } else {
                            c.replayable = false;
                            truncate_to_request_line(&mut c.replay);
                        }
                    }
                    if let Some((id, _)) = c.upstream {
                        send(conn.peer(id), forward);
                    }
                    if !step.done {
                        return Action::None;
                    }
                    self.request_sent(conn);
                    data = rest;
                }
                ClientPhase::Waiting => {
                    // A pipelined request: held until the response ends.
                    if !data.is_empty() {
                        c.held.extend_from_slice(data);
                        c.paused = true;
                        conn.pause_reading();
                    }
                    return Action::None;
                }
                ClientPhase::Tunnel => {
                    let upstream = c.upstream.map(|(id, _)| id);
                    let sent = upstream.is_some_and(|id| send(conn.peer(id), data));
                    return if sent { Action::None } else { Action::Close };
                }
                ClientPhase::Closing => return Action::None,
            }
        }
    }

    /// A request head was parsed (and rewritten into `replay`): choose an
    /// upstream and send it. `Some(action)` when the client is answered
    /// here instead.
    fn start_request(
        &mut self,
        conn: &mut Conn<'_, Side>,
        request: super::message::Request,
    ) -> Option<Action> {
        self.stats.request(conn.loop_index());
        let c = me_client(conn);
        let stop_timer = mem::replace(&mut c.header_timer, false);
        c.request = Some(request);
        c.responded = false;
        c.tried = 0;
        c.replayable = c.replay.len() <= REPLAY_LIMIT;
        c.started = self.config.access_log.then(Instant::now);
        let body = Body::new(request.body);
        c.phase = if body.is_done() {
            ClientPhase::Waiting
        } else {
            ClientPhase::Body
        };
        c.body = Some(body);
        if stop_timer {
            conn.set_timer(None);
        }
        conn.set_reclaimable(false);
        if request.expect_continue && request.body != Kind::None {
            conn.write(CONTINUE);
        }
        if !self.dispatch(conn) {
            return Some(Action::Close);
        }
        if me_client(conn).phase == ClientPhase::Waiting {
            self.request_sent(conn);
        }
        None
    }

    /// Sends the request (what `replay` holds) to an upstream that is up
    /// and not tried yet for it, over a pooled connection or a new one.
    /// `false`: none is left; the client has been answered (`503` if none
    /// was up, `502` after failed tries) and is closing.
    fn dispatch(&mut self, conn: &mut Conn<'_, Side>) -> bool {
        let me = conn.id();
        let draining = conn.is_draining();
        let c = me_client(conn);
        let request = c.request.expect("a request in progress");
        let key = request
            .header_hash
            .unwrap_or_else(|| fnv1a(&[c.ip.as_bytes()]));
        let tried = c.tried;
        let Some(index) = self.upstreams.pick(&mut self.cursor, key, tried) else {
            let (response, status) = if tried == 0 {
                (SERVICE_UNAVAILABLE, 503)
            } else {
                (BAD_GATEWAY, 502)
            };
            self.answer(conn, response, status, None);
            return false;
        };
        c.tried |= 1 << index;
        let to_client = ToClient {
            http10: request.http10,
            keep_alive: request.keep_alive && !c.eof && !draining,
            head: request.head,
        };
        let pooled = if request.websocket || mem::replace(&mut c.fresh, false) {
            None
        } else {
            self.take_pooled(conn, index)
        };
        let id = match pooled {
            Some(id) => {
                let mut p = conn.peer(id).expect("checked by take_pooled");
                let u = as_upstream(p.context_mut()).expect("an upstream connection");
                u.client = Some(me);
                u.phase = UpstreamPhase::Head;
                u.to_client = Some(to_client);
                u.reused = true;
                u.held.clear();
                p.set_idle_timeout(self.config.upstream_idle_timeout);
                self.stats.pool_reuse(me.loop_index());
                id
            }
            None => {
                let ctx = Side::Upstream(UpstreamConn {
                    client: Some(me),
                    index,
                    to_client: Some(to_client),
                    ..UpstreamConn::default()
                });
                let addr = self.upstreams.addr(index);
                let dialed = match &self.config.upstream_tls {
                    Some((config, name)) => conn.dial_tls(addr, name, config.clone(), ctx),
                    None => conn.dial(addr, ctx),
                };
                match dialed {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::warn!(upstream = %addr, "http-proxy: dialing: {e}");
                        self.upstreams.failed(index);
                        return self.dispatch(conn);
                    }
                }
            }
        };
        self.upstreams.begin(index);
        let c = me_client(conn);
        c.upstream = Some((id, index));
        let replay = mem::take(&mut c.replay);
        send(conn.peer(id), &replay);
        me_client(conn).replay = replay;
        true
    }

    /// An idle pooled connection to upstream `index`, if one is left.
    fn take_pooled(&mut self, conn: &mut Conn<'_, Side>, index: usize) -> Option<ConnId> {
        while let Some(id) = self.pools[index].pop() {
            let idle = conn.peer(id).is_some_and(|mut p| {
                matches!(as_upstream(p.context_mut()), Some(u) if u.phase == UpstreamPhase::Pooled)
            });
            if idle {
                return Some(id);
            }
        }
        None
    }

    /// The whole request has been sent: the upstream's head is due within
    /// the upstream header timeout.
    fn request_sent(&mut self, conn: &mut Conn<'_, Side>) {
        let c = me_client(conn);
        c.phase = ClientPhase::Waiting;
        if !c.responded {
            conn.set_timer(self.config.upstream_header_timeout);
        }
    }

    /// Answers with `refusal` and closes.
    fn refuse(&mut self, conn: &mut Conn<'_, Side>, refusal: Refusal) -> Action {
        self.stats.refused(conn.loop_index());
        self.answer(conn, refusal.response(), refusal.status(), None);
        Action::Close
    }

    /// Writes `response` (one of the proxy's own, which close), logs it,
    /// and lets go of the upstream connection if one is attached.
    fn answer(
        &mut self,
        conn: &mut Conn<'_, Side>,
        response: &[u8],
        status: u16,
        upstream: Option<usize>,
    ) {
        self.release_upstream(conn);
        self.stats.response(conn.loop_index(), status);
        let c = me_client(conn);
        c.phase = ClientPhase::Closing;
        if self.config.access_log {
            log_request(c, upstream.map(|i| self.upstreams.addr(i)), status);
        }
        conn.write(response);
    }

    /// Lets go of the client's upstream connection: it is closed unless it
    /// already serves another client.
    fn release_upstream(&mut self, conn: &mut Conn<'_, Side>) {
        let me = conn.id();
        let Some((id, index)) = me_client(conn).upstream.take() else {
            return;
        };
        self.upstreams.end(index);
        if let Some(mut p) = conn.peer(id) {
            if let Some(u) = as_upstream(p.context_mut()) {
                if u.client == Some(me) {
                    u.client = None;
                    u.phase = UpstreamPhase::Closing;
                    p.close();
                }
            }
        }
    }

    /// Woken by the upstream side: act on its [`Event`].
    fn client_wake(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let c = me_client(conn);
        let Some(event) = c.event.take() else {
            return Action::None;
        };
        match event {
            Event::Tunnel => {
                c.phase = ClientPhase::Tunnel;
                self.resume(conn);
                // What arrived after the upgrade request goes through now.
                let held = mem::take(&mut me_client(conn).held);
                if held.is_empty() {
                    return Action::None;
                }
                self.client_feed(conn, &held)
            }
            Event::Truncated => {
                me_client(conn).phase = ClientPhase::Closing;
                self.release_upstream(conn);
                Action::Close
            }
            Event::Failed {
                retry,
                timed_out,
                stale,
            } => {
                if let Some((_, index)) = c.upstream.take() {
                    self.upstreams.end(index);
                    if stale {
                        // Not the upstream's fault: it may take the
                        // request again, on a connection of its own.
                        c.tried &= !(1 << index);
                        c.fresh = true;
                    }
                }
                let c = me_client(conn);
                if retry && c.replayable && c.phase != ClientPhase::Closing {
                    self.stats.retry(conn.loop_index());
                    if !self.dispatch(conn) {
                        return Action::Close;
                    }
                    if me_client(conn).phase == ClientPhase::Waiting {
                        self.request_sent(conn);
                    }
                    return Action::None;
                }
                let (response, status) = if timed_out {
                    (GATEWAY_TIMEOUT, 504)
                } else {
                    (BAD_GATEWAY, 502)
                };
                self.answer(conn, response, status, None);
                Action::Close
            }
            Event::Done { keep_alive } => {
                let (index, status) = (c.upstream.take().map(|(_, i)| i), c.status);
                if let Some(i) = index {
                    self.upstreams.end(i);
                }
                self.stats.response(conn.loop_index(), status);
                let c = me_client(conn);
                if self.config.access_log {
                    log_request(c, index.map(|i| self.upstreams.addr(i)), status);
                }
                if !keep_alive || c.eof || c.phase != ClientPhase::Waiting {
                    let still_sending = c.phase == ClientPhase::Body || !c.held.is_empty();
                    c.phase = ClientPhase::Closing;
                    if still_sending && !c.eof {
                        return self.linger(conn);
                    }
                    return Action::Close;
                }
                c.phase = ClientPhase::Head;
                c.request = None;
                c.body = None;
                conn.set_reclaimable(true);
                self.resume(conn);
                if conn.is_draining() && me_client(conn).held.is_empty() {
                    // Answered keep-alive before the drain began.
                    return self.client_drain(conn);
                }
                let held = mem::take(&mut me_client(conn).held);
                if held.is_empty() {
                    return Action::None;
                }
                let action = self.client_feed(conn, &held);
                self.give_back_buffer(conn, held);
                action
            }
        }
    }

    /// Closes after a response the client may still be sending to (an
    /// early answer to a body): the write side is shut down once the
    /// response is out, and what the client sends meanwhile is read and
    /// dropped until its FIN or [`LINGER`], so that the close does not
    /// reset the connection before the client has read the response.
    fn linger(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        self.resume(conn);
        conn.shutdown_write();
        conn.set_timer(Some(LINGER));
        Action::None
    }

    /// Resumes reading if it was paused for a response.
    fn resume(&mut self, conn: &mut Conn<'_, Side>) {
        let c = me_client(conn);
        if mem::replace(&mut c.paused, false) {
            conn.resume_reading();
        }
    }

    pub(super) fn client_eof(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let c = me_client(conn);
        match c.phase {
            // Half-closed after a request: answer it, then close.
            ClientPhase::Waiting => {
                c.eof = true;
                Action::None
            }
            ClientPhase::Tunnel => {
                let upstream = c.upstream.map(|(id, _)| id);
                let forwarded = upstream
                    .is_some_and(|id| conn.peer(id).is_some_and(|mut p| p.shutdown_write()));
                if forwarded {
                    Action::None
                } else {
                    Action::Close
                }
            }
            // Between requests, in a head or a body: nothing more to do.
            _ => Action::Close,
        }
    }

    /// A drain began (or found this client between requests): a client
    /// with no request in progress gets [`drain::IDLE_GRACE`] to send its
    /// next one (which is answered with `Connection: close`), then closes.
    pub(super) fn client_drain(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let c = me_client(conn);
        if c.phase == ClientPhase::Head && c.held.is_empty() {
            c.header_timer = true;
            c.drain_grace = true;
            conn.set_timer(Some(drain::IDLE_GRACE));
        }
        Action::None
    }

    pub(super) fn client_timer(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let c = me_client(conn);
        match c.phase {
            ClientPhase::Head if c.header_timer => {
                if !c.held.is_empty() {
                    // Part of a head arrived: say why it is cut (nginx
                    // closes silently; curl then reports the 408).
                    self.answer(conn, REQUEST_TIMEOUT, 408, None);
                }
                me_client(conn).phase = ClientPhase::Closing;
                Action::Close
            }
            ClientPhase::Waiting if !c.responded => {
                // The upstream header timeout: the upstream is counted as
                // failing, its connection closed, the client told.
                let index = c.upstream.map(|(_, i)| i);
                if let Some(i) = index {
                    self.upstreams.failed(i);
                }
                self.answer(conn, GATEWAY_TIMEOUT, 504, index);
                Action::Close
            }
            ClientPhase::Closing => Action::Close, // the linger is over
            _ => Action::None,
        }
    }

    pub(super) fn client_closed(&mut self, conn: &mut Conn<'_, Side>) {
        self.release_upstream(conn);
    }
}

/// Cuts a request's replay copy down to its request line (kept for the
/// access log).
pub(super) fn truncate_to_request_line(replay: &mut Vec<u8>) {
    let end = replay
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(replay.len());
    replay.truncate(end);
}
