//! How the example servers drain (SIGTERM, or a successor taking over
//! with `--upgrade`): what each does with its connections once
//! `on_drain` fires.
//!
//! - **HTTP** (server and proxy): the next response on each connection
//!   says `Connection: close` and the connection closes after it; one in
//!   mid-request finishes it first. A keep-alive connection with no
//!   request in progress is closed after [`IDLE_GRACE`] of silence, not at
//!   once: a client may be sending its next request right now, and
//!   closing under it would lose that request.
//! - **Redis**: RESP has no way to say "last reply", so a connection is
//!   served until its client closes it; one silent for [`IDLE_GRACE`] is
//!   closed.
//! - **Echo and the L4 proxy**: byte streams without boundaries; each
//!   connection is served until it ends.
//!
//! Whatever is left when `--drain-timeout` runs out is closed.

use std::time::Duration;

use evio_core::Conn;

/// How long a connection with no request in progress may stay silent
/// during a drain before it is closed.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Closes `conn` after [`IDLE_GRACE`] without a byte either way (its idle
/// timeout, shortened).
pub fn close_when_idle<C>(conn: &mut Conn<'_, C>) {
    conn.set_idle_timeout(Some(IDLE_GRACE));
}
