//! The upstream side: reading response heads and bodies, forwarding them to
//! the client, pooling the connection afterwards, and telling the client
//! ([`Event`]) when its response has ended or failed.

use std::io;
use std::mem;

use evio_core::{Action, Conn, ConnId};

use super::client::{truncate_to_request_line, Event};
use super::framing::Body;
use super::message::{parse_response, Reframe};
use super::{
    as_client, me_upstream, send, with_client, ClientPhase, HttpProxy, Side, UpstreamPhase,
    POOL_SIZE,
};

impl HttpProxy {
    pub(super) fn upstream_data(&mut self, conn: &mut Conn<'_, Side>, input: &[u8]) -> Action {
        let u = me_upstream(conn);
        if input.is_empty() {
            return Action::None;
        }
        match u.phase {
            UpstreamPhase::Pooled | UpstreamPhase::Closing => {
                // An idle connection has nothing to say: not reusable.
                u.phase = UpstreamPhase::Closing;
                Action::Close
            }
            UpstreamPhase::Tunnel => {
                let client = u.client;
                if client.is_some_and(|id| send(conn.peer(id), input)) {
                    Action::None
                } else {
                    Action::Close
                }
            }
            UpstreamPhase::Head if !u.held.is_empty() => {
                u.held.extend_from_slice(input);
                let held = mem::take(&mut u.held);
                self.upstream_feed(conn, &held)
            }
            UpstreamPhase::Head | UpstreamPhase::Body => self.upstream_feed(conn, input),
        }
    }

    fn upstream_feed(&mut self, conn: &mut Conn<'_, Side>, mut data: &[u8]) -> Action {
        loop {
            let u = me_upstream(conn);
            let Some(client) = u.client else {
                u.phase = UpstreamPhase::Closing;
                return Action::Close;
            };
            match u.phase {
                UpstreamPhase::Head => {
                    if data.is_empty() {
                        return Action::None;
                    }
                    let mut to = u.to_client.expect("set when the request was sent");
                    // An answer before the request's end (to a body still
                    // coming) closes the client connection: say so.
                    to.keep_alive &= request_sent(conn, client);
                    let mut head = mem::take(&mut self.scratch);
                    head.clear();
                    let parsed = parse_response(data, to, &mut head);
                    let action = match parsed {
                        Ok(None) => {
                            me_upstream(conn).held.extend_from_slice(data);
                            Some(Action::None)
                        }
                        Err(()) => {
                            // Not passed on; the request may have been
                            // processed, so it is not sent again.
                            tracing::warn!(upstream = %conn.remote_addr(), "http-proxy: malformed response head");
                            self.tell(conn, Event::UNUSABLE);
                            Some(Action::Close)
                        }
                        Ok(Some((len, response, reframe, keep_alive))) => {
                            data = &data[len..];
                            self.response_head(conn, client, &head, response, reframe, keep_alive)
                        }
                    };
                    self.scratch = head;
                    if let Some(action) = action {
                        return action;
                    }
                }
                UpstreamPhase::Body => {
                    let mut body = u.body.take().expect("a body in progress");
                    let dechunk = u.reframe == Some(Reframe::Dechunk);
                    let mut payload = mem::take(&mut self.scratch);
                    payload.clear();
                    let step = body.advance(data, |d| {
                        if dechunk {
                            payload.extend_from_slice(d);
                        }
                    });
                    let step = match step {
                        Ok(step) => step,
                        Err(_) => {
                            self.scratch = payload;
                            tracing::warn!(upstream = %conn.remote_addr(), "http-proxy: malformed response body");
                            self.tell(conn, Event::Truncated);
                            return Action::Close;
                        }
                    };
                    let u = me_upstream(conn);
                    u.body = Some(body);
                    let forward = if dechunk {
                        &payload[..]
                    } else {
                        &data[..step.used]
                    };
                    let alive = forward.is_empty() || send(conn.peer(client), forward);
                    self.scratch = payload;
                    if !alive {
                        me_upstream(conn).phase = UpstreamPhase::Closing;
                        return Action::Close;
                    }
                    if !step.done {
                        return Action::None;
                    }
                    // Bytes after the response: the upstream is confused.
                    let extra = step.used < data.len();
                    return self.response_done(conn, extra);
                }
                UpstreamPhase::Tunnel => {
                    return if data.is_empty() || send(conn.peer(client), data) {
                        Action::None
                    } else {
                        Action::Close
                    };
                }
                UpstreamPhase::Pooled | UpstreamPhase::Closing => return Action::Close,
            }
        }
    }

