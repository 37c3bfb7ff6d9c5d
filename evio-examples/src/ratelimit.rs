//! Rate-limited warnings: the first of a burst is printed, the rest are
//! counted and summed up in at most one line per interval.
//!
//! A server that logs one line per failed event (the proxy, per failed dial
//! to a backend that is down) can be made to write megabytes a second by
//! anyone who can connect. [`Warnings`] prints a warning only if none was
//! printed during the last interval; the ones in between are counted, and
//! the next warning printed after the interval is preceded by one summary
//! line with that count:
//!
//! ```text
//! proxy: connecting to 127.0.0.1:6379: Connection refused (os error 111)
//! proxy: 48211 similar warnings suppressed in the last 1.0 s
//! proxy: connecting to 127.0.0.1:6379: Connection refused (os error 111)
//! ```
//!
//! Suppressed warnings that no later warning follows are reported by
//! [`Warnings::flush`] (call it from a periodic tick, or at exit).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use evio_examples::ratelimit::Warnings;
//!
//! let mut w = Warnings::new("proxy", Duration::from_secs(1));
//! let mut log = Vec::new();
//! let t = Instant::now();
//! for i in 0..1000 {
//!     w.warn_at(t, &mut log, format_args!("failure {i}"));
//! }
//! w.warn_at(t + Duration::from_secs(2), &mut log, format_args!("failure again"));
//! let log = String::from_utf8(log).unwrap();
//! assert_eq!(
//!     log,
//!     "proxy: failure 0\n\
//!      proxy: 999 similar warnings suppressed in the last 2.0 s\n\
//!      proxy: failure again\n"
//! );
//! ```

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A rate limiter for one kind of warning; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Warnings {
    prefix: &'static str,
    interval: Duration,
    /// When the last line was printed.
    last: Option<Instant>,
    /// Warnings not printed since then.
    suppressed: u64,
}

impl Warnings {
    /// A limiter printing lines that start with `prefix: `, at most one
    /// warning (plus one summary line) per `interval`.
    pub fn new(prefix: &'static str, interval: Duration) -> Warnings {
        Warnings {
            prefix,
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Prints `msg` to stderr, or counts it if a line was printed less than
    /// an interval ago. Returns whether it was printed.
    pub fn warn(&mut self, msg: fmt::Arguments<'_>) -> bool {
        self.warn_at(Instant::now(), &mut io::stderr().lock(), msg)
    }

    /// [`warn`](Warnings::warn) at time `now`, writing to `out` (for tests).
    /// Write errors are ignored: a warning is not worth failing for.
    pub fn warn_at(&mut self, now: Instant, out: &mut impl Write, msg: fmt::Arguments<'_>) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            self.suppressed += 1;
            return false;
        }
        self.summary(now, out);
        let _ = writeln!(out, "{}: {msg}", self.prefix);
        self.last = Some(now);
        true
    }

    /// Prints the summary of the warnings suppressed so far, if any and if
    /// the interval has passed (so that a burst that just stopped is not
    /// reported twice a second).
    pub fn flush(&mut self) {
        self.flush_at(Instant::now(), &mut io::stderr().lock());
    }

    /// [`flush`](Warnings::flush) at time `now`, writing to `out`.
    pub fn flush_at(&mut self, now: Instant, out: &mut impl Write) {
        if self.suppressed > 0
            && self
                .last
                .is_some_and(|t| now.duration_since(t) >= self.interval)
        {
            self.summary(now, out);
            self.last = Some(now);
        }
    }

    /// How many warnings have been counted and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn summary(&mut self, now: Instant, out: &mut impl Write) {
        if self.suppressed == 0 {
            return;
        }
        let since = self.last.map_or(Duration::ZERO, |t| now.duration_since(t));
        let _ = writeln!(
            out,
            "{}: {} similar warning{} suppressed in the last {:.1} s",
            self.prefix,
            self.suppressed,
            if self.suppressed == 1 { "" } else { "s" },
            since.as_secs_f64()
        );
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_a_summary() {
        let mut w = Warnings::new("x", Duration::from_secs(1));
        let t = Instant::now();
        let mut out = Vec::new();
        let ms = Duration::from_millis;
        assert!(w.warn_at(t, &mut out, format_args!("a")));
        assert!(!w.warn_at(t + ms(10), &mut out, format_args!("b")));
        assert!(!w.warn_at(t + ms(999), &mut out, format_args!("c")));
        assert_eq!(w.suppressed(), 2);
        // Flushing before the interval prints nothing.
        w.flush_at(t + ms(500), &mut out);
        assert_eq!(out, b"x: a\n");
        w.flush_at(t + ms(1500), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "x: a\nx: 2 similar warnings suppressed in the last 1.5 s\n"
        );
        // The flush counts as a line: the next warning waits an interval.
        assert!(!w.warn_at(t + ms(2000), &mut out, format_args!("d")));
        assert!(w.warn_at(t + ms(2600), &mut out, format_args!("e")));
        assert!(String::from_utf8_lossy(&out)
            .ends_with("x: 1 similar warning suppressed in the last 1.1 s\nx: e\n"));
        // Nothing suppressed: no summary.
        let mut quiet = Warnings::new("x", Duration::from_secs(1));
        let mut out = Vec::new();
        quiet.warn_at(t, &mut out, format_args!("a"));
        quiet.warn_at(t + ms(3000), &mut out, format_args!("b"));
        assert_eq!(out, b"x: a\nx: b\n");
    }
}
