//! [`ConnHandle`]: reaching one connection from any thread.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::key::ConnId;
use crate::loop_thread::ServerId;
use crate::mailbox::{Mailbox, Msg};
use crate::receipt::{PendingReceipt, WriteError, WriteReceipt};

/// Reaches one connection from any thread: write to it, close it, wake it.
///
/// `Send + Sync + Clone`. Everything goes through the loop's wake channel,
/// in order per sending thread; wake-ups coalesce, so a burst of messages
/// costs the loop one eventfd write. A handle to a connection that has
/// closed reaches nothing, even if its slot or fd number was reused.
///
/// The channel is unbounded and handle writes do not block: a thread that
/// produces faster than the peer reads paces itself on its receipts (wait
/// for one every N writes), as the example below does for every write.
///
/// ```no_run
/// use evio_core::{Action, Conn, EventHandler, Options};
///
/// #[derive(Clone)]
/// struct Clock;
/// impl EventHandler for Clock {
///     type Context = ();
///     fn on_opened(&mut self, conn: &mut Conn<'_, ()>) -> (Options, Action) {
///         let handle = conn.handle();
///         std::thread::spawn(move || loop {
///             std::thread::sleep(std::time::Duration::from_secs(1));
///             // Written in order after whatever the connection had queued.
///             if handle.write(b"tick\n".to_vec()).wait().is_err() {
///                 return; // the connection closed
///             }
///         });
///         (Options::default(), Action::None)
///     }
/// }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    id: ConnId,
    remote: Arc<Mailbox>,
    server: ServerId,
    /// For a UDP datagram's handle: where writes go (its sender).
    udp_peer: Option<SocketAddr>,
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the server has stopped")
}

impl ConnHandle {
    pub(crate) fn new(id: ConnId, remote: Arc<Mailbox>, server: ServerId) -> ConnHandle {
        ConnHandle {
            id,
            remote,
            server,
            udp_peer: None,
        }
    }

    /// A handle that answers the sender of one UDP datagram.
    pub(crate) fn udp(
        id: ConnId,
        remote: Arc<Mailbox>,
        server: ServerId,
        peer: SocketAddr,
    ) -> ConnHandle {
        ConnHandle {
            udp_peer: Some(peer),
            ..ConnHandle::new(id, remote, server)
        }
    }

    fn send(&self, msg: Msg) -> io::Result<()> {
        if self.remote.send(msg) {
            Ok(())
        } else {
            Err(stopped())
        }
    }

    /// Queues a wake: the connection's loop calls
    /// [`EventHandler::on_wake`](crate::EventHandler::on_wake) (by default
    /// `on_data` with empty input). Never touches pending output or a
    /// pending close; a wake for a closed or closing connection is dropped.
    ///
    /// # Errors
    /// `NotConnected` if the server has stopped.
    pub fn wake(&self) -> io::Result<()> {
        self.send(Msg::Wake(self.id.key))
    }

    /// Queues `data` for the connection, after whatever it already queued.
    /// The receipt completes `Ok` once every byte is written to the socket,
    /// or with the error if the connection closes first (or has closed, or
    /// the server has stopped). Each write gets exactly one result, an
    /// empty one too.
    ///
    /// A buffer over 4 KiB is queued as it is, never copied; a smaller one
    /// is copied into the connection's pooled buffer, which costs less than
    /// queueing a buffer of its own. (Over TLS it is encrypted into records
    /// either way.)
    ///
    /// For the handle of a UDP datagram ([`Conn::handle`](crate::Conn::handle)
    /// in its `on_data`), the data is sent as one datagram to that
    /// datagram's sender, and the receipt completes when it is sent.
    pub fn write(&self, data: impl Into<Vec<u8>>) -> WriteReceipt {
        let receipt = WriteReceipt::new(self.server);
        let pending = PendingReceipt::new(receipt.clone());
        let msg = match self.udp_peer {
            Some(to) => Msg::SendTo {
                key: self.id.key,
                to,
                data: data.into(),
                receipt: pending,
            },
            None => Msg::Write {
                key: self.id.key,
                data: data.into(),
                receipt: pending,
            },
        };
        if !self.remote.send(msg) {
            receipt.complete(Err(WriteError::NOT_CONNECTED));
        }
        receipt
    }

    /// Closes the connection after its pending output is written (a
    /// handle to a connection that is gone reaches nothing).
    ///
    /// # Errors
    /// `NotConnected` if the server has stopped.
    pub fn close(&self) -> io::Result<()> {
        self.send(Msg::Close(self.id.key))
    }

    /// The connection's id, for comparing with [`Conn::id`](crate::Conn::id).
    pub fn id(&self) -> ConnId {
        self.id
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle").field("id", &self.id).finish()
    }
}
