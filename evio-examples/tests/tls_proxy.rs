//! The proxy binary with TLS: terminating TLS in front of a plain backend
//! (redis-cli --tls through it to a real redis-server; a rustls client
//! streaming 16 MiB both ways to an echo backend), and `--backend-tls`
//! (a plain client through it to our redis-server's TLS port and to a real
//! redis-server's). Half-closes (close_notify <-> FIN), the idle timeout
//! and backpressure over TLS. Every wait is bounded.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tls::*;
use common::*;
use evio_examples::echo::Echo;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

const PROXY: &str = env!("CARGO_BIN_EXE_proxy");
const REDIS: &str = env!("CARGO_BIN_EXE_redis-server");

/// The proxy with a TLS port in front of `backend`.
fn tls_proxy(pki: &Pki, backend: SocketAddr, args: &[&str]) -> (Bin, SocketAddr) {
    let backend = backend.to_string();
    let mut all = vec!["--backend", backend.as_str()];
    all.extend_from_slice(args);
    spawn_tls(PROXY, pki, &all)
}

/// A plain proxy dialing `backend` over TLS, trusting `ca`.
fn proxy_to_tls(backend: SocketAddr, ca: &std::path::Path, args: &[&str]) -> Bin {
    let backend = backend.to_string();
    let ca = ca.display().to_string();
    let mut all = vec![
        "--port",
        "0",
        "--backend",
        backend.as_str(),
        "--backend-tls",
        "--backend-ca",
        ca.as_str(),
    ];
    all.extend_from_slice(args);
    spawn(PROXY, &all)
}

/// `PING` and a `SET`/`GET` over a plain socket, then a half-close: the
/// reply to what was sent before the FIN, then EOF.
fn redis_round_trip(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(b"PING\r\nSET k v\r\nGET k\r\n").unwrap();
    expect(&mut s, b"+PONG\r\n+OK\r\n$1\r\nv\r\n");
    s.write_all(b"ECHO last\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "$4\r\nlast\r\n"
    );
}

#[test]
fn redis_cli_tls_through_the_proxy_to_a_plain_redis_server() {
    let pki = Pki::new();
    let Some(redis) = real_redis() else {
        return;
    };
    let (_proxy, addr) = tls_proxy(&pki, redis.addr, &[]);
    if have("redis-cli") {
        let cli = |args: &[&str]| redis_cli_tls(&pki, addr, args, TIMEOUT).0;
        assert_eq!(cli(&["PING"]), "PONG\n");
        assert_eq!(cli(&["SET", "through", "the proxy"]), "OK\n");
        assert_eq!(cli(&["GET", "through"]), "the proxy\n");
    } else {
        eprintln!("redis-cli not installed: that part skipped");
    }
    // The client's close_notify reaches redis-server as a FIN after the
    // request; its reply and its close come back (as close_notify).
    let mut c = tls_connect(addr, &pki.client);
    c.write_all(b"GET through\r\n").unwrap();
    c.conn.send_close_notify();
    c.flush().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close_notify(&mut c)),
        "$9\r\nthe proxy\r\n"
    );
    drop(redis);
}

/// Byte `i` of the test stream.
fn pattern(off: usize, len: usize) -> Vec<u8> {
    (off..off + len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect()
}

/// Sends `total` bytes over TLS to `addr` while reading them back (an echo
/// behind it), in one thread with a non-blocking socket; then sends
/// close_notify and reads to the server's close_notify. Returns the bytes
/// read back, all checked.
fn stream_both_ways(addr: SocketAddr, pki: &Pki, total: usize) -> usize {
    let tcp = connect(addr);
    tcp.set_nonblocking(true).unwrap();
    let mut tcp = tcp;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = ClientConnection::new(pki.client.clone(), name).unwrap();
    let (mut sent, mut received) = (0, 0);
    let mut notified = false;
    let mut buf = vec![0; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_progress = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "sent {sent}, received {received}"
        );
        let mut progress = false;
        if !tls.is_handshaking() && sent < total {
            let n = tls
                .writer()
                .write(&pattern(sent, (total - sent).min(16 << 10)))
                .unwrap();
            sent += n;
            progress |= n > 0;
        }
        if sent == total && !notified {
            tls.send_close_notify();
            notified = true;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(n) => progress |= n > 0,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("writing: {e} (sent {sent})"),
            }
        }
        match tls.read_tls(&mut tcp) {
            Ok(0) => progress = true, // EOF: rustls knows now
            Ok(_) => {
                tls.process_new_packets().expect("TLS from the proxy");
                progress = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // "received plaintext buffer full": drained below.
            Err(e) if e.kind() == ErrorKind::Other => {}
            Err(e) => panic!("reading: {e} (received {received})"),
        }
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => return received, // close_notify
                Ok(n) => {
                    assert!(
                        buf[..n] == pattern(received, n)[..],
                        "wrong bytes at offset {received}"
                    );
                    received += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("after {received} bytes: {e}"),
            }
        }
        if progress {
            last_progress = Instant::now();
        } else {
            assert!(
                last_progress.elapsed() < TIMEOUT,
                "stuck: sent {sent}, received {received}"
            );
            thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn streams_16_mib_both_ways_through_the_tls_proxy_to_an_echo_backend() {
    let pki = Pki::new();
    let (_echo, backend) = start(Echo, 1);
    let (proxy, addr) = tls_proxy(&pki, backend, &[]);
    let total = 16 << 20;
    assert_eq!(stream_both_ways(addr, &pki, total), total);
    // The pair is gone once both directions ended.
    let pid = proxy.pid();
    let base = open_fds(pid);
    let c = tls_connect(addr, &pki.client);
    wait_for("the pair to open", || open_fds(pid) == base + 2);
    drop(c);
    wait_for("the pair to close", || open_fds(pid) == base);
}

#[test]
fn plain_client_through_the_proxy_to_our_redis_servers_tls_port() {
    let pki = Pki::new();
    let (_redis, backend) = spawn_tls(REDIS, &pki, &[]);
    // --backend-sni defaults to localhost for an IP address.
    let proxy = proxy_to_tls(backend, &pki.ca, &[]);
    for _ in 0..3 {
        redis_round_trip(proxy.addr());
    }
    let proxy = proxy_to_tls(backend, &pki.ca, &["--backend-sni", "localhost"]);
    redis_round_trip(proxy.addr());
}

#[test]
fn plain_client_through_the_proxy_to_a_real_redis_servers_tls_port() {
    let pki = Pki::new();
    let Some(real) = real_redis_tls(&pki) else {
        return;
    };
    let proxy = proxy_to_tls(real.addr, &pki.ca, &[]);
    redis_round_trip(proxy.addr());
    if have("redis-cli") {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &proxy.port.to_string(), "PING"]);
        let (status, out, err) = run_for(cmd, TIMEOUT, b"");
        assert_eq!((status, out.as_str()), (Some(0), "PONG\n"), "{err}");
    }
}

