//! [`ServerHandle`]: a started server, to stop and wait for.

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::addr::ToAddr;
use crate::control::ServerControl;
use crate::key::ConnId;
use crate::Addr;

/// A server started with [`Builder::start`](crate::Builder::start): stop it and wait for it.
///
/// `C` is the handler's [`Context`](crate::EventHandler::Context) type (the
/// default `()` fits handlers without one): [`dial`](ServerHandle::dial)
/// takes one.
///
/// `Send + Sync`: share it (e.g. in an `Arc`) to stop the server from a
/// signal-handling thread while another waits for it — or from inside the
/// server's own callbacks. Dropping the handle shuts the server down and
/// waits for it (except on one of its own loop threads, where it only
/// starts the stop). For a cheap clonable handle that never waits, see
/// [`control`](ServerHandle::control).
pub struct ServerHandle<C = ()> {
    control: ServerControl<C>,
    thread: Mutex<Option<thread::JoinHandle<io::Result<()>>>>,
}

impl<C> fmt::Debug for ServerHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("control", &self.control)
            .finish()
    }
}

impl<C> ServerHandle<C> {
    pub(super) fn new(
        control: ServerControl<C>,
        thread: thread::JoinHandle<io::Result<()>>,
    ) -> ServerHandle<C> {
        ServerHandle {
            control,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// The bound addresses, in the order given, with real ports for `:0`.
    pub fn addrs(&self) -> &[Addr] {
        self.control.addrs()
    }

    /// A cheap, clonable handle to the server that never waits: stop it,
    /// count connections, dial, reach connections by id.
    pub fn control(&self) -> &ServerControl<C> {
        &self.control
    }

    /// Whether the server has been asked to stop (by a callback or a handle).
    pub fn is_shutting_down(&self) -> bool {
        self.control.is_shutting_down()
    }

    /// Connections open now over all loops.
    pub fn connections(&self) -> usize {
        self.control.connections()
    }

    /// Stops the server: every loop stops, every open connection gets
    /// `on_closed`, listeners close, unix socket files are removed. Waits
    /// for all of that and returns the server's result — except when called
    /// on one of the server's own loop threads (from a callback), where it
    /// starts the stop and returns `Ok(())` at once, since the loop cannot
    /// wait for itself.
    ///
    /// # Errors
    /// A fatal loop error or a loop that panicked.
    pub fn shutdown(&self) -> io::Result<()> {
        self.control.shutdown();
        self.join_unless_own_loop()
    }

    /// Stops the server gracefully: stops accepting at once, stops reading,
    /// lets every connection write its pending output and close (each gets
    /// `on_closed`) until `timeout`; connections still open then are closed
    /// anyway. Returns once every loop has stopped (on one of the server's
    /// own loop threads: at once, as [`shutdown`](ServerHandle::shutdown)).
    ///
    /// # Errors
    /// As [`shutdown`](ServerHandle::shutdown).
    pub fn shutdown_gracefully(&self, timeout: Duration) -> io::Result<()> {
        self.control.shutdown_gracefully(timeout);
        self.join_unless_own_loop()
    }

    /// The old name of [`shutdown_gracefully`](ServerHandle::shutdown_gracefully).
    ///
    /// # Errors
    /// As [`shutdown`](ServerHandle::shutdown).
    #[deprecated(since = "0.2.0", note = "renamed `shutdown_gracefully`")]
    pub fn shutdown_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.shutdown_gracefully(timeout)
    }

    /// Opens an outbound connection into the server; see
    /// [`ServerControl::dial`].
    ///
    /// # Errors
    /// As [`ServerControl::dial`].
    pub fn dial(&self, addr: impl ToAddr, ctx: C) -> io::Result<ConnId>
    where
        C: Send + 'static,
    {
        self.control.dial(addr, ctx)
    }

    /// Waits until the server stops by itself (a callback returned
    /// `Action::Shutdown`, or a [`ServerControl`] stopped it) and returns
    /// its result; a later call returns `Ok(())`.
    ///
    /// # Errors
    /// As [`shutdown`](ServerHandle::shutdown), or `WouldBlock` on one of the
    /// server's own loop threads, where it would wait for itself.
    pub fn wait(&self) -> io::Result<()> {
        self.control.wait_refusal().map_or_else(|| self.join(), Err)
    }

    fn join_unless_own_loop(&self) -> io::Result<()> {
        match self.control.wait_refusal() {
            Some(_) => Ok(()),
            None => self.join(),
        }
    }

    /// Joins loop 0's thread; a second caller (or one after a `wait`) gets
    /// `Ok(())` once the server has stopped.
    fn join(&self) -> io::Result<()> {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("evio: event loop 0 panicked"))),
            None => self.control.wait(),
        }
    }
}

impl<C> Drop for ServerHandle<C> {
    fn drop(&mut self) {
        self.control.shutdown();
        let _ = self.join_unless_own_loop();
    }
}
