//! The `http-proxy` binary end to end, with real peers only: upstreams
//! written here on std sockets (they count connections, record every
//! request head the proxy forwarded, stall, close, read slowly), nginx,
//! evio's own `http-server` behind TLS and a tungstenite echo server; and
//! clients on raw sockets, curl, wrk and tungstenite. A test whose tool is
//! not installed is skipped with a message. Everything is on loopback and
//! every socket has a timeout.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::tls::{spawn_tls, tls_connect, Pki};
use common::*;
use tungstenite::Message;

const PROXY: &str = env!("CARGO_BIN_EXE_http-proxy");
const HTTP_SERVER: &str = env!("CARGO_BIN_EXE_http-server");
const MIB: usize = 1 << 20;
/// How long a test waits for a close that a timer of a second or less
/// should cause.
const CLOSE_WITHIN: Duration = Duration::from_secs(4);
/// How long curl and wrk may run.
const TOOL_LIMIT: Duration = Duration::from_secs(20);
/// The seed of the pattern `/big/N` answers with.
const BIG_SEED: u64 = 7;

// ----- HTTP/1.1 on the wire, for both ends -------------------------------------------

type Fields = Vec<(String, String)>;

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what.into())
}

/// The first field called `name`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every field called `name`, joined as one list (`a, b`).
fn list(fields: &[(String, String)], name: &str) -> String {
    let values: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    values.join(", ")
}

/// One line without its CRLF; an error at EOF.
fn line(r: &mut impl BufRead) -> io::Result<String> {
    let mut l = String::new();
    if r.read_line(&mut l)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    Ok(l.trim_end_matches(['\r', '\n']).to_string())
}

/// A head: its first line and its fields (a line without a colon is kept
/// whole as a name, so whatever came is on record); `None` when the
/// connection ends before it.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<(String, Fields)>> {
    let first = match line(r) {
        Ok(l) => l,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut fields = Vec::new();
    loop {
        let l = line(r)?;
        if l.is_empty() {
            return Ok(Some((first, fields)));
        }
        let (n, v) = l.split_once(':').unwrap_or((l.as_str(), ""));
        fields.push((n.to_string(), v.trim().to_string()));
    }
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> io::Result<()>;

impl Framing {
    /// What `fields` say; `otherwise` when they say nothing.
    fn of(fields: &[(String, String)], otherwise: Framing) -> Framing {
        let te = list(fields, "transfer-encoding").to_ascii_lowercase();
        if te.trim_end().ends_with("chunked") {
            return Framing::Chunked;
        }
        match field(fields, "content-length").map(str::parse) {
            Some(Ok(n)) => Framing::Length(n),
            _ => otherwise,
        }
    }

    /// Reads the body, handing it to `sink` in pieces of at most 64 KiB.
    fn read(self, r: &mut impl BufRead, sink: Sink) -> io::Result<()> {
        let mut buf = vec![0; 64 << 10];
        match self {
            Framing::Empty => Ok(()),
            Framing::Length(n) => copy_n(r, n, &mut buf, sink),
            Framing::UntilClose => loop {
                match r.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => sink(&buf[..n])?,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
            Framing::Chunked => loop {
                let l = line(r)?;
                let size = l.split(';').next().unwrap_or("").trim();
                let n = u64::from_str_radix(size, 16)
                    .map_err(|_| bad(format!("chunk size line {l:?}")))?;
                if n == 0 {
                    // Trailer fields, up to the empty line.
                    while !line(r)?.is_empty() {}
                    return Ok(());
                }
                copy_n(r, n, &mut buf, sink)?;
                if !line(r)?.is_empty() {
                    return Err(bad("no CRLF after a chunk"));
                }
            },
        }
    }

    fn read_all(self, r: &mut impl BufRead) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.read(r, &mut |b| {
            v.extend_from_slice(b);
            Ok(())
        })?;
        Ok(v)
    }
}

fn copy_n(r: &mut impl BufRead, mut n: u64, buf: &mut [u8], sink: Sink) -> io::Result<()> {
    while n > 0 {
        let k = n.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..k])?;
        sink(&buf[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// `data` in the chunked coding, in chunks of `sizes` (cycled, none 0),
/// every third with an extension.
fn chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 64);
    let mut rest = data;
    for (i, &size) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let ext = if i % 3 == 2 { ";ext=\"x\"" } else { "" };
        out.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The first `n` bytes of `pat`.
fn pattern_bytes(pat: &Pattern, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let k = (n - v.len()).min(PERIOD);
        v.extend_from_slice(pat.at(v.len() as u64, k));
    }
    v
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

// ----- upstreams -----------------------------------------------------------------------

/// A request head as an upstream got it (the handler reads the body).
#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    version: String,
    fields: Fields,
}

impl Req {
    fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    fn list(&self, name: &str) -> String {
        list(&self.fields, name)
    }
}

/// What an upstream connection does after its handler answered.
enum Next {
    KeepAlive,
    Close,
}

/// One upstream connection.
struct Peer {
    r: BufReader<TcpStream>,
    w: TcpStream,
    port: u16,
}

impl Peer {
    fn body(&mut self, req: &Req) -> io::Result<Vec<u8>> {
        Framing::of(&req.fields, Framing::Empty).read_all(&mut self.r)
    }

    fn body_with(&mut self, req: &Req, sink: Sink) -> io::Result<()> {
        Framing::of(&req.fields, Framing::Empty).read(&mut self.r, sink)
    }

    /// A response head: the status, `X-Upstream: PORT` (who answered),
    /// then `fields` (CRLF-terminated lines).
    fn head(&mut self, status: u16, fields: &str) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {status} {}\r\nX-Upstream: {}\r\n{fields}\r\n",
            reason(status),
            self.port
        );
        self.w.write_all(head.as_bytes())
    }

    /// A whole response with a Content-Length (none, and no body, for a
    /// 1xx, 204 or 304; no body for a HEAD).
    fn reply(&mut self, req: &Req, status: u16, fields: &str, body: &[u8]) -> io::Result<()> {
        if matches!(status, 100..=199 | 204 | 304) {
            return self.head(status, fields);
        }
        self.head(
            status,
            &format!("{fields}Content-Length: {}\r\n", body.len()),
        )?;
        if req.method != "HEAD" {
            self.w.write_all(body)?;
        }
        Ok(())
    }
}

type Handler = dyn Fn(&Req, &mut Peer) -> io::Result<Next> + Send + Sync;

/// A threaded loopback upstream; every clone shares the counters.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    /// Connections accepted, and those that ended since.
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    /// Every request head, in arrival order, but the health probes.
    log: Arc<Mutex<Vec<Req>>>,
    /// `GET /health` requests, answered 200 while `healthy`, else 503.
    probes: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
}

