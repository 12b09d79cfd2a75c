//! Judged quality end to end against the simulator: judged pass rates per slice equal the
//! simulator judge's own verdicts; a malformed verdict is a `judge_error`; the judgment
//! cache makes a second run ask no judge; `canary calibrate` reports a 10% judge at 10% ±
//! its sampling error; similarity through the embeddings endpoint; conversations with the
//! real answers, canned tool results and a failed turn named; the gate names the slice whose
//! judged quality dropped.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

fn sim_truth(sim: &Sim) -> Value {
    serde_json::from_str(&sim.get("/truth")).unwrap()
}

/// A suite over `base` with a chat endpoint, a judge (model `judge_model`) and embeddings.
fn suite(
    dir: &Path,
    base: &str,
    judge_base: &str,
    judge_model: &str,
    golden: &str,
    extra: &str,
) -> PathBuf {
    write(dir, "cases.jsonl", golden);
    write(
        dir,
        "judged.yaml",
        &format!(
            r#"suite: judged
defaults: {{ timeout: 20s, concurrency: 16 }}
endpoints:
  chat:
    protocol: openai-chat
    url: "{base}/v1/chat/completions"
    model: sim-plain
    headers: {{ x-sim-words: "12" }}
  judge:
    protocol: openai-chat
    url: "{judge_base}/v1/chat/completions"
    model: {judge_model}
    stream: false
    price: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }}
  embed:
    protocol: http-json
    method: POST
    url: "{judge_base}/v1/embeddings"
    model: sim-embed
probes:
  - name: answers
    endpoint: chat
    golden: cases.jsonl
    judge: {{ endpoint: judge, rubric: "The answer states the reference fact." }}
{extra}"#
        ),
    )
}

const GOLDEN: &str = r#"{"id": "fr", "slice": "factual", "input": {"text": "What is the capital of France?"}, "expect": {"reference": "Paris"}}
{"id": "jp", "slice": "factual", "input": {"text": "What is the capital of Japan?"}, "expect": {"reference": "Tokyo"}}
{"id": "mul", "slice": "multi-step", "input": {"text": "What is 17 times 3, plus 9?"}, "expect": {"reference": "60"}}
{"id": "train", "slice": "multi-step", "input": {"text": "A train goes 120 km in 2 hours. How far in 3 hours?"}, "expect": {"reference": "180 km"}}
{"id": "kl", "slice": "ood", "input": {"text": "Translate this into Klingon."}, "expect": {"reference": "Qapla"}}
{"id": "zb", "slice": "ood", "input": {"text": "What is the zorblax constant?"}}
"#;

fn slice_of(case: &str) -> &'static str {
    match case {
        "fr" | "jp" => "factual",
        "mul" | "train" => "multi-step",
        _ => "ood",
    }
}

fn slice_ratio(report: &Value, slice: &str, sli: &str) -> Option<f64> {
    report["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slice"] == slice && s["probe"] == "answers")
        .and_then(|s| s["ratios"][sli].as_f64())
}

