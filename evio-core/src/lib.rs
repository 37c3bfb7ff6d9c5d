//! evio: a fast, small event-loop networking framework — Go's
//! [evio](https://github.com/tidwall/evio) in Rust.
//!
//! A server is a set of callbacks ([`EventHandler`]) run by one or more event
//! loops that make direct epoll/kqueue calls (through [`evio_sys`]). No async
//! runtime, no futures, no per-event allocation: each loop reads into one
//! shared buffer, lends it to [`EventHandler::on_data`], and writes whatever
//! the handler queued with [`Conn::write`].
//!
//! ```no_run
//! use evio_core::{Action, Conn, EventHandler};
//!
//! struct Echo;
//!
//! impl EventHandler for Echo {
//!     type Context = ();
//!     fn on_data(&mut self, conn: &mut Conn<'_, ()>, input: &[u8]) -> Action {
//!         conn.write(input);
//!         Action::None
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     evio_core::serve(Echo, &["tcp://:5000"])
//! }
//! ```
//!
//! Addresses are `scheme://host:port?option=value&…` with schemes `tcp`
//! (IPv4 and IPv6), `tcp4`, `tcp6`, `udp`, `udp4`, `udp6`, `unix`
//! (`unix://path`) and, with the `tls` feature, `tls`, `tls4`, `tls6`; `tcp`
//! when no scheme is given. Options (a value starting with `1`–`9`, `t` or
//! `y` is true):
//! - `reuseport`: set `SO_REUSEPORT`, so other sockets may bind the port.
//! - `defer_accept` (TCP and TLS, Linux): accept a connection only once its
//!   first bytes are in (`TCP_DEFER_ACCEPT`, 1 s), read it at once and add
//!   it to the poller only if it stays open — a request answered with a
//!   close then costs `accept4`, `read`, `write`, `close` and no
//!   `epoll_ctl` (nginx's `listen … deferred`). For protocols where the
//!   client speaks first: a silent client is accepted only after about a
//!   second, so a server greeting waits that long. Elsewhere than Linux
//!   binding fails with `Unsupported`.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! # #[derive(Clone)]
//! # struct H;
//! # impl evio_core::EventHandler for H { type Context = (); }
//! let server = evio_core::Builder::new().start(H, &["tcp://127.0.0.1:0?defer_accept=true"])?;
//! server.shutdown()?;
//! # }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Where to go next:
//! - [`Builder`]: several loops, balancing, per-loop listeners, output
//!   bounds, timeouts, reclaiming idle connections, TLS, another poller.
//! - [`Conn`]: what a callback can do with its connection (write, split
//!   borrow, timers, half-close, flow control, dial, socket options).
//! - [`ConnHandle`] and [`ServerControl`]: reaching connections and the
//!   server from other threads.
//! - [`poller`]: writing a poller backend.
//!
//! Features: `tls` (rustls: `tls://` listeners, `dial_tls`), `conformance`
//! (the poller conformance suite in [`poller`]).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The module map and which way imports point: docs/architecture.md
// (tests/layering.rs checks there is no circle).
mod addr;
mod balance;
mod config;
mod conn;
mod control;
mod detached;
mod event_loop;
mod handle;
mod handler;
mod key;
mod loop_thread;
mod mailbox;
mod metrics;
mod peer;
pub mod poller;
mod receipt;
mod server;
mod shared;
mod socket;
mod stream;
mod table;
#[cfg(feature = "tls")]
mod tls;
pub mod upgrade;
mod warn;

pub use addr::ToAddr;
pub use balance::LoadBalance;
pub use conn::{Conn, Writer};
pub use control::ServerControl;
pub use detached::DetachedStream;
pub use evio_sys::net::Addr;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use evio_sys::EpollPoller;
pub use evio_sys::{DefaultPoller, PollPoller, Poller};
pub use handle::ConnHandle;
pub use handler::{Action, EventHandler, Options, ServerInfo};
pub use key::ConnId;
pub use metrics::LoopMetrics;
pub use peer::Peer;
pub use receipt::WriteReceipt;
pub use server::{serve, Builder, ServerHandle};
pub use socket::SocketOptions;
pub use stream::InputStream;
#[cfg(feature = "tls")]
pub use tls::TlsInfo;
pub use warn::RateLimited;
