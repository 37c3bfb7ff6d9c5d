//! The Redis example against real clients: the `redis` crate and raw
//! sockets. Every server runs in-process on an ephemeral port.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use evio_core::ServerHandle;
use evio_examples::redis::{Config, RedisServer, Session};
use evio_examples::resp::Limits;
use redis::Commands;

fn server(loops: isize) -> (ServerHandle<Session>, SocketAddr) {
    server_with(Config {
        loops,
        ..Config::default()
    })
}

fn server_with(config: Config) -> (ServerHandle<Session>, SocketAddr) {
    start(RedisServer::new(config), config.loops)
}

fn client(addr: SocketAddr) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = c
        .get_connection_with_timeout(TIMEOUT)
        .expect("redis connection");
    con.set_read_timeout(Some(TIMEOUT)).unwrap();
    con.set_write_timeout(Some(TIMEOUT)).unwrap();
    con
}

fn basic_commands(loops: isize) {
    let (_server, addr) = server(loops);
    let mut con = client(addr);
    let _: () = con.set("greeting", "hello").unwrap();
    assert_eq!(con.get::<_, String>("greeting").unwrap(), "hello");
    assert_eq!(con.get::<_, Option<String>>("missing").unwrap(), None);
    assert_eq!(con.incr::<_, _, i64>("counter", 1).unwrap(), 1);
    assert_eq!(con.incr::<_, _, i64>("counter", 41).unwrap(), 42);
    assert_eq!(con.decr::<_, _, i64>("counter", 2).unwrap(), 40);
    let _: () = con.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let got: Vec<Option<String>> = con.mget(&["a", "nope", "b"]).unwrap();
    assert_eq!(got, [Some("1".into()), None, Some("2".into())]);
    assert_eq!(con.exists::<_, i64>(&["a", "b", "nope"]).unwrap(), 2);
    assert_eq!(con.del::<_, i64>(&["a", "b", "nope"]).unwrap(), 2);
    assert!(!con.exists::<_, bool>("a").unwrap());
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 2);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    // Errors are replies; the connection stays usable.
    let err = con.incr::<_, _, i64>("greeting", 1).unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    let err = redis::cmd("NOSUCH")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown command 'NOSUCH'"),
        "{err}"
    );
    assert_eq!(con.get::<_, String>("greeting").unwrap(), "hello");
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
}

#[test]
fn client_basic_commands_one_loop() {
    basic_commands(1);
}

#[test]
fn client_basic_commands_four_loops() {
    basic_commands(4);
}

#[test]
fn client_pipeline_of_1000_commands() {
    let (_server, addr) = server(0);
    let mut con = client(addr);
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        match i % 4 {
            0 => pipe.cmd("SET").arg(format!("k{i}")).arg(i),
            1 => pipe.cmd("GET").arg(format!("k{}", i - 1)),
            2 => pipe.cmd("INCR").arg("n"),
            _ => pipe.cmd("PING"),
        };
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 1000);
    for (i, r) in replies.iter().enumerate() {
        let want = match i % 4 {
            0 => redis::Value::Okay,
            1 => redis::Value::BulkString((i - 1).to_string().into_bytes()),
            2 => redis::Value::Int((i / 4 + 1) as i64),
            _ => redis::Value::SimpleString("PONG".into()),
        };
        assert_eq!(*r, want, "reply {i}");
    }
}

#[test]
fn client_binary_keys_and_values() {
    let (_server, addr) = server(0);
    let mut con = client(addr);
    let all: Vec<u8> = (0..=255).collect();
    let key = b"bin\r\n\0key\xff".to_vec();
    let _: () = con.set(&key, &all).unwrap();
    assert_eq!(con.get::<_, Vec<u8>>(&key).unwrap(), all);
    let _: () = con.set(&all, b"\r\n$-1\r\n*0\r\n").unwrap();
    assert_eq!(con.get::<_, Vec<u8>>(&all).unwrap(), b"\r\n$-1\r\n*0\r\n");
    let _: () = con.set("empty", b"").unwrap();
    assert_eq!(con.get::<_, Vec<u8>>("empty").unwrap(), b"");
}

