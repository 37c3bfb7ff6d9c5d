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

// Modules, lowest layer first; each imports only from the ones above it.
mod addr; //          listen addresses: parsing and binding
mod balance; //       LoadBalance and the acceptor's picker
mod config; //        server-wide settings
mod conn; //          Conn, the callbacks' view of the table
mod control; //       ServerControl
mod detached; //      DetachedStream
mod event_loop; //    one loop: poller, handler, table, channel, listeners
mod handle; //        ConnHandle
mod handler;
mod key; //           connection names and poller tokens
mod loop_thread; //   which server's loop the current thread runs
pub mod poller; //       EventHandler, Action, Options, ServerInfo
mod receipt; //       WriteReceipt
mod remote; //        cross-thread messages and a loop's channel
mod server;
mod shared;
mod socket; //        what all loops of a server share
mod stream;
mod table;
#[cfg(feature = "tls")]
mod tls;
mod warn; //        InputStream //         the connection table and its state machine //        serve, Builder, ServerHandle

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
