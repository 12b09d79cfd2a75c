//! The metrics model on hand-built observations.

use super::*;
use crate::check::Verdicts;
use crate::suite::{load_suite, ProcessEnv};
use std::path::Path;
use std::time::Duration;

fn suite(name: &str) -> Suite {
    load_suite(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("probes")
            .join(name),
        &ProcessEnv::default(),
    )
    .unwrap()
}

fn obs(slice: &str, ttc: f64, outcome: Outcome, schema_valid: bool, fallback: bool) -> Observation {
    Observation::builder("mapper", "map")
        .case("c")
        .slice(slice)
        .outcome(outcome)
        .latency(Sli::TimeToCompletion, ttc)
        .verdicts(Verdicts {
            schema_valid: Some(schema_valid),
            fallback: Some(fallback),
            tier: Some("mapper-lora-v3".into()),
            ..Default::default()
        })
        .build()
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
}

#[test]
fn slo_thresholds_are_exact_bucket_boundaries() {
    let s = suite("chat.yaml");
    let m = MetricsModel::new(&s, "eu");
    let b = &m.families["canary_time_to_first_visible_token_seconds"].buckets;
    assert!(b.contains(&1.2), "{b:?}");
    assert!(b.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn observations_become_counters_histograms_and_slo_events() {
    let s = suite("llama-mapper.yaml");
    let runs = vec![
        obs("detector=presidio", 0.1, Outcome::Ok, true, false),
        obs("detector=presidio", 0.3, Outcome::Ok, false, true),
        obs(
            "detector=presidio",
            0.2,
            Outcome::Error(ErrorClass::Timeout),
            true,
            false,
        ),
    ];
    let m = MetricsModel::from_run(
        &s,
        "eu",
        &runs,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
    );
    let x = m.samples();
    let p = [("slice", "detector=presidio")];
    assert_eq!(
        value(&x, "canary_probe_runs_total", &[p[0], ("outcome", "ok")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_probe_runs_total",
            &[p[0], ("outcome", "timeout")]
        ),
        Some(1.0)
    );
    // Every outcome exists from the first run on, at zero.
    assert_eq!(
        value(&x, "canary_probe_runs_total", &[p[0], ("outcome", "reset")]),
        Some(0.0)
    );
    // Latency SLO at 250 ms: 0.1 good, 0.3 bad, the timeout bad.
    assert_eq!(
        value(
            &x,
            "canary_slo_events_total",
            &[p[0], ("slo", "mapper-latency-p95"), ("good", "true")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_slo_events_total",
            &[p[0], ("slo", "mapper-latency-p95"), ("good", "false")]
        ),
        Some(2.0)
    );
    // An SLO of another slice exists at zero too.
    assert_eq!(
        value(
            &x,
            "canary_slo_events_total",
            &[
                ("slice", "detector=llama-guard"),
                ("slo", "mapper-schema-valid"),
                ("good", "false")
            ]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_ratio_events_total",
            &[p[0], ("sli", "schema_valid"), ("good", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_ratio_events_total",
            &[p[0], ("sli", "not_fallback"), ("good", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&x, "canary_tier_total", &[("tier", "mapper-lora-v3")]),
        Some(3.0)
    );
    // The errored run is not in the latency histogram.
    assert_eq!(
        value(&x, "canary_time_to_completion_seconds_count", &[p[0]]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_time_to_completion_seconds_bucket",
            &[p[0], ("le", "0.25")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_time_to_completion_seconds_bucket",
            &[p[0], ("le", "+Inf")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_last_success_timestamp_seconds",
            &[("probe", "map")]
        ),
        Some(1000.0)
    );
    // The suite's constant labels are on every series.
    assert!(x.iter().all(|s| s
        .labels
        .iter()
        .any(|(k, v)| k == "team" && v == "platform-model-serving")));
}

#[test]
fn carrying_forward_adds_counters_and_histograms_and_keeps_last_success() {
    let s = suite("llama-mapper.yaml");
    let first = MetricsModel::from_run(
        &s,
        "eu",
        &[obs("detector=presidio", 0.1, Outcome::Ok, true, false)],
        SystemTime::UNIX_EPOCH + Duration::from_secs(100),
    );
    // The pushed text, read back as a Pushgateway or a textfile would give it.
    let previous = crate::sink::expfmt::parse(&first.encode_text());
    let failed_run = [obs(
        "detector=presidio",
        0.0,
        Outcome::Error(ErrorClass::Connect),
        true,
        false,
    )];
    let mut second = MetricsModel::from_run(
        &s,
        "eu",
        &failed_run,
        SystemTime::UNIX_EPOCH + Duration::from_secs(200),
    );
    second.carry_forward(&previous);
    let x = second.samples();
    let p = ("slice", "detector=presidio");
    assert_eq!(
        value(&x, "canary_probe_runs_total", &[p, ("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&x, "canary_probe_runs_total", &[p, ("outcome", "connect")]),
        Some(1.0)
    );
    assert_eq!(
        value(&x, "canary_time_to_completion_seconds_count", &[p]),
        Some(1.0)
    );
    assert_eq!(
        value(&x, "canary_last_run_timestamp_seconds", &[("probe", "map")]),
        Some(200.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_last_success_timestamp_seconds",
            &[("probe", "map")]
        ),
        Some(100.0),
        "a failed run keeps the last success"
    );
    // Twice carried is additive.
    let mut third = MetricsModel::from_run(
        &s,
        "eu",
        &[obs("detector=presidio", 0.1, Outcome::Ok, true, false)],
        SystemTime::UNIX_EPOCH + Duration::from_secs(300),
    );
    third.carry_forward(&crate::sink::expfmt::parse(&second.encode_text()));
    let x = third.samples();
    assert_eq!(
        value(&x, "canary_probe_runs_total", &[p, ("outcome", "ok")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &x,
            "canary_time_to_completion_seconds_bucket",
            &[p, ("le", "0.1")]
        ),
        Some(2.0)
    );
    assert!((value(&x, "canary_time_to_completion_seconds_sum", &[p]).unwrap() - 0.2).abs() < 1e-9);
}

#[test]
fn histograms_with_other_buckets_are_not_mixed() {
    let s = suite("llama-mapper.yaml");
    let mut m = MetricsModel::new(&s, "eu");
    let prev = vec![
        Sample {
            name: "canary_time_to_completion_seconds_bucket".into(),
            labels: vec![("le".into(), "0.3".into())],
            value: 5.0,
        },
        Sample {
            name: "canary_time_to_completion_seconds_bucket".into(),
            labels: vec![("le".into(), "+Inf".into())],
            value: 5.0,
        },
    ];
    m.carry_forward(&prev);
    assert!(m.families["canary_time_to_completion_seconds"]
        .series
        .is_empty());
}

#[test]
fn both_encodings_carry_the_same_samples() {
    let s = suite("llama-mapper.yaml");
    let m = MetricsModel::from_run(
        &s,
        "eu",
        &[obs("detector=presidio", 0.1, Outcome::Ok, true, false)],
        SystemTime::UNIX_EPOCH,
    );
    let text = m.encode_text();
    assert!(
        text.contains("# TYPE canary_probe_runs_total counter"),
        "{text}"
    );
    let mut a = crate::sink::expfmt::parse(&text);
    let om = m.encode_openmetrics();
    assert!(om.trim_end().ends_with("# EOF"));
    assert!(
        om.contains("# UNIT canary_time_to_completion_seconds seconds"),
        "{om}"
    );
    let mut b = crate::sink::expfmt::parse(&om);
    b.retain(|s| !s.name.ends_with("_created"));
    let key = |s: &Sample| {
        let mut l = s.labels.clone();
        for (k, v) in l.iter_mut() {
            if k == "le" {
                *v = parse_float(v).map(fmt_float).unwrap_or_default();
            }
        }
        l.sort();
        (s.name.clone(), l)
    };
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(key(x), key(y));
        assert_eq!(x.value, y.value);
    }
}

#[test]
fn voice_playout_becomes_underrun_and_stall_counters() {
    let s = suite("voice-agent.yaml");
    let mut heard = obs("network-gap", 1.0, Outcome::Ok, true, false);
    heard.endpoint = "voice".into();
    heard.probe = "voice-greeting".into();
    heard.audio = Some(crate::measure::audio::Playout {
        format: "opus",
        prebuffer: 0.08,
        underruns: 2,
        stalled_seconds: 0.25,
        longest_stall: 0.2,
        prebuffer_needed: 0.28,
        audio_seconds: 1.2,
        chunks: 60,
        first_audio_heard: Some(0.4),
        leading_silence: Some(0.2),
        real_time_factor: Some(1.0),
    });
    let mut failed = heard.clone();
    failed.outcome = Outcome::Error(ErrorClass::Truncated);
    let m = MetricsModel::from_run(
        &s,
        "eu",
        &[heard.clone(), heard, failed],
        SystemTime::UNIX_EPOCH,
    );
    let x = m.samples();
    let p = [("slice", "network-gap"), ("endpoint", "voice")];
    // Runs that errored do not count: their playout was cut short.
    assert_eq!(value(&x, "canary_audio_underruns_total", &p), Some(4.0));
    let stalled = value(&x, "canary_audio_stalled_seconds_total", &p).unwrap();
    assert!((stalled - 0.5).abs() < 1e-9, "{stalled}");
}

#[test]
fn tier_values_from_responses_are_capped_per_slice_with_an_other_bucket() {
    let s = suite("llama-mapper.yaml");
    let runs: Vec<Observation> = (0..40)
        .map(|i| {
            let mut o = obs("detector=presidio", 0.1, Outcome::Ok, true, false);
            o.verdicts.tier = Some(format!("model-{i}"));
            o
        })
        .collect();
    let m = MetricsModel::from_run(&s, "eu", &runs, SystemTime::UNIX_EPOCH);
    let tiers: Vec<Sample> = m
        .samples()
        .into_iter()
        .filter(|x| x.name == "canary_tier_total")
        .collect();
    let cap = crate::slo::aggregate::MAX_TIERS;
    assert_eq!(tiers.len(), cap + 1, "{cap} values and `other`");
    let other = tiers
        .iter()
        .find(|x| x.labels.iter().any(|(k, v)| k == "tier" && v == "other"))
        .unwrap();
    assert_eq!(other.value, (40 - cap) as f64);
    // The report's per-slice tiers keep the same cap.
    let stats = crate::slo::aggregate::aggregate(&runs);
    let slice = stats
        .iter()
        .find(|(k, _)| k.slice == "detector=presidio")
        .unwrap()
        .1;
    assert_eq!(slice.tiers.len(), cap + 1);
    assert_eq!(slice.tiers["other"], (40 - cap) as u64);
}

/// Label values a target or a golden file can set: quotes, backslashes, a line feed, markup,
/// an attempt to close the label set, the replacement character of invalid UTF-8.
const HOSTILE: &str = "<script>alert(1)</script>\"}{\"x\":\"\\ \n\u{FFFD}end";

#[test]
fn hostile_label_values_round_trip_through_both_encodings() {
    let s = suite("llama-mapper.yaml");
    let mut o = obs(HOSTILE, 0.1, Outcome::Ok, true, false);
    o.verdicts.tier = Some(HOSTILE.into());
    let m = MetricsModel::from_run(&s, HOSTILE, &[o], SystemTime::UNIX_EPOCH);
    let escaped = crate::sink::expfmt::escape_label_value(HOSTILE).into_owned();
    assert_eq!(
        escaped,
        "<script>alert(1)</script>\\\"}{\\\"x\\\":\\\"\\\\ \\n\u{FFFD}end"
    );
    for text in [m.encode_text(), m.encode_openmetrics()] {
        // No raw quote or line feed of the value survives: every line is one whole sample.
        assert!(!text.contains(HOSTILE));
        assert!(text.contains(&format!("tier=\"{escaped}\"")), "{text}");
        let samples = crate::sink::expfmt::parse(&text);
        let tier = samples
            .iter()
            .find(|x| x.name == "canary_tier_total")
            .unwrap();
        for key in ["tier", "slice", "region"] {
            assert!(
                tier.labels.iter().any(|(k, v)| k == key && v == HOSTILE),
                "{key}: {:?}",
                tier.labels
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                crate::sink::expfmt::parse(line).len() == 1,
                "a line that is not one sample: {line}"
            );
        }
    }
}

#[test]
fn openmetrics_buckets_carry_the_latest_traced_observation_as_exemplar() {
    use crate::timeline::trace::{CaseTrace, TraceContext};
    let s = suite("llama-mapper.yaml");
    let traced = |slice: &str, ttc: f64| {
        let mut o = obs(slice, ttc, Outcome::Ok, true, false);
        let ctx = TraceContext::new_root();
        o.trace = Some(Box::new(CaseTrace {
            ctx,
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
            end: SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_500),
            propagated: true,
            events: vec![],
            children: vec![],
            response_model: None,
        }));
        (o, ctx.trace_id_hex())
    };
    let (a, older) = traced("detector=presidio", 0.12);
    let (b, newer) = traced("detector=presidio", 0.11);
    let (c, other) = traced("detector=\"}{x", 2.5);
    let plain = obs("detector=presidio", 0.02, Outcome::Ok, true, false);
    let m = MetricsModel::from_run(
        &s,
        "eu",
        &[a, b, c, plain],
        SystemTime::UNIX_EPOCH + Duration::from_secs(1001),
    );
    let bounds = m.families["canary_time_to_completion_seconds"]
        .buckets
        .clone();
    let le_of = |v: f64| fmt_float(*bounds.iter().find(|b| v <= **b).unwrap());
    // 0.11 and 0.12 share a bucket here (the later one wins).
    assert_eq!(le_of(0.11), le_of(0.12));
    let om = m.encode_openmetrics();
    let with: Vec<&str> = om.lines().filter(|l| l.contains(" # {trace_id=")).collect();
    assert!(with.iter().all(|l| l.contains("_bucket{")));
    let ttc: Vec<&&str> = with
        .iter()
        .filter(|l| l.starts_with("canary_time_to_completion_seconds_bucket{"))
        .collect();
    // One exemplar per bucket holding a traced value; the untraced run adds none.
    assert_eq!(ttc.len(), 2, "{om}");
    assert!(!om.contains(&older));
    let line = ttc.iter().find(|l| l.contains(&newer)).unwrap();
    assert!(line.contains("slice=\"detector=presidio\""), "{line}");
    assert!(
        line.contains(&format!("le=\"{}", le_of(0.11).trim_end_matches(".0"))),
        "{line}"
    );
    assert!(line.ends_with(" 0.11 1000.500"), "{line}");
    let line = ttc.iter().find(|l| l.contains(&other)).unwrap();
    assert!(line.contains("detector=\\\"}{x"), "{line}");
    assert!(
        line.contains(&format!("le=\"{}", le_of(2.5).trim_end_matches(".0"))),
        "{line}"
    );
    // The text format 0.0.4 has no exemplars.
    assert!(!m.encode_text().contains("trace_id"));
}
