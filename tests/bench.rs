//! `canary bench` end to end (quick mode, no peer): the report carries every section, every
//! run is matched with the simulator's record of the same request, the measurements agree
//! with the truth when the machine is not loaded, and an open-loop overload shows the
//! latency that a closed-loop measurement omits.

mod common;

use common::{canary, read_json, text};

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn quick_bench_reports_fidelity_cost_omission_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o = canary(
        &[
            "bench",
            "--quick",
            "--levels",
            "1,20",
            "--peer",
            "none",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let r = read_json(&out.join("bench.json"));
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    for heading in [
        "## Targets",
        "## Fidelity under load",
        "## Coordinated omission",
        "## Cost of `canary run`",
        "## Audio decoding throughput",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }

    // Fidelity: every SLI at both levels, every run ok and matched with its truth record.
    let rows = r["fidelity"].as_array().unwrap();
    for (sli, scenario) in [
        ("time_to_first_visible_token", "sim-plain"),
        ("inter_chunk_gap", "sim-plain"),
        ("time_to_first_visible_token", "sim-reasoning"),
        ("time_to_first_audio", "realtime-pcm16"),
        ("time_to_first_audio", "ws-opus"),
    ] {
        for streams in [1, 20] {
            let row = rows
                .iter()
                .find(|x| x["sli"] == sli && x["scenario"] == scenario && x["streams"] == streams)
                .unwrap_or_else(|| panic!("no row {sli} {scenario} {streams}"));
            assert_eq!(row["ok"], row["runs"], "{row}");
            assert_eq!(row["matched"], row["runs"], "{row}");
            assert!(row["error_ms"]["n"].as_u64().unwrap() > 0, "{row}");
        }
    }
    // One stream on an idle machine: canary's stamps agree with the server's writes. The
    // bound is loose (CI machines are shared); the benchmark's figures are far below it.
    for (sli, scenario) in [
        ("time_to_first_visible_token", "sim-plain"),
        ("inter_chunk_gap", "sim-plain"),
        ("time_to_first_audio", "realtime-pcm16"),
    ] {
        let row = rows
            .iter()
            .find(|x| x["sli"] == sli && x["scenario"] == scenario && x["streams"] == 1)
            .unwrap();
        assert!(f(&row["error_ms"]["p50"]) < 2.0, "{row}");
        assert_eq!(row["unpaired"], 0, "{row}");
    }

    // Coordinated omission: at 200/s for 1 s against 100 slots of ~0.9 s streams, the second
    // hundred requests wait some 0.4 s for a slot, so latency from the scheduled time exceeds
    // latency from the actual send by the wait (on average half the requests wait); at 50/s
    // there is (almost) no wait.
    let co = r["coordinated_omission"].as_array().unwrap();
    let at = |rate: f64| {
        co.iter()
            .find(|x| f(&x["offered_per_second"]) == rate)
            .unwrap()
    };
    let over = at(200.0);
    let lag = f(&over["send_lag_ms"]["mean"]);
    assert!(lag > 100.0, "{over}");
    let diverged = f(&over["from_scheduled_ms"]["mean"]) - f(&over["from_actual_ms"]["mean"]);
    assert!((diverged - lag).abs() < 1.0, "{over}");
    assert!(f(&at(50.0)["send_lag_ms"]["mean"]) < lag / 4.0, "{co:?}");

    // Cost: canary run as a child process, every probe ok, CPU and memory measured.
    let streamed = &r["cost"]["streamed"];
    assert_eq!(streamed["ok"], streamed["requests"], "{streamed}");
    assert!(f(&streamed["cpu_seconds"]) > 0.0, "{streamed}");
    assert!(
        streamed["peak_rss_bytes"].as_u64().unwrap() > 1_000_000,
        "{streamed}"
    );
    // The floor: the same streams read and discarded, every one to its last chunk.
    let floor = &r["cost"]["floor"];
    assert_eq!(floor["ok"], streamed["requests"], "{floor}");
    assert!(f(&floor["wall_seconds"]) > 0.0, "{floor}");
    assert_eq!(r["cost"]["hundred_cases"]["ok"], 100);
    assert_eq!(r["cost"]["start_to_first_request_ms"]["n"], 5);
    let start = f(&r["cost"]["start_to_first_request_ms"]["p50"]);
    assert!(start > 0.0 && start < 1000.0, "{start}");

    // Audio: every decoding path measured, faster than real time.
    let audio = r["audio"].as_array().unwrap();
    assert_eq!(audio.len(), 6);
    assert!(
        audio
            .iter()
            .any(|a| a["path"].as_str().unwrap_or("").starts_with("mp3")),
        "{audio:?}"
    );
    assert!(
        audio.iter().all(|a| f(&a["x_real_time_per_core"]) > 10.0),
        "{audio:?}"
    );
    assert_eq!(r["peer"]["status"], "skipped");
    // Levels 1 and 20: the 1-stream targets and the three cost targets.
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6, "{targets:?}");
    assert!(
        targets.iter().all(|t| t["value"].is_number()),
        "{targets:?}"
    );
}
