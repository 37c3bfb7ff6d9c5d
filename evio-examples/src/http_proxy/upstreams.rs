//! The upstream servers: their health (passive and active, shared by every
//! loop through atomics), the balancing policies, and the consistent-hash
//! ring. Nothing here takes a lock: each loop picks with its own cursor and
//! reads the shared state with relaxed atomics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How requests are spread over the upstreams (`--balance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    /// Each loop takes the next upstream in turn (nginx's default).
    #[default]
    RoundRobin,
    /// The upstream with the fewest requests in progress, over all loops.
    LeastConn,
    /// Consistent hashing on the client's address, or on a header's value
    /// with `--hash-header`: an upstream that leaves moves only its share.
    Hash,
}

/// Virtual nodes per upstream on the hash ring (ketama uses 160).
const POINTS_PER_UPSTREAM: u32 = 160;

/// The most upstreams (the retry logic keeps tried ones in a `u64`).
pub const MAX_UPSTREAMS: usize = 64;

/// One upstream's health, shared by every loop.
#[derive(Debug, Default)]
struct Health {
    /// Consecutive failures (connect errors, resets and timeouts before a
    /// response).
    fails: AtomicU32,
    /// Milliseconds since `Upstreams::epoch` until which it is down after
    /// `max_fails` failures; 0 when up.
    down_until_ms: AtomicU64,
    /// The active check's verdict (`--health-check`): `false` while its
    /// probe fails.
    probe_ok: AtomicBool,
    /// Requests in progress, for least-conn.
    active: AtomicUsize,
    /// Failures ever (the metrics).
    failures: AtomicU64,
}

/// The upstream servers and their state.
#[derive(Debug)]
pub struct Upstreams {
    addrs: Vec<SocketAddr>,
    health: Vec<Health>,
    /// (point, upstream), sorted by point.
    ring: Vec<(u64, usize)>,
    balance: Balance,
    max_fails: u32,
    fail_timeout: Duration,
    epoch: Instant,
}

