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
use evio_examples::http::{Config, HttpServer, Session, Stats};

fn server(loops: isize) -> (ServerHandle<Session>, SocketAddr, Arc<Stats>) {
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
        resp.body = read_n(r, len).unwrap();
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

/// Connects and writes `req`: the stream and a reader of it.
fn send(addr: SocketAddr, req: &[u8]) -> (TcpStream, BufReader<TcpStream>) {
    let mut s = connect(addr);
    let r = reader(&s);
    s.write_all(req).unwrap();
    (s, r)
}

/// Reads one response per status of `want` (none is to a HEAD) and checks
/// the statuses, in order.
fn expect_statuses(r: &mut impl BufRead, want: &[u16]) {
    let got: Vec<u16> = want
        .iter()
        .map(|_| read_response(r, false).status)
        .collect();
    assert_eq!(got, want);
}

/// Reads a response that must have `status` and `Connection: close`, then
/// the close, with nothing after the response.
fn expect_last(r: &mut BufReader<TcpStream>, status: u16, what: &[u8]) {
    let resp = read_response(r, false);
    let what = String::from_utf8_lossy(what);
    assert_eq!(resp.status, status, "{what:?}");
    assert_eq!(resp.header("Connection"), Some("close"), "{what:?}");
    assert_eq!(
        rest_until_close(r),
        b"",
        "nothing more, then close: {what:?}"
    );
}

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
    expect_statuses(&mut r, &[405, 200]);
    assert_open(&mut s);
    // Body and next request in one write.
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    expect_statuses(&mut r, &[404, 200]);
    assert_open(&mut s);
}

#[test]
fn transfer_encoding_other_than_chunked_is_refused() {
    let (_server, addr, _) = server(0);
    let cases = [
        ("Transfer-Encoding: gzip", 501),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            400,
        ),
    ];
    for (te, status) in cases {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n\r\n5\r\nGET /\r\n0\r\n\r\n");
        let (_s, mut r) = send(addr, req.as_bytes());
        expect_last(&mut r, status, te.as_bytes());
    }
}

#[test]
fn chunked_bodies_are_decoded_not_parsed() {
    let (_server, addr, _) = server(0);
    let mut s = connect(addr);
    let mut r = reader(&s);
    // Chunks that look like requests, extensions, trailers; split at every
    // awkward place across writes.
    let body = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n".repeat(50);
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.as_bytes().chunks(333) {
        req.extend_from_slice(format!("{:x};ext=\"v\"\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    req.extend_from_slice(GET);
    for piece in req.chunks(97) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    expect_statuses(&mut r, &[405, 200]);
    assert_open(&mut s);
}

#[test]
fn body_limit_gets_413_and_close() {
    let (_server, addr, _) = server(0);
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\n",
    ];
    for req in cases {
        let (mut s, mut r) = send(addr, req);
        if req.ends_with(b"80000\r\n") {
            // Half the limit, twice: refused once the second size is read.
            s.write_all(&vec![b'x'; 0x80000]).unwrap();
            s.write_all(b"\r\n80001\r\n").unwrap();
        }
        expect_last(&mut r, 413, req);
    }
    // Exactly the limit is fine.
    let (mut s, mut r) = send(
        addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n",
    );
    s.write_all(&vec![b'x'; 1 << 20]).unwrap();
    s.write_all(GET).unwrap();
    expect_statuses(&mut r, &[405, 200]);
    assert_open(&mut s);
}

#[test]
fn expect_100_continue_over_raw_sockets() {
    let (_server, addr, _) = server(0);
    let mut s = connect(addr);
    let mut r = reader(&s);
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    // The interim response comes at once, the final one after the body.
    expect(&mut r, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_open(&mut s);
    s.write_all(b"abcde").unwrap();
    assert_eq!(read_response(&mut r, false).status, 405);
    // The same request with its body in the same write: no 100.
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nabcde",
    )
    .unwrap();
    s.write_all(GET).unwrap();
    expect_statuses(&mut r, &[405, 200]);
    assert_open(&mut s);
    // An expectation the server cannot meet.
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).status, 417);
    assert_eq!(rest_until_close(&mut r), b"");
}

/// Runs curl with `args`; returns its stdout. Fails if curl fails or hangs
/// (`--max-time`).
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn have_curl() -> bool {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("curl not installed: skipped");
    }
    found
}

