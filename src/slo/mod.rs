//! SLO verdicts: each SLO judged on the runs at hand (good/total against the objective),
//! per slice when `per_slice` is set, and always for the aggregate (`slice = "*"`).

pub mod aggregate;
pub mod burn;
pub mod rules;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::measure::sli::{Sli, SliKind};
use crate::observation::Observation;
use crate::suite::{Slo, Suite};
use aggregate::ALL_SLICES;

/// One SLO judged on one slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloVerdict {
    pub name: String,
    pub probe: String,
    pub endpoint: String,
    pub sli: Sli,
    pub slice: String,
    pub good: u64,
    pub total: u64,
    /// good / total, absent with no data.
    pub ratio: Option<f64>,
    pub objective: f64,
    /// Seconds, for latency SLIs.
    pub threshold: Option<f64>,
    /// Met when there is data and good/total >= objective.
    pub met: bool,
    /// A slice that misses while the SLO's aggregate meets: the regression an aggregate
    /// dashboard hides.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// Whether a run is good for an SLO; `None` when the SLO does not apply to it.
pub fn judge(slo: &Slo, obs: &Observation) -> Option<bool> {
    match slo.sli.kind() {
        SliKind::Latency => {
            let threshold = slo.threshold?.as_secs_f64();
            // Staleness applies to runs judged against a truth, lag to canary-fact runs.
            match slo.sli {
                Sli::AnswerStaleness if obs.freshness.is_none() => return None,
                Sli::FreshnessLag if obs.fact.is_none() => return None,
                _ => {}
            }
            // A run that failed or never produced the value did not meet the latency target.
            Some(obs.latency_of(slo.sli).is_some_and(|v| v <= threshold))
        }
        SliKind::Ratio => obs.ratio(slo.sli),
    }
}

/// Good and total events of one run for an SLO. Most SLIs give one event per run (see
/// [`judge`]); `inter_chunk_gap` gives one per gap, so that "95% of gaps <= 150 ms" is the
/// same statement as the p95 of the gap histogram. A run that failed gives no gap events
/// (its failure counts against `success`).
pub fn judge_counts(slo: &Slo, obs: &Observation) -> (u64, u64) {
    if let crate::observation::Outcome::Error(class) = obs.outcome {
        if slo.exclude.contains(&class) {
            return (0, 0);
        }
    }
    if slo.sli == Sli::InterChunkGap {
        let Some(threshold) = slo.threshold.map(|t| t.as_secs_f64()) else {
            return (0, 0);
        };
        let gaps = obs.samples(Sli::InterChunkGap);
        let good = gaps.iter().filter(|g| **g <= threshold).count() as u64;
        return (good, gaps.len() as u64);
    }
    match judge(slo, obs) {
        Some(g) => (u64::from(g), 1),
        None => (0, 0),
    }
}

/// The events of an SLO per slice (and `*` for all), stamped with each run's start (Unix
/// seconds), for the burn-rate evaluator: the history `serve` keeps, or any set of runs.
pub fn history(
    slo: &Slo,
    observations: &[Observation],
) -> std::collections::BTreeMap<String, Vec<burn::Events>> {
    let mut out: std::collections::BTreeMap<String, Vec<burn::Events>> = Default::default();
    for o in observations.iter().filter(|o| o.probe == slo.probe) {
        let (good, total) = judge_counts(slo, o);
        if total == 0 {
            continue;
        }
        let at = o
            .started_at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let e = burn::Events { at, good, total };
        out.entry(ALL_SLICES.to_string()).or_default().push(e);
        if slo.per_slice {
            out.entry(o.slice.clone()).or_default().push(e);
        }
    }
    out
}

/// True when `good/total` meets `objective` (exact for shares like 199/200 vs 99.5%).
pub fn meets(good: u64, total: u64, objective: f64) -> bool {
    // A relative tolerance: 199/200 meets 99.5% exactly, at any total.
    total > 0 && (good as f64) >= objective * (total as f64) * (1.0 - 1e-12)
}

