//! Every reply arrives, whole and in order, in every cell of
//! {plain, TLS} × {epoll, poll} × {one small reply, one reply larger than
//! the socket buffer but smaller than rustls's, one 16 MiB reply, 10,000
//! pipelined replies} × {a client that reads at once, one that
//! starts reading only after 2 s}.
//!
//! A single-axis test misses what this catches: a TLS connection whose
//! socket never fills up gets no writable edge, so output that stops short
//! of the socket's limit waits forever (the stall of issue 19 passed every
//! TLS test and every large-reply test we had). Plus the bounds that must
//! hold meanwhile: output queued for a client that does not read stays
//! near the high-water mark on TLS as on plain connections.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use evio_core::{Action, Builder, Conn, EventHandler, InputStream, Options, ServerHandle};

/// Reply bytes of request `seed`: a pattern that differs per request and
/// per position, so a lost, repeated or reordered piece shows.
fn pattern(seed: u64, len: usize, out: &mut Vec<u8>) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    out.reserve(len);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
}

/// Answers each line `LEN SEED\n` with `pattern(SEED, LEN)`: small replies
/// copied into the output (`write`), large ones queued as they are
/// (`write_owned`). Records the most output ever queued on a connection.
#[derive(Clone, Default)]
struct Replies {
    max_queued: Arc<AtomicUsize>,
    /// Shrink each connection's send buffer to this (0: leave it).
    send_buffer: usize,
}

impl EventHandler for Replies {
    type Context = InputStream;

    fn on_opened(&mut self, conn: &mut Conn<'_, InputStream>) -> (Options, Action) {
        if self.send_buffer > 0 {
            conn.socket()
                .and_then(|s| s.set_send_buffer_size(self.send_buffer))
                .expect("SO_SNDBUF");
        }
        (Options::default(), Action::None)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, InputStream>, input: &[u8]) -> Action {
        let (stream, mut out) = conn.split();
        let data = stream.begin(input);
        let mut used = 0;
        let mut reply = Vec::new();
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(&data[used..used + nl]).expect("ascii");
            used += nl + 1;
            let mut parts = line.split(' ').map(|p| p.parse::<u64>().expect("a number"));
            let (len, seed) = (parts.next().unwrap() as usize, parts.next().unwrap());
            reply.clear();
            pattern(seed, len, &mut reply);
            if len <= 4096 {
                out.write(&reply);
            } else {
                out.write_owned(std::mem::take(&mut reply));
            }
        }
        stream.end(input, used);
        self.max_queued
            .fetch_max(conn.output_len(), Ordering::Relaxed);
        Action::None
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Plain,
    Tls,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// One 100-byte reply.
    Small,
    /// One 48 KiB reply through socket buffers of a few KiB (server send,
    /// client receive): more than the socket takes, less than rustls's
    /// 64 KiB record buffer, so over TLS all of it is encrypted at once and
    /// only records are left when the socket fills.
    Fits,
    /// One 16 MiB reply.
    Huge,
    /// 10,000 pipelined 200-byte replies (2 MB: past the high-water mark,
    /// so reading pauses and resumes on the way).
    Pipelined,
}

impl Shape {
    /// The requests, and the replies they must bring, concatenated.
    fn exchange(self) -> (Vec<u8>, Vec<u8>) {
        let requests: Vec<(usize, u64)> = match self {
            Shape::Small => vec![(100, 1)],
            Shape::Fits => vec![(48 << 10, 3)],
            Shape::Huge => vec![(16 << 20, 2)],
            Shape::Pipelined => (0..10_000).map(|i| (200, 1000 + i)).collect(),
        };
        let mut sent = Vec::new();
        let mut expected = Vec::new();
        for (len, seed) in requests {
            sent.extend_from_slice(format!("{len} {seed}\n").as_bytes());
            pattern(seed, len, &mut expected);
        }
        (sent, expected)
    }
}

#[derive(Clone, Copy, Debug)]
enum Reader {
    AtOnce,
    /// Sends everything, then waits 2 s before reading a byte: the server
    /// fills the socket and must finish from writable events alone.
    Late,
}

