//! Bad targets never crash or hang a run: each fault yields a classified error for its case
//! within the case's deadline, and the other cases of the run are measured normally.

mod common;
use common::*;
use std::time::Instant;

fn suite(sim: &str, dead_port: u16) -> String {
    let ep = |name: &str, fault: &str| {
        format!(
            "  {name}:\n    protocol: http-json\n    url: \"{sim}/map\"\n    headers: {{ x-sim-fault: \"{fault}\" }}\n    schema: schema.json\n"
        )
    };
    let mut s =
        String::from("suite: faults\ndefaults: { timeout: 600ms, concurrency: 16 }\nendpoints:\n");
    s += &format!(
        "  good:\n    protocol: http-json\n    url: \"{sim}/map\"\n    schema: schema.json\n"
    );
    for (name, fault) in [
        ("hang", "hang"),
        ("drip", "drip=300"),
        ("s503", "status=503"),
        ("s429", "status=429"),
        ("badjson", "invalid-json"),
        ("truncated", "truncate"),
    ] {
        s += &ep(name, fault);
    }
    s += &format!("  huge:\n    protocol: http-json\n    url: \"{sim}/map\"\n    headers: {{ x-sim-fault: \"huge=268435456\" }}\n    max_body: 1MiB\n");
    s += &format!(
        "  refused:\n    protocol: http-json\n    url: \"http://127.0.0.1:{dead_port}/map\"\n"
    );
    s += "probes:\n";
    for name in [
        "good",
        "hang",
        "drip",
        "s503",
        "s429",
        "badjson",
        "truncated",
        "huge",
        "refused",
    ] {
        s += &format!("  - {{ name: {name}, endpoint: {name}, golden: g.jsonl }}\n");
    }
    s += "slos:\n  - { name: avail, probe: good, sli: success, objective: 99% }\n";
    s
}

#[test]
fn every_fault_is_classified_within_its_deadline_and_the_rest_is_measured() {
    let sim = Sim::start(3, Some("mapper: { latency: { median: 5ms, p95: 10ms }, schema_invalid_rate: 0.0, fallback_rate: 0.0 }"));
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"c1\", \"slice\": \"s\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}\n{\"id\": \"c2\", \"slice\": \"s\", \"input\": {\"body\": {\"detector\": \"presidio\", \"output\": \"PHONE_NUMBER\"}}}\n");
    std::fs::copy(
        repo().join("golden/llama-mapper.schema.json"),
        dir.path().join("schema.json"),
    )
    .unwrap();
    let suite_path = write(dir.path(), "faults.yaml", &suite(&sim.url, dead_port));
    let report = dir.path().join("r.json");

    let t0 = Instant::now();
    let out = canary(
        &[
            "run",
            suite_path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "good cases meet the SLO:\n{stdout}\n{stderr}"
    );
    // 18 case runs, 16 in flight, 600 ms deadlines: two deadline rounds at most, plus start-up.
    assert!(elapsed < 3.0, "the run took {elapsed:.2}s");

    let r = read_json(&report);
    let outcome = |probe: &str| -> Vec<String> {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["probe"] == probe)
            .map(|c| c["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(outcome("good"), ["ok", "ok"]);
    assert_eq!(outcome("hang"), ["timeout", "timeout"]);
    assert_eq!(outcome("drip"), ["timeout", "timeout"]);
    assert_eq!(outcome("s503"), ["http_status", "http_status"]);
    assert_eq!(outcome("s429"), ["rate_limited", "rate_limited"]);
    assert_eq!(outcome("badjson"), ["invalid_json", "invalid_json"]);
    assert_eq!(outcome("truncated"), ["reset", "reset"]);
    assert_eq!(outcome("huge"), ["body_too_large", "body_too_large"]);
    assert_eq!(outcome("refused"), ["connect", "connect"]);

    for c in r["cases"].as_array().unwrap() {
        match c["probe"].as_str().unwrap() {
            "hang" | "drip" => {
                // The deadline is hard: the case ended at 600 ms plus a small margin.
                let msg = c["error"].as_str().unwrap();
                let gave_up: f64 = msg
                    .rsplit("gave up at ")
                    .next()
                    .unwrap()
                    .trim_end_matches("s)")
                    .parse()
                    .unwrap();
                assert!((0.6..0.7).contains(&gave_up), "{msg}");
            }
            "badjson" => assert_eq!(c["schema_valid"], false),
            "s503" | "s429" | "refused" => assert!(c["schema_valid"].is_null()),
            "good" => {
                assert_eq!(c["schema_valid"], true);
                assert!(c["latency"]["time_to_completion"].as_f64().unwrap() < 0.5);
            }
            _ => {}
        }
    }
    let s429 = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["probe"] == "s429")
        .unwrap();
    assert!(
        s429["error"].as_str().unwrap().contains("retry-after 1"),
        "{s429}"
    );
    let agg = r["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["probe"] == "badjson" && s["slice"] == "*")
        .unwrap();
    assert_eq!(agg["counts"]["schema_valid"]["good"], 0);
    assert_eq!(agg["counts"]["schema_valid"]["total"], 2);
}

#[test]
fn nothing_measured_exits_3() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"c\", \"input\": {\"body\": {}}}\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        &format!("suite: down\nendpoints:\n  e: {{ protocol: http-json, url: \"http://127.0.0.1:{port}/x\" }}\nprobes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\nslos:\n  - {{ name: a, probe: p, sli: success, objective: 99% }}\n"),
    );
    let out = canary(&["run", s.to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("nothing could be measured"), "{stderr}");
    assert!(stderr.contains("connect"), "{stderr}");
}

#[test]
fn retry_after_is_honoured_and_slos_can_leave_rate_limits_out() {
    let sim = Sim::start(8, None);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        &(0..3)
            .map(|i| format!("{{\"id\": \"c{i}\", \"input\": {{\"body\": {{\"detector\": \"presidio\", \"output\": \"EMAIL_ADDRESS\"}}}}}}\n"))
            .collect::<String>(),
    );
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            "suite: storm\ndefaults: {{ concurrency: 1, timeout: 5s }}\nendpoints:\n  e:\n    protocol: http-json\n    url: \"{}/map\"\n    headers: {{ x-sim-fault: \"status=429\" }}\nprobes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\nslos:\n  - {{ name: counted, probe: p, sli: success, objective: 99% }}\n  - {{ name: storm-excluded, probe: p, sli: success, objective: 99%, exclude: [rate_limited] }}\n",
            sim.url
        ),
    );
    let report = dir.path().join("r.json");
    let t0 = Instant::now();
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let elapsed = t0.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    // Each 429 says Retry-After: 1; the next case to the endpoint waits for it.
    assert!(
        elapsed >= 2.0,
        "three cases one after the other, 1 s apart at least: {elapsed:.2}s"
    );
    let r = read_json(&report);
    let started: Vec<f64> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            humantime::parse_rfc3339(c["started_at"].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        })
        .collect();
    let mut sorted = started.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 0.95), "{sorted:?}");
    let slo = |name: &str| {
        r["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name && v["slice"] == "*")
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            slo("counted")["good"].as_u64(),
            slo("counted")["total"].as_u64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(
        slo("storm-excluded")["total"].as_u64(),
        Some(0),
        "rate-limited runs are left out"
    );
}