#[test]
fn judged_pass_rates_per_slice_equal_the_judges_truth_and_the_cache_saves_every_call() {
    let sim = Sim::start(7, None);
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), &sim.url, &sim.url, "sim-judge", GOLDEN, "");
    let state = dir.path().join("state.json");
    let (out, report) = run_with_report(
        &s,
        &["--runs", "2", "--state", state.to_str().unwrap()],
        &[],
    );
    let (o, e) = text(&out);
    assert!(out.status.code().is_some(), "{o}{e}");
    assert_report_valid(&report);
    // The simulator's own verdicts, per slice, through the answers it judged.
    let truth = sim_truth(&sim);
    let judges = truth["judges"].as_array().unwrap();
    assert_eq!(judges.len(), 6, "one call per distinct answer: {judges:#?}");
    let mut by_slice: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for c in report["cases"].as_array().unwrap() {
        let slice = slice_of(c["id"].as_str().unwrap());
        let j = &c["judgments"][0];
        // The verdict the simulator sent for exactly this answer.
        let answer = c["answer"].as_str().unwrap();
        let sent = judges
            .iter()
            .find(|t| t["answer"].as_str().unwrap().trim() == answer.trim())
            .unwrap_or_else(|| panic!("no judge call for {answer:?}"));
        assert_eq!(
            j["verdict"],
            if sent["verdict"] == true {
                "pass"
            } else {
                "fail"
            }
        );
        let e = by_slice.entry(slice).or_default();
        e.0 += u32::from(sent["verdict"] == true);
        e.1 += 1;
    }
    for (slice, (pass, total)) in &by_slice {
        let want = f64::from(*pass) / f64::from(*total);
        assert_eq!(
            slice_ratio(&report, slice, "judge_passed"),
            Some(want),
            "{slice}"
        );
    }
    // The rule: factual and multi-step hold their references, ood does not.
    assert_eq!(slice_ratio(&report, "factual", "judge_passed"), Some(1.0));
    assert_eq!(slice_ratio(&report, "ood", "judge_passed"), Some(0.0));
    // The second run of each case in the same process was served from the cache.
    let cached = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["judgments"][0]["cached"] == true)
        .count();
    assert_eq!(cached, 6);
    // Judge tokens and dollars: per run and per slice.
    let all = report["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slice"] == "*")
        .unwrap();
    assert_eq!(all["judge"]["judged"], 12);
    assert!(all["judge"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(all["judge"]["cost_dollars"].as_f64().unwrap() > 0.0);
    assert!(state.with_extension("judgments.json").exists());

    // A second run with the same state asks the judge nothing; the table says so.
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let (o, _) = text(&out);
    let line = o
        .lines()
        .find(|l| l.starts_with("judge chat / answers: 6 judged, "))
        .unwrap_or_else(|| panic!("{o}"));
    assert!(
        line.ends_with(" 0 judge errors; 6 cached; judge tokens 0 in, 0 out"),
        "{line}"
    );
    let (out, report) = run_with_report(&s, &["--state", state.to_str().unwrap()], &[]);
    assert!(out.status.code().is_some());
    assert_eq!(sim_truth(&sim)["judges"].as_array().unwrap().len(), 6);
    for c in report["cases"].as_array().unwrap() {
        assert_eq!(c["judgments"][0]["cached"], true, "{c:#}");
        assert!(c.get("judge_tokens").is_none());
    }
    assert_eq!(slice_ratio(&report, "factual", "judge_passed"), Some(1.0));
}

#[test]
fn a_malformed_verdict_is_a_judge_error_never_a_pass() {
    let sim = Sim::start(7, None);
    let dir = tempfile::tempdir().unwrap();
    let s = suite(
        dir.path(),
        &sim.url,
        &sim.url,
        "sim-judge-malformed",
        GOLDEN,
        "",
    );
    let (_, report) = run_with_report(&s, &[], &[]);
    assert_report_valid(&report);
    for c in report["cases"].as_array().unwrap() {
        assert_eq!(c["judgments"][0]["verdict"], "judge_error", "{c:#}");
        assert_eq!(c["outcome"], "check_failed");
        let check = c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["check"] == "judge")
            .unwrap();
        assert_eq!(check["passed"], false);
        assert!(
            check["detail"]
                .as_str()
                .unwrap()
                .starts_with("judge_error: the verdict is not the JSON object"),
            "{check}"
        );
    }
    assert_eq!(slice_ratio(&report, "factual", "judge_passed"), Some(0.0));
    let all = report["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slice"] == "*")
        .unwrap();
    assert_eq!(all["judge"]["judge_errors"], 6);
}

