//! The Redis example: a RESP2 server for string keys.
//!
//! Commands: `PING [msg]`, `ECHO`, `SET key value [EX s | PX ms] [NX | XX]`,
//! `GET`, `DEL`, `EXISTS`, `INCR`, `DECR`, `INCRBY`, `DECRBY`, `MSET`,
//! `MGET`, `FLUSHDB`, `FLUSHALL`, `DBSIZE`, `SELECT 0`, `QUIT`,
//! `SHUTDOWN`, and enough of `COMMAND`, `CONFIG GET` and `CLIENT` for
//! `redis-cli`, `redis-benchmark` and client libraries.
//!
//! The hot path allocates nothing but the stored data itself: requests are
//! parsed in place from the loop's read buffer ([`resp::Parser`]), replies
//! are static strings or formatted on the stack, and input is copied into
//! the connection's [`InputStream`] only when a request is split across
//! reads.

use std::time::{Duration, Instant};

use evio_core::{Action, Conn, EventHandler, InputStream};

use crate::resp::{self, Argv, Limits, Parsed, Parser};
use crate::store::{IncrError, SetCond, Store};
use crate::Sink;

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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            loops: 0,
            limits: Limits::default(),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// Per-connection state: input held over from earlier reads. 40 bytes, no
/// heap memory while the connection is idle.
#[derive(Debug, Default)]
pub struct Session {
    input: InputStream,
    /// Don't parse again until the held input reaches this many bytes.
    need: usize,
}

/// The protocol engine of one event loop: parser, store and limits. It
/// turns input into replies written to a [`Sink`], so it runs the same over
/// a [`Conn`], in tests, fuzzers and benchmarks.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    parser: ParserSlot,
    limits: Limits,
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
    /// An engine over `store`.
    pub fn new(store: Store, limits: Limits) -> Engine {
        Engine {
            store,
            parser: ParserSlot::default(),
            limits,
        }
    }

    /// The store.
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Handles one read of input for `session`, writing replies to `out`.
    /// Returns `Close` after `QUIT` or a protocol error, `Shutdown` after
    /// `SHUTDOWN`.
    pub fn feed<O: Sink + ?Sized>(
        &mut self,
        session: &mut Session,
        packet: &[u8],
        out: &mut O,
    ) -> Action {
        let limits = self.limits;
        if !session.input.is_empty() && session.input.len() + packet.len() < session.need {
            // Still short of what the pending request needs: just hold it.
            let _ = session.input.begin(packet);
            session.input.end(packet, 0);
            return self.check_held(session);
        }
        let data = session.input.begin(packet);
        let mut pos = 0;
        let mut action = Action::None;
        session.need = 0;
        while pos < data.len() {
            let buf = &data[pos..];
            match self.parser.0.parse(buf, &limits) {
                Ok(Parsed::Command { len, inline }) => {
                    pos += len;
                    action = execute(&mut self.store, self.parser.0.argv(buf, inline), out);
                    if action != Action::None {
                        break;
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
            Action::Close
        } else {
            Action::None
        }
    }
}

/// Executes one command.
fn execute<O: Sink + ?Sized>(store: &mut Store, argv: Argv<'_>, out: &mut O) -> Action {
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
        return Action::None;
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
            resp::write_array(out, argc - 1);
            for key in argv.iter_from(1) {
                store.with(key, |db| {
                    db.read(key, |v| match v {
                        Some(v) => resp::write_bulk(out, v),
                        None => out.write(resp::NIL),
                    })
                });
            }
        }
        b"flushdb" | b"flushall" => {
            if argc > 2 || (argc == 2 && !is_one_of(argv.get(1), &[b"async", b"sync"])) {
                resp::write_error(out, "ERR syntax error");
                return Action::None;
            }
            store.each(|db| db.clear());
            out.write(resp::OK);
        }
        b"dbsize" => resp::write_int(out, store.len() as i64),
        b"select" => match resp::parse_i64(argv.get(1)) {
            Some(0) => out.write(resp::OK),
            Some(_) => resp::write_error(out, "ERR DB index is out of range"),
            None => resp::write_error(out, "ERR value is not an integer or out of range"),
        },
        b"quit" => {
            out.write(resp::OK);
            return Action::Close;
        }
        // No reply: the connection closes as the server stops.
        b"shutdown" => return Action::Shutdown,
        b"command" => command(argv, out),
        b"config" => config(argv, out),
        b"client" => client(argv, out),
        _ => unknown_command(argv, out),
    }
    Action::None
}

