#![no_main]
//! Fuzz target `audio_stream`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::audio_stream(data);
});
