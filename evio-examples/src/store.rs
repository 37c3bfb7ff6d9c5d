//! The key-value store of the Redis example.
//!
//! [`Db`] is one hash map of binary keys to binary values with optional
//! expiry times. [`Store`] decides, once at startup, how loops reach it:
//!
//! - [`Store::Local`]: one event loop owns the only `Db`. No lock, no atomic
//!   operation on the hot path: the loop's handler *is* the only thread that
//!   touches the data.
//! - [`Store::Shared`]: several loops share an `Arc` of `Db` shards, each
//!   behind its own `Mutex`, picked by key hash. Two loops contend only when
//!   they touch keys of the same shard at the same moment. Multi-key
//!   commands lock one shard at a time, so `MSET` is not atomic across
//!   shards (Redis's is).
//!
//! Expired keys disappear lazily, when a command touches them, and by a
//! periodic [`sweep`](Store::sweep) (from `on_tick`) that visits only the
//! shards that hold keys with a TTL.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::resp::parse_i64;

/// A stored value.
#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn expired(&self) -> bool {
        // Read the clock only for keys that have a TTL.
        self.expires.is_some_and(|t| t <= Instant::now())
    }
}

/// `SET`'s `NX` / `XX` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCond {
    /// Always set.
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// What a write does to a key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL: the key persists (a plain `SET`).
    Persist,
    /// Keep the TTL the key has, if it exists and has not expired
    /// (`SET ... KEEPTTL`).
    Keep,
    /// Expire at this instant.
    At(Instant),
}

/// Why `INCR` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrError {
    /// The value is not an integer.
    NotAnInteger,
    /// The result would not fit an `i64`.
    Overflow,
}

/// One map of keys to values.
#[derive(Debug, Default)]
pub struct Db {
    map: HashMap<Box<[u8]>, Entry>,
    /// How many entries have a TTL: the sweep skips a `Db` that has none.
    volatile: usize,
}

impl Db {
    /// Keys held, counting expired keys not yet removed; [`sweep`](Db::sweep)
    /// first for an exact count.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `f` with the value of `key`, or `None` if it is absent or
    /// expired (an expired key is removed on the way).
    pub fn read<R>(&mut self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        match self.map.get(key) {
            Some(e) if e.expired() => {}
            other => return f(other.map(|e| &e.value[..])),
        }
        self.del(key);
        f(None)
    }

    /// Sets `key` to `value`, expiring at `expires` (no TTL if `None`),
    /// under `cond`. Returns whether it was set.
    pub fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        expires: Option<Instant>,
        cond: SetCond,
    ) -> bool {
        self.set_ttl(key, value, expires.map_or(Ttl::Persist, Ttl::At), cond)
    }

    /// Sets `key` to `value` under `cond`, its TTL as `ttl` says. Returns
    /// whether it was set.
    pub fn set_ttl(&mut self, key: &[u8], value: &[u8], ttl: Ttl, cond: SetCond) -> bool {
        match self.map.get_mut(key) {
            Some(e) => {
                let live = !e.expired();
                if (cond == SetCond::IfAbsent && live) || (cond == SetCond::IfPresent && !live) {
                    return false;
                }
                // Overwrite in place: reuse the old value's allocation unless
                // it is much larger than the new value.
                if e.value.capacity() > 2 * value.len() + 64 {
                    e.value = value.to_vec();
                } else {
                    e.value.clear();
                    e.value.extend_from_slice(value);
                }
                let expires = match ttl {
                    Ttl::Persist => None,
                    // An expired key is a new key: its old TTL is gone.
                    Ttl::Keep => e.expires.filter(|_| live),
                    Ttl::At(t) => Some(t),
                };
                self.volatile = self.volatile + usize::from(expires.is_some())
                    - usize::from(e.expires.is_some());
                e.expires = expires;
                true
            }
            None if cond == SetCond::IfPresent => false,
            None => {
                let expires = match ttl {
                    Ttl::At(t) => Some(t),
                    Ttl::Persist | Ttl::Keep => None,
                };
                self.volatile += usize::from(expires.is_some());
                let entry = Entry {
                    value: value.to_vec(),
                    expires,
                };
                self.map.insert(key.into(), entry);
                true
            }
        }
    }

    /// Removes `key`; returns whether it existed (and had not expired).
    pub fn del(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(e) => {
                self.volatile -= usize::from(e.expires.is_some());
                !e.expired()
            }
            None => false,
        }
    }

    /// Adds `delta` to the integer value of `key` (0 if absent), keeping its
    /// TTL, and returns the new value.
    pub fn incr_by(&mut self, key: &[u8], delta: i64) -> Result<i64, IncrError> {
        match self.map.get_mut(key) {
            Some(e) if !e.expired() => {
                let n = parse_i64(&e.value).ok_or(IncrError::NotAnInteger)?;
                let n = n.checked_add(delta).ok_or(IncrError::Overflow)?;
                e.value.clear();
                e.value
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                Ok(n)
            }
            _ => {
                let digits = itoa::Buffer::new().format(delta).as_bytes().to_vec();
                self.set(key, &digits, None, SetCond::Always);
                Ok(delta)
            }
        }
    }

    /// Removes every key and releases the map's memory.
    pub fn clear(&mut self) {
        *self = Db::default();
    }

    /// Removes the keys expired at `now`; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        if self.volatile == 0 {
            return 0;
        }
        let before = self.map.len();
        let mut volatile = 0;
        self.map.retain(|_, e| match e.expires {
            Some(t) if t <= now => false,
            Some(_) => {
                volatile += 1;
                true
            }
            None => true,
        });
        self.volatile = volatile;
        before - self.map.len()
    }
}

