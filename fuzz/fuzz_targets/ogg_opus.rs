#![no_main]
//! Fuzz target `ogg_opus`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::ogg_opus(data);
});
