//! Described streams end to end: every built-in protocol (`gemini`, `ollama`, `tgi`,
//! `bedrock-converse`), Gemini's streamed JSON array (a description that `extends` the
//! built-in), and an in-house NDJSON protocol added from a description file alone, against
//! the simulator in event, byte-at-a-time and coalesced write modes. Every first-token
//! measure agrees with the simulator's write times within 2 ms, answers are assembled
//! exactly, usage is the server's, and errors are classified (`stream_error`,
//! `rate_limited`, `truncated`). The real recorded streams replay through the framers.

mod common;
use common::*;
use serde_json::Value;

use canary::drivers::chat_events::Piece;
use canary::timeline::{ErrorClass, TokenKind};

/// (name, endpoint YAML after `url:` is known, truth path) per protocol.
struct Proto {
    name: &'static str,
    reasoning: bool,
    input_tokens: bool,
}

const PROTOS: &[Proto] = &[
    Proto {
        name: "gemini",
        reasoning: true,
        input_tokens: true,
    },
    Proto {
        name: "gemini-array",
        reasoning: true,
        input_tokens: true,
    },
    Proto {
        name: "ollama",
        reasoning: true,
        input_tokens: true,
    },
    Proto {
        name: "tgi",
        reasoning: false,
        input_tokens: false,
    },
    Proto {
        name: "bedrock-converse",
        reasoning: true,
        input_tokens: true,
    },
    Proto {
        name: "inhouse",
        reasoning: true,
        input_tokens: true,
    },
];

const TOLERANCE: f64 = 0.002;
/// A gap (or a phase from the response head) is the difference of two stamps, each within `TOLERANCE` of its write, so its own
/// error is bounded by twice that (one read woken late, the next on time).
const GAP_TOLERANCE: f64 = 2.0 * TOLERANCE;

fn endpoint(proto: &str, sim: &str, model: &str, mode: &str) -> (String, String) {
    let inhouse = repo().join("protocols/examples/inhouse-ndjson.yaml");
    let (body, path) = match proto {
        "gemini" => (
            format!("protocol: gemini\n    url: \"{sim}/v1beta/models/{{model}}:streamGenerateContent?alt=sse\"\n    model: {model}\n"),
            format!("/v1beta/models/{model}:streamGenerateContent"),
        ),
        "gemini-array" => (
            format!("protocol: stream\n    stream: {{ extends: gemini, framing: json-seq }}\n    url: \"{sim}/v1beta/models/{{model}}:streamGenerateContent\"\n    model: {model}\n"),
            format!("/v1beta/models/{model}:streamGenerateContent"),
        ),
        "ollama" => (
            format!("protocol: ollama\n    url: \"{sim}/api/chat\"\n    model: {model}\n"),
            "/api/chat".to_string(),
        ),
        "tgi" => (
            format!("protocol: tgi\n    url: \"{sim}/generate_stream\"\n    headers: {{ x-sim-model: {model} }}\n"),
            "/generate_stream".to_string(),
        ),
        "bedrock-converse" => (
            format!("protocol: bedrock-converse\n    url: \"{sim}/model/{{model}}/converse-stream\"\n    model: {model}\n"),
            format!("/model/{model}/converse-stream"),
        ),
        _ => (
            format!("protocol: stream\n    stream: {{ file: \"{}\" }}\n    url: \"{sim}/inhouse/stream\"\n    model: {model}\n", inhouse.display()),
            "/inhouse/stream".to_string(),
        ),
    };
    // The write mode rides on a header; merge it into an existing `headers:` map.
    let body = if body.contains("headers: {") {
        body.replace("headers: {", &format!("headers: {{ x-sim-write: {mode},"))
    } else {
        format!("{body}    headers: {{ x-sim-write: {mode} }}\n")
    };
    (body, path)
}

