//! The JSON report of a run (`canary run --report FILE`), in the shape fixed by the suite
//! format: suite, region, times, per-slice stats, SLO verdicts and one record per case run.
//! Its JSON schema is committed at `docs/report.schema.json` and tested.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::check::CheckResult;
use crate::measure::{audio::Playout, StreamStats};
use crate::observation::Observation;
use crate::slo::aggregate::{SliceKey, SliceStats, Summary};
use crate::slo::SloVerdict;
use crate::timeline::{JobSummary, NetSummary, Usage};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub suite: String,
    pub region: String,
    pub started_at: String,
    pub finished_at: String,
    pub canary_version: &'static str,
    pub labels: BTreeMap<String, String>,
    pub slices: Vec<SliceReport>,
    pub slos: Vec<SloVerdict>,
    pub cases: Vec<CaseReport>,
    /// The seed of the run order and of `{{seed}}` (`--seed`), when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Unrecorded warm-up runs of each case before the recorded ones.
    pub warmup: u32,
    /// The targets' own metrics around the run, next to canary's view.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_metrics: Vec<super::target::TargetReport>,
    /// What the canary process itself used by the time the report was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// The canary process's own CPU time and peak memory (Linux `/proc`; absent elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Resources {
    /// User + system CPU seconds of the process so far.
    pub cpu_seconds: f64,
    /// Peak resident memory (VmHWM).
    pub peak_rss_bytes: u64,
}

