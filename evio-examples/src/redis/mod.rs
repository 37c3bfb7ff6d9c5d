//! The Redis example: a RESP2 server for string keys.
//!
//! Commands: `PING [msg]`, `ECHO`, `SET key value [NX | XX] [GET] [EX s |
//! PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]`, `GET`, `DEL`, `EXISTS`,
//! `INCR`, `DECR`, `INCRBY`, `DECRBY`, `MSET`, `MGET`, `FLUSHDB`,
//! `FLUSHALL`, `DBSIZE`, `SELECT 0`, `QUIT`, `SHUTDOWN [NOSAVE | SAVE]
//! [NOW] [FORCE] [ABORT]`, and enough of `COMMAND`, `CONFIG GET` and
//! `CLIENT` for `redis-cli`, `redis-benchmark` and client libraries. Replies
//! and errors are byte-identical to Redis 7.0's (`tests/redis_compat.rs`
//! checks them against a real `redis-server`).
//!
//! The hot path allocates nothing but the stored data itself: requests are
//! parsed in place from the loop's read buffer ([`resp::Parser`]), replies
//! are static strings or formatted on the stack, and input is copied into
//! the connection's [`InputStream`](evio_core::InputStream) only when a
//! request is split across reads.
//!
//! # Output is bounded
//!
//! A client can pipeline requests whose replies are much larger than they
//! are (`GET` of a large value, `MGET k k k ...`) and never read. Redis
//! executes all of them and queues every reply. This engine stops executing
//! once the connection's queued output ([`Sink::output_len`]) passes
//! [`Config::output_high_water`], keeps the unexecuted input in the
//! session, and continues when it is fed again (the server does that from
//! `on_drained`, when the output has been written). A single `MGET` whose
//! reply passes the mark is streamed the same way: its elements are written
//! in pieces, each piece once the previous ones have drained. So the output
//! held for a connection stays within the high-water mark plus one value.
//! (The price: an `MGET` whose reply is larger than the mark is not atomic;
//! other clients' writes may land between its pieces.)
//!
//! A client that shuts down its write side while requests are held still
//! gets every reply before the connection closes; see [`RedisServer`].

use std::time::Duration;

use evio_core::Action;

use crate::resp::{self, Argv, Limits, Parsed, Parser};
use crate::store::{SetCond, Store};
use crate::Sink;

mod commands;
mod server;
mod session;

use commands::{client, command, config, incr, is_one_of, set, shutdown, unknown_command};
pub use server::RedisServer;
pub use session::Session;

/// The default output high-water mark of a connection, 1 MiB: evio-core's
/// default high-water mark, so that reading a connection pauses (in
/// evio-core) when executing its requests does (here), and the input held
/// meanwhile is at most what was already read.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// While requests wait for the output to drain, the input held may grow to
/// `max(output_high_water, HELD_INPUT_MIN)` before requests run regardless
/// (1 MiB: evio-core's default high-water mark, at which it stops reading
/// the connection anyway).
pub const HELD_INPUT_MIN: usize = 1 << 20;

/// Settings of the Redis server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Event loops the server runs (0 or 1: one loop, with an unshared
    /// store; -1: one per core).
    pub loops: isize,
    /// Protocol limits.
    pub limits: Limits,
    /// How often expired keys are swept; 1 s by default.
    pub sweep_interval: Duration,
    /// Pipelined requests are not executed while more than this many bytes
    /// of replies are queued for the connection; see the
    /// [module docs](self#output-is-bounded). Keep it at or above evio-core's
    /// high-water mark (`Builder::output_water_marks`), so that reading
    /// pauses too; otherwise input accumulates (up to [`HELD_INPUT_MIN`] or
    /// this, whichever is larger; past that requests run regardless and
    /// evio-core's own mark applies).
    pub output_high_water: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            loops: 0,
            limits: Limits::default(),
            sweep_interval: Duration::from_secs(1),
            output_high_water: OUTPUT_HIGH_WATER,
        }
    }
}

