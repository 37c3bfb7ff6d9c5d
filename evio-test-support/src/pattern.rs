//! A verifiable byte stream for tests that move megabytes: any byte lost,
//! duplicated or reordered on the way shows.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::server::Rng;

/// The period of a [`Pattern`]: a prime, so no power-of-two buffer size
/// lines up with it.
pub const PERIOD: usize = 65_521;

/// An endless byte stream, byte `i` = `T[(seed + i) % 65521]`: a lost,
/// duplicated or reordered byte shifts the pattern. Checked with slice
/// comparisons (memcmp), so even debug builds verify 100s of MiB quickly.
/// Cheap to clone (the table is shared).
#[derive(Clone)]
pub struct Pattern {
    table: Arc<Vec<u8>>,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut table = Rng::new(seed).bytes(PERIOD);
        // Doubled up, so any window of up to PERIOD bytes is one slice.
        let head = table.clone();
        table.extend_from_slice(&head);
        Pattern {
            table: Arc::new(table),
        }
    }

    /// The `len` (≤ PERIOD) bytes at stream offset `off`.
    pub fn at(&self, off: u64, len: usize) -> &[u8] {
        assert!(len <= PERIOD);
        let start = (off % PERIOD as u64) as usize;
        &self.table[start..start + len]
    }

    /// Whether `got` is the stream from offset `off` on.
    pub fn check(&self, off: u64, got: &[u8]) -> bool {
        let mut o = off;
        for chunk in got.chunks(PERIOD) {
            if chunk != self.at(o, chunk.len()) {
                return false;
            }
            o += chunk.len() as u64;
        }
        true
    }

    /// Writes `total` bytes of the stream, recording progress in `sent`;
    /// stops at the first error.
    pub fn send(&self, s: &mut impl Write, total: u64, sent: &AtomicU64) -> io::Result<()> {
        let mut off = 0u64;
        while off < total {
            let n = (total - off).min(32 * 1024) as usize;
            s.write_all(self.at(off, n))?;
            off += n as u64;
            sent.store(off, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads exactly `total` bytes and checks them; an early EOF is an
    /// `UnexpectedEof` error, a wrong byte `InvalidData`.
    pub fn recv(&self, s: &mut impl Read, total: u64) -> io::Result<u64> {
        let got = self.recv_up_to(s, total)?;
        if got < total {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF after {got} of {total} bytes"),
            ));
        }
        Ok(got)
    }

    /// Reads to EOF, checking every byte; returns the count.
    pub fn recv_to_eof(&self, s: &mut impl Read) -> io::Result<u64> {
        self.recv_up_to(s, u64::MAX)
    }

    fn recv_up_to(&self, s: &mut impl Read, limit: u64) -> io::Result<u64> {
        let mut buf = vec![0u8; PERIOD];
        let mut off = 0u64;
        while off < limit {
            let want = (limit - off).min(PERIOD as u64) as usize;
            let n = match s.read(&mut buf[..want]) {
                // A signal (or the machine pausing the process) interrupts
                // reads that have a timeout: not an error.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if n == 0 {
                break;
            }
            if !self.check(off, &buf[..n]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("wrong bytes at offset {off}"),
                ));
            }
            off += n as u64;
        }
        Ok(off)
    }
}
