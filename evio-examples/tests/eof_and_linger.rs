//! How the HTTP and Redis servers end connections, over real sockets:
//! the client's FIN behind requests held for the output to drain, the
//! HTTP lingering close after a closing response, and the HTTP header
//! timeout. Every server runs in-process on an ephemeral port.

mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use evio_core::{Action, Conn, EventHandler, Options};
use evio_examples::{http, redis};

/// Reads to EOF; a reset is an error (unlike `common::read_to_close`).
fn read_to_eof(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads one HTTP response (status line, headers, `Content-Length` body);
/// returns its status.
fn http_response(r: &mut impl BufRead) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
    let status = line[9..12].parse().unwrap();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = v.trim_end().parse().unwrap();
        }
    }
    read_n(r, len).unwrap();
    status
}

// ----- a FIN behind held requests ----------------------------------------------------

/// A server handler with a 16 KiB send buffer on every connection.
#[derive(Clone)]
struct SmallSendBuffer<H>(H);

impl<H: EventHandler> EventHandler for SmallSendBuffer<H> {
    type Context = H::Context;

    fn on_opened(&mut self, conn: &mut Conn<'_, H::Context>) -> (Options, Action) {
        conn.socket()
            .and_then(|s| s.set_send_buffer_size(16 << 10))
            .expect("SO_SNDBUF");
        self.0.on_opened(conn)
    }

    fn on_data(&mut self, conn: &mut Conn<'_, H::Context>, input: &[u8]) -> Action {
        self.0.on_data(conn, input)
    }

    fn on_eof(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.0.on_eof(conn)
    }

    fn on_drained(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.0.on_drained(conn)
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, H::Context>) -> Action {
        self.0.on_timer(conn)
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        self.0.on_tick()
    }
}

/// A client that reads slowly: at most 8 KiB per read, 1 ms apart. With
/// the server's send buffer small too (`SmallSendBuffer`), its output
/// drains in small steps, so evio-core resumes reading (and meets the FIN)
/// while requests are still held; a fast reader, or the kernel's large
/// default buffers, let every held request run before reading resumes.
struct Slow(TcpStream);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        thread::sleep(Duration::from_millis(1));
        let n = buf.len().min(8 << 10);
        self.0.read(&mut buf[..n])
    }
}

/// A client pipelines GETs of a 16 KiB value (6 MiB of replies, far past
/// the 1 MiB output mark, so most requests are held), shuts down its write
/// side at once, and reads slowly. Every reply still arrives, in order,
/// then EOF. (Before `on_eof`, the FIN closed the connection after the
/// queued output: the held requests were never answered.)
#[test]
fn redis_answers_held_requests_after_the_clients_fin() {
    let redis = redis::RedisServer::new(redis::Config::default());
    let (server, addr) = start(SmallSendBuffer(redis), 1);
    let mut s = connect(addr);
    let value = vec![b'v'; 16 << 10];
    s.write_all(&resp_command(&[b"SET", b"k", &value])).unwrap();
    expect(&mut s, b"+OK\r\n");
    let n = 400;
    let writer = {
        let s = s.try_clone().unwrap();
        thread::spawn(move || {
            (&s).write_all("GET k\r\n".repeat(n).as_bytes())?;
            s.shutdown(Shutdown::Write)
        })
    };
    let mut one = format!("${}\r\n", value.len()).into_bytes();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\n");
    let mut r = BufReader::new(Slow(s.try_clone().unwrap()));
    for i in 0..n {
        let got = read_n(&mut r, one.len()).unwrap();
        assert!(got == one, "reply {i} differs");
    }
    writer.join().unwrap().unwrap();
    assert_eq!(read_to_eof(&mut r).expect("EOF, not a reset"), b"");
    wait_for("the connection to close", || server.connections() == 0);
}

