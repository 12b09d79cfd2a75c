//! `canary probe URL` against the real simulator: the timeline it prints agrees with the
//! server's write times, the protocol is guessed from the path, credentials never show, the
//! saved suite repeats the probe, and an unreachable URL is one line and a non-zero exit.

mod common;
use common::*;
use serde_json::Value;

const TOLERANCE: f64 = 0.002;

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The value of a timeline line (`  first visible      340.1 ms   …`) in seconds.
fn printed(stdout: &str, what: &str) -> f64 {
    let l = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(what))
        .unwrap_or_else(|| panic!("no `{what}` line in:\n{stdout}"));
    let rest = l.trim_start()[what.len()..].trim_start();
    let mut it = rest.split_whitespace();
    let n: f64 = it.next().unwrap().parse().unwrap();
    match it.next().unwrap() {
        "ms" => n / 1e3,
        "s" => n,
        u => panic!("unit {u} in {l}"),
    }
}

fn streams(sim: &Sim) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    v["streams"].as_array().unwrap().clone()
}

#[test]
fn each_chat_protocol_prints_first_visible_token_within_2ms_of_the_truth() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(3, None);
    for (path, proto, model) in [
        ("/v1/chat/completions", "openai-chat", "sim-reasoning"),
        ("/v1/responses", "openai-responses", "sim-plain"),
        ("/v1/messages", "anthropic-messages", "sim-chunky"),
    ] {
        let url = format!("{}{path}", sim.url);
        let out = canary(&["probe", &url, "--model", model], &[]);
        let (so, se) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
        assert!(
            so.contains(&format!("protocol {proto} (guessed from `")),
            "{proto} not guessed from {path}:\n{so}"
        );
        let t = streams(&sim)
            .into_iter()
            .rev()
            .find(|t| t["path"] == path && t["model"] == model)
            .unwrap_or_else(|| panic!("no truth for {path}"));
        for (what, key) in [
            ("head", "headers"),
            ("first token", "first_token"),
            ("first visible", "first_visible"),
            ("complete", "terminator"),
        ] {
            let m = printed(&so, what);
            let truth = t[key].as_f64().unwrap();
            assert!(
                (m - truth).abs() <= TOLERANCE + 0.00005,
                "{proto} {what}: printed {m:.5}s, truth {truth:.5}s\n{so}"
            );
        }
        assert!(so.contains("cadence"), "{so}");
        assert!(so.contains("tokens"), "{so}");
        if model == "sim-reasoning" {
            assert!(so.contains("of reasoning"), "{so}");
        }
    }
}

#[test]
fn json_report_and_redacted_credentials() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(4, None);
    let url = format!("{}/v1/chat/completions", sim.url);
    let out = canary(
        &[
            "probe",
            &url,
            "-m",
            "sim-plain",
            "-H",
            "Authorization: Bearer sk-probe-test-credential",
            "--json",
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(!so.contains("sk-probe-test-credential"), "{so}");
    assert!(!se.contains("sk-probe-test-credential"), "{se}");
    let r: Value = serde_json::from_str(&so).unwrap();
    assert_report_valid(&r);
    let c = &r["cases"][0];
    assert_eq!(c["outcome"], "ok", "{c}");
    let t = streams(&sim).pop().unwrap();
    let m = c["latency"]["time_to_first_visible_token"]
        .as_f64()
        .unwrap();
    let truth = t["first_visible"].as_f64().unwrap();
    assert!(
        (m - truth).abs() <= TOLERANCE,
        "measured {m}, truth {truth}"
    );
}

#[test]
fn several_runs_print_percentiles_and_the_saved_suite_repeats_them() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("mine.yaml");
    let url = format!("{}/v1/messages", sim.url);
    let out = canary(
        &[
            "probe",
            &url,
            "-m",
            "sim-plain",
            "-n",
            "6",
            "-c",
            "2",
            "-H",
            "x-api-key: probe-saved-key-123",
            "--save",
            saved.to_str().unwrap(),
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    let header = so
        .lines()
        .find(|l| l.trim_start().starts_with("p50"))
        .unwrap_or_else(|| panic!("no percentiles:\n{so}"));
    assert!(header.contains("p95") && header.contains("p99"), "{header}");
    let row = so
        .lines()
        .rfind(|l| l.trim_start().starts_with("first visible"))
        .unwrap();
    assert!(row.trim_end().ends_with(" 6"), "{row}");
    assert!(so.contains("0 of 6 runs failed"), "{so}");
    // The saved suite names the credential's variable, never its value.
    let y = std::fs::read_to_string(&saved).unwrap();
    assert!(!y.contains("probe-saved-key-123"), "{y}");
    assert!(y.contains("${CANARY_X_API_KEY}"), "{y}");
    assert!(se.contains("CANARY_X_API_KEY"), "{se}");
    assert!(dir.path().join("mine.jsonl").exists());
    let again = canary(
        &["validate", saved.to_str().unwrap()],
        &[("CANARY_X_API_KEY", "probe-saved-key-123")],
    );
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
    let again = canary(
        &["run", saved.to_str().unwrap(), "-q"],
        &[("CANARY_X_API_KEY", "probe-saved-key-123")],
    );
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
}

#[test]
fn voice_prints_first_audible_audio_and_underruns() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(6, None);
    let ws = sim.url.replace("http://", "ws://");
    for (path, proto) in [("/v1/voice", "ws-opus"), ("/v1/realtime", "realtime")] {
        let out = canary(
            &["probe", &format!("{ws}{path}"), "--prompt", "Hello there"],
            &[],
        );
        let (so, se) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
        assert!(so.contains(&format!("protocol {proto} (")), "{so}");
        assert!(printed(&so, "first audio") > 0.0, "{so}");
        assert!(so.contains("underruns"), "{so}");
    }
}

#[test]
fn an_unreachable_url_is_one_line_and_a_nonzero_exit() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let out = canary(
        &[
            "probe",
            &url,
            "-H",
            "authorization: Bearer sk-unreachable-secret",
            "--timeout",
            "5s",
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{so}\n{se}");
    let errors: Vec<&str> = se.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(errors.len(), 1, "{se}");
    assert!(errors[0].starts_with("error: "), "{se}");
    assert!(errors[0].contains("connect"), "{se}");
    assert!(!se.contains("sk-unreachable-secret") && !so.contains("sk-unreachable-secret"));
    // A Gemini path is guessed as `gemini` (a built-in described protocol): unreachable,
    // it fails like any other protocol, with one line.
    let out = canary(
        &[
            "probe",
            "http://127.0.0.1:9/v1beta/models/g:streamGenerateContent",
        ],
        &[],
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{so}\n{se}");
    assert_eq!(
        se.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{se}"
    );
}
