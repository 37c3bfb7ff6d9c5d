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
//! the connection's [`InputStream`] only when a request is split across
//! reads.
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

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evio_core::{Action, Conn, EventHandler, InputStream};

use crate::resp::{self, Argv, Limits, Parsed, Parser};
use crate::store::{IncrError, SetCond, Store, Ttl};
use crate::Sink;

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

/// Per-connection state: input held over from earlier reads. 48 bytes, no
/// heap memory while the connection is idle.
#[derive(Debug, Default)]
pub struct Session {
    input: InputStream,
    /// Don't parse again until the held input reaches this many bytes.
    need: usize,
    /// The next element of a streamed `MGET` (the request at the front of
    /// `input`); 0 when none is in progress.
    cursor: u32,
    /// Execution stopped at the output high-water mark with input held:
    /// feed the session again (with no new input) once output has drained.
    held: bool,
}

impl Session {
    /// Whether requests are waiting for the output to drain: the server
    /// then feeds the session again, with no new input, from `on_drained`.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Bytes of input held: an unfinished request, or requests not executed
    /// yet because the output is above the high-water mark.
    pub fn held_input(&self) -> usize {
        self.input.len()
    }
}

/// The protocol engine of one event loop: parser, store and limits. It
/// turns input into replies written to a [`Sink`], so it runs the same over
/// a [`Conn`], in tests, fuzzers and benchmarks.
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
    /// high-water mark; the rest of the input is kept, and
    /// [`Session::is_held`] is true. Feed the session again, with an empty
    /// `packet`, once the output has drained (`on_drained`) to continue
    /// with the held input; new input fed meanwhile is appended to it.
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

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`, with Redis 7's checks.
/// There is nothing to save, so the server stops at once (no reply: the
/// connection closes as it stops). `ABORT` finds no shutdown in progress.
fn shutdown<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) -> Action {
    let (mut nosave, mut save, mut flags, mut abort) = (false, false, false, false);
    for arg in argv.iter_from(1) {
        if arg.eq_ignore_ascii_case(b"nosave") {
            nosave = true;
        } else if arg.eq_ignore_ascii_case(b"save") {
            save = true;
        } else if is_one_of(arg, &[b"now", b"force"]) {
            flags = true;
        } else if arg.eq_ignore_ascii_case(b"abort") {
            abort = true;
        } else {
            resp::write_error(out, "ERR syntax error");
            return Action::None;
        }
    }
    if (abort && (nosave || save || flags)) || (nosave && save) {
        resp::write_error(out, "ERR syntax error");
        return Action::None;
    }
    if abort {
        resp::write_error(out, "ERR No shutdown in progress.");
        return Action::None;
    }
    Action::Shutdown
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT
/// unix-ms | KEEPTTL]`, parsed as Redis 7's `parseExtendedStringArguments`
/// does: options in any order, a repeated option allowed (the last
/// expiry wins), conflicting ones a syntax error. All options are read
/// before the expiry's value is checked, so a syntax error anywhere wins
/// over a bad number.
fn set<O: Sink + ?Sized>(store: &mut Store, argv: Argv<'_>, out: &mut O) {
    const NX: u8 = 1;
    const XX: u8 = 2;
    const GET: u8 = 4;
    const KEEPTTL: u8 = 8;
    const EX: u8 = 16;
    const PX: u8 = 32;
    const EXAT: u8 = 64;
    const PXAT: u8 = 128;
    let mut flags = 0u8;
    let mut expire: Option<&[u8]> = None;
    let mut j = 3;
    while j < argv.len() {
        let opt = argv.get(j);
        let next = j + 1 < argv.len();
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        // Each expiry excludes the other kinds (and KEEPTTL), not itself.
        let expiry = |own: u8| flags & (KEEPTTL | EX | PX | EXAT | PXAT) & !own == 0 && next;
        let flag = if is(b"nx") && flags & XX == 0 {
            NX
        } else if is(b"xx") && flags & NX == 0 {
            XX
        } else if is(b"get") {
            GET
        } else if is(b"keepttl") && flags & (EX | PX | EXAT | PXAT) == 0 {
            KEEPTTL
        } else if is(b"ex") && expiry(EX) {
            EX
        } else if is(b"px") && expiry(PX) {
            PX
        } else if is(b"exat") && expiry(EXAT) {
            EXAT
        } else if is(b"pxat") && expiry(PXAT) {
            PXAT
        } else {
            return resp::write_error(out, "ERR syntax error");
        };
        flags |= flag;
        if flag & (EX | PX | EXAT | PXAT) != 0 {
            expire = Some(argv.get(j + 1));
            j += 1;
        }
        j += 1;
    }
    let ttl = match expire {
        None if flags & KEEPTTL != 0 => Ttl::Keep,
        None => Ttl::Persist,
        Some(v) => {
            let Some(n) = resp::parse_i64(v) else {
                return resp::write_error(out, "ERR value is not an integer or out of range");
            };
            match expire_at(n, flags & (EX | EXAT) != 0, flags & (EXAT | PXAT) != 0) {
                Some(t) => Ttl::At(t),
                None => return resp::write_error(out, "ERR invalid expire time in 'set' command"),
            }
        }
    };
    let cond = match flags & (NX | XX) {
        NX => SetCond::IfAbsent,
        XX => SetCond::IfPresent,
        _ => SetCond::Always,
    };
    let get = flags & GET != 0;
    let (key, value) = (argv.get(1), argv.get(2));
    let done = store.with(key, |db| {
        if get {
            // The old value is the reply, whether or not the key is set.
            db.read(key, |v| match v {
                Some(v) => resp::write_bulk(out, v),
                None => out.write(resp::NIL),
            });
        }
        db.set_ttl(key, value, ttl, cond)
    });
    if !get {
        out.write(if done { resp::OK } else { resp::NIL });
    }
}

