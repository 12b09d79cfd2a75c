//! Quality SLIs per slice against the simulator's RAG service (index 3 s behind its truth)
//! and chat endpoints: answers are stale for ~3 s after a fact changes and answer_staleness
//! says by how much (naming the old value when canary has seen it); the write-then-read
//! canary measures the index lag; a forced fallback tier moves tier_primary by the exact
//! count; escalation is counted on exactly the cases that escalate; a slice that collapses
//! while the aggregate meets its objective fails the run and is named.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn put_fact(sim: &Sim, key: &str, value: &str) {
    use std::io::{Read, Write};
    let body = format!("{{\"value\": \"{value}\"}}");
    let mut s = std::net::TcpStream::connect(&sim.addr).unwrap();
    write!(
        s,
        "PUT /admin/facts/{key} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
}

fn fresh_suite(sim: &str) -> String {
    format!(
        r#"suite: fresh
endpoints:
  rag:
    protocol: http-json
    url: "{sim}/rag/ask"
    answer: {{ json: "$.answer" }}
probes:
  - name: price
    endpoint: rag
    golden: g.jsonl
    freshness: {{ truth: {{ url: "{sim}/truth/facts/{{key}}", value: "$.value", updated_at: "$.updated_at" }} }}
"#
    )
}

fn lag_suite(sim: &str) -> String {
    format!(
        r#"suite: lag
endpoints:
  rag:
    protocol: http-json
    url: "{sim}/rag/ask"
    answer: {{ json: "$.answer" }}
probes:
  - name: lag
    endpoint: rag
    golden: c.jsonl
    timeout: 5s
    canary_fact:
      write: {{ url: "{sim}/admin/facts/canary-{{{{region}}}}", body: {{ value: "{{{{nonce}}}}" }} }}
      read_every: 100ms
      give_up_after: 10s
"#
    )
}

fn setup(sim: &Sim) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"price\", \"slice\": \"pricing\", \"input\": {\"key\": \"basic-plan-price\", \"body\": {\"question\": \"Price?\", \"key\": \"{{input.key}}\"}}, \"expect\": {\"fresh\": true}}\n");
    write(dir.path(), "c.jsonl", "{\"id\": \"fact\", \"input\": {\"body\": {\"question\": \"The canary fact?\", \"key\": \"canary-{{region}}\"}}}\n");
    write(dir.path(), "s.yaml", &fresh_suite(&sim.url));
    write(dir.path(), "l.yaml", &lag_suite(&sim.url));
    dir
}

fn run(dir: &std::path::Path, extra: &[&str]) -> (Value, String) {
    run_suite(dir, "s.yaml", extra)
}

fn run_suite(dir: &std::path::Path, suite: &str, extra: &[&str]) -> (Value, String) {
    let report = dir.join(format!("r{}.json", now()));
    let s = dir.join(suite);
    let mut a = vec![
        "run",
        s.to_str().unwrap(),
        "-q",
        "--report",
        report.to_str().unwrap(),
        "--region",
        "eu-test",
    ];
    a.extend_from_slice(extra);
    let out = canary(&a, &[]);
    let (o, e) = text(&out);
    (read_json(&report), format!("{o}\n{e}"))
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
fn stale_answers_after_a_change_say_how_stale_and_the_canary_fact_measures_the_lag() {
    let sim = Sim::start(1, None);
    let dir = setup(&sim);
    let state = dir.path().join("facts.json");
    let state_arg = ["--state", state.to_str().unwrap()];
    // Before the change: fresh, and the value is remembered.
    let (r, out) = run(dir.path(), &state_arg);
    let c = case(&r, "price");
    assert_eq!(c["freshness"]["fresh"], true, "{out}");
    assert_eq!(c["latency"]["answer_staleness"], 0.0);
    // The index lag as the write-then-read canary sees it: 3 s, within one read interval.
    let (r, out) = run_suite(dir.path(), "l.yaml", &[]);
    let lag = case(&r, "lag");
    assert_eq!(lag["outcome"], "ok", "{out}");
    let measured = lag["fact"]["lag_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{lag}"));
    assert!(
        (3.0..3.0 + 0.1 + 0.05).contains(&measured),
        "freshness_lag {measured}"
    );
    assert_eq!(lag["latency"]["freshness_lag"].as_f64(), Some(measured));
    assert!(lag["fact"]["nonce"]
        .as_str()
        .unwrap()
        .starts_with("canary-eu-test-"));
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let w = truth["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "canary-eu-test")
        .unwrap();
    assert_eq!(w["value"], lag["fact"]["nonce"]);

    put_fact(&sim, "basic-plan-price", "14 EUR per month");
    let changed = now();
    let t0 = Instant::now();
    // Stale for the index's 3 s: the old value is named and dated from the change.
    for at in [0.3, 1.5] {
        std::thread::sleep(Duration::from_secs_f64(at).saturating_sub(t0.elapsed()));
        let before = now() - changed;
        let (r, out) = run(dir.path(), &state_arg);
        let after = now() - changed;
        let f = &case(&r, "price")["freshness"];
        assert_eq!(f["fresh"], false, "at {at}s: {out}");
        assert_eq!(f["stale_value"], "12 EUR per month", "{f}");
        assert_eq!(f["lower_bound"], false);
        let st = f["staleness_seconds"].as_f64().unwrap();
        assert!(
            st >= before - 0.05 && st <= after + 0.05,
            "staleness {st} outside [{before}, {after}]"
        );
        assert_eq!(case(&r, "price")["outcome"], "check_failed");
    }
    // Without the history (a fresh CronJob pod without state), a lower bound from the truth.
    let (r, _) = run(dir.path(), &[]);
    let f = &case(&r, "price")["freshness"];
    assert_eq!(f["fresh"], false);
    assert_eq!(f["lower_bound"], true);
    assert_eq!(f["stale_value"], Value::Null);
    // Once the index has caught up, fresh again.
    std::thread::sleep(Duration::from_secs_f64(3.3).saturating_sub(t0.elapsed()));
    let (r, out) = run(dir.path(), &state_arg);
    assert_eq!(case(&r, "price")["freshness"]["fresh"], true, "{out}");
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains("14 EUR per month") && saved.contains("12 EUR per month"),
        "{saved}"
    );
}

