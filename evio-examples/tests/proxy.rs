//! The L4 proxy (`evio_examples::proxy`) in process, against plain std
//! backends on loopback, and the real `proxy` binary.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use evio_core::{Builder, LoadBalance, Poller, ServerHandle};
use evio_examples::proxy;

const MIB: u64 = 1024 * 1024;

// ----- std backends ------------------------------------------------------------------

/// What a backend connection reports when it ends.
#[derive(Debug)]
struct Ended {
    bytes: u64,
    result: io::Result<()>,
}

/// A threaded std backend: `serve(stream)` runs for each connection.
fn backend(
    serve: impl Fn(TcpStream) -> Ended + Send + Sync + 'static,
) -> (SocketAddr, mpsc::Receiver<Ended>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.set_write_timeout(Some(TIMEOUT)).unwrap();
            let (tx, serve) = (tx.clone(), serve.clone());
            thread::spawn(move || {
                let _ = tx.send(serve(s));
            });
        }
    });
    (addr, rx)
}

/// Echoes until EOF, then closes.
fn echo_backend() -> (SocketAddr, mpsc::Receiver<Ended>) {
    backend(|mut s| {
        let mut r = s.try_clone().unwrap();
        let res = io::copy(&mut r, &mut s);
        Ended {
            bytes: *res.as_ref().unwrap_or(&0),
            result: res.map(|_| ()),
        }
    })
}

/// Reads and checks the pattern until EOF (after `hold` is released).
fn sink_backend(pat: Pattern, hold: Arc<AtomicBool>) -> (SocketAddr, mpsc::Receiver<Ended>) {
    backend(move |mut s| {
        while hold.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
        match pat.recv_to_eof(&mut s) {
            Ok(bytes) => Ended {
                bytes,
                result: Ok(()),
            },
            Err(e) => Ended {
                bytes: 0,
                result: Err(e),
            },
        }
    })
}

/// Sends `total` bytes of the pattern, then closes.
fn source_backend(
    pat: Pattern,
    total: u64,
    sent: Arc<AtomicU64>,
) -> (SocketAddr, mpsc::Receiver<Ended>) {
    backend(move |mut s| {
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let result = pat.send(&mut s, total, &sent);
        Ended {
            bytes: sent.load(Ordering::SeqCst),
            result,
        }
    })
}

/// A backend these generic tests can make without arguments.
trait MakePoller: Poller + Sized + 'static {
    fn make() -> std::io::Result<Self>;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl MakePoller for evio_core::EpollPoller {
    fn make() -> std::io::Result<Self> {
        evio_core::EpollPoller::new()
    }
}

impl MakePoller for evio_core::PollPoller {
    fn make() -> std::io::Result<Self> {
        evio_core::PollPoller::new()
    }
}

fn start_proxy<P: MakePoller>(
    backend: SocketAddr,
    loops: isize,
) -> (ServerHandle<proxy::Side>, SocketAddr) {
    let server = Builder::new()
        .poller(|_| P::make())
        .num_loops(loops)
        .load_balance(LoadBalance::RoundRobin)
        .start(proxy::handler(backend), &["tcp://127.0.0.1:0"])
        .unwrap();
    let addr = inet(&server.addrs()[0]);
    (server, addr)
}

/// Waits until `sent` stops moving (see [`stalls`]): the proxy must then
/// hold well under `total` (less than 64 MiB) in between.
fn proxy_stalls(sent: &AtomicU64, total: u64, what: &str) {
    let held = stalls(sent, total, Duration::from_millis(200), what);
    eprintln!("{what}: stalled after {} KiB", held / 1024);
    assert!(held < 64 * MIB, "the proxy took {held} bytes");
}

/// The client reads all `total` bytes of `pat`, then EOF; the backend
/// connection ended cleanly; the server stops.
fn client_gets_everything(
    pat: &Pattern,
    c: &mut TcpStream,
    total: u64,
    ends: &mpsc::Receiver<Ended>,
    server: ServerHandle<proxy::Side>,
) {
    assert_eq!(pat.recv_to_eof(c).unwrap(), total);
    ended(ends).result.unwrap();
    server.shutdown().unwrap();
}