fn suite(sim: &str, cells: &[(&str, &str, &str)]) -> String {
    let mut s =
        String::from("suite: streams\ndefaults: { timeout: 10s, concurrency: 2 }\nendpoints:\n");
    let mut probes = String::from("probes:\n");
    for (proto, model, mode) in cells {
        let name = format!("{proto}.{model}.{mode}");
        let (body, _) = endpoint(proto, sim, model, mode);
        s += &format!("  {name}:\n    {body}");
        probes +=
            &format!("  - {{ name: {name}, endpoint: {name}, golden: g.jsonl, stall: 1s }}\n");
    }
    s + &probes
}

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(cells: &[(&str, &str, &str)]) -> (Value, Vec<Value>, String) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(1, None);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    let s = write(dir.path(), "s.yaml", &suite(&sim.url, cells));
    let report = dir.path().join("r.json");
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let v: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let txt = format!("{:?}", text(&out));
    assert!(report.exists(), "no report: {txt}");
    (
        read_json(&report),
        v["streams"].as_array().unwrap().clone(),
        sim.url.clone(),
    )
}

fn close_within(what: &str, measured: Option<f64>, truth: Option<f64>, tolerance: f64) {
    let (m, t) = match (measured, truth) {
        (Some(m), Some(t)) => (m, t),
        _ => panic!("{what}: measured {measured:?}, truth {truth:?}"),
    };
    assert!(
        (m - t).abs() <= tolerance,
        "{what}: measured {m:.5}s, truth {t:.5}s, error {:.2} ms",
        (m - t) * 1e3
    );
}

fn cells<'a>(models: &[&'a str], modes: &[&'a str]) -> Vec<(&'static str, &'a str, &'a str)> {
    let mut out = Vec::new();
    for p in PROTOS {
        for m in models {
            if m.contains("reasoning") && !p.reasoning {
                continue;
            }
            for mode in modes {
                out.push((p.name, *m, *mode));
            }
        }
    }
    out
}

