//! Every byte of every reply arrives, through every example server, in
//! every cell of {plain, TLS} × {epoll, poll} × {small reply, 16 MiB of
//! replies, 10,000 pipelined replies} × {client reads at once, client reads
//! only after 2 s} — and through real clients (redis-cli, curl) where one
//! exists. One test per server and backend runs its cells side by side.
//!
//! The TLS cells of this matrix stalled before the fix of issue 19: a TLS
//! reply larger than rustls's 64 KiB of records stopped half-way (epoll),
//! or records left inside the session were never asked to be written
//! (poll).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use common::tls::{run_for, spawn_tls, Pki};
use common::{connect, have, Bin};

const ECHO: &str = env!("CARGO_BIN_EXE_echo-server");
const HTTP: &str = env!("CARGO_BIN_EXE_http-server");
const REDIS: &str = env!("CARGO_BIN_EXE_redis-server");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// How long a late client waits before its first read.
const LATE: Duration = Duration::from_secs(2);
/// How long one cell may take before it counts as stalled.
const STALL: Duration = Duration::from_secs(60);
/// The size of the huge cells.
const HUGE: usize = 16 << 20;
/// The count of the pipelined cells.
const PIPELINED: usize = 10_000;
/// HTTP's huge cell: this many pipelined `GET /`, about 16 MiB of replies
/// (the count of the report).
const HTTP_HUGE: usize = 120_000;

#[derive(Clone, Copy, Debug)]
enum Reader {
    AtOnce,
    Late,
}

const READERS: [Reader; 2] = [Reader::AtOnce, Reader::Late];

/// One cell: what to send where, and what must come back.
struct Cell {
    name: String,
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    request: Arc<Vec<u8>>,
    expect: Expect,
    reader: Reader,
}

/// What a cell must receive.
#[derive(Clone)]
enum Expect {
    /// Exactly these bytes.
    Bytes(Arc<Vec<u8>>),
    /// `count` HTTP responses of `len` bytes each, every one a `200` with
    /// the `Hello World!` body (their `Date` may differ).
    Http { count: usize, len: usize },
}

impl Expect {
    fn len(&self) -> usize {
        match self {
            Expect::Bytes(b) => b.len(),
            Expect::Http { count, len } => count * len,
        }
    }

    /// `None` if `got` is right, else what is wrong.
    fn check(&self, got: &[u8]) -> Option<String> {
        if got.len() != self.len() {
            return Some(format!("got {} bytes, want {}", got.len(), self.len()));
        }
        match self {
            Expect::Bytes(want) => (got != &want[..]).then(|| {
                let at = got.iter().zip(want.iter()).position(|(a, b)| a != b);
                format!("the bytes differ from offset {at:?}")
            }),
            Expect::Http { len, .. } => got.chunks(*len).enumerate().find_map(|(i, r)| {
                let ok =
                    r.starts_with(b"HTTP/1.1 200 OK\r\n") && r.ends_with(evio_examples::http::BODY);
                (!ok).then(|| format!("response {i} is {:?}", String::from_utf8_lossy(r)))
            }),
        }
    }
}

