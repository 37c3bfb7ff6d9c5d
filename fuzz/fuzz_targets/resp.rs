//! RESP (Redis protocol) parsing and command execution: whole and split
//! input, reply well-formedness, allocation bounds.
#![no_main]

use evio_fuzz::harness::{self, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| harness::resp(data));
