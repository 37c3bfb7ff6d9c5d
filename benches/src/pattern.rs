//! The byte pattern that the load generator sends and checks.
//!
//! Every connection sends one endless byte stream; its byte at stream offset
//! `i` is `TABLE[(start + i) % PERIOD]`, where `TABLE` is pseudo-random and
//! `start` depends on the connection's number. `PERIOD` is prime, so a lost,
//! duplicated, reordered or foreign (another connection's) message shifts the
//! pattern and is caught by comparing what comes back with what was sent, for
//! any message size below `PERIOD`. The table is stored twice over so that
//! every window of up to `PERIOD` bytes is one contiguous slice: sending and
//! checking are plain `write`s and `memcmp`s, with no per-byte work.

/// Length of the pattern (a prime).
pub const PERIOD: usize = 65521;

/// The pattern table.
#[derive(Debug, Clone)]
pub struct Pattern {
    table: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    /// Builds the (fixed, deterministic) table.
    pub fn new() -> Self {
        let mut table = vec![0u8; PERIOD * 2];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in table.iter_mut().take(PERIOD) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
        let (a, b) = table.split_at_mut(PERIOD);
        b.copy_from_slice(a);
        Self { table }
    }

    /// The pattern offset where connection `conn`'s stream starts.
    pub fn start_for(conn: usize) -> usize {
        ((conn as u64 * 40503 + 17) % PERIOD as u64) as usize
    }

    /// Up to `len` bytes (at most `PERIOD`) of the stream that starts at
    /// `start`, from stream offset `offset`.
    pub fn slice(&self, start: usize, offset: u64, len: usize) -> &[u8] {
        let pos = ((start as u64 + offset) % PERIOD as u64) as usize;
        let len = len.min(PERIOD);
        &self.table[pos..pos + len]
    }

    /// Checks `data` against the stream that starts at `start`, from stream
    /// offset `offset`. Returns the index of the first wrong byte.
    pub fn verify(&self, start: usize, offset: u64, data: &[u8]) -> Option<usize> {
        let mut done = 0usize;
        while done < data.len() {
            let want = self.slice(start, offset + done as u64, data.len() - done);
            let got = &data[done..done + want.len()];
            if got != want {
                let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Some(done + i);
            }
            done += want.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(p: &Pattern, start: usize, from: u64, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        while v.len() < len {
            let s = p.slice(start, from + v.len() as u64, len - v.len());
            v.extend_from_slice(s);
        }
        v
    }

    #[test]
    fn round_trip_verifies() {
        let p = Pattern::new();
        let s = Pattern::start_for(7);
        let data = stream(&p, s, 100, 200_000);
        assert_eq!(p.verify(s, 100, &data), None);
        // any split point works
        assert_eq!(p.verify(s, 100 + 70_000, &data[70_000..]), None);
    }

    #[test]
    fn catches_loss_duplication_and_crossed_streams() {
        let p = Pattern::new();
        let size = 64usize;
        let s = Pattern::start_for(3);
        let msgs = stream(&p, s, 0, size * 10);
        // lose message 2
        let mut lost = msgs[..2 * size].to_vec();
        lost.extend_from_slice(&msgs[3 * size..]);
        assert_eq!(p.verify(s, 0, &lost), Some(2 * size));
        // duplicate message 1
        let mut dup = msgs[..2 * size].to_vec();
        dup.extend_from_slice(&msgs[size..]);
        assert!(p.verify(s, 0, &dup).is_some());
        // another connection's bytes
        let other = stream(&p, Pattern::start_for(4), 0, size);
        assert!(p.verify(s, 0, &other).is_some());
        // a single flipped bit
        let mut flip = msgs.clone();
        flip[500] ^= 1;
        assert_eq!(p.verify(s, 0, &flip), Some(500));
    }

    #[test]
    fn tiny_messages_are_not_periodic() {
        // 6-byte messages: consecutive messages must differ, or a lost one
        // could go unnoticed.
        let p = Pattern::new();
        let s = Pattern::start_for(0);
        let a = p.slice(s, 0, 6).to_vec();
        let b = p.slice(s, 6, 6).to_vec();
        assert_ne!(a, b);
        let starts: std::collections::HashSet<usize> =
            (0..10_000).map(Pattern::start_for).collect();
        assert_eq!(starts.len(), 10_000);
    }
}