/// The protocol engine of one event loop: parser, store and limits. It
/// turns input into replies written to a [`Sink`], so it runs the same over
/// a connection ([`evio_core::Writer`]), in tests, fuzzers and benchmarks.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    parser: ParserSlot,
    limits: Limits,
    high_water: usize,
}

/// Each loop needs its own parser: cloning the engine gives a fresh one.
#[derive(Debug, Default)]
struct ParserSlot(Parser);

impl Clone for ParserSlot {
    fn clone(&self) -> ParserSlot {
        ParserSlot::default()
    }
}

impl Engine {
    /// An engine over `store`, with the default output high-water mark
    /// ([`OUTPUT_HIGH_WATER`]).
    pub fn new(store: Store, limits: Limits) -> Engine {
        Engine {
            store,
            parser: ParserSlot::default(),
            limits,
            high_water: OUTPUT_HIGH_WATER,
        }
    }

    /// Sets the output high-water mark (see [`Config::output_high_water`]).
    pub fn with_output_high_water(mut self, bytes: usize) -> Engine {
        self.high_water = bytes;
        self
    }

    /// The store.
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Handles one read of input for `session`, writing replies to `out`.
    /// Returns `Close` after `QUIT` or a protocol error, `Shutdown` after
    /// `SHUTDOWN`.
    ///
    /// Requests are executed while `out.output_len()` is at most the output
    /// high-water mark, then held ([`Session::is_held`]): see
    /// [`held`](crate::held) for how the server resumes them.
    pub fn feed<O: Sink + ?Sized>(
        &mut self,
        session: &mut Session,
        packet: &[u8],
        out: &mut O,
    ) -> Action {
        let limits = self.limits;
        let high = self.high_water;
        let cap = high.max(HELD_INPUT_MIN);
        if session.held {
            if out.output_len() > high && session.input.len() + packet.len() <= cap {
                // Still waiting for the output to drain: just keep the input.
                let _ = session.input.begin(packet);
                session.input.end(packet, 0);
                return Action::None;
            }
        } else if !session.input.is_empty() && session.input.len() + packet.len() < session.need {
            // Still short of what the pending request needs: just hold it.
            let _ = session.input.begin(packet);
            session.input.end(packet, 0);
            return self.check_held(session);
        }
        let data = session.input.begin(packet);
        let mut pos = 0;
        let mut action = Action::None;
        session.need = 0;
        session.held = false;
        while pos < data.len() {
            // Past the mark, stop executing: unless the input waiting has
            // itself grown past it (evio-core was told to read on).
            if out.output_len() > high && data.len() - pos <= cap {
                session.held = true;
                break;
            }
            let buf = &data[pos..];
            match self.parser.0.parse(buf, &limits) {
                Ok(Parsed::Command { len, inline }) => {
                    let argv = self.parser.0.argv(buf, inline);
                    let mut run = Run {
                        cursor: &mut session.cursor,
                        high,
                    };
                    match execute(&mut self.store, argv, out, &mut run) {
                        Some(a) => {
                            pos += len;
                            action = a;
                            if action != Action::None {
                                break;
                            }
                        }
                        // A streamed reply stopped at the mark: the request
                        // stays at the front of the input.
                        None => {
                            session.held = true;
                            break;
                        }
                    }
                }
                Ok(Parsed::Skip(len)) => pos += len,
                Ok(Parsed::Incomplete { need }) => {
                    session.need = need;
                    break;
                }
                Err(e) => {
                    e.write_reply(out);
                    action = Action::Close;
                    break;
                }
            }
        }
        self.parser.0.trim();
        if action != Action::None {
            // Closing: whatever follows the last request is dropped.
            session.input.clear();
            session.held = false;
            session.cursor = 0;
            return action;
        }
        session.input.end(packet, pos);
        self.check_held(session)
    }

