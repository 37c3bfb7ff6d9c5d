//! kqueue backend (Apple's systems, FreeBSD, NetBSD, OpenBSD, DragonFly),
//! edge-triggered with `EV_CLEAR`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent, Kqueue};

use crate::{Coalescing, Event, Events, Interest, Poller, Waker};

/// Whether `kevent.udata` (pointer-sized) can carry a whole `u64` token. On
/// narrower targets the token is looked up by fd in the registration map
/// instead, so that every token round-trips as the [`Poller`] contract says.
const UDATA_HOLDS_TOKEN: bool = size_of::<libc::intptr_t>() >= size_of::<u64>();

/// A zero timeout for calls that must not block.
const ZERO_TIMESPEC: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// One kevent change (or an empty slot for the kernel to fill).
fn kevent(
    ident: usize,
    filter: EventFilter,
    flags: EvFlags,
    fflags: FilterFlag,
    udata: libc::intptr_t,
) -> KEvent {
    KEvent::new(ident, filter, flags, fflags, 0, udata)
}

/// A placeholder for buffers the kernel overwrites.
fn blank() -> KEvent {
    kevent(
        0,
        EventFilter::EVFILT_READ,
        EvFlags::empty(),
        FilterFlag::empty(),
        0,
    )
}

/// Up to two changes, built without allocating (one per filter).
struct Changes {
    list: [KEvent; 2],
    len: usize,
}

impl Changes {
    fn new() -> Changes {
        Changes {
            list: [blank(), blank()],
            len: 0,
        }
    }

    fn push(&mut self, change: KEvent) {
        self.list[self.len] = change;
        self.len += 1;
    }

    fn as_slice(&self) -> &[KEvent] {
        &self.list[..self.len]
    }
}

