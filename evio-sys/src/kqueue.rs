//! kqueue backend (macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly),
//! edge-triggered with `EV_CLEAR`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{cvt, Event, Events, Interest, Poller, Wake, Waker};

/// Type of `kevent.filter` (`u32` on NetBSD, `i16` elsewhere).
#[cfg(target_os = "netbsd")]
type Filter = u32;
/// Type of `kevent.filter` (`u32` on NetBSD, `i16` elsewhere).
#[cfg(not(target_os = "netbsd"))]
type Filter = i16;

/// Type of `kevent.flags` (`u32` on NetBSD, `u16` elsewhere).
#[cfg(target_os = "netbsd")]
type Flags = u32;
/// Type of `kevent.flags` (`u32` on NetBSD, `u16` elsewhere).
#[cfg(not(target_os = "netbsd"))]
type Flags = u16;

/// Converts a token to and from `kevent.udata`, whose type depends on the
/// platform and the libc version (`*mut c_void`, or `intptr_t` on older
/// NetBSD bindings). The value is only ever used as an integer.
trait UData: Copy {
    fn from_token(token: usize) -> Self;
    fn token(self) -> usize;
}

impl UData for *mut libc::c_void {
    fn from_token(token: usize) -> Self {
        token as *mut libc::c_void
    }
    fn token(self) -> usize {
        self as usize
    }
}

impl UData for libc::intptr_t {
    fn from_token(token: usize) -> Self {
        token as libc::intptr_t
    }
    fn token(self) -> usize {
        self as usize
    }
}

/// Builds one kevent change; every other field is zero.
fn kevent(ident: usize, filter: Filter, flags: Flags, fflags: u32, token: usize) -> libc::kevent {
    // SAFETY: `kevent` is a plain C struct of integers and one pointer-sized
    // `udata`, for all of which zero is a valid value.
    let mut kev: libc::kevent = unsafe { std::mem::zeroed() };
    kev.ident = ident;
    kev.filter = filter;
    kev.flags = flags;
    kev.fflags = fflags;
    kev.udata = UData::from_token(token);
    kev
}

/// A buffer of kevents that the poller fills in `wait`.
struct RawEvents(Vec<libc::kevent>);

// SAFETY: the only pointer in a `kevent` is `udata`, which this backend sets
// to an integer token and never dereferences, so moving the buffer to
// another thread shares nothing.
unsafe impl Send for RawEvents {}