/// `Db` shards behind their own locks, for several loops.
#[derive(Debug)]
pub struct Sharded {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

/// One shard, on its own cache lines so that two loops locking neighbouring
/// shards do not slow each other down (false sharing).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Db>);

impl Sharded {
    fn shard(&self, key: &[u8]) -> &Mutex<Db> {
        let i = self.hasher.hash_one(key) as usize & (self.shards.len() - 1);
        &self.shards[i].0
    }
}

/// How the event loops reach the data; see the [module docs](self).
#[derive(Debug)]
pub enum Store {
    /// The data of a single-loop server, owned by that loop.
    Local(Db),
    /// The data of a multi-loop server, shared by all loops.
    Shared(Arc<Sharded>),
}

impl Store {
    /// A store for a server with `loops` event loops: [`Store::Local`] for
    /// one, [`Store::Shared`] with a few shards per loop otherwise.
    pub fn for_loops(loops: usize) -> Store {
        if loops <= 1 {
            Store::Local(Db::default())
        } else {
            Store::shared((loops * 16).next_power_of_two())
        }
    }

    /// A shared store of `shards` shards (rounded up to a power of two).
    pub fn shared(shards: usize) -> Store {
        let n = shards.max(1).next_power_of_two();
        Store::Shared(Arc::new(Sharded {
            shards: (0..n).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
        }))
    }

