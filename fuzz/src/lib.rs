//! Fuzz targets for the example servers' protocol engines; see
//! `harness.rs` for the checks and `docs/reliability.md` for how to run
//! them (`cargo fuzz run resp`, `cargo fuzz run http`).

pub mod harness;