    fn check_held(&self, session: &mut Session) -> Action {
        if session.input.is_empty() {
            // Give a large request's buffer back: idle connections hold no
            // heap memory.
            session.input.clear();
            Action::None
        } else if session.input.len() > self.limits.query_buffer_limit {
            // Redis closes such a client without a reply.
            session.input.clear();
            session.held = false;
            Action::Close
        } else {
            Action::None
        }
    }
}

/// How a command may stream its reply: from element `cursor`, stopping
/// when the output passes `high`.
struct Run<'a> {
    cursor: &'a mut u32,
    high: usize,
}

/// Executes one command. `None`: its reply was cut at the output mark and
/// the command must run again (with `run.cursor` saying where to go on).
fn execute<O: Sink + ?Sized>(
    store: &mut Store,
    argv: Argv<'_>,
    out: &mut O,
    run: &mut Run<'_>,
) -> Option<Action> {
    // Lower-case the name into a stack buffer, so that `match` can compare
    // it with literals; longer names are no command we know.
    let name = argv.get(0);
    let mut lower = [0u8; 16];
    let cmd = match lower.get_mut(..name.len()) {
        Some(l) => {
            l.copy_from_slice(name);
            l.make_ascii_lowercase();
            &*l
        }
        None => &b"-"[..],
    };
    let argc = argv.len();
    // Redis's arity rule: N means exactly N arguments (name included), -N at
    // least N. PING takes at most 2; MSET takes key-value pairs.
    let arity: isize = match cmd {
        b"dbsize" => 1,
        b"get" | b"echo" | b"incr" | b"decr" | b"select" => 2,
        b"incrby" | b"decrby" => 3,
        b"del" | b"exists" | b"mget" | b"config" | b"client" => -2,
        b"set" | b"mset" => -3,
        _ => -1,
    };
    let bad_arity = if arity >= 0 {
        argc != arity as usize
    } else {
        argc < arity.unsigned_abs()
    };
    if bad_arity || (cmd == b"ping" && argc > 2) || (cmd == b"mset" && argc % 2 == 0) {
        out.write(b"-ERR wrong number of arguments for '");
        out.write(cmd);
        out.write(b"' command\r\n");
        return Some(Action::None);
    }
    match cmd {
        b"get" => {
            let key = argv.get(1);
            store.with(key, |db| {
                db.read(key, |v| match v {
                    Some(v) => resp::write_bulk(out, v),
                    None => out.write(resp::NIL),
                })
            });
        }
        b"set" => set(store, argv, out),
        b"ping" if argc == 1 => out.write(resp::PONG),
        b"ping" | b"echo" => resp::write_bulk(out, argv.get(1)),
        b"del" | b"exists" => {
            let del = cmd == b"del";
            let mut n = 0;
            for key in argv.iter_from(1) {
                let hit = store.with(key, |db| {
                    if del {
                        db.del(key)
                    } else {
                        db.read(key, |v| v.is_some())
                    }
                });
                n += i64::from(hit);
            }
            resp::write_int(out, n);
        }
        b"incr" => incr(store, argv.get(1), 1, out),
        b"decr" => incr(store, argv.get(1), -1, out),
        b"incrby" | b"decrby" => match resp::parse_i64(argv.get(2)) {
            Some(d) if cmd == b"incrby" => incr(store, argv.get(1), d, out),
            Some(d) if d != i64::MIN => incr(store, argv.get(1), -d, out),
            Some(_) => resp::write_error(out, "ERR decrement would overflow"),
            None => resp::write_error(out, "ERR value is not an integer or out of range"),
        },
        b"mset" => {
            for i in (1..argc).step_by(2) {
                let (key, value) = (argv.get(i), argv.get(i + 1));
                store.with(key, |db| db.set(key, value, None, SetCond::Always));
            }
            out.write(resp::OK);
        }
        b"mget" => {
            let mut i = *run.cursor as usize;
            if i == 0 {
                resp::write_array(out, argc - 1);
                i = 1;
            }
            // At least one element per call, so that every call progresses.
            let first = i;
            while i < argc {
                if i > first && out.output_len() > run.high {
                    *run.cursor = i as u32;
                    return None;
                }
                let key = argv.get(i);
                store.with(key, |db| {
                    db.read(key, |v| match v {
                        Some(v) => resp::write_bulk(out, v),
                        None => out.write(resp::NIL),
                    })
                });
                i += 1;
            }
            *run.cursor = 0;
        }
        b"flushdb" | b"flushall" => {
            if argc > 2 || (argc == 2 && !is_one_of(argv.get(1), &[b"async", b"sync"])) {
                resp::write_error(out, "ERR syntax error");
                return Some(Action::None);
            }
            store.each(|db| db.clear());
            out.write(resp::OK);
        }
        b"dbsize" => {
            // Exact: expired keys are removed first (Redis counts those its
            // active expiry has not reached yet).
            store.sweep();
            resp::write_int(out, store.len() as i64);
        }
        b"select" => match resp::parse_i64(argv.get(1)) {
            Some(0) => out.write(resp::OK),
            Some(_) => resp::write_error(out, "ERR DB index is out of range"),
            None => resp::write_error(out, "ERR value is not an integer or out of range"),
        },
        b"quit" => {
            out.write(resp::OK);
            return Some(Action::Close);
        }
        b"shutdown" => return Some(shutdown(argv, out)),
        b"command" => command(argv, out),
        b"config" => config(argv, out),
        b"client" => client(argv, out),
        _ => unknown_command(argv, out),
    }
    Some(Action::None)
}