#[test]
fn client_8_mib_value() {
    let (_server, addr) = server(0);
    let mut con = client(addr);
    let value: Vec<u8> = (0..8 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let _: () = con.set("big", &value).unwrap();
    let got: Vec<u8> = con.get("big").unwrap();
    assert!(got == value, "8 MiB value came back different");
    // The connection is still in step after it.
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).unwrap(),
        "PONG"
    );
}

#[test]
fn client_expiry() {
    let (_server, addr) = server(0);
    let mut con = client(addr);
    let ok: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(150)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok.as_deref(), Some("OK"));
    let _: () = redis::cmd("SET")
        .arg("keep")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!(
        con.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v")
    );
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("keep").unwrap().as_deref(),
        Some("v")
    );
    // NX on an expired key sets it; NX on a live key does not.
    let nx: Option<String> = redis::cmd("SET")
        .arg("keep")
        .arg("w")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(nx, None);
}

#[test]
fn expired_keys_are_swept_without_being_touched() {
    let (_server, addr) = server_with(Config {
        sweep_interval: Duration::from_millis(20),
        ..Config::default()
    });
    let mut con = client(addr);
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(i)
            .arg("v")
            .arg("PX")
            .arg(30)
            .query(&mut con)
            .unwrap();
    }
    let _: () = con.set("forever", "v").unwrap();
    // DBSIZE counts keys without touching them: only the sweep lowers it.
    assert!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap() > 1);
    wait_for("the sweep", || {
        redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap() == 1
    });
}

#[test]
fn loops_share_one_store() {
    let (_server, addr) = server(4);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut con = client(addr);
                for i in 0..250 {
                    let _: i64 = con.incr("shared", 1).unwrap();
                    let _: () = con.set(format!("t{t}:{i}"), i).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = client(addr);
    assert_eq!(con.get::<_, i64>("shared").unwrap(), 2000);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 2001);
    assert_eq!(con.get::<_, i64>("t7:249").unwrap(), 249);
}

#[test]
fn raw_pipelining_and_inline_commands() {
    let (_server, addr) = server(0);
    let mut s = connect(addr);
    s.write_all(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nGET k\r\n\r\n*0\r\nPING\r\nECHO \"a\\r\\nb\"\r\n\
          *2\r\n$4\r\nECHO\r\n$0\r\n\r\nDEL k\r\nGET k\r\n",
    )
    .unwrap();
    expect(
        &mut s,
        b"+OK\r\n$2\r\nv1\r\n+PONG\r\n$4\r\na\r\nb\r\n$0\r\n\r\n:1\r\n$-1\r\n",
    );
    assert_open(&mut s);
}

#[test]
fn raw_byte_by_byte() {
    let (_server, addr) = server(0);
    let mut s = connect(addr);
    write_bytewise(
        &mut s,
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nGET key\r\n",
    );
    expect(&mut s, b"+OK\r\n$5\r\nva\r\nl\r\n");
}

#[test]
fn raw_errors_keep_the_connection() {
    let (_server, addr) = server(0);
    let mut s = connect(addr);
    s.write_all(b"foo a b\r\n*1\r\n$3\r\nGET\r\nSET k\r\nSELECT 9\r\nMSET a\r\nPING\r\n")
        .unwrap();
    expect(
        &mut s,
        b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n\
          -ERR wrong number of arguments for 'get' command\r\n\
          -ERR wrong number of arguments for 'set' command\r\n\
          -ERR DB index is out of range\r\n\
          -ERR wrong number of arguments for 'mset' command\r\n\
          +PONG\r\n",
    );
    assert_open(&mut s);
}

