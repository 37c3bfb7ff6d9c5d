//! Names for connections and the poller tokens that carry them.
//!
//! A connection is named by its slab slot plus a per-loop generation, so a
//! name never matches a later connection that reuses the slot (or the fd
//! number). Poller tokens encode either a listener or such a name:
//!
//! ```text
//! bit 63 set:    listener, index in bits 0..63
//! bit 63 clear:  connection, generation in bits 32..63 (31 bits), slot in bits 0..32
//! ```
//!
//! Generations are 31 bits wide, so no token the core makes is `u64::MAX`
//! (which a backend may reserve, see `evio_sys::Poller`).

/// Tokens with this bit set are listeners.
const LISTENER_BIT: u64 = 1 << 63;
/// Generations wrap within 31 bits so a connection token never sets bit 63.
const GEN_MASK: u32 = 0x7fff_ffff;

/// Identifies one connection of a loop for its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnKey {
    index: u32,
    gen: u32,
}

impl ConnKey {
    pub(crate) fn new(index: usize, gen: u32) -> ConnKey {
        debug_assert!(index <= u32::MAX as usize && gen <= GEN_MASK);
        ConnKey {
            index: index as u32,
            gen,
        }
    }

    /// The slab slot.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The generation the slot had when this connection took it.
    pub(crate) fn gen(self) -> u32 {
        self.gen
    }
}

/// Hands out generations for one loop.
#[derive(Debug, Default)]
pub(crate) struct Generations(u32);

impl Generations {
    pub(crate) fn next(&mut self) -> u32 {
        let gen = self.0;
        self.0 = (self.0 + 1) & GEN_MASK;
        gen
    }
}

/// What a poller token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// The listener (or UDP socket) at this index of the loop's listeners.
    Listener(usize),
    /// A connection.
    Conn(ConnKey),
}

impl Token {
    pub(crate) fn encode(self) -> u64 {
        match self {
            Token::Listener(i) => LISTENER_BIT | i as u64,
            Token::Conn(k) => (u64::from(k.gen) << 32) | u64::from(k.index),
        }
    }

    pub(crate) fn decode(token: u64) -> Token {
        if token & LISTENER_BIT != 0 {
            Token::Listener((token & !LISTENER_BIT) as usize)
        } else {
            Token::Conn(ConnKey {
                index: token as u32,
                gen: (token >> 32) as u32,
            })
        }
    }
}

/// Names one connection of a server for as long as it lives; never
/// matches a later connection that reuses its slot or fd number.
///
/// Get it with [`Conn::id`](crate::Conn::id) or from
/// [`ServerControl::dial`](crate::ServerControl::dial); use it with
/// [`Conn::write_to`](crate::Conn::write_to) and
/// [`Conn::close_conn`](crate::Conn::close_conn) to act on another
/// connection of the same loop (a proxy's other half), or with
/// [`ServerControl::conn_handle`](crate::ServerControl::conn_handle) to
/// reach it from any thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) loop_index: u32,
    pub(crate) key: ConnKey,
}

impl ConnId {
    pub(crate) fn new(loop_index: usize, key: ConnKey) -> ConnId {
        ConnId {
            loop_index: loop_index as u32,
            key,
        }
    }

    /// The index of the loop that serves the connection.
    pub fn loop_index(&self) -> usize {
        self.loop_index as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_hit_the_reserved_value() {
        let mut gens = Generations(GEN_MASK - 1);
        for _ in 0..3 {
            let k = ConnKey::new(u32::MAX as usize, gens.next());
            let t = Token::Conn(k).encode();
            assert_ne!(t, u64::MAX);
            assert_eq!(t & LISTENER_BIT, 0);
            assert_eq!(Token::decode(t), Token::Conn(k));
        }
        assert_eq!(gens.0, 1, "generations wrap within 31 bits");
        let l = Token::Listener(7).encode();
        assert_eq!(Token::decode(l), Token::Listener(7));
    }
}
