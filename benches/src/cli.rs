//! The binaries' command lines, on [`lexopt`], in the house style of the
//! example servers (`evio-examples`' `cli`): `--name value` and
//! `--name=value`; `-h` / `--help` prints the explanations on stdout and
//! exits 0; `-V` / `--version` prints `NAME X.Y.Z`; a bad flag or value
//! exits with status 2 and one line on stderr.
//!
//! Each binary walks the arguments itself (a `match` on the flag names) and
//! uses [`value`] for a flag's value and [`unexpected`] for the last arm;
//! [`parse_or_exit`] turns the outcome into output and an exit status.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use lexopt::Arg::{Long, Short};
use lexopt::{Arg, Parser};

/// What went wrong on the command line, or a request for help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// `-h` / `--help`.
    Help,
    /// `-V` / `--version`.
    Version,
    /// A bad flag or value, explained in one line.
    Bad(String),
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError::Bad(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(msg: String) -> Self {
        CliError::Bad(msg)
    }
}

impl From<&str> for CliError {
    fn from(msg: &str) -> Self {
        CliError::Bad(msg.to_string())
    }
}

/// The value of `flag` (the next argument, or what follows `=`), parsed.
///
/// # Errors
/// [`CliError::Bad`] naming the flag when the value is missing, not UTF-8
/// or does not parse as a `T`.
pub fn value<T: FromStr>(parser: &mut Parser, flag: &str) -> Result<T, CliError> {
    let raw = parser
        .value()
        .map_err(|_| CliError::Bad(format!("{flag} needs a value")))?;
    let text = raw
        .into_string()
        .map_err(|v| CliError::Bad(format!("{flag}: the value is not UTF-8: {v:?}")))?;
    text.parse()
        .map_err(|_| CliError::Bad(format!("invalid value for {flag}: {text:?}")))
}

/// What `--mode echo|redis|http` names (floor-server, soak-client): the
/// protocol served or spoken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Bytes back as they came.
    Echo,
    /// RESP (Redis).
    Redis,
    /// HTTP/1.1.
    Http,
}

/// `--mode`'s names, for [`choice`].
pub const MODES: [(&str, Mode); 3] = [
    ("echo", Mode::Echo),
    ("redis", Mode::Redis),
    ("http", Mode::Http),
];

/// The value of `flag`, one of the names in `choices`: what it stands for.
///
/// # Errors
/// [`CliError::Bad`] naming the flag and the choices.
pub fn choice<T: Copy>(
    parser: &mut Parser,
    flag: &str,
    choices: &[(&str, T)],
) -> Result<T, CliError> {
    let v: String = value(parser, flag)?;
    let found = choices.iter().find(|(name, _)| *name == v);
    found.map(|&(_, t)| t).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        CliError::Bad(format!(
            "invalid value for {flag}: {v:?} (one of {})",
            names.join(", ")
        ))
    })
}

/// The `main` of a binary that runs on Linux only: `linux::main()` there
/// (the binary's `linux` module), [`linux_only`] elsewhere.
#[macro_export]
macro_rules! linux_main {
    ($name:literal, $why:literal) => {
        #[cfg(target_os = "linux")]
        fn main() -> std::process::ExitCode {
            linux::main()
        }

        #[cfg(not(target_os = "linux"))]
        fn main() -> std::process::ExitCode {
            $crate::cli::linux_only($name, $why)
        }
    };
}