/// Applies up to two changes, each flagged `EV_RECEIPT`, and returns each
/// change's errno (0 = success), in the order of `changes`.
fn submit(kq: &Kqueue, changes: &[KEvent]) -> io::Result<[libc::c_int; 2]> {
    assert!(changes.len() <= 2, "submit takes at most two changes");
    let mut errs: [libc::c_int; 2] = [0; 2];
    if changes.is_empty() {
        return Ok(errs);
    }
    let mut receipts = [blank(), blank()];
    let n = loop {
        // With EV_RECEIPT on every change the kernel returns one receipt per
        // change and no pending event, and never blocks.
        match kq.kevent(changes, &mut receipts[..changes.len()], Some(ZERO_TIMESPEC)) {
            Ok(n) => break n,
            // Adding and deleting are idempotent (a repeated delete gives
            // ENOENT, which callers ignore), so just try again.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    for receipt in &receipts[..n.min(2)] {
        if !receipt.flags().contains(EvFlags::EV_ERROR) || receipt.data() == 0 {
            continue;
        }
        // Receipts carry the ident and filter of their change.
        if let Some(i) = changes
            .iter()
            .position(|c| c.ident() == receipt.ident() && c.filter() == receipt.filter())
        {
            errs[i] = receipt.data() as libc::c_int;
        }
    }
    Ok(errs)
}

/// Ident of the `EVFILT_USER` wake event.
#[cfg(evio_evfilt_user)]
const WAKE_IDENT: usize = 0;

/// The wake signal: an `EVFILT_USER` event triggered on the kqueue itself
/// (the signal holds the kqueue, so a waker never outlives the fd it
/// triggers).
#[cfg(evio_evfilt_user)]
#[derive(Debug)]
struct UserSignal(Arc<Kqueue>);

#[cfg(evio_evfilt_user)]
impl crate::Signal for UserSignal {
    fn signal(&self) -> io::Result<()> {
        let trigger = kevent(
            WAKE_IDENT,
            EventFilter::EVFILT_USER,
            EvFlags::empty(),
            FilterFlag::NOTE_TRIGGER,
            0,
        );
        // No event list, so the call returns once the change is applied (or
        // reports its error); Coalescing retries EINTR.
        self.0.kevent(&[trigger], &mut [], Some(ZERO_TIMESPEC))?;
        Ok(())
    }

    fn drain(&self) {
        // EVFILT_USER with EV_CLEAR resets itself on delivery.
    }
}

#[cfg(evio_evfilt_user)]
type WakeSignal = UserSignal;
/// NetBSD and OpenBSD lack `EVFILT_USER`: wake through a self-pipe.
#[cfg(not(evio_evfilt_user))]
type WakeSignal = crate::wakefd::PipeSignal;

/// The change that adds the wake event to the kqueue.
#[cfg(evio_evfilt_user)]
fn wake_change(_: &WakeSignal) -> KEvent {
    let flags = EvFlags::EV_ADD | EvFlags::EV_CLEAR | EvFlags::EV_RECEIPT;
    kevent(
        WAKE_IDENT,
        EventFilter::EVFILT_USER,
        flags,
        FilterFlag::empty(),
        0,
    )
}

/// The change that adds the wake event to the kqueue.
#[cfg(not(evio_evfilt_user))]
fn wake_change(signal: &WakeSignal) -> KEvent {
    let flags = EvFlags::EV_ADD | EvFlags::EV_CLEAR | EvFlags::EV_RECEIPT;
    let ident = signal.watched().as_raw_fd() as usize;
    kevent(
        ident,
        EventFilter::EVFILT_READ,
        flags,
        FilterFlag::empty(),
        0,
    )
}

/// Whether a returned kevent is the wake event.
fn is_wake(ev: &KEvent, wake: &KEvent) -> bool {
    ev.ident() == wake.ident() && ev.filter() == wake.filter()
}

/// What the poller knows about one registered fd.
#[derive(Clone, Copy, Debug)]
struct Registration {
    /// The filters it holds.
    interest: Interest,
    /// Its token, read back from here where `udata` is too narrow.
    token: u64,
}

/// kqueue backend: edge-triggered (`EV_CLEAR`), woken by an `EVFILT_USER`
/// event (a non-blocking self-pipe on OpenBSD and NetBSD).
///
/// Read and write interest are two kernel filters, so one wait may report
/// the same token twice, once per filter. kqueue itself lets `EV_ADD`
/// overwrite an existing registration; this poller keeps a map of registered
/// fds so that [`register`](Poller::register) fails with `EEXIST` and
/// [`reregister`](Poller::reregister)/[`deregister`](Poller::deregister)
/// with `ENOENT` as the [`Poller`] contract says. Deregister before closing
/// an fd, or hand it to [`close`](Poller::close), which only updates that
/// map and closes it: the kernel drops an fd's filters when it is closed.
///
/// Tokens travel in `udata` where it is 64 bits wide; on 32-bit targets the
/// poller looks them up by fd instead, so every `u64` token round-trips.
///
/// ```
/// use evio_sys::{Events, Interest, KqueuePoller, Poller};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut poller = KqueuePoller::new()?;
/// let (a, mut b) = UnixStream::pair()?;
/// poller.register(a.as_raw_fd(), 1, Interest::READABLE)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(8);
/// poller.wait(&mut events, Some(Duration::from_secs(1)))?;
/// assert!(events.iter().any(|e| e.token() == 1 && e.is_readable()));
/// // Edge-triggered: not reported again until new data arrives.
/// poller.wait(&mut events, Some(Duration::ZERO))?;
/// assert!(events.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct KqueuePoller {
    kq: Arc<Kqueue>,
    waker: Arc<Coalescing<WakeSignal>>,
    /// The change that installed the wake event, to recognise it in `wait`.
    wake: KEvent,
    registered: HashMap<RawFd, Registration>,
    /// What `kevent` fills; as long as the largest `Events` seen.
    raw: Vec<KEvent>,
}

