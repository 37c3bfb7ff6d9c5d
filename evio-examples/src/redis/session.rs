//! The per-connection state: what the engine holds between reads.

use evio_core::InputStream;

/// Per-connection state: input held over from earlier reads. 48 bytes, no
/// heap memory while the connection is idle.
#[derive(Debug, Default)]
pub struct Session {
    pub(super) input: InputStream,
    /// Don't parse again until the held input reaches this many bytes.
    pub(super) need: usize,
    /// The next element of a streamed `MGET` (the request at the front of
    /// `input`); 0 when none is in progress.
    pub(super) cursor: u32,
    /// Execution stopped at the output high-water mark with input held:
    /// feed the session again (with no new input) once output has drained.
    pub(super) held: bool,
    /// The server's: the peer finished sending while requests were held.
    pub(super) peer_eof: bool,
}

impl Session {
    /// Whether requests are waiting for the output to drain: the server
    /// then feeds the session again, with no new input, from `on_drained`.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Bytes of input held: an unfinished request, or requests not executed
    /// yet because the output is above the high-water mark.
    pub fn held_input(&self) -> usize {
        self.input.len()
    }

    /// Whether no request is in progress: no partial request and none
    /// waiting for the output to drain. Such a connection may be closed to
    /// make room (`Conn::set_reclaimable`) without losing anything.
    pub fn is_idle(&self) -> bool {
        self.input.is_empty() && !self.held
    }
}

impl crate::held::HeldSession for Session {
    fn is_held(&self) -> bool {
        self.held
    }
    fn eof_behind_held(&self) -> bool {
        self.peer_eof
    }
    fn hold_eof(&mut self) {
        self.peer_eof = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::engine;
    use super::*;
    use evio_core::Action;

    #[test]
    fn idle_connection_state_is_small() {
        assert!(std::mem::size_of::<Session>() <= 48);
    }

    #[test]
    fn idle_only_between_requests() {
        let mut e = engine().with_output_high_water(10);
        let mut s = Session::default();
        let mut out = Vec::new();
        assert!(s.is_idle());
        assert_eq!(e.feed(&mut s, b"*1\r\n$4\r\nPI", &mut out), Action::None);
        assert!(!s.is_idle(), "partial request");
        assert_eq!(e.feed(&mut s, b"NG\r\n", &mut out), Action::None);
        assert!(s.is_idle());
        // Held behind the output mark: not idle until executed.
        assert_eq!(e.feed(&mut s, b"PING\r\nPING\r\n", &mut out), Action::None);
        assert!(s.is_held() && !s.is_idle());
        out.clear();
        assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
        assert!(s.is_idle());
    }
}
