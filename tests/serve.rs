//! `canary serve` end to end: the API answers in its committed schema, the SLO state flips to
//! breached when the simulator degrades and back when it recovers, history survives a restart,
//! SIGTERM drains within the grace period, SIGHUP reloads (or keeps the old config), and the
//! status page renders in a real headless Chromium.

mod common;
use common::serve::*;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn validate(def: &str, v: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/api.schema.json")).unwrap(),
    )
    .unwrap();
    let sub = serde_json::json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": schema["$defs"], "$ref": format!("#/$defs/{def}")});
    let validator = jsonschema::validator_for(&sub).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{def}: {errors:?}\n{v}");
}

const HEALTHY: &str = r#"{"latency": {"median": "5ms", "p95": "10ms"}, "detectors": {}, "schema_invalid_rate": 0.0, "fallback_rate": 0.0}"#;
const BROKEN: &str = r#"{"latency": {"median": "5ms", "p95": "10ms"}, "detectors": {}, "schema_invalid_rate": 1.0, "fallback_rate": 0.0}"#;

fn suite(dir: &std::path::Path, schedule: &str, extra_headers: &str) -> std::path::PathBuf {
    std::fs::copy(
        repo().join("golden/llama-mapper.schema.json"),
        dir.join("schema.json"),
    )
    .unwrap();
    write(
        dir,
        "g.jsonl",
        &std::fs::read_to_string(repo().join("golden/llama-mapper.jsonl"))
            .unwrap()
            .lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    write(
        dir,
        "s.yaml",
        &format!(
            "suite: monitor\ndefaults: {{ schedule: \"{schedule}\", timeout: 3s }}\nendpoints:\n  mapper:\n    protocol: http-json\n    url: \"${{MAPPER_URL}}/map\"\n    schema: schema.json\n    headers: {{ {extra_headers} }}\nprobes:\n  - {{ name: map, endpoint: mapper, golden: g.jsonl }}\nslos:\n  - {{ name: schema, probe: map, sli: schema_valid, objective: 99.5%, window: 1h }}\n  - {{ name: latency, probe: map, sli: time_to_completion, threshold: 250ms, objective: 95%, window: 1h, per_slice: true }}\n"
        ),
    )
}

fn slo<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[test]
fn api_schema_breach_flip_and_recovery() {
    let sim = Sim::start(1, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), "* * * * * *", "x-probe: monitor");
    let db = dir.path().join("c.db");
    let srv = Serve::with_suite(&s, &db, &["--splay", "0s"], &[("MAPPER_URL", &sim.url)]);
    let a = srv.addr.clone();
    assert!(until(Duration::from_secs(20), || json(&a, "/api/v1/slo")
        ["slos"][0]["slices"][0]["total"]
        .as_u64()
        .unwrap_or(0)
        >= 8));
    let v = json(&a, "/api/v1/slo");
    validate("slo_response", &v);
    assert_eq!(v["breached"], false);
    assert_eq!(slo(&v, "schema")["slices"][0]["sli"], 1.0);
    // Per-slice SLOs list the aggregate and every slice of the golden set.
    assert!(slo(&v, "latency")["slices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["slice"] == "detector=presidio"));
    let p = json(&a, "/api/v1/probes");
    validate("probes_response", &p);
    assert_eq!(p["probes"][0]["schedule"], "* * * * * *");
    let r = json(&a, "/api/v1/runs/1");
    validate("run_response", &r);
    assert_eq!(r["record"]["probe"], "map");
    let (code, err) = get(&a, "/api/v1/runs/999999");
    assert_eq!(code, 404);
    validate("error_response", &serde_json::from_str(&err).unwrap());
    let (code, metrics) = get(&a, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("canary_slo_events_total{") && metrics.trim_end().ends_with("# EOF"),
        "{metrics}"
    );
    assert_eq!(get(&a, "/readyz").0, 200);
    assert_eq!(get(&a, "/healthz").0, 200);

    // The simulator degrades: every answer breaks the schema. The fast burn breaches.
    put(&sim.addr, "/config/mapper", BROKEN);
    assert!(
        until(Duration::from_secs(30), || json(&a, "/api/v1/slo")
            ["breached"]
            == true),
        "never breached"
    );
    let v = json(&a, "/api/v1/slo");
    validate("slo_response", &v);
    let agg = &slo(&v, "schema")["slices"][0];
    assert_eq!(agg["breached"], true);
    assert!(agg["firing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "page"));
    assert_eq!(
        slo(&v, "latency")["breached"],
        false,
        "latency is still fine"
    );
    let (_, html) = get(&a, "/");
    assert!(html.contains("SLO BREACHED"), "the page says so");
    // It recovers: once the short window holds no more errors, the breach clears.
    put(&sim.addr, "/config/mapper", HEALTHY);
    assert!(
        until(Duration::from_secs(120), || json(&a, "/api/v1/slo")
            ["breached"]
            == false),
        "never recovered"
    );
    let v = json(&a, "/api/v1/slo");
    assert!(
        slo(&v, "schema")["slices"][0]["budget_exhausted"] == true,
        "the budget over the hour stays spent"
    );
}

#[test]
fn history_survives_a_restart_and_sigterm_is_clean() {
    let sim = Sim::start(2, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), "* * * * * *", "x-probe: restart");
    let db = dir.path().join("c.db");
    let mut first = Serve::with_suite(&s, &db, &["--splay", "0s"], &[("MAPPER_URL", &sim.url)]);
    let a = first.addr.clone();
    assert!(until(Duration::from_secs(20), || json(&a, "/api/v1/slo")
        ["slos"][0]["slices"][0]["total"]
        .as_u64()
        .unwrap_or(0)
        >= 12));
    first.signal("TERM");
    let (code, took) = first.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", first.stderr());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(first.stderr().contains("stopped cleanly"));
    let before = {
        // What the history holds now: read it back through a second instance that runs hourly.
        let s2 = suite(dir.path(), "0 0 * * * *", "x-probe: restart");
        let second = Serve::with_suite(&s2, &db, &["--splay", "0s"], &[("MAPPER_URL", &sim.url)]);
        let v = json(&second.addr, "/api/v1/slo");
        validate("slo_response", &v);
        slo(&v, "schema")["slices"][0]["total"].as_u64().unwrap()
    };
    assert!(
        before >= 12,
        "the restarted monitor resumes with the history: {before}"
    );
}

#[test]
fn sigterm_drains_in_flight_runs_within_the_grace_period() {
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    // Every case hangs: a run is always in flight.
    let s = suite(dir.path(), "* * * * * *", "x-sim-fault: hang");
    let db = dir.path().join("c.db");
    let mut srv = Serve::with_suite(
        &s,
        &db,
        &["--splay", "0s", "--grace", "1s"],
        &[("MAPPER_URL", &sim.url)],
    );
    let a = srv.addr.clone();
    assert!(until(Duration::from_secs(10), || json(
        &a,
        "/api/v1/probes"
    )["probes"][0]["running"]
        == true));
    srv.signal("TERM");
    let (code, took) = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", srv.stderr());
    assert!(took < Duration::from_secs(3), "grace 1s, took {took:?}");
}

#[test]
fn sighup_reloads_a_valid_config_and_keeps_the_old_one_otherwise() {
    let sim = Sim::start(4, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), "* * * * * *", "x-probe: hup");
    let db = dir.path().join("c.db");
    let srv = Serve::with_suite(&s, &db, &["--splay", "0s"], &[("MAPPER_URL", &sim.url)]);
    let a = srv.addr.clone();
    let good = std::fs::read_to_string(&s).unwrap();
    std::fs::write(&s, good.replace("sli: schema_valid", "sli: schema_vaild")).unwrap();
    srv.signal("HUP");
    assert!(
        until(Duration::from_secs(10), || srv
            .stderr()
            .contains("reload refused")),
        "{}",
        srv.stderr()
    );
    assert!(
        srv.stderr().contains("schema_vaild"),
        "the reason is logged"
    );
    assert_eq!(get(&a, "/readyz").0, 200);
    assert_eq!(
        json(&a, "/api/v1/slo")["slos"].as_array().unwrap().len(),
        2,
        "the old config still runs"
    );
    std::fs::write(
        &s,
        good.replace(
            "window: 1h }\n  - { name: latency",
            "window: 2h }\n  - { name: latency",
        ),
    )
    .unwrap();
    srv.signal("HUP");
    assert!(
        until(Duration::from_secs(10), || srv
            .stderr()
            .contains("SIGHUP: reloaded 1 suite")),
        "{}",
        srv.stderr()
    );
    // Once: not also as a WARN log line.
    assert_eq!(
        srv.stderr().matches("reloaded").count(),
        1,
        "{}",
        srv.stderr()
    );
    assert!(until(Duration::from_secs(10), || slo(
        &json(&a, "/api/v1/slo"),
        "schema"
    )["window"]
        == "2h"));
}

#[test]
fn the_status_page_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let chromium = chromium.expect(
        "this test needs Debian's chromium (apt-get install chromium); .ci/run installs it",
    );
    let sim = Sim::start(5, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), "* * * * * *", "x-probe: page");
    let db = dir.path().join("c.db");
    let srv = Serve::with_suite(&s, &db, &["--splay", "0s"], &[("MAPPER_URL", &sim.url)]);
    let a = srv.addr.clone();
    assert!(until(Duration::from_secs(20), || json(
        &a,
        "/api/v1/probes"
    )["probes"][0]["total_runs"]
        .as_u64()
        .unwrap_or(0)
        >= 8));
    let profile = dir.path().join("profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let url = format!("http://{a}/");
    let dom = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for needle in [
        "id=\"overall\"",
        "ALL SLOS HOLD",
        "class=\"slo-row\" data-slo=\"schema\" data-slice=\"*\"",
        "data-slice=\"detector=presidio\"",
        "class=\"budget\"",
        "class=\"latency-chart\"",
        "data-sli=\"time_to_first_byte\"",
        "data-sli=\"time_to_completion\"",
        "id=\"failures\"",
    ] {
        assert!(
            dom.contains(needle),
            "the rendered page lacks {needle}:\n{dom}"
        );
    }
    let shot = dir.path().join("status.png");
    let out = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([
            "--window-size=1280,1400",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((width, height), (1280, 1400));
    assert!(
        png.len() > 20_000,
        "a rendered page, not a blank one: {} bytes",
        png.len()
    );
}

#[test]
fn the_gate_endpoint_answers_flagger_with_200_or_409() {
    let base = Sim::start(6, None);
    let dir = tempfile::tempdir().unwrap();
    // The candidate: a simulator whose multi-step answers are wrong.
    let mut cmd = Command::new(BIN);
    let mut wrong = cmd
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--profile",
            "multi-step-wrong",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(wrong.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let wrong_url = line.trim().rsplit(' ').next().unwrap().to_string();
    std::fs::copy(
        repo().join("golden/chat.jsonl"),
        dir.path().join("chat.jsonl"),
    )
    .unwrap();
    let s = write(
        dir.path(),
        "chat.yaml",
        &format!("suite: chat-gate\ndefaults: {{ schedule: \"0 0 * * * *\", timeout: 10s }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{}/v1/chat/completions\"\n    model: sim-plain\nprobes:\n  - {{ name: answers, endpoint: chat, golden: chat.jsonl }}\ngate: {{ slis: [checks_passed], min_runs: 2, allowed_hosts: [127.0.0.1] }}\n", base.url),
    );
    let db = dir.path().join("c.db");
    // Off unless asked for: the endpoint sends requests to URLs its callers choose.
    let closed = Serve::with_suite(&s, &dir.path().join("d.db"), &[], &[]);
    assert_eq!(
        post(&closed.addr, "/api/v1/gate", r#"{"candidate":"http://x"}"#).0,
        403
    );
    drop(closed);
    let srv = Serve::with_suite(&s, &db, &["--allow-gate"], &[]);
    let flagger = |candidate: &str| {
        format!(
            r#"{{"name":"llm-gateway","namespace":"ml","phase":"Progressing","metadata":{{"suite":"chat-gate","candidate":"{candidate}","runs":"3"}}}}"#
        )
    };
    let (code, body) = post(&srv.addr, "/api/v1/gate", &flagger(&wrong_url));
    let _ = wrong.kill();
    let _ = wrong.wait();
    assert_eq!(code, 409, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "fail");
    assert!(
        v["summary"].as_str().unwrap().contains("multi-step"),
        "{body}"
    );
    let (code, body) = post(&srv.addr, "/api/v1/gate", &flagger(&base.url));
    assert_eq!(code, 200, "{body}");
    let (code, _) = post(
        &srv.addr,
        "/api/v1/gate",
        r#"{"suite":"nope","candidate":"http://x"}"#,
    );
    assert_eq!(code, 400);
}

#[test]
fn a_splay_longer_than_the_schedule_is_capped_and_said() {
    let sim = Sim::start(5, Some(&format!("mapper: {HEALTHY}")));
    let dir = tempfile::tempdir().unwrap();
    let s = suite(dir.path(), "*/2 * * * * *", "x-probe: splay");
    let db = dir.path().join("c.db");
    let srv = Serve::with_suite(&s, &db, &["--splay", "10m"], &[("MAPPER_URL", &sim.url)]);
    assert!(
        until(Duration::from_secs(10), || {
            srv
            .stderr()
            .contains("warning: --splay 10m is more than half of probe `map`'s schedule period (2s): its start is spread over 1s instead")
        }),
        "{}",
        srv.stderr()
    );
}
