//! Job probes and the warm-run benchmark against the simulator's `/preview` service:
//! completion agrees with the server's ready time within the reported poll error (and
//! within milliseconds through the status stream); the cache hit ratio equals the exact
//! count; the same seed gives the same request sequence; a failed job is reported with its
//! reason; the service's metrics snapshots are kept and compared.

mod common;
use common::*;
use serde_json::Value;

const SIM: &str = "preview:\n  miss: { median: 300ms, p95: 600ms }\n  hit: { median: 60ms, p95: 150ms }\n  queue_share: 0.3\n";

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn suite(sim: &str, every: &str) -> String {
    format!(
        r#"suite: jobs
defaults: {{ timeout: 10s, runs: 4, concurrency: 2 }}
buckets: {{ time_to_completion: [0.1, 0.5, 1, 2, 4, 8, 16] }}
endpoints:
  poll:
    protocol: job
    labels: {{ model: m1, route: preview }}
    submit: {{ url: "{sim}/preview", body: {{ asset: "{{{{input.asset}}}}", kind: "{{{{input.kind}}}}", run: "{{{{run}}}}", seed: "{{{{seed}}}}" }} }}
    id: {{ json: "$.id" }}
    poll: {{ url: "{sim}/preview/{{id}}", every: {every} }}
    done: {{ json: "$.status", equals: ready }}
    failed: {{ json: "$.status", equals: failed, reason: "$.error" }}
    queue: {{ json: "$.queue_seconds" }}
    cache: {{ header: x-cache, hit: HIT }}
    metrics_url: "{sim}/metrics"
    metrics_compare:
      cache_hit: {{ good: 'montage_proxy_cache_request_total{{status="hit"}}', total: montage_proxy_cache_request_total }}
      time_to_completion: {{ histogram: montage_time_to_preview_seconds }}
  stream:
    protocol: job
    submit: {{ url: "{sim}/preview", body: {{ asset: "{{{{input.asset}}}}", via: stream }} }}
    id: {{ json: "$.id" }}
    poll: {{ stream: "{sim}/preview/{{id}}/events" }}
    done: {{ json: "$.status", equals: ready }}
    failed: {{ json: "$.status", equals: failed, reason: "$.error" }}
  location:
    protocol: job
    submit: {{ url: "{sim}/preview", body: {{ asset: "{{{{input.asset}}}}", via: location }} }}
    poll: {{ every: {every} }}
    done: {{ json: "$.status", equals: ready }}
probes:
  - {{ name: poll, endpoint: poll, golden: g.jsonl }}
  - {{ name: stream, endpoint: stream, golden: g.jsonl, runs: 2 }}
  - {{ name: location, endpoint: location, golden: g.jsonl, runs: 1 }}
  - {{ name: broken, endpoint: poll, golden: bad.jsonl, runs: 1 }}
slos:
  - {{ name: p50, probe: poll, sli: time_to_completion, threshold: 8s, objective: 50% }}
  - {{ name: hit, probe: poll, sli: cache_hit, objective: 70% }}
"#
    )
}

struct Run {
    report: Value,
    jobs: Vec<Value>,
    code: Option<i32>,
    out: String,
}

fn run(args: &[&str], every: &str) -> (Run, tempfile::TempDir) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(11, Some(SIM));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"a\", \"slice\": \"clip\", \"input\": {\"asset\": \"a.mp4\", \"kind\": \"render\"}}\n{\"id\": \"b\", \"slice\": \"stills\", \"input\": {\"asset\": \"b.zip\", \"kind\": \"render\"}}\n",
    );
    write(
        dir.path(),
        "bad.jsonl",
        "{\"id\": \"corrupt\", \"slice\": \"corrupt\", \"input\": {\"asset\": \"x.mp4\", \"kind\": \"corrupt\"}}\n",
    );
    let s = write(dir.path(), "s.yaml", &suite(&sim.url, every));
    let report = dir.path().join("r.json");
    let mut a = vec![
        "run",
        s.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    a.extend_from_slice(args);
    let out = canary(&a, &[]);
    let (stdout, stderr) = text(&out);
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    (
        Run {
            report: read_json(&report),
            jobs: truth["jobs"].as_array().unwrap().clone(),
            code: out.status.code(),
            out: format!("{stdout}\n{stderr}"),
        },
        dir,
    )
}

