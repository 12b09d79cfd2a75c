//! The example suites and golden sets, carried inside the binary so that `canary demo` runs
//! from any folder (a `cargo install`ed binary or the container image has no source tree).
//! `canary demo` writes them out under its `--out` folder, keeping the `probes/`, `golden/` and
//! `protocols/examples/` layout the suites' relative paths expect, and runs them from there.

use std::path::{Path, PathBuf};

/// Every file of `probes/`, `golden/` and `protocols/examples/`, by its path in the repository.
/// A unit test checks this list against the folders, so a new example cannot be forgotten.
pub const FILES: &[(&str, &str)] = &[
    (
        "probes/any-endpoint.yaml",
        include_str!("../probes/any-endpoint.yaml"),
    ),
    ("probes/chat.yaml", include_str!("../probes/chat.yaml")),
    (
        "probes/llama-mapper.yaml",
        include_str!("../probes/llama-mapper.yaml"),
    ),
    (
        "probes/montage-preview.yaml",
        include_str!("../probes/montage-preview.yaml"),
    ),
    (
        "probes/rag-freshness.yaml",
        include_str!("../probes/rag-freshness.yaml"),
    ),
    (
        "probes/voice-agent.yaml",
        include_str!("../probes/voice-agent.yaml"),
    ),
    (
        "golden/any-endpoint.jsonl",
        include_str!("../golden/any-endpoint.jsonl"),
    ),
    ("golden/chat.jsonl", include_str!("../golden/chat.jsonl")),
    (
        "golden/chat-judged.jsonl",
        include_str!("../golden/chat-judged.jsonl"),
    ),
    (
        "golden/llama-mapper-batch.jsonl",
        include_str!("../golden/llama-mapper-batch.jsonl"),
    ),
    (
        "golden/llama-mapper-batch.schema.json",
        include_str!("../golden/llama-mapper-batch.schema.json"),
    ),
    (
        "golden/llama-mapper.jsonl",
        include_str!("../golden/llama-mapper.jsonl"),
    ),
    (
        "golden/llama-mapper.schema.json",
        include_str!("../golden/llama-mapper.schema.json"),
    ),
    (
        "golden/montage-preview-corrupt.jsonl",
        include_str!("../golden/montage-preview-corrupt.jsonl"),
    ),
    (
        "golden/montage-preview.jsonl",
        include_str!("../golden/montage-preview.jsonl"),
    ),
    (
        "golden/rag-canary.jsonl",
        include_str!("../golden/rag-canary.jsonl"),
    ),
    ("golden/rag.jsonl", include_str!("../golden/rag.jsonl")),
    (
        "golden/realtime.jsonl",
        include_str!("../golden/realtime.jsonl"),
    ),
    (
        "golden/tts-sse.jsonl",
        include_str!("../golden/tts-sse.jsonl"),
    ),
    (
        "golden/tts-ws.jsonl",
        include_str!("../golden/tts-ws.jsonl"),
    ),
    ("golden/tts.jsonl", include_str!("../golden/tts.jsonl")),
    ("golden/voice.jsonl", include_str!("../golden/voice.jsonl")),
    // The in-house stream description `probes/any-endpoint.yaml` reads as a file.
    (
        "protocols/examples/inhouse-ndjson.yaml",
        include_str!("../protocols/examples/inhouse-ndjson.yaml"),
    ),
];

/// Writes every example under `root` (as `root/probes/...` and `root/golden/...`) and returns
/// the folder of the suites, `root/probes`.
pub fn write_to(root: &Path) -> std::io::Result<PathBuf> {
    for (rel, text) in FILES {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(root.join("probes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded list is exactly the repository's `probes/`, `golden/` and
    /// `protocols/examples/` folders.
    #[test]
    fn every_example_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        for dir in ["probes", "golden", "protocols/examples"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    on_disk.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "src/examples.rs FILES must list every file of probes/, golden/ and protocols/examples/"
        );
        for (rel, text) in FILES {
            assert_eq!(
                std::fs::read_to_string(root.join(rel)).unwrap(),
                *text,
                "{rel}"
            );
        }
    }

    #[test]
    fn written_examples_keep_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let probes = write_to(dir.path()).unwrap();
        assert_eq!(probes, dir.path().join("probes"));
        assert!(probes.join("chat.yaml").is_file());
        assert!(dir.path().join("golden/chat.jsonl").is_file());
    }
}