fn os_error(code: libc::c_int) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// A zero timeout for calls that must not block.
const ZERO_TIMESPEC: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// Applies up to two changes, each flagged `EV_RECEIPT`, and returns each
/// change's errno (0 = success), in the order of `changes`.
fn submit(kq: RawFd, changes: &[libc::kevent]) -> io::Result<[libc::c_int; 2]> {
    assert!(changes.len() <= 2, "submit takes at most two changes");
    let mut errs: [libc::c_int; 2] = [0; 2];
    if changes.is_empty() {
        return Ok(errs);
    }
    // SAFETY: an all-zero kevent is valid (see `kevent`).
    let mut receipts: [libc::kevent; 2] = unsafe { std::mem::zeroed() };
    let n = loop {
        // SAFETY: `changes` holds `changes.len()` initialised kevents;
        // `receipts` has room for as many; the timeout is a live timespec.
        // With EV_RECEIPT on every change the kernel returns one receipt per
        // change and no pending event, and never blocks.
        let r = unsafe {
            libc::kevent(
                kq,
                changes.as_ptr(),
                changes.len() as _,
                receipts.as_mut_ptr(),
                changes.len() as _,
                &ZERO_TIMESPEC,
            )
        };
        match cvt(r) {
            Ok(n) => break n as usize,
            // Adding and deleting are idempotent (a repeated delete gives
            // ENOENT, which callers ignore), so just try again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    for receipt in &receipts[..n.min(2)] {
        if receipt.flags & libc::EV_ERROR == 0 || receipt.data == 0 {
            continue;
        }
        // Receipts carry the ident and filter of their change.
        if let Some(i) = changes
            .iter()
            .position(|c| c.ident == receipt.ident && c.filter == receipt.filter)
        {
            errs[i] = receipt.data as libc::c_int;
        }
    }
    Ok(errs)
}

/// State shared by the poller and its wakers: the kqueue itself (so a waker
/// never outlives the fd it triggers) and the wake mechanism.
#[derive(Debug)]
struct Shared {
    kq: OwnedFd,
    /// Set by the first wake after the loop consumed the last one; later
    /// wakes see it set and skip the syscall.
    pending: AtomicBool,
    /// Self-pipe (read end, write end) where EVFILT_USER is missing.
    #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
    pipe: (OwnedFd, OwnedFd),
}

/// Ident of the EVFILT_USER wake event.
#[cfg(not(any(target_os = "openbsd", target_os = "netbsd")))]
const WAKE_IDENT: usize = 0;

impl Shared {
    /// Adds the wake event to the kqueue.
    fn install(&self) -> io::Result<()> {
        #[cfg(not(any(target_os = "openbsd", target_os = "netbsd")))]
        let change = kevent(
            WAKE_IDENT,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT,
            0,
            0,
        );
        #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
        let change = kevent(
            self.pipe.0.as_raw_fd() as usize,
            libc::EVFILT_READ,
            libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT,
            0,
            0,
        );
        match submit(self.kq.as_raw_fd(), &[change])?[0] {
            0 => Ok(()),
            errno => Err(os_error(errno)),
        }
    }

    /// Makes the wake event fire.
    #[cfg(not(any(target_os = "openbsd", target_os = "netbsd")))]
    fn signal(&self) -> io::Result<()> {
        let change = kevent(WAKE_IDENT, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER, 0);
        loop {
            // SAFETY: one live, initialised change; no event list, so the
            // call returns once the change is applied (or reports its error).
            let r = unsafe {
                libc::kevent(
                    self.kq.as_raw_fd(),
                    &change,
                    1,
                    std::ptr::null_mut(),
                    0,
                    &ZERO_TIMESPEC,
                )
            };
            match cvt(r) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the wake event fire.
    #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
    fn signal(&self) -> io::Result<()> {
        let byte: u8 = 1;
        loop {
            // SAFETY: writes 1 byte from a live u8 to a pipe we own.
            let r = unsafe { libc::write(self.pipe.1.as_raw_fd(), (&byte as *const u8).cast(), 1) };
            match crate::cvt_size(r) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Pipe full: the poller is certainly woken.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a returned kevent is the wake event.
    fn is_wake(&self, ev: &libc::kevent) -> bool {
        #[cfg(not(any(target_os = "openbsd", target_os = "netbsd")))]
        {
            ev.filter == libc::EVFILT_USER && ev.ident == WAKE_IDENT
        }
        #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
        {
            ev.filter == libc::EVFILT_READ && ev.ident == self.pipe.0.as_raw_fd() as usize
        }
    }

    /// Consumes a delivered wake and re-arms coalescing.
    fn drain(&self) {
        // EVFILT_USER with EV_CLEAR resets itself on delivery; a pipe must be
        // emptied.
        #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
        crate::poll::drain_pipe(self.pipe.0.as_raw_fd());
        // A swap rather than a store so that this acquires what a wake that
        // found `pending` still set published.
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl Wake for Shared {
    fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.signal();
        if result.is_err() {
            self.pending.store(false, Ordering::Release);
        }
        result
    }
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
/// an fd, or that map goes stale. On targets with 32-bit pointers a token
/// must fit in 32 bits (`EINVAL` otherwise), since it travels in `udata`.
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
    shared: Arc<Shared>,
    /// Registered fds and the filters they hold.
    registered: HashMap<RawFd, Interest>,
    raw: RawEvents,
}

impl fmt::Debug for KqueuePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KqueuePoller")
            .field("kq", &self.shared.kq)
            .field("registered", &self.registered.len())
            .finish()
    }
}

/// The token as a `udata` value; `EINVAL` if it does not fit a pointer.
fn token_udata(token: u64) -> io::Result<usize> {
    usize::try_from(token).map_err(|_| os_error(libc::EINVAL))
}

/// Creates a close-on-exec kqueue.
fn new_kqueue() -> io::Result<OwnedFd> {
    #[cfg(target_os = "netbsd")]
    {
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        let kq = cvt(unsafe { libc::kqueue1(libc::O_CLOEXEC) })?;
        // SAFETY: `kq` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(kq) })
    }
    #[cfg(not(target_os = "netbsd"))]
    {
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        let kq = cvt(unsafe { libc::kqueue() })?;
        // SAFETY: `kq` was just returned by the kernel and is owned by no one else.
        let kq = unsafe { OwnedFd::from_raw_fd(kq) };
        // SAFETY: fcntl with integer arguments on the kqueue fd we own.
        cvt(unsafe { libc::fcntl(kq.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(kq)
    }
}

/// The errno of a change result that is an error, with `ignore` treated as
/// success.
fn failed(errno: libc::c_int, ignore: libc::c_int) -> Option<libc::c_int> {
    (errno != 0 && errno != ignore).then_some(errno)
}

// Older macOS releases fail EV_ADD with EPIPE on a pipe whose other end is
// closed, yet still register the filter and report the EOF; like mio, treat
// that as success.
const ADD_IGNORED: libc::c_int = libc::EPIPE;
// Deleting a filter that is not there (e.g. already removed) is success.
const DELETE_IGNORED: libc::c_int = libc::ENOENT;

const ADD: Flags = libc::EV_ADD | libc::EV_CLEAR | libc::EV_RECEIPT;
const DELETE: Flags = libc::EV_DELETE | libc::EV_RECEIPT;

impl KqueuePoller {
    fn kq(&self) -> RawFd {
        self.shared.kq.as_raw_fd()
    }
}

impl Poller for KqueuePoller {
    const EDGE_TRIGGERED: bool = true;

    fn new() -> io::Result<Self> {
        let kq = new_kqueue()?;
        let shared = Shared {
            kq,
            pending: AtomicBool::new(false),
            #[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
            pipe: crate::poll::nonblocking_pipe()?,
        };
        shared.install()?;
        Ok(KqueuePoller {
            shared: Arc::new(shared),
            registered: HashMap::new(),
            raw: RawEvents(Vec::new()),
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if self.registered.contains_key(&fd) {
            return Err(os_error(libc::EEXIST));
        }
        let udata = token_udata(token)?;
        let ident = fd as usize;
        let mut changes = Vec::with_capacity(2);
        if interest.is_readable() {
            changes.push(kevent(ident, libc::EVFILT_READ, ADD, 0, udata));
        }
        if interest.is_writable() {
            changes.push(kevent(ident, libc::EVFILT_WRITE, ADD, 0, udata));
        }
        if changes.is_empty() {
            // No filter to add, so let the kernel validate the fd another way.
            // SAFETY: F_GETFD takes no pointer and only reads the fd's flags.
            cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        } else {
            let errs = submit(self.kq(), &changes)?;
            let first = errs[..changes.len()]
                .iter()
                .find_map(|&e| failed(e, ADD_IGNORED));
            if let Some(errno) = first {
                // Leave the fd unregistered: undo the filters that were added.
                let undo: Vec<libc::kevent> = changes
                    .iter()
                    .zip(errs)
                    .filter(|(_, e)| failed(*e, ADD_IGNORED).is_none())
                    .map(|(c, _)| kevent(ident, c.filter, DELETE, 0, 0))
                    .collect();
                let _ = submit(self.kq(), &undo);
                return Err(os_error(errno));
            }
        }
        self.registered.insert(fd, interest);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let old = *self
            .registered
            .get(&fd)
            .ok_or_else(|| os_error(libc::ENOENT))?;
        let udata = token_udata(token)?;
        let ident = fd as usize;
        let mut changes = Vec::with_capacity(2);
        for (want, had, filter) in [
            (interest.is_readable(), old.is_readable(), libc::EVFILT_READ),
            (
                interest.is_writable(),
                old.is_writable(),
                libc::EVFILT_WRITE,
            ),
        ] {
            if want {
                // Re-adding an existing filter updates its udata and re-arms
                // it, so current readiness is reported again.
                changes.push(kevent(ident, filter, ADD, 0, udata));
            } else if had {
                changes.push(kevent(ident, filter, DELETE, 0, 0));
            }
        }
        let errs = submit(self.kq(), &changes)?;
        for (change, errno) in changes.iter().zip(errs) {
            let ignore = if change.flags & libc::EV_DELETE != 0 {
                DELETE_IGNORED
            } else {
                ADD_IGNORED
            };
            if let Some(errno) = failed(errno, ignore) {
                return Err(os_error(errno));
            }
        }
        self.registered.insert(fd, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let old = self
            .registered
            .remove(&fd)
            .ok_or_else(|| os_error(libc::ENOENT))?;
        let ident = fd as usize;
        let mut changes = Vec::with_capacity(2);
        if old.is_readable() {
            changes.push(kevent(ident, libc::EVFILT_READ, DELETE, 0, 0));
        }
        if old.is_writable() {
            changes.push(kevent(ident, libc::EVFILT_WRITE, DELETE, 0, 0));
        }
        let errs = submit(self.kq(), &changes)?;
        match errs.iter().find_map(|&e| failed(e, DELETE_IGNORED)) {
            Some(errno) => Err(os_error(errno)),
            None => Ok(()),
        }
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.clear();
        let cap = events.capacity().min(libc::c_int::MAX as usize);
        let raw = &mut self.raw.0;
        if raw.capacity() < cap {
            raw.reserve_exact(cap - raw.len());
        }
        let ts;
        let ts_ptr: *const libc::timespec = match timeout {
            None => std::ptr::null(),
            Some(d) => {
                ts = libc::timespec {
                    tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                };
                &ts
            }
        };
        // SAFETY: no changes; the kernel writes at most `cap` entries into
        // `raw`, whose capacity is at least `cap`; `ts_ptr` is null or points
        // to `ts`, alive until the call returns.
        let n = unsafe {
            libc::kevent(
                self.shared.kq.as_raw_fd(),
                std::ptr::null(),
                0,
                raw.as_mut_ptr(),
                cap as _,
                ts_ptr,
            )
        };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised the first `n` entries (n <= cap).
        unsafe { raw.set_len(n) };
        for ev in raw.iter() {
            if self.shared.is_wake(ev) {
                self.shared.drain();
                events.set_woken();
                continue;
            }
            let mut flags = 0;
            if ev.flags & libc::EV_ERROR != 0 {
                flags |= Event::ERROR;
            } else if ev.filter == libc::EVFILT_READ {
                flags |= Event::READABLE;
                if ev.flags & libc::EV_EOF != 0 {
                    flags |= Event::READ_CLOSED;
                }
            } else if ev.filter == libc::EVFILT_WRITE {
                flags |= Event::WRITABLE;
                if ev.flags & libc::EV_EOF != 0 {
                    flags |= Event::HANGUP;
                }
            }
            // With EV_EOF, a socket's pending error (if any) is in fflags.
            if ev.flags & libc::EV_EOF != 0 && ev.fflags != 0 {
                flags |= Event::ERROR;
            }
            if flags != 0 {
                events.push(Event::new(ev.udata.token() as u64, flags));
            }
        }
        raw.clear();
        Ok(events.len())
    }

    fn waker(&self) -> Waker {
        Waker::new(self.shared.clone())
    }
}
