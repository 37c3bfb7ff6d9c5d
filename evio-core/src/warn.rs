//! [`RateLimited`]: warnings about a condition that repeats (accept
//! failing while out of descriptors, a poller refusing registrations, a
//! backend that is down) are logged the first time, then at most once per
//! interval with the count of the ones held back, so a flood cannot fill
//! the log. The core uses it for its own warnings; servers built on it can
//! use it for theirs.

use std::time::{Duration, Instant};

/// The least time between two warnings of one kind, by default.
const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of warning: logged at most once per interval, with the number
/// of warnings held back since the last one logged.
///
/// Not a logger: it decides *whether* to log and hands the count to the
/// closure, which logs (with `tracing`, to stderr, anywhere).
///
/// ```
/// use evio_core::RateLimited;
///
/// let mut refused = RateLimited::default();
/// let mut lines = Vec::new();
/// for _ in 0..1000 {
///     refused.warn(|held| lines.push(format!("connect refused ({held} more held back)")));
/// }
/// assert_eq!(lines, ["connect refused (0 more held back)"]); // one line for the burst
/// // The other 999 are reported by the next warning logged, or by `flush`
/// // from a timer once the interval has passed.
/// assert_eq!(refused.held_back(), 999);
/// ```
#[derive(Debug)]
pub struct RateLimited {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for RateLimited {
    /// One warning a second.
    fn default() -> Self {
        RateLimited::with_interval(INTERVAL)
    }
}

impl RateLimited {
    /// At most one warning per `interval`.
    pub fn with_interval(interval: Duration) -> RateLimited {
        RateLimited {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Calls `log` with the number of warnings held back since the last
    /// one logged, if a warning may be logged now; otherwise counts this
    /// one as held back.
    pub fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.interval => self.suppressed += 1,
            _ => {
                log(self.suppressed);
                self.last = Some(now);
                self.suppressed = 0;
            }
        }
    }

    /// Reports warnings held back by a burst that is over: calls `log` with
    /// their count if there are any and the interval since the last warning
    /// logged has passed. Call it from a periodic timer, so that the end of
    /// a burst is never lost.
    pub fn flush(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.interval);
        if self.suppressed > 0 && due {
            log(self.suppressed);
            self.last = Some(now);
            self.suppressed = 0;
        }
    }

    /// Warnings held back and not reported yet.
    pub fn held_back(&self) -> u64 {
        self.suppressed
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

    #[test]
    fn flush_reports_the_end_of_a_burst_once() {
        let mut w = RateLimited::default();
        let mut logged = Vec::new();
        for _ in 0..10 {
            w.warn(|held| logged.push(held));
        }
        w.flush(|held| logged.push(held));
        assert_eq!(logged, [0], "too soon: nothing yet");
        w.last = Some(Instant::now() - INTERVAL);
        w.flush(|held| logged.push(held));
        w.flush(|held| logged.push(held));
        assert_eq!(logged, [0, 9], "the 9 held back, reported once");
        assert_eq!(w.held_back(), 0);
    }
}
