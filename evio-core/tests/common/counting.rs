//! Clients of the counting echo (`evio_test_support::CountingEcho`): shared
//! by the reliability and fault tests.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evio_core::{Action, Conn, EventHandler, Options};

use super::eventually;

pub use evio_test_support::CountingEcho;

/// Writes `msg` and reads back its echo (asserting it).
pub fn echo_once(c: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    c.write_all(msg)?;
    let mut got = vec![0; msg.len()];
    c.read_exact(&mut got)?;
    assert_eq!(got, msg);
    Ok(())
}

/// A fresh client that gets its echo within `limit`, retrying.
pub fn served_within(addr: SocketAddr, limit: Duration) -> bool {
    eventually(limit, || {
        let Ok(mut c) = TcpStream::connect(addr) else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        echo_once(&mut c, b"hello again").is_ok()
    })
}
