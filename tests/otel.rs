//! OpenTelemetry end to end: canary's OTLP/HTTP export is received by a small Python receiver
//! that decodes it with the official `opentelemetry-proto` package (nothing shared with
//! canary's encoder), and compared with the JSON report: histogram counts, bucket bounds and
//! SLO counters, across two runs (cumulative, the first delivered from the spool after the
//! collector was down). The spans carry the trace the simulator received as `traceparent`,
//! and their first-visible-token event sits where the report's measure says. `canary serve`'s
//! OpenMetrics exemplars are parsed by a strict OpenMetrics parser and stored by a real
//! Prometheus with exemplar storage, which returns them through `/api/v1/query_exemplars`.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python OTLP receiver writing what it decoded into `out`; its address.
fn receiver(out: &Path) -> (Proc, String) {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/fixtures/otlp_receiver.py"))
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| {
        panic!("the OTLP receiver did not start (pip install opentelemetry-proto): {line:?}")
    });
    (Proc(child), format!("127.0.0.1:{port}"))
}

/// The decoded exports of one signal (`metrics` or `spans`), in arrival order.
fn received(out: &Path, key: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(&format!("-{key}.json")))
        })
        .collect();
    files.sort();
    files.iter().map(|p| read_json(p)).collect()
}

/// Default buckets (docs/metrics.md): the first-byte/token family and completion.
const DEFAULT_LATENCY_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];
const COMPLETION_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 120.0,
];

fn metrics_suite(dir: &Path, sim: &str) -> PathBuf {
    write(
        dir,
        "chat.jsonl",
        "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}, \"expect\": {\"contains\": [\"Paris\"]}}\n{\"id\": \"de\", \"slice\": \"other\", \"input\": {\"text\": \"What is the capital of Germany?\"}}\n",
    );
    let golden = repo().join("golden/llama-mapper.jsonl");
    write(
        dir,
        "s.yaml",
        &format!(
            "suite: otel-metrics\ndefaults: {{ timeout: 10s, runs: 2, concurrency: 4 }}\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{sim}/v1/chat/completions\"\n    model: sim-plain\n  mapper:\n    protocol: http-json\n    method: POST\n    url: \"{sim}/map\"\nprobes:\n  - {{ name: chat, endpoint: chat, golden: chat.jsonl }}\n  - {{ name: map, endpoint: mapper, golden: {} }}\nslos:\n  - {{ name: map-fast, probe: map, sli: time_to_completion, threshold: 35ms, objective: 90% }}\n  - {{ name: chat-fvt, probe: chat, sli: time_to_first_visible_token, threshold: 120ms, objective: 90% }}\n  - {{ name: map-ok, probe: map, sli: success, objective: 99% }}\n",
            golden.display()
        ),
    )
}

/// The attributes of a data point as strings.
fn attrs(p: &Value) -> BTreeMap<String, String> {
    p["attributes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(str::to_string).unwrap_or(v.to_string()),
            )
        })
        .collect()
}

fn metric<'a>(export: &'a Value, name: &str) -> &'a Value {
    export["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in the export"))
}

