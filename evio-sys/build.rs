//! Names the target families that evio-sys tells apart, once, as cfg
//! aliases, so the source says `#[cfg(evio_kqueue)]` instead of repeating a
//! list of eight operating systems at every use.
//!
//! * `evio_epoll`: Linux and Android (epoll, eventfd).
//! * `evio_kqueue`: Apple's systems and the BSDs (kqueue).
//! * `evio_apple`: Apple's systems (no `accept4`/`SOCK_NONBLOCK`/
//!   `MSG_NOSIGNAL`; `SO_NOSIGPIPE` instead).
//! * `evio_evfilt_user`: kqueue systems with `EVFILT_USER` (all but NetBSD
//!   and OpenBSD, which wake through a pipe).
//! * `evio_pipe2`: non-Linux systems with `pipe2(2)`.

use std::env;

/// Apple's systems, which several aliases include.
const APPLE: &[&str] = &["macos", "ios", "tvos", "watchos", "visionos"];

/// Each alias and the target systems it is set for.
fn aliases() -> Vec<(&'static str, Vec<&'static str>)> {
    let with_apple = |others: &[&'static str]| [APPLE, others].concat();
    vec![
        ("evio_epoll", vec!["linux", "android"]),
        (
            "evio_kqueue",
            with_apple(&["freebsd", "netbsd", "openbsd", "dragonfly"]),
        ),
        ("evio_apple", APPLE.to_vec()),
        ("evio_evfilt_user", with_apple(&["freebsd", "dragonfly"])),
        (
            "evio_pipe2",
            vec![
                "freebsd",
                "dragonfly",
                "netbsd",
                "openbsd",
                "illumos",
                "solaris",
            ],
        ),
    ]
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // The target, not the host: build scripts run on the host.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    for (alias, systems) in aliases() {
        println!("cargo::rustc-check-cfg=cfg({alias})");
        if systems.contains(&os.as_str()) {
            println!("cargo::rustc-cfg={alias}");
        }
    }
}
