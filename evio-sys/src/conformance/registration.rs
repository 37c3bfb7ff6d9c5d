//! Checks of the registration calls: register, reregister, deregister and
//! close, their errors, and tokens.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::{Events, Interest, Poller};

use super::harness::{new_poller, New};
use super::util::{
    assert_only_token, collect_tokens, errno, events_for, poller_with, registered_pairs,
    reported_readable, unix_pair, wait_ready, wait_until, write_each, QUIET,
};
use super::Options;

/// Reregistering switches both the interest and the token.
pub(super) fn reregister<P: Poller>(new: &New<P>, _: &Options) {
    let (a, mut b) = unix_pair();
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::READABLE, 64);

    poller
        .reregister(a.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();
    let (_, seen) = wait_ready(&mut poller, &mut events, 2, Interest::WRITABLE);
    assert_only_token(&seen, 2, "old token still reported");

    b.write_all(b"x").unwrap();
    poller
        .reregister(a.as_raw_fd(), 3, Interest::READABLE)
        .unwrap();
    let (ev, seen) = wait_ready(&mut poller, &mut events, 3, Interest::READABLE);
    assert!(!ev.is_writable(), "write interest was dropped: {ev:?}");
    assert_only_token(&seen, 3, "old token still reported");
    poller.deregister(a.as_raw_fd()).unwrap();
}

/// A deregistered fd is not reported any more, even as new data arrives.
pub(super) fn deregister<P: Poller>(new: &New<P>, _: &Options) {
    let (mut poller, mut events, a, mut b) = reported_readable(new);

    poller.deregister(a.as_raw_fd()).unwrap();
    b.write_all(b"more").unwrap();
    let late = events_for(&mut poller, &mut events, 1, Duration::from_millis(100));
    assert!(late.is_empty(), "reported after deregister: {late:?}");
    assert_eq!(
        errno(poller.deregister(a.as_raw_fd())),
        Some(libc::ENOENT),
        "second deregister"
    );
}

/// Deregistering fds in the middle of the set leaves the others intact (and
/// reported with their own tokens).
pub(super) fn deregister_keeps_others<P: Poller>(new: &New<P>, _: &Options) {
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(64);
    let mut pairs = registered_pairs(&mut poller, 10, |i| 100 + i as u64);
    let removed = [0usize, 4, 5, 9];
    for &i in &removed {
        poller.deregister(pairs[i].0.as_raw_fd()).unwrap();
    }
    write_each(&mut pairs);
    let expected: HashSet<u64> = (0..10)
        .filter(|i| !removed.contains(i))
        .map(|i| 100 + i as u64)
        .collect();
    let got = collect_tokens(&mut poller, &mut events, &expected, |e| {
        assert!(e.is_readable(), "{e:?}")
    });
    assert_eq!(got, expected);
    for (i, (a, _)) in pairs.iter().enumerate() {
        let r = poller.deregister(a.as_raw_fd());
        if removed.contains(&i) {
            assert_eq!(errno(r), Some(libc::ENOENT), "pair {i} was already removed");
        } else {
            r.unwrap_or_else(|e| panic!("deregister pair {i}: {e}"));
        }
    }
}

/// Invalid and closed fds are refused with EBADF.
pub(super) fn register_bad_fd<P: Poller>(new: &New<P>, _: &Options) {
    let mut poller = new_poller(new);
    for fd in [-1, 1_000_000] {
        assert_eq!(
            errno(poller.register(fd, 1, Interest::READABLE)),
            Some(libc::EBADF),
            "register({fd})"
        );
    }
    // Runs exclusively (see the harness): no other check takes the number
    // meanwhile.
    let closed: RawFd = {
        let (a, _b) = UnixStream::pair().unwrap();
        a.as_raw_fd()
    };
    for interest in [Interest::READABLE, Interest::WRITABLE, Interest::BOTH] {
        assert_eq!(
            errno(poller.register(closed, 1, interest)),
            Some(libc::EBADF),
            "register(closed fd {closed}, {interest:?})"
        );
    }
    assert!(
        poller.deregister(closed).is_err(),
        "a refused fd must stay unregistered"
    );
    // The poller still works.
    let (a, _b) = unix_pair();
    let mut events = Events::with_capacity(8);
    poller
        .register(a.as_raw_fd(), 2, Interest::WRITABLE)
        .unwrap();
    wait_ready(&mut poller, &mut events, 2, Interest::WRITABLE);
}

/// Registering twice fails with EEXIST and leaves the first registration
/// alone; reregister/deregister of an unknown fd fail with ENOENT.
pub(super) fn register_twice<P: Poller>(new: &New<P>, _: &Options) {
    let (a, mut b) = unix_pair();
    let (mut poller, mut events) = poller_with(new, a.as_raw_fd(), 1, Interest::READABLE, 8);
    assert_eq!(
        errno(poller.register(a.as_raw_fd(), 2, Interest::BOTH)),
        Some(libc::EEXIST)
    );
    b.write_all(b"x").unwrap();
    let (ev, seen) = wait_ready(&mut poller, &mut events, 1, Interest::READABLE);
    assert!(
        !ev.is_writable(),
        "interest changed by a failed register: {ev:?}"
    );
    assert_only_token(&seen, 1, "token changed by a failed register");

    let (c, _d) = unix_pair();
    assert_eq!(
        errno(poller.reregister(c.as_raw_fd(), 3, Interest::READABLE)),
        Some(libc::ENOENT),
        "reregister of an unregistered fd"
    );
    assert_eq!(
        errno(poller.deregister(c.as_raw_fd())),
        Some(libc::ENOENT),
        "deregister of an unregistered fd"
    );
}