fn ended(rx: &mpsc::Receiver<Ended>) -> Ended {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the backend connection never ended")
}

// ----- tests -------------------------------------------------------------------------

/// 100 MiB through the proxy to an echo backend and back, byte-exact. The
/// client then shuts down its write side: the FIN reaches the backend after
/// every byte, the backend's own close comes back, and the client reads
/// exactly 100 MiB, then EOF.
fn forwards_100_mib_both_ways<P: MakePoller>() {
    const TOTAL: u64 = 100 * MIB;
    let (backend, ends) = echo_backend();
    let (server, addr) = start_proxy::<P>(backend, 1);
    let pat = Pattern::new(1);
    let mut c = connect(addr);
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (pat, sent, mut w) = (pat.clone(), sent.clone(), c.try_clone().unwrap());
        thread::spawn(move || {
            pat.send(&mut w, TOTAL, &sent)?;
            w.shutdown(Shutdown::Write)
        })
    };
    // Half-closes are forwarded: read to EOF while the FIN travels.
    assert_eq!(pat.recv_to_eof(&mut c).unwrap(), TOTAL);
    writer.join().unwrap().unwrap();
    let e = ended(&ends);
    e.result.unwrap();
    assert_eq!(e.bytes, TOTAL, "the backend saw every byte, then EOF");
    wait_for("the pair to close", || server.connections() == 0);
    server.shutdown().unwrap();
}

/// The client half-closes: bytes it sent before reach the backend, then
/// EOF; the backend, having seen the EOF, still answers through the proxy
/// (the other direction stays open), then closes, and the client gets the
/// answer, then EOF.
fn client_half_close_keeps_the_backend_direction<P: MakePoller>() {
    let (backend, ends) = backend(|mut s| {
        let mut got = Vec::new();
        let res = s.read_to_end(&mut got).and_then(|_| {
            // After the client's FIN: answer with what came, reversed, and
            // a large tail.
            got.reverse();
            s.write_all(&got)?;
            s.write_all(&vec![b'z'; 4 << 20])
        });
        Ended {
            bytes: got.len() as u64,
            result: res,
        }
    });
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    c.write_all(b"hello, backend").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = read_to_close(&mut c);
    let e = ended(&ends);
    e.result.unwrap();
    assert_eq!(e.bytes, 14);
    assert_eq!(got.len(), 14 + (4 << 20));
    assert_eq!(&got[..14], b"dnekcab ,olleh");
    assert!(got[14..].iter().all(|&b| b == b'z'));
    wait_for("the pair to close", || server.connections() == 0);
    server.shutdown().unwrap();
}

/// The backend half-closes: its bytes reach the client, then EOF; the
/// client, having seen the EOF, still sends through the proxy, and the
/// backend gets it all, then the client's EOF.
fn backend_half_close_keeps_the_client_direction<P: MakePoller>() {
    let (backend, ends) = backend(|mut s| {
        let res = s
            .write_all(b"greeting from the backend")
            .and_then(|()| s.shutdown(Shutdown::Write));
        if let Err(e) = res {
            return Ended {
                bytes: 0,
                result: Err(e),
            };
        }
        let mut got = Vec::new();
        let result = s.read_to_end(&mut got).map(|_| ());
        let ok = got.len() == (4 << 20) + 5 && got.ends_with(b"bye!\n");
        Ended {
            bytes: got.len() as u64,
            result: result.and_then(|()| {
                ok.then_some(())
                    .ok_or_else(|| io::Error::other("wrong bytes"))
            }),
        }
    });
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    let mut greeting = Vec::new();
    c.read_to_end(&mut greeting)
        .expect("the backend's bytes, then EOF");
    assert_eq!(greeting, b"greeting from the backend");
    // Our direction is still open.
    c.write_all(&vec![b'y'; 4 << 20]).unwrap();
    c.write_all(b"bye!\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let e = ended(&ends);
    e.result.unwrap();
    assert_eq!(e.bytes, (4 << 20) + 5);
    assert_eq!(read_to_close(&mut c), b"");
    wait_for("the pair to close", || server.connections() == 0);
    server.shutdown().unwrap();
}

/// The client's FIN arrives while the proxy is still connecting to the
/// backend (its accept queue is full, so the kernel drops the proxy's SYN
/// until a retry about a second later): the backend gets the client's
/// bytes and then the FIN once it is connected.
fn fin_before_the_backend_connects<P: MakePoller>() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    // A backlog of 0: one queued connection fills the accept queue.
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
    let filler = connect(backend);
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    c.write_all(b"early bytes").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let fin_sent = Instant::now();
    // Still connecting: free the queue (the proxy's SYN is retried later).
    thread::sleep(Duration::from_millis(200));
    let (first, _) = l.accept().unwrap();
    drop((first, filler));
    let (mut b, _) = l.accept().unwrap();
    let connected_after = fin_sent.elapsed();
    // The premise: the proxy's dial was still pending at the FIN (the
    // kernel retries a dropped SYN after its initial RTO, 1 s).
    assert!(
        connected_after >= Duration::from_millis(500),
        "connected {connected_after:?} after the FIN"
    );
    b.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got)
        .expect("the client's bytes, then EOF");
    assert_eq!(got, b"early bytes");
    eprintln!("backend connected {connected_after:?} after the client's FIN");
    // The other direction still works.
    b.write_all(b"late reply").unwrap();
    drop(b);
    assert_eq!(read_to_close(&mut c), b"late reply");
    wait_for("the pair to close", || server.connections() == 0);
    server.shutdown().unwrap();
}