/// The same for HTTP: 30,000 pipelined GETs (870 KB; about 4 MiB of
/// responses), then the client's FIN and slow reading; every response
/// arrives, then EOF. (HTTP requests are small next to their responses,
/// so with the default marks evio-core pauses reading long before much
/// input is held; a 64 KiB engine mark holds most of it when the FIN is
/// read.)
#[test]
fn http_answers_held_requests_after_the_clients_fin() {
    let http = http::HttpServer::new(http::Config {
        output_high_water: 64 << 10,
        ..http::Config::default()
    });
    let (server, addr) = start(SmallSendBuffer(http), 1);
    let s = connect(addr);
    let n = 30_000;
    let writer = {
        let s = s.try_clone().unwrap();
        thread::spawn(move || {
            let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(n);
            (&s).write_all(&req)?;
            s.shutdown(Shutdown::Write)
        })
    };
    let mut r = BufReader::new(Slow(s.try_clone().unwrap()));
    for i in 0..n {
        assert_eq!(http_response(&mut r), 200, "response {i}");
    }
    writer.join().unwrap().unwrap();
    assert_eq!(read_to_eof(&mut r).expect("EOF, not a reset"), b"");
    wait_for("the connection to close", || server.connections() == 0);
}

/// A FIN with nothing held still closes at once (after the replies), and a
/// partial request left at the FIN is dropped.
#[test]
fn fin_with_nothing_held_closes() {
    let (_http, http_addr) = start(http::HttpServer::new(http::Config::default()), 1);
    let (_redis, redis_addr) = start(redis::RedisServer::new(redis::Config::default()), 1);
    for (addr, input, reply) in [
        (
            http_addr,
            &b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET / HT"[..],
            &b"HTTP/1.1 404"[..],
        ),
        (redis_addr, b"PING\r\nGET", b"+PONG\r\n"),
    ] {
        let mut s = connect(addr);
        s.write_all(input).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let got = read_to_eof(&mut s).expect("EOF, not a reset");
        assert!(
            got.starts_with(reply),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

// ----- HTTP lingering close ------------------------------------------------------------

/// A client sends a head over the limit and 1 MiB more behind it, and
/// reads only after sending everything. The server answers 431, shuts
/// down its write side and reads on (discarding) until the client's FIN:
/// the client reads the complete 431, then EOF — not ECONNRESET, which
/// closing with unread input makes the kernel send (and which can destroy
/// the response before the client reads it).
#[test]
fn lingering_close_delivers_the_error_response_to_a_client_still_sending() {
    let (server, addr) = start(http::HttpServer::new(http::Config::default()), 1);
    for extra in [1 << 20, 64 << 10] {
        let s = connect(addr);
        let mut request =
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "a".repeat(9000)).into_bytes();
        request.extend(vec![b'b'; extra]);
        (&s).write_all(&request).expect("the server reads on");
        // Give the server time to answer and (before lingering) close.
        thread::sleep(Duration::from_millis(100));
        (&s).write_all(b"more").expect("the server still reads");
        s.shutdown(Shutdown::Write).unwrap();
        let mut r = BufReader::new(&s);
        assert_eq!(http_response(&mut r), 431);
        assert_eq!(read_to_eof(&mut r).expect("EOF, not a reset"), b"");
    }
    // The client's FIN ended the lingering: nothing stays open.
    wait_for("the connections to close", || server.connections() == 0);
}

/// A `Connection: close` request followed by more input (a pipelined
/// request the server will not answer) is closed the same way.
#[test]
fn lingering_close_after_connection_close_with_input_left() {
    let (_server, addr) = start(http::HttpServer::new(http::Config::default()), 1);
    let s = connect(addr);
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    input.extend(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2000));
    (&s).write_all(&input).unwrap();
    thread::sleep(Duration::from_millis(100));
    (&s).write_all(b"GET / HTTP/1.1\r\n")
        .expect("the server still reads");
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = BufReader::new(&s);
    assert_eq!(http_response(&mut r), 200);
    assert_eq!(read_to_eof(&mut r).expect("EOF, not a reset"), b"");
}

/// Lingering is bounded: a client that stays silent after the error is
/// closed after the lingering timeout, one that keeps sending after the
/// lingering time.
#[test]
fn lingering_close_is_bounded() {
    let config = http::Config {
        lingering_timeout: Duration::from_millis(300),
        lingering_time: Duration::from_millis(800),
        ..http::Config::default()
    };
    let (server, addr) = start(http::HttpServer::new(config), 1);
    // Silent after the error: the server's FIN, then the close.
    let mut silent = connect(addr);
    silent.write_all(b"BAD\r\n\r\n").unwrap();
    let mut r = BufReader::new(silent.try_clone().unwrap());
    assert_eq!(http_response(&mut r), 400);
    assert_eq!(read_to_eof(&mut r).unwrap(), b"");
    wait_for("the silent lingering connection to close", || {
        server.connections() == 0
    });
    drop(silent);
    // Sending forever, a few bytes every 50 ms (never silent for the
    // lingering timeout): cut off once the lingering time is up.
    let s = connect(addr);
    (&s).write_all(b"BAD\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let cut = loop {
        thread::sleep(Duration::from_millis(50));
        if (&s).write_all(b"x").is_err() {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < TIMEOUT, "never cut off");
    };
    assert!(cut >= Duration::from_millis(700), "cut off after {cut:?}");
    wait_for("the connection to close", || server.connections() == 0);
}

// ----- HTTP header timeout -------------------------------------------------------------

fn header_timeout_server(
    ms: u64,
) -> (evio_core::ServerHandle<http::Session>, std::net::SocketAddr) {
    start(
        http::HttpServer::new(http::Config {
            header_timeout: Some(Duration::from_millis(ms)),
            ..http::Config::default()
        }),
        1,
    )
}

/// Closed, without a response, once the header timeout has passed: a
/// connection that sends nothing, and one whose head never completes.
#[test]
fn header_timeout_closes_silent_and_slow_heads() {
    let (server, addr) = header_timeout_server(300);
    for input in [&b""[..], b"GET / HTTP/1.1\r\nHo"] {
        let mut s = connect(addr);
        let t0 = Instant::now();
        s.write_all(input).unwrap();
        assert_eq!(read_to_eof(&mut s).expect("EOF"), b"");
        let after = t0.elapsed();
        assert!(
            after >= Duration::from_millis(250),
            "closed after {after:?}"
        );
    }
    wait_for("the connections to close", || server.connections() == 0);
}

/// The header timeout times each head, not the connection: a keep-alive
/// connection idle between requests for longer is kept (the idle timeout
/// is for that), and a client whose every head arrives in two pieces keeps
/// being served for several times the timeout.
#[test]
fn header_timeout_times_each_head() {
    let (_server, addr) = header_timeout_server(300);
    let mut s = connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(http_response(&mut r), 200);
    thread::sleep(Duration::from_millis(700));
    assert_open(&mut s);
    for _ in 0..12 {
        s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        thread::sleep(Duration::from_millis(100));
        // The rest of this head and the start of the next.
        s.write_all(b"st: a\r\n\r\nGET / HTTP/1.1\r\n").unwrap();
        assert_eq!(http_response(&mut r), 200);
        thread::sleep(Duration::from_millis(100));
        s.write_all(b"Host: a\r\n\r\n").unwrap();
        assert_eq!(http_response(&mut r), 200);
    }
}

/// The timeout fires once per head at most: a stalled head is closed about
/// a timeout after it began, even while the connection sends other bytes
/// of it (a slow head is not kept alive by trickling).
#[test]
fn header_timeout_is_not_reset_by_trickling() {
    let (_server, addr) = header_timeout_server(500);
    let s = connect(addr);
    let (done, closed) = mpsc::channel();
    let reader = {
        let mut s = s.try_clone().unwrap();
        thread::spawn(move || {
            let got = read_to_eof(&mut s);
            let _ = done.send(());
            got
        })
    };
    let t0 = Instant::now();
    (&s).write_all(b"GET / HTTP/1.1\r\n").unwrap();
    loop {
        thread::sleep(Duration::from_millis(50));
        if closed.try_recv().is_ok() {
            break;
        }
        // A header line, a byte at a time: the head never ends.
        if (&s).write_all(b"X").is_err() {
            break;
        }
        assert!(t0.elapsed() < TIMEOUT, "never closed");
    }
    let closed_after = t0.elapsed();
    let got = reader.join().unwrap();
    assert!(
        matches!(&got, Ok(b) if b.is_empty())
            || matches!(&got, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "{got:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(450),
        "closed after {closed_after:?}"
    );
}