/// Tokens round-trip exactly: every value but `u64::MAX`, including those
/// with high bits set, which a pointer-sized kernel field would truncate on
/// 32-bit targets. Reregistering switches to another such token.
pub(super) fn tokens_round_trip<P: Poller>(new: &New<P>, _: &Options) {
    const TOKENS: [u64; 9] = [
        0,
        1,
        0x7fff_ffff,
        0xffff_ffff,
        1 << 32,
        (1 << 32) + 5,
        1 << 63,
        (1 << 63) | (7 << 32) | 9,
        u64::MAX - 1,
    ];
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(64);
    let mut pairs = registered_pairs(&mut poller, TOKENS.len(), |i| TOKENS[i]);
    write_each(&mut pairs);
    let expected: HashSet<u64> = TOKENS.into_iter().collect();
    let got = collect_tokens(&mut poller, &mut events, &expected, |_| ());
    let missing: Vec<String> = expected
        .difference(&got)
        .map(|t| format!("{t:#x}"))
        .collect();
    assert!(missing.is_empty(), "tokens never reported: {missing:?}");

    let high = (1 << 63) | (u64::from(u32::MAX) << 32) | 3;
    let fd = pairs[0].0.as_raw_fd();
    poller.reregister(fd, high, Interest::READABLE).unwrap();
    wait_until(&mut poller, &mut events, "readable event, new token", |e| {
        e.token() == high
    });
    for (a, _) in &pairs {
        poller.deregister(a.as_raw_fd()).unwrap();
    }
}

/// Pairs of fds until one of them has the number `want` (free, as the
/// check runs exclusively, unless something outside the suite took it).
fn pair_numbered(want: RawFd) -> (UnixStream, UnixStream) {
    let mut spare = Vec::new();
    for _ in 0..64 {
        let (a, b) = unix_pair();
        if a.as_raw_fd() == want {
            return (a, b);
        }
        if b.as_raw_fd() == want {
            return (b, a);
        }
        spare.push((a, b));
    }
    eprintln!("fd {want} was taken outside the suite: registering another number");
    spare.pop().expect("64 pairs")
}

/// `close` drops the registration with the fd: an event that was pending
/// is not reported after it, and a new fd that gets the same number can be
/// registered (with a new token) and is reported. Closing an fd that was
/// never registered closes it, with `Ok` or `ENOENT`.
pub(super) fn close<P: Poller>(new: &New<P>, _: &Options) {
    let mut poller = new_poller(new);
    let mut events = Events::with_capacity(8);
    let (a, mut b) = unix_pair();
    let number = a.as_raw_fd();
    poller.register(number, 1, Interest::READABLE).unwrap();
    b.write_all(b"x").unwrap();
    poller
        .close(OwnedFd::from(a))
        .expect("close a registered fd");
    let late = events_for(&mut poller, &mut events, 1, QUIET);
    assert!(late.is_empty(), "reported after close: {late:?}");

    // Runs exclusively (see the harness): the number is still free.
    let (c, mut d) = pair_numbered(number);
    poller
        .register(c.as_raw_fd(), 2, Interest::READABLE)
        .unwrap_or_else(|e| panic!("register a new fd numbered {}: {e}", c.as_raw_fd()));
    d.write_all(b"y").unwrap();
    let (_, seen) = wait_ready(&mut poller, &mut events, 2, Interest::READABLE);
    assert_only_token(&seen, 2, "the closed fd's token came back");
    poller.close(OwnedFd::from(c)).expect("close the new fd");
    drop(b);

    let (e, _f) = unix_pair();
    let r = poller.close(OwnedFd::from(e));
    assert!(
        matches!(errno(r), None | Some(libc::ENOENT)),
        "close of an unregistered fd"
    );
}

/// Level-triggered backends: with no interest, held data is not reported,
/// a peer's reset is.
pub(super) fn no_interest<P: Poller>(new: &New<P>, _: &Options) {
    if P::EDGE_TRIGGERED {
        return;
    }
    let (client, server) = super::util::tcp_pair();
    let (mut poller, mut events) = poller_with(new, server.as_raw_fd(), 7, Interest::READABLE, 64);
    poller
        .reregister(server.as_raw_fd(), 7, Interest::NONE)
        .unwrap();
    (&client).write_all(b"unread").unwrap();
    let seen = events_for(&mut poller, &mut events, 7, QUIET);
    assert!(seen.is_empty(), "data reported with no interest: {seen:?}");
    // A reset: close with SO_LINGER 0.
    crate::net::set_linger(&client, Some(Duration::ZERO)).unwrap();
    drop(client);
    let (ev, _) = wait_until(&mut poller, &mut events, "error or hang-up, token 7", |e| {
        e.token() == 7 && (e.is_error() || e.is_hangup())
    });
    assert!(
        !ev.is_writable(),
        "writable reported with no interest: {ev:?}"
    );
    poller.deregister(server.as_raw_fd()).unwrap();
}
