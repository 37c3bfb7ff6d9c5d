//! What the tests of every evio crate share, so each is written once:
//!
//! - `net`: blocking clients with timeouts, reading exactly / to the end,
//!   waiting for a condition, free ports;
//! - `pattern`: a verifiable endless byte stream;
//! - `pki`: a throwaway CA and a `localhost` certificate made with rcgen
//!   (rustls configs in memory, PEM files in a temporary directory), and
//!   blocking rustls clients;
//! - `process`: running binaries (killed when dropped) and reading what
//!   `/proc` says about them;
//! - `redis`: a real `redis-server`, plain or TLS, when one is installed;
//! - `server`: evio servers on every poller, and the handlers tests keep
//!   writing (an echo, a handle collector).
//!
//! A dev-dependency only; never published.

// Private modules, everything re-exported at the root: a test's
// `use evio_test_support::*` must not bring module names (`redis`) that
// shadow crates the test uses.
mod net;
mod pattern;
mod pki;
mod process;
mod redis;
mod server;

pub use net::*;
pub use pattern::*;
pub use pki::*;
pub use process::*;
pub use redis::*;
pub use server::*;
