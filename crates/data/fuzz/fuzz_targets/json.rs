//! Fuzzes the json reader, then shape detection and row measures on what it read.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| data::fuzz_one("input.json", bytes));