fn start<P: TestPoller>(h: Replies, pki: &Pki) -> ServerHandle<InputStream> {
    Builder::new()
        .poller(|_| P::make())
        .tls_config(pki.server.clone())
        .start(h, &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"])
        .unwrap()
}

/// A plain or TLS client, as one stream.
enum Client {
    Plain(TcpStream),
    Tls(Box<TlsClient>),
}

/// A TCP connection to `addr`; with `recv_buffer > 0`, its receive buffer
/// is set that small before connecting (so the window is small from the
/// start).
fn tcp_connect(addr: SocketAddr, recv_buffer: usize) -> TcpStream {
    connect_with(addr, None, (recv_buffer > 0).then_some(recv_buffer))
}

impl Client {
    fn connect(
        server: &ServerHandle<impl Sized>,
        transport: Transport,
        pki: &Pki,
        recv_buffer: usize,
    ) -> Client {
        let c = match transport {
            Transport::Plain => Client::Plain(tcp_connect(inet(&server.addrs()[0]), recv_buffer)),
            Transport::Tls => {
                let tcp = tcp_connect(inet(&server.addrs()[1]), recv_buffer);
                Client::Tls(Box::new(tls_client(tcp, &pki.client)))
            }
        };
        c.tcp()
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        c
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Client::Plain(s) => s,
            Client::Tls(s) => s.get_ref(),
        }
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Client::Plain(s) => s,
            Client::Tls(s) => &mut **s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads exactly `expected.len()` bytes and says where they first differ.
fn expect_exactly(c: &mut Client, expected: &[u8], what: &str) {
    let mut got = vec![0u8; expected.len()];
    let mut at = 0;
    while at < got.len() {
        match c.stream().read(&mut got[at..]) {
            Ok(0) => panic!("{what}: EOF after {at} of {} bytes", expected.len()),
            Ok(n) => at += n,
            Err(e) => panic!("{what}: {e} after {at} of {} bytes", expected.len()),
        }
    }
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: byte {i} of {} differs", expected.len());
    }
}

fn cell<P: TestPoller>(transport: Transport, shape: Shape, reader: Reader) {
    let what = format!("{transport:?} {shape:?} {reader:?}");
    let pki = Pki::new();
    let tiny = if let Shape::Fits = shape { 4096 } else { 0 };
    let h = Replies {
        send_buffer: tiny,
        ..Replies::default()
    };
    let server = start::<P>(h, &pki);
    let mut c = Client::connect(&server, transport, &pki, tiny);
    let (sent, expected) = shape.exchange();
    c.stream().write_all(&sent).unwrap();
    c.stream().flush().unwrap();
    if let Reader::Late = reader {
        thread::sleep(Duration::from_secs(2));
    }
    expect_exactly(&mut c, &expected, &what);
    // The connection is still in order afterwards: one more round trip.
    let (sent, expected) = Shape::Small.exchange();
    c.stream().write_all(&sent).unwrap();
    expect_exactly(&mut c, &expected, &format!("{what}, then a small one"));
    server.shutdown().unwrap();
}

/// One test per cell and poller (and the extra tests named after `;`).
macro_rules! cells {
    ($($name:ident: $transport:ident $shape:ident $reader:ident;)* ; $($extra:ident),*) => {
        $(
            fn $name<P: TestPoller>() {
                cell::<P>(Transport::$transport, Shape::$shape, Reader::$reader);
            }
        )*
        on_every_poller!($($name,)* $($extra),*);
    };
}

cells! {
    plain_small_at_once: Plain Small AtOnce;
    plain_small_late: Plain Small Late;
    plain_fits_at_once: Plain Fits AtOnce;
    plain_fits_late: Plain Fits Late;
    plain_huge_at_once: Plain Huge AtOnce;
    plain_huge_late: Plain Huge Late;
    plain_pipelined_at_once: Plain Pipelined AtOnce;
    plain_pipelined_late: Plain Pipelined Late;
    tls_small_at_once: Tls Small AtOnce;
    tls_small_late: Tls Small Late;
    tls_fits_at_once: Tls Fits AtOnce;
    tls_fits_late: Tls Fits Late;
    tls_huge_at_once: Tls Huge AtOnce;
    tls_huge_late: Tls Huge Late;
    tls_pipelined_at_once: Tls Pipelined AtOnce;
    tls_pipelined_late: Tls Pipelined Late;
    ; backpressure_bounds_tls_as_plain
}

/// A client that sends 16 MiB to echo and reads nothing: the output queued
/// for it stays within the high-water mark plus one read, TLS as plain
/// (rustls's own record buffer is bounded too) and reading pauses, so the
/// sender ends up blocked. (That the bytes then all arrive is what the
/// cells above check.)
fn backpressure_bounds_tls_as_plain<P: TestPoller>() {
    const HIGH: usize = 256 << 10;
    let pki = Pki::new();
    for transport in [Transport::Plain, Transport::Tls] {
        let h = MaxQueued::default();
        let server = Builder::new()
            .poller(|_| P::make())
            .tls_config(pki.server.clone())
            .output_water_marks(HIGH, HIGH / 4)
            .start(h.clone(), &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"])
            .unwrap();
        let mut c = Client::connect(&server, transport, &pki, 0);
        let mut data = Vec::new();
        pattern(7, 16 << 20, &mut data);
        // Not reading while sending: the sender blocks once the server
        // stops reading; its write timeout ends the send.
        c.tcp()
            .set_write_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut sent = 0;
        for chunk in data.chunks(64 << 10) {
            if c.stream().write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        assert!(
            sent < data.len(),
            "{transport:?}: the server read 16 MiB that nobody read back"
        );
        let queued = h.0.load(Ordering::Relaxed);
        assert!(
            queued <= HIGH + (128 << 10),
            "{transport:?}: {queued} bytes queued for a client that does not read (mark {HIGH})"
        );
        server.shutdown().unwrap();
    }
}
