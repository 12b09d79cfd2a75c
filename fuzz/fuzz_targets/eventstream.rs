#![no_main]
//! Fuzz target `eventstream`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::eventstream(data);
});
