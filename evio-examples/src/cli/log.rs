//! Logging for the example binaries: `tracing` events (the core's warnings
//! included) go to stderr through `tracing-subscriber`, one line each with
//! a timestamp and the level.
//!
//! The level is `--log-level` (default `warn`); `RUST_LOG`, when set, wins
//! and takes the full filter syntax (`RUST_LOG=evio_core=debug,info`), as
//! in the tokio ecosystem.

use tracing_subscriber::EnvFilter;

/// The levels `--log-level` takes.
pub const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// The default of `--log-level`.
pub const DEFAULT_LEVEL: &str = "warn";

/// Installs the stderr subscriber: `RUST_LOG` if it is set (and valid),
/// else `level`. A second call does nothing (the first subscriber stays).
///
/// # Errors
/// A `RUST_LOG` that does not parse, named (the level is used instead).
pub fn init(level: &str) -> Result<(), String> {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(level),
                Some(format!("RUST_LOG={spec:?}: {e}")),
            ),
        },
        _ => (EnvFilter::new(level), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs piped to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
    bad.map_or(Ok(()), Err)
}