#[cfg(test)]
mod testing {
    use super::*;

    /// An engine over a fresh one-loop store.
    pub(super) fn engine() -> Engine {
        Engine::new(Store::for_loops(1), Limits::default())
    }

    /// All of `input` through `e` with a new session.
    pub(super) fn run(e: &mut Engine, input: &[u8]) -> (String, Action) {
        let mut out = Vec::new();
        let a = e.feed(&mut Session::default(), input, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), a)
    }

    /// The replies to `input`.
    pub(super) fn reply(e: &mut Engine, input: &str) -> String {
        run(e, input.as_bytes()).0
    }

    /// Each input in turn through `e`, answered with its expected replies.
    pub(super) fn assert_replies(e: &mut Engine, cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(reply(e, input), *expected, "input {input:?}");
        }
    }
}

/// The `redis-server` binary's command line: its name, defaults and the flags
/// it takes beyond the shared ones.
pub const SPEC: crate::cli::Spec = crate::cli::Spec {
    bin: "redis-server",
    name: "redis",
    default_port: 6380,
    udp: false,
    backend: false,
    idle_timeout: 300,
    header_timeout: None,
    connect_timeout: None,
    alpn: &[],
    extra: None,
};

#[cfg(test)]
mod tests {
    use super::testing::{assert_replies, engine, reply, run};
    use super::*;

    #[test]
    fn basic_commands() {
        let mut e = engine();
        assert_replies(
            &mut e,
            &[
                ("PING\r\n", "+PONG\r\n"),
                ("ping hi\r\n", "$2\r\nhi\r\n"),
                (
                    "SET k v\r\nGET k\r\nGET nope\r\n",
                    "+OK\r\n$1\r\nv\r\n$-1\r\n",
                ),
                (
                    "EXISTS k k nope\r\nDEL k nope\r\nEXISTS k\r\n",
                    ":2\r\n:1\r\n:0\r\n",
                ),
                (
                    "INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 3\r\n",
                    ":1\r\n:11\r\n:10\r\n:7\r\n",
                ),
                (
                    "MSET a 1 b 2\r\nMGET a x b\r\n",
                    "+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n",
                ),
                ("DBSIZE\r\nFLUSHALL\r\nDBSIZE\r\n", ":3\r\n+OK\r\n:0\r\n"),
                (
                    "SELECT 0\r\nSELECT 1\r\n",
                    "+OK\r\n-ERR DB index is out of range\r\n",
                ),
                ("ECHO \"a b\"\r\n", "$3\r\na b\r\n"),
            ],
        );
    }

