//! A connection's queued output and the loop's pool of spare buffers.

/// Drained output buffers kept for reuse per loop.
const MAX_SPARE: usize = 64;
/// Output buffers larger than this are freed once drained rather than
/// pooled, so a burst does not pin its memory.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Drained output buffers, lent to the next connection that writes: in the
/// steady state one cache-hot buffer cycles through every connection (read →
/// on_data → write → drained → back here), and an idle connection holds no
/// output memory at all.
#[derive(Default)]
pub(crate) struct OutputPool {
    spare: Vec<Vec<u8>>,
}

/// Bytes queued for a socket: `buf[pos..]` is still to be written.
#[derive(Default)]
pub(crate) struct Output {
    buf: Vec<u8>,
    pos: usize,
}

impl Output {
    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes still to write.
    pub(crate) fn unwritten(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Appends `data`, borrowing a pooled buffer if this output holds none,
    /// so writes land in recently used (cache-hot) memory.
    pub(crate) fn push(&mut self, data: &[u8], pool: &mut OutputPool) {
        if self.buf.capacity() == 0 {
            if let Some(b) = pool.spare.pop() {
                self.buf = b;
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` more bytes as written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
    }

    /// After a write: gives a drained buffer back to the pool (or frees it,
    /// if a burst made it large), or reclaims the written prefix once it
    /// outweighs what is left.
    pub(crate) fn settle(&mut self, pool: &mut OutputPool) {
        let pending = self.pending();
        if pending == 0 {
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else if self.buf.capacity() > 0 && pool.spare.len() < MAX_SPARE {
                self.buf.clear();
                pool.spare.push(std::mem::take(&mut self.buf));
            } else {
                self.buf.clear();
            }
        } else if self.pos >= pending {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Drops everything queued (a UDP reply slot between datagrams).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }
}
