//! Fidelity is the acceptance test: every streaming measure agrees with the simulator's
//! server-side write times within 2 ms, for every protocol and scenario, whether the server
//! writes one event per write, one byte per write, or the whole stream in one write.

mod common;
use common::*;
use serde_json::Value;

const PROTOCOLS: &[(&str, &str)] = &[
    ("openai-chat", "/v1/chat/completions"),
    ("openai-responses", "/v1/responses"),
    ("anthropic-messages", "/v1/messages"),
];
const MODELS: &[&str] = &[
    "sim-plain",
    "sim-reasoning",
    "sim-chunky",
    "sim-stall",
    "sim-slow-headers",
];
const TOLERANCE: f64 = 0.002;
/// A gap is the difference of two stamps, each within `TOLERANCE` of its write, so its own
/// error is bounded by twice that (one read woken late, the next on time).
const GAP_TOLERANCE: f64 = 2.0 * TOLERANCE;

fn suite(sim: &str, modes: &[&str], models: &[&str]) -> String {
    // Two streams in flight: fidelity here is about the measurement, not load (benchmarks cover load).
    let mut s =
        String::from("suite: fidelity\ndefaults: { timeout: 10s, concurrency: 2 }\nendpoints:\n");
    let mut probes = String::from("probes:\n");
    for (proto, path) in PROTOCOLS {
        for model in models {
            for mode in modes {
                let name = format!("{proto}.{model}.{mode}");
                s += &format!(
                    "  {name}:\n    protocol: {proto}\n    url: \"{sim}{path}\"\n    model: {model}\n    headers: {{ x-sim-write: {mode} }}\n"
                );
                probes += &format!(
                    "  - {{ name: {name}, endpoint: {name}, golden: g.jsonl, stall: 1s }}\n"
                );
            }
        }
    }
    s + &probes
}

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(modes: &[&str], models: &[&str]) -> (Value, Vec<Value>) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(1, None);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    let s = write(dir.path(), "s.yaml", &suite(&sim.url, modes, models));
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
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    (read_json(&report), v["streams"].as_array().unwrap().clone())
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

fn check_all(report: &Value, truth: &[Value], modes: &[&str], models: &[&str]) {
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), PROTOCOLS.len() * models.len() * modes.len());
    for (proto, path) in PROTOCOLS {
        for model in models {
            for mode in modes {
                let name = format!("{proto}.{model}.{mode}");
                let c = cases.iter().find(|c| c["probe"] == name.as_str()).unwrap();
                assert_eq!(c["outcome"], "ok", "{name}: {c}");
                let t = truth
                    .iter()
                    .find(|t| {
                        t["path"] == *path && t["model"] == *model && t["write_mode"] == *mode
                    })
                    .unwrap_or_else(|| panic!("no truth for {name}"));
                let lat = |k: &str| c["latency"][k].as_f64();
                let tv = |k: &str| t[k].as_f64();
                // Every latency here runs from the request, so it is a difference of two
                // stamps on each side: canary's send stamp (taken in user space as the request
                // is handed to the connection; a thread preempted before the write makes it
                // early) and an arrival stamp, against the simulator's arrival stamp of the
                // request and its write. Each stamp is within `TOLERANCE`, the difference
                // within twice that. (Byte by byte, a late read also stamps every one-byte
                // segment it finds with the last one's arrival: docs/internals.md, "Arrival
                // stamps".)
                let tol = GAP_TOLERANCE;
                close_within(
                    &format!("{name} ttfb"),
                    lat("time_to_first_byte"),
                    tv("headers"),
                    tol,
                );
                close_within(
                    &format!("{name} ttft"),
                    lat("time_to_first_token"),
                    tv("first_token"),
                    tol,
                );
                close_within(
                    &format!("{name} ttfvt"),
                    lat("time_to_first_visible_token"),
                    tv("first_visible"),
                    tol,
                );
                close_within(
                    &format!("{name} ttc"),
                    lat("time_to_completion"),
                    tv("terminator"),
                    tol,
                );
                // Cadence: the longest gap between visible chunks as written.
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
                let expected_stalls = u64::from(*model == "sim-stall" && *mode != "coalesce");
                assert_eq!(stalls, expected_stalls, "{name} stalls");
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
    }
}

#[test]
fn measures_match_server_write_times_one_event_per_write() {
    let (r, t) = run(&["events"], MODELS);
    check_all(&r, &t, &["events"], MODELS);
}

#[test]
fn measures_do_not_change_when_the_server_writes_one_byte_at_a_time() {
    let models = &["sim-plain", "sim-reasoning", "sim-stall"];
    let (r, t) = run(&["bytes"], models);
    check_all(&r, &t, &["bytes"], models);
}

#[test]
fn measures_follow_the_write_when_the_whole_stream_is_one_write() {
    let models = &["sim-plain", "sim-reasoning"];
    let (r, t) = run(&["coalesce"], models);
    check_all(&r, &t, &["coalesce"], models);
}

#[test]
fn same_token_rate_different_chunking_is_told_apart() {
    let (r, _) = run(&["events"], &["sim-plain", "sim-chunky"]);
    let cases = r["cases"].as_array().unwrap();
    for (proto, _) in PROTOCOLS {
        let get = |model: &str| {
            cases
                .iter()
                .find(|c| c["probe"] == format!("{proto}.{model}.events").as_str())
                .unwrap()["stream"]
                .clone()
        };
        let tiny = get("sim-plain");
        let chunky = get("sim-chunky");
        let rate = |s: &Value| s["output_tokens_per_second"].as_f64().unwrap();
        let max_tpc = |s: &Value| {
            s["tokens_per_chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .max()
                .unwrap()
        };
        // Same words per second within 10% (token estimates differ slightly by chunk boundary).
        assert!(
            (rate(&tiny) / rate(&chunky) - 1.0).abs() < 0.10,
            "{proto}: {} vs {}",
            rate(&tiny),
            rate(&chunky)
        );
        assert!(
            max_tpc(&chunky) >= 5 * max_tpc(&tiny) / 2,
            "{proto}: tokens per chunk"
        );
        let gap = |s: &Value| s["longest_gap"].as_f64().unwrap();
        assert!(
            gap(&chunky) > 0.09 && gap(&tiny) < 0.03,
            "{proto}: gaps {} vs {}",
            gap(&chunky),
            gap(&tiny)
        );
    }
}