impl Upstream {
    fn start(
        handler: impl Fn(&Req, &mut Peer) -> io::Result<Next> + Send + Sync + 'static,
    ) -> Self {
        Upstream::on(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
    }

    fn on(
        l: TcpListener,
        handler: impl Fn(&Req, &mut Peer) -> io::Result<Next> + Send + Sync + 'static,
    ) -> Self {
        let up = Upstream {
            addr: l.local_addr().unwrap(),
            accepted: Arc::default(),
            ended: Arc::default(),
            log: Arc::default(),
            probes: Arc::default(),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        let handler: Arc<Handler> = Arc::new(handler);
        let u = up.clone();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                u.accepted.fetch_add(1, SeqCst);
                let (u, handler) = (u.clone(), handler.clone());
                thread::spawn(move || {
                    let _ = u.serve(s, &*handler);
                    u.ended.fetch_add(1, SeqCst);
                });
            }
        });
        up
    }

    /// The upstream most tests use: [`answer`].
    fn echo() -> Self {
        Upstream::start(answer)
    }

    fn serve(&self, s: TcpStream, handler: &Handler) -> io::Result<()> {
        // Long enough for pooled connections to outlive the tests.
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        let port = self.addr.port();
        let mut p = Peer {
            r: BufReader::new(s.try_clone()?),
            w: s,
            port,
        };
        while let Some((first, fields)) = read_head(&mut p.r)? {
            let mut parts = first.splitn(3, ' ').map(str::to_string);
            let mut part = || parts.next().unwrap_or_default();
            let req = Req {
                method: part(),
                target: part(),
                version: part(),
                fields,
            };
            if req.method == "GET" && req.target == "/health" {
                self.probes.fetch_add(1, SeqCst);
                let status = if self.healthy.load(SeqCst) { 200 } else { 503 };
                p.reply(&req, status, "", b"health")?;
                continue;
            }
            self.log.lock().unwrap().push(req.clone());
            if req
                .field("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            {
                p.w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            let close = req
                .list("connection")
                .to_ascii_lowercase()
                .contains("close");
            match handler(&req, &mut p)? {
                Next::KeepAlive if !close => {}
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }
}

fn addrs(ups: &[Upstream]) -> Vec<SocketAddr> {
    ups.iter().map(|u| u.addr).collect()
}

/// The hop-by-hop fields `/hop` answers with (and one end-to-end field).
const HOP_REPLY: &str = "Connection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\n\
    Keep-Alive: timeout=1, max=1\r\nProxy-Connection: keep-alive\r\nX-End-To-End: yes\r\n";

/// Reads the body, then by the target:
/// - `/sleep/MS/...`: waits MS ms first;
/// - `/status/N`: answers N;
/// - `/chunked...`: answers chunked;
/// - `/big/N`: answers N bytes of `Pattern::new(BIG_SEED)`;
/// - `/hop`: answers with hop-by-hop fields ([`HOP_REPLY`]);
/// - `/early-hints`: sends a 103 first;
///
/// and answers the body, or `METHOD TARGET` when there is none.
fn answer(req: &Req, p: &mut Peer) -> io::Result<Next> {
    let body = p.body(req)?;
    let echo = if body.is_empty() {
        format!("{} {}", req.method, req.target).into_bytes()
    } else {
        body
    };
    let path = req.target.as_str();
    if let Some(rest) = path.strip_prefix("/sleep/") {
        let ms = rest.split('/').next().unwrap_or("").parse().unwrap_or(0);
        thread::sleep(Duration::from_millis(ms));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code = code.parse().map_err(|_| bad("status"))?;
        p.reply(req, code, "", b"status")?;
    } else if path.starts_with("/chunked") || path.ends_with("/chunked") {
        p.head(200, "Transfer-Encoding: chunked\r\n")?;
        if req.method != "HEAD" {
            p.w.write_all(&chunked(&echo, &[5, 1, 4096]))?;
        }
    } else if let Some(n) = path.strip_prefix("/big/") {
        let n: u64 = n.parse().map_err(|_| bad("size"))?;
        p.head(200, &format!("Content-Length: {n}\r\n"))?;
        Pattern::new(BIG_SEED).send(&mut p.w, n, &AtomicU64::new(0))?;
    } else if path == "/hop" {
        p.reply(req, 200, HOP_REPLY, b"hop")?;
    } else {
        if path == "/early-hints" {
            p.w.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")?;
        }
        p.reply(req, 200, "Content-Type: text/plain\r\n", &echo)?;
    }
    Ok(Next::KeepAlive)
}

/// Reads each request, body too, then closes without answering.
fn closer() -> Upstream {
    Upstream::start(|req, p| {
        p.body(req)?;
        Ok(Next::Close)
    })
}

/// A loopback address nothing listens on (connections are refused).
fn dead_addr() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

// ----- clients -------------------------------------------------------------------------

struct Resp {
    version: String,
    status: u16,
    fields: Fields,
    body: Vec<u8>,
}

impl Resp {
    fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The port of the upstream that answered (its `X-Upstream`).
    fn upstream(&self) -> u16 {
        self.field("x-upstream")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no X-Upstream in {self:?}"))
    }
}

impl fmt::Debug for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.body[..self.body.len().min(200)];
        write!(
            f,
            "{} {} {:?} body ({} bytes) {:?}",
            self.version,
            self.status,
            self.fields,
            self.body.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

/// Reads one response (a 1xx too); `head`: it answers a HEAD.
fn read_resp(r: &mut impl BufRead, head: bool) -> io::Result<Resp> {
    let (first, fields) = read_head(r)?.ok_or_else(|| bad("closed before a response"))?;
    let mut parts = first.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("status line {first:?}")))?;
    let framing = if head || matches!(status, 100..=199 | 204 | 304) {
        Framing::Empty
    } else {
        Framing::of(&fields, Framing::UntilClose)
    };
    let body = framing.read_all(r)?;
    Ok(Resp {
        version,
        status,
        fields,
        body,
    })
}

/// A raw HTTP/1.1 client connection.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client::over(connect(addr))
    }

    fn over(s: TcpStream) -> Client {
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, raw: impl AsRef<[u8]>) {
        self.w.write_all(raw.as_ref()).unwrap();
    }

    /// The next final response (1xx ones are passed over).
    fn resp(&mut self, head: bool) -> Resp {
        loop {
            let r =
                read_resp(&mut self.r, head).unwrap_or_else(|e| panic!("reading a response: {e}"));
            if !(100..200).contains(&r.status) {
                return r;
            }
        }
    }

    fn get(&mut self, target: &str) -> Resp {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n"));
        self.resp(false)
    }

    fn post(&mut self, target: &str, body: &[u8]) -> Resp {
        self.send(format!(
            "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        self.send(body);
        self.resp(false)
    }

    /// What comes until the proxy closes (a reset counts), and whether it
    /// closed before a read waited `limit`.
    fn until_closed(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        self.w.set_read_timeout(Some(limit)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0; 16 << 10];
        let closed = loop {
            match self.r.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        self.w.set_read_timeout(Some(TIMEOUT)).unwrap();
        (out, closed)
    }
}

/// One request on a new connection.
fn fetch(addr: SocketAddr, target: &str) -> Resp {
    Client::new(addr).get(target)
}

/// A connection to `to` from the loopback address `ip` (any of
/// 127.0.0.0/8), with [`connect`]'s timeouts.
fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> TcpStream {
    connect_with(to, Some(ip), None)
}

/// Tries `f` every 50 ms until it holds or `limit` passes; whether it held.
fn retry_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    eventually(limit, || {
        f() || {
            thread::sleep(Duration::from_millis(50));
            false
        }
    })
}

// ----- the proxy -----------------------------------------------------------------------

/// `--upstream A --upstream B ...`, then `args`.
fn proxy_flags(upstreams: &[SocketAddr], args: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for u in upstreams {
        v.push("--upstream".to_string());
        v.push(u.to_string());
    }
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The proxy on a free port in front of `upstreams`, with `args`.
/// An echo upstream, and the proxy in front of it started with `args`.
fn echo_proxy(args: &[&str]) -> (Upstream, Bin) {
    let up = Upstream::echo();
    let p = proxy(&[up.addr], args);
    (up, p)
}

fn proxy(upstreams: &[SocketAddr], args: &[&str]) -> Bin {
    let mut all = vec!["--port".to_string(), "0".to_string()];
    all.extend(proxy_flags(upstreams, args));
    spawn(PROXY, &strs(&all))
}

// ----- basics --------------------------------------------------------------------------

#[test]
fn startup_line_every_flag_and_sigterm_exit_0() {
    let up = Upstream::echo();
    let mut p = proxy(
        &[up.addr],
        &[
            "--loops",
            "2",
            "--balance",
            "least-conn",
            "--poller",
            "poll",
            "--connect-timeout",
            "2.5",
            "--upstream-header-timeout",
            "30",
            "--upstream-idle-timeout",
            "30.5",
            "--client-header-timeout",
            "20",
            "--idle-timeout",
            "40",
            "--keepalive-timeout",
            "0.75",
            "--max-fails",
            "5",
            "--fail-timeout",
            "3",
            "--log-level",
            "warn",
        ],
    );
    assert!(
        p.line.starts_with("http-proxy server started on port "),
        "{}",
        p.line
    );
    assert_eq!(fetch(p.addr(), "/hello").text(), "GET /hello");
    // Our own child, not reaped yet: the pid is still its.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    wait_for("the proxy to exit on SIGTERM", || {
        status = p.child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{status:?}");
}

#[test]
fn bad_flags_are_refused() {
    let up = "127.0.0.1:1";
    let usage: &[&[&str]] = &[
        &[],
        &["--port", "0"],
        &["--upstream", "nowhere"],
        &["--upstream", up, "--balance", "bogus"],
        &["--upstream", up, "--connect-timeout", "soon"],
        &["--upstream", up, "--upstream-header-timeout", "-1"],
        &["--upstream", up, "--max-fails", "x"],
        &["--upstream", up, "--hash-header"],
        &["--upstream", up, "--no-such-flag"],
    ];
    let mut wrong = Vec::new();
    for (args, want_2) in usage.iter().map(|a| (*a, true)).chain([(
        &[
            "--upstream",
            up,
            "--upstream-tls",
            "--upstream-ca",
            "/nonexistent/ca.pem",
        ][..],
        false,
    )]) {
        let mut cmd = Command::new(PROXY);
        cmd.args(args);
        let (status, _, err) = run_for(cmd, Duration::from_secs(5), b"");
        let ok = match status {
            Some(2) => true,
            Some(c) => c != 0 && !want_2,
            None => false,
        };
        if !ok || err.trim().is_empty() {
            wrong.push(format!("{args:?}: exit {status:?}, stderr {err:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn forwards_the_request_and_adds_forwarding_fields() {
    let (up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    c.send(
        "GET /fwd?a=1&b=%20 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: evio-test\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Custom: kept\r\nX-Custom: twice\r\nVia: 1.0 earlier\r\n\r\n",
    );
    let r = c.resp(false);
    assert_eq!(
        (r.status, r.text()),
        (200, "GET /fwd?a=1&b=%20".to_string())
    );
    assert_eq!(r.field("x-upstream"), Some(&*up.port().to_string()));
    assert_eq!(c.post("/second", b"body").text(), "body");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let a = &reqs[0];
    assert_eq!(
        (&*a.method, &*a.target, &*a.version),
        ("GET", "/fwd?a=1&b=%20", "HTTP/1.1")
    );
    assert_eq!(a.field("host"), Some("example.test:8080"), "{a:?}");
    assert_eq!(a.list("x-forwarded-for"), "203.0.113.7, 127.0.0.1", "{a:?}");
    assert_eq!(a.list("x-forwarded-proto"), "http", "{a:?}");
    let via = a.list("via");
    assert!(
        via.contains("1.0 earlier") && via.contains("1.1 evio"),
        "Via: {via:?}"
    );
    assert_eq!(a.list("x-custom"), "kept, twice", "{a:?}");
    assert_eq!(a.field("user-agent"), Some("evio-test"));
    let b = &reqs[1];
    assert_eq!(b.list("x-forwarded-for"), "127.0.0.1", "{b:?}");
    assert_eq!(b.field("host"), Some("test"));
    assert!(b.list("via").contains("1.1 evio"), "{b:?}");
}

#[test]
fn removes_hop_by_hop_fields_both_ways() {
    let (up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    c.send(
        "GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Drop-Me, Upgrade\r\n\
         X-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Checksum\r\n\
         Upgrade: h2c\r\nProxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Keep: yes\r\n\r\n",
    );
    let r = c.resp(false);
    assert_eq!((r.status, r.text()), (200, "hop".to_string()));
    assert_eq!(r.field("x-end-to-end"), Some("yes"), "{r:?}");
    let passed: Vec<&str> = ["x-resp-hop", "proxy-connection"]
        .into_iter()
        .filter(|n| r.field(n).is_some())
        .collect();
    assert!(passed.is_empty(), "reached the client: {passed:?} in {r:?}");
    assert!(
        !list(&r.fields, "keep-alive").contains("max=1"),
        "the upstream's Keep-Alive reached the client: {r:?}"
    );
    assert!(
        !list(&r.fields, "connection")
            .to_ascii_lowercase()
            .contains("x-resp-hop"),
        "{r:?}"
    );
    let req = &up.requests()[0];
    assert_eq!(req.field("x-keep"), Some("yes"), "{req:?}");
    let forwarded: Vec<&str> = [
        "x-drop-me",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
    ]
    .into_iter()
    .filter(|n| req.field(n).is_some())
    .collect();
    assert!(forwarded.is_empty(), "forwarded: {forwarded:?} in {req:?}");
    let conn = req.list("connection").to_ascii_lowercase();
    assert!(
        !conn.contains("x-drop-me") && !conn.contains("upgrade"),
        "{req:?}"
    );
    assert_eq!(c.get("/after").text(), "GET /after");
}

#[test]
fn keep_alive_to_clients_and_upstreams_on_both_pollers() {
    for poller in ["epoll", "poll"] {
        let (up, p) = echo_proxy(&["--poller", poller]);
        let (mut a, mut b) = (Client::new(p.addr()), Client::new(p.addr()));
        for i in 0..10 {
            let c = if i % 2 == 0 { &mut a } else { &mut b };
            assert_eq!(
                c.get(&format!("/k{i}")).text(),
                format!("GET /k{i}"),
                "{poller}"
            );
        }
        assert_eq!(
            up.accepted.load(SeqCst),
            1,
            "{poller}: sequential requests of two clients share one pooled upstream connection"
        );
        assert_open(&mut a.w);
        // `Connection: close` from the client: answered, then closed.
        a.send("GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_eq!(a.resp(false).text(), "GET /bye", "{poller}");
        let (rest, closed) = a.until_closed(CLOSE_WITHIN);
        assert!(
            closed && rest.is_empty(),
            "{poller}: {rest:?}, closed: {closed}"
        );
        assert_eq!(b.get("/still").text(), "GET /still", "{poller}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    c.send(concat!(
        "GET /sleep/300/first HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /second HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nthree",
        "GET /sleep/100/chunked HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /sixth HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    let got: Vec<(u16, String)> = [false, true, false, false, false, false]
        .into_iter()
        .map(|head| {
            let r = c.resp(head);
            (r.status, r.text())
        })
        .collect();
    let want = [
        (200, "GET /sleep/300/first"),
        (200, ""),
        (200, "three"),
        (200, "GET /sleep/100/chunked"),
        (204, ""),
        (200, "GET /sixth"),
    ]
    .map(|(s, t)| (s, t.to_string()));
    assert_eq!(got, want);
    assert_open(&mut c.w);
}

#[test]
fn bodies_with_content_length_and_chunked_both_ways() {
    let (_up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    let data = pattern_bytes(&Pattern::new(11), 300_000);
    let same = |r: &Resp, what: &str| {
        assert!(r.status == 200 && r.body == data, "{what}: {r:?}");
    };
    same(&c.post("/echo", &data), "Content-Length up and down");
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunked(&data, &[1, 1000, 65_536, 7]));
    same(&c.resp(false), "chunked up, Content-Length down");
    c.send("POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunked(&data, &[4096]));
    same(&c.resp(false), "chunked both ways");
    // Trailer fields end the body; the next request follows.
    c.send(
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(c.resp(false).text(), "hello");
    assert_eq!(c.post("/empty", b"").text(), "POST /empty");
    assert_eq!(c.get("/last").text(), "GET /last");
}

#[test]
fn head_1xx_204_and_304_have_no_body() {
    let (_up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    c.send("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.resp(true);
    assert_eq!(
        (r.status, r.field("content-length")),
        (200, Some("7")),
        "{r:?}"
    );
    // A HEAD whose answer says chunked: no chunks follow.
    c.send("HEAD /chunked HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.resp(true).status, 200);
    assert_eq!(c.get("/status/204").status, 204);
    assert_eq!(c.get("/status/304").status, 304);
    // A 103 before the answer: passed on or dropped, the answer follows.
    let r = c.get("/early-hints");
    assert_eq!((r.status, r.text()), (200, "GET /early-hints".to_string()));
    // Nothing was left over on either connection.
    assert_eq!(c.get("/after").text(), "GET /after");
    assert_open(&mut c.w);
}

#[test]
fn http10_clients() {
    let (_up, p) = echo_proxy(&[]);
    // No keep-alive asked: the answer, then the close.
    let mut c = Client::new(p.addr());
    c.send("GET /a HTTP/1.0\r\nHost: a\r\n\r\n");
    let r = c.resp(false);
    assert_eq!((r.status, r.text()), (200, "GET /a".to_string()), "{r:?}");
    assert!(r.version.starts_with("HTTP/1."), "{r:?}");
    let (rest, closed) = c.until_closed(CLOSE_WITHIN);
    assert!(
        closed && rest.is_empty(),
        "HTTP/1.0 without keep-alive: {rest:?}, closed: {closed}"
    );
    // The upstream answers chunked: a 1.0 client never sees the coding.
    let mut c = Client::new(p.addr());
    c.send("POST /chunked HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.resp(false);
    assert!(
        r.field("transfer-encoding").is_none(),
        "chunked to HTTP/1.0: {r:?}"
    );
    assert_eq!(r.text(), "hello");
    // Keep-alive asked: kept only if the answer says so.
    let mut c = Client::new(p.addr());
    c.send("GET /b HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
    let r = c.resp(false);
    assert_eq!(r.text(), "GET /b");
    let kept = r
        .field("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"));
    if kept {
        assert!(r.field("content-length").is_some(), "{r:?}");
        c.send("GET /c HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(c.resp(false).text(), "GET /c");
    } else {
        let (rest, closed) = c.until_closed(CLOSE_WITHIN);
        assert!(closed && rest.is_empty(), "not kept alive yet open: {r:?}");
    }
    eprintln!("HTTP/1.0 keep-alive honoured: {kept}");
}

#[test]
fn curl_keep_alive_and_expect_100_continue() {
    if skip_without("curl") {
        return;
    }
    let (_up, p) = echo_proxy(&[]);
    let dir = TempDir::new("http-proxy-curl");
    let file = dir.path().join("body.bin");
    std::fs::write(&file, vec![b'x'; 100_000]).unwrap();
    let url = format!("http://127.0.0.1:{}/", p.port);
    let fmt = "%{http_code} %{num_connects} %{size_upload} %{size_download}\n";
    let mut cmd = Command::new("curl");
    for (i, extra) in [
        &[][..],
        &["-H", "Expect: 100-continue", "--expect100-timeout", "10"],
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args([
            "-sS",
            "-v",
            "--max-time",
            "15",
            "-o",
            "/dev/null",
            "-w",
            fmt,
        ])
        .args(extra);
        if i > 0 {
            cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        }
        cmd.arg(format!("{url}c{i}"));
    }
    let (status, out, err) = run_for(cmd, TOOL_LIMIT, b"");
    assert_eq!(status, Some(0), "{err}");
    // One connection; the upload echoed whole.
    assert_eq!(out, "200 1 0 7\n200 0 100000 100000\n", "{err}");
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
}

#[test]
fn websocket_upgrade_becomes_a_byte_tunnel() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let ws_addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Fields>>> = Arc::default();
    let heads = seen.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let heads = heads.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                let record = |req: &tungstenite::handshake::server::Request, resp| {
                    let fields = req
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    heads.lock().unwrap().push(fields);
                    Ok(resp)
                };
                let Ok(mut ws) = tungstenite::accept_hdr(s, record) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let p = proxy(&[ws_addr], &[]);
    let (mut ws, resp) = tungstenite::client::client(
        format!("ws://127.0.0.1:{}/chat", p.port).as_str(),
        connect(p.addr()),
    )
    .unwrap_or_else(|e| panic!("the WebSocket handshake through the proxy: {e}"));
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    let big = pattern_bytes(&Pattern::new(12), 2 * MIB);
    ws.send(Message::binary(big.clone())).unwrap();
    let echoed = ws.read().unwrap().into_data();
    assert!(
        echoed[..] == big[..],
        "2 MiB came back as {} bytes",
        echoed.len()
    );
    for i in 0..50 {
        ws.send(Message::text(format!("m{i}"))).unwrap();
    }
    for i in 0..50 {
        assert_eq!(ws.read().unwrap(), Message::text(format!("m{i}")));
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing the WebSocket: {e}"),
        }
    }
    let heads = seen.lock().unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        field(&heads[0], "upgrade"),
        Some("websocket"),
        "{:?}",
        heads[0]
    );
    assert_eq!(
        field(&heads[0], "x-forwarded-for"),
        Some("127.0.0.1"),
        "{:?}",
        heads[0]
    );
}

/// After an answer that came before the request's whole body: the proxy
/// keeps the connection (the next request, for `next`, is answered) or it
/// said `Connection: close` and closes.
fn keeps_or_says_close(c: &mut Client, r: &Resp, next: &str, what: &str) {
    if list(&r.fields, "connection").eq_ignore_ascii_case("close") {
        let (_, closed) = c.until_closed(CLOSE_WITHIN);
        assert!(
            closed,
            "{what}: {r:?} said close, yet the connection stayed open"
        );
        return;
    }
    let request = format!("GET {next} HTTP/1.1\r\nHost: test\r\n\r\n");
    match c
        .w
        .write_all(request.as_bytes())
        .and_then(|()| read_resp(&mut c.r, false))
    {
        Ok(n) => assert_eq!(n.status, 200, "{what}: the next request got {n:?}"),
        Err(e) => panic!(
            "{what}: the answer {r:?} did not say Connection: close, \
             yet the next request on the connection failed: {e}"
        ),
    }
}

#[test]
fn an_answer_before_the_whole_body_keeps_the_connection_or_says_close() {
    // Answers as soon as it has the head (as nginx does for `return`, or
    // a server refusing an upload), then reads the body and drops it.
    let up = Upstream::start(|req, p| {
        if req.target != "/early" {
            return answer(req, p);
        }
        p.reply(req, 200, "", b"early")?;
        p.body(req)?;
        Ok(Next::KeepAlive)
    });
    let p = proxy(&[up.addr], &[]);
    let body = vec![b'z'; 4 * MIB];
    for (what, fields, framed) in [
        (
            "Content-Length",
            format!("Content-Length: {}\r\n", body.len()),
            body.clone(),
        ),
        (
            "chunked",
            "Transfer-Encoding: chunked\r\n".to_string(),
            chunked(&body, &[65_536]),
        ),
    ] {
        let mut c = Client::new(p.addr());
        let mut w = c.w.try_clone().unwrap();
        let head = format!("POST /early HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        let writer = thread::spawn(move || {
            w.write_all(head.as_bytes())?;
            w.write_all(&framed)
        });
        let r = read_resp(&mut c.r, false)
            .unwrap_or_else(|e| panic!("{what}: the early answer was lost: {e}"));
        assert_eq!((r.status, r.text()), (200, "early".to_string()), "{what}");
        let sent = writer.join().unwrap();
        if sent.is_err() {
            eprintln!("{what}: the proxy stopped reading the body: {sent:?}");
        }
        keeps_or_says_close(
            &mut c,
            &r,
            "/next",
            &format!("a {what} POST answered early"),
        );
    }
}

// ----- request smuggling ---------------------------------------------------------------

#[test]
fn ambiguous_framing_is_400_then_closed_and_never_forwarded() {
    const POST: &str = "POST /case HTTP/1.1\r\nHost: a\r\n";
    const CHUNKED: &str = "Transfer-Encoding: chunked\r\n";
    // (what, the fields after POST's, the body, whether the head may
    // reach the upstream: a bad chunk size shows only in the body)
    let cases: &[(&str, &str, &str, bool)] = &[
        (
            "Content-Length and Transfer-Encoding",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
            false,
        ),
        (
            "Transfer-Encoding and Content-Length",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "0\r\n\r\n",
            false,
        ),
        (
            "two Content-Lengths",
            "Content-Length: 5\r\nContent-Length: 40\r\n",
            "hello",
            false,
        ),
        (
            "a Content-Length list",
            "Content-Length: 5, 40\r\n",
            "hello",
            false,
        ),
        (
            "Content-Length abc",
            "Content-Length: abc\r\n",
            "hello",
            false,
        ),
        (
            "Content-Length -5",
            "Content-Length: -5\r\n",
            "hello",
            false,
        ),
        (
            "Content-Length +5",
            "Content-Length: +5\r\n",
            "hello",
            false,
        ),
        (
            "Content-Length 0x5",
            "Content-Length: 0x5\r\n",
            "hello",
            false,
        ),
        (
            "Transfer-Encoding gzip",
            "Transfer-Encoding: gzip\r\n",
            "hello",
            false,
        ),
        (
            "Transfer-Encoding chunked, gzip",
            "Transfer-Encoding: chunked, gzip\r\n",
            "0\r\n\r\n",
            false,
        ),
        (
            "Transfer-Encoding identity",
            "Transfer-Encoding: identity\r\n",
            "hello",
            false,
        ),
        (
            "Transfer-Encoding xchunked",
            "Transfer-Encoding: xchunked\r\n",
            "0\r\n\r\n",
            false,
        ),
        (
            "Transfer-Encoding chunked, then gzip",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "0\r\n\r\n",
            false,
        ),
        (
            "obs-fold with a space",
            "X-Folded: one\r\n two\r\n",
            "",
            false,
        ),
        (
            "obs-fold with a tab",
            "X-Folded: one\r\n\ttwo\r\n",
            "",
            false,
        ),
        (
            "Transfer-Encoding folded",
            "Transfer-Encoding:\r\n chunked\r\n",
            "0\r\n\r\n",
            false,
        ),
        ("chunk size zz", CHUNKED, "zz\r\nhello\r\n0\r\n\r\n", true),
        ("chunk size -1", CHUNKED, "-1\r\nhello\r\n0\r\n\r\n", true),
        (
            "chunk size past 64 bits",
            CHUNKED,
            "10000000000000005\r\nhello\r\n0\r\n\r\n",
            true,
        ),
        (
            "chunk size with a space inside",
            CHUNKED,
            "5 5\r\nhello\r\n0\r\n\r\n",
            true,
        ),
    ];
    let (up, p) = echo_proxy(&[]);
    let addr = p.addr();
    let runs: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, &(_, fields, body, _))| {
            let req = format!(
                "{}{fields}\r\n{body}GET /smuggled{i} HTTP/1.1\r\nHost: a\r\n\r\n",
                POST.replace("/case", &format!("/case{i}"))
            );
            thread::spawn(move || {
                let mut c = Client::new(addr);
                c.send(req);
                c.until_closed(CLOSE_WITHIN)
            })
        })
        .collect();
    let results: Vec<(Vec<u8>, bool)> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    thread::sleep(Duration::from_millis(100));
    let targets = up.targets();
    let mut wrong = Vec::new();
    for (i, ((what, _, _, head_may_pass), (got, closed))) in cases.iter().zip(results).enumerate() {
        let got = String::from_utf8_lossy(&got);
        let answers = got
            .split("\r\n")
            .filter(|l| l.starts_with("HTTP/1."))
            .count();
        let is_400 = got.starts_with("HTTP/1.1 400 ") || got.starts_with("HTTP/1.0 400 ");
        let reached: Vec<&String> = targets
            .iter()
            .filter(|t| {
                **t == format!("/smuggled{i}") || (!head_may_pass && **t == format!("/case{i}"))
            })
            .collect();
        if !is_400 || answers != 1 || !closed || !reached.is_empty() {
            wrong.push(format!(
                "{what}: got {got:?} (closed: {closed}); the upstream got {reached:?}"
            ));
        }
    }
    assert_eq!(fetch(addr, "/fine").text(), "GET /fine");
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

// ----- failures and timeouts -----------------------------------------------------------

#[test]
fn a_refusing_upstream_is_retried_on_another() {
    let up = Upstream::echo();
    let p = proxy(
        &[dead_addr(), up.addr],
        &["--balance", "round-robin", "--max-fails", "1000"],
    );
    for i in 0..6 {
        let r = fetch(p.addr(), &format!("/r{i}"));
        assert_eq!((r.status, r.text()), (200, format!("GET /r{i}")), "{r:?}");
    }
    let mut c = Client::new(p.addr());
    for i in 0..4 {
        let r = c.post(&format!("/p{i}"), b"payload");
        assert_eq!((r.status, r.text()), (200, "payload".to_string()), "{r:?}");
    }
    assert_eq!(up.requests().len(), 10);
}

#[test]
fn no_working_upstream_is_502() {
    let p = proxy(&[dead_addr(), dead_addr()], &["--max-fails", "1000"]);
    for _ in 0..3 {
        let r = fetch(p.addr(), "/");
        assert_eq!(r.status, 502, "{r:?}");
    }
}

#[test]
fn a_post_to_an_upstream_that_closes_is_502_and_not_retried() {
    let (a, b) = (closer(), closer());
    let p = proxy(&[a.addr, b.addr], &["--max-fails", "1000"]);
    let r = Client::new(p.addr()).post("/once", b"hello");
    assert_eq!(r.status, 502, "{r:?}");
    let sent = a.requests().len() + b.requests().len();
    assert_eq!(sent, 1, "the POST was sent {sent} times");
    // A GET is idempotent: retried on the other upstream.
    let (bad, good) = (closer(), Upstream::echo());
    let p = proxy(
        &[bad.addr, good.addr],
        &["--balance", "round-robin", "--max-fails", "1000"],
    );
    for i in 0..4 {
        let r = fetch(p.addr(), &format!("/g{i}"));
        assert_eq!((r.status, r.text()), (200, format!("GET /g{i}")), "{r:?}");
    }
    assert!(
        !bad.requests().is_empty(),
        "the closing upstream never got a GET"
    );
}

#[test]
fn upstream_header_timeout_is_504() {
    let (_up, p) = echo_proxy(&["--upstream-header-timeout", "0.5"]);
    let r = fetch(p.addr(), "/sleep/3000/late");
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(fetch(p.addr(), "/quick").text(), "GET /quick");
}

#[test]
fn an_upstream_silent_mid_response_closes_the_client() {
    let up = Upstream::start(|_, p| {
        p.head(200, "Content-Length: 1000\r\n")?;
        p.w.write_all(&[b'a'; 100])?;
        thread::sleep(Duration::from_secs(8));
        Ok(Next::Close)
    });
    let p = proxy(&[up.addr], &["--upstream-idle-timeout", "0.5"]);
    let mut c = Client::new(p.addr());
    c.send("GET /stalls HTTP/1.1\r\nHost: a\r\n\r\n");
    let (got, closed) = c.until_closed(CLOSE_WITHIN);
    let got = String::from_utf8_lossy(&got);
    assert!(closed, "not closed within {CLOSE_WITHIN:?}: {got:?}");
    assert!(got.starts_with("HTTP/1.1 200 "), "{got:?}");
    assert!(
        got.ends_with(&"a".repeat(100)),
        "the 100 bytes sent: {got:?}"
    );
}

#[test]
fn client_header_timeout_closes_slow_heads() {
    let (up, p) = echo_proxy(&["--client-header-timeout", "0.5"]);
    // Half a head, then nothing.
    let mut c = Client::new(p.addr());
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n");
    let (got, closed) = c.until_closed(CLOSE_WITHIN);
    let got = String::from_utf8_lossy(&got);
    assert!(closed, "a half head open after {CLOSE_WITHIN:?}");
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408 "),
        "{got:?}"
    );
    // A head dripping a byte every 50 ms: still bound by the limit.
    let mut c = Client::new(p.addr());
    for b in b"GET /drip HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789".iter() {
        if c.w.write_all(&[*b]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let (got, closed) = c.until_closed(Duration::from_secs(2));
    assert!(
        closed,
        "a dripping head open after 2 s: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(up.requests().is_empty(), "{:?}", up.targets());
}

#[test]
fn client_idle_timeout_closes_idle_keep_alive_connections() {
    let (_up, p) = echo_proxy(&["--idle-timeout", "0.5"]);
    let mut c = Client::new(p.addr());
    assert_eq!(c.get("/once").status, 200);
    let (rest, closed) = c.until_closed(CLOSE_WITHIN);
    assert!(closed && rest.is_empty(), "{rest:?}, closed: {closed}");
}

#[test]
fn connect_timeout_gives_up_on_an_upstream_that_never_answers() {
    // A backlog of 0 and one queued connection: the kernel drops the
    // proxy's SYNs.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
    let _queued = connect(l.local_addr().unwrap());
    let p = proxy(
        &[l.local_addr().unwrap()],
        &["--connect-timeout", "0.5", "--max-fails", "1000"],
    );
    let mut c = Client::new(p.addr());
    c.w.set_read_timeout(Some(CLOSE_WITHIN)).unwrap();
    let r = c.get("/");
    assert!(matches!(r.status, 502 | 504), "{r:?}");
}

#[test]
fn keepalive_timeout_closes_idle_pooled_upstream_connections() {
    let (up, p) = echo_proxy(&["--keepalive-timeout", "0.5"]);
    let mut c = Client::new(p.addr());
    assert_eq!(c.get("/one").status, 200);
    wait_for("the pooled upstream connection to be closed", || {
        up.ended.load(SeqCst) == 1
    });
    assert_eq!(c.get("/two").text(), "GET /two");
    assert_eq!(up.accepted.load(SeqCst), 2);
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_not_an_error() {
    // One request per connection, keep-alive as far as the proxy can tell.
    let up = Upstream::start(|req, p| {
        answer(req, p)?;
        Ok(Next::Close)
    });
    let p = proxy(&[up.addr], &["--max-fails", "1000"]);
    let mut c = Client::new(p.addr());
    assert_eq!(c.get("/first").text(), "GET /first");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(c.get("/after-a-pause").text(), "GET /after-a-pause");
    thread::sleep(Duration::from_millis(200));
    let r = c.post("/post-after-a-pause", b"body");
    assert_eq!((r.status, r.text()), (200, "body".to_string()), "{r:?}");
    // At once: the upstream's close may still be on its way.
    for i in 0..20 {
        let r = c.get(&format!("/quick{i}"));
        assert_eq!(
            (r.status, r.text()),
            (200, format!("GET /quick{i}")),
            "{r:?}"
        );
    }
    assert!(up.accepted.load(SeqCst) >= 23);
}

// ----- health --------------------------------------------------------------------------

#[test]
fn max_fails_mark_down_then_503_and_back_after_fail_timeout() {
    let addr = dead_addr();
    let p = proxy(&[addr], &["--max-fails", "2", "--fail-timeout", "1"]);
    let statuses: Vec<u16> = (0..4).map(|_| fetch(p.addr(), "/").status).collect();
    assert_eq!(statuses[0], 502, "{statuses:?}");
    let down = statuses
        .iter()
        .position(|&s| s == 503)
        .unwrap_or_else(|| panic!("never 503 after 2 failures: {statuses:?}"));
    assert!(
        down <= 2 && statuses[down..].iter().all(|&s| s == 503),
        "{statuses:?}"
    );
    // The upstream comes up on that port: tried again after --fail-timeout.
    let _up = Upstream::on(TcpListener::bind(addr).unwrap(), answer);
    assert!(
        retry_until(Duration::from_secs(5), || fetch(p.addr(), "/back").status
            == 200),
        "the upstream never came back"
    );
}

#[test]
fn health_checks_mark_upstreams_down_and_up() {
    let (a, b) = (Upstream::echo(), Upstream::echo());
    let p = proxy(
        &[a.addr, b.addr],
        &[
            "--balance",
            "round-robin",
            "--health-check",
            "/health",
            "--health-interval",
            "0.2",
        ],
    );
    let served_by =
        |n: usize| -> Vec<u16> { (0..n).map(|_| fetch(p.addr(), "/who").upstream()).collect() };
    let by = served_by(4);
    assert!(by.contains(&a.port()) && by.contains(&b.port()), "{by:?}");
    a.healthy.store(false, SeqCst);
    assert!(
        retry_until(Duration::from_secs(5), || served_by(4)
            .iter()
            .all(|&u| u == b.port())),
        "requests still reach the failing upstream"
    );
    assert!(a.probes.load(SeqCst) > 0 && b.probes.load(SeqCst) > 0);
    a.healthy.store(true, SeqCst);
    assert!(
        retry_until(Duration::from_secs(5), || served_by(2).contains(&a.port())),
        "the upstream never came back"
    );
    a.healthy.store(false, SeqCst);
    b.healthy.store(false, SeqCst);
    assert!(
        retry_until(Duration::from_secs(5), || fetch(p.addr(), "/who").status
            == 503),
        "all upstreams down, yet no 503"
    );
    b.healthy.store(true, SeqCst);
    assert!(retry_until(Duration::from_secs(5), || fetch(
        p.addr(),
        "/who"
    )
    .status
        == 200));
}

// ----- load balancing ------------------------------------------------------------------

#[test]
fn round_robin_spreads_requests_evenly() {
    let ups = [Upstream::echo(), Upstream::echo(), Upstream::echo()];
    let p = proxy(&addrs(&ups), &["--balance", "round-robin"]);
    let mut c = Client::new(p.addr());
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for i in 0..30 {
        *counts
            .entry(c.get(&format!("/rr{i}")).upstream())
            .or_default() += 1;
    }
    for u in &ups {
        assert_eq!(counts.get(&u.port()), Some(&10), "{counts:?}");
    }
}

#[test]
fn least_conn_avoids_the_busy_upstream() {
    let (a, b) = (Upstream::echo(), Upstream::echo());
    let p = proxy(&[a.addr, b.addr], &["--balance", "least-conn"]);
    let addr = p.addr();
    let slow = thread::spawn(move || fetch(addr, "/sleep/1500/slow"));
    let busy = |u: &Upstream| u.targets().iter().any(|t| t.ends_with("/slow"));
    wait_for("the slow request to reach an upstream", || {
        busy(&a) || busy(&b)
    });
    let busy = if busy(&a) { a.port() } else { b.port() };
    let mut c = Client::new(addr);
    let by: Vec<u16> = (0..4)
        .map(|i| c.get(&format!("/q{i}")).upstream())
        .collect();
    assert!(by.iter().all(|&u| u != busy), "{by:?} (busy: {busy})");
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn hash_on_the_client_address_sticks_and_a_down_upstream_moves_only_its_share() {
    let ups = [Upstream::echo(), Upstream::echo(), Upstream::echo()];
    let p = proxy(
        &addrs(&ups),
        &[
            "--balance",
            "hash",
            "--health-check",
            "/health",
            "--health-interval",
            "0.2",
        ],
    );
    let ips: Vec<Ipv4Addr> = (10..40).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    let via = |ip: Ipv4Addr| {
        Client::over(connect_from(ip, p.addr()))
            .get("/h")
            .upstream()
    };
    let before: Vec<u16> = ips
        .iter()
        .map(|&ip| {
            let first = via(ip);
            assert_eq!(via(ip), first, "{ip} moved between two connections");
            first
        })
        .collect();
    let share = |u: u16| before.iter().filter(|&&b| b == u).count();
    let used: Vec<u16> = ups
        .iter()
        .map(Upstream::port)
        .filter(|&u| share(u) > 0)
        .collect();
    assert!(used.len() >= 2, "30 addresses all on {used:?}");
    let victim = *used.iter().max_by_key(|&&u| share(u)).unwrap();
    ups.iter()
        .find(|u| u.port() == victim)
        .unwrap()
        .healthy
        .store(false, SeqCst);
    let on_victim = ips[before.iter().position(|&b| b == victim).unwrap()];
    assert!(
        retry_until(Duration::from_secs(5), || via(on_victim) != victim),
        "the down upstream still gets its clients"
    );
    let mut moved = Vec::new();
    for (&ip, &was) in ips.iter().zip(&before) {
        let now = via(ip);
        if now == victim || (was != victim && now != was) {
            moved.push(format!("{ip}: {was} -> {now}"));
        }
    }
    assert!(
        moved.is_empty(),
        "only the down upstream's {} clients should move (victim {victim}): {moved:?}",
        share(victim)
    );
}

#[test]
fn hash_on_a_header_sticks() {
    let ups = [Upstream::echo(), Upstream::echo(), Upstream::echo()];
    let p = proxy(
        &addrs(&ups),
        &["--balance", "hash", "--hash-header", "X-User"],
    );
    let mut used = Vec::new();
    for u in 0..20 {
        let by: Vec<u16> = (0..3)
            .map(|_| {
                let mut c = Client::new(p.addr());
                c.send(format!(
                    "GET /u HTTP/1.1\r\nHost: a\r\nX-User: user-{u}\r\n\r\n"
                ));
                c.resp(false).upstream()
            })
            .collect();
        assert!(by.iter().all(|&x| x == by[0]), "user-{u}: {by:?}");
        used.push(by[0]);
    }
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 2, "20 users all on {used:?}");
}

// ----- access log, TLS -----------------------------------------------------------------

#[test]
fn access_log_has_a_line_per_request() {
    let up = Upstream::echo();
    let dir = TempDir::new("http-proxy-log");
    let log = dir.path().join("access.log");
    // The shell sends stdout to the file, then is the proxy (same pid).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" >\"$ACCESS_LOG\"")
        .arg(PROXY)
        .env("ACCESS_LOG", &log)
        .args(["--port", "0", "--access-log"])
        .args(proxy_flags(&[up.addr], &[]));
    let p = spawn_bin(cmd);
    let mut c = Client::new(p.addr());
    assert_eq!(c.get("/logged?q=1").status, 200);
    assert_eq!(c.post("/posted", b"x").status, 200);
    assert_eq!(c.get("/status/404").status, 404);
    let lines = || -> Vec<String> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().map(String::from).collect()
    };
    assert!(
        retry_until(Duration::from_secs(5), || lines().len() >= 3),
        "access log: {:?}",
        lines()
    );
    let lines = lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let upstream = up.addr.to_string();
    let want = [
        ("GET", "/logged?q=1", "200"),
        ("POST", "/posted", "200"),
        ("GET", "/status/404", "404"),
    ];
    for (line, (method, target, status)) in lines.iter().zip(want) {
        for part in [method, target, status, &upstream] {
            assert!(line.contains(part), "{part:?} missing in {line:?}");
        }
        assert!(
            line.matches("127.0.0.1").count() >= 2,
            "no client address: {line:?}"
        );
    }
}

#[test]
fn tls_clients_get_x_forwarded_proto_https() {
    let up = Upstream::echo();
    let pki = Pki::new();
    let flags = proxy_flags(&[up.addr], &[]);
    let (p, tls) = spawn_tls(PROXY, &pki, &strs(&flags));
    assert!(
        p.line.starts_with("http-proxy server started on port ")
            && p.line.contains(" and TLS port "),
        "{}",
        p.line
    );
    let mut r = BufReader::new(tls_connect(tls, &pki.client));
    for i in 0..2 {
        let w = r.get_mut();
        w.write_all(format!("GET /tls{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        w.flush().unwrap();
        let resp = read_resp(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text()), (200, format!("GET /tls{i}")));
    }
    assert_eq!(fetch(p.addr(), "/plain").status, 200);
    let protos: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.list("x-forwarded-proto"))
        .collect();
    assert_eq!(protos, ["https", "https", "http"]);
}

#[test]
fn upstream_tls_is_verified_against_the_ca_and_the_sni() {
    let pki = Pki::new();
    let (_https, https) = spawn_tls(HTTP_SERVER, &pki, &[]);
    let ca = pki.ca.display().to_string();
    let cases: [(&[&str], u16); 3] = [
        (&["--upstream-ca", &ca, "--upstream-sni", "localhost"], 200),
        // The system's roots do not know the test CA.
        (&["--upstream-sni", "localhost"], 502),
        (
            &["--upstream-ca", &ca, "--upstream-sni", "wrong.example"],
            502,
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["--upstream-tls", "--max-fails", "1000"];
        args.extend(flags);
        let p = proxy(&[https], &args);
        // Two requests: on one connection (the second on the pooled TLS
        // connection), or each on its own after a 502 (which closes).
        let mut c = Client::new(p.addr());
        for _ in 0..2 {
            let r = if want == 200 {
                c.get("/")
            } else {
                fetch(p.addr(), "/")
            };
            assert_eq!(r.status, want, "{flags:?}: {r:?}");
            if want == 200 {
                assert_eq!(r.text(), "Hello World!\r\n");
            }
        }
    }
}

// ----- nginx, wrk ----------------------------------------------------------------------

/// nginx, when installed, on a free loopback port: `/headers` answers the
/// forwarding fields it got, anything else is a file under `www`.
struct Nginx {
    _process: Process,
    addr: SocketAddr,
    dir: TempDir,
}

const NGINX_CONF: &str = r#"
daemon off;
master_process off;
worker_processes 1;
error_log DIR/error.log warn;
pid DIR/nginx.pid;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path DIR/client_body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:PORT;
        root DIR/www;
        location = /headers {
            default_type text/plain;
            return 200 "host=$http_host xff=$http_x_forwarded_for proto=$http_x_forwarded_proto via=$http_via\n";
        }
    }
}
"#;

fn nginx() -> Option<Nginx> {
    if skip_without("nginx") {
        return None;
    }
    let dir = TempDir::new("http-proxy-nginx");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    let text = NGINX_CONF
        .replace("DIR", dir.path().to_str().unwrap())
        .replace("PORT", &port.to_string());
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-c").arg(&conf).arg("-p").arg(dir.path());
    cmd.arg("-e").arg(dir.path().join("error.log"));
    let process = Process::start(cmd);
    wait_port(port);
    Some(Nginx {
        _process: process,
        addr: ([127, 0, 0, 1], port).into(),
        dir,
    })
}

#[test]
fn nginx_upstream() {
    let Some(ng) = nginx() else { return };
    let data = pattern_bytes(&Pattern::new(13), 3 * MIB);
    std::fs::write(ng.dir.path().join("www/file.bin"), &data).unwrap();
    let p = proxy(&[ng.addr], &[]);
    let mut c = Client::new(p.addr());
    c.send("GET /headers HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(
        c.resp(false).text(),
        "host=example.test xff=127.0.0.1 proto=http via=1.1 evio\n"
    );
    let r = c.get("/file.bin");
    assert!(r.status == 200 && r.body == data, "{r:?}");
    let etag = r.field("etag").expect("an ETag").to_string();
    c.send("HEAD /file.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.resp(true);
    assert_eq!(
        (r.status, r.field("content-length")),
        (200, Some(&*(3 * MIB).to_string()))
    );
    c.send(format!(
        "GET /file.bin HTTP/1.1\r\nHost: test\r\nIf-None-Match: {etag}\r\n\r\n"
    ));
    assert_eq!(c.resp(false).status, 304);
    assert_eq!(c.get("/missing").status, 404);
    // A chunked upload nginx reads and throws away.
    // nginx answers `return` at once and reads the body in the background.
    let mut upload =
        b"POST /headers HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    upload.extend(chunked(&data[..MIB], &[10_000, 3]));
    if let Err(e) = c.w.write_all(&upload) {
        eprintln!("the proxy stopped reading the upload: {e}");
    }
    let r = read_resp(&mut c.r, false)
        .unwrap_or_else(|e| panic!("the answer to a chunked POST nginx answered early: {e}"));
    assert_eq!(
        (r.status, r.text()),
        (
            200,
            "host=up xff=127.0.0.1 proto=http via=1.1 evio\n".to_string()
        )
    );
    keeps_or_says_close(
        &mut c,
        &r,
        "/headers",
        "a chunked POST nginx answered early",
    );
}

#[test]
fn wrk_two_seconds_without_errors() {
    if skip_without("wrk") {
        return;
    }
    let ng = nginx();
    let up = Upstream::echo();
    let (target, path) = match &ng {
        Some(n) => (n.addr, "/headers"),
        None => (up.addr, "/wrk"),
    };
    let p = proxy(&[target], &["--loops", "2"]);
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c20", "-d2s", "--timeout", "5s"])
        .arg(format!("http://127.0.0.1:{}{path}", p.port));
    let (status, out, err) = run_for(cmd, TOOL_LIMIT, b"");
    assert_eq!(status, Some(0), "{out}{err}");
    let done = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in"))
        .and_then(|(n, _)| n.parse::<u64>().ok());
    assert!(done.is_some_and(|n| n > 0), "{out}");
    for trouble in ["Socket errors", "Non-2xx"] {
        assert!(!out.contains(trouble), "{out}");
    }
    assert_eq!(fetch(p.addr(), path).status, 200);
}

// ----- big bodies, memory --------------------------------------------------------------

#[test]
fn a_slow_reader_downloads_64_mib_with_bounded_proxy_memory() {
    const TOTAL: usize = 64 * MIB;
    let (_up, p) = echo_proxy(&[]);
    let mut c = Client::new(p.addr());
    // Warm-up: buffers and the pool exist.
    assert_eq!(c.get(&format!("/big/{MIB}")).body.len(), MIB);
    let base = rss_kib(p.pid());
    c.send(format!("GET /big/{TOTAL} HTTP/1.1\r\nHost: a\r\n\r\n"));
    let (status, fields) = read_head(&mut c.r).unwrap().expect("a response");
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let pat = Pattern::new(BIG_SEED);
    let (mut off, mut peak) = (0usize, base);
    Framing::of(&fields, Framing::UntilClose)
        .read(&mut c.r, &mut |piece: &[u8]| {
            assert!(pat.check(off as u64, piece), "wrong bytes at {off}");
            let mib = off / MIB;
            off += piece.len();
            if off / MIB != mib {
                peak = peak.max(rss_kib(p.pid()));
                thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("after {off} bytes: {e}"));
    assert_eq!(off, TOTAL);
    let growth = peak.saturating_sub(base);
    eprintln!("proxy RSS: {base} KiB before, {peak} KiB at most while a slow client read 64 MiB");
    assert!(growth < 16 * 1024, "the proxy's RSS grew by {growth} KiB");
    assert_eq!(c.get("/after").text(), "GET /after");
}

#[test]
fn a_chunked_32_mib_upload_arrives_intact_with_bounded_proxy_memory() {
    const TOTAL: usize = 32 * MIB;
    let pat = Pattern::new(14);
    let check = pat.clone();
    // `/upload`: checks the body as it comes, slowly, and answers
    // `BYTES INTACT`.
    let up = Upstream::start(move |req, p| {
        if req.target != "/upload" {
            return answer(req, p);
        }
        let (mut off, mut intact) = (0usize, true);
        p.body_with(req, &mut |piece: &[u8]| {
            intact &= check.check(off as u64, piece);
            let mib = off / MIB;
            off += piece.len();
            if off / MIB != mib {
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })?;
        p.reply(req, 200, "", format!("{off} {intact}").as_bytes())?;
        Ok(Next::KeepAlive)
    });
    let p = proxy(&[up.addr], &[]);
    let mut c = Client::new(p.addr());
    assert_eq!(c.post("/warm-up", b"x").text(), "x");
    let base = rss_kib(p.pid());
    let body = chunked(
        &pattern_bytes(&pat, TOTAL),
        &[1, 8000, 65_536, 1_000_000, 333, 17],
    );
    let mut w = c.w.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")?;
        w.write_all(&body)
    });
    let mut peak = base;
    while !writer.is_finished() {
        peak = peak.max(rss_kib(p.pid()));
        thread::sleep(Duration::from_millis(10));
    }
    writer.join().unwrap().expect("writing the upload");
    let r = c.resp(false);
    assert_eq!(
        (r.status, r.text()),
        (200, format!("{TOTAL} true")),
        "{r:?}"
    );
    let growth = peak.saturating_sub(base);
    eprintln!("proxy RSS: {base} KiB before, {peak} KiB at most during a 32 MiB upload");
    assert!(growth < 16 * 1024, "the proxy's RSS grew by {growth} KiB");
}

// ----- metrics ---------------------------------------------------------------------

/// The body of `GET path` from `port`, `Connection: close`.
fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn metrics_count_requests_responses_refusals_and_upstream_state() {
    let up = Upstream::echo();
    let dead = dead_addr();
    let all = [up.addr, dead];
    let mut args = vec![
        "--port".to_string(),
        "0".into(),
        "--metrics-port".into(),
        "0".into(),
    ];
    args.extend(proxy_flags(
        &all,
        &["--max-fails", "1", "--fail-timeout", "60"],
    ));
    let p = spawn(PROXY, &strs(&args));
    let metrics_port = p.metrics_port();
    let mut c = Client::new(p.addr());
    for i in 0..4 {
        assert_eq!(c.get(&format!("/m{i}")).status, 200);
    }
    let mut raw = TcpStream::connect(p.addr()).unwrap();
    raw.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body = scrape(metrics_port);
    for want in [
        "evio_http_proxy_requests_total 4\n".to_string(),
        "evio_http_proxy_responses_total{class=\"2xx\"} 4\n".to_string(),
        "evio_http_proxy_responses_total{class=\"4xx\"} 1\n".to_string(),
        "evio_http_proxy_refused_total 1\n".to_string(),
        format!(
            "evio_http_proxy_upstream_up{{upstream=\"{}\"}} 1\n",
            up.addr
        ),
        format!("evio_http_proxy_upstream_up{{upstream=\"{dead}\"}} 0\n"),
        format!("evio_http_proxy_upstream_failures_total{{upstream=\"{dead}\"}} 1\n"),
        "# TYPE evio_connections_open gauge\n".to_string(),
    ] {
        assert!(body.contains(&want), "{want:?} missing in:\n{body}");
    }
}