impl Resources {
    pub fn now() -> Option<Resources> {
        Some(Resources {
            cpu_seconds: crate::procfs::cpu_seconds("/proc/self/stat")?,
            peak_rss_bytes: crate::procfs::peak_rss("/proc/self/status")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceReport {
    pub endpoint: String,
    pub probe: String,
    pub slice: String,
    pub runs: u64,
    pub errors: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub latency: BTreeMap<&'static str, Summary>,
    pub ratios: BTreeMap<&'static str, f64>,
    /// good/total behind each ratio.
    pub counts: BTreeMap<&'static str, Counts>,
    pub tiers: BTreeMap<String, u64>,
    /// Stream cadence over the slice's runs (chat protocols).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamReport>,
    /// Answer length over the slice's answered runs (a model that starts answering at twice
    /// the length shows here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_chars: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_tokens: Option<Summary>,
    /// Escalations and refusals by the phrase that marked them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub escalation_phrases: BTreeMap<String, u64>,
    /// Tokens and cost of the slice's runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<crate::slo::aggregate::TokenTotals>,
    /// The judges' verdicts and reliability over the slice (judged slices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeReport>,
}

/// A judge over a slice: its verdicts, its agreement with itself, and with human labels.
#[derive(Debug, Clone, Serialize)]
pub struct JudgeReport {
    pub judged: u64,
    pub passed: u64,
    pub failed: u64,
    pub judge_errors: u64,
    pub cached: u64,
    /// Mean share of samples agreeing with the majority (judgments with `samples` > 1).
    pub self_agreement: Option<f64>,
    pub labelled: u64,
    /// Share of labelled judgments that agree with the human label.
    pub accuracy: Option<f64>,
    /// Share of `fail`-labelled answers the judge passed.
    pub false_pass_rate: Option<f64>,
    /// Share of `pass`-labelled answers the judge failed.
    pub false_fail_rate: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_dollars: Option<f64>,
}

impl JudgeReport {
    pub fn from_agg(j: &crate::slo::aggregate::JudgeAgg) -> JudgeReport {
        JudgeReport {
            judged: j.judged,
            passed: j.passed,
            failed: j.failed,
            judge_errors: j.errors,
            cached: j.cached,
            self_agreement: j.self_agreement(),
            labelled: j.labelled,
            accuracy: j.accuracy(),
            false_pass_rate: j.false_pass_rate(),
            false_fail_rate: j.false_fail_rate(),
            input_tokens: j.input_tokens,
            output_tokens: j.output_tokens,
            cost_dollars: j.cost_dollars,
        }
    }
}

/// Distributions of stream cadence over a slice.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub tokens_per_chunk: Summary,
    pub output_tokens_per_second: Option<Summary>,
    pub reasoning_seconds: Option<Summary>,
    pub stalls: u64,
    pub chunks: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub endpoint: String,
    pub probe: String,
    pub id: String,
    pub slice: String,
    pub run: u32,
    pub started_at: String,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub status: Option<u16>,
    pub latency: BTreeMap<&'static str, f64>,
    pub checks: Vec<CheckResult>,
    pub tier: Option<String>,
    pub fallback: Option<bool>,
    pub schema_valid: Option<bool>,
    pub cache_hit: Option<bool>,
    pub escalated: Option<bool>,
    /// Connection setup before the request was written (seconds; not part of the latencies).
    pub connect_seconds: Option<f64>,
    /// How the network was crossed: `http_version`.
    #[serde(flatten)]
    pub net: NetSummary,
    /// Stream cadence: chunks, tokens, gaps, stalls, output rate, reasoning time.
    pub stream: Option<StreamStats>,
    /// Voice: playout through the modelled buffer, underruns, leading silence, audio length.
    pub audio: Option<Playout>,
    /// Jobs: the job id, status requests, submit time, queue time, completion error bound.
    pub job: Option<JobSummary>,
    /// Freshness against the probe's source of truth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<crate::check::freshness::Freshness>,
    /// The write-then-read canary fact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fact: Option<crate::check::signals::FactLag>,
    /// Quality signals that could not be measured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quality_errors: Vec<String>,
    /// The phrase that marked the answer as an escalation or refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_phrase: Option<String>,
    pub answer_chars: Option<u64>,
    /// Tokens of the run (server's usage, else estimated) and their cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<crate::observation::Tokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_dollars: Option<f64>,
    /// The stream was left at its first visible token (`stop_after: first_visible`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
    /// How long the case run took, from its start to its last event (seconds).
    pub elapsed_seconds: f64,
    pub usage: Option<Usage>,
    /// The answer text (truncated), for reading failed checks.
    pub answer: Option<String>,
    /// The case run's W3C trace id (32 hex digits): its span in `--otlp-traces`, and the
    /// `traceparent` its probe request carried unless the endpoint says `traceparent: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What the judges said (per judged turn, and for the case).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub judgments: Vec<crate::check::records::JudgeRecord>,
    /// Similarity to the reference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<crate::schedule::judged::SimilarRecord>,
    /// A conversation's turns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<crate::schedule::judged::TurnRecord>,
    /// Tokens the judges used for this run, and their cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_tokens: Option<crate::observation::Tokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_cost_dollars: Option<f64>,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        suite: &str,
        region: &str,
        labels: &BTreeMap<String, String>,
        started: SystemTime,
        finished: SystemTime,
        stats: &BTreeMap<SliceKey, SliceStats>,
        slos: &[SloVerdict],
        observations: &[Observation],
    ) -> Report {
        let slices = stats
            .iter()
            .map(|(k, s)| SliceReport {
                endpoint: k.endpoint.clone(),
                probe: k.probe.clone(),
                slice: k.slice.clone(),
                runs: s.runs,
                errors: s.errors,
                outcomes: s.outcomes.clone(),
                latency: s
                    .latency
                    .iter()
                    .map(|(sli, l)| (sli.name(), l.summary()))
                    .collect(),
                ratios: s
                    .ratios
                    .iter()
                    .filter_map(|(sli, r)| r.value().map(|v| (sli.name(), v)))
                    .collect(),
                counts: s
                    .ratios
                    .iter()
                    .map(|(sli, r)| {
                        (
                            sli.name(),
                            Counts {
                                good: r.good,
                                total: r.total,
                            },
                        )
                    })
                    .collect(),
                tiers: s.tiers.clone(),
                answer_chars: (s.answer_chars.count() > 0).then(|| s.answer_chars.summary_raw()),
                answer_tokens: (s.answer_tokens.count() > 0).then(|| s.answer_tokens.summary_raw()),
                escalation_phrases: s.escalation_phrases.clone(),
                tokens: (s.tokens.runs > 0).then_some(s.tokens),
                judge: s.judge.as_ref().map(JudgeReport::from_agg),
                stream: s
                    .stream
                    .as_ref()
                    .filter(|st| st.tokens_per_chunk.count() > 0)
                    .map(|st| StreamReport {
                        tokens_per_chunk: st.tokens_per_chunk.summary_raw(),
                        output_tokens_per_second: (st.output_rate.count() > 0)
                            .then(|| st.output_rate.summary_raw()),
                        reasoning_seconds: (st.reasoning.count() > 0)
                            .then(|| st.reasoning.summary()),
                        stalls: st.stalls,
                        chunks: st.chunks,
                    }),
            })
            .collect();
        let cases = observations
            .iter()
            .map(|o| CaseReport {
                endpoint: o.endpoint.clone(),
                probe: o.probe.clone(),
                id: o.case_id.clone(),
                slice: o.slice.clone(),
                run: o.run,
                started_at: rfc3339(o.started_at),
                outcome: o.outcome.as_str(),
                error: o.error.as_ref().map(|e| e.message.clone()),
                status: o.status,
                latency: o.latency.iter().map(|(s, v)| (s.name(), *v)).collect(),
                checks: o.verdicts.checks.clone(),
                tier: o.verdicts.tier.clone(),
                fallback: o.verdicts.fallback,
                schema_valid: o.verdicts.schema_valid,
                cache_hit: o.verdicts.cache_hit,
                escalated: o.verdicts.escalated,
                connect_seconds: o.connect_seconds,
                net: o.net.clone(),
                stream: o.stream.clone(),
                audio: o.audio.clone(),
                job: o.job.clone(),
                freshness: o.freshness.clone(),
                fact: o.fact.clone(),
                quality_errors: o.quality_errors.clone(),
                escalation_phrase: o.verdicts.escalation_phrase.clone(),
                answer_chars: o.answer_chars,
                tokens: o.tokens,
                cost_dollars: o.cost_dollars,
                stopped_early: o.stopped_early,
                elapsed_seconds: o.elapsed_seconds,
                usage: o.usage,
                answer: o.answer.clone(),
                trace_id: o.trace.as_ref().map(|t| t.ctx.trace_id_hex()),
                judgments: o.judgments.clone(),
                similar: o.similar.clone(),
                turns: o.turns.clone(),
                judge_tokens: o.judge_tokens,
                judge_cost_dollars: o.judge_cost_dollars,
            })
            .collect();
        Report {
            suite: suite.to_string(),
            region: region.to_string(),
            started_at: rfc3339(started),
            finished_at: rfc3339(finished),
            canary_version: env!("CARGO_PKG_VERSION"),
            labels: labels.clone(),
            slices,
            slos: slos.to_vec(),
            cases,
            seed: None,
            warmup: 0,
            target_metrics: Vec::new(),
            resources: None,
        }
    }

    /// Pretty JSON, redacted of secrets.
    pub fn to_json(&self) -> String {
        let text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        crate::secret::redact(&text)
    }
}
