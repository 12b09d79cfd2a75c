//! Audio decoding throughput: seconds of audio decoded and analysed (loudness per 10 ms,
//! onset search) per second of CPU, on one core, for each path a voice probe takes.
//!
//! Run: `cargo bench --bench audio` (writes `target/bench/audio.json` and `.md`). The same
//! measurement is part of `canary bench`; the code is `canary::bench::audio`.

fn main() {
    let results = match canary::bench::audio::throughput(60, 3.0) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let md = canary::bench::audio::markdown(&results);
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let json = serde_json::json!({"benchmark": "audio", "results": results});
    let _ = std::fs::write(
        dir.join("audio.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    let _ = std::fs::write(dir.join("audio.md"), md);
}
