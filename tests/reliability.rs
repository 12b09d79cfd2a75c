//! The fault matrix: one run against every way a target can misbehave. Each faulty case ends
//! within its deadline plus a small measured margin with the right error class, the process
//! stays small whatever the target sends, and the healthy case of the same run is measured
//! normally. Also: a planted credential appears in no output of any command, and credentials
//! are refused over clear text to another host.

mod common;
use common::*;

const DEADLINE: f64 = 1.0;
/// The most a case may run past its deadline (teardown of the connection, scheduling).
const MARGIN: f64 = 0.1;

fn matrix(sim: &Sim, dead_port: u16) -> (String, Vec<(&'static str, &'static str)>) {
    let http = &sim.url;
    let ws = sim.url.replace("http://", "ws://");
    let https = sim.url.replace("http://", "https://");
    let mapper = |fault: &str| {
        format!("{{ protocol: http-json, url: \"{http}/map\", headers: {{ x-sim-fault: \"{fault}\" }} }}")
    };
    let chat = |model: &str| {
        format!("{{ protocol: openai-chat, url: \"{http}/v1/chat/completions\", model: {model} }}")
    };
    // (endpoint, yaml, expected outcome)
    let eps: Vec<(&str, String, &str)> = vec![
        ("good", format!("{{ protocol: http-json, url: \"{http}/map\" }}"), "ok"),
        ("hang-before-headers", mapper("hang"), "timeout"),
        ("slowloris", mapper("drip=400"), "timeout"),
        ("reset-mid-body", mapper("truncate"), "reset"),
        ("tls-handshake", format!("{{ protocol: http-json, url: \"{https}/map\" }}"), "tls"),
        ("dns", "{ protocol: http-json, url: \"http://canary-fault.invalid/map\" }".to_string(), "dns"),
        ("refused", format!("{{ protocol: http-json, url: \"http://127.0.0.1:{dead_port}/map\" }}"), "connect"),
        ("redirect", mapper("status=302"), "http_status"),
        ("rate-limited", mapper("status=429"), "rate_limited"),
        ("server-error", mapper("status=503"), "http_status"),
        ("invalid-json", mapper("invalid-json"), "invalid_json"),
        (
            "body-1gib",
            format!("{{ protocol: http-json, url: \"{http}/map\", headers: {{ x-sim-fault: \"huge=1073741824\" }}, max_body: 1MiB }}"),
            "body_too_large",
        ),
        ("sse-invalid-utf8", chat("sim-bad-utf8"), "protocol"),
        ("sse-error-event", chat("sim-error"), "stream_error"),
        ("sse-no-terminator", chat("sim-no-done"), "truncated"),
        ("sse-dropped", chat("sim-drop"), "truncated"),
        (
            "ws-closed-mid-utterance",
            format!("{{ protocol: ws-opus, url: \"{ws}/v1/voice?fault=close&speech_ms=400\" }}"),
            "truncated",
        ),
        (
            "corrupt-opus",
            format!("{{ protocol: ws-opus, url: \"{ws}/v1/voice?fault=corrupt&speech_ms=400\" }}"),
            "decode",
        ),
        (
            "realtime-base64-garbage",
            format!("{{ protocol: realtime, url: \"{ws}/v1/realtime?fault=bad-base64&speech_ms=400\" }}"),
            "decode",
        ),
    ];
    let mut s = format!(
        "suite: faults\ndefaults: {{ timeout: {DEADLINE}s, concurrency: 32 }}\nendpoints:\n"
    );
    for (name, yaml, _) in &eps {
        s += &format!("  {name}: {yaml}\n");
    }
    s += "probes:\n";
    for (name, yaml, _) in &eps {
        let golden = if yaml.contains("http-json") {
            "g-map.jsonl"
        } else {
            "g-text.jsonl"
        };
        s += &format!("  - {{ name: {name}, endpoint: {name}, golden: {golden} }}\n");
    }
    let expect = eps.iter().map(|(n, _, o)| (*n, *o)).collect();
    (s, expect)
}