/// `SET key value [EX s | PX ms] [NX | XX]`
fn set<O: Sink + ?Sized>(store: &mut Store, argv: Argv<'_>, out: &mut O) {
    let mut cond = SetCond::Always;
    let mut ttl: Option<Duration> = None;
    let mut i = 3;
    while i < argv.len() {
        let opt = argv.get(i);
        let has_value = i + 1 < argv.len();
        if opt.eq_ignore_ascii_case(b"nx") && cond == SetCond::Always {
            cond = SetCond::IfAbsent;
        } else if opt.eq_ignore_ascii_case(b"xx") && cond == SetCond::Always {
            cond = SetCond::IfPresent;
        } else if is_one_of(opt, &[b"ex", b"px"]) && ttl.is_none() && has_value {
            let Some(n) = resp::parse_i64(argv.get(i + 1)) else {
                return resp::write_error(out, "ERR value is not an integer or out of range");
            };
            let ms = if opt.eq_ignore_ascii_case(b"ex") {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            match ms {
                Some(ms) if ms > 0 => ttl = Some(Duration::from_millis(ms as u64)),
                _ => return resp::write_error(out, "ERR invalid expire time in 'set' command"),
            }
            i += 1;
        } else {
            return resp::write_error(out, "ERR syntax error");
        }
        i += 1;
    }
    let expires = match ttl.map(|d| Instant::now().checked_add(d)) {
        Some(None) => return resp::write_error(out, "ERR invalid expire time in 'set' command"),
        Some(t) => t,
        None => None,
    };
    let (key, value) = (argv.get(1), argv.get(2));
    if store.with(key, |db| db.set(key, value, expires, cond)) {
        out.write(resp::OK);
    } else {
        out.write(resp::NIL);
    }
}

fn incr<O: Sink + ?Sized>(store: &mut Store, key: &[u8], delta: i64, out: &mut O) {
    match store.with(key, |db| db.incr_by(key, delta)) {
        Ok(n) => resp::write_int(out, n),
        Err(IncrError::NotAnInteger) => {
            resp::write_error(out, "ERR value is not an integer or out of range")
        }
        Err(IncrError::Overflow) => {
            resp::write_error(out, "ERR increment or decrement would overflow")
        }
    }
}

/// `COMMAND`, `COMMAND DOCS`, `COMMAND COUNT`: empty answers, which is all
/// `redis-cli` needs (it uses them for hints).
fn command<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
    if argv.len() == 1 {
        return out.write(resp::EMPTY_ARRAY);
    }
    let sub = argv.get(1);
    if is_one_of(sub, &[b"docs", b"info", b"list"]) {
        out.write(resp::EMPTY_ARRAY);
    } else if sub.eq_ignore_ascii_case(b"count") {
        resp::write_int(out, 0);
    } else {
        unknown_subcommand(sub, "COMMAND", out);
    }
}

/// The configuration `CONFIG GET` reports (`redis-benchmark` asks for `save`
/// and `appendonly`).
const CONFIG: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("proto-max-bulk-len", "536870912"),
];

/// `CONFIG GET param...`; `CONFIG SET` and `RESETSTAT` are accepted and
/// ignored.
fn config<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
    let sub = argv.get(1);
    if sub.eq_ignore_ascii_case(b"get") {
        if argv.len() < 3 {
            return resp::write_error(
                out,
                "ERR wrong number of arguments for 'config|get' command",
            );
        }
        let wanted = |name: &str| {
            argv.iter_from(2)
                .any(|p| p == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
        };
        let hits = CONFIG.iter().filter(|(name, _)| wanted(name));
        resp::write_array(out, hits.clone().count() * 2);
        for (name, value) in hits {
            resp::write_bulk(out, name.as_bytes());
            resp::write_bulk(out, value.as_bytes());
        }
    } else if is_one_of(sub, &[b"set", b"resetstat"]) {
        out.write(resp::OK);
    } else {
        unknown_subcommand(sub, "CONFIG", out);
    }
}