    /// Calls `f` with the `Db` that holds `key`, locked if shared.
    #[inline]
    pub fn with<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Db) -> R) -> R {
        match self {
            Store::Local(db) => f(db),
            Store::Shared(s) => f(&mut s.shard(key).lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// Calls `f` with every `Db`, one at a time.
    pub fn each(&mut self, mut f: impl FnMut(&mut Db)) {
        match self {
            Store::Local(db) => f(db),
            Store::Shared(s) => {
                for shard in s.shards.iter() {
                    f(&mut shard.0.lock().unwrap_or_else(PoisonError::into_inner));
                }
            }
        }
    }

    /// Keys held in all, counting expired keys not yet removed (call
    /// [`sweep`](Store::sweep) first for an exact count).
    pub fn len(&mut self) -> usize {
        let mut n = 0;
        self.each(|db| n += db.len());
        n
    }

    /// Whether no key is held.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Removes every expired key; returns how many.
    pub fn sweep(&mut self) -> usize {
        let now = Instant::now();
        let mut n = 0;
        self.each(|db| n += db.sweep(now));
        n
    }
}

impl Clone for Store {
    /// Shares a [`Store::Shared`]. Panics for a [`Store::Local`]: a second
    /// loop would silently get a second, empty database.
    fn clone(&self) -> Store {
        match self {
            Store::Shared(s) => Store::Shared(s.clone()),
            Store::Local(_) => {
                panic!("Store::Local serves one loop only; use Store::for_loops(n) with n > 1")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn get(store: &mut Store, key: &[u8]) -> Option<Vec<u8>> {
        store.with(key, |db| db.read(key, |v| v.map(<[u8]>::to_vec)))
    }

    #[test]
    fn set_get_del_local_and_shared() {
        for mut store in [Store::for_loops(1), Store::for_loops(4)] {
            assert!(store.with(b"k", |db| db.set(b"k", b"v", None, SetCond::Always)));
            assert_eq!(get(&mut store, b"k").as_deref(), Some(&b"v"[..]));
            assert!(!store.with(b"k", |db| db.set(b"k", b"w", None, SetCond::IfAbsent)));
            assert!(store.with(b"k", |db| db.set(b"k", b"w", None, SetCond::IfPresent)));
            assert!(!store.with(b"x", |db| db.set(b"x", b"w", None, SetCond::IfPresent)));
            assert_eq!(get(&mut store, b"k").as_deref(), Some(&b"w"[..]));
            assert_eq!(store.len(), 1);
            assert!(store.with(b"k", |db| db.del(b"k")));
            assert!(!store.with(b"k", |db| db.del(b"k")));
            assert!(store.is_empty());
        }
    }

    #[test]
    fn incr() {
        let mut db = Db::default();
        assert_eq!(db.incr_by(b"n", 5), Ok(5));
        assert_eq!(db.incr_by(b"n", -7), Ok(-2));
        db.set(b"n", b"9223372036854775807", None, SetCond::Always);
        assert_eq!(db.incr_by(b"n", 1), Err(IncrError::Overflow));
        db.set(b"s", b"abc", None, SetCond::Always);
        assert_eq!(db.incr_by(b"s", 1), Err(IncrError::NotAnInteger));
    }

    #[test]
    fn expiry_is_lazy_and_swept() {
        let mut db = Db::default();
        let soon = Instant::now() + Duration::from_millis(20);
        db.set(b"a", b"1", Some(soon), SetCond::Always);
        db.set(b"b", b"2", Some(soon), SetCond::Always);
        db.set(b"c", b"3", None, SetCond::Always);
        assert_eq!(db.volatile, 2);
        assert_eq!(db.sweep(Instant::now()), 0);
        std::thread::sleep(Duration::from_millis(30));
        assert!(db.read(b"a", |v| v.is_none()));
        assert_eq!(db.len(), 2, "lazily removed on access");
        assert_eq!(db.sweep(Instant::now()), 1);
        assert_eq!(db.volatile, 0);
        assert_eq!(db.len(), 1);
        // NX treats an expired key as absent; SET without EX clears the TTL.
        db.set(b"d", b"1", Some(Instant::now()), SetCond::Always);
        assert!(db.set(b"d", b"2", None, SetCond::IfAbsent));
        assert_eq!(db.volatile, 0);
    }

    #[test]
    fn keep_ttl() {
        let mut db = Db::default();
        let later = Instant::now() + Duration::from_secs(100);
        db.set(b"k", b"1", Some(later), SetCond::Always);
        assert!(db.set_ttl(b"k", b"2", Ttl::Keep, SetCond::Always));
        assert_eq!(db.map[&b"k"[..]].expires, Some(later));
        assert_eq!(db.volatile, 1);
        // A new key, or one whose TTL has passed, gets none.
        assert!(db.set_ttl(b"n", b"1", Ttl::Keep, SetCond::Always));
        assert_eq!(db.map[&b"n"[..]].expires, None);
        db.set(b"e", b"1", Some(Instant::now()), SetCond::Always);
        assert!(db.set_ttl(b"e", b"2", Ttl::Keep, SetCond::IfAbsent));
        assert_eq!(db.map[&b"e"[..]].expires, None);
        assert_eq!(db.volatile, 1);
    }

    #[test]
    fn overwrite_releases_a_much_larger_value() {
        let mut db = Db::default();
        db.set(b"k", &vec![0; 1 << 20], None, SetCond::Always);
        db.set(b"k", b"small", None, SetCond::Always);
        assert!(db.map[&b"k"[..]].value.capacity() < 1024);
    }

    #[test]
    #[should_panic(expected = "one loop only")]
    fn local_store_refuses_to_be_cloned() {
        let _ = Store::for_loops(1).clone();
    }
}