impl Upstreams {
    /// `addrs` balanced with `balance`; an upstream is down for
    /// `fail_timeout` after `max_fails` consecutive failures (0: never).
    ///
    /// # Panics
    /// With no address or more than [`MAX_UPSTREAMS`] (the flag parser
    /// refuses both).
    pub fn new(
        addrs: Vec<SocketAddr>,
        balance: Balance,
        max_fails: u32,
        fail_timeout: Duration,
    ) -> Upstreams {
        assert!(!addrs.is_empty() && addrs.len() <= MAX_UPSTREAMS);
        let mut ring = Vec::with_capacity(addrs.len() * POINTS_PER_UPSTREAM as usize);
        for (i, a) in addrs.iter().enumerate() {
            let name = a.to_string();
            for p in 0..POINTS_PER_UPSTREAM {
                ring.push((fnv1a(&[name.as_bytes(), b"-", &p.to_le_bytes()]), i));
            }
        }
        ring.sort_unstable();
        let health = addrs
            .iter()
            .map(|_| Health {
                probe_ok: AtomicBool::new(true),
                ..Health::default()
            })
            .collect();
        Upstreams {
            addrs,
            health,
            ring,
            balance,
            max_fails,
            fail_timeout,
            epoch: Instant::now(),
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Never: there is at least one.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Upstream `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// The balancing policy.
    pub fn balance(&self) -> Balance {
        self.balance
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether upstream `i` takes requests: not marked down by failures,
    /// and its probe (if any) passes.
    pub fn is_up(&self, i: usize) -> bool {
        let h = &self.health[i];
        h.probe_ok.load(Relaxed) && h.down_until_ms.load(Relaxed) <= self.now_ms()
    }

    /// A request to `i` failed before its response: after `max_fails` in a
    /// row, `i` is down for `fail_timeout`.
    pub fn failed(&self, i: usize) {
        let h = &self.health[i];
        h.failures.fetch_add(1, Relaxed);
        let fails = h.fails.fetch_add(1, Relaxed) + 1;
        if self.max_fails > 0 && fails >= self.max_fails {
            let until = self.now_ms() + u64::try_from(self.fail_timeout.as_millis()).unwrap_or(0);
            h.down_until_ms.store(until.max(1), Relaxed);
            h.fails.store(0, Relaxed);
            tracing::warn!(upstream = %self.addrs[i], "http-proxy: upstream down after {fails} failures");
        }
    }

    /// Upstream `i`'s failures since the start (connect errors, resets and
    /// timeouts before a response).
    pub fn failures(&self, i: usize) -> u64 {
        self.health[i].failures.load(Relaxed)
    }

    /// A response arrived from `i`: its failures start over.
    pub fn succeeded(&self, i: usize) {
        let h = &self.health[i];
        if h.fails.load(Relaxed) != 0 {
            h.fails.store(0, Relaxed);
        }
    }

    /// The active check's verdict for `i`.
    pub fn set_probe(&self, i: usize, ok: bool) {
        let h = &self.health[i];
        if h.probe_ok.swap(ok, Relaxed) != ok {
            let state = if ok { "up" } else { "down" };
            tracing::warn!(upstream = %self.addrs[i], "http-proxy: health check: upstream {state}");
        }
        if ok {
            h.down_until_ms.store(0, Relaxed);
            h.fails.store(0, Relaxed);
        }
    }

    /// Counts a request in progress on `i` (least-conn).
    pub fn begin(&self, i: usize) {
        self.health[i].active.fetch_add(1, Relaxed);
    }

    /// Counts one off (after [`begin`](Upstreams::begin)).
    pub fn end(&self, i: usize) {
        self.health[i].active.fetch_sub(1, Relaxed);
    }

    /// Picks an upstream that is up and not in `tried` (a bit per
    /// upstream): `cursor` is the calling loop's round-robin position,
    /// `key` the hash of the client address or header. `None`: every
    /// candidate is down.
    pub fn pick(&self, cursor: &mut usize, key: u64, tried: u64) -> Option<usize> {
        let n = self.addrs.len();
        let ok = |i: usize| tried & (1 << i) == 0 && self.is_up(i);
        match self.balance {
            Balance::RoundRobin => {
                for _ in 0..n {
                    let i = *cursor % n;
                    *cursor = cursor.wrapping_add(1);
                    if ok(i) {
                        return Some(i);
                    }
                }
                None
            }
            Balance::LeastConn => {
                // Ties go round-robin, so equal upstreams share the load.
                let start = *cursor;
                *cursor = cursor.wrapping_add(1);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| self.health[i].active.load(Relaxed))
            }
            Balance::Hash => {
                let start = self.ring.partition_point(|&(p, _)| p < key);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .find(|&i| ok(i))
            }
        }
    }
}

/// FNV-1a over `parts`: a stable hash, the same in every build.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Spread the low bits (FNV's are weak) over the ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 8000 + i)))
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_down() {
        let u = Upstreams::new(addrs(3), Balance::RoundRobin, 1, Duration::from_secs(60));
        let mut c = 0;
        let picks: Vec<_> = (0..6).map(|_| u.pick(&mut c, 0, 0).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        u.failed(1);
        assert!(!u.is_up(1));
        let picks: Vec<_> = (0..4).map(|_| u.pick(&mut c, 0, 0).unwrap()).collect();
        assert!(!picks.contains(&1));
        assert_eq!(u.pick(&mut c, 0, 0b101), None, "the rest tried");
        u.set_probe(1, true);
        assert!(u.is_up(1));
    }

    #[test]
    fn least_conn_prefers_the_idle() {
        let u = Upstreams::new(addrs(3), Balance::LeastConn, 0, Duration::ZERO);
        u.begin(0);
        u.begin(1);
        assert_eq!(u.pick(&mut 0, 0, 0), Some(2));
        u.end(0);
        u.begin(2);
        assert_eq!(u.pick(&mut 0, 0, 0), Some(0));
    }

    #[test]
    fn hashing_moves_only_the_leavers_share() {
        let u = Upstreams::new(addrs(4), Balance::Hash, 1, Duration::from_secs(60));
        let keys: Vec<u64> = (0..2000u32).map(|k| fnv1a(&[&k.to_le_bytes()])).collect();
        let before: Vec<_> = keys
            .iter()
            .map(|&k| u.pick(&mut 0, k, 0).unwrap())
            .collect();
        for i in 0..4 {
            let share = before.iter().filter(|&&b| b == i).count();
            assert!(
                (250..750).contains(&share),
                "upstream {i} got {share} of 2000"
            );
        }
        u.failed(2);
        let after: Vec<_> = keys
            .iter()
            .map(|&k| u.pick(&mut 0, k, 0).unwrap())
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "a key not on the leaver moved");
            } else {
                assert_ne!(*a, 2);
            }
        }
    }

    #[test]
    fn failures_below_the_limit_keep_it_up() {
        let u = Upstreams::new(addrs(1), Balance::RoundRobin, 3, Duration::from_secs(60));
        u.failed(0);
        u.failed(0);
        u.succeeded(0);
        u.failed(0);
        u.failed(0);
        assert!(u.is_up(0));
        u.failed(0);
        assert!(!u.is_up(0));
    }
}
