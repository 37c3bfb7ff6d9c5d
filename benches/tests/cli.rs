//! Every benches binary's command line as a process sees it: `--version`
//! prints `NAME X.Y.Z`, `--help` the explanations (exit 0), and a bad flag
//! or value exits with status 2 and one line on stderr. Nothing here starts
//! a load or a server.

use std::process::{Command, Output};

/// Each binary, a flag its help explains, and arguments with a bad value.
const BINARIES: [(&str, &str, &str, &[&str]); 7] = [
    (
        "loadgen",
        env!("CARGO_BIN_EXE_loadgen"),
        "--window",
        &["--addr", "127.0.0.1:9", "--conns", "x"],
    ),
    (
        "tokio-echo",
        env!("CARGO_BIN_EXE_tokio-echo"),
        "--threads",
        &["--port", "70000"],
    ),
    (
        "mio-echo",
        env!("CARGO_BIN_EXE_mio-echo"),
        "--port",
        &["--port"],
    ),
    (
        "floor-server",
        env!("CARGO_BIN_EXE_floor-server"),
        "--defer-accept",
        &["--mode", "ftp", "--port", "1"],
    ),
    (
        "soak-client",
        env!("CARGO_BIN_EXE_soak-client"),
        "--rate",
        &["--mode", "echo", "--addr", "127.0.0.1:9", "--ops", "-1"],
    ),
    (
        "bench",
        env!("CARGO_BIN_EXE_bench"),
        "--workloads",
        &["--workloads", "nope"],
    ),
    (
        "bench-compare",
        env!("CARGO_BIN_EXE_bench-compare"),
        "--noise",
        &["a.json", "b.json", "--noise", "-1"],
    ),
];

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What `bin flag` prints on stdout; it must exit 0.
fn stdout_of(name: &str, bin: &str, flag: &str) -> String {
    let out = run(bin, &[flag]);
    assert_eq!(out.status.code(), Some(0), "{name} {flag}");
    text(&out.stdout)
}

#[test]
fn version_prints_the_name_and_the_crate_version() {
    for (name, bin, _, _) in BINARIES {
        for flag in ["--version", "-V"] {
            let want = format!("{name} {}\n", env!("CARGO_PKG_VERSION"));
            assert_eq!(stdout_of(name, bin, flag), want, "{name} {flag}");
        }
    }
}

#[test]
fn help_explains_the_flags() {
    for (name, bin, flag, _) in BINARIES {
        for help in ["--help", "-h"] {
            let stdout = stdout_of(name, bin, help);
            assert!(stdout.starts_with(&format!("usage: {name}")), "{stdout}");
            // The explanations, not only the synopsis.
            let explained = stdout.lines().any(|l| l.trim_start().starts_with(flag));
            assert!(
                explained,
                "{name} {help} does not explain {flag}:\n{stdout}"
            );
            assert!(stdout.contains("--version"), "{stdout}");
        }
    }
}

/// Status 2, nothing on stdout, one line on stderr that names the binary.
fn assert_refused(name: &str, out: &Output, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {what}: {err}");
    assert_eq!(text(&out.stdout), "", "{name} {what}");
    assert_eq!(err.lines().count(), 1, "{name} {what}: {err:?}");
    assert!(err.starts_with(&format!("{name}: ")), "{err}");
}

#[test]
fn a_bad_flag_or_value_exits_2_with_one_line() {
    for (name, bin, _, bad_value) in BINARIES {
        let out = run(bin, &["--no-such-flag"]);
        assert_refused(name, &out, "--no-such-flag");
        assert!(text(&out.stderr).contains("--no-such-flag"));
        let out = run(bin, bad_value);
        assert_refused(name, &out, &bad_value.join(" "));
    }
}

#[test]
fn required_flags_are_named() {
    let out = run(env!("CARGO_BIN_EXE_loadgen"), &["--conns", "1"]);
    assert_refused("loadgen", &out, "no --addr");
    assert!(text(&out.stderr).contains("--addr"));
    let out = run(env!("CARGO_BIN_EXE_floor-server"), &["--port=1"]);
    assert_refused("floor-server", &out, "no --mode");
    assert!(text(&out.stderr).contains("--mode"));
}