#[test]
fn tier_escalation_and_a_hidden_slice_are_counted_exactly() {
    let sim = Sim::start(1, None);
    let dir = tempfile::tempdir().unwrap();
    // Chat: two fallback cases of eight, two refusals (outside what the model knows).
    let mut g = String::new();
    let prompts = [
        ("fr", "geo", "What is the capital of France?", false),
        ("jp", "geo", "What is the capital of Japan?", false),
        (
            "fr-over",
            "overflow",
            "What is the capital of France?",
            true,
        ),
        ("jp-over", "overflow", "What is the capital of Japan?", true),
        (
            "klingon",
            "ood",
            "Translate good morning into Klingon poetry.",
            false,
        ),
        ("zorblax", "ood", "Explain the zorblax protocol.", false),
        ("m1", "misc", "Tell me about Mercury.", false),
        ("m2", "misc", "What is a bank?", false),
    ];
    for (id, slice, p, fallback) in prompts {
        let params = if fallback {
            ", \"params\": {\"sim_tier\": \"fallback\"}"
        } else {
            ""
        };
        g += &format!("{{\"id\": \"{id}\", \"slice\": \"{slice}\", \"input\": {{\"text\": \"{p}\"{params}}}}}\n");
    }
    write(dir.path(), "g.jsonl", &g);
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            r#"suite: mix
defaults: {{ runs: 2 }}
endpoints:
  chat:
    protocol: openai-chat
    url: "{}/v1/chat/completions"
    model: sim-plain
    tier: {{ json: "$.model", primary: [sim-plain] }}
probes:
  - {{ name: chat, endpoint: chat, golden: g.jsonl }}
slos:
  - {{ name: primary, probe: chat, sli: tier_primary, objective: 70%, per_slice: true }}
  - {{ name: escalations, probe: chat, sli: not_escalated, objective: 70% }}
"#,
            sim.url
        ),
    );
    let report = dir.path().join("r.json");
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, _) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a collapsed slice fails the run: {stdout}"
    );
    assert!(
        stdout.contains("hidden regression: slice `overflow` misses `primary`"),
        "{stdout}"
    );
    let r = read_json(&report);
    let agg = r["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slice"] == "*")
        .unwrap();
    // 16 runs, 4 of them forced onto the fallback tier.
    assert_eq!(agg["counts"]["tier_primary"]["good"], 12, "{agg}");
    assert_eq!(agg["counts"]["tier_primary"]["total"], 16);
    assert_eq!(agg["tiers"]["sim-fallback-mini"], 4);
    // Exactly the refusals escalate, each with its phrase.
    assert_eq!(agg["counts"]["not_escalated"]["good"], 12, "{agg}");
    for c in r["cases"].as_array().unwrap() {
        let ood = c["slice"] == "ood";
        assert_eq!(c["escalated"], ood, "{c}");
        assert_eq!(c["escalation_phrase"].is_string(), ood, "{c}");
    }
    let slos = r["slos"].as_array().unwrap();
    let hidden: Vec<&Value> = slos.iter().filter(|v| v["hidden"] == true).collect();
    assert_eq!(hidden.len(), 1, "{slos:?}");
    assert_eq!(hidden[0]["slice"], "overflow");
    // Answer shape per slice.
    assert!(
        agg["answer_chars"]["count"].as_u64().unwrap() == 16,
        "{agg}"
    );
    assert_report_valid(&r);
}
