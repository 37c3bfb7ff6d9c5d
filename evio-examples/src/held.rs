//! Requests held while a connection's output is above its high-water mark,
//! as the HTTP and Redis servers both do it.
//!
//! An engine executes requests while the connection's queued output is at
//! most its high-water mark; past it, the rest of the input is kept and the
//! session is *held*. The server feeds the session again, with no new
//! input, from `on_drained` (evio-core calls it once the output has been
//! written), and input that arrives meanwhile is appended to what is held.
//! A client that shuts down its write side (a FIN) while requests are held
//! still gets every reply: the FIN waits behind them, and the connection
//! closes once none is left.

use evio_core::{Action, Conn, Writer};

/// A protocol session whose requests may wait for the output to drain.
pub trait HeldSession {
    /// Whether requests wait for the output to drain.
    fn is_held(&self) -> bool;
    /// Whether the peer's FIN arrived while requests were held.
    fn eof_behind_held(&self) -> bool;
    /// Records that the peer's FIN arrived while requests were held.
    fn hold_eof(&mut self);
}

/// `on_eof`: with requests held (and `may_hold`), the FIN waits behind
/// them (see [`finished`]); otherwise the connection closes now, after
/// what is queued (a partial request can never complete).
pub fn on_eof<S: HeldSession>(session: &mut S, may_hold: bool) -> Action {
    if may_hold && session.is_held() {
        session.hold_eof();
        return Action::None;
    }
    Action::Close
}

/// `on_drained`: feeds a held session again (`feed` gets the session and
/// the connection's output); `None` when nothing was held.
pub fn on_drained<S: HeldSession>(
    conn: &mut Conn<'_, S>,
    feed: impl FnOnce(&mut S, &mut Writer<'_>) -> Action,
) -> Option<Action> {
    if !conn.context().is_held() {
        return None;
    }
    let (session, mut out) = conn.split();
    Some(feed(session, &mut out))
}

/// Whether the peer's FIN waited behind held requests and none is left:
/// everything it sent is answered, so the connection closes.
pub fn finished<S: HeldSession>(session: &S) -> bool {
    session.eof_behind_held() && !session.is_held()
}