#[test]
fn calibrate_reports_a_ten_percent_judge_at_ten_percent() {
    let sim = Sim::start(11, None);
    let dir = tempfile::tempdir().unwrap();
    // 300 labelled answers: the label is the truth of the simulator's rule (a human who agrees
    // with it), so the judge's error rate against the labels is its flip rate.
    let mut golden = String::new();
    for i in 0..300 {
        let (q, reference, label) = match i % 3 {
            0 => ("What is the capital of France?", "Paris", "pass"),
            1 => ("What is the capital of Japan?", "Tokyo", "pass"),
            _ => ("What is the capital of France?", "Lyon", "fail"),
        };
        let slice = if i % 2 == 0 { "even" } else { "odd" };
        golden.push_str(
            &json!({"id": format!("c{i}"), "slice": slice,
                    "input": {"text": format!("{q} (variant {i})")},
                    "expect": {"reference": reference, "label": label}})
            .to_string(),
        );
        golden.push('\n');
    }
    let s = suite(
        dir.path(),
        &sim.url,
        &sim.url,
        "sim-judge-err10",
        &golden,
        "",
    );
    let out = canary(&["calibrate", s.to_str().unwrap(), "--json"], &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    let rows: Vec<Value> = serde_json::from_str(&o).unwrap();
    let all = rows.iter().find(|r| r["slice"] == "*").unwrap();
    assert_eq!(all["labelled"], 300);
    let err = all["error_rate"].as_f64().unwrap();
    let se = all["error_rate_stderr"].as_f64().unwrap();
    // The simulator's truth: the share it flipped.
    let judges = sim_truth(&sim)["judges"].as_array().unwrap().clone();
    let flipped =
        judges.iter().filter(|j| j["flipped"] == true).count() as f64 / judges.len() as f64;
    assert!(
        (err - flipped).abs() < 1e-9,
        "reported {err}, flipped {flipped}"
    );
    // 10% within three standard errors of a binomial share over 300 (±5.2 points).
    assert!(
        (err - 0.10).abs() <= 3.0 * (0.1f64 * 0.9 / 300.0).sqrt(),
        "{err} ± {se}"
    );
    assert!(all["false_pass_rate"].as_f64().is_some() && all["false_fail_rate"].as_f64().is_some());
    for slice in ["even", "odd"] {
        assert!(rows.iter().any(|r| r["slice"] == slice), "{slice}");
    }
    // The table prints the same.
    let out = canary(&["calibrate", s.to_str().unwrap()], &[]);
    let (o, _) = text(&out);
    assert!(o.contains("error rate") && o.contains("false pass"), "{o}");
    assert!(o.contains(&format!("{:.1}%", err * 100.0)), "{o}");
}

#[test]
fn self_agreement_over_samples_and_similarity_through_embeddings() {
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    let golden = r#"{"id": "fr", "slice": "factual", "input": {"text": "What is the capital of France?"}, "expect": {"reference": "The capital of France is Paris.", "judge": {"samples": 5}}}
{"id": "jp", "slice": "factual", "input": {"text": "What is the capital of Japan?"}, "expect": {"reference": "The capital of France is Paris.", "similar": 0.9, "judge": false}}
"#;
    let s = suite(
        dir.path(),
        &sim.url,
        &sim.url,
        "sim-judge-err30",
        golden,
        "    similar: { endpoint: embed, threshold: 0.5 }\n",
    );
    let (_, report) = run_with_report(&s, &[], &[]);
    assert_report_valid(&report);
    let cases = report["cases"].as_array().unwrap();
    let fr = cases.iter().find(|c| c["id"] == "fr").unwrap();
    let j = &fr["judgments"][0];
    assert_eq!(j["samples"], 5);
    let agree = j["passes"]
        .as_u64()
        .unwrap()
        .max(j["fails"].as_u64().unwrap()) as f64
        / 5.0;
    assert_eq!(j["agreement"].as_f64(), Some(agree));
    // Five distinct requests (a seed per sample), each flipped or not on its own.
    let judges = sim_truth(&sim)["judges"].as_array().unwrap().clone();
    let seeds: std::collections::BTreeSet<u64> = judges
        .iter()
        .filter_map(|j| j["sample_seed"].as_u64())
        .collect();
    assert_eq!(seeds.len(), 5);
    let passes = judges.iter().filter(|j| j["verdict"] == true).count() as u64;
    assert_eq!(j["passes"].as_u64(), Some(passes));
    let all = report["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slice"] == "*")
        .unwrap();
    assert_eq!(all["judge"]["self_agreement"].as_f64(), Some(agree));
    // Similarity: the France answer (12 words) is close to its reference; Japan's is not
    // at the case's threshold 0.9.
    let sim_of = |c: &Value| c["similar"][0]["similarity"].as_f64().unwrap();
    assert!(sim_of(fr) > 0.5, "{fr:#}");
    let jp = cases.iter().find(|c| c["id"] == "jp").unwrap();
    assert!(sim_of(jp) < 0.9);
    assert_eq!(jp["similar"][0]["passed"], false);
    assert!(jp.get("judgments").is_none());
    assert_eq!(slice_ratio(&report, "factual", "similar"), Some(0.5));
    assert_eq!(sim_truth(&sim)["embedded"], 4);
}

const CONVERSATION: &str = r#"{"id": "paris", "slice": "multi-turn", "input": {"params": {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}, "turns": [{"user": "What is the capital of France?", "expect": {"contains": ["Paris"]}}, {"user": "What is its population?", "expect": {"judge": true, "reference": "2.1 million"}}, {"user": "What is the weather there now?", "tool_results": {"get_weather": {"temp_c": 21}}, "expect": {"contains": ["21 degrees"]}}]}, "expect": {"contains": ["Paris"]}}
{"id": "single", "slice": "factual", "input": {"text": "What is the capital of Japan?"}, "expect": {"reference": "Tokyo"}}
"#;

