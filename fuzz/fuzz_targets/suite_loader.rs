#![no_main]
//! Fuzz target `suite_loader`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::suite_loader(data);
});
