//! What a poller reports: [`Interest`] in, [`Event`]s out, collected in
//! a reusable [`Events`] buffer.

use std::fmt;

/// Which readiness a registration asks for.
///
/// ```
/// use evio_sys::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both, Interest::BOTH);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// No readiness: the fd stays registered, but only errors and hang-ups
    /// are reported (poll(2) and epoll report those without being asked;
    /// kqueue, whose filters are the interests, reports nothing). A
    /// level-triggered consumer parks a source it will not act on for a
    /// while this way and still learns about a reset.
    pub const NONE: Interest = Interest(0);
    /// Interest in the fd becoming readable (or its peer closing).
    pub const READABLE: Interest = Interest(1);
    /// Interest in the fd becoming writable.
    pub const WRITABLE: Interest = Interest(2);
    /// Both read and write interest.
    pub const BOTH: Interest = Interest(3);

    /// Whether read interest is set.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether write interest is set.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => f.write_str("(none)"),
        }
    }
}

/// One readiness report: a token and what became ready.
///
/// ```
/// use evio_sys::Event;
/// let e = Event::new(3, Event::READABLE | Event::READ_CLOSED);
/// assert!(e.is_readable() && e.is_read_closed() && !e.is_writable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: u64,
    flags: u8,
}

impl Event {
    /// Flag: data (or EOF) can be read.
    pub const READABLE: u8 = 1;
    /// Flag: data can be written.
    pub const WRITABLE: u8 = 2;
    /// Flag: the peer shut down its writing side; reads will reach EOF.
    pub const READ_CLOSED: u8 = 4;
    /// Flag: the fd is in an error state (`EPOLLERR`, `POLLERR`, `EV_ERROR`).
    pub const ERROR: u8 = 8;
    /// Flag: both directions are closed (`EPOLLHUP`, `POLLHUP`, `EV_EOF` on write).
    pub const HANGUP: u8 = 16;

    /// Builds an event; backends and tests use this.
    pub const fn new(token: u64, flags: u8) -> Event {
        Event { token, flags }
    }

    /// The token given at registration.
    pub const fn token(&self) -> u64 {
        self.token
    }

    /// The raw flag bits (`READABLE | WRITABLE | …`).
    pub const fn flags(&self) -> u8 {
        self.flags
    }

    /// Data or EOF can be read.
    pub const fn is_readable(&self) -> bool {
        self.flags & Self::READABLE != 0
    }

    /// Data can be written.
    pub const fn is_writable(&self) -> bool {
        self.flags & Self::WRITABLE != 0
    }

    /// The peer shut down its writing side.
    pub const fn is_read_closed(&self) -> bool {
        self.flags & Self::READ_CLOSED != 0
    }

    /// The fd reported an error condition.
    pub const fn is_error(&self) -> bool {
        self.flags & Self::ERROR != 0
    }

    /// The connection is closed in both directions.
    pub const fn is_hangup(&self) -> bool {
        self.flags & Self::HANGUP != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("token", &self.token)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("read_closed", &self.is_read_closed())
            .field("error", &self.is_error())
            .field("hangup", &self.is_hangup())
            .finish()
    }
}

/// A reusable buffer of events filled by [`Poller::wait`](crate::Poller::wait).
///
/// Its capacity bounds how many events one wait returns; it never grows, so a
/// loop that reuses it allocates nothing while running.
///
/// ```
/// use evio_sys::{Event, Events};
/// let mut events = Events::with_capacity(4);
/// events.push(Event::new(1, Event::WRITABLE));
/// assert_eq!(events.len(), 1);
/// assert!(events.iter().next().unwrap().is_writable());
/// events.clear();
/// assert!(events.is_empty() && !events.is_woken());
/// ```
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    woken: bool,
}

impl Events {
    /// An empty buffer that holds up to `capacity` events (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity.max(1)),
            woken: false,
        }
    }

    /// How many events one wait can return.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// Number of events stored.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Iterates over the stored events.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Whether the last wait was ended by a [`Waker`](crate::Waker).
    pub fn is_woken(&self) -> bool {
        self.woken
    }

    /// Removes all events and the woken mark. Backends call this first in
    /// [`Poller::wait`](crate::Poller::wait).
    pub fn clear(&mut self) {
        self.list.clear();
        self.woken = false;
    }

    /// Stores one event; ignored when full, so a buffer never reallocates.
    /// Backends call this.
    pub fn push(&mut self, event: Event) {
        if self.list.len() < self.list.capacity() {
            self.list.push(event);
        }
    }

    /// Marks that a wake ended the wait. Backends call this.
    pub fn set_woken(&mut self) {
        self.woken = true;
    }

    /// Whether no more events fit.
    pub fn is_full(&self) -> bool {
        self.list.len() == self.list.capacity()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
