#![no_main]
//! Fuzz target `golden_loader`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::golden_loader(data);
});
