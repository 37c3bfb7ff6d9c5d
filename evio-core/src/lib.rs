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
//! Addresses are `scheme://host:port?reuseport=true` with schemes `tcp`
//! (IPv4 and IPv6), `tcp4`, `tcp6`, `udp`, `udp4`, `udp6`, `unix`
//! (`unix://path`) and, with the `tls` feature, `tls`, `tls4`, `tls6`; `tcp`
//! when no scheme is given.
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
pub mod poller;
mod receipt;
mod remote;
mod server;
mod shared;
mod socket;
mod stream;
mod table;
#[cfg(feature = "tls")]
mod tls;
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
pub use receipt::WriteReceipt;
pub use server::{serve, Builder, ServerHandle};
pub use socket::SocketOptions;
pub use stream::InputStream;
#[cfg(feature = "tls")]
pub use tls::TlsInfo;