/// The instant an expiry of `n` seconds (`secs`) or milliseconds, relative
/// or Unix time (`absolute`), stands for; `None` where Redis answers
/// `invalid expire time`: `n <= 0`, or a time past `i64::MAX` milliseconds
/// since the epoch. A time in the past is now (the key expires at once).
fn expire_at(n: i64, secs: bool, absolute: bool) -> Option<Instant> {
    if n <= 0 || (secs && n > i64::MAX / 1000) {
        return None;
    }
    let ms = if secs { n * 1000 } else { n };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // Redis works in Unix milliseconds: a relative time is added to now.
    let unix_ms = if absolute {
        ms
    } else {
        ms.checked_add(now_ms)?
    };
    let ahead = Duration::from_millis(unix_ms.saturating_sub(now_ms).max(0) as u64);
    // Beyond what `Instant` can hold is never, for any practical purpose.
    let now = Instant::now();
    Some(
        now.checked_add(ahead)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
    )
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
            engine: Engine::new(Store::for_loops(loops), config.limits)
                .with_output_high_water(config.output_high_water),
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

    // ---- output bound: resume held requests once the output drained ----
    fn on_drained(&mut self, conn: &mut Conn<'_, Session>) -> Action {
        if !conn.context().is_held() {
            return Action::None;
        }
        let mut session = std::mem::take(conn.context_mut());
        let action = self.engine.feed(&mut session, &[], conn);
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
        for ok in [
            "SHUTDOWN NOSAVE",
            "shutdown save now force",
            "SHUTDOWN NOW NOW",
        ] {
            assert_eq!(
                run(&mut engine(), format!("{ok}\r\nPING\r\n").as_bytes()),
                (String::new(), Action::Shutdown),
                "{ok}"
            );
        }
        // Refused: the server keeps running and the connection stays open.
        for (cmd, err) in [
            ("SHUTDOWN ABORT", "-ERR No shutdown in progress.\r\n"),
            ("SHUTDOWN foo", "-ERR syntax error\r\n"),
            ("SHUTDOWN ABORT NOW", "-ERR syntax error\r\n"),
            ("SHUTDOWN SAVE NOSAVE", "-ERR syntax error\r\n"),
        ] {
            assert_eq!(
                run(&mut engine(), format!("{cmd}\r\nPING\r\n").as_bytes()),
                (format!("{err}+PONG\r\n"), Action::None),
                "{cmd}"
            );
        }
    }

    #[test]
    fn set_options_as_redis_7() {
        let mut e = engine();
        let mut r = |cmd: &str| reply(&mut e, &format!("{cmd}\r\n"));
        assert_eq!(r("SET k v NX NX"), "+OK\r\n");
        assert_eq!(r("SET k w XX XX EX 100 EX 200"), "+OK\r\n");
        assert_eq!(r("SET k x GET"), "$1\r\nw\r\n");
        assert_eq!(r("SET n x NX GET"), "$-1\r\n");
        assert_eq!(r("SET n y NX GET"), "$1\r\nx\r\n");
        assert_eq!(r("GET n"), "$1\r\nx\r\n");
        assert_eq!(r("SET k v KEEPTTL"), "+OK\r\n");
        assert_eq!(
            r("SET k v EXAT 99999999999 PXAT 1"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(r("SET k v KEEPTTL EX 1"), "-ERR syntax error\r\n");
        assert_eq!(r("SET k v EX 1 KEEPTTL"), "-ERR syntax error\r\n");
        // Syntax errors win over bad numbers, wherever they are.
        assert_eq!(r("SET k v EX x FOO"), "-ERR syntax error\r\n");
        assert_eq!(
            r("SET k v EX x"),
            "-ERR value is not an integer or out of range\r\n"
        );
        for bad in [
            "PX 9223372036854775807",
            "EX 9223372036854775",
            "EX 9223372036854776",
            "PX 0",
            "EXAT -1",
            "PXAT 0",
            "EXAT 9223372036854776",
        ] {
            assert_eq!(
                r(&format!("SET k v {bad}")),
                "-ERR invalid expire time in 'set' command\r\n",
                "{bad}"
            );
        }
        // An absolute time in the past: set, and gone at once.
        assert_eq!(r("SET p v PXAT 1000"), "+OK\r\n");
        assert_eq!(r("GET p"), "$-1\r\n");
        assert_eq!(r("SET f v PXAT 9223372036854775807"), "+OK\r\n");
        assert_eq!(r("GET f"), "$1\r\nv\r\n");
    }

    #[test]
    fn dbsize_is_exact() {
        let mut e = engine();
        assert_eq!(
            reply(&mut e, "SET a 1 PX 20\r\nSET b 2\r\nDBSIZE\r\n"),
            "+OK\r\n+OK\r\n:2\r\n"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(reply(&mut e, "DBSIZE\r\n"), ":1\r\n");
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
