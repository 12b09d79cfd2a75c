//! The command line as users meet it: validate's messages and exit codes, the report's
//! committed JSON schema, secrets kept out of every output, and the demo.

mod common;
use common::*;

#[test]
fn validate_accepts_the_example_suites() {
    let out = canary(&["validate", "probes/llama-mapper.yaml"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ok: probes/llama-mapper.yaml (suite llama-mapper: 2 endpoints, 2 probes, 18 cases, 6 SLOs)"), "{stdout}");
}

#[test]
fn validate_lists_every_mistake_and_exits_2() {
    let out = canary(
        &[
            "validate",
            "tests/fixtures/bad/many-mistakes.yaml",
            "tests/fixtures/bad/golden-errors.yaml",
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("tests/fixtures/bad/many-mistakes.yaml:5:3: defaults.concurency: unknown key `concurency` (did you mean `concurrency`?)"), "{stderr}");
    assert!(
        stderr.contains("tests/fixtures/golden-bad.jsonl:3:16: case.slce: unknown key `slce`"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("23 errors"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(canary(&["run"], &[]).status.code(), Some(2));
    assert_eq!(
        canary(&["run", "no/such/suite.yaml"], &[]).status.code(),
        Some(2)
    );
    assert_eq!(canary(&["frobnicate"], &[]).status.code(), Some(2));
}

#[test]
fn the_report_matches_its_committed_schema() {
    let sim = Sim::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--runs",
            "2",
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{:?}",
        text(&out)
    );
    let r = read_json(&report);
    assert_report_valid(&r);
    // Every slice of the golden set has a row, and the aggregate too.
    let slices: Vec<&str> = r["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slice"].as_str().unwrap())
        .collect();
    for s in [
        "*",
        "detector=presidio",
        "detector=llama-guard",
        "detector=deberta-toxicity",
        "detector=regex-secrets",
        "batch=pii",
    ] {
        assert!(slices.contains(&s), "{s} missing from {slices:?}");
    }
    // The schema must reject what it should: a report without cases.
    let mut broken = r.clone();
    broken.as_object_mut().unwrap().remove("cases");
    let schema = read_json(&repo().join("docs/report.schema.json"));
    assert!(!jsonschema::validator_for(&schema)
        .unwrap()
        .is_valid(&broken));
}

#[test]
fn secrets_never_reach_stdout_stderr_or_the_report() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"c\", \"input\": {\"body\": {}}}\n",
    );
    write(dir.path(), "token.txt", "sk-file-SECRET-0123456789\n");
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            "suite: secret\nendpoints:\n  e:\n    protocol: http-json\n    url: \"http://127.0.0.1:{port}/x?key=${{CANARY_TEST_API_KEY}}\"\n    headers: {{ authorization: \"Bearer ${{file:token.txt}}\", x-api-key: \"${{CANARY_TEST_API_KEY}}\" }}\nprobes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\n"
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
        &[
            ("CANARY_TEST_API_KEY", "sk-env-SECRET-9876543210"),
            ("CANARY_LOG", "debug"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    let report_text = std::fs::read_to_string(&report).unwrap();
    for secret in ["sk-env-SECRET-9876543210", "sk-file-SECRET-0123456789"] {
        assert!(!stdout.contains(secret), "stdout leaks {secret}");
        assert!(!stderr.contains(secret), "stderr leaks {secret}:\n{stderr}");
        assert!(!report_text.contains(secret), "report leaks {secret}");
    }
    // A target that echoes the credential in an error body: redacted, even where the
    // excerpt would cut through it.
    let sim = Sim::start(1, None);
    let echo = write(
        dir.path(),
        "echo.yaml",
        &format!(
            "suite: echo\nendpoints:\n  e:\n    protocol: http-json\n    url: \"{}/map\"\n    headers: {{ authorization: \"Bearer ${{file:token.txt}}\", x-sim-fault: echo-auth }}\nprobes:\n  - {{ name: p, endpoint: e, golden: g2.jsonl }}\n",
            sim.url
        ),
    );
    write(dir.path(), "g2.jsonl", "{\"id\": \"c\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}\n");
    let report2 = dir.path().join("r2.json");
    let out = canary(
        &[
            "run",
            echo.to_str().unwrap(),
            "--report",
            report2.to_str().unwrap(),
        ],
        &[("CANARY_LOG", "debug")],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    let report_text = std::fs::read_to_string(&report2).unwrap();
    for part in ["sk-file-SECRET-0123456789", "sk-file-SECRET", "sk-fil"] {
        assert!(
            !stdout.contains(part) && !stderr.contains(part) && !report_text.contains(part),
            "{part} leaked:\n{stderr}\n{report_text}"
        );
    }

    // A validation error that quotes the URL redacts it too.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "suite: s\nendpoints:\n  e: { protocol: http-json, url: \"ftp://h/${CANARY_TEST_API_KEY}\" }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl }\n",
    );
    let out = canary(
        &["validate", bad.to_str().unwrap()],
        &[("CANARY_TEST_API_KEY", "sk-env-SECRET-9876543210")],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("ftp://h/***"), "{stderr}");
    assert!(!stderr.contains("sk-env-SECRET"), "{stderr}");
}

#[test]
fn demo_runs_the_examples_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = canary(&["demo", "--out", dir.path().to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("mapper / map"), "{stdout}");
    assert!(stdout.contains("mapper-latency-p95"), "{stdout}");
    // The demo prints its own comparison with the simulator's ground truth.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ground truth (requests):"))
        .unwrap();
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums[1], nums[2], "schema-invalid measured vs true: {line}");
    assert_eq!(nums[3], nums[4], "fallback measured vs true: {line}");
    assert!(dir.path().join("llama-mapper.json").exists());
    assert!(dir.path().join("chat.json").exists());
    // One line per suite with streams (chat, any-endpoint): each within 2 ms, every stream
    // compared.
    let mut all_runs = 0;
    for streams in stdout
        .lines()
        .filter(|l| l.starts_with("ground truth (streams):"))
    {
        let worst: f64 = streams
            .split("within ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(worst < 2.0, "{streams}");
        let runs: u64 = streams
            .split("over ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let served: u64 = streams
            .split("(streams): ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            runs, served,
            "every stream of the demo was compared: {streams}"
        );
        all_runs += runs;
    }
    assert!(
        all_runs >= 100,
        "every chat and described-stream run of the demo: {all_runs}"
    );
    assert!(dir.path().join("any-endpoint.json").exists());
    for line in ["ground truth (voice):", "ground truth (jobs):"] {
        assert!(stdout.contains(line), "{line} missing");
    }
}