/// Client → backend: 100 MiB, then the client closes at once; the backend
/// gets every byte (still queued in the proxy at the close), then EOF.
fn client_close_reaches_backend_after_all_bytes<P: MakePoller>() {
    const TOTAL: u64 = 100 * MIB;
    let pat = Pattern::new(2);
    let (backend, ends) = sink_backend(pat.clone(), Arc::new(AtomicBool::new(false)));
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    pat.send(&mut c, TOTAL, &AtomicU64::new(0)).unwrap();
    drop(c);
    let e = ended(&ends);
    e.result.unwrap();
    assert_eq!(e.bytes, TOTAL);
    server.shutdown().unwrap();
}

/// Backend → client: 100 MiB, then the backend closes; the client gets
/// every byte, then EOF.
fn backend_close_reaches_client_after_all_bytes<P: MakePoller>() {
    const TOTAL: u64 = 100 * MIB;
    let pat = Pattern::new(3);
    let sent = Arc::new(AtomicU64::new(0));
    let (backend, ends) = source_backend(pat.clone(), TOTAL, sent);
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    client_gets_everything(&pat, &mut c, TOTAL, &ends, server);
}

/// A client that does not read: the proxy stops reading the backend (the
/// backend's writes stall), then everything flows once the client reads.
fn backpressure_toward_a_slow_client<P: MakePoller>() {
    const TOTAL: u64 = 256 * MIB;
    let pat = Pattern::new(4);
    let sent = Arc::new(AtomicU64::new(0));
    let (backend, ends) = source_backend(pat.clone(), TOTAL, sent.clone());
    let (server, addr) = start_proxy::<P>(backend, 1);
    let mut c = connect(addr);
    proxy_stalls(&sent, TOTAL, "backend → idle client");
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    client_gets_everything(&pat, &mut c, TOTAL, &ends, server);
}

/// A backend that does not read: the proxy stops reading the client (the
/// client's writes stall), then everything flows once the backend reads.
fn backpressure_toward_a_slow_backend<P: MakePoller>() {
    const TOTAL: u64 = 256 * MIB;
    let pat = Pattern::new(5);
    let hold = Arc::new(AtomicBool::new(true));
    let (backend, ends) = sink_backend(pat.clone(), hold.clone());
    let (server, addr) = start_proxy::<P>(backend, 1);
    let c = connect(addr);
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (pat, sent, mut w) = (pat.clone(), sent.clone(), c.try_clone().unwrap());
        thread::spawn(move || {
            w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
            pat.send(&mut w, TOTAL, &sent)?;
            w.shutdown(Shutdown::Write)
        })
    };
    proxy_stalls(&sent, TOTAL, "client → stalled backend");
    hold.store(false, Ordering::SeqCst);
    writer.join().unwrap().unwrap();
    let e = ended(&ends);
    e.result.unwrap();
    assert_eq!(e.bytes, TOTAL);
    server.shutdown().unwrap();
}