/// Checks one metrics export against the case runs and SLO verdicts of `reports`.
fn check_export(export: &Value, reports: &[&Value]) {
    let cases: Vec<&Value> = reports
        .iter()
        .flat_map(|r| r["cases"].as_array().unwrap())
        .collect();
    assert!(cases.len() >= 30, "{}", cases.len());
    assert_eq!(export["resource"]["service.name"], "canary");
    assert_eq!(export["resource"]["region"], "otel-test");
    assert_eq!(export["resource"]["suite"], "otel-metrics");

    // Latency histograms: bounds, bucket counts, count and sum per probe and slice.
    let mut checked = 0;
    for (sli, threshold) in [
        ("time_to_completion", Some(0.035)),
        ("time_to_first_byte", None),
        ("time_to_first_visible_token", Some(0.12)),
    ] {
        let m = metric(export, &format!("canary_{sli}_seconds"));
        assert_eq!(m["type"], "histogram");
        assert_eq!(m["unit"], "s");
        assert_eq!(m["temporality"], 2, "cumulative");
        let mut bounds: Vec<f64> = if sli == "time_to_completion" {
            COMPLETION_BUCKETS.to_vec()
        } else {
            DEFAULT_LATENCY_BUCKETS.to_vec()
        };
        if let Some(t) = threshold {
            bounds.push(t);
            bounds.sort_by(f64::total_cmp);
        }
        for p in m["points"].as_array().unwrap() {
            let a = attrs(p);
            let got: Vec<f64> = p["bounds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_f64().unwrap())
                .collect();
            assert_eq!(got, bounds, "{sli} {a:?}");
            let values: Vec<f64> = cases
                .iter()
                .filter(|c| c["probe"] == a["probe"].as_str() && c["slice"] == a["slice"].as_str())
                .filter(|c| matches!(c["outcome"].as_str(), Some("ok" | "check_failed")))
                .filter_map(|c| c["latency"][sli].as_f64())
                .collect();
            let mut want = vec![0u64; bounds.len() + 1];
            for v in &values {
                want[bounds.iter().position(|b| v <= b).unwrap_or(bounds.len())] += 1;
            }
            let counts: Vec<u64> = p["bucket_counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect();
            assert_eq!(counts, want, "{sli} {a:?}: {values:?}");
            assert_eq!(p["count"].as_u64(), Some(values.len() as u64));
            let sum: f64 = values.iter().sum();
            assert!(
                (p["sum"].as_f64().unwrap() - sum).abs() < 1e-6,
                "{sli} {a:?} sum"
            );
            if a["endpoint"] == "chat" {
                assert_eq!(a["gen_ai.system"], "openai");
                assert_eq!(a["gen_ai.request.model"], "sim-plain");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} histogram points checked");

    // SLO event counters against the verdicts (summed over the runs).
    let slo = metric(export, "canary_slo_events");
    assert_eq!(slo["type"], "sum");
    assert_eq!(slo["monotonic"], true);
    assert_eq!(slo["temporality"], 2);
    for name in ["map-fast", "chat-fvt", "map-ok"] {
        let (mut good, mut total) = (0u64, 0u64);
        for r in reports {
            let v = r["slos"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name && v["slice"] == "*")
                .unwrap();
            good += v["good"].as_u64().unwrap();
            total += v["total"].as_u64().unwrap();
        }
        let sum = |g: &str| -> f64 {
            slo["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    let a = attrs(p);
                    a["slo"] == name && a["good"] == g
                })
                .map(|p| p["value"].as_f64().unwrap())
                .sum()
        };
        assert_eq!(sum("true") as u64, good, "{name} good");
        assert_eq!((sum("true") + sum("false")) as u64, total, "{name} total");
    }
    // Ratio counters: every run judged for success, good when it did not error.
    let ratio = metric(export, "canary_ratio_events");
    let success: f64 = ratio["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| attrs(p)["sli"] == "success" && attrs(p)["good"] == "true")
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    let ok = cases
        .iter()
        .filter(|c| matches!(c["outcome"].as_str(), Some("ok" | "check_failed")))
        .count();
    assert_eq!(success as usize, ok);
    // The token counter speaks the GenAI conventions' token type.
    let tokens = metric(export, "canary_tokens");
    assert!(tokens["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| attrs(p).contains_key("gen_ai.token.type") && !attrs(p).contains_key("kind")));
}

#[test]
fn otlp_metrics_equal_the_report_and_accumulate_across_runs_through_the_spool() {
    let sim = Sim::start(
        23,
        Some("mapper: { latency: { median: 30ms, p95: 80ms }, detectors: {}, schema_invalid_rate: 0.0, fallback_rate: 0.0 }"),
    );
    let dir = tempfile::tempdir().unwrap();
    let suite = metrics_suite(dir.path(), &sim.url);
    let spool = dir.path().join("spool");
    let state = dir.path().join("state.json");
    let out_dir = dir.path().join("received");
    std::fs::create_dir_all(&out_dir).unwrap();
    // The collector's port before it is up: nothing listens there yet.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1/metrics");
    let env = [(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "x-canary-token=s3cr3t-otlp%2Fvalue",
    )];
    let run = |n: &str| {
        let report = dir.path().join(format!("r{n}.json"));
        let out = canary(
            &[
                "run",
                suite.to_str().unwrap(),
                "-q",
                "--region",
                "otel-test",
                "--report",
                report.to_str().unwrap(),
                "--otlp",
                &url,
                "--spool",
                spool.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ],
            &env,
        );
        (out, read_json(&report))
    };

    // Run 1: the collector is down; the export is spooled, nothing is lost.
    let (out1, r1) = run("1");
    let (_, err1) = text(&out1);
    assert!(matches!(out1.status.code(), Some(0 | 1)), "{err1}");
    assert!(
        err1.contains("OTLP export to") && err1.contains("kept in"),
        "{err1}"
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);
    assert!(!err1.contains("s3cr3t"), "{err1}");
    assert_report_valid(&r1);

    // Run 2: the collector is up on that port; the spooled export goes first, then this run's.
    let listener_free = TcpListener::bind(("127.0.0.1", port)).is_ok();
    assert!(listener_free, "port {port} was taken meanwhile");
    let (_rx, addr) = receiver_on(&out_dir, port);
    let (out2, r2) = run("2");
    let (_, err2) = text(&out2);
    assert!(matches!(out2.status.code(), Some(0 | 1)), "{err2}");
    assert!(!err2.contains("s3cr3t"), "{err2}");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "{err2}");
    let exports = received(&out_dir, "metrics");
    assert_eq!(exports.len(), 2, "{addr}: {err2}");
    for e in &exports {
        assert_eq!(e["content_type"], "application/x-protobuf");
        assert_eq!(e["headers"]["x-canary-token"], "s3cr3t-otlp/value");
    }
    // The spooled export holds run 1; the second is cumulative over both runs.
    check_export(&exports[0], &[&r1]);
    check_export(&exports[1], &[&r1, &r2]);
    // One start time for both: the counts run on from the first run.
    let starts = |e: &Value| -> Vec<u64> {
        let m = metric(e, "canary_slo_events");
        m["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["start"].as_u64().unwrap())
            .collect()
    };
    let (s1, s2) = (starts(&exports[0]), starts(&exports[1]));
    assert!(
        s1.iter().chain(&s2).all(|s| *s == s1[0] && *s > 0),
        "{s1:?} {s2:?}"
    );
    let time = |e: &Value| {
        metric(e, "canary_slo_events")["points"][0]["time"]
            .as_u64()
            .unwrap()
    };
    assert!(time(&exports[1]) > time(&exports[0]));
}

/// The receiver on a given port (the test picked it while it was free).
fn receiver_on(out: &Path, port: u16) -> (Proc, String) {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/fixtures/otlp_receiver.py"))
        .arg(out)
        .env("OTLP_RECEIVER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        port.to_string(),
        "the OTLP receiver did not start (pip install opentelemetry-proto)"
    );
    (Proc(child), format!("127.0.0.1:{port}"))
}

fn trace_suite(dir: &Path, sim: &str) -> PathBuf {
    write(
        dir,
        "chat.jsonl",
        "{\"id\": \"fr\", \"slice\": \"factual\", \"input\": {\"text\": \"What is the capital of France?\"}}\n",
    );
    write(
        dir,
        "rag.jsonl",
        "{\"id\": \"price\", \"slice\": \"pricing\", \"input\": {\"key\": \"basic-plan-price\", \"body\": {\"question\": \"Price?\", \"key\": \"{{input.key}}\"}}}\n",
    );
    write(
        dir,
        "voice.jsonl",
        "{\"id\": \"hello\", \"slice\": \"greeting\", \"input\": {\"text\": \"Hello there\"}}\n",
    );
    let ws = sim.replace("http://", "ws://");
    write(
        dir,
        "s.yaml",
        &format!(
            r#"suite: otel-traces
defaults: {{ timeout: 10s, runs: 2, concurrency: 2 }}
endpoints:
  chat:
    protocol: openai-chat
    url: "{sim}/v1/chat/completions"
    model: sim-stall
  quiet:
    protocol: anthropic-messages
    url: "{sim}/v1/messages"
    model: sim-reasoning
    traceparent: false
  rag:
    protocol: http-json
    url: "{sim}/rag/ask"
    answer: {{ json: "$.answer" }}
  voice:
    protocol: ws-opus
    url: "{ws}/v1/voice?id=otel&speech_ms=300&lead_in_ms=200"
    start: {{ type: start, text: "{{{{input.text}}}}" }}
  broken:
    protocol: http-json
    method: POST
    url: "{sim}/map"
    headers: {{ x-sim-fault: "status=503" }}
probes:
  - {{ name: voice, endpoint: voice, golden: voice.jsonl }}
  - {{ name: broken, endpoint: broken, golden: voice.jsonl, runs: 1 }}
  - {{ name: stream, endpoint: chat, golden: chat.jsonl, stall: 500ms }}
  - {{ name: quiet, endpoint: quiet, golden: chat.jsonl }}
  - name: fresh
    endpoint: rag
    golden: rag.jsonl
    freshness: {{ truth: {{ url: "{sim}/truth/facts/{{key}}", value: "$.value", updated_at: "$.updated_at" }} }}
"#
        ),
    )
}

#[test]
fn each_case_span_has_the_trace_the_target_received_and_the_reports_moments() {
    let sim = Sim::start(24, None);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("received");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (_rx, addr) = receiver(&out_dir);
    let suite = trace_suite(dir.path(), &sim.url);
    // The standard variable as a base: /v1/metrics and /v1/traces are appended.
    let base = format!("http://{addr}");
    let (out, report) = run_with_report(
        &suite,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", base.as_str()),
            ("OTEL_SERVICE_NAME", "canary-eu"),
        ],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_report_valid(&report);
    assert!(!err.contains("OTLP"), "{err}");
    assert_eq!(received(&out_dir, "metrics").len(), 1, "{err}");
    let exports = received(&out_dir, "spans");
    assert_eq!(exports.len(), 1, "{err}");
    assert_eq!(exports[0]["resource"]["service.name"], "canary-eu");
    let spans = exports[0]["spans"].as_array().unwrap();
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let seen = truth["traceparents"].as_array().unwrap();

    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    let mut trace_ids = std::collections::BTreeSet::new();
    for c in cases {
        let tid = c["trace_id"]
            .as_str()
            .expect("every case run has a trace id");
        assert!(trace_ids.insert(tid.to_string()), "trace ids are unique");
        let roots: Vec<&Value> = spans
            .iter()
            .filter(|s| s["trace_id"] == tid && s["parent_span_id"] == "")
            .collect();
        assert_eq!(roots.len(), 1, "{tid}");
        let span = roots[0];
        assert_eq!(span["attributes"]["canary.probe"], c["probe"]);
        assert_eq!(span["attributes"]["canary.outcome"], c["outcome"]);
        if c["outcome"] == "ok" {
            assert_eq!(span["status"]["code"], 1, "ok outcome is status OK");
        } else {
            assert_eq!(span["status"]["code"], 2, "{c}");
        }
        let sent = format!("00-{tid}-{}-01", span["span_id"].as_str().unwrap());
        let received_with = seen
            .iter()
            .filter(|r| r["traceparent"] == sent.as_str())
            .count();
        let event = |name: &str| -> Option<u64> {
            span["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .and_then(|e| e["time"].as_u64())
        };
        let request = event("request_sent").expect("request_sent event");
        assert!(event("connect").is_some());
        match c["probe"].as_str().unwrap() {
            "voice" => {
                // The WebSocket upgrade carried the traceparent too; the audible onset event
                // sits where the report's time to first audio says.
                assert_eq!(received_with, 1, "{sent} not in {seen:?}");
                assert!(event("upgrade").is_some());
                let heard = event("first_audible_audio").expect("first_audible_audio event");
                let measured = c["latency"]["time_to_first_audio"].as_f64().unwrap();
                let from_span = (heard - request) as f64 / 1e9;
                assert!(
                    (from_span - measured).abs() < 2e-9,
                    "span {from_span} vs report {measured}"
                );
            }
            "broken" => {
                // The failure is the status, with the outcome and the error as its message.
                assert_eq!(received_with, 1);
                assert_eq!(c["outcome"], "http_status");
                assert!(span["status"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("http_status: "));
                let e = span["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "error")
                    .expect("error event");
                assert_eq!(e["attributes"]["error.type"], "http_status");
            }
            "stream" => {
                assert!(event("headers").is_some() && event("completion").is_some());
                // The target saw this very trace, and the span's moment is the report's.
                assert_eq!(received_with, 1, "{sent} not in {seen:?}");
                let fvt = event("first_visible_token").expect("first_visible_token event");
                let measured = c["latency"]["time_to_first_visible_token"]
                    .as_f64()
                    .unwrap();
                let from_span = (fvt - request) as f64 / 1e9;
                assert!(
                    (from_span - measured).abs() < 2e-9,
                    "span {from_span} vs report {measured}"
                );
                let ft = event("first_token").unwrap();
                assert!(ft <= fvt);
                // sim-stall holds one long gap: one stall event per stall the report counts.
                let stalls = span["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["name"] == "stall")
                    .count();
                assert_eq!(stalls as u64, c["stream"]["stalls"].as_u64().unwrap());
                assert!(stalls >= 1);
                assert_eq!(span["attributes"]["gen_ai.system"], "openai");
                assert_eq!(span["attributes"]["gen_ai.request.model"], "sim-stall");
                assert_eq!(span["attributes"]["gen_ai.response.model"], "sim-stall");
                assert!(
                    span["attributes"]["gen_ai.usage.output_tokens"]
                        .as_i64()
                        .unwrap()
                        > 0
                );
            }
            "quiet" => {
                // `traceparent: false`: the span exists, the request carried no traceparent.
                assert_eq!(received_with, 0);
                assert_eq!(span["attributes"]["canary.traceparent_sent"], false);
                assert!(event("first_visible_token").unwrap() > event("first_token").unwrap());
            }
            "fresh" => {
                assert_eq!(received_with, 1);
                let children: Vec<&Value> = spans
                    .iter()
                    .filter(|s| s["trace_id"] == tid && s["parent_span_id"] == span["span_id"])
                    .collect();
                let names: Vec<&str> = children
                    .iter()
                    .map(|s| s["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["canary.freshness.read", "canary.freshness.read"]);
                for ch in &children {
                    assert!(ch["start"].as_u64() >= span["start"].as_u64());
                    assert!(ch["end"].as_u64() <= span["end"].as_u64());
                }
                // Read before and after the question.
                assert!(children[0]["end"].as_u64().unwrap() <= request);
                assert!(children[1]["start"].as_u64().unwrap() >= event("completion").unwrap());
            }
            p => panic!("unexpected probe {p}"),
        }
    }
    // The anthropic endpoint's requests carried none at all.
    assert!(seen
        .iter()
        .filter(|r| r["path"] == "/v1/messages")
        .all(|r| r["traceparent"].is_null()));
}

/// A GET with an `Accept` header: status and body (0 when nothing answers yet).
fn http(addr: &str, path: &str, accept: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

#[test]
fn serve_exemplars_parse_as_openmetrics_and_prometheus_returns_them() {
    let sim = Sim::start(25, Some("mapper: { latency: { median: 30ms, p95: 80ms }, detectors: {}, schema_invalid_rate: 0.0, fallback_rate: 0.0 }"));
    let dir = tempfile::tempdir().unwrap();
    let golden = repo().join("golden/llama-mapper.jsonl");
    let suite = write(
        dir.path(),
        "s.yaml",
        &format!(
            "suite: exemplars\ndefaults: {{ schedule: \"*/2 * * * * *\", timeout: 5s }}\nendpoints:\n  mapper: {{ protocol: http-json, method: POST, url: \"{}/map\" }}\nprobes:\n  - {{ name: map, endpoint: mapper, golden: {} }}\nslos:\n  - {{ name: fast, probe: map, sli: time_to_completion, threshold: 35ms, objective: 90% }}\n",
            sim.url,
            golden.display()
        ),
    );
    // serve also exports every probe run over OTLP (the base URL from the environment).
    let out_dir = dir.path().join("received");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (_rx, rx_addr) = receiver(&out_dir);
    let mut child = Command::new(BIN)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{rx_addr}"))
        .args([
            "serve",
            suite.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--db",
            dir.path().join("db.sqlite").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _serve = Proc(child);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .to_string();

    // A probe run has happened: its buckets carry exemplars.
    let mut om = String::new();
    assert!(
        until(Duration::from_secs(30), || {
            om = http(
                &addr,
                "/metrics",
                "application/openmetrics-text;version=1.0.0",
            )
            .1;
            om.contains(" # {trace_id=\"")
        }),
        "no exemplar in {om}"
    );
    let trace_ids: std::collections::BTreeSet<String> = om
        .lines()
        .filter_map(|l| l.split("trace_id=\"").nth(1))
        .map(|r| r[..32].to_string())
        .collect();
    assert!(om
        .lines()
        .filter(|l| l.contains("# {trace_id"))
        .all(|l| l.contains("_bucket{")));

    // A strict OpenMetrics parser (the Python client's) accepts the exposition with its
    // exemplars, and each exemplar's value lies in its bucket.
    let mut py = Command::new("python3")
        .args([
            "-c",
            r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
n = 0
prev = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        if s.exemplar is not None:
            le = float(s.labels["le"])
            assert s.exemplar.value <= le, s
            assert len(s.exemplar.labels["trace_id"]) == 32, s
            n += 1
print(n)
"#,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    py.stdin.take().unwrap().write_all(om.as_bytes()).unwrap();
    let o = py.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "OpenMetrics parser (pip install prometheus-client): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(n >= 1);

    // promtool lints the same model in the text format 0.0.4 (which has no exemplars):
    // Debian's promtool reads only that format, and rejects the OpenMetrics exemplar syntax.
    let text_format = http(&addr, "/metrics", "text/plain").1;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is needed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text_format.as_bytes())
        .unwrap();
    let p = promtool.wait_with_output().unwrap();
    assert!(
        p.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&p.stdout),
        String::from_utf8_lossy(&p.stderr)
    );

    // A real Prometheus with exemplar storage scrapes serve and returns the exemplars.
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "prometheus.yml",
        &format!("global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: serve\n    static_configs: [{{ targets: ['{addr}'] }}]\n"),
    );
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address={prom_addr}"),
                "--enable-feature=exemplar-storage".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package) is needed"),
    );
    let mut body = String::new();
    let found = until(Duration::from_secs(60), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let q = format!(
            "/api/v1/query_exemplars?query=canary_time_to_completion_seconds_bucket&start={}&end={}",
            now - 600,
            now + 60
        );
        let (code, b) = http(&prom_addr, &q, "application/json");
        body = b;
        if code != 200 {
            return false;
        }
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"].as_array().is_some_and(|series| {
            series.iter().any(|s| {
                s["exemplars"].as_array().is_some_and(|ex| {
                    ex.iter().any(|e| {
                        e["labels"]["trace_id"]
                            .as_str()
                            .is_some_and(|t| t.len() == 32)
                    })
                })
            })
        })
    });
    assert!(found, "Prometheus returned no exemplar: {body}");
    // The exemplars Prometheus holds are trace ids serve exposed.
    let v: Value = serde_json::from_str(&body).unwrap();
    let stored: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exemplars"].as_array().unwrap().clone())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
        .collect();
    assert!(!stored.is_empty());
    // serve's OTLP exports: cumulative counts since its start (one start time, growing), and
    // the spans whose trace ids are the exemplars'.
    assert!(until(Duration::from_secs(30), || received(
        &out_dir, "metrics"
    )
    .len()
        >= 2));
    let exports = received(&out_dir, "metrics");
    let runs = |e: &Value| -> (u64, f64) {
        let m = metric(e, "canary_probe_runs");
        let points = m["points"].as_array().unwrap();
        (
            points[0]["start"].as_u64().unwrap(),
            points.iter().map(|p| p["value"].as_f64().unwrap()).sum(),
        )
    };
    let (start0, n0) = runs(&exports[0]);
    let (start1, n1) = runs(&exports[1]);
    assert_eq!(start0, start1);
    assert!(n0 >= 15.0 && n1 >= n0 + 15.0, "{n0} {n1}");
    assert_eq!(exports[0]["resource"]["suite"], "exemplars");
    let span_ids: std::collections::BTreeSet<String> = received(&out_dir, "spans")
        .iter()
        .flat_map(|e| e["spans"].as_array().unwrap().clone())
        .filter_map(|s| s["trace_id"].as_str().map(str::to_string))
        .collect();
    assert!(
        trace_ids.iter().all(|t| span_ids.contains(t)),
        "exemplar trace ids without an exported span"
    );
    // Every stored trace id is one a probe request carried to the simulator.
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let sent: Vec<String> = truth["traceparents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["traceparent"].as_str().map(|t| t[3..35].to_string()))
        .collect();
    assert!(
        stored.iter().all(|t| sent.contains(t)),
        "{stored:?} vs {sent:?}"
    );
}

#[test]
fn the_canary_fact_write_and_each_question_are_child_spans() {
    let sim = Sim::start(26, None);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("received");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (_rx, addr) = receiver(&out_dir);
    write(
        dir.path(),
        "c.jsonl",
        "{\"id\": \"fact\", \"input\": {\"body\": {\"question\": \"The canary fact?\", \"key\": \"canary-{{region}}\"}}}\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            r#"suite: otel-fact
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
      read_every: 200ms
      give_up_after: 10s
"#,
            sim = sim.url
        ),
    );
    let traces = format!("http://{addr}/v1/traces");
    let (out, report) = run_with_report(&s, &["--otlp-traces", &traces], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(received(&out_dir, "metrics").is_empty(), "traces only");
    let c = &report["cases"][0];
    let tid = c["trace_id"].as_str().unwrap();
    let reads = c["fact"]["reads"].as_u64().unwrap();
    assert!(reads >= 2, "the index lags: {c}");
    let spans: Vec<Value> = received(&out_dir, "spans")
        .iter()
        .flat_map(|e| e["spans"].as_array().unwrap().clone())
        .filter(|s| s["trace_id"] == tid)
        .collect();
    let root = spans.iter().find(|s| s["parent_span_id"] == "").unwrap();
    let mut children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == root["span_id"])
        .collect();
    children.sort_by_key(|s| s["start"].as_u64());
    let names: Vec<&str> = children
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "canary.fact.write");
    assert_eq!(names.len() as u64, 1 + reads, "{names:?}");
    assert!(names[1..].iter().all(|n| *n == "canary.fact.question"));
    let holds: Vec<&str> = children[1..]
        .iter()
        .map(|s| s["attributes"]["canary.fact.holds"].as_str().unwrap())
        .collect();
    assert_eq!(holds.last(), Some(&"true"));
    assert!(holds[..holds.len() - 1].iter().all(|h| *h == "false"));
    // The questions carried the case run's traceparent; the fact write (canary's own
    // bookkeeping, not the endpoint) did not.
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    let seen = truth["traceparents"].as_array().unwrap();
    let sent = format!("00-{tid}-{}-01", root["span_id"].as_str().unwrap());
    let asked = seen
        .iter()
        .filter(|r| r["path"] == "/rag/ask" && r["traceparent"] == sent.as_str())
        .count() as u64;
    assert_eq!(asked, reads);
    assert!(seen
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/admin/facts/"))
        .all(|r| r["traceparent"].is_null()));
}