fn cases<'a>(r: &'a Run, probe: &str) -> Vec<&'a Value> {
    r.report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["probe"] == probe)
        .collect()
}

/// The simulator's record of a job, by id or by its `Location` (`/preview/ID`).
fn truth_of<'a>(r: &'a Run, id: &str) -> &'a Value {
    let id = id.rsplit('/').next().unwrap_or(id);
    r.jobs
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no truth for {id}"))
}

#[test]
fn completion_is_within_the_reported_poll_error_and_streams_are_exact() {
    let (r, _dir) = run(&["--seed", "5", "-q"], "20ms");
    assert!(matches!(r.code, Some(0)), "{}", r.out);
    for c in cases(&r, "poll").into_iter().chain(cases(&r, "location")) {
        assert_eq!(c["outcome"], "ok", "{c}");
        let id = c["job"]["id"].as_str().unwrap_or_else(|| panic!("{c}"));
        let truth = truth_of(&r, id)["ready_after_s"].as_f64().unwrap();
        let ttc = c["latency"]["time_to_completion"].as_f64().unwrap();
        let err = c["job"]["completion_error_seconds"].as_f64().unwrap();
        assert!(
            err > 0.0 && err < 0.05,
            "20 ms polls bound the error near 20 ms: {err}"
        );
        // Measured from the client's submit: never before the server's ready time, never
        // later than the window in which the job was seen done.
        assert!(ttc >= truth - 0.002, "{id}: {ttc} < truth {truth}");
        assert!(
            ttc - truth <= err + 0.003,
            "{id}: {ttc} vs truth {truth}, error bound {err}"
        );
        assert!(c["job"]["polls"].as_u64().unwrap() >= 1);
        let q = c["job"]["queue_seconds"].as_f64();
        if c["probe"] == "poll" {
            let tq = truth_of(&r, id)["queue_s"].as_f64().unwrap();
            assert!((q.unwrap() - tq).abs() < 1e-9, "{c}");
        }
    }
    for c in cases(&r, "stream") {
        let id = c["job"]["id"].as_str().unwrap();
        let truth = truth_of(&r, id)["ready_after_s"].as_f64().unwrap();
        let ttc = c["latency"]["time_to_completion"].as_f64().unwrap();
        assert_eq!(c["job"]["completion_error_seconds"], 0.0);
        assert!(
            (ttc - truth).abs() <= 0.003,
            "stream {id}: {ttc} vs {truth}"
        );
    }
    // The failing job kind is its own classified error, with the server's reason.
    let bad = cases(&r, "broken");
    assert_eq!(bad[0]["outcome"], "job_failed");
    assert!(
        bad[0]["error"].as_str().unwrap().contains("corrupt"),
        "{}",
        bad[0]
    );
}

