//! The Redis example against a real `redis-server`: the same commands sent
//! to both, every reply compared byte for byte. The real server is started
//! by the test on a free loopback port (no persistence; `common::real_redis`);
//! without a `redis-server` binary on `PATH` the test says so and passes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use evio_examples::redis::{Config, RedisServer};

/// Sends `args` as a RESP multibulk.
fn send(s: &mut TcpStream, args: &[&str]) {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
}

/// Reads one whole RESP2 reply, raw.
fn read_reply(r: &mut impl BufRead, out: &mut Vec<u8>) {
    let start = out.len();
    r.read_until(b'\n', out).unwrap();
    let line = String::from_utf8_lossy(&out[start..]).into_owned();
    assert!(line.ends_with("\r\n"), "bad reply line {line:?}");
    let n = |l: &str| l[1..l.len() - 2].parse::<i64>().unwrap();
    match line.as_bytes()[0] {
        b'$' if n(&line) >= 0 => {
            let mut body = vec![0; n(&line) as usize + 2];
            r.read_exact(&mut body).unwrap();
            out.extend_from_slice(&body);
        }
        b'*' => {
            for _ in 0..n(&line).max(0) {
                read_reply(r, out);
            }
        }
        _ => {}
    }
}

fn reply(s: &mut TcpStream, r: &mut impl BufRead, args: &[&str]) -> String {
    send(s, args);
    let mut out = Vec::new();
    read_reply(r, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Each command, with the reply both servers must give it.
const COMMANDS: &[&str] = &[
    "FLUSHALL",
    // SET: repeated flags, last expiry wins, conflicts, option order.
    "SET k v NX NX",
    "SET k v2 NX",
    "GET k",
    "SET k v3 XX XX",
    "SET k v EX 1 EX 100",
    "SET k v PX 5 PX 100000",
    "SET k v NX XX",
    "SET k v XX NX",
    "SET k v EX 1 PX 1",
    "SET k v PX 1 EX 1",
    "SET k v EX",
    "SET k v FOO",
    "SET k v ex 100 nx",
    // Expiry values: overflow, zero, negative, not a number; syntax first.
    "SET k v PX 9223372036854775807",
    "SET k v EX 9223372036854775",
    "SET k v EX 9223372036854776",
    "SET k v PX 9223372036854775808",
    "SET k v PX 0",
    "SET k v EX -1",
    "SET k v EX x",
    "SET k v EX x FOO",
    "SET k v FOO EX x",
    "SET k v EX 0 FOO",
    "SET k v EX x NX XX",
    // KEEPTTL, GET, EXAT, PXAT.
    "SET k v KEEPTTL EX 10",
    "SET k v EX 10 KEEPTTL",
    "SET k v KEEPTTL KEEPTTL",
    "SET k v KEEPTTL",
    "SET k v1 GET",
    "SET k v2 GET GET",
    "SET new v NX GET",
    "SET new v2 NX GET",
    "SET new v3 XX GET",
    "SET nope v XX GET",
    "GET new",
    "GET nope",
    "SET k v EXAT 0",
    "SET k v PXAT -5",
    "SET k v EXAT 9223372036854776",
    "SET k v EXAT 4102444800",
    "SET k v PXAT 4102444800000",
    "SET k v PXAT 9223372036854775807",
    "SET k v EXAT 4102444800 PXAT 1",
    "SET k v EXAT 4102444800 EX 1",
    "SET k v EXAT 4102444800 KEEPTTL",
    "SET past v PXAT 1000",
    "GET past",
    "SET",
    "SET k",
    // DBSIZE: expired keys are not counted.
    "DBSIZE",
    // SHUTDOWN that must not shut down.
    "SHUTDOWN ABORT",
    "shutdown abort",
    "SHUTDOWN foo",
    "SHUTDOWN ABORT NOW",
    "SHUTDOWN ABORT NOSAVE",
    "SHUTDOWN NOSAVE SAVE",
    "SHUTDOWN NOW FORCE foo",
    "PING",
    // The rest of the command set.
    "PING hi",
    "PING a b",
    "ECHO x",
    "GET",
    "GET a b",
    "INCR k",
    "INCR n",
    "INCRBY n 5",
    "DECRBY n 3",
    "DECR n",
    "INCRBY n x",
    "DECRBY n -9223372036854775808",
    "INCRBY n 9223372036854775807",
    "MSET a 1 b 2",
    "MSET a",
    "MGET a b nope",
    "DEL a nope",
    "EXISTS a b a",
    "SELECT 0",
    "SELECT 16",
    "SELECT x",
    "FLUSHDB ASYNC",
    "FLUSHALL foo",
    "DBSIZE",
    "NOSUCH a b",
];

#[test]
fn replies_are_byte_identical_to_redis_7() {
    let Some(real) = real_redis() else {
        return;
    };
    let (_ours, addr) = start(RedisServer::new(Config::default()), 0);
    let mut a = connect(real.addr);
    let mut b = connect(addr);
    let mut ra = BufReader::new(a.try_clone().unwrap());
    let mut rb = BufReader::new(b.try_clone().unwrap());
    let version = reply(&mut a, &mut ra, &["INFO", "server"]);
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .to_string();
    let mut diffs = Vec::new();
    for cmd in COMMANDS {
        let args: Vec<&str> = cmd.split(' ').collect();
        let want = reply(&mut a, &mut ra, &args);
        let got = reply(&mut b, &mut rb, &args);
        if want != got {
            diffs.push(format!(
                "{cmd}\n  redis {version}: {want:?}\n  ours: {got:?}"
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Both still serve after all the SHUTDOWNs that must not stop them.
    assert_eq!(reply(&mut a, &mut ra, &["PING"]), "+PONG\r\n");
    assert_eq!(reply(&mut b, &mut rb, &["PING"]), "+PONG\r\n");
}

#[test]
fn keepttl_keeps_the_ttl_as_redis_does() {
    let Some(real) = real_redis() else {
        return;
    };
    let (_ours, addr) = start(RedisServer::new(Config::default()), 0);
    // Same script on both; we have no TTL command, so observe expiry.
    for (name, target) in [("redis", real.addr), ("ours", addr)] {
        let mut s = connect(target);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut run = |args: &[&str]| reply(&mut s, &mut r, args);
        assert_eq!(run(&["SET", "t", "1", "PX", "200"]), "+OK\r\n", "{name}");
        assert_eq!(run(&["SET", "t", "2", "KEEPTTL"]), "+OK\r\n", "{name}");
        assert_eq!(run(&["SET", "p", "1", "PX", "200"]), "+OK\r\n", "{name}");
        assert_eq!(run(&["SET", "p", "2"]), "+OK\r\n", "{name}");
        assert_eq!(run(&["GET", "t"]), "$1\r\n2\r\n", "{name}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            run(&["GET", "t"]),
            "$-1\r\n",
            "{name}: KEEPTTL kept the TTL"
        );
        assert_eq!(
            run(&["GET", "p"]),
            "$1\r\n2\r\n",
            "{name}: plain SET cleared it"
        );
        assert_eq!(run(&["DBSIZE"]), ":1\r\n", "{name}");
    }
}
