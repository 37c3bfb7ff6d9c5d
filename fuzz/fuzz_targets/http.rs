//! HTTP/1.1 request parsing: whole and split input, responses, allocation
//! bounds.
#![no_main]

use evio_fuzz::harness::{self, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| harness::http(data));