#[test]
fn every_fault_ends_within_its_deadline_with_its_class_and_memory_stays_small() {
    let sim = Sim::start(5, Some("mapper: { latency: { median: 5ms, p95: 10ms }, schema_invalid_rate: 0.0, fallback_rate: 0.0 }"));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g-map.jsonl", "{\"id\": \"c1\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}\n");
    write(
        dir.path(),
        "g-text.jsonl",
        "{\"id\": \"c1\", \"input\": {\"text\": \"What is the capital of France?\"}}\n",
    );
    let (yaml, expect) = matrix(&sim, dead_port);
    let s = write(dir.path(), "s.yaml", &yaml);
    let report = dir.path().join("r.json");
    let started = std::time::Instant::now();
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "-q",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let wall = started.elapsed().as_secs_f64();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "no SLO, no crash: {o}\n{e}");
    let r = read_json(&report);
    let cases = r["cases"].as_array().unwrap();
    println!("| fault | outcome | case ended after | past the deadline |\n|---|---|---:|---:|");
    let mut worst = 0.0f64;
    for (name, want) in &expect {
        let c = cases
            .iter()
            .find(|c| c["endpoint"] == *name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(c["outcome"], *want, "{name}: {c}");
        let took = c["elapsed_seconds"].as_f64().unwrap();
        let over = (took - DEADLINE).max(0.0);
        worst = worst.max(over);
        println!(
            "| {name} | {} | {:.3} s | {:.1} ms |",
            c["outcome"].as_str().unwrap(),
            took,
            over * 1e3
        );
        assert!(took <= DEADLINE + MARGIN, "{name} took {took}s");
        if *want != "ok" {
            assert!(
                c["error"].is_string(),
                "{name}: a classified error with a message"
            );
        }
    }
    let good = cases.iter().find(|c| c["endpoint"] == "good").unwrap();
    assert!(
        good["latency"]["time_to_completion"].as_f64().unwrap() < 0.1,
        "{good}"
    );
    // The whole run: one deadline plus the margin, everything in parallel.
    assert!(wall < DEADLINE + 1.0, "the run took {wall}s");
    let rss = r["resources"]["peak_rss_bytes"].as_u64().unwrap();
    println!(
        "\nworst overrun {:.1} ms; peak RSS {:.1} MiB; whole run {:.2} s",
        worst * 1e3,
        rss as f64 / 1048576.0,
        wall
    );
    assert!(
        rss < 64 << 20,
        "peak RSS {rss} bytes with a 1 GiB body on offer"
    );
}

#[test]
fn a_planted_secret_appears_in_no_output() {
    let sim = Sim::start(6, None);
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("sk-canary-leak-{}-{}", std::process::id(), rand_suffix());
    write(dir.path(), "g.jsonl", "{\"id\": \"c1\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"X\"}}}\n");
    write(
        dir.path(),
        "t.jsonl",
        "{\"id\": \"c1\", \"input\": {\"text\": \"What is the capital of France?\"}}\n",
    );
    write(dir.path(), "key.txt", &format!("{secret}-file\n"));
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            r#"suite: secrets
endpoints:
  echo:
    protocol: http-json
    url: "{u}/map"
    headers: {{ authorization: "Bearer ${{CANARY_LEAK_KEY}}", x-sim-fault: echo-auth }}
  chat:
    protocol: openai-chat
    url: "{u}/v1/chat/completions"
    model: sim-plain
    headers: {{ x-api-key: "${{file:key.txt}}" }}
probes:
  - {{ name: echo, endpoint: echo, golden: g.jsonl }}
  - {{ name: chat, endpoint: chat, golden: t.jsonl }}
slos:
  - {{ name: avail, probe: echo, sli: success, objective: 99% }}
"#,
            u = sim.url
        ),
    );
    let env = [("CANARY_LEAK_KEY", secret.as_str())];
    let report = dir.path().join("r.json");
    let prom = dir.path().join("m.prom");
    let sp = s.to_str().unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["validate", sp],
        vec!["validate", "--dump-config", sp],
        vec!["plan", sp],
        vec!["rules", sp],
        vec![
            "run",
            sp,
            "--report",
            report.to_str().unwrap(),
            "--textfile",
            prom.to_str().unwrap(),
        ],
    ] {
        let out = canary(&args, &env);
        let (o, e) = text(&out);
        outputs.push((args.join(" "), format!("{o}\n{e}")));
    }
    outputs.push(("report".into(), std::fs::read_to_string(&report).unwrap()));
    outputs.push(("textfile".into(), std::fs::read_to_string(&prom).unwrap()));
    // The echo server put the credential in its error body: the run saw it and hid it.
    assert!(
        outputs.iter().any(|(_, o)| o.contains("***")),
        "nothing was redacted?"
    );
    for (what, o) in &outputs {
        assert!(!o.contains(&secret), "{what} leaks the secret:\n{o}");
        assert!(
            !o.contains("canary-leak"),
            "{what} leaks part of the secret:\n{o}"
        );
    }
    let dump = &outputs[1].1;
    assert!(
        dump.contains("authorization") && dump.contains("x-api-key"),
        "{dump}"
    );
}

