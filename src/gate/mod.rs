//! `canary gate`: the pre-release canary gate. The golden set runs against a candidate and a
//! baseline (the suite's own endpoints unless given), interleaved in a seeded order so drift
//! in the environment hits both alike. The gate fails when the candidate misses an SLO
//! (absolute) or is worse than the baseline beyond a tolerance with confidence (relative),
//! per slice and per SLI; too few runs to decide is said plainly (exit 4).

pub mod output;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::measure::sli::{Sli, SliKind};
use crate::observation::Observation;
use crate::rng::SplitMix64;
use crate::schedule::executor::{execute_plan, Planned};
use crate::sink::report::Report;
use crate::slo::{self, aggregate, SloVerdict};
use crate::suite::{Endpoint, Suite};
use stats::{Decision, Judged};

/// Where one side's requests go: the suite's own URLs, one base URL for every endpoint, and/or
/// a base URL per endpoint (`chat=http://...`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    pub all: Option<String>,
    pub per_endpoint: BTreeMap<String, String>,
}

impl Targets {
    /// Parses repeated `--candidate URL` / `--candidate NAME=URL` values.
    pub fn parse(values: &[String]) -> Result<Targets, String> {
        let mut t = Targets::default();
        for v in values {
            let url = match v.split_once('=') {
                Some((name, url)) if !name.contains("://") && !name.contains('/') => url,
                _ => v.as_str(),
            };
            if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                if let Some((userinfo, _)) = authority.rsplit_once('@') {
                    crate::secret::register(userinfo);
                    return Err("a target URL carries credentials (user:pass@); the suite's headers send credentials, the URL must not".into());
                }
            }
            match v.split_once('=') {
                Some((name, url)) if !name.contains("://") && !name.contains('/') => {
                    t.per_endpoint.insert(name.to_string(), url.to_string());
                }
                _ => {
                    if t.all.replace(v.clone()).is_some() {
                        return Err(
                            "give one base URL for all endpoints, or NAME=URL per endpoint".into(),
                        );
                    }
                }
            }
        }
        Ok(t)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.all {
            parts.push(crate::secret::redact(a));
        }
        for (k, v) in &self.per_endpoint {
            parts.push(format!("{k}={}", crate::secret::redact(v)));
        }
        if parts.is_empty() {
            "the suite's endpoints".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Who asks for a gate, which decides the hosts it may send the suite's requests (and the
/// credentials in its headers) to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPolicy {
    /// `canary gate`, run by the operator: the suite's `gate.allowed_hosts` when it lists
    /// them, else any host.
    Operator,
    /// serve's `POST /api/v1/gate`, asked over the network: `gate.allowed_hosts`, else only
    /// the hosts and ports of the suite's own endpoints.
    Remote,
}

/// Refuses any candidate or baseline URL whose host the policy does not allow, before a
/// request is sent. The message names the host and port, never the rest of the URL.
pub fn check_hosts(suite: &Suite, targets: &[&Targets], policy: HostPolicy) -> Result<(), String> {
    use crate::suite::hosts::{authority, url_host_port};
    let listed = suite.gate.allowed_hosts.as_ref();
    if listed.is_none() && policy == HostPolicy::Operator {
        return Ok(());
    }
    let own: Vec<(String, u16)> = suite
        .endpoints
        .values()
        .flat_map(|e| std::iter::once(e.url.as_str()).chain(e.job().map(|j| j.submit_url.as_str())))
        .filter_map(|u| url_host_port(u).ok())
        .collect();
    for base in targets
        .iter()
        .flat_map(|t| t.all.iter().chain(t.per_endpoint.values()))
    {
        let (host, port) = url_host_port(base)?;
        match listed {
            Some(list) if list.iter().any(|p| p.matches(&host, port)) => {}
            Some(list) => {
                let names: Vec<String> = list.iter().map(|p| p.to_string()).collect();
                return Err(format!(
                    "`{}` is not in the suite's gate.allowed_hosts ({}); nothing was sent to it",
                    authority(&host, port),
                    names.join(", ")
                ));
            }
            None if own.iter().any(|(h, p)| *h == host && *p == port) => {}
            None => {
                let mut names: Vec<String> = own.iter().map(|(h, p)| authority(h, *p)).collect();
                names.sort();
                names.dedup();
                return Err(format!(
                    "`{}` is not one of the suite's own endpoints ({}); nothing was sent to it. A gate asked over the API may only target the hosts the suite lists in `gate.allowed_hosts` (host, host:port or *.domain), or without that key the suite's own endpoints",
                    authority(&host, port),
                    names.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Replaces the scheme and authority of `url` with those of `base`; a path on `base` is put
/// in front of the URL's path.
pub fn rebase(url: &str, base: &str) -> Result<String, String> {
    let u: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid endpoint URL: {e}"))?;
    let b: http::Uri = base
        .parse()
        .map_err(|e| format!("invalid base URL `{}`: {e}", crate::secret::redact(base)))?;
    let (Some(scheme), Some(auth)) = (b.scheme_str(), b.authority()) else {
        return Err(format!(
            "base URL `{}` needs a scheme and a host, e.g. http://10.0.0.5:8080",
            crate::secret::redact(base)
        ));
    };
    let prefix = b.path().trim_end_matches('/');
    let pq = u.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Ok(format!("{scheme}://{auth}{prefix}{pq}"))
}

/// The suite with its endpoints pointed at `targets`.
pub fn retarget(suite: &Suite, targets: &Targets) -> Result<Suite, String> {
    for name in targets.per_endpoint.keys() {
        if !suite.endpoints.contains_key(name) {
            let names: Vec<&str> = suite.endpoints.keys().map(String::as_str).collect();
            return Err(format!(
                "unknown endpoint `{name}` ({})",
                crate::suite::diag::suggest(name, &names)
            ));
        }
    }
    let mut s = suite.clone();
    for (name, ep) in s.endpoints.iter_mut() {
        let base = targets.per_endpoint.get(name).or(targets.all.as_ref());
        if let Some(base) = base {
            let mut e: Endpoint = (**ep).clone();
            e.url = rebase(&e.url, base)?;
            *ep = Arc::new(e);
        }
    }
    Ok(s)
}

/// Why a gate could not decide at all. The messages are the ones the CLI prints and serve's
/// API answers; the CLI picks its exit code by variant (`NothingMeasured` is exit 3).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A candidate or baseline URL whose host the suite's `gate.allowed_hosts` (or, over the
    /// API, the suite's own endpoints) does not allow, or whose host cannot be read; nothing
    /// was sent.
    #[error("{0}")]
    HostNotAllowed(String),
    /// A target that does not fit the suite: an unknown endpoint name, or a base URL that
    /// cannot be put in front of an endpoint's URL.
    #[error("{0}")]
    Target(String),
    /// Every case run failed on both sides.
    #[error("nothing could be measured: every case run failed on both sides")]
    NothingMeasured,
    /// The comparison's worker did not finish (it panicked or was cancelled).
    #[error("the comparison failed: {0}")]
    Comparison(tokio::task::JoinError),
}

/// How `canary gate` runs.
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub candidate: Targets,
    pub baseline: Targets,
    pub runs: u32,
    pub seed: u64,
    pub concurrency: usize,
    /// A concurrency limit to share (serve's own), instead of a new one of `concurrency`.
    pub permits: Option<Arc<Semaphore>>,
    /// The region, judgment cache and backoff table the gate's runs use.
    pub ctx: crate::schedule::RunContext,
}

/// The gate's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

/// One candidate-versus-baseline comparison (a probe, a slice, an SLI).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub probe: String,
    pub endpoint: String,
    pub slice: String,
    pub sli: Sli,
    /// `latency` (the configured percentile, seconds) or `ratio` (good share).
    pub kind: &'static str,
    pub baseline: f64,
    pub candidate: f64,
    pub baseline_n: u64,
    pub candidate_n: u64,
    pub judged: Option<Judged>,
    pub decision: Decision,
    pub reason: String,
}

/// Everything the gate found.
#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    pub suite: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub candidate_targets: String,
    pub baseline_targets: String,
    pub runs: u32,
    pub seed: u64,
    pub confidence: f64,
    pub comparisons: Vec<Comparison>,
    /// The candidate's SLO verdicts (the absolute criterion).
    pub slos: Vec<SloVerdict>,
    pub candidate: Report,
    pub baseline: Report,
}

/// Runs the gate for one suite.
pub async fn run(suite: &Suite, opts: &GateOptions) -> Result<GateOutcome, GateError> {
    // The suite's allowed hosts hold for the operator too; serve's API checks its own,
    // stricter policy before it gets here.
    check_hosts(
        suite,
        &[&opts.candidate, &opts.baseline],
        HostPolicy::Operator,
    )
    .map_err(GateError::HostNotAllowed)?;
    let cand = Arc::new(retarget(suite, &opts.candidate).map_err(GateError::Target)?);
    let base = Arc::new(retarget(suite, &opts.baseline).map_err(GateError::Target)?);
    let mut plan = Vec::new();
    let mut rng = SplitMix64::new(opts.seed);
    for run in 1..=opts.runs.max(1) {
        let mut cases: Vec<(usize, usize)> = suite
            .probes
            .iter()
            .enumerate()
            .flat_map(|(pi, p)| (0..p.cases.len()).map(move |ci| (pi, ci)))
            .collect();
        // A seeded shuffle (Fisher-Yates) per run, and a coin for who goes first per case.
        crate::rng::shuffle_with(&mut cases, &mut rng);
        for (pi, ci) in cases {
            let sides = if rng.next_u64().is_multiple_of(2) {
                [0, 1]
            } else {
                [1, 0]
            };
            for side in sides {
                let s = if side == 0 {
                    cand.clone()
                } else {
                    base.clone()
                };
                plan.push(Planned {
                    suite: s,
                    probe: pi,
                    case: ci,
                    run,
                    side,
                    seed: Some(opts.seed),
                });
            }
        }
    }
    let started = SystemTime::now();
    let permits = opts
        .permits
        .clone()
        .unwrap_or_else(|| Arc::new(Semaphore::new(opts.concurrency.max(1))));
    let results = execute_plan(plan, permits, &opts.ctx).await;
    let finished = SystemTime::now();
    let mut c_obs: Vec<Observation> = Vec::new();
    let mut b_obs: Vec<Observation> = Vec::new();
    for (side, o) in results {
        if side == 0 {
            c_obs.push(o);
        } else {
            b_obs.push(o);
        }
    }
    if c_obs.iter().chain(&b_obs).all(|o| o.outcome.is_error()) {
        return Err(GateError::NothingMeasured);
    }
    let report = |s: &Suite, obs: &[Observation], region: &str| {
        let stats = aggregate::aggregate(obs);
        let verdicts = slo::evaluate(s, obs);
        Report::build(
            &s.name, region, &s.labels, started, finished, &stats, &verdicts, obs,
        )
    };
    let slos = slo::evaluate(&cand, &c_obs);
    // The bootstrap is CPU work: off the async workers, which stamp other probes' bytes.
    let comparisons = {
        let (s, b, c, seed, runs) = (
            suite.clone(),
            b_obs.clone(),
            c_obs.clone(),
            opts.seed,
            opts.runs.max(1),
        );
        tokio::task::spawn_blocking(move || compare(&s, &b, &c, seed, runs))
            .await
            .map_err(GateError::Comparison)?
    };
    let mut reasons = Vec::new();
    for v in slos.iter().filter(|v| !v.met) {
        reasons.push(format!(
            "SLO {} missed on slice {}: {}/{} good, objective {}%",
            v.name,
            v.slice,
            v.good,
            v.total,
            crate::slo::rules::num(v.objective * 100.0)
        ));
    }
    for c in comparisons
        .iter()
        .filter(|c| c.decision == Decision::Regression)
    {
        reasons.push(c.reason.clone());
    }
    let inconclusive: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.decision == Decision::Inconclusive)
        .collect();
    let verdict = if !reasons.is_empty() {
        Verdict::Fail
    } else if comparisons.is_empty() && slos.is_empty() {
        reasons.push(
            "inconclusive: nothing was compared (no SLI measured on both sides, no SLO declared)"
                .into(),
        );
        Verdict::Inconclusive
    } else if !inconclusive.is_empty() {
        for c in &inconclusive {
            reasons.push(c.reason.clone());
        }
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    Ok(GateOutcome {
        suite: suite.name.clone(),
        verdict,
        reasons,
        candidate_targets: opts.candidate.describe(),
        baseline_targets: opts.baseline.describe(),
        runs: opts.runs,
        seed: opts.seed,
        confidence: suite.gate.confidence,
        comparisons,
        slos,
        candidate: report(&cand, &c_obs, "candidate"),
        baseline: report(&base, &b_obs, "baseline"),
    })
}

/// Extra `--runs` that would give `samples` more values per side, when `per_side` values came
/// from `runs` runs.
fn more_runs(samples: u64, per_side: u64, runs: u32) -> u64 {
    let per_run = (per_side as f64 / f64::from(runs.max(1))).max(1e-9);
    ((samples as f64 / per_run).ceil() as u64).max(1)
}

fn judged_decision_is_not(j: &Option<Judged>, d: Decision) -> bool {
    j.as_ref().is_none_or(|j| j.decision != d)
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Compares every probe, slice and SLI measured on both sides.
pub fn compare(
    suite: &Suite,
    baseline: &[Observation],
    candidate: &[Observation],
    seed: u64,
    runs: u32,
) -> Vec<Comparison> {
    let g = &suite.gate;
    let mut out = Vec::new();
    for (pi, p) in suite.probes.iter().enumerate() {
        let mut slices: Vec<String> = vec![aggregate::ALL_SLICES.to_string()];
        let set: BTreeSet<String> = p.cases.iter().map(|c| c.slice.clone()).collect();
        if set.len() > 1 {
            slices.extend(set);
        }
        for slice in &slices {
            let pick = |obs: &[Observation]| -> Vec<Observation> {
                obs.iter()
                    .filter(|o| {
                        o.probe == p.name && (slice == aggregate::ALL_SLICES || &o.slice == slice)
                    })
                    .cloned()
                    .collect()
            };
            let (b, c) = (pick(baseline), pick(candidate));
            for (si, sli) in Sli::ALL.iter().copied().enumerate() {
                // `success` is always compared: a candidate that fails requests must not pass
                // because the chosen SLIs had nothing to measure.
                if !g.slis.is_empty() && !g.slis.contains(&sli) && sli != Sli::Success {
                    continue;
                }
                let seed = seed
                    ^ ((pi as u64) << 32)
                    ^ ((si as u64) << 16)
                    ^ crate::rng::fnv1a(slice.as_bytes());
                if let Some(cmp) = compare_one(suite, p, slice, sli, &b, &c, seed, runs) {
                    out.push(cmp);
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn compare_one(
    suite: &Suite,
    p: &crate::suite::Probe,
    slice: &str,
    sli: Sli,
    b: &[Observation],
    c: &[Observation],
    seed: u64,
    runs: u32,
) -> Option<Comparison> {
    let g = &suite.gate;
    let where_ = if slice == aggregate::ALL_SLICES {
        format!("{} (all slices)", p.name)
    } else {
        format!("{} slice {slice}", p.name)
    };
    match sli.kind() {
        SliKind::Latency => {
            let bs: Vec<f64> = b.iter().flat_map(|o| o.samples(sli)).collect();
            let cs: Vec<f64> = c.iter().flat_map(|o| o.samples(sli)).collect();
            if bs.is_empty() || cs.is_empty() {
                return None;
            }
            let q = |v: &[f64]| {
                let mut s = v.to_vec();
                s.sort_by(f64::total_cmp);
                stats::quantile_sorted(&s, g.quantile)
            };
            let (bq, cq) = (q(&bs), q(&cs));
            let p_name = format!("p{}", crate::slo::rules::num(g.quantile * 100.0));
            let judged = stats::latency_ratio(
                &bs,
                &cs,
                g.quantile,
                g.latency_tolerance,
                g.confidence,
                1000,
                seed,
            );
            let few = ((bs.len() as u32) < g.min_runs || (cs.len() as u32) < g.min_runs)
                && judged_decision_is_not(&judged, Decision::Pass);
            let (decision, reason) = match (&judged, few) {
                (_, true) => (
                    Decision::Inconclusive,
                    format!(
                        "inconclusive: {where_} {sli} has {} baseline and {} candidate samples (at least {} per side decide); run with about {} more --runs",
                        bs.len(),
                        cs.len(),
                        g.min_runs,
                        more_runs(u64::from(g.min_runs.saturating_sub(bs.len().min(cs.len()) as u32)), bs.len().min(cs.len()) as u64, runs)
                    ),
                ),
                (None, false) => return None,
                (Some(j), false) => {
                    let reason = match j.decision {
                        Decision::Regression => format!(
                            "{where_}: {sli} {p_name} rose from {:.1} ms to {:.1} ms (×{:.2}; at {}% confidence at least ×{:.2}, tolerance ×{:.2})",
                            bq * 1e3, cq * 1e3, j.estimate, crate::slo::rules::num(g.confidence * 100.0), j.low, j.bound
                        ),
                        Decision::Pass => format!("{where_}: {sli} {p_name} {:.1} ms vs {:.1} ms, within tolerance", cq * 1e3, bq * 1e3),
                        Decision::Inconclusive => format!(
                            "inconclusive: {where_} {sli} {p_name} ×{:.2} (interval ×{:.2}..×{:.2} straddles ×{:.2}); run with about {} more --runs",
                            j.estimate, j.low, j.high, j.bound, more_runs(j.more_runs.unwrap_or(1), bs.len().min(cs.len()) as u64, runs)
                        ),
                    };
                    (j.decision, reason)
                }
            };
            Some(Comparison {
                probe: p.name.clone(),
                endpoint: p.endpoint.clone(),
                slice: slice.to_string(),
                sli,
                kind: "latency",
                baseline: bq,
                candidate: cq,
                baseline_n: bs.len() as u64,
                candidate_n: cs.len() as u64,
                judged,
                decision,
                reason,
            })
        }
        SliKind::Ratio => {
            let count = |obs: &[Observation]| {
                obs.iter()
                    .filter_map(|o| o.ratio(sli))
                    .fold((0u64, 0u64), |(g, t), ok| (g + u64::from(ok), t + 1))
            };
            let ((bg, bt), (cg, ct)) = (count(b), count(c));
            if bt == 0 || ct == 0 {
                return None;
            }
            let (bp, cp) = (bg as f64 / bt as f64, cg as f64 / ct as f64);
            let judged = stats::share_drop(bg, bt, cg, ct, g.ratio_tolerance, g.confidence);
            let j = judged?;
            let few = (bt.min(ct) as u32) < g.min_runs && j.decision == Decision::Inconclusive;
            let (decision, reason) = if few {
                (
                    Decision::Inconclusive,
                    format!(
                        "inconclusive: {where_} {sli} has {bt} baseline and {ct} candidate runs (at least {} per side decide); run with about {} more --runs",
                        g.min_runs,
                        more_runs(u64::from(g.min_runs.saturating_sub(bt.min(ct) as u32)), bt.min(ct), runs)
                    ),
                )
            } else {
                let reason = match j.decision {
                    Decision::Regression => format!(
                        "{where_}: {sli} fell from {} to {} ({:+.1} pts; at {}% confidence a drop of at least {:.1} pts, tolerance {:.1} pts)",
                        pct(bp), pct(cp), (cp - bp) * 100.0, crate::slo::rules::num(g.confidence * 100.0), j.low * 100.0, j.bound * 100.0
                    ),
                    Decision::Pass => format!("{where_}: {sli} {} vs {}, within tolerance", pct(cp), pct(bp)),
                    Decision::Inconclusive => format!(
                        "inconclusive: {where_} {sli} {} vs {} (drop {:.1}..{:.1} pts straddles {:.1} pts); run with about {} more --runs",
                        pct(cp), pct(bp), j.low * 100.0, j.high * 100.0, j.bound * 100.0, more_runs(j.more_runs.unwrap_or(1), bt.min(ct), runs)
                    ),
                };
                (j.decision, reason)
            };
            Some(Comparison {
                probe: p.name.clone(),
                endpoint: p.endpoint.clone(),
                slice: slice.to_string(),
                sli,
                kind: "ratio",
                baseline: bp,
                candidate: cp,
                baseline_n: bt,
                candidate_n: ct,
                judged,
                decision,
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebasing_keeps_path_and_query() {
        assert_eq!(
            rebase("http://prod:80/v1/chat?x=1", "http://cand:9000").unwrap(),
            "http://cand:9000/v1/chat?x=1"
        );
        assert_eq!(
            rebase("https://a/v1/x", "http://b:1/proxy/").unwrap(),
            "http://b:1/proxy/v1/x"
        );
        assert!(rebase("http://a/x", "no-scheme").is_err());
    }

    #[test]
    fn targets_parse_global_and_per_endpoint() {
        let t = Targets::parse(&["http://c:1".into(), "chat=http://d:2".into()]).unwrap();
        assert_eq!(t.all.as_deref(), Some("http://c:1"));
        assert_eq!(t.per_endpoint["chat"], "http://d:2");
        assert!(Targets::parse(&["http://a".into(), "http://b".into()]).is_err());
        let e = Targets::parse(&["chat=https://user:tok3n-abc@gw/".into()]).unwrap_err();
        assert!(e.contains("credentials") && !e.contains("tok3n-abc"), "{e}");
    }
}
