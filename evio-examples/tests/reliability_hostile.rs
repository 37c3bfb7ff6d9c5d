//! Hostile clients against the example servers over real sockets (issue
//! #7): slowloris against the HTTP server, gigantic declared lengths
//! against both servers, and the bounds at their limits.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use evio_examples::http::{self, HttpServer};
use evio_examples::redis::{Config, RedisServer};
use evio_examples::resp::Limits;

/// Reads one HTTP response (status line, headers, Content-Length body);
/// returns the status code.
fn response(r: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    status
}

/// 200 slowloris connections trickle a request head a byte at a time on
/// a one-loop server: other clients, new and kept-alive, are still answered
/// promptly, and each slow request is answered once its head completes.
#[test]
fn slowloris_does_not_starve_other_clients() {
    let (_server, addr) = start(HttpServer::new(http::Config::default()), 0);
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Pad: ")
                .unwrap();
            s
        })
        .collect();
    // One byte per connection every 10 ms: a header line that grows for
    // 1.5 s (to ~150 bytes, inside the 8 KiB head limit, which would
    // otherwise cut it off with a 431).
    let stop = Instant::now() + Duration::from_millis(1500);
    let trickle = std::thread::spawn(move || {
        while Instant::now() < stop {
            for s in &mut slow {
                s.write_all(b"a").unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        slow
    });
    let mut worst = Duration::ZERO;
    let keep = connect(addr);
    let mut keep_r = BufReader::new(keep.try_clone().unwrap());
    let mut served = 0;
    while !trickle.is_finished() {
        // A kept-alive client and a new one.
        let t = Instant::now();
        (&keep)
            .write_all(b"GET / HTTP/1.1\r\nHost: fast\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut keep_r), 200);
        let fresh = connect(addr);
        let mut fresh_r = BufReader::new(fresh.try_clone().unwrap());
        (&fresh)
            .write_all(b"GET / HTTP/1.1\r\nHost: fast\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut fresh_r), 200);
        worst = worst.max(t.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut slow = trickle.join().unwrap();
    eprintln!("slowloris: {served} fast round trips, slowest {worst:?}");
    assert!(served >= 20, "only {served} round trips");
    assert!(
        worst < Duration::from_millis(500),
        "slowest round trip {worst:?}"
    );
    // The slow heads complete: every one is answered.
    for s in &mut slow {
        s.write_all(b"\r\n\r\n").unwrap();
        // (the pad line ends, then the head)
    }
    for s in &mut slow {
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(response(&mut r), 200);
    }
}

/// A slowloris that never ends its head is cut off at the head limit
/// (431 and a close), however slowly it sends.
#[test]
fn endless_slow_head_is_cut_at_the_limit() {
    let (_server, addr) = start(
        HttpServer::new(http::Config {
            max_header_bytes: 1024,
            ..http::Config::default()
        }),
        0,
    );
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        .unwrap();
    let mut sent = 0;
    let t0 = Instant::now();
    while sent < 4096 {
        if s.write_all(&[b'a'; 64]).is_err() {
            break;
        }
        sent += 64;
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(response(&mut r), 431);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());
    eprintln!("cut after {sent} bytes in {:?}", t0.elapsed());
}

/// Declared lengths far beyond any limit are refused at once with the
/// protocol error, before a byte of them is awaited or reserved; lengths
/// within the limit reserve nothing (memory follows the bytes received).
#[test]
fn gigantic_resp_lengths_are_refused() {
    let (_server, addr) = start(RedisServer::new(Config::default()), 0);
    let cases: &[(&[u8], &str)] = &[
        (
            b"*2\r\n$4\r\nECHO\r\n$536870913\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n$18446744073709551615\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2147483648\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*9223372036854775808\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, reply) in cases {
        let mut s = connect(addr);
        s.write_all(input).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read_to_close(&mut s)),
            *reply,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    // *2147483647 (the most) is accepted, and nothing is reserved for it.
    let before = rss();
    let held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"*2147483647\r\n$4\r\nPING\r\n").unwrap();
            s
        })
        .collect();
    let mut s = connect(addr);
    expect_pong(&mut s);
    assert_rss_grew_less_than(before, 64 << 20);
    drop(held);
}

/// A body is skipped, never buffered: with the body limit raised to 2^62,
/// a `Content-Length` of 2^62 is read and discarded as it arrives (32 MiB
/// of it here) while memory stays flat. With the default limit (1 MiB, as
/// nginx) a larger length is refused at once with 413, and one past what
/// nginx's `off_t` holds (19 nines, 2^64-1) with 400.
#[test]
fn gigantic_content_length_is_skipped_not_buffered() {
    let config = http::Config {
        max_body_bytes: 1 << 62,
        ..http::Config::default()
    };
    let (_server, addr) = start(HttpServer::new(config), 0);
    let s = connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    (&s).write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387904\r\n\r\n")
        .unwrap();
    let before = rss();
    let junk = vec![b'G'; 1 << 20];
    for _ in 0..32 {
        (&s).write_all(&junk).unwrap();
    }
    // Still alive and still skipping: nothing is answered until the body
    // ends.
    assert_open(&mut r.get_mut().try_clone().unwrap());
    assert_rss_grew_less_than(before, 16 << 20);
    let (_server, addr) = start(HttpServer::new(http::Config::default()), 0);
    for (len, status) in [
        ("1048577", 413),
        ("9223372036854775807", 413),
        ("9999999999999999999", 400),
        ("18446744073709551615", 400),
        ("184467440737095516150", 400),
    ] {
        let s2 = connect(addr);
        let mut r2 = BufReader::new(s2.try_clone().unwrap());
        (&s2)
            .write_all(
                format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
            )
            .unwrap();
        assert_eq!(response(&mut r2), status, "{len}");
    }
}

/// Every RESP bound at its limit and one past it, with the server's own
/// limits small: bulk length, inline size, argument count, query buffer.
/// (`redis.rs::raw_limits` checks the replies; this checks the server
/// stays healthy for others after each refusal.)
#[test]
fn resp_bounds_leave_others_unharmed() {
    let limits = Limits {
        max_bulk_len: 512,
        max_inline: 128,
        max_multibulk_len: 4,
        query_buffer_limit: 2048,
    };
    let (_server, addr) = start(
        RedisServer::new(Config {
            loops: 2,
            limits,
            ..Config::default()
        }),
        2,
    );
    let mut bystander = connect(addr);
    let attacks: Vec<Vec<u8>> = vec![
        format!("*2\r\n$4\r\nECHO\r\n$513\r\n{}\r\n", "x".repeat(513)).into_bytes(),
        format!("ECHO {}\r\n", "y".repeat(200)).into_bytes(),
        b"*5\r\n".to_vec(),
        [
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$512\r\n".as_slice(),
            &[b'z'; 512],
            b"\r\n$512\r\n",
            &[b'z'; 512],
            b"\r\n$512\r\n",
            &[b'z'; 512],
            b"\r\n$512\r\n",
            &[b'z'; 100],
        ]
        .concat(),
    ];
    for a in attacks {
        let mut s = connect(addr);
        let _ = s.write_all(&a);
        read_to_close(&mut s);
        expect_pong(&mut bystander);
    }
}
