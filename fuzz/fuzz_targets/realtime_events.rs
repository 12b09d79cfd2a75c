#![no_main]
//! Fuzz target `realtime_events`: see `canary::fuzzing` for what it feeds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canary::fuzzing::realtime_events(data);
});
