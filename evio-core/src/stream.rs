//! [`InputStream`]: carry unconsumed input from one `on_data` to the next.

/// Joins input across reads for protocols whose messages can be split
/// between reads (evio's `InputStream`).
///
/// [`begin`](InputStream::begin) returns the bytes held over from earlier
/// reads followed by the new packet — the packet itself, with no copy, when
/// nothing is held. Parse what you can, then call
/// [`end`](InputStream::end) with the packet and how many bytes of the
/// returned data you consumed; the rest is kept for the next `begin`.
///
/// ```
/// use evio_core::InputStream;
///
/// // Line protocol: each complete line is one message.
/// fn lines(is: &mut InputStream, packet: &[u8], out: &mut Vec<String>) {
///     let data = is.begin(packet);
///     let mut consumed = 0;
///     while let Some(nl) = data[consumed..].iter().position(|&b| b == b'\n') {
///         out.push(String::from_utf8_lossy(&data[consumed..consumed + nl]).into());
///         consumed += nl + 1;
///     }
///     is.end(packet, consumed);
/// }
///
/// let mut is = InputStream::default();
/// let mut got = Vec::new();
/// lines(&mut is, b"hel", &mut got);
/// lines(&mut is, b"lo\nwor", &mut got);
/// lines(&mut is, b"ld\n", &mut got);
/// assert_eq!(got, ["hello", "world"]);
/// assert!(is.is_empty());
/// ```
#[derive(Debug, Default, Clone)]
pub struct InputStream {
    buf: Vec<u8>,
    /// `begin` appended the packet to `buf` (so `end` trims `buf`), rather
    /// than returning the packet itself (so `end` copies its tail).
    joined: bool,
}

impl InputStream {
    /// An empty stream.
    pub fn new() -> InputStream {
        InputStream::default()
    }

    /// Returns the held bytes followed by `packet`. Copies only when bytes
    /// are held. Once everything held is consumed its memory is released, so
    /// an idle connection's stream holds none.
    pub fn begin<'a>(&'a mut self, packet: &'a [u8]) -> &'a [u8] {
        if self.buf.is_empty() {
            self.joined = false;
            packet
        } else {
            self.joined = true;
            self.buf.extend_from_slice(packet);
            &self.buf
        }
    }

    /// Keeps whatever follows the first `consumed` bytes of the data the last
    /// [`begin`](InputStream::begin) returned. `packet` must be the packet
    /// given to that `begin`. `consumed` past the end keeps nothing.
    pub fn end(&mut self, packet: &[u8], consumed: usize) {
        if self.joined {
            let consumed = consumed.min(self.buf.len());
            if consumed == self.buf.len() {
                // Idle connections hold no memory.
                self.buf = Vec::new();
            } else {
                self.buf.drain(..consumed);
            }
        } else if consumed < packet.len() {
            self.buf.extend_from_slice(&packet[consumed..]);
        }
        self.joined = false;
    }

    /// How many bytes are held for the next `begin`.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Drops the held bytes and releases their memory.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.joined = false;
    }
}

#[cfg(test)]
mod tests {
    use super::InputStream;

    #[test]
    fn zero_copy_when_nothing_is_held() {
        let mut is = InputStream::new();
        let packet = b"abc".to_vec();
        let data = is.begin(&packet);
        assert_eq!(data.as_ptr(), packet.as_ptr());
        is.end(&packet, 3);
        assert!(is.is_empty());
    }

    #[test]
    fn keeps_the_tail_across_packets() {
        let mut is = InputStream::new();
        let d = is.begin(b"abcd").to_vec();
        assert_eq!(d, b"abcd");
        is.end(b"abcd", 1);
        assert_eq!(is.len(), 3);
        let d = is.begin(b"ef").to_vec();
        assert_eq!(d, b"bcdef");
        is.end(b"ef", 4);
        assert_eq!(is.begin(b"").to_vec(), b"f");
        is.end(b"", 10);
        assert!(is.is_empty());
    }
}
