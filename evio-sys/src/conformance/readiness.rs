//! Checks of what a wait reports for sockets: readiness, peers closing,
//! edge- versus level-triggering, and many sockets at once.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::{Events, Interest, Poller};

use super::harness::{new_poller, New};
use super::util::{
    collect_tokens, events_for, poller_with, raise_nofile, registered_pairs, reported_readable,
    tcp_pair, unix_pair, wait_ready, write_each, Sock, QUIET,
};
use super::Options;

/// Read and write readiness of a connected pair: `a` is registered for
/// reading only, `b` for writing only.
fn readiness<P: Poller, S: Sock>(new: &New<P>, (mut a, mut b): (S, S)) {
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::READABLE, 64);
    poller
        .register(b.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();

    let (ev, seen) = wait_ready(&mut poller, &mut events, 2, Interest::WRITABLE);
    assert!(
        !ev.is_readable(),
        "b has no read interest and no data: {ev:?}"
    );
    assert!(
        seen.iter().all(|e| e.token() != 1),
        "a has nothing to read yet but was reported: {seen:?}"
    );
    let early = events_for(&mut poller, &mut events, 1, Duration::from_millis(20));
    assert!(early.is_empty(), "a reported before any write: {early:?}");

    b.write_all(b"ping").unwrap();
    let (ev, seen) = wait_ready(&mut poller, &mut events, 1, Interest::READABLE);
    assert!(!ev.is_writable(), "a has no write interest: {ev:?}");
    assert!(
        !ev.is_read_closed() && !ev.is_hangup() && !ev.is_error(),
        "the peer is open: {ev:?}"
    );
    assert!(
        seen.iter().all(|e| e.token() != 2 || !e.is_readable()),
        "b has nothing to read: {seen:?}"
    );
    let mut buf = [0u8; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");

    poller.deregister(a.as_raw_fd()).unwrap();
    poller.deregister(b.as_raw_fd()).unwrap();
}

/// How a peer goes away in [`closed_peer`].
#[derive(Clone, Copy, Debug)]
enum Close {
    /// `shutdown(SHUT_WR)`: the peer stays open but sends EOF.
    Shutdown,
    /// The peer's fd is closed.
    Drop,
}

/// A peer that shuts down or closes is reported: readable, plus
/// `read_closed` or `hangup` where the backend can tell.
fn closed_peer<P: Poller, S: Sock>(
    new: &New<P>,
    (mut a, b): (S, S),
    how: Close,
    reports_close: bool,
) {
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::READABLE, 8);
    let _kept = match how {
        Close::Shutdown => {
            b.shut_write().unwrap();
            Some(b)
        }
        Close::Drop => {
            drop(b);
            None
        }
    };
    let (ev, _) = wait_ready(&mut poller, &mut events, 1, Interest::READABLE);
    if reports_close {
        assert!(
            ev.is_read_closed() || ev.is_hangup(),
            "{how:?}: peer close not flagged: {ev:?}"
        );
    }
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf).unwrap(), 0, "{how:?}: expected EOF");
    poller.deregister(a.as_raw_fd()).unwrap();
}

/// Unread data is reported again by a level-triggered backend, and not by
/// an edge-triggered one.
pub(super) fn edge_vs_level<P: Poller>(new: &New<P>, _: &Options) {
    let (mut poller, mut events, _a, mut b) = reported_readable(new);
    let again = events_for(&mut poller, &mut events, 1, QUIET);
    if P::EDGE_TRIGGERED {
        assert!(
            again.is_empty(),
            "edge-triggered, yet reported again: {again:?}"
        );
        // New data is a new edge.
        b.write_all(b"y").unwrap();
        wait_ready(&mut poller, &mut events, 1, Interest::READABLE);
    } else {
        assert!(
            again.iter().any(|e| e.is_readable()),
            "level-triggered, yet unread data not reported again: {again:?}"
        );
    }
}