    #[test]
    fn protocol_error_closes() {
        let (out, action) = run(&mut engine(), b"PING\r\n*1\r\n$x\r\nPING\r\n");
        assert_eq!(out, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
        assert_eq!(action, Action::Close);
    }

    #[test]
    fn pipelined_replies_stop_at_the_output_mark() {
        let high = 100_000;
        let mut e = engine().with_output_high_water(high);
        let value = "v".repeat(10_000);
        assert_eq!(reply(&mut e, &format!("SET k {value}\r\n")), "+OK\r\n");
        let one = format!("${}\r\n{value}\r\n", value.len());
        let mut s = Session::default();
        let mut out = Vec::new();
        // 1000 GETs: 10 MB of replies if all ran.
        let input = "GET k\r\n".repeat(1000);
        assert_eq!(e.feed(&mut s, input.as_bytes(), &mut out), Action::None);
        assert!(s.is_held());
        assert!(out.len() <= high + one.len(), "{} queued", out.len());
        let mut all = std::mem::take(&mut out);
        // New input waits behind the held input.
        assert_eq!(e.feed(&mut s, b"PING\r\n", &mut all), Action::None);
        while s.is_held() {
            assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
            assert!(out.len() <= high + one.len());
            all.append(&mut out);
        }
        assert_eq!(
            all,
            [one.repeat(1000), "+PONG\r\n".into()].concat().as_bytes()
        );
        assert_eq!(s.held_input(), 0);

        // One MGET of 1000 values is streamed in pieces of about the mark.
        let input = format!("MGET {}\r\nPING\r\n", "k ".repeat(1000));
        assert_eq!(e.feed(&mut s, input.as_bytes(), &mut out), Action::None);
        assert!(s.is_held() && out.len() <= high + one.len());
        let mut all = std::mem::take(&mut out);
        let mut pieces = 1;
        while s.is_held() {
            assert_eq!(e.feed(&mut s, &[], &mut out), Action::None);
            assert!(out.len() <= high + one.len(), "{} queued", out.len());
            all.append(&mut out);
            pieces += 1;
        }
        assert!(pieces >= 10, "{pieces}");
        let expected = [
            "*1000\r\n".to_string(),
            one.repeat(1000),
            "+PONG\r\n".into(),
        ]
        .concat();
        assert_eq!(all, expected.as_bytes());
        assert_eq!(s.held_input(), 0);
    }

    #[test]
    fn split_input_gives_the_same_replies() {
        let input =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let whole = reply(&mut engine(), std::str::from_utf8(input).unwrap());
        for chunk in 1..input.len() {
            let mut e = engine();
            let mut s = Session::default();
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                assert_eq!(e.feed(&mut s, piece, &mut out), Action::None);
            }
            assert_eq!(String::from_utf8_lossy(&out), whole, "chunk {chunk}");
            assert!(s.input.is_empty());
        }
    }

    #[test]
    fn query_buffer_limit_closes() {
        let limits = Limits {
            query_buffer_limit: 64,
            ..Limits::default()
        };
        let mut e = Engine::new(Store::for_loops(1), limits);
        let mut s = Session::default();
        let mut out = Vec::new();
        assert_eq!(
            e.feed(&mut s, b"*2\r\n$3\r\nGET\r\n$100\r\n", &mut out),
            Action::None
        );
        assert_eq!(e.feed(&mut s, &[b'x'; 60], &mut out), Action::Close);
        assert!(out.is_empty());
    }

    #[test]
    fn large_value_is_parsed_once_it_has_arrived() {
        let mut e = engine();
        let mut s = Session::default();
        let mut out = Vec::new();
        let value = vec![b'v'; 1 << 20];
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n");
        for piece in input.chunks(4096) {
            assert_eq!(e.feed(&mut s, piece, &mut out), Action::None);
            if out.is_empty() {
                assert_eq!(s.need, input.len());
            }
        }
        assert_eq!(out, b"+OK\r\n");
        assert!(s.input.is_empty());
    }
}