#[test]
fn credentials_in_clear_text_to_another_host_need_an_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"c1\", \"input\": {\"text\": \"hi\"}}\n",
    );
    let suite = |extra: &str| {
        format!("suite: tls\nendpoints:\n  chat:\n    protocol: openai-chat\n    url: \"http://llm.internal.example/v1/chat/completions\"\n    headers: {{ authorization: \"Bearer ${{CANARY_KEY:-k-123456}}\" }}\n{extra}probes:\n  - {{ name: p, endpoint: chat, golden: g.jsonl }}\n")
    };
    let s = write(dir.path(), "a.yaml", &suite(""));
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        e.contains("clear text") && e.contains("allow_insecure"),
        "{e}"
    );
    let s = write(dir.path(), "b.yaml", &suite("    allow_insecure: true\n"));
    assert_eq!(
        canary(&["validate", s.to_str().unwrap()], &[])
            .status
            .code(),
        Some(0)
    );
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", n & 0xffff_ffff)
}

#[test]
fn sigterm_during_a_run_delivers_what_was_measured() {
    let sim = Sim::start(7, Some("mapper: { latency: { median: 5ms, p95: 10ms } }"));
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"c1\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"X\"}}}\n");
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            // Two slots: runs 1 and 2 of `fast` finish, then two hung `stuck` runs hold both
            // slots while run 3 of `fast` waits for one. SIGTERM must keep the finished runs.
            "suite: term\ndefaults: {{ timeout: 60s, concurrency: 2, runs: 3 }}\nendpoints:\n  fast: {{ protocol: http-json, url: \"{u}/map\" }}\n  stuck: {{ protocol: http-json, url: \"{u}/map\", headers: {{ x-sim-fault: hang }} }}\nprobes:\n  - {{ name: fast, endpoint: fast, golden: g.jsonl }}\n  - {{ name: stuck, endpoint: stuck, golden: g.jsonl }}\n",
            u = sim.url
        ),
    );
    let report = dir.path().join("r.json");
    let prom = dir.path().join("m.prom");
    let mut child = std::process::Command::new(BIN)
        .args([
            "run",
            s.to_str().unwrap(),
            "-q",
            "--report",
            report.to_str().unwrap(),
            "--textfile",
            prom.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let t0 = std::time::Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let took = t0.elapsed().as_secs_f64();
    assert!(took < 3.0, "stopped after {took}s");
    assert!(status.code().is_some(), "exited, not killed: {status:?}");
    let r = read_json(&report);
    let fast = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["endpoint"] == "fast")
        .count();
    assert_eq!(fast, 2, "the finished runs are in the report: {r}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("probe=\"fast\""), "and in the metrics");
}
