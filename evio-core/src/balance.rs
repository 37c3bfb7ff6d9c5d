//! Spreading accepted connections over loops: [`LoadBalance`] and the
//! acceptor's picker.

use std::sync::Arc;

use crate::mailbox::Mailbox;

/// How accepted connections are spread over loops (only matters with more
/// than one loop).
///
/// Loop 0 accepts every connection and hands it to the chosen loop over
/// that loop's wake channel, so exactly one loop wakes per connection (no
/// thundering herd) and the policy is exact. The cost is one channel send
/// and at most one eventfd write per batch of accepts for another loop.
///
/// ```
/// use evio_core::LoadBalance;
/// assert_eq!(LoadBalance::default(), LoadBalance::Random);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LoadBalance {
    /// A pseudo-random loop for each connection.
    #[default]
    Random,
    /// Loops in turn: with N loops, connection k goes to loop k mod N.
    RoundRobin,
    /// A loop with the fewest open connections (ties go round-robin).
    LeastConnections,
}

/// Picks the loop for each accepted connection. Lives in the accepting
/// loop, so it needs no atomics of its own.
pub(crate) struct Balancer {
    policy: LoadBalance,
    next: usize,
    rng: u64,
}

impl Balancer {
    pub(crate) fn new(policy: LoadBalance, seed: usize) -> Balancer {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Balancer {
            policy,
            next: 0,
            rng: (t ^ (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        }
    }

    pub(crate) fn pick(&mut self, loops: &[Arc<Mailbox>]) -> usize {
        let n = loops.len();
        if n <= 1 {
            return 0;
        }
        match self.policy {
            LoadBalance::Random => {
                // xorshift64*: plenty for spreading connections.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
            }
            LoadBalance::RoundRobin => {
                let i = self.next % n;
                self.next = self.next.wrapping_add(1);
                i
            }
            LoadBalance::LeastConnections => {
                let start = self.next % n;
                self.next = self.next.wrapping_add(1);
                let mut best = start;
                let mut best_count = usize::MAX;
                for k in 0..n {
                    let i = (start + k) % n;
                    let count = loops[i].open_connections();
                    if count < best_count {
                        best = i;
                        best_count = count;
                    }
                }
                best
            }
        }
    }
}