fn check_fidelity(models: &[&str], modes: &[&str]) {
    let cells = cells(models, modes);
    let (report, truth, sim) = run(&cells);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), cells.len());
    for (proto, model, mode) in &cells {
        let name = format!("{proto}.{model}.{mode}");
        let c = cases.iter().find(|c| c["probe"] == name.as_str()).unwrap();
        assert_eq!(c["outcome"], "ok", "{name}: {c}");
        let (_, path) = endpoint(proto, &sim, model, mode);
        let t = truth
            .iter()
            .find(|t| {
                t["path"] == path.as_str() && t["model"] == *model && t["write_mode"] == *mode
            })
            .unwrap_or_else(|| panic!("no truth for {name} ({path})"));
        let lat = |k: &str| c["latency"][k].as_f64();
        let tv = |k: &str| t[k].as_f64();
        // ttfb is a difference of two stamps on each side: canary's send stamp (taken in user
        // space as the request is handed to the connection, early by as long as the thread
        // waits before the write) and the head's arrival, against the simulator's arrival
        // stamp of the request and its write of the head. Each stamp is within `TOLERANCE`.
        // (Byte by byte, a late read also stamps the head with the arrival of the one-byte
        // segments behind it: docs/internals.md, "Arrival stamps".)
        close_within(
            &format!("{name} ttfb"),
            lat("time_to_first_byte"),
            tv("headers"),
            GAP_TOLERANCE,
        );
        // The later phases from the response head on both sides (as the demo compares them):
        // the accept and request-parse time of the server, which the absolute ttfb check
        // above already bounds, is not counted twice.
        let from_head = |m: Option<f64>, t: Option<f64>| {
            (
                m.zip(lat("time_to_first_byte")).map(|(m, h)| m - h),
                t.zip(tv("headers")).map(|(t, h)| t - h),
            )
        };
        for (what, m, t) in [
            ("ttft", "time_to_first_token", "first_token"),
            ("ttfvt", "time_to_first_visible_token", "first_visible"),
            ("ttc", "time_to_completion", "terminator"),
        ] {
            let (m, t) = from_head(lat(m), tv(t));
            // Differences of two stamps on each side, as a gap is.
            close_within(
                &format!("{name} {what} (from the head)"),
                m,
                t,
                GAP_TOLERANCE,
            );
        }
        let chunks: Vec<f64> = t["visible_chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_f64().unwrap())
            .collect();
        let true_gap = chunks.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        if *mode != "coalesce" {
            close_within(
                &format!("{name} longest gap"),
                c["stream"]["longest_gap"].as_f64(),
                Some(true_gap),
                GAP_TOLERANCE,
            );
        }
        let stalls = c["stream"]["stalls"].as_u64().unwrap();
        assert_eq!(
            stalls,
            u64::from(model.contains("stall") && *mode != "coalesce"),
            "{name} stalls"
        );
        // The answer exactly as the server streamed it (the whitespace-only delta first).
        let answer = t["answer"].as_str().unwrap();
        assert_eq!(
            c["answer"].as_str(),
            Some(format!("\n\n{answer}").as_str()),
            "{name}"
        );
        // The server's usage, not an estimate.
        let words = t["visible_words"].as_u64().unwrap() + t["reasoning_words"].as_u64().unwrap();
        assert_eq!(
            c["usage"]["output_tokens"].as_u64(),
            Some(words),
            "{name}: {}",
            c["usage"]
        );
        assert_eq!(c["usage"]["estimated"], false, "{name}");
        let want_input = PROTOS
            .iter()
            .find(|p| p.name == *proto)
            .unwrap()
            .input_tokens;
        assert_eq!(
            c["usage"]["input_tokens"].as_u64(),
            want_input.then_some(12),
            "{name}"
        );
        if model.contains("reasoning") && *mode != "coalesce" {
            assert!(
                c["stream"]["reasoning_seconds"].as_f64().unwrap_or(0.0) > 0.5,
                "{name}: {c}"
            );
        }
        assert!(
            c["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["passed"] == true),
            "{name}: {c}"
        );
    }
}

#[test]
fn every_protocol_matches_server_write_times_one_event_per_write() {
    check_fidelity(&["sim-plain", "sim-reasoning", "sim-stall"], &["events"]);
}

#[test]
fn every_protocol_is_unchanged_when_the_server_writes_one_byte_at_a_time() {
    check_fidelity(&["sim-plain", "sim-reasoning"], &["bytes"]);
}

#[test]
fn every_protocol_follows_the_write_when_the_stream_is_one_write() {
    check_fidelity(&["sim-plain", "sim-reasoning"], &["coalesce"]);
}

#[test]
fn errors_are_classified_for_every_protocol() {
    let cells = cells(
        &["sim-error", "sim-throttle", "sim-drop", "sim-no-done"],
        &["events"],
    );
    let (report, _, _) = run(&cells);
    let cases = report["cases"].as_array().unwrap();
    for (proto, model, mode) in &cells {
        let name = format!("{proto}.{model}.{mode}");
        let c = cases.iter().find(|c| c["probe"] == name.as_str()).unwrap();
        let expected = match (*model, *proto) {
            ("sim-error", _) => "stream_error",
            ("sim-throttle", "ollama" | "inhouse") => "stream_error",
            ("sim-throttle", _) => "rate_limited",
            ("sim-drop", _) => "truncated",
            // Without a terminator event, a clean end of the body completes the stream.
            ("sim-no-done", "gemini") => "ok",
            // The array is never closed.
            ("sim-no-done", "gemini-array") => "truncated",
            _ => "truncated",
        };
        assert_eq!(c["outcome"], expected, "{name}: {c}");
    }
}

#[test]
fn a_bad_description_is_a_config_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"a\", \"input\": {\"text\": \"x\"}}\n",
    );
    write(
        dir.path(),
        "mine.yaml",
        "name: mine\nframing: ndjsonn\nevents:\n  - text: \"$[?\"\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        "suite: x\nendpoints:\n  a:\n    protocol: stream\n    url: \"http://127.0.0.1:1/x\"\n    stream: { file: mine.yaml }\n  b:\n    protocol: stream\n    url: \"http://127.0.0.1:1/x\"\n    stream: { framing: sse, events: [{ model: $.m }] }\n  c:\n    protocol: stream\n    url: \"http://127.0.0.1:1/x\"\n    stream: { extends: gemeni }\n  d:\n    protocol: openai-chat\n    url: \"http://127.0.0.1:1/x\"\n    stream: { framing: sse }\n  e:\n    protocol: stream\n    url: \"http://127.0.0.1:1/x\"\nprobes:\n  - { name: p, endpoint: a, golden: g.jsonl }\n",
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    assert_ne!(out.status.code(), Some(0));
    let all = format!("{:?}", text(&out));
    for want in [
        "mine.yaml:2:10: framing: unknown framing `ndjsonn` (did you mean `ndjson`?",
        "mine.yaml:4:11: events[0].text: invalid JSONPath",
        "s.yaml:10:13: endpoints.b.stream: no event rule has a `text` path",
        "s.yaml:14:24: endpoints.c.stream.extends: unknown protocol `gemeni` to extend (did you mean `gemini`?",
        "endpoints.d.stream: for protocol `openai-chat`, `stream` is `true` or `false`",
        "endpoints.e: missing required key `stream` for protocol `stream`",
    ] {
        assert!(all.contains(want), "{want} not in {all}");
    }
}