impl fmt::Debug for KqueuePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KqueuePoller")
            .field("kq", &self.kq)
            .field("registered", &self.registered.len())
            .finish()
    }
}

/// The errno of a change result that is an error, with `ignore` treated as
/// success.
fn failed(errno: libc::c_int, ignore: Errno) -> Option<libc::c_int> {
    (errno != 0 && errno != ignore as libc::c_int).then_some(errno)
}

// Older macOS releases fail EV_ADD with EPIPE on a pipe whose other end is
// closed, yet still register the filter and report the EOF; like mio, treat
// that as success.
const ADD_IGNORED: Errno = Errno::EPIPE;
// Deleting a filter that is not there (e.g. already removed) is success.
const DELETE_IGNORED: Errno = Errno::ENOENT;

/// The change that adds (or updates and re-arms) `filter` for `ident`,
/// edge-triggered, carrying `token`.
fn add_change(ident: usize, filter: EventFilter, token: u64) -> KEvent {
    let flags = EvFlags::EV_ADD | EvFlags::EV_CLEAR | EvFlags::EV_RECEIPT;
    kevent(ident, filter, flags, FilterFlag::empty(), udata(token))
}

/// The change that deletes `filter` for `ident`.
fn delete_change(ident: usize, filter: EventFilter) -> KEvent {
    let flags = EvFlags::EV_DELETE | EvFlags::EV_RECEIPT;
    kevent(ident, filter, flags, FilterFlag::empty(), 0)
}

/// The `udata` that carries `token`, where it fits.
fn udata(token: u64) -> libc::intptr_t {
    if UDATA_HOLDS_TOKEN {
        token as libc::intptr_t
    } else {
        0
    }
}

