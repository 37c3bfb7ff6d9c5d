//! Helpers of the evio-core integration tests: the shared ones come from
//! `evio-test-support`; `beyond` and `counting` are this crate's own.
#![allow(dead_code, unused_imports)]

pub mod beyond;
pub mod counting;

pub use evio_test_support::*;