/// A writable socket registered for both directions: edge-triggered
/// backends report it writable once until something changes; level-triggered
/// ones keep reporting it.
fn writable_once<P: Poller, S: Sock>(new: &New<P>, (a, _b): (S, S)) {
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::BOTH, 8);
    let (_, seen) = wait_ready(&mut poller, &mut events, 1, Interest::WRITABLE);
    assert!(
        seen.iter().all(|e| !e.is_readable()),
        "nothing to read yet: {seen:?}"
    );
    let again = events_for(&mut poller, &mut events, 1, QUIET);
    if P::EDGE_TRIGGERED {
        let writable = seen.iter().filter(|e| e.is_writable()).count();
        assert_eq!(writable, 1, "writable reported {writable} times: {seen:?}");
        assert!(
            again.is_empty(),
            "edge-triggered, yet reported again: {again:?}"
        );
    } else {
        assert!(
            again.iter().any(|e| e.is_writable()),
            "level-triggered, yet writable not reported again: {again:?}"
        );
    }
}

/// 1,000 socket pairs registered at once are all reported, even through an
/// `Events` much smaller than the set.
pub(super) fn many_sockets<P: Poller>(new: &New<P>, _: &Options) {
    let soft = raise_nofile();
    // Two fds per pair, several backends' tests in parallel, some slack.
    let count = (soft.saturating_sub(256) / 8).min(1000) as usize;
    if count < 1000 {
        eprintln!("RLIMIT_NOFILE is {soft}: testing {count} socket pairs instead of 1000");
    }
    assert!(
        count >= 100,
        "RLIMIT_NOFILE {soft} is too low for this test"
    );

    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(128);
    let mut pairs = registered_pairs(&mut poller, count, |i| i as u64);
    write_each(&mut pairs);
    let expected: HashSet<u64> = (0..count as u64).collect();
    let got = collect_tokens(&mut poller, &mut events, &expected, |e| {
        assert!(e.is_readable(), "{e:?}")
    });
    assert_eq!(got.len(), count, "not every socket was reported readable");

    // Once drained, nothing is reported any more.
    let mut buf = [0u8; 8];
    for (a, _) in pairs.iter_mut() {
        assert_eq!(a.read(&mut buf).unwrap(), 1);
    }
    let n = poller.wait(&mut events, Some(QUIET)).unwrap();
    assert_eq!(n, 0, "drained sockets reported: {events:?}");

    // Deregister in an order that moves entries around in array backends.
    for i in (0..count).step_by(2).chain((1..count).step_by(2)) {
        poller.deregister(pairs[i].0.as_raw_fd()).unwrap();
    }
}

/// [`readiness`] on a unix socket pair.
pub(super) fn unix_readiness<P: Poller>(new: &New<P>, _: &Options) {
    readiness(new, unix_pair());
}

/// [`readiness`] on a loopback TCP connection.
pub(super) fn tcp_readiness<P: Poller>(new: &New<P>, _: &Options) {
    readiness(new, tcp_pair());
}

/// [`closed_peer`]: a unix peer closes.
pub(super) fn unix_peer_closed<P: Poller>(new: &New<P>, o: &Options) {
    closed_peer(new, unix_pair(), Close::Drop, o.peer_close_flagged);
}

/// [`closed_peer`]: a unix peer shuts down its writing side.
pub(super) fn unix_peer_shutdown<P: Poller>(new: &New<P>, o: &Options) {
    closed_peer(new, unix_pair(), Close::Shutdown, o.peer_close_flagged);
}

/// [`closed_peer`]: a TCP peer closes.
pub(super) fn tcp_peer_closed<P: Poller>(new: &New<P>, o: &Options) {
    closed_peer(new, tcp_pair(), Close::Drop, o.peer_close_flagged);
}

/// [`closed_peer`]: a TCP peer shuts down its writing side.
pub(super) fn tcp_peer_shutdown<P: Poller>(new: &New<P>, o: &Options) {
    closed_peer(new, tcp_pair(), Close::Shutdown, o.peer_close_flagged);
}

/// [`writable_once`] on a unix socket pair.
pub(super) fn unix_writable_once<P: Poller>(new: &New<P>, _: &Options) {
    writable_once(new, unix_pair());
}

/// [`writable_once`] on a loopback TCP connection.
pub(super) fn tcp_writable_once<P: Poller>(new: &New<P>, _: &Options) {
    writable_once(new, tcp_pair());
}
