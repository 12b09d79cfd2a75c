//! Stream failures are classified, keep their partial measures, and never stop the run:
//! a dropped connection or a missing terminator is `truncated`, an error event inside a 200
//! stream is `stream_error`, a stream that goes silent past the deadline is `timeout`.

mod common;
use common::*;
use serde_json::Value;

const PROTOCOLS: &[(&str, &str)] = &[
    ("openai-chat", "/v1/chat/completions"),
    ("openai-responses", "/v1/responses"),
    ("anthropic-messages", "/v1/messages"),
];

fn run_suite(sim: &Sim, timeout: &str, endpoints: &[(&str, &str, &str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]}, \"expect\": {\"contains\": [\"Paris\"]}}\n");
    let mut s = format!(
        "suite: failures\ndefaults: {{ timeout: {timeout}, concurrency: 16 }}\nendpoints:\n"
    );
    let mut probes = String::from("probes:\n");
    for (name, proto, path, extra) in endpoints {
        s += &format!(
            "  {name}:\n    protocol: {proto}\n    url: \"{}{path}\"\n{extra}",
            sim.url
        );
        probes +=
            &format!("  - {{ name: {name}, endpoint: {name}, golden: g.jsonl, stall: 500ms }}\n");
    }
    let suite = write(dir.path(), "s.yaml", &(s + &probes));
    let report = dir.path().join("r.json");
    let out = canary(
        &[
            "run",
            suite.to_str().unwrap(),
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.code() == Some(0), "{:?}", text(&out));
    read_json(&report)
}

fn case<'a>(r: &'a Value, probe: &str) -> &'a Value {
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["probe"] == probe)
        .unwrap()
}

#[test]
fn failures_are_classified_per_protocol_and_partial_measures_are_kept() {
    let sim = Sim::start(2, None);
    let mut eps = Vec::new();
    let names: Vec<(String, &str, &str, String)> = PROTOCOLS
        .iter()
        .flat_map(|(proto, path)| {
            ["drop", "error", "no-done", "stall", "plain"]
                .iter()
                .map(move |m| {
                    (
                        format!("{proto}-{m}"),
                        *proto,
                        *path,
                        format!("    model: sim-{m}\n"),
                    )
                })
        })
        .collect();
    for (n, p, path, extra) in &names {
        eps.push((n.as_str(), *p, *path, extra.as_str()));
    }
    let r = run_suite(&sim, "1200ms", &eps);
    for (proto, _) in PROTOCOLS {
        let drop = case(&r, &format!("{proto}-drop"));
        assert_eq!(drop["outcome"], "truncated", "{drop}");
        assert!(
            drop["answer"].as_str().unwrap().contains("Paris"),
            "partial answer kept: {drop}"
        );
        assert!(drop["latency"]["time_to_first_visible_token"]
            .as_f64()
            .is_some());
        let err = case(&r, &format!("{proto}-error"));
        assert_eq!(err["outcome"], "stream_error", "{err}");
        assert_eq!(err["status"], 200);
        let nd = case(&r, &format!("{proto}-no-done"));
        assert_eq!(nd["outcome"], "truncated", "{nd}");
        assert!(nd["error"].as_str().unwrap().contains("without"), "{nd}");
        // The 1.5 s stall outlasts the 1.2 s deadline: a timeout with what arrived before it.
        let st = case(&r, &format!("{proto}-stall"));
        assert_eq!(st["outcome"], "timeout", "{st}");
        assert_eq!(st["status"], 200, "the status of a cut stream is kept");
        assert_eq!(
            st["stream"]["stalls"], 1,
            "the 700 ms of silence until the deadline is a stall (threshold 500 ms): {st}"
        );
        let ttfvt = st["latency"]["time_to_first_visible_token"]
            .as_f64()
            .unwrap();
        assert!((0.11..0.2).contains(&ttfvt), "{ttfvt}");
        assert!(st["latency"]["time_to_completion"].is_null());
        assert!(st["answer"]
            .as_str()
            .unwrap()
            .trim_start()
            .starts_with("The capital of France is Paris."));
        // The others of the run were measured normally.
        assert_eq!(case(&r, &format!("{proto}-plain"))["outcome"], "ok");
    }
    // The aggregate counts errors but keeps latency percentiles to the successful runs.
    let agg = r["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["probe"] == "openai-chat-plain" && s["slice"] == "*")
        .unwrap();
    assert_eq!(agg["errors"], 0);
}

#[test]
fn non_streamed_answers_show_at_completion() {
    let sim = Sim::start(2, None);
    let eps: Vec<(String, &str, &str)> = PROTOCOLS
        .iter()
        .map(|(p, path)| (format!("{p}-whole"), *p, *path))
        .collect();
    let extra = "    model: sim-reasoning\n    stream: false\n";
    let list: Vec<(&str, &str, &str, &str)> = eps
        .iter()
        .map(|(n, p, path)| (n.as_str(), *p, *path, extra))
        .collect();
    let r = run_suite(&sim, "5s", &list);
    for (n, _, _) in &eps {
        let c = case(&r, n);
        assert_eq!(c["outcome"], "ok", "{c}");
        let l = &c["latency"];
        let ttfvt = l["time_to_first_visible_token"].as_f64().unwrap();
        assert_eq!(
            Some(ttfvt),
            l["time_to_completion"].as_f64(),
            "{n}: first visible = completion"
        );
        assert!(
            ttfvt > 1.5,
            "{n}: the whole answer waits for the reasoning and the text"
        );
        assert!(c["usage"]["output_tokens"].as_u64().unwrap() >= 40);
    }
}
