//! The fleet outputs against the real thing: Debian's Prometheus (with the remote-write
//! receiver) and Pushgateway, started on loopback ports. Several `canary run` invocations,
//! as a CronJob would make them, must add up exactly in Prometheus; the seeds' own queries
//! (histogram_quantile on the latency buckets, the cache hit ratio) must give the expected
//! values; promtool must accept the exposition.

mod common;
use common::*;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Pushgateway on `addr`, without persistence, stopped on drop.
fn pushgateway(addr: &str) -> Proc {
    Proc(
        Command::new("prometheus-pushgateway")
            .args([
                format!("--web.listen-address={addr}"),
                "--persistence.file=".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

fn wait_ready(addr: &str, path: &str) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if http_get(addr, path).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr}{path} never became ready");
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(addr: &str, q: &str) -> Vec<Value> {
    let body = http_get(addr, &format!("/api/v1/query?query={}", urlencode(q)))
        .unwrap_or_else(|| panic!("query failed: {q}"));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn scalar(addr: &str, q: &str) -> Option<f64> {
    query(addr, q)
        .first()
        .and_then(|r| r["value"][1].as_str())
        .and_then(|s| s.parse().ok())
}

/// Polls until the query gives a value satisfying `ok` (scrapes and ingestion take a moment).
fn eventually(addr: &str, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < Duration::from_secs(30) {
        last = scalar(addr, q);
        if let Some(v) = last {
            if ok(v) {
                return v;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{q}: last value {last:?}");
}

/// histogram_quantile's linear interpolation, on cumulative (le, count) pairs.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().unwrap().1;
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let (lo, clo) = prev;
            return lo + (le - lo) * (rank - clo) / (c - clo);
        }
        prev = (le, c);
    }
    f64::NAN
}

const SIM_CONFIG: &str = "mapper: { latency: { median: 20ms, p95: 60ms }, detectors: {}, schema_invalid_rate: 0.1, fallback_rate: 0.2 }";

#[test]
fn cronjob_runs_add_up_exactly_in_pushgateway_and_remote_write() {
    if !have("prometheus") || !have("prometheus-pushgateway") || !have("promtool") {
        panic!("this test needs Debian's prometheus and prometheus-pushgateway (apt-get install prometheus prometheus-pushgateway); .ci/run installs them");
    }
    let dir = tempfile::tempdir().unwrap();
    let pg_addr = format!("127.0.0.1:{}", free_port());
    let _pg = pushgateway(&pg_addr);
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "prometheus.yml",
        &format!("global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs: [{{ targets: ['{pg_addr}'] }}]\n"),
    );
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address={prom_addr}"),
                "--web.enable-remote-write-receiver".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&pg_addr, "/-/ready");
    wait_ready(&prom_addr, "/-/ready");
    let sim = Sim::start(21, Some(SIM_CONFIG));
    let spool = dir.path().join("spool");

    // Three CronJob runs push to the Pushgateway (region "pg") and remote-write (region "rw").
    let mut good = 0u64;
    let mut total = 0u64;
    let (mut cache_hits, mut cache_total) = (0u64, 0u64);
    for i in 0..3 {
        let report = dir.path().join(format!("r{i}.json"));
        for (region, flag, url) in [
            ("pg", "--push", format!("http://{pg_addr}")),
            (
                "rw",
                "--remote-write",
                format!("http://{prom_addr}/api/v1/write"),
            ),
        ] {
            let out = canary(
                &[
                    "run",
                    "probes/llama-mapper.yaml",
                    "--runs",
                    "2",
                    "--quiet",
                    "--region",
                    region,
                    flag,
                    &url,
                    "--spool",
                    spool.to_str().unwrap(),
                    "--report",
                    report.to_str().unwrap(),
                ],
                &[("MAPPER_URL", &sim.url)],
            );
            let (so, se) = text(&out);
            assert!(matches!(out.status.code(), Some(0) | Some(1)), "{so}{se}");
            assert!(!se.contains("warning") && !se.contains("error:"), "{se}");
            if region == "pg" {
                let r = read_json(&report);
                let v = r["slos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == "mapper-schema-valid" && v["slice"] == "*")
                    .unwrap()
                    .clone();
                good += v["good"].as_u64().unwrap();
                total += v["total"].as_u64().unwrap();
                let agg = r["slices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["probe"] == "map" && s["slice"] == "*")
                    .unwrap()
                    .clone();
                cache_hits += agg["counts"]["cache_hit"]["good"].as_u64().unwrap();
                cache_total += agg["counts"]["cache_hit"]["total"].as_u64().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(1200)); // let a scrape see each push
    }
    assert!(
        total > 0 && good < total,
        "the scenario has schema-invalid answers: {good}/{total}"
    );

    // Pushgateway: the carried counters are cumulative; the exact good/total over all runs.
    let sel = |region: &str, good: &str| {
        format!("canary_slo_events_total{{region=\"{region}\",slo=\"mapper-schema-valid\"{good}}}")
    };
    let got_total = eventually(&prom_addr, &format!("sum({})", sel("pg", "")), |v| {
        v as u64 == total
    });
    let got_good = eventually(
        &prom_addr,
        &format!("sum({})", sel("pg", ",good=\"true\"")),
        |v| v as u64 == good,
    );
    assert_eq!((got_good as u64, got_total as u64), (good, total));

    // Remote write: every run wrote 0 at its start and its count at its end, so increase()
    // over the runs adds up; the ratio is exact even though increase() extrapolates.
    let ratio_q = format!(
        "sum(increase({}[10m])) / sum(increase({}[10m]))",
        sel("rw", ",good=\"true\""),
        sel("rw", "")
    );
    let ratio = eventually(&prom_addr, &ratio_q, |v| v.is_finite());
    // The remote-write region made its own 3 runs; read their exact counts from Prometheus' raw samples.
    let raw = query(&prom_addr, &format!("{}[10m]", sel("rw", ",good=\"true\"")));
    let mut rw_good = 0.0;
    for series in &raw {
        let vals: Vec<f64> = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().parse().unwrap())
            .collect();
        // Each run: 0 then its count.
        assert_eq!(vals.len(), 6, "two samples per run: {vals:?}");
        rw_good += vals.iter().skip(1).step_by(2).sum::<f64>();
    }
    let raw_total = query(&prom_addr, &format!("{}[10m]", sel("rw", "")));
    let rw_total: f64 = raw_total
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .skip(1)
                .step_by(2)
                .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
                .sum::<f64>()
        })
        .sum();
    assert!(
        (ratio - rw_good / rw_total).abs() < 1e-9,
        "increase ratio {ratio} vs exact {rw_good}/{rw_total}"
    );

    // The seed's latency query on the histogram buckets: p95 from the pushed buckets.
    let buckets_q = "sum by (le) (canary_time_to_completion_seconds_bucket{region=\"pg\",probe=\"map\",slice=\"detector=presidio\"})";
    let series = query(&prom_addr, buckets_q);
    let mut b: Vec<(f64, f64)> = series
        .iter()
        .map(|s| {
            let le = s["metric"]["le"].as_str().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let expected = quantile(0.95, &b);
    let p95 = scalar(
        &prom_addr,
        &format!("histogram_quantile(0.95, {buckets_q})"),
    )
    .unwrap();
    assert!((p95 - expected).abs() < 1e-9, "{p95} vs {expected}");
    assert!(
        b.iter().any(|(le, _)| (*le - 0.25).abs() < 1e-12),
        "the SLO threshold is a bucket: {b:?}"
    );

    // The cache hit ratio, as the preview seed writes it, equals the runs' own counts.
    let expected_hits = cache_hits as f64 / cache_total as f64;
    assert!(
        cache_hits > 0 && cache_hits < cache_total,
        "{cache_hits}/{cache_total}"
    );
    let hits = eventually(
        &prom_addr,
        "sum(canary_cache_requests_total{region=\"pg\",status=\"hit\"}) / sum(canary_cache_requests_total{region=\"pg\"})",
        |v| (v - expected_hits).abs() < 1e-12,
    );
    assert!((hits - expected_hits).abs() < 1e-12);

    // promtool accepts the exposition canary writes.
    let tf = dir.path().join("canary.prom");
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--quiet",
            "--textfile",
            tf.to_str().unwrap(),
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    assert!(matches!(out.status.code(), Some(0) | Some(1)));
    let exposition = std::fs::read_to_string(&tf).unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(exposition.as_bytes())
            .unwrap();
    }
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn an_unreachable_pushgateway_spools_and_the_next_run_delivers() {
    if !have("prometheus-pushgateway") {
        panic!("this test needs Debian's prometheus-pushgateway; .ci/run installs it");
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let sim = Sim::start(4, Some(SIM_CONFIG));
    let pg_addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{pg_addr}");
    // Nothing listens yet: the push fails, the run's counts go to the spool.
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--runs",
            "1",
            "--quiet",
            "--region",
            "sp",
            "--push",
            &url,
            "--spool",
            spool.to_str().unwrap(),
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    let (_, se) = text(&out);
    assert!(se.contains("kept in"), "{se}");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);
    // Without a spool folder the loss is an error exit.
    let lost = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--quiet",
            "--region",
            "sp",
            "--push",
            &url,
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    assert_eq!(lost.status.code(), Some(3), "{:?}", text(&lost));

    let _pg = pushgateway(&pg_addr);
    wait_ready(&pg_addr, "/-/ready");
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--runs",
            "1",
            "--quiet",
            "--region",
            "sp",
            "--push",
            &url,
            "--spool",
            spool.to_str().unwrap(),
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{:?}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "the spool was delivered"
    );
    let metrics = http_get(&pg_addr, "/metrics").unwrap();
    // Two runs' worth (the spooled one and this one) of 15 + 3 cases for probe `map`.
    let total: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("canary_probe_runs_total{")
                && l.contains("probe=\"map\"")
                && l.contains("region=\"sp\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 30.0, "15 cases of probe map, twice");
}
