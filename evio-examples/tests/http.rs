//! The HTTP example against `ureq` (keep-alive) and raw sockets
//! (pipelining, splits, bodies, malformed input, limits). Every server runs
//! in-process on an ephemeral port.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use evio_core::ServerHandle;
use evio_examples::http::{Config, HttpServer, Stats};

fn server(loops: isize) -> (ServerHandle, SocketAddr, Arc<Stats>) {
    let http = HttpServer::new(Config::default());
    let stats = http.stats();
    let (handle, addr) = start(http, loops);
    (handle, addr, stats)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response; `head_only` for a HEAD request (no body).
fn read_response(r: &mut impl BufRead, head_only: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    assert!(
        line.starts_with("HTTP/1.1 ") && line.ends_with("\r\n"),
        "status line {line:?}"
    );
    let status = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        assert!(line.ends_with("\r\n"), "header line {line:?}");
        if line == "\r\n" {
            break;
        }
        let (n, v) = line.trim_end().split_once(": ").expect("header");
        headers.push((n.to_string(), v.to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = resp
        .header("Content-Length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    if !head_only {
        resp.body = read_n(r, len);
    }
    resp
}

fn reader(s: &TcpStream) -> BufReader<TcpStream> {
    BufReader::new(s.try_clone().unwrap())
}

/// The rest of the connection, which must close.
fn rest_until_close(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => rest,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest,
        Err(e) => panic!("waiting for close: {e}"),
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn ureq_keep_alive() {
    let (_server, addr, stats) = server(0);
    let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
    let url = format!("http://{addr}/");
    for _ in 0..20 {
        let resp = agent.get(&url).call().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("Content-Length"), Some("14"));
        assert_eq!(resp.header("Content-Type"), Some("text/plain"));
        assert!(resp.header("Date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(resp.into_string().unwrap(), "Hello World!\r\n");
    }
    let head = agent.head(&url).call().unwrap();
    assert_eq!(head.header("Content-Length"), Some("14"));
    assert_eq!(head.into_string().unwrap(), "");
    assert_eq!(
        stats.connections_opened(),
        1,
        "keep-alive reuses one connection"
    );
    match agent.get(&format!("{url}nope")).call() {
        Err(ureq::Error::Status(404, resp)) => {
            assert_eq!(resp.into_string().unwrap(), "Not Found\r\n")
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[test]
fn ureq_many_clients_many_loops() {
    let (_server, addr, stats) = server(4);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
                for _ in 0..50 {
                    let body = agent
                        .get(&format!("http://{addr}/"))
                        .call()
                        .unwrap()
                        .into_string()
                        .unwrap();
                    assert_eq!(body, "Hello World!\r\n");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(stats.connections_opened(), 8);
}

#[test]
fn raw_pipelining() {
    let (_server, addr, _) = server(0);
    let mut s = connect(addr);
    let mut r = reader(&s);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /?q HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let statuses: Vec<u16> = [false, true, false, false]
        .iter()
        .map(|&h| read_response(&mut r, h).status)
        .collect();
    assert_eq!(statuses, [200, 200, 404, 200]);
    assert_open(&mut s);
}

#[test]
fn raw_byte_by_byte() {
    let (_server, addr, _) = server(0);
    let mut s = connect(addr);
    let mut r = reader(&s);
    write_bytewise(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n",
    );
    let resp = read_response(&mut r, false);
    assert_eq!(
        (resp.status, &resp.body[..]),
        (200, &b"Hello World!\r\n"[..])
    );
}

#[test]
fn bodies_are_skipped_not_parsed() {
    let (_server, addr, _) = server(0);
    let mut s = connect(addr);
    let mut r = reader(&s);
    // A body that looks like requests must not be answered as requests.
    let body = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n".repeat(100);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    for piece in body.as_bytes().chunks(700) {
        std::thread::sleep(Duration::from_millis(2));
        s.write_all(piece).unwrap();
    }
    s.write_all(GET).unwrap();
    assert_eq!(read_response(&mut r, false).status, 405);
    assert_eq!(read_response(&mut r, false).status, 200);
    assert_open(&mut s);
    // Body and next request in one write.
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).status, 404);
    assert_eq!(read_response(&mut r, false).status, 200);
    assert_open(&mut s);
}

#[test]
fn transfer_encoding_is_refused() {
    let (_server, addr, _) = server(0);
    for (te, status) in [("chunked", 411), ("gzip, chunked", 411), ("gzip", 501)] {
        let s = connect(addr);
        let mut r = reader(&s);
        let req = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nGET /\r\n0\r\n\r\n"
        );
        (&s).write_all(req.as_bytes()).unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, status, "{te}");
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_eq!(rest_until_close(&mut r), b"", "nothing more, then close");
    }
}

#[test]
fn malformed_requests_get_400_and_close() {
    let (_server, addr, _) = server(0);
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    ];
    for req in cases {
        let mut s = connect(addr);
        let mut r = reader(&s);
        s.write_all(GET).unwrap();
        s.write_all(req).unwrap();
        assert_eq!(read_response(&mut r, false).status, 200);
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_eq!(rest_until_close(&mut r), b"");
    }
}

#[test]
fn header_limits() {
    let (_server, addr, _) = server(0);
    // A head of exactly 8 KiB is served.
    let pad = 8192 - "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n".len();
    let s = connect(addr);
    let mut r = reader(&s);
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "p".repeat(pad)
    );
    assert_eq!(ok.len(), 8192);
    (&s).write_all(ok.as_bytes()).unwrap();
    assert_eq!(read_response(&mut r, false).status, 200);
    // One byte more is refused, whether it arrives at once or in pieces.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "p".repeat(pad + 1)
    );
    for chunk in [big.len(), 1000] {
        let s = connect(addr);
        let mut r = reader(&s);
        for piece in big.as_bytes().chunks(chunk) {
            let _ = (&s).write_all(piece);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(read_response(&mut r, false).status, 431);
        assert_eq!(rest_until_close(&mut r), b"");
    }
    // Too many headers.
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    let s = connect(addr);
    let mut r = reader(&s);
    (&s).write_all(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut r, false).status, 431);
}

#[test]
fn input_per_connection_is_bounded() {
    let (_server, addr, _) = server(0);
    let s = connect(addr);
    let mut r = reader(&s);
    // 16 MiB of a header line that never ends: the server answers 431 and
    // closes long before it has it all.
    let writer = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let junk = vec![b'a'; 64 << 10];
            let _ = (&s).write_all(b"GET / HTTP/1.1\r\nX: ");
            let mut sent = 0;
            while sent < 16 << 20 {
                if (&s).write_all(&junk).is_err() {
                    return sent;
                }
                sent += junk.len();
            }
            sent
        })
    };
    assert_eq!(read_response(&mut r, false).status, 431);
    rest_until_close(&mut r);
    assert!(writer.join().unwrap() < 16 << 20, "the server kept reading");
}

#[test]
fn connection_close_rules() {
    let (_server, addr, _) = server(0);
    let cases: &[(&[u8], bool)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Close\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            false,
        ),
    ];
    for (req, closes) in cases {
        let mut s = connect(addr);
        let mut r = reader(&s);
        s.write_all(req).unwrap();
        s.write_all(GET).unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 200);
        if *closes {
            assert_eq!(resp.header("Connection"), Some("close"));
            assert_eq!(
                rest_until_close(&mut r),
                b"",
                "{:?}",
                String::from_utf8_lossy(req)
            );
        } else {
            assert_eq!(read_response(&mut r, false).status, 200);
            assert_open(&mut s);
        }
    }
}

#[test]
fn date_header_is_current() {
    let (_server, addr, _) = server(0);
    let s = connect(addr);
    let mut r = reader(&s);
    (&s).write_all(GET).unwrap();
    let resp = read_response(&mut r, false);
    let date = httpdate::parse_http_date(resp.header("Date").unwrap()).unwrap();
    let now = SystemTime::now();
    let skew = now.duration_since(date).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(3), "Date is {skew:?} off");
    assert_eq!(resp.header("Server"), Some("evio"));
}