/// A backend whose certificate is not for the name asked, or not from the
/// CA trusted, is not talked to: the client's connection is closed with
/// nothing forwarded; the proxy goes on serving.
#[test]
fn backend_tls_refuses_a_wrong_name_or_an_untrusted_certificate() {
    let pki = Pki::new();
    let other = Pki::new();
    let (_redis, backend) = spawn_tls(REDIS, &pki, &[]);
    let wrong_name = proxy_to_tls(backend, &pki.ca, &["--backend-sni", "other.example"]);
    let wrong_ca = proxy_to_tls(backend, &other.ca, &[]);
    for proxy in [&wrong_name, &wrong_ca] {
        for _ in 0..2 {
            let mut s = connect(proxy.addr());
            let _ = s.write_all(b"PING\r\n");
            assert_eq!(read_to_close(&mut s), b"", "{}", proxy.line);
        }
    }
    // The control: the right CA and name.
    redis_round_trip(proxy_to_tls(backend, &pki.ca, &[]).addr());
}

/// With `--idle-timeout 1`, a TLS client that goes silent after its
/// handshake is closed, and both descriptors of the pair are released.
/// (evio-core closes a timed-out connection at once, without close_notify,
/// as nginx does on its timeouts: the client sees a truncation.)
#[test]
fn idle_timeout_closes_a_silent_tls_client() {
    let pki = Pki::new();
    let (backend, _held) = silent_backend();
    let (proxy, addr) = tls_proxy(&pki, backend, &["--idle-timeout", "1"]);
    let pid = proxy.pid();
    let base = open_fds(pid);
    let mut c = tls_connect(addr, &pki.client);
    wait_for("the pair to open", || open_fds(pid) == base + 2);
    c.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (got, clean) = read_to_end_tls(&mut c);
    assert_eq!(got, b"");
    eprintln!("closed by the idle timeout; close_notify: {clean}");
    wait_for("both descriptors to be released", || open_fds(pid) == base);
}

/// A TLS client writing to a backend that never reads: the proxy stops
/// reading the client (its writes stall well before 64 MiB) and its memory
/// does not grow with what the client tries to send.
#[test]
fn backpressure_over_tls_toward_a_backend_that_never_reads() {
    let pki = Pki::new();
    let (backend, _held) = silent_backend();
    let (proxy, addr) = tls_proxy(&pki, backend, &["--idle-timeout", "0"]);
    let before = rss_kib(proxy.pid());
    let total = 64u64 << 20;
    let sent = Arc::new(AtomicU64::new(0));
    let progress = sent.clone();
    let mut c = tls_connect(addr, &pki.client);
    c.sock
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let writer = thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut off = 0;
        while off < total {
            if c.write_all(&chunk).is_err() {
                break;
            }
            off += chunk.len() as u64;
            progress.store(off, Ordering::SeqCst);
        }
        c
    });
    // Wait until the writes stop moving.
    let stalled_at = stalls(&sent, total, Duration::from_millis(300), "bytes sent");
    let after = rss_kib(proxy.pid());
    eprintln!(
        "stalled after {} KiB sent; proxy RSS {before} -> {after} KiB",
        stalled_at >> 10
    );
    // The kernel's socket buffers hold most of what was sent; the proxy at
    // most its 1 MiB high-water mark and rustls's buffers.
    assert!(
        after < before + 16 * 1024,
        "RSS grew {before} -> {after} KiB"
    );
    drop(proxy); // the writer's blocked write fails
    let _ = writer.join();
}
