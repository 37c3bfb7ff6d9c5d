//! A connection's queued output and the loop's pool of spare buffers.
//!
//! Output is a copy buffer (what [`Conn::write`](crate::Conn::write) appends
//! to, lent from the loop's pool) followed by buffers queued as they are
//! (owned writes, cross-thread writes). The common case — only copied bytes —
//! is one contiguous buffer and one `write`; with owned buffers queued, a
//! flush is one `writev` over them all.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

use evio_sys::net;
use smallvec::SmallVec;

/// Drained output buffers kept for reuse per loop.
const MAX_SPARE: usize = 64;
/// Output buffers larger than this are freed once drained rather than
/// pooled, so a burst does not pin its memory.
const KEEP_CAPACITY: usize = 16 * 1024;
/// Buffers handed to one `writev` (well under every OS's `IOV_MAX`).
const MAX_IOVECS: usize = 64;

/// Drained output buffers, lent to the next connection that writes: in the
/// steady state one cache-hot buffer cycles through every connection (read →
/// on_data → write → drained → back here), and an idle connection holds no
/// output memory at all.
#[derive(Default)]
pub(crate) struct OutputPool {
    spare: Vec<Vec<u8>>,
}

/// A buffer queued after the copy buffer.
pub(crate) enum Chunk {
    /// Bytes copied in after an owned buffer (to keep the order).
    Copied(Vec<u8>),
    /// A `Vec` queued as it is.
    Vec(Vec<u8>),
    /// Any other owned buffer.
    Boxed(Box<dyn AsRef<[u8]> + Send>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Copied(v) | Chunk::Vec(v) => v,
            Chunk::Boxed(b) => (**b).as_ref(),
        }
    }
}

/// Bytes queued for a socket: `buf[pos..]`, then each of `more` (the first
/// from `more_pos`).
#[derive(Default)]
pub(crate) struct Output {
    buf: Vec<u8>,
    pos: usize,
    more: VecDeque<Chunk>,
    more_pos: usize,
    /// Unwritten bytes in all of the above.
    pending: usize,
}

impl Output {
    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Appends a copy of `data`, into a pooled buffer if this output holds
    /// none, so writes land in recently used (cache-hot) memory.
    pub(crate) fn push(&mut self, data: &[u8], pool: &mut OutputPool) {
        if data.is_empty() {
            return;
        }
        self.pending += data.len();
        match self.more.back_mut() {
            None => {
                if self.buf.capacity() == 0 {
                    if let Some(b) = pool.spare.pop() {
                        self.buf = b;
                    }
                }
                self.buf.extend_from_slice(data);
            }
            Some(Chunk::Copied(v)) => v.extend_from_slice(data),
            Some(_) => self.more.push_back(Chunk::Copied(data.to_vec())),
        }
    }

    /// Queues `chunk` as it is, after everything queued.
    pub(crate) fn push_chunk(&mut self, chunk: Chunk) {
        let n = chunk.bytes().len();
        if n > 0 {
            self.pending += n;
            self.more.push_back(chunk);
        }
    }

    /// The first queued bytes, contiguous (UDP replies, the last write at
    /// shutdown).
    pub(crate) fn first(&self) -> &[u8] {
        if self.pos < self.buf.len() {
            &self.buf[self.pos..]
        } else {
            self.more
                .front()
                .map_or(&[], |c| &c.bytes()[self.more_pos..])
        }
    }

    /// Writes as much as one system call takes: one `write` when only the
    /// copy buffer holds bytes, else one `writev` over up to 64 buffers.
    /// Returns the bytes written (and consumed).
    pub(crate) fn write_to(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let n = if self.more.is_empty() {
            net::write(fd, &self.buf[self.pos..])?
        } else {
            let mut iov: SmallVec<[IoSlice<'_>; MAX_IOVECS]> = SmallVec::new();
            if self.pos < self.buf.len() {
                iov.push(IoSlice::new(&self.buf[self.pos..]));
            }
            let mut skip = self.more_pos;
            for c in self.more.iter().take(MAX_IOVECS - iov.len()) {
                iov.push(IoSlice::new(&c.bytes()[skip..]));
                skip = 0;
            }
            net::writev(fd, &iov)?
        };
        self.consume(n);
        Ok(n)
    }

    /// Offers the queued bytes, in order, to `take`, which returns how many
    /// it took; stops when it takes less than offered. Returns the total
    /// taken (a TLS session encrypting the queue).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn feed_to(&mut self, mut take: impl FnMut(&[u8]) -> usize) -> usize {
        let mut total = 0;
        while self.pending > 0 {
            let (n, offered) = {
                let first = self.first();
                (take(first), first.len())
            };
            self.consume(n);
            total += n;
            if n < offered {
                break;
            }
        }
        total
    }

    /// Marks `n` more bytes as written.
    fn consume(&mut self, mut n: usize) {
        self.pending -= n;
        let in_buf = (self.buf.len() - self.pos).min(n);
        self.pos += in_buf;
        n -= in_buf;
        while n > 0 {
            let Some(front) = self.more.front() else {
                break;
            };
            let left = front.bytes().len() - self.more_pos;
            if n >= left {
                n -= left;
                self.more.pop_front();
                self.more_pos = 0;
            } else {
                self.more_pos += n;
                n = 0;
            }
        }
    }

    /// After a write: gives a drained buffer back to the pool (or frees it,
    /// if a burst made it large), or reclaims the written prefix once it
    /// outweighs what is left.
    pub(crate) fn settle(&mut self, pool: &mut OutputPool) {
        if self.pending == 0 {
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else if self.buf.capacity() > 0 && pool.spare.len() < MAX_SPARE {
                self.buf.clear();
                pool.spare.push(std::mem::take(&mut self.buf));
            } else {
                self.buf.clear();
            }
            if self.more.capacity() > 0 {
                // Owned writes are bursts: hold no queue memory when idle.
                self.more = VecDeque::new();
            }
        } else if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= self.buf.len() - self.pos {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Drops everything queued (a UDP reply slot between datagrams).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.more.clear();
        self.more_pos = 0;
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Output) -> Vec<u8> {
        let mut all = Vec::new();
        while out.pending() > 0 {
            let first = out.first().to_vec();
            // Consume a few bytes at a time to cross chunk boundaries.
            let n = first.len().min(3);
            all.extend_from_slice(&first[..n]);
            out.consume(n);
        }
        all
    }

    #[test]
    fn copies_and_owned_buffers_keep_their_order() {
        let mut pool = OutputPool::default();
        let mut out = Output::default();
        out.push(b"ab", &mut pool);
        out.push_chunk(Chunk::Vec(b"cde".to_vec()));
        out.push(b"f", &mut pool);
        out.push(b"g", &mut pool);
        out.push_chunk(Chunk::Boxed(Box::new("hij")));
        out.push_chunk(Chunk::Vec(Vec::new()));
        assert_eq!(out.pending(), 10);
        assert_eq!(drain(&mut out), b"abcdefghij");
        out.settle(&mut pool);
        assert_eq!(out.more.capacity(), 0, "an idle output holds no queue");
        assert_eq!(pool.spare.len(), 1, "the copy buffer went back to the pool");
    }
}
