//! Every input kept from fuzzing (the seed corpora in `fuzz/corpus/` and any crash
//! reproducer in `fuzz/regressions/TARGET/`) replayed through the same entry points the fuzz
//! targets call: none may panic. Run the fuzzers with `cargo +nightly fuzz run TARGET`
//! (see docs/reliability.md).

use std::path::Path;

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("sse", canary::fuzzing::sse),
    ("realtime_events", canary::fuzzing::realtime_events),
    ("ogg_opus", canary::fuzzing::ogg_opus),
    ("suite_loader", canary::fuzzing::suite_loader),
    ("golden_loader", canary::fuzzing::golden_loader),
    ("ndjson", canary::fuzzing::ndjson),
    ("json_seq", canary::fuzzing::json_seq),
    ("eventstream", canary::fuzzing::eventstream),
    ("audio_stream", canary::fuzzing::audio_stream),
];

fn replay(dir: &Path, f: Entry) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).unwrap();
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn kept_fuzz_inputs_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, f) in TARGETS {
        let seeds = replay(&root.join("corpus").join(name), *f);
        assert!(seeds > 0, "no seed input for {name}");
        replay(&root.join("regressions").join(name), *f);
    }
}

#[test]
fn hostile_inputs_built_here_never_panic() {
    // Shapes that have broken parsers elsewhere: empty, huge single line, deep nesting,
    // lone continuation bytes, a page header claiming 255 segments with no body.
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 70_000],
        b"data: ".iter().copied().chain(std::iter::repeat_n(b'[', 10_000)).collect(),
        vec![0x80, 0xbf, 0xc0, 0xc1, 0xf5],
        b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff".to_vec(),
        b"suite: x\nendpoints: { a: { protocol: ws-opus, url: \"ws://h\", start: \"{{input.\" } }\n".to_vec(),
    ];
    for c in &cases {
        for (_, f) in TARGETS {
            f(c);
        }
    }
}