#[test]
fn raw_malformed_input_gets_an_error_and_a_close() {
    let (_server, addr) = server(0);
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "invalid multibulk length"),
        (b"*3000000000\r\n", "invalid multibulk length"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999999999999\r\n", "invalid bulk length"),
        (b"*1\r\n$2\r\nabcd\r\n", "invalid bulk length"),
        (b"SET \"k v\r\n", "unbalanced quotes in request"),
    ];
    for (input, msg) in cases {
        let mut s = connect(addr);
        s.write_all(b"PING\r\n").unwrap();
        s.write_all(input).unwrap();
        let got = read_to_close(&mut s);
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("+PONG\r\n-ERR Protocol error: {msg}\r\n"),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn raw_limits() {
    let (_server, addr) = server_with(Config {
        limits: Limits {
            max_bulk_len: 1024,
            max_inline: 256,
            max_multibulk_len: 8,
            query_buffer_limit: 4096,
        },
        ..Config::default()
    });
    let close_with = |input: Vec<u8>, reply: &str| {
        let mut s = connect(addr);
        // The server may close before it has read everything we send.
        let _ = s.write_all(&input);
        assert_eq!(String::from_utf8_lossy(&read_to_close(&mut s)), reply);
    };
    // At each limit: accepted. One past it: refused.
    let mut s = connect(addr);
    s.write_all(format!("*2\r\n$4\r\nECHO\r\n$1024\r\n{}\r\n", "x".repeat(1024)).as_bytes())
        .unwrap();
    expect(
        &mut s,
        format!("$1024\r\n{}\r\n", "x".repeat(1024)).as_bytes(),
    );
    close_with(
        b"*2\r\n$4\r\nECHO\r\n$1025\r\n".to_vec(),
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    close_with(
        b"*9\r\n".to_vec(),
        "-ERR Protocol error: invalid multibulk length\r\n",
    );
    let inline = format!("ECHO {}", "y".repeat(251));
    s.write_all(format!("{inline}\r\n").as_bytes()).unwrap();
    expect(
        &mut s,
        format!("$251\r\n{}\r\n", "y".repeat(251)).as_bytes(),
    );
    close_with(
        format!("ECHO {}", "y".repeat(260)).into_bytes(),
        "-ERR Protocol error: too big inline request\r\n",
    );
    close_with(
        format!("*1\r\n${}", "1".repeat(300)).into_bytes(),
        "-ERR Protocol error: too big bulk count string\r\n",
    );
    close_with(
        format!("*{}", "1".repeat(300)).into_bytes(),
        "-ERR Protocol error: too big mbulk count string\r\n",
    );
    // An unfinished request past the query buffer limit: closed, no reply.
    let mut big = b"*8\r\n".to_vec();
    for _ in 0..5 {
        big.extend_from_slice(format!("$1000\r\n{}\r\n", "z".repeat(1000)).as_bytes());
    }
    close_with(big, "");
    assert_open(&mut s);
}

#[test]
fn declared_lengths_allocate_nothing_until_the_bytes_arrive() {
    let (_server, addr) = server(0);
    let before = rss();
    // 40 connections each declare a 512 MiB value (20 GiB in all) and send
    // a few bytes of it.
    let conns: Vec<_> = (0..40)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc")
                .unwrap();
            s
        })
        .collect();
    let mut s = connect(addr);
    expect_pong(&mut s);
    assert_rss_grew_less_than(before, 256 << 20);
    drop(conns);
}

#[test]
fn quit_closes_after_ok() {
    let (_server, addr) = server(0);
    let mut s = connect(addr);
    s.write_all(b"PING\r\nQUIT\r\nPING\r\n").unwrap();
    assert_eq!(read_to_close(&mut s), b"+PONG\r\n+OK\r\n");
}

#[test]
fn tooling_commands() {
    let (_server, addr) = server(0);
    let mut s = connect(addr);
    s.write_all(b"COMMAND DOCS\r\nCONFIG GET save\r\nCONFIG GET appendonly\r\nCLIENT SETNAME x\r\nSELECT 0\r\n").unwrap();
    expect(&mut s, b"*0\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n+OK\r\n+OK\r\n");
}

#[test]
fn shutdown_stops_the_server() {
    for loops in [1, 3] {
        let (server, addr) = server(loops);
        let mut other = connect(addr);
        expect_pong(&mut other);
        let mut s = connect(addr);
        s.write_all(b"SHUTDOWN\r\n").unwrap();
        within("the server to stop", move || server.wait()).expect("clean stop");
        assert_eq!(read_to_close(&mut s), b"");
        assert_eq!(read_to_close(&mut other), b"");
        assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }
}