// The real recorded streams, through the framers and the built-in descriptions.

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/real-streams").join(name)).unwrap()
}

fn spec(name: &str) -> std::sync::Arc<canary::drivers::stream::StreamSpec> {
    std::sync::Arc::new(canary::suite::stream::builtin_spec(name).unwrap().unwrap())
}

fn text_of(pieces: &[Piece], kind: TokenKind) -> String {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Text { kind: k, text, .. } if *k == kind => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn usage_of(pieces: &[Piece]) -> (Option<u64>, Option<u64>) {
    let mut u = (None, None);
    for p in pieces {
        if let Piece::Usage { input, output, .. } = p {
            u = (input.or(u.0), output.or(u.1));
        }
    }
    u
}

fn every_split(spec_name: &str, body: &[u8]) -> Vec<Piece> {
    let s = spec(spec_name);
    let (whole, r) = canary::drivers::stream::driver::replay(s.clone(), body, &[]);
    r.unwrap();
    let cuts: Vec<usize> = (1..body.len()).collect();
    let (split, r) = canary::drivers::stream::driver::replay(s, body, &cuts);
    r.unwrap();
    assert_eq!(whole, split, "{spec_name}: split at every byte");
    whole
}

#[test]
fn real_gemini_native_sse() {
    let p = every_split("gemini", &fixture("gemini-native-sse.sse"));
    assert_eq!(
        text_of(&p, TokenKind::Visible),
        "The capital of France is Paris.\n"
    );
    assert_eq!(usage_of(&p), (Some(7), Some(8)));
    assert!(p.contains(&Piece::Model("gemini-2.0-flash-001".into())));
    assert!(p.contains(&Piece::Finish("STOP".into())));
}

#[test]
fn real_ollama_native_ndjson() {
    let p = every_split("ollama", &fixture("ollama-native-ndjson.ndjson"));
    let t = text_of(&p, TokenKind::Visible);
    assert!(
        t.starts_with("A rabbit is a small, furry animal with long ears"),
        "{t}"
    );
    assert!(t.ends_with('.'), "{t}");
    assert_eq!(usage_of(&p), (Some(28), Some(25)));
    assert_eq!(p.last(), Some(&Piece::Terminator));
}

#[test]
fn real_bedrock_converse_eventstream() {
    let p = every_split(
        "bedrock-converse",
        &fixture("bedrock-converse-eventstream.bin"),
    );
    let t = text_of(&p, TokenKind::Visible);
    assert!(t.starts_with("The capital of France is Paris."), "{t}");
    assert!(t.ends_with(".\""), "{t}");
    assert_eq!(usage_of(&p), (Some(13), Some(82)));
    assert!(p.contains(&Piece::Finish("end_turn".into())));
    assert_eq!(p.last(), Some(&Piece::Terminator));
}

#[test]
fn a_flipped_bit_in_the_real_eventstream_is_a_protocol_error() {
    let mut body = fixture("bedrock-converse-eventstream.bin");
    body[300] ^= 0x01;
    let (_, r) = canary::drivers::stream::driver::replay(spec("bedrock-converse"), &body, &[]);
    assert_eq!(r.unwrap_err().class, ErrorClass::Protocol);
}