/// Runs the cells side by side; fails with the list of cells that did not
/// get exactly their bytes.
fn run_cells(cells: Vec<Cell>) {
    let n = cells.len();
    let threads: Vec<_> = cells
        .into_iter()
        .map(|cell| {
            let name = cell.name.clone();
            let t = std::thread::spawn(move || {
                let want = cell.expect.len();
                exchange(&cell, want).and_then(|got| match cell.expect.check(&got) {
                    None => Ok(()),
                    Some(e) => Err(e),
                })
            });
            (name, t)
        })
        .collect();
    let failed: Vec<String> = threads
        .into_iter()
        .filter_map(|(name, t)| match t.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{name}: {e}")),
            Err(_) => Some(format!("{name}: panicked")),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {n} cells failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A client socket, plain or TLS, driven by hand so that it can write
/// while it does not read.
enum Client {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
}

impl Client {
    fn open(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> Result<Client, String> {
        let mut tcp = connect(addr);
        let client = match tls {
            None => Client::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from("localhost").unwrap();
                let mut c = ClientConnection::new(config.clone(), name).unwrap();
                while c.is_handshaking() {
                    c.complete_io(&mut tcp)
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                }
                Client::Tls(Box::new(c), tcp)
            }
        };
        client.socket().set_nonblocking(true).unwrap();
        Ok(client)
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Client::Plain(s) | Client::Tls(_, s) => s,
        }
    }

    /// Writes from `data[*sent..]` until done or the socket is full.
    fn send(&mut self, data: &[u8], sent: &mut usize) -> Result<bool, String> {
        let mut progress = false;
        match self {
            Client::Plain(s) => {
                while *sent < data.len() {
                    match s.write(&data[*sent..]) {
                        Ok(n) => {
                            *sent += n;
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("write: {e}")),
                    }
                }
            }
            Client::Tls(c, s) => loop {
                if *sent < data.len() {
                    *sent += c.writer().write(&data[*sent..]).unwrap();
                }
                if !c.wants_write() {
                    break;
                }
                match c.write_tls(s) {
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            },
        }
        Ok(progress)
    }

    /// Whether bytes wait to be written.
    fn unsent(&self, data: &[u8], sent: usize) -> bool {
        sent < data.len() || matches!(self, Client::Tls(c, _) if c.wants_write())
    }

    /// Reads what the socket has into `got`; `Err` on an early end.
    fn receive(&mut self, got: &mut Vec<u8>, buf: &mut [u8]) -> Result<bool, String> {
        let mut progress = false;
        loop {
            let n = match self {
                Client::Plain(s) => s.read(buf),
                Client::Tls(c, s) => c.read_tls(s),
            };
            match n {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => {
                    progress = true;
                    match self {
                        Client::Plain(_) => got.extend_from_slice(&buf[..n]),
                        Client::Tls(c, _) => {
                            c.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
                            loop {
                                match c.reader().read(buf) {
                                    Ok(0) => return Err("close_notify came early".into()),
                                    Ok(n) => got.extend_from_slice(&buf[..n]),
                                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                    Err(e) => return Err(format!("TLS read: {e}")),
                                }
                            }
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(progress),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// Sends the cell's request (as fast as the server takes it) and reads
/// `want` bytes, reading only from `LATE` on for a late reader. An error
/// says how far it got when it stalled.
fn exchange(cell: &Cell, want: usize) -> Result<Vec<u8>, String> {
    let mut client = Client::open(cell.addr, cell.tls.as_ref())?;
    let start = Instant::now();
    let read_from = start
        + match cell.reader {
            Reader::AtOnce => Duration::ZERO,
            Reader::Late => LATE,
        };
    let request = &cell.request[..];
    let (mut sent, mut got) = (0, Vec::with_capacity(want));
    let mut buf = vec![0; 64 << 10];
    while got.len() < want {
        let now = Instant::now();
        if now > start + STALL {
            return Err(format!(
                "stalled: sent {sent} of {} bytes, received {} of {want}",
                request.len(),
                got.len()
            ));
        }
        let reading = now >= read_from;
        let mut progress = client.send(request, &mut sent)?;
        if reading {
            progress |= client.receive(&mut got, &mut buf)?;
        }
        if progress {
            continue;
        }
        let mut flags = PollFlags::empty();
        if reading {
            flags |= PollFlags::POLLIN;
        }
        if client.unsent(request, sent) {
            flags |= PollFlags::POLLOUT;
        }
        let wait = if reading {
            Duration::from_millis(200)
        } else {
            (read_from - now).min(Duration::from_millis(200))
        };
        let mut fds = [PollFd::new(client.socket().as_fd(), flags)];
        let timeout = PollTimeout::try_from(wait).unwrap();
        poll(&mut fds, timeout).map_err(|e| format!("poll: {e}"))?;
    }
    Ok(got)
}

/// `count` copies of `piece`.
fn repeat(piece: &[u8], count: usize) -> Arc<Vec<u8>> {
    Arc::new(piece.repeat(count))
}

/// `len` bytes of a pattern (letters, so that redis-cli prints them raw).
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i * 7 + i / 4099) % 26) as u8)
        .collect()
}

/// A server binary with `--poller poller`, its plain and TLS addresses.
struct Server {
    _bin: Bin,
    plain: SocketAddr,
    tls: SocketAddr,
}

fn server(bin: &str, poller: &str, pki: &Pki, args: &[&str]) -> Server {
    let mut all = vec!["--poller", poller];
    all.extend_from_slice(args);
    let (bin, tls) = spawn_tls(bin, pki, &all);
    let plain = bin.addr();
    Server {
        _bin: bin,
        plain,
        tls,
    }
}

impl Server {
    /// `(name, address, client config)` for each transport.
    fn transports(&self, pki: &Pki) -> [(&'static str, SocketAddr, Option<Arc<ClientConfig>>); 2] {
        [
            ("plain", self.plain, None),
            ("tls", self.tls, Some(pki.client.clone())),
        ]
    }
}

/// The echo-shaped cells (echo server, proxy in front of one): what is
/// sent comes back.
fn echo_cells(
    prefix: &str,
    transports: &[(&'static str, SocketAddr, Option<Arc<ClientConfig>>)],
) -> Vec<Cell> {
    let shapes: [(&str, Arc<Vec<u8>>); 3] = [
        ("small", Arc::new(pattern(100))),
        ("huge", Arc::new(pattern(HUGE))),
        ("pipelined", repeat(b"a pipelined line\n", PIPELINED)),
    ];
    let mut cells = Vec::new();
    for (t, addr, tls) in transports {
        for (shape, data) in &shapes {
            for reader in READERS {
                cells.push(Cell {
                    name: format!("{prefix} {t} {shape} {reader:?}"),
                    addr: *addr,
                    tls: tls.clone(),
                    request: data.clone(),
                    expect: Expect::Bytes(data.clone()),
                    reader,
                });
            }
        }
    }
    cells
}

fn echo(poller: &str) {
    let pki = Pki::new();
    let s = server(ECHO, poller, &pki, &[]);
    run_cells(echo_cells("echo", &s.transports(&pki)));
}

fn http(poller: &str) {
    let pki = Pki::new();
    let s = server(HTTP, poller, &pki, &[]);
    let get = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // The length of one response (they all have it: the Date is fixed-width).
    let one = {
        let mut c = connect(s.plain);
        c.write_all(get).unwrap();
        let mut r = Vec::new();
        let mut buf = [0; 4096];
        while !r.ends_with(evio_examples::http::BODY) {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "no response to GET /");
            r.extend_from_slice(&buf[..n]);
        }
        r.len()
    };
    let mut cells = Vec::new();
    for (t, addr, tls) in s.transports(&pki) {
        for (shape, count) in [("small", 1), ("huge", HTTP_HUGE), ("pipelined", PIPELINED)] {
            for reader in READERS {
                cells.push(Cell {
                    name: format!("http {t} {shape} {reader:?}"),
                    addr,
                    tls: tls.clone(),
                    request: repeat(get, count),
                    expect: Expect::Http { count, len: one },
                    reader,
                });
            }
        }
    }
    run_cells(cells);
    for (tls, reader) in [
        (false, Reader::AtOnce),
        (false, Reader::Late),
        (true, Reader::AtOnce),
        (true, Reader::Late),
    ] {
        curl_cell(&pki, &s, tls, reader, one);
    }
}

/// curl fetching `GET /` three times on one connection, its output read at
/// once or only after 2 s.
fn curl_cell(pki: &Pki, s: &Server, tls: bool, reader: Reader, _one: usize) {
    if !have("curl") {
        eprintln!("curl not found: its cells skipped");
        return;
    }
    let url = if tls {
        format!("https://localhost:{}/", s.tls.port())
    } else {
        format!("http://localhost:{}/", s.plain.port())
    };
    let port = if tls { s.tls.port() } else { s.plain.port() };
    let sink = match reader {
        Reader::AtOnce => "cat",
        Reader::Late => "sleep 2; cat",
    };
    let script = format!(
        "curl -sS --max-time 20 --cacert '{ca}' --resolve localhost:{port}:127.0.0.1 \
         '{url}' '{url}' '{url}' | ({sink})",
        ca = pki.ca.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let (status, out, err) = run_for(cmd, Duration::from_secs(30), b"");
    assert_eq!(status, Some(0), "curl tls={tls} {reader:?}: {err}");
    let body = String::from_utf8_lossy(evio_examples::http::BODY);
    assert_eq!(out, body.repeat(3), "curl tls={tls} {reader:?}: {err}");
}

/// A RESP bulk string reply.
fn bulk(value: &[u8]) -> Vec<u8> {
    let mut r = format!("${}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\n");
    r
}

/// `SET key value` as a RESP array.
fn set_command(key: &str, value: &[u8]) -> Vec<u8> {
    let mut c = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n", key.len()).into_bytes();
    c.extend_from_slice(&bulk(value));
    c
}

fn redis(poller: &str) {
    let pki = Pki::new();
    let s = server(REDIS, poller, &pki, &[]);
    let big = pattern(HUGE);
    let small = b"hello, world".to_vec();
    // Stored first, over the plain port.
    let setup = Cell {
        name: "redis setup".into(),
        addr: s.plain,
        tls: None,
        request: Arc::new([set_command("big", &big), set_command("small", &small)].concat()),
        expect: Expect::Bytes(Arc::new(b"+OK\r\n+OK\r\n".to_vec())),
        reader: Reader::AtOnce,
    };
    run_cells(vec![setup]);
    let shapes: [Shape; 3] = [
        ("small", repeat(b"GET small\r\n", 1), Arc::new(bulk(&small))),
        ("huge", repeat(b"GET big\r\n", 1), Arc::new(bulk(&big))),
        (
            "pipelined",
            repeat(b"GET small\r\n", PIPELINED),
            repeat(&bulk(&small), PIPELINED),
        ),
    ];
    let mut cells = Vec::new();
    for (t, addr, tls) in s.transports(&pki) {
        for (shape, request, reply) in &shapes {
            for reader in READERS {
                cells.push(Cell {
                    name: format!("redis {t} {shape} {reader:?}"),
                    addr,
                    tls: tls.clone(),
                    request: request.clone(),
                    expect: Expect::Bytes(reply.clone()),
                    reader,
                });
            }
        }
    }
    run_cells(cells);
    redis_cli_cells(&pki, s.plain, s.tls, big.len(), "redis");
}

/// One reply shape of the Redis cells: name, request bytes, expected reply.
type Shape = (&'static str, Arc<Vec<u8>>, Arc<Vec<u8>>);

/// redis-cli `GET big` (16 MiB), plain and `--tls`, its output read at once
/// or only after 2 s (`| (sleep 2; wc -c)`: redis-cli blocks on the full
/// pipe and stops reading the socket). Skipped without redis-cli.
fn redis_cli_cells(pki: &Pki, plain: SocketAddr, tls: SocketAddr, len: usize, what: &str) {
    if !have("redis-cli") {
        eprintln!("redis-cli not found: its cells skipped");
        return;
    }
    let mut threads = Vec::new();
    for (addr, tls_flags) in [
        (plain, String::new()),
        (tls, format!("--tls --cacert '{}'", pki.ca.display())),
    ] {
        for sink in ["wc -c", "sleep 2; wc -c"] {
            let script = format!(
                "redis-cli {tls_flags} -h 127.0.0.1 -p {} GET big | ({sink})",
                addr.port()
            );
            let what = format!("{what}: {script}");
            threads.push(std::thread::spawn(move || {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", &script]);
                let (status, out, err) = run_for(cmd, Duration::from_secs(60), b"");
                assert_eq!(status, Some(0), "{what}: {err}");
                // The value and redis-cli's newline.
                assert_eq!(out.trim(), (len + 1).to_string(), "{what}: {err}");
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
}

fn proxy(poller: &str) {
    let pki = Pki::new();
    let backend = server(ECHO, poller, &pki, &[]);
    let to_plain = server(
        PROXY,
        poller,
        &pki,
        &["--backend", &backend.plain.to_string()],
    );
    let backend_tls = format!("127.0.0.1:{}", backend.tls.port());
    let ca = pki.ca.display().to_string();
    let to_tls = server(
        PROXY,
        poller,
        &pki,
        &[
            "--backend",
            &backend_tls,
            "--backend-tls",
            "--backend-ca",
            &ca,
        ],
    );
    let client = Some(pki.client.clone());
    let transports = [
        ("plain>plain", to_plain.plain, None),
        ("tls>plain", to_plain.tls, client.clone()),
        ("plain>tls", to_tls.plain, None),
        ("tls>tls", to_tls.tls, client),
    ];
    run_cells(echo_cells("proxy", &transports));
    // redis-cli through the proxy, in front of the Redis example.
    let redis = server(REDIS, poller, &pki, &[]);
    let big = pattern(HUGE);
    run_cells(vec![Cell {
        name: "proxy redis setup".into(),
        addr: redis.plain,
        tls: None,
        request: Arc::new(set_command("big", &big)),
        expect: Expect::Bytes(Arc::new(b"+OK\r\n".to_vec())),
        reader: Reader::AtOnce,
    }]);
    let front = server(
        PROXY,
        poller,
        &pki,
        &["--backend", &redis.plain.to_string()],
    );
    redis_cli_cells(&pki, front.plain, front.tls, big.len(), "proxy");
}

macro_rules! on_both_pollers {
    ($($name:ident),*) => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll"); } )*
        }
        mod poll {
            $( #[test] fn $name() { super::$name("poll"); } )*
        }
    };
}

on_both_pollers!(echo, http, redis, proxy);
