//! `canary gate` end to end against two simulators (a baseline and a candidate with a
//! behaviour preset): an identical candidate passes; a one-slice quality regression fails and
//! the Markdown names the slice and the SLI; a 30% latency regression on p95 fails with enough
//! runs and is inconclusive (exit 4) with too few; the JUnit XML has the shape CI systems read.

mod common;
use common::*;
use std::process::Command;

fn sim_with_profile(profile: Option<&str>) -> (std::process::Child, String) {
    sim_with(profile, None)
}

/// A simulator with a preset and, optionally, a config file.
fn sim_with(
    profile: Option<&str>,
    config: Option<&std::path::Path>,
) -> (std::process::Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["sim", "--listen", "127.0.0.1:0", "--seed", "3"]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    if let Some(p) = profile {
        cmd.args(["--profile", p]);
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    (child, url)
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chat_suite(dir: &std::path::Path, baseline: &str) -> std::path::PathBuf {
    std::fs::copy(repo().join("golden/chat.jsonl"), dir.join("chat.jsonl")).unwrap();
    write(
        dir,
        "gate.yaml",
        &format!(
            "suite: gate-chat\ndefaults: {{ timeout: 10s }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{baseline}/v1/chat/completions\"\n    model: sim-plain\nprobes:\n  - {{ name: answers, endpoint: chat, golden: chat.jsonl }}\nslos:\n  - {{ name: answers, probe: answers, sli: checks_passed, objective: 90% }}\ngate:\n  slis: [checks_passed, time_to_first_visible_token]\n  min_runs: 4\n"
        ),
    )
}

fn gate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = canary(args, &[]);
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

#[test]
fn an_identical_candidate_passes_and_a_one_slice_regression_fails_naming_it() {
    let (b, base) = sim_with_profile(None);
    let _b = Kill(b);
    let (c, same) = sim_with_profile(None);
    let _c = Kill(c);
    let (w, wrong) = sim_with_profile(Some("multi-step-wrong"));
    let _w = Kill(w);
    let dir = tempfile::tempdir().unwrap();
    let s = chat_suite(dir.path(), &base);
    let md = dir.path().join("summary.md");
    let junit = dir.path().join("junit.xml");
    let report = dir.path().join("gate.json");

    let (code, out, err) = gate(&[
        "gate",
        s.to_str().unwrap(),
        "--candidate",
        &same,
        "--runs",
        "6",
        "--concurrency",
        "32",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("## canary gate: PASS"), "{out}");

    let (code, out, err) = gate(&[
        "gate",
        s.to_str().unwrap(),
        "--candidate",
        &wrong,
        "--runs",
        "6",
        "--concurrency",
        "32",
        "--markdown",
        md.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(
        summary.starts_with("## canary gate: FAIL"),
        "verdict first: {summary}"
    );
    let why = summary
        .lines()
        .find(|l| l.contains("slice multi-step") && l.contains("checks_passed"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(why.contains("fell from 100.0% to 0.0%"), "{why}");
    assert!(
        summary.contains(
            "| answers | multi-step | checks_passed | 100.0% | 0.0% | -100.0 pts | ❌ regression |"
        ),
        "{summary}"
    );
    // The other slices are fine.
    assert!(
        summary
            .contains("| answers | factual | checks_passed | 100.0% | 100.0% | +0.0 pts | ✅ ok |"),
        "{summary}"
    );
    let r = read_json(&report);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["candidate"]["suite"], "gate-chat");
    assert!(
        r["baseline"]["cases"].as_array().unwrap().len() == 60
            && r["candidate"]["cases"].as_array().unwrap().len() == 60
    );

    // JUnit: the shape CI systems read (testsuites > testsuite > testcase [failure|skipped]),
    // with counts that agree with the cases.
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) == 1
s = suites[0]
cases = s.findall("testcase")
assert int(s.get("tests")) == len(cases) > 0
fails = [c for c in cases if c.find("failure") is not None]
skips = [c for c in cases if c.find("skipped") is not None]
assert int(s.get("failures")) == len(fails) > 0
assert int(s.get("skipped")) == len(skips)
assert int(s.get("errors")) == 0
# Times are the case runs' seconds, not a placeholder 0.
assert float(s.get("time")) > 0, s.attrib
for c in cases:
    assert c.get("name") and c.get("classname"), c.attrib
    assert float(c.get("time")) > 0, c.attrib
for f in fails:
    assert f.find("failure").get("message")
names = [c.get("name") for c in fails]
assert "compare answers checks_passed [multi-step]" in names, names
assert any(n.startswith("slo answers") for n in names), names
print("ok", len(cases), len(fails))
"#,
        )
        .arg(&junit)
        .output()
        .expect("python3");
    assert!(
        check.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        std::fs::read_to_string(&junit).unwrap()
    );
}

fn mapper_suite(dir: &std::path::Path, baseline: &str, min_runs: u32) -> std::path::PathBuf {
    std::fs::copy(
        repo().join("golden/llama-mapper.jsonl"),
        dir.join("m.jsonl"),
    )
    .unwrap();
    write(
        dir,
        &format!("mapper-{min_runs}.yaml"),
        &format!(
            "suite: gate-mapper\nendpoints:\n  mapper: {{ protocol: http-json, url: \"{baseline}/map\" }}\nprobes:\n  - {{ name: map, endpoint: mapper, golden: m.jsonl }}\ngate:\n  slis: [time_to_completion]\n  min_runs: {min_runs}\n"
        ),
    )
}

#[test]
fn a_30_percent_latency_regression_fails_with_enough_runs_and_is_inconclusive_with_too_few() {
    // A steady service (p95 only 40% above the median), so that its p95 is worth comparing.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sim.yaml", "mapper: { latency: { median: 50ms, p95: 70ms }, detectors: {}, schema_invalid_rate: 0.0, fallback_rate: 0.0 }\n");
    let (b, base) = sim_with(None, Some(&cfg));
    let _b = Kill(b);
    let (s, slow) = sim_with(Some("slow"), Some(&cfg));
    let _s = Kill(s);
    let enough = mapper_suite(dir.path(), &base, 5);
    let (code, out, err) = gate(&[
        "gate",
        enough.to_str().unwrap(),
        "--candidate",
        &slow,
        "--runs",
        "30",
        "--concurrency",
        "16",
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    // At least one slice shows the regression with confidence, with the size it has (×1.3).
    let why: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("- map") && l.contains("time_to_completion p95 rose"))
        .collect();
    assert!(!why.is_empty(), "{out}");
    for w in why {
        let ratio: f64 = w
            .split('×')
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1.15..=1.45).contains(&ratio), "{w}");
    }

    // The same candidate with too few runs to decide: said plainly, exit 4.
    let strict = mapper_suite(dir.path(), &base, 100);
    let (code, out, err) = gate(&[
        "gate",
        strict.to_str().unwrap(),
        "--candidate",
        &slow,
        "--runs",
        "2",
        "--concurrency",
        "16",
    ]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.starts_with("## canary gate: INCONCLUSIVE"), "{out}");
    assert!(out.contains("more --runs"), "{out}");
    // Unless the caller chooses.
    let (code, ..) = gate(&[
        "gate",
        strict.to_str().unwrap(),
        "--candidate",
        &slow,
        "--runs",
        "2",
        "--inconclusive",
        "pass",
    ]);
    assert_eq!(code, Some(0));
}

#[test]
fn gate_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = mapper_suite(dir.path(), "http://127.0.0.1:9", 5);
    let (code, _, err) = gate(&[
        "gate",
        s.to_str().unwrap(),
        "--candidate",
        "nosuch=http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown endpoint `nosuch`"), "{err}");
    let (code, _, err) = gate(&[
        "gate",
        s.to_str().unwrap(),
        "--candidate",
        "http://127.0.0.1:9",
        "--runs",
        "1",
    ]);
    assert_eq!(code, Some(3), "{err}");
}
