//! Generated SLO rules proven with the real tools: `promtool check rules` on every example
//! suite's rules, `promtool test rules` on the burn scenarios (20x pages, 2x only tickets,
//! healthy is quiet, a collapsed slice is named while the aggregate is fine), the same
//! scenarios as canary's own evaluator; and the Pyrra, Sloth and OpenSLO documents validated
//! against their schemas.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

fn rules(suites: &[&str], format: &str) -> String {
    let mut args = vec!["rules"];
    args.extend_from_slice(suites);
    args.extend_from_slice(&["--format", format]);
    let out = canary(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian's prometheus package) is needed; .ci/run installs it");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml_docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| canary::suite::yaml::parse(d).unwrap().to_json())
        .collect()
}

#[test]
fn generated_rules_pass_promtool_check() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "rules.yaml",
        &rules(
            &["probes/llama-mapper.yaml", "probes/chat.yaml"],
            "prometheus",
        ),
    );
    let (ok, out) = promtool(&["check", "rules", f.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // The operator flavour wraps the same groups.
    let op = yaml_docs(&rules(&["probes/llama-mapper.yaml"], "prometheus-operator"));
    assert_eq!(op[0]["kind"], "PrometheusRule");
    let spec = write(
        dir.path(),
        "spec.yaml",
        &canary::sink::yaml_out::to_yaml(&op[0]["spec"]),
    );
    let (ok, out) = promtool(&["check", "rules", spec.to_str().unwrap()]);
    assert!(ok, "{out}");
}

/// Renders `{{ $labels.x }}` and `{{ $value | humanizePercentage }}` as Prometheus would.
fn render(template: &str, labels: &Value, value: &str) -> String {
    let mut s = template.replace("{{ $value | humanizePercentage }}", value);
    for (k, v) in labels.as_object().unwrap() {
        s = s.replace(&format!("{{{{ $labels.{k} }}}}"), v.as_str().unwrap());
    }
    s
}

#[test]
fn promtool_unit_tests_fire_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let text = rules(&["tests/fixtures/rules/suite.yaml"], "prometheus");
    let rules_file = write(dir.path(), "rules.yaml", &text);
    let generated = canary::suite::yaml::parse(&text).unwrap().to_json();
    let alert_rule = |sev: &str, per_slice: bool| -> Value {
        generated["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .find(|r| {
                r["alert"] == "CanarySLOErrorBudgetBurn"
                    && r["labels"]["severity"] == sev
                    && (r["labels"].get("slice").is_none() == per_slice)
            })
            .unwrap()
            .clone()
    };
    let scenarios: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/burn-scenarios.json")).unwrap(),
    )
    .unwrap();
    let mut tests = Vec::new();
    for sc in &scenarios {
        let minutes = sc["eval_minutes"].as_u64().unwrap();
        let mut series = Vec::new();
        for (slice, rate) in sc["slices"].as_object().unwrap() {
            for (good, per_min) in [
                ("true", rate["good"].as_u64().unwrap()),
                ("false", rate["bad"].as_u64().unwrap()),
            ] {
                series.push(json!({
                    "series": format!("canary_slo_events_total{{region=\"eu\",suite=\"rules-test\",endpoint=\"e\",probe=\"p\",slo=\"avail\",slice=\"{slice}\",good=\"{good}\"}}"),
                    "values": format!("0+{per_min}x{}", minutes + 5),
                }));
            }
        }
        let mut by_sev: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for e in sc["expect"].as_array().unwrap() {
            let sev = e["severity"].as_str().unwrap();
            let slice = e["slice"].as_str().unwrap();
            let per_slice = slice != "*";
            let rule = alert_rule(sev, per_slice);
            let labels = json!({"region": "eu", "suite": "rules-test", "slo": "avail", "slice": slice, "severity": sev});
            // The alert's value is its long-window error ratio: the scenario's error share.
            let (bad, total): (u64, u64) = sc["slices"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(n, _)| !per_slice || n.as_str() == slice)
                .fold((0, 0), |(b, t), (_, r)| {
                    let (g, x) = (r["good"].as_u64().unwrap(), r["bad"].as_u64().unwrap());
                    (b + x, t + g + x)
                });
            let pct = bad as f64 * 100.0 / total as f64;
            let value = format!(
                "{}%",
                format!("{pct:.4}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
            );
            let mut annotations = json!({});
            for (k, v) in rule["annotations"].as_object().unwrap() {
                annotations[k] = json!(render(v.as_str().unwrap(), &labels, &value));
            }
            by_sev
                .entry(sev.to_string())
                .or_default()
                .push(json!({"exp_labels": labels, "exp_annotations": annotations}));
        }
        let eval = format!("{minutes}m");
        let mut alert_tests = Vec::new();
        // promtool matches by alert name: every expected alert of the name at once.
        let all: Vec<Value> = by_sev.values().flatten().cloned().collect();
        alert_tests.push(
            json!({"eval_time": eval, "alertname": "CanarySLOErrorBudgetBurn", "exp_alerts": all}),
        );
        tests.push(json!({"interval": "1m", "name": sc["name"], "input_series": series, "alert_rule_test": alert_tests}));
    }
    let test_doc = json!({"rule_files": [rules_file.to_str().unwrap()], "evaluation_interval": "1m", "tests": tests});
    let test_file = write(
        dir.path(),
        "tests.yaml",
        &canary::sink::yaml_out::to_yaml(&test_doc),
    );
    let (ok, out) = promtool(&["test", "rules", test_file.to_str().unwrap()]);
    assert!(
        ok,
        "{out}\n--- tests ---\n{}",
        std::fs::read_to_string(&test_file).unwrap()
    );
}

