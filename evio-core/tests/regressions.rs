//! Regressions: bugs found by building the examples on the core, each
//! reproduced deterministically (first reported as failing tests in
//! evio-examples). Both lost a peer's FIN, so `on_eof` never fired and the
//! connection waited for a timeout. Run on every backend.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use evio_core::{Action, Conn, EventHandler, Options};

#[derive(Default)]
struct Got(Vec<u8>);

/// Dials `backend` when a client sends anything, then blocks its loop for
/// a moment, so that the dial's completion and the backend's bytes and FIN
/// all arrive before the next wait (on epoll: one event). Reports what the
/// dialed connection read when its `on_eof` fires.
#[derive(Clone)]
struct DialAndWait {
    backend: std::net::SocketAddr,
    eof: mpsc::Sender<Vec<u8>>,
}

impl EventHandler for DialAndWait {
    type Context = Got;
    fn on_data(&mut self, conn: &mut Conn<'_, Got>, input: &[u8]) -> Action {
        if conn.is_dialed() {
            conn.context_mut().0.extend_from_slice(input);
        } else if !input.is_empty() {
            conn.dial(self.backend, Got::default()).unwrap();
            thread::sleep(Duration::from_millis(300));
        }
        Action::None
    }
    fn on_eof(&mut self, conn: &mut Conn<'_, Got>) -> Action {
        if conn.is_dialed() {
            let _ = self.eof.send(std::mem::take(&mut conn.context_mut().0));
        }
        Action::Close
    }
}

/// A FIN reported together with a dial's completion was lost (epoll): the
/// connecting branch of dispatch returned before noting it, and the one
/// read after connecting stopped at the data.
fn a_fin_with_the_connect_completion_is_kept<P: TestPoller>() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"hello").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    });
    let (tx, rx) = mpsc::channel();
    let server = start_server::<P, _>(DialAndWait { backend, eof: tx }, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    c.write_all(b"go").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5));
    server.shutdown().unwrap();
    assert_eq!(got, Ok(b"hello".to_vec()), "on_eof never fired");
}

/// Shuts its write side and pauses reading when a connection opens,
/// resumes 300 ms later; reports what it read when `on_eof` fires.
#[derive(Clone)]
struct ShutPauseResume {
    eof: mpsc::Sender<Vec<u8>>,
}

impl EventHandler for ShutPauseResume {
    type Context = Got;
    fn on_opened(&mut self, conn: &mut Conn<'_, Got>) -> (Options, Action) {
        // Room for all the peer sends while we do not read, so its FIN
        // (a hang-up, our side being shut) arrives while we are paused.
        conn.socket()
            .unwrap()
            .set_recv_buffer_size(8 << 20)
            .unwrap();
        conn.shutdown_write();
        conn.pause_reading();
        conn.set_timer(Some(Duration::from_millis(300)));
        (Options::default(), Action::None)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_, Got>) -> Action {
        conn.resume_reading();
        Action::None
    }
    fn on_data(&mut self, conn: &mut Conn<'_, Got>, input: &[u8]) -> Action {
        conn.context_mut().0.extend_from_slice(input);
        Action::None
    }
    fn on_eof(&mut self, conn: &mut Conn<'_, Got>) -> Action {
        let _ = self.eof.send(std::mem::take(&mut conn.context_mut().0));
        Action::Close
    }
}

/// A hang-up (the peer's FIN after our `shutdown_write`) while reading was
/// paused parked the socket on poll(2) without remembering the EOF; once
/// resumed, reading stopped at the first short read and nothing read it
/// again. Here the peer sends more than the loop reads per event, too.
fn a_hang_up_while_paused_keeps_the_eof<P: TestPoller>() {
    let (tx, rx) = mpsc::channel();
    let server = start_server::<P, _>(ShutPauseResume { eof: tx }, 1, &["tcp://127.0.0.1:0"]);
    let mut c = connect(&server.addrs()[0]);
    assert_eq!(read_to_eof(&mut c).unwrap(), b"", "the server's FIN");
    // More than the loop reads per event (16 x 64 KiB), less than the
    // buffers hold.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| i as u8).collect();
    let writer = thread::spawn(move || {
        c.write_all(&data).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        data
    });
    let got = rx.recv_timeout(Duration::from_secs(10));
    let data = writer.join().unwrap();
    server.shutdown().unwrap();
    let got = got.expect("on_eof never fired");
    assert!(got == data, "read {} of {} bytes", got.len(), data.len());
}

on_every_poller!(
    a_fin_with_the_connect_completion_is_kept,
    a_hang_up_while_paused_keeps_the_eof,
);
