//! End to end against the simulator: `canary run` on the Llama Mapper suite reports
//! schema-valid and fallback shares equal to the simulator's exact counts, latency
//! percentiles that agree with the server's own timings, and exit 1 when the schema SLO is missed.

mod common;
use common::*;

const SIM_CONFIG: &str = "
mapper:
  latency: { median: 30ms, p95: 90ms }
  detectors:
    presidio: { median: 20ms, p95: 60ms }
    llama-guard: { median: 80ms, p95: 200ms }
  schema_invalid_rate: 0.08
  fallback_rate: 0.2
";

#[test]
fn counts_and_latencies_match_the_simulators_ground_truth() {
    let sim = Sim::start(7, Some(SIM_CONFIG));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = canary(
        &[
            "run",
            "probes/llama-mapper.yaml",
            "--runs",
            "12",
            "--report",
            report.to_str().unwrap(),
            "--region",
            "test-1",
        ],
        &[("MAPPER_URL", &sim.url)],
    );
    let (stdout, stderr) = text(&out);
    // 8% schema-invalid against a 99.5% objective: the SLO must be missed -> exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("MISSED   mapper-schema-valid"), "{stdout}");

    let r = read_json(&report);
    assert_eq!(r["suite"], "llama-mapper");
    assert_eq!(r["region"], "test-1");
    let truth = sim.truth();
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), (15 + 3) * 12);
    assert_eq!(
        truth.len(),
        cases.len(),
        "every case run reached the simulator exactly once"
    );

    for (probe, path) in [("map", "/map"), ("map-batch", "/map/batch")] {
        let t: Vec<&serde_json::Value> = truth.iter().filter(|t| t["path"] == path).collect();
        let true_invalid = t.iter().filter(|t| t["schema_valid"] == false).count() as u64;
        let true_fallback = t.iter().filter(|t| t["fallback"] == true).count() as u64;
        let agg = r["slices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["probe"] == probe && s["slice"] == "*")
            .unwrap();
        let sv = &agg["counts"]["schema_valid"];
        let nf = &agg["counts"]["not_fallback"];
        assert_eq!(sv["total"].as_u64().unwrap(), t.len() as u64);
        assert_eq!(
            sv["total"].as_u64().unwrap() - sv["good"].as_u64().unwrap(),
            true_invalid,
            "{probe} schema-invalid"
        );
        assert_eq!(
            nf["total"].as_u64().unwrap() - nf["good"].as_u64().unwrap(),
            true_fallback,
            "{probe} fallback"
        );
        assert!(
            true_invalid > 0 && true_fallback > 0,
            "the scenario must exercise both signals"
        );
        let ratio = agg["ratios"]["schema_valid"].as_f64().unwrap();
        assert!((ratio - (t.len() as u64 - true_invalid) as f64 / t.len() as f64).abs() < 1e-12);
    }

    // Latency: every order statistic of the measured completion times lies within a few
    // percent (plus loopback connect and transfer) of the server's own timings.
    for detector in [
        "presidio",
        "llama-guard",
        "deberta-toxicity",
        "regex-secrets",
    ] {
        let mut server: Vec<f64> = truth
            .iter()
            .filter(|t| t["path"] == "/map" && t["detector"] == detector)
            .map(|t| t["server_seconds"].as_f64().unwrap())
            .collect();
        let mut measured: Vec<f64> = cases
            .iter()
            .filter(|c| c["probe"] == "map" && c["slice"] == format!("detector={detector}"))
            .map(|c| c["latency"]["time_to_completion"].as_f64().unwrap())
            .collect();
        assert_eq!(server.len(), measured.len());
        server.sort_by(f64::total_cmp);
        measured.sort_by(f64::total_cmp);
        for (s, m) in server.iter().zip(&measured) {
            assert!(
                *m >= *s,
                "a client cannot see the answer before the server produced it: {m} < {s}"
            );
            assert!(
                m - s <= 0.03 * s + 0.004,
                "{detector}: measured {m:.4}s vs server {s:.4}s"
            );
        }
        let slice = r["slices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["probe"] == "map" && s["slice"] == format!("detector={detector}"))
            .unwrap();
        let p95 = slice["latency"]["time_to_completion"]["p95"]
            .as_f64()
            .unwrap();
        let truth_p95 = nearest_rank(&server, 0.95);
        assert!(
            (p95 - truth_p95).abs() <= 0.03 * truth_p95 + 0.004,
            "{detector} p95 {p95} vs truth {truth_p95}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_counts() {
    let counts = |seed| {
        let sim = Sim::start(seed, Some(SIM_CONFIG));
        let out = canary(
            &["run", "probes/llama-mapper.yaml", "--runs", "3", "--quiet"],
            &[("MAPPER_URL", &sim.url)],
        );
        assert!(matches!(out.status.code(), Some(0) | Some(1)));
        let t = sim.truth();
        let invalid = t.iter().filter(|t| t["schema_valid"] == false).count();
        let fallback = t.iter().filter(|t| t["fallback"] == true).count();
        let mut designed: Vec<String> = t
            .iter()
            .map(|t| format!("{}:{}", t["detector"], t["designed_seconds"]))
            .collect();
        designed.sort();
        (invalid, fallback, designed)
    };
    assert_eq!(counts(11), counts(11));
    // And the seed matters: another seed draws other latencies.
    assert_ne!(counts(11).2, counts(12).2);
}