#[test]
fn staleness_alerts_fire_after_two_schedule_periods() {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = write(
        dir.path(),
        "rules.yaml",
        &rules(
            &[
                "tests/fixtures/rules/suite.yaml",
                "--runbook-url",
                "https://runbooks.example/canary/slo.md",
            ],
            "prometheus",
        ),
    );
    // Runs every 5 minutes until minute 10, then nothing: stale after 2 periods (10 min).
    let doc = json!({
        "rule_files": [rules_file.to_str().unwrap()],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": "canary_last_success_timestamp_seconds{region=\"eu\",suite=\"rules-test\",endpoint=\"e\",probe=\"p\"}", "values": "0+60x10 600x30"},
                {"series": "canary_last_run_timestamp_seconds{region=\"eu\",suite=\"rules-test\",endpoint=\"e\",probe=\"p\"}", "values": "0+60x10"}
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "CanaryProbeStale", "exp_alerts": []},
                {"eval_time": "25m", "alertname": "CanaryProbeStale", "exp_alerts": [{
                    "exp_labels": {"region": "eu", "suite": "rules-test", "endpoint": "e", "probe": "p", "severity": "ticket"},
                    "exp_annotations": {
                        "summary": "canary probe p of suite rules-test got no answer for 2 schedule periods (10m) in eu",
                        "description": "Either the endpoint fails every case or canary itself stopped running; its SLO metrics are stale.",
                        "runbook_url": "https://runbooks.example/canary/slo.md#stale-probes"
                    }
                }]},
                {"eval_time": "9m", "alertname": "CanaryMetricsAbsent", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "CanaryMetricsAbsent", "exp_alerts": [{
                    "exp_labels": {"suite": "rules-test", "severity": "ticket"},
                    "exp_annotations": {
                        "summary": "no canary run of suite rules-test reported for 10m",
                        "description": "The CronJob, the Pushgateway or the scrape is broken: no SLO of this suite is being measured.",
                        "runbook_url": "https://runbooks.example/canary/slo.md#stale-probes"
                    }
                }]}
            ]
        }]
    });
    let f = write(
        dir.path(),
        "tests.yaml",
        &canary::sink::yaml_out::to_yaml(&doc),
    );
    let (ok, out) = promtool(&["test", "rules", f.to_str().unwrap()]);
    assert!(ok, "{out}");
}

fn validate_all(schema_file: &str, docs: &[Value]) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/rules").join(schema_file)).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(!docs.is_empty());
    for d in docs {
        let errors: Vec<String> = v
            .iter_errors(d)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{schema_file}: {errors:?}\n{d}");
    }
    // The schema must be able to fail.
    assert!(!v.is_valid(&json!({"kind": "nonsense"})));
}

#[test]
fn pyrra_sloth_and_openslo_documents_validate() {
    let suites = ["probes/llama-mapper.yaml", "probes/chat.yaml"];
    let pyrra = yaml_docs(&rules(&suites, "pyrra"));
    validate_all("pyrra-slo.schema.json", &pyrra);
    let per_slice = pyrra
        .iter()
        .find(|d| d["metadata"]["name"] == "llama-mapper-mapper-latency-p95")
        .unwrap();
    assert_eq!(
        per_slice["spec"]["indicator"]["ratio"]["grouping"],
        json!(["region", "slice"])
    );
    assert_eq!(per_slice["spec"]["target"], "95");
    let sloth = yaml_docs(&rules(&suites, "sloth"));
    validate_all("sloth-v1.schema.json", &sloth);
    // Sloth has no grouping: one SLO per slice besides the aggregate.
    let names: Vec<&str> = sloth[0]["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"mapper-latency-p95-detector-presidio"),
        "{names:?}"
    );
    let openslo = yaml_docs(&rules(&suites, "openslo"));
    validate_all("openslo-v1.schema.json", &openslo);
    for slo in openslo.iter().filter(|d| d["kind"] == "SLO") {
        let r = slo["spec"]["indicatorRef"].as_str().unwrap();
        assert!(
            openslo
                .iter()
                .any(|d| d["kind"] == "SLI" && d["metadata"]["name"] == r),
            "{r}"
        );
    }
}

#[test]
fn rules_without_a_runbook_url_carry_none_and_a_relative_one_is_refused() {
    let out = canary(
        &[
            "rules",
            "tests/fixtures/rules/suite.yaml",
            "--format",
            "prometheus",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("runbook_url"), "{stdout}");
    assert!(stderr.contains("--runbook-url"), "{stderr}");
    let out = canary(
        &[
            "rules",
            "tests/fixtures/rules/suite.yaml",
            "--runbook-url",
            "docs/slo.md",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("absolute http(s) URL"));
}
