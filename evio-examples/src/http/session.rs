//! The per-connection state: what the engine holds between reads and
//! the bits the server keeps beside it.

use evio_core::InputStream;

use super::body::BodyState;

/// Per-connection state: a partial request head (or requests not executed
/// yet) held over from earlier reads, where the body being skipped is, the
/// response that waits for the body's end, and the server's timing of the
/// connection. 64 bytes, no heap memory while the connection is idle.
#[derive(Debug, Default)]
pub struct Session {
    pub(super) input: InputStream,
    pub(super) body: BodyState,
    /// The status code of the response to send when the body ends (0:
    /// none), and its `PENDING_*` flags.
    pub(super) pending: u16,
    pub(super) pending_flags: u8,
    /// The engine's `HELD` and `LINGER` bits and the server's `PEER_EOF`,
    /// `TIMER`, `HEAD_CLOCK` and `LINGERING` bits.
    pub(super) state: u8,
    /// The server's clock (ms, wrapping) when the head being timed began.
    pub(super) head_since: u32,
}

/// Execution stopped at the output high-water mark with input held.
pub(super) const HELD: u8 = 1;
/// The engine closed while the client may still be sending: close with a
/// lingering close.
pub(super) const LINGER: u8 = 2;
/// The server's: the peer finished sending while requests were held.
pub(super) const PEER_EOF: u8 = 4;
/// The server's: the connection's timer is set.
pub(super) const TIMER: u8 = 8;
/// The server's: a request head is being timed (`head_since`).
pub(super) const HEAD_CLOCK: u8 = 16;
/// The server's: in a lingering close.
pub(super) const LINGERING: u8 = 32;

impl crate::held::HeldSession for Session {
    fn is_held(&self) -> bool {
        self.has(HELD)
    }
    fn eof_behind_held(&self) -> bool {
        self.has(PEER_EOF)
    }
    fn hold_eof(&mut self) {
        self.set(PEER_EOF, true);
    }
}

impl Session {
    /// Whether requests are waiting for the output to drain: the server
    /// then feeds the session again, with no new input, from `on_drained`.
    pub fn is_held(&self) -> bool {
        self.has(HELD)
    }

    /// Bytes of input held: an unfinished request head, or requests not
    /// executed yet because the output is above the high-water mark.
    pub fn held_input(&self) -> usize {
        self.input.len()
    }

    /// After [`Engine::feed`](super::Engine::feed) returned `Close`: whether the client may
    /// still be sending — the close follows an error response (the rest of
    /// a refused body, pipelined requests may be on their way), or input
    /// was left unread after the last response — so that closing at once
    /// would make the kernel answer with a reset that can destroy the
    /// response. The server then closes with a lingering close.
    pub fn lingers(&self) -> bool {
        self.has(LINGER)
    }

    /// Whether no request is in progress: no input held (no partial head,
    /// no requests waiting), no body being read, no response waiting for
    /// one. Such a connection may be closed to make room
    /// (`Conn::set_reclaimable`) without losing anything.
    pub fn is_idle(&self) -> bool {
        self.input.is_empty() && !self.body.active() && self.pending == 0 && !self.is_held()
    }

    /// Whether the input held is the start of a request head still being
    /// received (not requests waiting for the output to drain).
    pub(super) fn has_partial_head(&self) -> bool {
        !self.input.is_empty() && !self.body.active() && !self.is_held()
    }

    pub(super) fn has(&self, bit: u8) -> bool {
        self.state & bit != 0
    }

    pub(super) fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.state |= bit;
        } else {
            self.state &= !bit;
        }
    }

    /// The engine is done with the connection: drop what it holds; `linger`
    /// says whether the client may still be sending.
    pub(super) fn finish(&mut self, linger: bool) {
        self.input.clear();
        self.body = BodyState::default();
        self.pending = 0;
        self.pending_flags = 0;
        self.set(HELD, false);
        self.set(LINGER, linger);
    }
}

pub(super) const PENDING_HEAD: u8 = 1;
pub(super) const PENDING_HTTP10: u8 = 2;
pub(super) const PENDING_KEEP_ALIVE: u8 = 4;

#[cfg(test)]
mod tests {
    use super::super::{Config, Engine};
    use super::*;
    use evio_core::Action;

    #[test]
    fn idle_connection_state_is_small() {
        assert!(std::mem::size_of::<Session>() <= 64);
    }

    #[test]
    fn closes_that_linger() {
        let cases: &[(&[u8], bool)] = &[
            // Errors: the client may still be sending.
            (b"BAD\r\n\r\n", true),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
                true,
            ),
            // A closing response with nothing after it: a plain close.
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            // ... with input left after it: lingers.
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET",
                true,
            ),
        ];
        for (input, lingers) in cases {
            let mut s = Session::default();
            let mut out = Vec::new();
            let action = Engine::new(Config::default()).feed(&mut s, input, &mut out);
            let what = String::from_utf8_lossy(input);
            assert_eq!(action, Action::Close, "{what}");
            assert_eq!(s.lingers(), *lingers, "{what}");
            assert_eq!(s.held_input(), 0, "{what}");
        }
    }

    #[test]
    fn idle_only_between_requests() {
        let mut e = Engine::new(Config::default());
        let mut s = Session::default();
        let mut out = Vec::new();
        assert!(s.is_idle());
        let mut feed = |s: &mut Session, input: &[u8]| {
            assert_eq!(e.feed(s, input, &mut out), Action::None);
            s.is_idle()
        };
        assert!(!feed(&mut s, b"GET / HTTP/1.1\r\nHo"), "partial head");
        assert!(feed(&mut s, b"st: a\r\n\r\n"));
        let post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab";
        assert!(!feed(&mut s, post), "body in progress");
        assert!(feed(&mut s, b"cd"));
        // Held for the output to drain: not idle.
        let mut e = Engine::new(Config {
            output_high_water: 100,
            ..Config::default()
        });
        let mut out = Vec::new();
        let mut s = Session::default();
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2);
        assert_eq!(e.feed(&mut s, &two, &mut out), Action::None);
        assert!(s.is_held() && !s.is_idle());
        out.clear();
        assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
        assert!(s.is_idle());
    }
}
