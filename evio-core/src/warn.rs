//! Rate-limited warnings: a condition that repeats (accept failing while
//! out of descriptors, a poller refusing registrations) is logged the
//! first time, then at most once per interval with the count of the ones
//! held back, so a flood cannot fill the log.

use std::time::{Duration, Instant};

/// The least time between two warnings of one kind.
const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of warning, at one call site.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// Calls `log` with the number of warnings held back since the last
    /// one logged, if a warning may be logged now; otherwise counts it.
    pub(crate) fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < INTERVAL => self.suppressed += 1,
            _ => {
                log(self.suppressed);
                self.last = Some(now);
                self.suppressed = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_once_per_interval_with_the_count() {
        let mut w = RateLimited::default();
        let mut logged = Vec::new();
        for _ in 0..1000 {
            w.warn(|held| logged.push(held));
        }
        assert_eq!(logged, [0], "one line for the whole burst");
        w.last = Some(Instant::now() - INTERVAL);
        w.warn(|held| logged.push(held));
        assert_eq!(logged, [0, 999], "the next line counts what was held back");
    }
}
