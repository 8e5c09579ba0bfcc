//! Fuzzes the jsonl reader, then shape detection and row measures on what it read.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    // libfuzzer-sys aborts in its panic hook, even for panics we catch on purpose (the Parquet
    // reader's); uncaught panics still abort through the harness's own catch_unwind.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    data::fuzz_one("input.jsonl", bytes)
});