#[test]
fn cache_hits_are_counted_exactly_and_the_targets_view_is_set_beside_them() {
    let art = tempfile::tempdir().unwrap();
    let (r, _dir) = run(
        &[
            "--seed",
            "5",
            "--warmup",
            "1",
            "-q",
            "--artifacts",
            art.path().to_str().unwrap(),
        ],
        "20ms",
    );
    let recorded: Vec<&Value> = cases(&r, "poll");
    assert_eq!(recorded.len(), 8);
    let true_hits = recorded
        .iter()
        .filter(|c| truth_of(&r, c["job"]["id"].as_str().unwrap())["cache_hit"] == true)
        .count();
    let agg = r.report["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["probe"] == "poll" && s["slice"] == "*")
        .unwrap();
    assert_eq!(
        agg["counts"]["cache_hit"]["good"], true_hits as u64,
        "{agg}"
    );
    // After a warm-up round every recorded run is warm.
    assert_eq!(true_hits, 8);
    // The service's own counters: 3 hits + 1 revalidation miss per warm job, 3 misses per
    // cold one, over every job it served between the snapshots: the recorded runs of every
    // probe (the warm-up came before the first snapshot).
    let during: Vec<&Value> = r.report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["job"]["id"].as_str())
        .map(|id| truth_of(&r, id))
        .collect();
    let ids: Vec<&str> = during.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(
        during.len() + 7,
        r.jobs.len(),
        "7 warm-up jobs came first: {ids:?} of {:?}",
        r.jobs
    );
    let (h, m) = during.iter().fold((0.0, 0.0), |(h, m), j| {
        if j["cache_hit"] == true {
            (h + 3.0, m + 1.0)
        } else {
            (h, m + 3.0)
        }
    });
    let t = &r.report["target_metrics"][0];
    assert_eq!(t["endpoint"], "poll");
    let cmp = t["comparisons"].as_array().unwrap();
    let hit = cmp.iter().find(|c| c["sli"] == "cache_hit").unwrap();
    assert_eq!(hit["target"]["good"], h, "{hit}");
    assert_eq!(hit["target"]["total"], h + m, "{hit}");
    assert_eq!(hit["canary"]["ratio"], 1.0);
    let lat = cmp
        .iter()
        .find(|c| c["sli"] == "time_to_completion")
        .unwrap();
    assert!(lat["target"]["count"].as_f64().unwrap() >= 8.0, "{lat}");
    assert!(lat["canary"]["p50"].as_f64().is_some(), "{lat}");
    for when in ["before", "after"] {
        let p = art.path().join(format!("jobs.poll.{when}.prom"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains("montage_proxy_cache_request_total"), "{text}");
    }
    assert_report_valid(&r.report);
    assert_eq!(r.report["seed"], 5);
    assert_eq!(r.report["warmup"], 1);
}

#[test]
fn the_same_seed_gives_the_same_request_sequence() {
    let sequence = |seed: &str| -> Vec<String> {
        let (r, _dir) = run(&["--seed", seed, "--concurrency", "1", "-q"], "20ms");
        r.jobs
            .iter()
            .filter(|j| j["key"].as_str().is_some_and(|k| k.contains("seed")))
            .map(|j| j["key"].as_str().unwrap().to_string())
            .collect()
    };
    let a = sequence("7");
    let b = sequence("7");
    let c = sequence("8");
    assert_eq!(a.len(), 9, "{a:?}");
    assert_eq!(a, b);
    assert_ne!(a, c, "another seed, another order");
    assert!(
        a[0].contains("seed=7"),
        "{{seed}} reaches the request: {a:?}"
    );
}

#[test]
fn job_metrics_use_the_suite_buckets_and_endpoint_labels() {
    let out = tempfile::tempdir().unwrap();
    let prom = out.path().join("m.prom");
    let (r, _dir) = run(
        &["--seed", "5", "-q", "--textfile", prom.to_str().unwrap()],
        "20ms",
    );
    assert!(matches!(r.code, Some(0)), "{}", r.out);
    let text = std::fs::read_to_string(&prom).unwrap();
    let buckets: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("canary_time_to_completion_seconds_bucket")
                && l.contains("endpoint=\"poll\"")
                && l.contains("slice=\"clip\"")
        })
        .collect();
    let les: Vec<&str> = buckets
        .iter()
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        les,
        vec!["0.1", "0.5", "1", "2", "4", "8", "16", "+Inf"],
        "{buckets:?}"
    );
    assert!(buckets
        .iter()
        .all(|l| l.contains("model=\"m1\"") && l.contains("route=\"preview\"")));
    assert!(text.contains("canary_cache_requests_total{"), "{text}");
}
