#![no_main]
//! Fuzz target `ndjson`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::ndjson(data);
});