#[test]
fn curl_expect_continue_then_next_request_on_the_same_connection() {
    if !have_curl() {
        return;
    }
    let (_server, addr, stats) = server(0);
    let dir = std::env::temp_dir().join(format!("evio-http-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("512k");
    std::fs::write(&file, vec![b'x'; 512 << 10]).unwrap();
    let data = format!("@{}", file.display());
    let url = format!("http://{addr}/");
    let fmt = "%{http_code} %{num_connects}\n";
    // Before the fix curl sent no body (it had its final answer), the
    // server swallowed the next request as body, and this hung.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        fmt,
        "--data-binary",
        &data,
        "-H",
        "Expect: 100-continue",
        &url,
        "--next",
        "-o",
        "/dev/null",
        "-w",
        fmt,
        &url,
    ]);
    assert_eq!(out, "405 1\n200 0\n", "one connection, both answered");
    // Chunked upload (curl sends Expect for it too), then a GET.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        fmt,
        "--data-binary",
        &data,
        "-H",
        "Transfer-Encoding: chunked",
        &url,
        "--next",
        "-o",
        "/dev/null",
        "-w",
        fmt,
        &url,
    ]);
    assert_eq!(out, "405 1\n200 0\n");
    assert_eq!(stats.connections_opened(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn curl_absolute_form_through_a_proxy_setting() {
    if !have_curl() {
        return;
    }
    let (_server, addr, _) = server(0);
    // With -x, curl sends `GET http://example.invalid/ HTTP/1.1`.
    let proxy = format!("http://{addr}");
    let out = curl(&["-x", &proxy, "http://example.invalid/"]);
    assert_eq!(out, "Hello World!\r\n");
    let out = curl(&[
        "-x",
        &proxy,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://example.invalid/x?y",
    ]);
    assert_eq!(out, "404");
}

#[test]
fn versions_hosts_and_targets() {
    let (_server, addr, _) = server(0);
    let cases: &[(&[u8], u16, bool)] = &[
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 200, false),
        (b"GET / HTTP/1.9\r\nHost: a\r\n\r\n", 200, false),
        (
            b"GET http://a:80/?q HTTP/1.1\r\nHost: a\r\n\r\n",
            200,
            false,
        ),
        (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200, false),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, true),
        (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", 505, true),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 400, true),
        (b"GET / HTTP/1.2\r\n\r\n", 400, true),
        (b"GET http://a/ HTTP/1.1\r\n\r\n", 400, true),
        (b"GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", 400, true),
    ];
    for &(req, status, closes) in cases {
        let (mut s, mut r) = send(addr, req);
        if closes {
            expect_last(&mut r, status, req);
        } else {
            let resp = read_response(&mut r, false);
            assert_eq!(resp.status, status, "{:?}", String::from_utf8_lossy(req));
            assert_open(&mut s);
        }
    }
}

#[test]
fn pipelining_client_that_does_not_read_gets_every_response_in_order() {
    let (_server, addr, _) = server(0);
    let s = connect(addr);
    let mut r = reader(&s);
    // 40,000 requests (about 7 MB of responses) written before reading
    // one: the server stops executing at its output mark and goes on as
    // the client reads.
    let n = 40_000;
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let pair = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a\r\n\r\n";
            let batch = pair.repeat(500);
            for _ in 0..n / 1000 {
                s.write_all(&batch).unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..n {
        let resp = read_response(&mut r, i % 2 == 1);
        assert_eq!(
            resp.status,
            if i % 2 == 0 { 200 } else { 404 },
            "response {i}"
        );
    }
    writer.join().unwrap();
    let mut s = s;
    assert_open(&mut s);
}

#[test]
fn malformed_requests_get_400_and_close() {
    let (_server, addr, _) = server(0);
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/x.y\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    ];
    for req in cases {
        let (mut s, mut r) = send(addr, GET);
        s.write_all(req).unwrap();
        expect_statuses(&mut r, &[200]);
        expect_last(&mut r, 400, req);
    }
}

#[test]
fn header_limits() {
    let (_server, addr, _) = server(0);
    // A head of exactly 8 KiB is served.
    let pad = 8192 - "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n".len();
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "p".repeat(pad)
    );
    assert_eq!(ok.len(), 8192);
    let (_s, mut r) = send(addr, ok.as_bytes());
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
        expect_last(&mut r, 431, &big.as_bytes()[..64]);
    }
    // Too many headers.
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    let (_s, mut r) = send(addr, req.as_bytes());
    assert_eq!(read_response(&mut r, false).status, 431);
}

#[test]
fn input_per_connection_is_bounded() {
    let (_server, addr, _) = server(0);
    let s = connect(addr);
    let mut r = reader(&s);
    // A header line that never ends: the server answers 431 after at most
    // the head limit, without waiting for (or holding) the rest: the
    // writer sends 1 MiB, then waits for the 431 before sending more.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let writer = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let junk = vec![b'a'; 64 << 10];
            (&s).write_all(b"GET / HTTP/1.1\r\nX: ").unwrap();
            for _ in 0..16 {
                (&s).write_all(&junk).unwrap();
            }
            wait.recv().unwrap();
            // The lingering close reads and discards the rest, then the
            // server's FIN comes after the 431: no reset.
            for _ in 0..240 {
                (&s).write_all(&junk).unwrap();
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    assert_eq!(read_response(&mut r, false).status, 431);
    go.send(()).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("EOF after the 431, not a reset");
    assert_eq!(rest, b"");
    writer.join().unwrap();
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
    for &(req, closes) in cases {
        let (mut s, mut r) = send(addr, req);
        s.write_all(GET).unwrap();
        if closes {
            expect_last(&mut r, 200, req);
        } else {
            expect_statuses(&mut r, &[200, 200]);
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
