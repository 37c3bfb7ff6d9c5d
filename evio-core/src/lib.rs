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
//! #[derive(Clone)]
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
//! (IPv4 and IPv6), `tcp4`, `tcp6`, `udp`, `udp4`, `udp6` and `unix`
//! (`unix://path`); `tcp` when no scheme is given. Use [`Builder`] for
//! several loops, load balancing, or another poller backend.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod addr;
mod conn;
mod event_loop;
mod handler;
mod server;
mod stream;

pub use conn::{Conn, ConnHandle, ConnId, DetachedStream, WriteReceipt};
pub use evio_sys::net::Addr;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use evio_sys::EpollPoller;
pub use evio_sys::{DefaultPoller, PollPoller, Poller};
pub use handler::{Action, EventHandler, Options, ServerInfo};
pub use server::{serve, Builder, LoadBalance, ServerHandle};
pub use stream::InputStream;
