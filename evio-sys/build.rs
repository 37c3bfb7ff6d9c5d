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

const ALIASES: &[(&str, &[&str])] = &[
    ("evio_epoll", &["linux", "android"]),
    (
        "evio_kqueue",
        &[
            "macos",
            "ios",
            "tvos",
            "watchos",
            "visionos",
            "freebsd",
            "netbsd",
            "openbsd",
            "dragonfly",
        ],
    ),
    (
        "evio_apple",
        &["macos", "ios", "tvos", "watchos", "visionos"],
    ),
    (
        "evio_evfilt_user",
        &[
            "macos",
            "ios",
            "tvos",
            "watchos",
            "visionos",
            "freebsd",
            "dragonfly",
        ],
    ),
    (
        "evio_pipe2",
        &[
            "freebsd",
            "dragonfly",
            "netbsd",
            "openbsd",
            "illumos",
            "solaris",
        ],
    ),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // The target, not the host: build scripts run on the host.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    for (alias, systems) in ALIASES {
        println!("cargo::rustc-check-cfg=cfg({alias})");
        if systems.contains(&os.as_str()) {
            println!("cargo::rustc-cfg={alias}");
        }
    }
}
