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
    // From a folder that is not the checkout: the examples travel inside the binary.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["demo", "--out", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(dir.path().join("out/examples/probes/chat.yaml").is_file());
    assert!(dir.path().join("out/chat.json").is_file(), "{stdout}");
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
    assert!(dir.path().join("out/llama-mapper.json").exists());
    // One line per suite with streams (chat, any-endpoint): each within bound, every stream
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
        // Headers to first visible token is the difference of two stamps on each side, so
        // its bound is twice one stamp's 2 ms.
        assert!(worst < 4.0, "{streams}");
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
    assert!(dir.path().join("out/any-endpoint.json").exists());
    for line in ["ground truth (voice):", "ground truth (jobs):"] {
        assert!(stdout.contains(line), "{line} missing");
    }
}

#[test]
fn demo_names_a_missing_probes_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = canary(
        &[
            "demo",
            "--probes",
            missing.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--probes"), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
}

/// A mapper suite whose `too-fast` SLO cannot be met (1 ms) and whose `fallback-90` objective
/// caps the 14.4x page pair.
fn missing_suite(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let golden = repo().join("golden/llama-mapper.jsonl");
    write(
        dir,
        "miss.yaml",
        &format!(
            "suite: miss\ndefaults: {{ runs: 1, timeout: 5s }}\nendpoints:\n  mapper: {{ protocol: http-json, method: POST, url: \"{url}/map\", fallback: {{ json: \"$.provenance\", equals: fallback }} }}\nprobes:\n  - {{ name: map, endpoint: mapper, golden: {} }}\nslos:\n  - {{ name: too-fast, probe: map, sli: time_to_completion, threshold: 1ms, objective: 99% }}\n  - {{ name: fallback-90, probe: map, sli: not_fallback, objective: 90% }}\n",
            golden.display()
        ),
    )
}

#[test]
fn quiet_still_says_which_slo_was_missed_and_logs_carry_no_colour() {
    let sim = Sim::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    let s = missing_suite(dir.path(), &sim.url);
    let out = canary(
        &["run", s.to_str().unwrap(), "-q"],
        &[("CANARY_LOG", "debug")],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "quiet prints no table: {stdout}");
    assert!(
        stderr.contains("MISSED miss / too-fast slice * (all): time_to_completion <= 1ms"),
        "{stderr}"
    );
    // Debug logs went to a pipe: no ANSI colour codes in them.
    assert!(
        stderr.contains("DEBUG") || stderr.contains("debug"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in a piped log");
}

#[test]
fn validate_and_rules_warn_about_an_unreachable_burn_rate_pair() {
    let dir = tempfile::tempdir().unwrap();
    let s = missing_suite(dir.path(), "http://127.0.0.1:9");
    for cmd in ["validate", "rules"] {
        let out = canary(&[cmd, s.to_str().unwrap()], &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {stderr}");
        if cmd == "validate" {
            assert!(
                stdout.contains("(suite miss: 1 endpoint, 1 probe, ")
                    && stdout.contains(" cases, 2 SLOs)"),
                "{stdout}"
            );
        }
        assert!(
            stderr.contains("warning: ") && stderr.contains("slos[1].objective: objective 90%"),
            "{cmd}: {stderr}"
        );
        assert!(
            stderr.contains("the 14.4x page pair (it needs an error ratio of 144%) is 9x"),
            "{stderr}"
        );
        if cmd == "rules" {
            // The generated rules use the capped factor: 9 x 10% = 0.9.
            assert!(stdout.contains("> 0.9 and"), "{stdout}");
            assert!(!stdout.contains("> 1.44"), "{stdout}");
        }
    }
}

#[test]
fn every_command_that_loads_suites_takes_a_folder() {
    let yaml = std::fs::read_dir(repo().join("probes"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    let out = canary(&["validate", "probes/"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        yaml,
        "{stdout}"
    );
    for args in [
        vec!["plan", "probes"],
        vec!["rules", "probes", "--format", "sloth"],
    ] {
        let out = canary(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", text(&out));
    }
    // A folder with no suite is an error naming it, for `run` as for the others.
    let empty = tempfile::tempdir().unwrap();
    let out = canary(&["run", empty.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("the folder holds no suite"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn a_textfile_that_node_exporter_would_ignore_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--textfile",
            dir.path().join("canary.txt").to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("reads only *.prom"), "{stderr}");
    assert!(stderr.contains("canary.prom"), "{stderr}");
}
