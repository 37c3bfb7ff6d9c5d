//! The echo server: the smallest useful evio handler.
//!
//! There is no per-connection state (`Context = ()`), and nothing to parse:
//! each read is written straight back. The input slice borrows the loop's
//! read buffer, so `conn.write` is the only copy, into the connection's
//! output queue. For UDP each `on_data` is one datagram and whatever it
//! writes goes back to the sender as one datagram.
//!
//! An echo connection never holds part of a request, so it is always
//! reclaimable (`Conn::set_reclaimable`): a server out of file descriptors
//! may close its longest-idle connections to serve new ones.

use evio_core::{Action, Conn, EventHandler, Options};

/// The echo handler. `Clone` because every loop gets its own copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl EventHandler for Echo {
    type Context = ();

    fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
        // Nothing is ever held: always between requests.
        conn.set_reclaimable(true);
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
        // An empty input comes from a wake-up, not from the peer.
        if !input.is_empty() {
            conn.write(input);
        }
        Action::None
    }

    /// A byte stream has no boundary to close at: each connection is
    /// served until its client closes it (or the drain times out).
    fn on_drain(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        Action::None
    }
}

/// The `echo-server` binary's command line: its name, defaults and the flags
/// it takes beyond the shared ones.
pub const SPEC: crate::cli::Spec = crate::cli::Spec {
    bin: "echo-server",
    name: "echo",
    default_port: 5000,
    udp: true,
    backend: false,
    idle_timeout: 60,
    header_timeout: None,
    connect_timeout: None,
    alpn: &[],
    extra: None,
};
