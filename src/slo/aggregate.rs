//! Per-slice aggregation: an HDR histogram per (endpoint, probe, slice, latency SLI) and
//! good/total counters per ratio SLI, plus the aggregate over all slices (`slice = "*"`).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::measure::sli::{Sli, SliKind};
use crate::observation::Observation;

/// The slice name of the aggregate over all slices.
pub const ALL_SLICES: &str = "*";

/// Distinct tier values kept per slice; the rest are counted as `other`.
pub const MAX_TIERS: usize = 16;

/// Identifies one row of the aggregation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceKey {
    pub endpoint: String,
    pub probe: String,
    pub slice: String,
}

/// A latency distribution in microseconds (3 significant digits: at most 0.1% error).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        // 3 significant digits, growing to whatever range is recorded; construction with
        // these constants cannot fail.
        let mut hist = Histogram::new(3).unwrap_or_else(|_| unreachable_hist());
        hist.auto(true);
        Latency { hist }
    }
}

#[cold]
fn unreachable_hist() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, u64::MAX / 2, 2).expect("constant bounds are valid")
}

/// Percentiles in seconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn record(&mut self, seconds: f64) {
        let micros = (seconds.max(0.0) * 1e6).round() as u64;
        // `record` grows the histogram (auto-resize); only an impossible range saturates.
        if self.hist.record(micros).is_err() {
            self.hist.saturating_record(micros);
        }
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` in seconds (nearest rank on the histogram).
    pub fn quantile(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }

    /// Records a plain number (tokens, rates) to a thousandth, 3 significant digits.
    pub fn record_raw(&mut self, value: f64) {
        self.record(value / 1e3);
    }

    /// Summary of values recorded with [`Latency::record_raw`].
    pub fn summary_raw(&self) -> Summary {
        let s = self.summary();
        Summary {
            count: s.count,
            p50: s.p50 * 1e3,
            p95: s.p95 * 1e3,
            p99: s.p99 * 1e3,
            max: s.max * 1e3,
            mean: s.mean * 1e3,
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.hist.len(),
            p50: self.quantile(0.50),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: self.hist.max() as f64 / 1e6,
            mean: self.hist.mean() / 1e6,
        }
    }
}

/// Good and total counts of a ratio SLI.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ratio {
    pub good: u64,
    pub total: u64,
}

impl Ratio {
    pub fn value(&self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }
}

/// Everything known about one slice (or the aggregate).
#[derive(Debug, Clone, Default)]
pub struct SliceStats {
    pub runs: u64,
    pub errors: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub latency: BTreeMap<Sli, Latency>,
    pub ratios: BTreeMap<Sli, Ratio>,
    pub tiers: BTreeMap<String, u64>,
    pub stream: Option<StreamAgg>,
    /// Answer length in characters and tokens (answer-shape drift).
    pub answer_chars: Latency,
    pub answer_tokens: Latency,
    /// Answers that escalated or refused, by the phrase that said so (capped like tiers).
    pub escalation_phrases: BTreeMap<String, u64>,
    /// Tokens and cost over the slice's runs.
    pub tokens: TokenTotals,
    /// The judges' verdicts and their reliability (slices with judged answers).
    pub judge: Option<JudgeAgg>,
}

/// Judgments over a slice: verdicts, self-agreement, and agreement with human labels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JudgeAgg {
    pub judged: u64,
    pub passed: u64,
    pub failed: u64,
    /// Judgments without a majority of readable verdicts.
    pub errors: u64,
    /// Judgments served from the cache.
    pub cached: u64,
    /// Judgments asked more than once, and the sum of their self-agreement.
    pub multi_sampled: u64,
    pub agreement_sum: f64,
    /// Judgments of labelled cases; the judge agreed with the label; passed a `fail` label;
    /// failed a `pass` label; labels of each kind.
    pub labelled: u64,
    pub correct: u64,
    pub false_pass: u64,
    pub false_fail: u64,
    pub labelled_pass: u64,
    pub labelled_fail: u64,
    /// Judge tokens and cost (cached judgments cost none).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_dollars: Option<f64>,
}

impl JudgeAgg {
    /// Mean agreement of a judge with itself over judgments with more than one sample.
    pub fn self_agreement(&self) -> Option<f64> {
        (self.multi_sampled > 0).then(|| self.agreement_sum / self.multi_sampled as f64)
    }
    /// Share of labelled judgments that agree with the label (a judge error disagrees).
    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }
    /// Share of `fail`-labelled answers the judge passed.
    pub fn false_pass_rate(&self) -> Option<f64> {
        (self.labelled_fail > 0).then(|| self.false_pass as f64 / self.labelled_fail as f64)
    }
    /// Share of `pass`-labelled answers the judge failed.
    pub fn false_fail_rate(&self) -> Option<f64> {
        (self.labelled_pass > 0).then(|| self.false_fail as f64 / self.labelled_pass as f64)
    }
    /// Share of judgments that were judge errors.
    pub fn error_rate(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.errors as f64 / self.judged as f64)
    }

    pub fn add(&mut self, j: &crate::check::records::JudgeRecord) {
        let g = &j.judgment;
        self.judged += 1;
        match g.passed {
            Some(true) => self.passed += 1,
            Some(false) => self.failed += 1,
            None => self.errors += 1,
        }
        self.cached += u64::from(j.cached);
        if g.samples > 1 {
            if let Some(a) = g.agreement {
                self.multi_sampled += 1;
                self.agreement_sum += a;
            }
        }
        if let Some(label) = j.label {
            self.labelled += 1;
            if label {
                self.labelled_pass += 1;
            } else {
                self.labelled_fail += 1;
            }
            match g.passed {
                Some(p) if p == label => self.correct += 1,
                Some(true) => self.false_pass += 1,
                Some(false) => self.false_fail += 1,
                None => {}
            }
        }
        if !j.cached {
            self.input_tokens += g.input_tokens;
            self.output_tokens += g.output_tokens;
            if let Some(c) = g.cost_dollars {
                *self.cost_dollars.get_or_insert(0.0) += c;
            }
        }
    }
}

/// Token and cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    pub reasoning: u64,
    /// Runs whose figures were estimated (no usage from the server).
    pub estimated_runs: u64,
    pub runs: u64,
    pub cost_dollars: Option<f64>,
}

/// Stream cadence distributions over a slice (tokens per chunk, output rate, reasoning time).
#[derive(Debug, Clone, Default)]
pub struct StreamAgg {
    pub tokens_per_chunk: Latency,
    pub output_rate: Latency,
    pub reasoning: Latency,
    pub stalls: u64,
    pub chunks: u64,
}

impl SliceStats {
    pub fn add(&mut self, obs: &Observation) {
        self.runs += 1;
        if obs.outcome.is_error() {
            self.errors += 1;
        }
        *self.outcomes.entry(obs.outcome.as_str()).or_default() += 1;
        for sli in Sli::ALL {
            match sli.kind() {
                SliKind::Latency => {
                    for v in obs.samples(*sli) {
                        self.latency.entry(*sli).or_default().record(v);
                    }
                }
                SliKind::Ratio => {
                    if let Some(good) = obs.ratio(*sli) {
                        let r = self.ratios.entry(*sli).or_default();
                        r.total += 1;
                        r.good += u64::from(good);
                    }
                }
            }
        }
        if let (Some(st), false) = (&obs.stream, obs.outcome.is_error()) {
            let agg = self.stream.get_or_insert_with(StreamAgg::default);
            for n in &st.tokens_per_chunk {
                agg.tokens_per_chunk.record_raw(f64::from(*n));
            }
            if let Some(r) = st.output_tokens_per_second {
                agg.output_rate.record_raw(r);
            }
            if let Some(r) = st.reasoning_seconds {
                agg.reasoning.record(r);
            }
            agg.stalls += u64::from(st.stalls);
            agg.chunks += u64::from(st.chunks);
        }
        if !obs.outcome.is_error() {
            if let Some(c) = obs.answer_chars {
                self.answer_chars.record_raw(c as f64);
            }
            if let Some(t) = obs.answer_tokens {
                self.answer_tokens.record_raw(t as f64);
            }
        }
        if let Some(t) = &obs.tokens {
            let tt = &mut self.tokens;
            tt.input += t.input;
            tt.output += t.output;
            tt.reasoning += t.reasoning;
            tt.estimated_runs += u64::from(t.estimated);
            tt.runs += 1;
        }
        if let Some(c) = obs.cost_dollars {
            *self.tokens.cost_dollars.get_or_insert(0.0) += c;
        }
        if let Some(p) = &obs.verdicts.escalation_phrase {
            let key = if self.escalation_phrases.contains_key(p)
                || self.escalation_phrases.len() < MAX_TIERS
            {
                p.clone()
            } else {
                "other".to_string()
            };
            *self.escalation_phrases.entry(key).or_default() += 1;
        }
        for j in &obs.judgments {
            self.judge.get_or_insert_with(JudgeAgg::default).add(j);
        }
        if let Some(t) = &obs.verdicts.tier {
            let key = if self.tiers.contains_key(t) || self.tiers.len() < MAX_TIERS {
                t.clone()
            } else {
                "other".to_string()
            };
            *self.tiers.entry(key).or_default() += 1;
        }
    }
}

/// Aggregates observations per (endpoint, probe, slice) and per (endpoint, probe, "*").
pub fn aggregate(observations: &[Observation]) -> BTreeMap<SliceKey, SliceStats> {
    let mut out: BTreeMap<SliceKey, SliceStats> = BTreeMap::new();
    for obs in observations {
        for slice in [obs.slice.as_str(), ALL_SLICES] {
            let key = SliceKey {
                endpoint: obs.endpoint.clone(),
                probe: obs.probe.clone(),
                slice: slice.to_string(),
            };
            out.entry(key).or_default().add(obs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_tenth_of_a_percent() {
        let mut l = Latency::default();
        for i in 1..=100 {
            l.record(i as f64 / 1000.0); // 1 ms .. 100 ms
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 0.050).abs() <= 0.050 * 0.001 + 1e-6, "{s:?}");
        assert!((s.p95 - 0.095).abs() <= 0.095 * 0.001 + 1e-6, "{s:?}");
        assert!((s.p99 - 0.099).abs() <= 0.099 * 0.001 + 1e-6, "{s:?}");
        assert!((s.max - 0.100).abs() <= 0.100 * 0.001 + 1e-6, "{s:?}");
    }

    #[test]
    fn ratio_value_needs_data() {
        assert_eq!(Ratio::default().value(), None);
        assert_eq!(Ratio { good: 1, total: 4 }.value(), Some(0.25));
    }
}
