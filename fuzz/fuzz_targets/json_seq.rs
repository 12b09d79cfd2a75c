#![no_main]
//! Fuzz target `json_seq`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::json_seq(data);
});