#[test]
fn a_conversation_sends_the_real_answers_answers_tools_and_names_a_failed_turn() {
    let sim = Sim::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    let s = suite(
        dir.path(),
        &sim.url,
        &sim.url,
        "sim-judge",
        CONVERSATION,
        "",
    );
    let (out, report) = run_with_report(&s, &[], &[]);
    assert_report_valid(&report);
    let (o, e) = text(&out);
    let c = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "paris")
        .unwrap();
    assert_eq!(c["outcome"], "ok", "{c:#}\n{o}{e}");
    let turns = c["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[2]["tool_calls"], 1);
    for t in turns {
        assert!(
            t["latency"]["time_to_first_visible_token"]
                .as_f64()
                .is_some(),
            "{t:#}"
        );
    }
    // The conversation's own latency covers every turn; each turn SLI is its worst turn.
    let conv = c["latency"]["conversation_duration"].as_f64().unwrap();
    let sum: f64 = turns
        .iter()
        .map(|t| t["latency"]["time_to_completion"].as_f64().unwrap())
        .sum();
    assert!(conv >= sum, "{conv} < {sum}");
    let worst = turns
        .iter()
        .map(|t| {
            t["latency"]["time_to_first_visible_token"]
                .as_f64()
                .unwrap()
        })
        .fold(0.0, f64::max);
    assert_eq!(
        c["latency"]["time_to_first_visible_token"].as_f64(),
        Some(worst)
    );
    // The simulator saw the real first answer in the second request (it answers the
    // population only from a conversation that named Paris), and the canned tool result.
    let streams = sim_truth(&sim)["streams"].as_array().unwrap().clone();
    assert!(streams
        .iter()
        .any(|s| s["answer"].as_str().unwrap().contains("2.1 million")));
    assert!(streams.iter().any(|s| s["answer"]
        .as_str()
        .unwrap()
        .starts_with("The weather in Paris is 21 degrees.")));
    assert_eq!(c["judgments"][0]["turn"], 2);
    assert_eq!(
        slice_ratio(&report, "multi-turn", "judge_passed"),
        Some(1.0)
    );
    // A forgetful endpoint fails the second turn, named.
    let forgetful = Sim::start(5, Some("profile: forgetful\n"));
    let s = suite(
        dir.path(),
        &forgetful.url,
        &sim.url,
        "sim-judge",
        CONVERSATION,
        "",
    );
    let (_, report) = run_with_report(&s, &[], &[]);
    let c = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "paris")
        .unwrap();
    assert_eq!(c["outcome"], "check_failed");
    let failed: Vec<&str> = c["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["passed"] == false)
        .map(|k| k["detail"].as_str().unwrap())
        .collect();
    // The second turn fails (its judge), and so does the conversation's judge; no other turn.
    assert!(
        failed.iter().any(|d| d.starts_with("turn 2: fail")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .all(|d| d.starts_with("turn 2: ") || d.starts_with("conversation: ")),
        "{failed:?}"
    );
    assert_eq!(
        slice_ratio(&report, "multi-turn", "judge_passed"),
        Some(0.0)
    );
    assert_eq!(slice_ratio(&report, "factual", "judge_passed"), Some(1.0));
}

#[test]
fn the_gate_names_the_slice_whose_judged_quality_dropped() {
    let base = Sim::start(5, None);
    let cand = Sim::start(5, Some("profile: forgetful\n"));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(
        dir.path(),
        &base.url,
        &base.url,
        "sim-judge",
        CONVERSATION,
        "gate:\n  slis: [judge_passed]\n  min_runs: 4\n",
    );
    let out = canary(
        &[
            "gate",
            s.to_str().unwrap(),
            "--candidate",
            &cand.url,
            "--baseline",
            &base.url,
            "--runs",
            "6",
        ],
        &[],
    );
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    let all = format!("{o}{e}");
    let line = all
        .lines()
        .find(|l| l.contains("judge_passed") && l.contains("multi-turn"))
        .unwrap_or_else(|| panic!("no judge_passed line naming multi-turn:\n{all}"));
    assert!(!line.contains("factual"), "{line}");
    assert!(
        !all.lines()
            .any(|l| l.contains("judge_passed") && l.contains("factual") && l.contains("regress")),
        "{all}"
    );
}