/// With the backend down, the client is closed at once (EOF or reset).
fn backend_down_closes_the_client<P: MakePoller>() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (server, addr) = start_proxy::<P>(dead, 1);
    for with_data in [false, true] {
        let mut c = connect(addr);
        if with_data {
            c.write_all(b"hello?").unwrap();
        }
        let t0 = Instant::now();
        let got = within("the client to be closed", move || read_to_close(&mut c));
        assert_eq!(got, b"");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
    server.shutdown().unwrap();
}

/// Several clients at once over two loops, each paired with its own
/// backend connection.
fn many_clients_over_two_loops<P: MakePoller>() {
    let (backend, ends) = echo_backend();
    let (server, addr) = start_proxy::<P>(backend, 2);
    let clients: Vec<_> = (0..16)
        .map(|i| {
            thread::spawn(move || {
                let pat = Pattern::new(100 + i);
                let mut c = connect(addr);
                let mut w = c.try_clone().unwrap();
                let p = pat.clone();
                let writer = thread::spawn(move || p.send(&mut w, 4 * MIB, &AtomicU64::new(0)));
                let got = pat.recv(&mut c, 4 * MIB).unwrap();
                writer.join().unwrap().unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_close(&mut c), b"", "closed after our FIN");
                got
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 4 * MIB);
    }
    for _ in 0..16 {
        let e = ended(&ends);
        e.result.unwrap();
        assert_eq!(e.bytes, 4 * MIB);
    }
    server.shutdown().unwrap();
}

// ----- the binary --------------------------------------------------------------------

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_proxies_and_exits_0_on_sigterm() {
    let (backend, ends) = echo_backend();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_proxy"))
            .args([
                "--port",
                "0",
                "--loops",
                "2",
                "--drain-timeout",
                "1",
                "--backend",
            ])
            .arg(backend.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let line = within("the startup line", move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        line
    });
    assert!(line.starts_with("proxy server started on port "), "{line}");
    let port: u16 = line
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let mut c = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let pat = Pattern::new(6);
    let mut w = c.try_clone().unwrap();
    let p = pat.clone();
    let writer = thread::spawn(move || p.send(&mut w, 8 * MIB, &AtomicU64::new(0)));
    assert_eq!(pat.recv(&mut c, 8 * MIB).unwrap(), 8 * MIB);
    writer.join().unwrap().unwrap();
    drop(c);
    assert_eq!(ended(&ends).bytes, 8 * MIB);
    // An open, idle pair is served through the drain (a byte stream has no
    // boundary to close at) and closed at its deadline.
    let mut idle = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    idle.write_all(b"x").unwrap();
    expect(&mut idle, b"x");
    // Our own child, not reaped yet: the pid is still its.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = within("the proxy to exit", move || {
        let s = child.0.wait().unwrap();
        drop(child);
        s
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(read_to_close(&mut idle), b"");
}

#[test]
fn binary_bad_flags_exit_2() {
    for args in [
        &[][..],
        &["--port", "0"],
        &["--backend", "nowhere"],
        &["--backend", "127.0.0.1:1", "--udp"],
        &["--backend", "127.0.0.1:1", "--loops", "x"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_proxy"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("usage: proxy --backend HOST:PORT"),
            "{args:?}: {err}"
        );
    }
}

/// Every in-process test above, on the epoll backend and on poll(2).
macro_rules! on_both_pollers {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $(#[test]
            fn $name() {
                super::$name::<evio_core::EpollPoller>()
            })*
        }
        mod poll {
            $(#[test]
            fn $name() {
                super::$name::<evio_core::PollPoller>()
            })*
        }
    };
}

on_both_pollers!(
    forwards_100_mib_both_ways,
    client_half_close_keeps_the_backend_direction,
    backend_half_close_keeps_the_client_direction,
    fin_before_the_backend_connects,
    client_close_reaches_backend_after_all_bytes,
    backend_close_reaches_client_after_all_bytes,
    backpressure_toward_a_slow_client,
    backpressure_toward_a_slow_backend,
    backend_down_closes_the_client,
    many_clients_over_two_loops,
);