/// The value of `flag` as `HOST:PORT`, resolved (its first address).
///
/// # Errors
/// [`CliError::Bad`] naming the flag when it does not resolve.
pub fn socket_addr(parser: &mut Parser, flag: &str) -> Result<SocketAddr, CliError> {
    let v: String = value(parser, flag)?;
    let mut addrs = v
        .to_socket_addrs()
        .map_err(|e| CliError::Bad(format!("{flag} {v}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| CliError::Bad(format!("{flag} {v}: no address")))
}

/// The last arm of a binary's `match`: `-h`/`--help` and `-V`/`--version`
/// become requests, anything else a bad-flag error.
pub fn unexpected(arg: Arg) -> CliError {
    match arg {
        Short('h') | Long("help") => CliError::Help,
        Short('V') | Long("version") => CliError::Version,
        other => CliError::Bad(other.unexpected().to_string()),
    }
}

/// A parser over `args` (without the program name): for tests and for
/// parsers that take their arguments from elsewhere.
pub fn parser<I, S>(args: I) -> Parser
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Parser::from_args(args.into_iter().map(Into::into))
}

/// `NAME X.Y.Z`: the `--version` line.
pub fn version_line(name: &str) -> String {
    format!("{name} {}", env!("CARGO_PKG_VERSION"))
}

/// Runs `parse` on the process's arguments. On `--help` prints `help` and
/// exits 0; on `--version` prints [`version_line`] and exits 0; on a bad
/// flag prints `NAME: MESSAGE (NAME --help lists the flags)` on stderr and
/// exits 2.
pub fn parse_or_exit<T>(
    name: &str,
    help: &str,
    parse: impl FnOnce(&mut Parser) -> Result<T, CliError>,
) -> T {
    match parse(&mut Parser::from_env()) {
        Ok(v) => v,
        Err(CliError::Help) => {
            println!("{}", help.trim_end());
            std::process::exit(0);
        }
        Err(CliError::Version) => {
            println!("{}", version_line(name));
            std::process::exit(0);
        }
        Err(CliError::Bad(msg)) => {
            eprintln!("{name}: {msg} (`{name} --help` lists the flags)");
            std::process::exit(2);
        }
    }
}

/// The `main` of a Linux-only binary elsewhere: says so (what it needs,
/// `why`) on stderr; exit status 1.
pub fn linux_only(name: &str, why: &str) -> std::process::ExitCode {
    eprintln!("{name}: linux only ({why})");
    std::process::ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--conns N --size=N --stream` and the two requests.
    fn parse(args: &[&str]) -> Result<(usize, usize, bool), CliError> {
        let mut p = parser(args.iter().copied());
        let (mut conns, mut size, mut stream) = (50, 64, false);
        while let Some(arg) = p.next()? {
            match arg {
                Long("conns") => conns = value(&mut p, "--conns")?,
                Long("size") => size = value(&mut p, "--size")?,
                Long("stream") => stream = true,
                other => return Err(unexpected(other)),
            }
        }
        Ok((conns, size, stream))
    }

    #[test]
    fn values_flags_and_requests() {
        assert_eq!(parse(&[]), Ok((50, 64, false)));
        assert_eq!(
            parse(&["--conns", "5", "--size=6", "--stream", "--conns", "7"]),
            Ok((7, 6, true))
        );
        assert_eq!(parse(&["-h"]), Err(CliError::Help));
        assert_eq!(parse(&["--version"]), Err(CliError::Version));
        assert_eq!(parse(&["-V"]), Err(CliError::Version));
    }

    #[test]
    fn errors_name_the_flag() {
        let bad = |args: &[&str]| match parse(args) {
            Err(CliError::Bad(m)) => m,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(bad(&["--conns", "x"]), "invalid value for --conns: \"x\"");
        assert_eq!(bad(&["--conns"]), "--conns needs a value");
        assert!(bad(&["--bogus"]).contains("--bogus"));
        assert!(bad(&["stray"]).contains("stray"));
        assert!(bad(&["--stream=1"]).contains("--stream"));
        assert!(version_line("x").starts_with("x "));
        let mut p = parser(["--mode", "redis", "--mode", "ftp", "--addr", "127.0.0.1:9"]);
        let modes = [("echo", 0), ("redis", 1)];
        p.next().unwrap();
        assert_eq!(choice(&mut p, "--mode", &modes), Ok(1));
        p.next().unwrap();
        assert!(choice(&mut p, "--mode", &modes).is_err());
        p.next().unwrap();
        assert_eq!(
            socket_addr(&mut p, "--addr"),
            Ok(([127, 0, 0, 1], 9).into())
        );
    }
}