    /// A response head arrived (rewritten in `head`): forward it. `None`
    /// to go on with the bytes after it, `Some(action)` to stop.
    fn response_head(
        &mut self,
        conn: &mut Conn<'_, Side>,
        client: ConnId,
        head: &[u8],
        response: super::message::Response,
        reframe: Reframe,
        keep_alive: bool,
    ) -> Option<Action> {
        let u = me_upstream(conn);
        let index = u.index;
        if response.status == 101 {
            let websocket = with_client(conn, client, |c| c.request.is_some_and(|r| r.websocket))
                .unwrap_or(false);
            if !websocket {
                self.tell(conn, Event::UNUSABLE);
                return Some(Action::Close);
            }
            self.upstreams.succeeded(index);
            me_upstream(conn).phase = UpstreamPhase::Tunnel;
            self.mark_responded(conn, client, 101);
            send(conn.peer(client), head);
            self.tell(conn, Event::Tunnel);
            return None;
        }
        if (100..200).contains(&response.status) {
            // `100 Continue` was the proxy's own to give; other interim
            // responses (103) go to HTTP/1.1 clients.
            let to = u.to_client.expect("set when the request was sent");
            if response.status != 100 && !to.http10 {
                send(conn.peer(client), head);
            }
            return None;
        }
        self.upstreams.succeeded(index);
        let u = me_upstream(conn);
        let body = Body::new(response.body);
        let done = body.is_done();
        u.body = Some(body);
        u.reframe = Some(reframe);
        u.reusable = response.reusable;
        u.client_keep_alive = keep_alive;
        u.phase = UpstreamPhase::Body;
        self.mark_responded(conn, client, response.status);
        if !send(conn.peer(client), head) {
            me_upstream(conn).phase = UpstreamPhase::Closing;
            return Some(Action::Close);
        }
        if done {
            return Some(self.response_done(conn, false));
        }
        None
    }

    /// Records on the client that its response has started: no retry
    /// after this, no header timer.
    fn mark_responded(&mut self, conn: &mut Conn<'_, Side>, client: ConnId, status: u16) {
        if let Some(mut p) = conn.peer(client) {
            if let Some(c) = as_client(p.context_mut()) {
                c.responded = true;
                c.status = status;
                c.replayable = false;
                truncate_to_request_line(&mut c.replay);
            }
            p.set_timer(None);
        }
    }

    /// The response has been forwarded whole: tell the client, and pool
    /// this connection if it can carry another request.
    fn response_done(&mut self, conn: &mut Conn<'_, Side>, extra: bool) -> Action {
        let id = conn.id();
        let u = me_upstream(conn);
        let (client, index) = (u.client, u.index);
        let mut keep_alive = u.client_keep_alive;
        let reusable = u.reusable && !extra;
        // The request must have been sent whole for the connection to be
        // reused (an early response to a body still coming).
        let request_sent = client.is_some_and(|id| request_sent(conn, id));
        keep_alive &= request_sent;
        self.tell(conn, Event::Done { keep_alive });
        // A draining proxy pools nothing: the drain ends once the
        // clients have gone.
        let draining = conn.is_draining();
        let u = me_upstream(conn);
        if reusable && request_sent && !draining && self.pools[index].len() < POOL_SIZE {
            u.phase = UpstreamPhase::Pooled;
            u.reused = true;
            conn.set_idle_timeout(self.config.keepalive_timeout);
            self.pools[index].push(id);
            Action::None
        } else {
            u.phase = UpstreamPhase::Closing;
            Action::Close
        }
    }

    /// Hands `event` to this connection's client, wakes it, and lets go of
    /// it.
    fn tell(&mut self, conn: &mut Conn<'_, Side>, event: Event) {
        let Some(client) = me_upstream(conn).client.take() else {
            return;
        };
        if let Some(mut p) = conn.peer(client) {
            if let Some(c) = as_client(p.context_mut()) {
                c.event = Some(event);
            }
            p.wake();
        }
        // A tunnel keeps forwarding to its client.
        if event == Event::Tunnel {
            me_upstream(conn).client = Some(client);
        }
    }

    pub(super) fn upstream_eof(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        let u = me_upstream(conn);
        match u.phase {
            UpstreamPhase::Body if u.reframe == Some(Reframe::UntilClose) => {
                u.reusable = false;
                self.response_done(conn, false)
            }
            UpstreamPhase::Tunnel => {
                let client = u.client;
                let forwarded =
                    client.is_some_and(|id| conn.peer(id).is_some_and(|mut p| p.shutdown_write()));
                if forwarded {
                    Action::None
                } else {
                    Action::Close
                }
            }
            _ => Action::Close,
        }
    }

    pub(super) fn upstream_closed(&mut self, conn: &mut Conn<'_, Side>, err: Option<io::Error>) {
        let id = conn.id();
        let u = me_upstream(conn);
        let index = u.index;
        if u.phase == UpstreamPhase::Pooled {
            self.pools[index].retain(|&p| p != id);
            return;
        }
        let Some(client) = u.client else { return };
        let event = match u.phase {
            UpstreamPhase::Head => {
                let (connected, reused) = (u.connected, u.reused);
                if !reused {
                    // A stale pooled connection is no sign of trouble.
                    self.upstreams.failed(index);
                }
                if let Some(e) = &err {
                    if !connected {
                        tracing::warn!(upstream = %conn.remote_addr(), "http-proxy: connecting: {e}");
                    }
                }
                let idempotent =
                    with_client(conn, client, |c| c.request.is_some_and(|r| r.idempotent))
                        .unwrap_or(false);
                Event::Failed {
                    retry: !connected || idempotent,
                    stale: reused,
                    timed_out: err
                        .as_ref()
                        .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut),
                }
            }
            _ => Event::Truncated,
        };
        self.tell(conn, event);
    }
}

/// Whether `client` has sent its whole request (it waits for the response).
fn request_sent(conn: &mut Conn<'_, Side>, client: ConnId) -> bool {
    with_client(conn, client, |c| c.phase == ClientPhase::Waiting).unwrap_or(false)
}