/// `CLIENT SETNAME` / `SETINFO` (sent by client libraries): accepted and
/// ignored.
fn client<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
    let sub = argv.get(1);
    if is_one_of(sub, &[b"setname", b"setinfo"]) {
        out.write(resp::OK);
    } else if sub.eq_ignore_ascii_case(b"getname") {
        out.write(resp::NIL);
    } else {
        unknown_subcommand(sub, "CLIENT", out);
    }
}

fn is_one_of(arg: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| arg.eq_ignore_ascii_case(n))
}

/// Appends `s` cut to `max` bytes, with CR and LF turned into spaces so that
/// the error stays one line (as Redis does).
fn push_sanitized(msg: &mut Vec<u8>, s: &[u8], max: usize) {
    msg.extend(
        s[..s.len().min(max)]
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn unknown_subcommand<O: Sink + ?Sized>(sub: &[u8], cmd: &str, out: &mut O) {
    let mut msg = b"-ERR unknown subcommand '".to_vec();
    push_sanitized(&mut msg, sub, 128);
    msg.extend_from_slice(format!("'. Try {cmd} HELP.\r\n").as_bytes());
    out.write(&msg);
}

/// Redis 7's text: `ERR unknown command 'foo', with args beginning with:
/// 'a' 'b' `, arguments quoted until 128 bytes of them are shown.
fn unknown_command<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
    let mut msg = b"-ERR unknown command '".to_vec();
    push_sanitized(&mut msg, argv.get(0), 128);
    msg.extend_from_slice(b"', with args beginning with: ");
    let start = msg.len();
    for arg in argv.iter_from(1) {
        let shown = msg.len() - start;
        if shown >= 128 {
            break;
        }
        msg.push(b'\'');
        push_sanitized(&mut msg, arg, 128 - shown);
        msg.extend_from_slice(b"' ");
    }
    msg.extend_from_slice(b"\r\n");
    out.write(&msg);
}

/// The Redis server: an [`Engine`] per loop, sweeping expired keys on loop
/// 0's tick.
#[derive(Debug, Clone)]
pub struct RedisServer {
    engine: Engine,
    sweep_interval: Duration,
}

impl RedisServer {
    /// A server for `config`: its store is local for one loop and sharded
    /// for several.
    pub fn new(config: Config) -> RedisServer {
        let loops = match config.loops {
            n if n < 0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        RedisServer {
            engine: Engine::new(Store::for_loops(loops), config.limits),
            sweep_interval: config.sweep_interval,
        }
    }
}

impl EventHandler for RedisServer {
    type Context = Session;

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> Action {
        // The engine needs the session and the connection's output at once:
        // move the (small) session out of the connection for the call.
        let mut session = std::mem::take(conn.context_mut());
        let action = self.engine.feed(&mut session, input, conn);
        *conn.context_mut() = session;
        action
    }

    fn on_tick(&mut self) -> (Option<Duration>, Action) {
        self.engine.store().sweep();
        (Some(self.sweep_interval), Action::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new(Store::for_loops(1), Limits::default())
    }

    fn run(e: &mut Engine, input: &[u8]) -> (String, Action) {
        let mut out = Vec::new();
        let a = e.feed(&mut Session::default(), input, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), a)
    }

    fn reply(e: &mut Engine, input: &str) -> String {
        run(e, input.as_bytes()).0
    }

    #[test]
    fn idle_connection_state_is_small() {
        assert!(std::mem::size_of::<Session>() <= 48);
    }

    #[test]
    fn basic_commands() {
        let mut e = engine();
        assert_eq!(reply(&mut e, "PING\r\n"), "+PONG\r\n");
        assert_eq!(reply(&mut e, "ping hi\r\n"), "$2\r\nhi\r\n");
        assert_eq!(
            reply(&mut e, "SET k v\r\nGET k\r\nGET nope\r\n"),
            "+OK\r\n$1\r\nv\r\n$-1\r\n"
        );
        assert_eq!(
            reply(&mut e, "EXISTS k k nope\r\nDEL k nope\r\nEXISTS k\r\n"),
            ":2\r\n:1\r\n:0\r\n"
        );
        assert_eq!(
            reply(&mut e, "INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 3\r\n"),
            ":1\r\n:11\r\n:10\r\n:7\r\n"
        );
        assert_eq!(
            reply(&mut e, "MSET a 1 b 2\r\nMGET a x b\r\n"),
            "+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            reply(&mut e, "DBSIZE\r\nFLUSHALL\r\nDBSIZE\r\n"),
            ":3\r\n+OK\r\n:0\r\n"
        );
        assert_eq!(
            reply(&mut e, "SELECT 0\r\nSELECT 1\r\n"),
            "+OK\r\n-ERR DB index is out of range\r\n"
        );
        assert_eq!(reply(&mut e, "ECHO \"a b\"\r\n"), "$3\r\na b\r\n");
    }

    #[test]
    fn set_options() {
        let mut e = engine();
        assert_eq!(
            reply(&mut e, "SET k v NX\r\nSET k w NX\r\nGET k\r\n"),
            "+OK\r\n$-1\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            reply(&mut e, "SET x v XX\r\nSET k w XX\r\nGET k\r\n"),
            "$-1\r\n+OK\r\n$1\r\nw\r\n"
        );
        let err = |cmd: &str| reply(&mut engine(), cmd);
        assert_eq!(err("SET k v NX XX\r\n"), "-ERR syntax error\r\n");
        assert_eq!(err("SET k v EX 1 PX 1\r\n"), "-ERR syntax error\r\n");
        assert_eq!(err("SET k v EX\r\n"), "-ERR syntax error\r\n");
        assert_eq!(err("SET k v FOO\r\n"), "-ERR syntax error\r\n");
        assert_eq!(
            err("SET k v EX x\r\n"),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            err("SET k v EX 0\r\n"),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        assert_eq!(
            err("SET k v EX 9223372036854775807\r\n"),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        let mut e = engine();
        assert_eq!(
            reply(&mut e, "SET k v PX 30\r\nGET k\r\n"),
            "+OK\r\n$1\r\nv\r\n"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(reply(&mut e, "GET k\r\nDBSIZE\r\n"), "$-1\r\n:0\r\n");
    }

    #[test]
    fn errors_keep_the_connection() {
        let mut e = engine();
        let (out, action) = run(
            &mut e,
            b"foo a b\r\nGET\r\nINCR\r\nSET s x\r\nINCR s\r\nPING\r\n",
        );
        assert_eq!(
            out,
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n\
             -ERR wrong number of arguments for 'get' command\r\n\
             -ERR wrong number of arguments for 'incr' command\r\n\
             +OK\r\n-ERR value is not an integer or out of range\r\n+PONG\r\n"
        );
        assert_eq!(action, Action::None);
        assert_eq!(
            reply(&mut e, "NOSUCHCOMMANDATALLXYZ\r\n"),
            "-ERR unknown command 'NOSUCHCOMMANDATALLXYZ', with args beginning with: \r\n"
        );
        assert_eq!(
            reply(&mut e, "MSET a\r\n"),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert_eq!(
            reply(&mut e, "PING a b\r\n"),
            "-ERR wrong number of arguments for 'ping' command\r\n"
        );
        let long = format!("foo {}\r\n", "x".repeat(300));
        assert_eq!(
            reply(&mut e, &long),
            format!(
                "-ERR unknown command 'foo', with args beginning with: '{}' \r\n",
                "x".repeat(128)
            )
        );
    }

    #[test]
    fn protocol_error_closes() {
        let (out, action) = run(&mut engine(), b"PING\r\n*1\r\n$x\r\nPING\r\n");
        assert_eq!(out, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
        assert_eq!(action, Action::Close);
    }

    #[test]
    fn quit_and_shutdown() {
        assert_eq!(
            run(&mut engine(), b"QUIT\r\nPING\r\n"),
            ("+OK\r\n".into(), Action::Close)
        );
        assert_eq!(
            run(&mut engine(), b"SHUTDOWN\r\nPING\r\n"),
            (String::new(), Action::Shutdown)
        );
    }

    #[test]
    fn tooling_commands() {
        let mut e = engine();
        assert_eq!(reply(&mut e, "COMMAND DOCS\r\nCOMMAND\r\n"), "*0\r\n*0\r\n");
        assert_eq!(
            reply(&mut e, "CONFIG GET save\r\nCONFIG GET appendonly\r\n"),
            "*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        );
        assert_eq!(reply(&mut e, "CONFIG GET nope\r\n"), "*0\r\n");
        assert_eq!(
            reply(&mut e, "CONFIG FOO\r\n"),
            "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"
        );
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
