//! The editor schema `docs/suite.schema.json` agrees with the loader: every example suite
//! validates against it (and says so on its first line for the YAML language server), what
//! `canary init` and `canary probe --save` write validates, and a key the loader rejects is
//! rejected by the schema too.

mod common;
use common::*;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let schema = read_json(&repo().join("docs/suite.schema.json"));
    jsonschema::validator_for(&schema).unwrap()
}

/// A suite file as the schema sees it: its YAML as JSON.
fn as_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    canary::suite::yaml::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message))
        .to_json()
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

#[test]
fn every_example_suite_validates_against_the_schema() {
    let v = validator();
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("probes")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../docs/suite.schema.json\n"),
            "{}: the first line names the schema",
            p.display()
        );
        let e = errors(&v, &as_json(&p));
        assert!(e.is_empty(), "{}: {e:?}", p.display());
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} example suites");
}

#[test]
fn init_and_probe_output_validate_against_the_schema() {
    let v = validator();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for kind in ["chat", "json", "voice", "job"] {
        let out = canary(&["init", kind, d], &[]);
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
        let e = errors(&v, &as_json(&dir.path().join(format!("{kind}.yaml"))));
        assert!(e.is_empty(), "{kind}: {e:?}");
    }
    // --save writes the suite before probing: an unreachable URL still leaves it.
    let saved = dir.path().join("saved.yaml");
    let _ = canary(
        &[
            "probe",
            "http://127.0.0.1:9/v1/chat/completions",
            "-H",
            "authorization: Bearer x-123456",
            "--timeout",
            "2s",
            "--save",
            saved.to_str().unwrap(),
        ],
        &[],
    );
    let e = errors(&v, &as_json(&saved));
    assert!(e.is_empty(), "saved: {e:?}");
}

#[test]
fn a_key_the_loader_rejects_the_schema_rejects() {
    let v = validator();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"a\", \"input\": {\"text\": \"hi\"}}\n",
    );
    let good = "suite: s\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: http://127.0.0.1:9/v1/chat/completions\nprobes:\n  - { name: p, endpoint: chat, golden: g.jsonl }\nslos:\n  - { name: o, probe: p, sli: success, objective: 99% }\n";
    let p = write(dir.path(), "good.yaml", good);
    let out = canary(&["validate", p.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(errors(&v, &as_json(&p)).is_empty());
    for (what, bad) in [
        (
            "endpoint key",
            good.replace("    url:", "    urll: x\n    url:"),
        ),
        ("top-level key", format!("{good}retries: 3\n")),
        (
            "probe key",
            good.replace("golden: g.jsonl", "golden: g.jsonl, stal: 1s"),
        ),
        (
            "slo key",
            good.replace("objective: 99%", "objective: 99%, treshold: 1s"),
        ),
        ("defaults key", format!("{good}defaults: {{ runz: 3 }}\n")),
        ("protocol", good.replace("openai-chat", "openai-chatt")),
        ("sli", good.replace("sli: success", "sli: sucess")),
    ] {
        let p = write(dir.path(), "bad.yaml", &bad);
        let out = canary(&["validate", p.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{what}: the loader accepted it");
        assert!(
            !errors(&v, &as_json(&p)).is_empty(),
            "{what}: the schema accepted what the loader rejects"
        );
    }
}