impl KqueuePoller {
    /// Creates a close-on-exec kqueue and its wake event.
    ///
    /// # Errors
    /// The OS error of `kqueue`, `fcntl`, `kevent` or `pipe`, e.g. `EMFILE`.
    pub fn new() -> io::Result<KqueuePoller> {
        // nix has no kqueue1, so FD_CLOEXEC is set right after creation.
        let kq = Kqueue::new()?;
        crate::fd::set_cloexec(&kq)?;
        let kq = Arc::new(kq);
        #[cfg(evio_evfilt_user)]
        let signal = UserSignal(kq.clone());
        #[cfg(not(evio_evfilt_user))]
        let signal = WakeSignal::new()?;
        let wake = wake_change(&signal);
        match submit(&kq, &[wake])?[0] {
            0 => {}
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
        Ok(KqueuePoller {
            kq,
            waker: Arc::new(Coalescing::new(signal)),
            wake,
            registered: HashMap::new(),
            raw: Vec::new(),
        })
    }

    /// The token of a returned kevent; `None` for an fd no longer known.
    fn token(&self, ev: &KEvent) -> Option<u64> {
        if UDATA_HOLDS_TOKEN {
            Some(ev.udata() as u64)
        } else {
            self.registered.get(&(ev.ident() as RawFd)).map(|r| r.token)
        }
    }

    /// Deletes the filters of `old` for `fd`.
    fn delete(&self, fd: RawFd, old: Interest) -> io::Result<()> {
        let mut changes = Changes::new();
        for (had, filter) in [
            (old.is_readable(), EventFilter::EVFILT_READ),
            (old.is_writable(), EventFilter::EVFILT_WRITE),
        ] {
            if had {
                changes.push(delete_change(fd as usize, filter));
            }
        }
        let errs = submit(&self.kq, changes.as_slice())?;
        match errs.iter().find_map(|&e| failed(e, DELETE_IGNORED)) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl Poller for KqueuePoller {
    const EDGE_TRIGGERED: bool = true;

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if self.registered.contains_key(&fd) {
            return Err(Errno::EEXIST.into());
        }
        let ident = fd as usize;
        let mut changes = Changes::new();
        for (want, filter) in [
            (interest.is_readable(), EventFilter::EVFILT_READ),
            (interest.is_writable(), EventFilter::EVFILT_WRITE),
        ] {
            if want {
                changes.push(add_change(ident, filter, token));
            }
        }
        if changes.len == 0 {
            // No filter to add, so let the kernel validate the fd another way.
            crate::fd::check_open(fd)?;
        } else {
            let errs = submit(&self.kq, changes.as_slice())?;
            let first = errs[..changes.len]
                .iter()
                .find_map(|&e| failed(e, ADD_IGNORED));
            if let Some(errno) = first {
                // Leave the fd unregistered: undo the filters that were added.
                let mut undo = Changes::new();
                for (change, e) in changes.as_slice().iter().zip(errs) {
                    if failed(e, ADD_IGNORED).is_none() {
                        if let Ok(filter) = change.filter() {
                            undo.push(delete_change(ident, filter));
                        }
                    }
                }
                let _ = submit(&self.kq, undo.as_slice());
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        self.registered.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let old = self.registered.get(&fd).ok_or(Errno::ENOENT)?.interest;
        let ident = fd as usize;
        let mut changes = Changes::new();
        for (want, had, filter) in [
            (
                interest.is_readable(),
                old.is_readable(),
                EventFilter::EVFILT_READ,
            ),
            (
                interest.is_writable(),
                old.is_writable(),
                EventFilter::EVFILT_WRITE,
            ),
        ] {
            if want {
                // Re-adding an existing filter updates its udata and re-arms
                // it, so current readiness is reported again.
                changes.push(add_change(ident, filter, token));
            } else if had {
                changes.push(delete_change(ident, filter));
            }
        }
        let errs = submit(&self.kq, changes.as_slice())?;
        for (change, errno) in changes.as_slice().iter().zip(errs) {
            let ignore = if change.flags().contains(EvFlags::EV_DELETE) {
                DELETE_IGNORED
            } else {
                ADD_IGNORED
            };
            if let Some(errno) = failed(errno, ignore) {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        self.registered.insert(fd, Registration { interest, token });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let old = self.registered.remove(&fd).ok_or(Errno::ENOENT)?;
        self.delete(fd, old.interest)
    }

    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        // Closing a descriptor removes its filters from every kqueue (they
        // belong to the descriptor, so duplicates do not keep them alive):
        // only the map needs updating.
        let known = self.registered.remove(&fd.as_raw_fd());
        drop(fd);
        known.map(drop).ok_or_else(|| Errno::ENOENT.into())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let cap = events.capacity().min(libc::c_int::MAX as usize);
        if self.raw.len() < cap {
            self.raw.resize(cap, blank());
        }
        let timeout = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let n = match self.kq.kevent(&[], &mut self.raw[..cap], timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for ev in &self.raw[..n] {
            if is_wake(ev, &self.wake) {
                self.waker.drain();
                events.set_woken();
                continue;
            }
            let kflags = ev.flags();
            let eof = kflags.contains(EvFlags::EV_EOF);
            let mut flags = 0;
            if kflags.contains(EvFlags::EV_ERROR) {
                flags |= Event::ERROR;
            } else if ev.filter() == Ok(EventFilter::EVFILT_READ) {
                flags |= Event::READABLE;
                if eof {
                    flags |= Event::READ_CLOSED;
                }
            } else if ev.filter() == Ok(EventFilter::EVFILT_WRITE) {
                flags |= Event::WRITABLE;
                if eof {
                    flags |= Event::HANGUP;
                }
            }
            // With EV_EOF, a socket's pending error (if any) is in fflags.
            if eof && !ev.fflags().is_empty() {
                flags |= Event::ERROR;
            }
            if flags == 0 {
                continue;
            }
            if let Some(token) = self.token(ev) {
                events.push(Event::new(token, flags));
            }
        }
        Ok(events.len())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }
}
