//! The commands with options and their Redis 7 checks (`SET`, `SHUTDOWN`,
//! `INCR`…), the tooling commands (`COMMAND`, `CONFIG`, `CLIENT`), and the
//! texts of Redis's errors.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evio_core::Action;

use crate::resp::{self, Argv};
use crate::store::{IncrError, SetCond, Store, Ttl};
use crate::Sink;

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`, with Redis 7's checks.
/// There is nothing to save, so the server stops at once (no reply: the
/// connection closes as it stops). `ABORT` finds no shutdown in progress.
pub(super) fn shutdown<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) -> Action {
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
pub(super) fn set<O: Sink + ?Sized>(store: &mut Store, argv: Argv<'_>, out: &mut O) {
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

pub(super) fn incr<O: Sink + ?Sized>(store: &mut Store, key: &[u8], delta: i64, out: &mut O) {
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
pub(super) fn command<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
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
pub(super) fn config<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
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
pub(super) fn client<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
    let sub = argv.get(1);
    if is_one_of(sub, &[b"setname", b"setinfo"]) {
        out.write(resp::OK);
    } else if sub.eq_ignore_ascii_case(b"getname") {
        out.write(resp::NIL);
    } else {
        unknown_subcommand(sub, "CLIENT", out);
    }
}

pub(super) fn is_one_of(arg: &[u8], names: &[&[u8]]) -> bool {
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
pub(super) fn unknown_command<O: Sink + ?Sized>(argv: Argv<'_>, out: &mut O) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_replies, engine, reply, run};
    use evio_core::Action;
    use std::time::Duration;

    #[test]
    fn set_options() {
        let mut e = engine();
        assert_replies(
            &mut e,
            &[
                (
                    "SET k v NX\r\nSET k w NX\r\nGET k\r\n",
                    "+OK\r\n$-1\r\n$1\r\nv\r\n",
                ),
                (
                    "SET x v XX\r\nSET k w XX\r\nGET k\r\n",
                    "$-1\r\n+OK\r\n$1\r\nw\r\n",
                ),
            ],
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
    fn tooling_commands() {
        let mut e = engine();
        assert_replies(
            &mut e,
            &[
                ("COMMAND DOCS\r\nCOMMAND\r\n", "*0\r\n*0\r\n"),
                (
                    "CONFIG GET save\r\nCONFIG GET appendonly\r\n",
                    "*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
                ),
                ("CONFIG GET nope\r\n", "*0\r\n"),
                (
                    "CONFIG FOO\r\n",
                    "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n",
                ),
            ],
        );
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
        assert_replies(
            &mut e,
            &[
                (
                    "NOSUCHCOMMANDATALLXYZ\r\n",
                    "-ERR unknown command 'NOSUCHCOMMANDATALLXYZ', with args beginning with: \r\n",
                ),
                (
                    "MSET a\r\n",
                    "-ERR wrong number of arguments for 'mset' command\r\n",
                ),
                (
                    "PING a b\r\n",
                    "-ERR wrong number of arguments for 'ping' command\r\n",
                ),
            ],
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
}