/// Judges every SLO of the suite on the observations.
pub fn evaluate(suite: &Suite, observations: &[Observation]) -> Vec<SloVerdict> {
    let mut out = Vec::new();
    for slo in &suite.slos {
        let endpoint = suite
            .probe_of(slo)
            .map(|p| p.endpoint.clone())
            .unwrap_or_default();
        let of_probe: Vec<&Observation> = observations
            .iter()
            .filter(|o| o.probe == slo.probe)
            .collect();
        let mut slices: Vec<String> = vec![ALL_SLICES.to_string()];
        if slo.per_slice {
            // Every slice of the golden set, even one that produced no observation.
            let mut set: BTreeSet<String> = of_probe.iter().map(|o| o.slice.clone()).collect();
            if let Some(p) = suite.probe_of(slo) {
                set.extend(p.cases.iter().map(|c| c.slice.clone()));
            }
            slices.extend(set);
        }
        for slice in slices {
            let (mut good, mut total) = (0u64, 0u64);
            let is_aggregate = slice == ALL_SLICES;
            for o in of_probe
                .iter()
                .filter(|o| slice == ALL_SLICES || o.slice == slice)
            {
                // The same events as the metrics and the rules count (one per gap for
                // `inter_chunk_gap`; excluded outcomes left out).
                let (g, t) = judge_counts(slo, o);
                good += g;
                total += t;
            }
            // A slice the SLI does not apply to (or that did not run this time, under a
            // rotation) has no verdict; an aggregate without data is a miss.
            if total == 0 && !is_aggregate {
                continue;
            }
            out.push(SloVerdict {
                name: slo.name.clone(),
                probe: slo.probe.clone(),
                endpoint: endpoint.clone(),
                sli: slo.sli,
                slice,
                good,
                total,
                ratio: (total > 0).then(|| good as f64 / total as f64),
                objective: slo.objective,
                threshold: slo.threshold.map(|t| t.as_secs_f64()),
                met: meets(good, total, slo.objective),
                hidden: false,
            });
        }
    }
    // A missed slice of an SLO whose aggregate is met is hidden by the aggregate.
    let met_aggregates: BTreeSet<String> = out
        .iter()
        .filter(|v| v.slice == ALL_SLICES && v.met)
        .map(|v| v.name.clone())
        .collect();
    for v in &mut out {
        v.hidden = v.slice != ALL_SLICES && !v.met && met_aggregates.contains(&v.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdicts;
    use crate::observation::Outcome;
    use crate::timeline::ErrorClass;
    use std::time::{Duration, SystemTime};

    fn obs(
        slice: &str,
        ttc: Option<f64>,
        outcome: Outcome,
        schema_valid: Option<bool>,
    ) -> Observation {
        let mut b = Observation::builder("e", "p")
            .case("c")
            .slice(slice)
            .started_at(SystemTime::now())
            .outcome(outcome)
            .verdicts(Verdicts {
                schema_valid,
                ..Default::default()
            })
            .judged(!outcome.is_error());
        if let Some(v) = ttc {
            b = b.latency(Sli::TimeToCompletion, v);
        }
        b.build()
    }

    fn slo(sli: Sli, threshold: Option<u64>, objective: f64) -> Slo {
        Slo {
            name: "s".into(),
            probe: "p".into(),
            sli,
            threshold: threshold.map(Duration::from_millis),
            objective,
            window: Duration::from_secs(86400),
            per_slice: true,
            description: None,
            exclude: vec![],
        }
    }

    /// A suite holding only these SLOs.
    fn suite_with(slos: Vec<Slo>) -> Suite {
        Suite {
            name: "t".into(),
            file: "t.yaml".into(),
            labels: Default::default(),
            defaults: crate::suite::Defaults {
                timeout: Duration::from_secs(1),
                runs: 1,
                concurrency: 1,
                schedule: None,
                max_body: 1,
            },
            endpoints: Default::default(),
            probes: vec![],
            slos,
            gate: Default::default(),
            buckets: Default::default(),
            cardinality: Default::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn meets_is_exact_at_the_boundary() {
        assert!(meets(199, 200, 0.995));
        assert!(!meets(198, 200, 0.995));
        assert!(!meets(0, 0, 0.5));
        assert!(meets(19, 20, 0.95));
    }

    #[test]
    fn latency_slo_counts_errors_and_slow_runs_as_bad() {
        let s = slo(Sli::TimeToCompletion, Some(250), 0.95);
        assert_eq!(
            judge(&s, &obs("a", Some(0.2), Outcome::Ok, None)),
            Some(true)
        );
        assert_eq!(
            judge(&s, &obs("a", Some(0.25), Outcome::Ok, None)),
            Some(true)
        );
        assert_eq!(
            judge(&s, &obs("a", Some(0.251), Outcome::Ok, None)),
            Some(false)
        );
        assert_eq!(
            judge(
                &s,
                &obs("a", Some(0.1), Outcome::Error(ErrorClass::HttpStatus), None)
            ),
            Some(false)
        );
        assert_eq!(
            judge(
                &s,
                &obs("a", None, Outcome::Error(ErrorClass::Timeout), None)
            ),
            Some(false)
        );
        // A failed check still delivered the answer in time.
        assert_eq!(
            judge(&s, &obs("a", Some(0.1), Outcome::CheckFailed, None)),
            Some(true)
        );
    }

    #[test]
    fn ratio_slo_ignores_runs_where_it_does_not_apply() {
        let s = slo(Sli::SchemaValid, None, 0.5);
        assert_eq!(
            judge(
                &s,
                &obs("a", None, Outcome::Error(ErrorClass::Connect), None)
            ),
            None
        );
        assert_eq!(
            judge(&s, &obs("a", None, Outcome::Ok, Some(false))),
            Some(false)
        );
    }

    #[test]
    fn per_slice_verdicts_catch_a_collapsed_slice_the_aggregate_hides() {
        let suite_slo = slo(Sli::TimeToCompletion, Some(250), 0.9);
        let mut observations = Vec::new();
        for _ in 0..19 {
            observations.push(obs("fast", Some(0.1), Outcome::Ok, None));
        }
        observations.push(obs("slow", Some(0.5), Outcome::Ok, None));
        observations.push(obs("slow", Some(0.6), Outcome::Ok, None));
        let suite = suite_with(vec![suite_slo]);
        let v = evaluate(&suite, &observations);
        let all = v.iter().find(|v| v.slice == "*").unwrap();
        assert_eq!((all.good, all.total, all.met), (19, 21, true));
        let slow = v.iter().find(|v| v.slice == "slow").unwrap();
        assert_eq!((slow.good, slow.total, slow.met), (0, 2, false));
        let fast = v.iter().find(|v| v.slice == "fast").unwrap();
        assert!(fast.met);
    }

    #[test]
    fn gap_slos_count_every_gap_and_exclusions_leave_runs_out() {
        let mut o = obs("a", Some(0.5), Outcome::Ok, None);
        o.stream = Some(crate::measure::StreamStats {
            gaps: vec![0.02, 0.03, 0.4, 0.02],
            tokens_per_chunk: vec![1; 5],
            ..Default::default()
        });
        let mut s = slo(Sli::InterChunkGap, Some(100), 0.9);
        s.per_slice = false;
        assert_eq!(judge_counts(&s, &o), (3, 4));
        let suite = suite_with(vec![s.clone()]);
        let v = evaluate(&suite, &[o]);
        assert_eq!(
            (v[0].good, v[0].total),
            (3, 4),
            "the verdict counts the same events as the metrics"
        );
        let mut excl = slo(Sli::Success, None, 0.9);
        excl.exclude = vec![ErrorClass::RateLimited];
        assert_eq!(
            judge_counts(
                &excl,
                &obs("a", None, Outcome::Error(ErrorClass::RateLimited), None)
            ),
            (0, 0)
        );
        assert_eq!(
            judge_counts(
                &excl,
                &obs("a", None, Outcome::Error(ErrorClass::Timeout), None)
            ),
            (0, 1)
        );
    }
}
