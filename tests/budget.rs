//! Probe budgets: token and cost accounting in the report and the exposition, rotation of a
//! golden set under a daily token budget (every case within its coverage period, each tick's
//! share as planned), streams left at their first visible token, and `canary plan` numbers
//! that match what a run produces.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn plan(suite: &std::path::Path) -> Value {
    let out = canary(&["plan", suite.to_str().unwrap(), "--json"], &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    serde_json::from_str::<Value>(&o).unwrap()[0].clone()
}

fn series(prom: &str) -> Vec<String> {
    prom.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn plan_prints_every_example_suite_and_the_budget_fits() {
    let mut args = vec!["plan".to_string()];
    for f in std::fs::read_dir(repo().join("probes")).unwrap() {
        args.push(f.unwrap().path().to_string_lossy().into_owned());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = canary(&a, &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    for s in [
        "suite chat",
        "suite llama-mapper",
        "suite voice-agent",
        "tokens/day",
        "series:",
    ] {
        assert!(o.contains(s), "{s} missing:\n{o}");
    }
    let p = plan(&repo().join("probes/chat.yaml"));
    let b = p["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["probe"] == "chat-latency-budget")
        .unwrap();
    assert!(
        b["tokens_per_day"].as_f64().unwrap() <= 100_000.0 + 1e-6,
        "{b}"
    );
    assert_eq!(b["ticks_per_day"], 288);
    assert_eq!(b["coverage_ok"], true);
    assert!(b["coverage_seconds"].as_f64().unwrap() <= 3600.0);
}

#[test]
fn a_healthy_run_writes_exactly_the_planned_series() {
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let suite = repo().join("probes/llama-mapper.yaml");
    let out = canary(
        &[
            "run",
            suite.to_str().unwrap(),
            "-q",
            "--runs",
            "1",
            "--textfile",
            prom.to_str().unwrap(),
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{:?}",
        text(&out)
    );
    let got = series(&std::fs::read_to_string(&prom).unwrap());
    let p = plan(&suite);
    let fixed = p["series"]["fixed"].as_u64().unwrap() as usize;
    let max = fixed + p["series"]["dynamic_max"].as_u64().unwrap() as usize;
    // Values from responses (tier names) and failed checks are the planned dynamic part.
    let dynamic = got
        .iter()
        .filter(|l| {
            l.starts_with("canary_tier_total")
                || (l.starts_with("canary_checks_total") && l.contains("passed=\"false\""))
        })
        .count();
    assert_eq!(got.len() - dynamic, fixed, "series written vs planned");
    assert!(got.len() <= max);
}

fn budget_suite(dir: &std::path::Path, sim: &str, cardinality: &str) -> std::path::PathBuf {
    std::fs::copy(repo().join("golden/chat.jsonl"), dir.join("chat.jsonl")).unwrap();
    write(
        dir,
        "b.yaml",
        &format!(
            r#"suite: budget
{cardinality}
endpoints:
  chat:
    protocol: openai-chat
    url: "{sim}/v1/chat/completions"
    model: sim-plain
    price: {{ input_per_mtok: 0.15, output_per_mtok: 0.60 }}
    max_tokens: 300
probes:
  - name: full
    endpoint: chat
    golden: chat.jsonl
    schedule: "*/5 * * * *"
  - name: rotating
    endpoint: chat
    golden: chat.jsonl
    schedule: "*/5 * * * *"
    budget: {{ tokens_per_day: 100000 }}
    coverage: 1h
    stop_after: first_visible
    expected_output_tokens: 40
"#
        ),
    )
}

#[test]
fn rotation_covers_every_case_within_the_hour_and_accounts_tokens() {
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    let suite = budget_suite(dir.path(), &sim.url, "");
    let p = plan(&suite);
    let rot = p["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["probe"] == "rotating")
        .unwrap();
    let rate = rot["cases_per_tick"].as_f64().unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut first_full: Option<Value> = None;
    // One hour of 5-minute ticks, as a CronJob would run them.
    for tick in 0..12u64 {
        let report = dir.path().join(format!("r{tick}.json"));
        let out = canary(
            &[
                "run",
                suite.to_str().unwrap(),
                "-q",
                "--tick",
                &tick.to_string(),
                "--region",
                "eu-west-1",
                "--report",
                report.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{:?}",
            text(&out)
        );
        let r = read_json(&report);
        let cases: Vec<&Value> = r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["probe"] == "rotating")
            .collect();
        let want = ((tick + 1) as f64 * rate).floor() - (tick as f64 * rate).floor();
        assert_eq!(cases.len() as f64, want, "tick {tick}");
        for c in &cases {
            seen.insert(c["id"].as_str().unwrap().to_string());
            assert_eq!(c["stopped_early"], true, "{c}");
            assert!(c["latency"]["time_to_first_visible_token"].is_number());
            assert!(c["latency"].get("time_to_completion").is_none(), "{c}");
        }
        if first_full.is_none() {
            first_full = Some(r);
        }
    }
    assert_eq!(
        seen.len(),
        10,
        "every case within the coverage hour: {seen:?}"
    );
    // Tokens and cost per slice in the report: the full probe read the server's usage.
    let r = first_full.unwrap();
    let agg = r["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["probe"] == "full" && s["slice"] == "*")
        .unwrap();
    let t = &agg["tokens"];
    assert_eq!(t["runs"], 10);
    assert_eq!(t["estimated_runs"], 0, "the simulator reports usage: {t}");
    assert_eq!(t["input"], 120, "12 prompt tokens per run: {t}");
    let cost = t["cost_dollars"].as_f64().unwrap();
    let expect = (t["input"].as_f64().unwrap() * 0.15 + t["output"].as_f64().unwrap() * 0.60) / 1e6;
    assert!((cost - expect).abs() < 1e-12, "{cost} vs {expect}");
}

#[test]
fn tokens_and_cost_reach_the_exposition_and_cardinality_keeps_histograms_aggregate() {
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    let suite = budget_suite(
        dir.path(),
        &sim.url,
        "cardinality: { per_slice: [time_to_first_visible_token], max_series: 100000 }",
    );
    let prom = dir.path().join("m.prom");
    let out = canary(
        &[
            "run",
            suite.to_str().unwrap(),
            "-q",
            "--tick",
            "0",
            "--textfile",
            prom.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{:?}",
        text(&out)
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("canary_tokens_total{") && text.contains("kind=\"input\""),
        "{text}"
    );
    assert!(text.contains("canary_cost_dollars_total{"), "{text}");
    let ttc_slices: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("canary_time_to_completion_seconds_count"))
        .filter_map(|l| l.split("slice=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(ttc_slices, BTreeSet::from(["*"]), "only the aggregate");
    let ttfvt_slices = text
        .lines()
        .filter(|l| l.starts_with("canary_time_to_first_visible_token_seconds_count"))
        .count();
    assert!(ttfvt_slices >= 5, "per slice: {ttfvt_slices}");
    // A series budget below what the suite creates is a load error naming the numbers.
    let tight = budget_suite(dir.path(), &sim.url, "cardinality: { max_series: 50 }");
    let out = canary(&["validate", tight.to_str().unwrap()], &[]);
    let (_, err) = common::text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("over max_series 50"), "{err}");
}
