//! The metrics model: one set of Prometheus series fed by observations and shared by every
//! output (`/metrics`, Pushgateway, remote write, textfile). It holds plain values so that
//! counters can be carried forward across CronJob runs (see `push` and `textfile`), and
//! encodes them as OpenMetrics (through `prometheus-client`) or as the Prometheus text format
//! 0.0.4 that the Pushgateway and node_exporter's textfile collector parse.
//!
//! Every latency SLI is a histogram `canary_<sli>_seconds` whose buckets include each SLO
//! threshold declared on it, so a threshold is always an exact `le`. Every SLO run is also
//! judged at probe time into `canary_slo_events_total{slo, slice, good}`, so burn-rate rules
//! never depend on buckets at all.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
    LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::measure::sli::{Sli, SliKind};
use crate::observation::{Observation, Outcome};
// The exposition's vocabulary lives with the exposition format; re-exported for the model's users.
use crate::sink::expfmt::{escape_help, escape_label_value};
pub use crate::sink::expfmt::{parse_float, render_labels, Labels, Sample};
use crate::slo;
use crate::suite::Suite;
use crate::timeline::ErrorClass;

/// What kind of series a family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(f64),
    Gauge(f64),
    /// Non-cumulative counts per bucket (the last one is +Inf), sum and count.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
    },
}

/// One metric family.
#[derive(Debug, Clone)]
pub struct Family {
    /// The name without `_total` (counters) and with the unit suffix.
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub unit: Option<&'static str>,
    /// Upper bounds (histograms), increasing, without +Inf.
    pub buckets: Vec<f64>,
    pub series: BTreeMap<Labels, Value>,
}

pub const PROBE_RUNS: &str = "canary_probe_runs";
pub const RATIO_EVENTS: &str = "canary_ratio_events";
pub const SLO_EVENTS: &str = "canary_slo_events";
pub const CACHE_REQUESTS: &str = "canary_cache_requests";
pub const TIER: &str = "canary_tier";
pub const AUDIO_UNDERRUNS: &str = "canary_audio_underruns";
pub const ANSWER_CHARS: &str = "canary_answer_chars";
pub const ANSWER_TOKENS: &str = "canary_answer_tokens";
pub const ESCALATIONS: &str = "canary_escalations";
pub const TOKENS: &str = "canary_tokens";
pub const COST: &str = "canary_cost_dollars";
pub const JUDGMENTS: &str = "canary_judgments";
pub const CONNECTIONS_OPENED: &str = "canary_connections_opened";
/// Buckets of answer length in characters.
pub const CHAR_BUCKETS: &[f64] = &[10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0];
/// Buckets of answer length in tokens.
pub const TOKEN_BUCKETS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];
pub const AUDIO_STALLED: &str = "canary_audio_stalled_seconds";
pub const CHECKS: &str = "canary_checks";
pub const LAST_RUN: &str = "canary_last_run_timestamp_seconds";
pub const LAST_SUCCESS: &str = "canary_last_success_timestamp_seconds";
pub const SLO_OBJECTIVE: &str = "canary_slo_objective_ratio";
pub const SLO_THRESHOLD: &str = "canary_slo_threshold_seconds";

/// Every outcome label value, so each series exists from the first run on.
pub fn outcomes() -> Vec<&'static str> {
    let mut v = vec![Outcome::Ok.as_str(), Outcome::CheckFailed.as_str()];
    v.extend(ErrorClass::ALL.iter().map(|c| c.as_str()));
    v
}

/// The name of a latency SLI's histogram.
pub fn latency_metric(sli: Sli) -> String {
    format!("canary_{}_seconds", sli.name())
}

/// The trace of a recent observation that fell in a histogram bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// W3C trace id and the case run's span id (hex).
    pub trace_id: String,
    pub span_id: String,
    /// The observed value.
    pub value: f64,
    /// When the case run ended (Unix seconds).
    pub unix: f64,
}

/// Exemplars per histogram series (family name, labels) and bucket index.
pub type Exemplars = BTreeMap<(String, Labels), BTreeMap<usize, Exemplar>>;

/// The metrics of one suite (or, in `serve`, of several) in one region.
#[derive(Debug, Clone)]
pub struct MetricsModel {
    pub region: String,
    /// The suite of a single-suite model (Pushgateway group, textfile); empty for several.
    pub suite: String,
    pub families: BTreeMap<String, Family>,
    /// The latest traced observation of each latency histogram bucket (OpenMetrics
    /// exemplars of `serve`'s `/metrics`, OTLP exemplars). Never carried forward.
    pub exemplars: Exemplars,
    /// When the model was built: the start of its cumulative counts (serve's OTLP export).
    pub since: SystemTime,
}

impl MetricsModel {
    /// Declares the families of a suite; latency buckets include every SLO threshold.
    pub fn new(suite: &Suite, region: &str) -> Self {
        let mut m = Self::new_multi(std::slice::from_ref(suite), region);
        m.suite = suite.name.clone();
        m
    }

    /// One model for several suites (serve's `/metrics`): buckets include the thresholds of
    /// every suite's SLOs.
    pub fn new_multi(suites: &[Suite], region: &str) -> Self {
        let mut m = MetricsModel {
            region: region.to_string(),
            suite: String::new(),
            families: BTreeMap::new(),
            exemplars: BTreeMap::new(),
            since: SystemTime::now(),
        };
        for sli in Sli::ALL.iter().filter(|s| s.kind() == SliKind::Latency) {
            // A suite's own buckets replace the defaults (several suites: their union).
            let declared: Vec<f64> = suites
                .iter()
                .filter_map(|x| x.buckets.get(sli))
                .flatten()
                .copied()
                .collect();
            let mut buckets: Vec<f64> = if declared.is_empty() {
                sli.buckets().to_vec()
            } else {
                declared
            };
            for s in suites
                .iter()
                .flat_map(|x| x.slos.iter())
                .filter(|s| s.sli == *sli)
            {
                if let Some(t) = s.threshold {
                    buckets.push(t.as_secs_f64());
                }
            }
            buckets.sort_by(f64::total_cmp);
            buckets.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
            m.declare(
                &latency_metric(*sli),
                sli.help(),
                Kind::Histogram,
                Some("seconds"),
                buckets,
            );
        }
        m.declare(
            PROBE_RUNS,
            "Case runs by outcome (ok, check_failed or an error class).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            RATIO_EVENTS,
            "Runs judged for each ratio SLI, good or bad.",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            SLO_EVENTS,
            "Runs judged against each SLO at probe time, good or bad.",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            CACHE_REQUESTS,
            "Responses by cache status (hit or miss).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            ANSWER_CHARS,
            "Answer length in characters (answer-shape drift).",
            Kind::Histogram,
            None,
            CHAR_BUCKETS.to_vec(),
        );
        m.declare(
            ANSWER_TOKENS,
            "Answer length in tokens (from the server's usage, else estimated).",
            Kind::Histogram,
            None,
            TOKEN_BUCKETS.to_vec(),
        );
        m.declare(
            TOKENS,
            "Tokens the probes used, by kind (input, output, reasoning; reasoning is part of output).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            COST,
            "What the probes cost at the endpoint's declared prices (dollars).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            JUDGMENTS,
            "Judgments of answers by a judge endpoint, by verdict (pass, fail, judge_error) and whether the cache served them.",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            ESCALATIONS,
            "Answers that escalated or refused, by the built-in or suite phrase that said so (values capped).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            CONNECTIONS_OPENED,
            "Case runs that opened a new connection, by the endpoint's connection mode (fresh: every run; reuse: only when no pooled connection was ready).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            AUDIO_UNDERRUNS,
            "Voice: times the modelled playout buffer ran dry.",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            AUDIO_STALLED,
            "Voice: seconds playback stood still waiting for audio (playout model).",
            Kind::Counter,
            Some("seconds"),
            vec![],
        );
        m.declare(
            TIER,
            "Answers by serving tier (label values capped).",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            CHECKS,
            "Golden checks by check and result.",
            Kind::Counter,
            None,
            vec![],
        );
        m.declare(
            LAST_RUN,
            "Unix time of the last run of the probe.",
            Kind::Gauge,
            None,
            vec![],
        );
        m.declare(
            LAST_SUCCESS,
            "Unix time of the last run of the probe that got an answer.",
            Kind::Gauge,
            None,
            vec![],
        );
        m.declare(
            SLO_OBJECTIVE,
            "The objective of each SLO (share of good events), for burn rates.",
            Kind::Gauge,
            None,
            vec![],
        );
        m.declare(
            SLO_THRESHOLD,
            "The latency threshold of each latency SLO.",
            Kind::Gauge,
            None,
            vec![],
        );
        m
    }

    fn declare(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        unit: Option<&'static str>,
        buckets: Vec<f64>,
    ) {
        self.families.insert(
            name.to_string(),
            Family {
                name: name.to_string(),
                help: help.to_string(),
                kind,
                unit,
                buckets,
                series: BTreeMap::new(),
            },
        );
    }

    fn base(&self, suite: &Suite, endpoint: &str, probe: &str) -> Labels {
        let mut l = vec![
            ("region".to_string(), self.region.clone()),
            ("suite".to_string(), suite.name.clone()),
            ("endpoint".to_string(), endpoint.to_string()),
            ("probe".to_string(), probe.to_string()),
        ];
        l.extend(suite.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(e) = suite.endpoints.get(endpoint) {
            for (k, v) in &e.labels {
                if !l.iter().any(|(n, _)| n == k) {
                    l.push((k.clone(), v.clone()));
                }
            }
        }
        l
    }

    fn with(mut labels: Labels, extra: &[(&str, &str)]) -> Labels {
        for (k, v) in extra {
            labels.push((k.to_string(), v.to_string()));
        }
        labels
    }

    fn add(&mut self, family: &str, labels: Labels, by: f64) {
        let labels = canon(labels);
        if let Some(f) = self.families.get_mut(family) {
            match f.series.entry(labels).or_insert(Value::Counter(0.0)) {
                Value::Counter(v) => *v += by,
                Value::Gauge(v) => *v += by,
                Value::Histogram { .. } => {}
            }
        }
    }

    fn set_gauge(&mut self, family: &str, labels: Labels, value: f64) {
        let labels = canon(labels);
        if let Some(f) = self.families.get_mut(family) {
            f.series.insert(labels, Value::Gauge(value));
        }
    }

    fn observe_hist(&mut self, family: &str, labels: Labels, v: f64) {
        let labels = canon(labels);
        if let Some(f) = self.families.get_mut(family) {
            let n = f.buckets.len() + 1;
            let idx = f.buckets.iter().position(|b| v <= *b).unwrap_or(n - 1);
            if let Value::Histogram { counts, sum } =
                f.series.entry(labels).or_insert_with(|| Value::Histogram {
                    counts: vec![0; n],
                    sum: 0.0,
                })
            {
                if counts.len() == n {
                    counts[idx] += 1;
                    *sum += v;
                }
            }
        }
    }

    /// Remembers `trace` as the exemplar of the bucket `v` falls in (the latest one wins).
    fn note_exemplar(
        &mut self,
        family: &str,
        labels: Labels,
        v: f64,
        trace: &crate::timeline::trace::CaseTrace,
    ) {
        let Some(f) = self.families.get(family) else {
            return;
        };
        let idx = f
            .buckets
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(f.buckets.len());
        let unix = trace
            .end
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.exemplars
            .entry((family.to_string(), canon(labels)))
            .or_default()
            .insert(
                idx,
                Exemplar {
                    trace_id: trace.ctx.trace_id_hex(),
                    span_id: trace.ctx.span_id_hex(),
                    value: v,
                    unix,
                },
            );
    }

    /// Creates the zero series of a probe so that `increase()` counts the first event of
    /// each (a series that appears mid-window would lose it).
    pub fn prepare(&mut self, suite: &Suite) {
        for p in &suite.probes {
            let base = self.base(suite, &p.endpoint, &p.name);
            let slices: std::collections::BTreeSet<&str> =
                p.cases.iter().map(|c| c.slice.as_str()).collect();
            for slice in &slices {
                let b = Self::with(base.clone(), &[("slice", slice)]);
                for outcome in outcomes() {
                    self.add(
                        PROBE_RUNS,
                        Self::with(b.clone(), &[("outcome", outcome)]),
                        0.0,
                    );
                }
                for s in suite.slos.iter().filter(|s| s.probe == p.name) {
                    for good in ["true", "false"] {
                        self.add(
                            SLO_EVENTS,
                            Self::with(b.clone(), &[("slo", &s.name), ("good", good)]),
                            0.0,
                        );
                    }
                }
            }
        }
    }

    /// Adds one observation.
    pub fn observe(&mut self, suite: &Suite, obs: &Observation) {
        let base = Self::with(
            self.base(suite, &obs.endpoint, &obs.probe),
            &[("slice", &obs.slice)],
        );
        self.add(
            PROBE_RUNS,
            Self::with(base.clone(), &[("outcome", obs.outcome.as_str())]),
            1.0,
        );
        // Histograms of SLIs not kept per slice (`cardinality.per_slice`) go to slice "*".
        let aggregate = Self::with(
            self.base(suite, &obs.endpoint, &obs.probe),
            &[("slice", crate::slo::aggregate::ALL_SLICES)],
        );
        for sli in Sli::ALL {
            match sli.kind() {
                SliKind::Latency => {
                    let name = latency_metric(*sli);
                    let labels = if suite.cardinality.per_slice(*sli) {
                        &base
                    } else {
                        &aggregate
                    };
                    for v in obs.samples(*sli) {
                        self.observe_hist(&name, labels.clone(), v);
                        if let Some(t) = &obs.trace {
                            self.note_exemplar(&name, labels.clone(), v, t);
                        }
                    }
                }
                SliKind::Ratio => {
                    if let Some(good) = obs.ratio(*sli) {
                        let g = if good { "true" } else { "false" };
                        self.add(
                            RATIO_EVENTS,
                            Self::with(base.clone(), &[("sli", sli.name()), ("good", g)]),
                            1.0,
                        );
                        if good {
                            self.add(
                                RATIO_EVENTS,
                                Self::with(base.clone(), &[("sli", sli.name()), ("good", "false")]),
                                0.0,
                            );
                        } else {
                            self.add(
                                RATIO_EVENTS,
                                Self::with(base.clone(), &[("sli", sli.name()), ("good", "true")]),
                                0.0,
                            );
                        }
                    }
                }
            }
        }
        for s in suite.slos.iter().filter(|s| s.probe == obs.probe) {
            let (good, total) = slo::judge_counts(s, obs);
            self.add(
                SLO_EVENTS,
                Self::with(base.clone(), &[("slo", &s.name), ("good", "true")]),
                good as f64,
            );
            self.add(
                SLO_EVENTS,
                Self::with(base.clone(), &[("slo", &s.name), ("good", "false")]),
                (total - good) as f64,
            );
        }
        if let Some(hit) = obs.verdicts.cache_hit {
            let status = if hit { "hit" } else { "miss" };
            self.add(
                CACHE_REQUESTS,
                Self::with(base.clone(), &[("status", status)]),
                1.0,
            );
            self.add(
                CACHE_REQUESTS,
                Self::with(
                    base.clone(),
                    &[("status", if hit { "miss" } else { "hit" })],
                ),
                0.0,
            );
        }
        if let Some(t) = &obs.tokens {
            for (kind, n) in [
                ("input", t.input),
                ("output", t.output),
                ("reasoning", t.reasoning),
            ] {
                self.add(
                    TOKENS,
                    Self::with(base.clone(), &[("kind", kind)]),
                    n as f64,
                );
            }
        }
        if let Some(c) = obs.cost_dollars {
            self.add(COST, base.clone(), c);
        }
        // Judges: their tokens as kinds of the probe's tokens, their cost in the probe's cost.
        if let Some(t) = &obs.judge_tokens {
            for (kind, n) in [("judge_input", t.input), ("judge_output", t.output)] {
                self.add(
                    TOKENS,
                    Self::with(base.clone(), &[("kind", kind)]),
                    n as f64,
                );
            }
        }
        if let Some(c) = obs.judge_cost_dollars {
            self.add(COST, base.clone(), c);
        }
        for j in &obs.judgments {
            self.add(
                JUDGMENTS,
                Self::with(
                    base.clone(),
                    &[
                        ("verdict", j.verdict),
                        ("cached", if j.cached { "true" } else { "false" }),
                    ],
                ),
                1.0,
            );
        }
        if !obs.outcome.is_error() {
            if let Some(c) = obs.answer_chars {
                self.observe_hist(ANSWER_CHARS, base.clone(), c as f64);
            }
            if let Some(t) = obs.answer_tokens {
                self.observe_hist(ANSWER_TOKENS, base.clone(), t as f64);
            }
        }
        if let Some(p) = &obs.verdicts.escalation_phrase {
            let phrase = self.capped_value(ESCALATIONS, "phrase", &base, p);
            self.add(
                ESCALATIONS,
                Self::with(base.clone(), &[("phrase", &phrase)]),
                1.0,
            );
        }
        if let Some(c) = obs.net.connection {
            let opened = if obs.net.setup_seconds().is_some() {
                1.0
            } else {
                0.0
            };
            self.add(
                CONNECTIONS_OPENED,
                Self::with(base.clone(), &[("connection", c)]),
                opened,
            );
        }
        if let Some(a) = obs.audio.as_ref().filter(|_| !obs.outcome.is_error()) {
            self.add(AUDIO_UNDERRUNS, base.clone(), f64::from(a.underruns));
            self.add(AUDIO_STALLED, base.clone(), a.stalled_seconds);
        }
        if let Some(t) = &obs.verdicts.tier {
            let tier = self.capped_tier(&base, t);
            self.add(TIER, Self::with(base.clone(), &[("tier", &tier)]), 1.0);
        }
        for c in &obs.verdicts.checks {
            let passed = if c.passed { "true" } else { "false" };
            self.add(
                CHECKS,
                Self::with(base.clone(), &[("check", c.check), ("passed", passed)]),
                1.0,
            );
        }
    }

    /// Keeps at most [`crate::slo::aggregate::MAX_TIERS`] tier values per probe slice.
    fn capped_tier(&self, base: &Labels, tier: &str) -> String {
        self.capped_value(TIER, "tier", base, tier)
    }

    /// Keeps at most [`crate::slo::aggregate::MAX_TIERS`] values of `label` per probe slice
    /// in `family`; the rest become `other`.
    fn capped_value(&self, family: &str, label: &str, base: &Labels, value: &str) -> String {
        let Some(f) = self.families.get(family) else {
            return value.to_string();
        };
        let base = canon(base.clone());
        let known: Vec<&str> = f
            .series
            .keys()
            .filter(|l| base.iter().all(|kv| l.contains(kv)))
            .filter_map(|l| l.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str()))
            .collect();
        if known.contains(&value) || known.len() < crate::slo::aggregate::MAX_TIERS {
            value.to_string()
        } else {
            "other".to_string()
        }
    }

    /// Stamps the run: last run per probe, last success where a run got an answer, and
    /// each SLO's objective and threshold (so dashboards and rules can compute burn rates).
    pub fn finish_run(&mut self, suite: &Suite, observations: &[Observation], now: SystemTime) {
        let t = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for s in &suite.slos {
            let Some(p) = suite.probes.iter().find(|p| p.name == s.probe) else {
                continue;
            };
            let labels = Self::with(self.base(suite, &p.endpoint, &p.name), &[("slo", &s.name)]);
            self.set_gauge(SLO_OBJECTIVE, labels.clone(), s.objective);
            if let Some(th) = s.threshold {
                self.set_gauge(SLO_THRESHOLD, labels, th.as_secs_f64());
            }
        }
        // Only the probes that ran (serve runs one probe at a time).
        for p in suite
            .probes
            .iter()
            .filter(|p| observations.iter().any(|o| o.probe == p.name))
        {
            let labels = self.base(suite, &p.endpoint, &p.name);
            self.set_gauge(LAST_RUN, labels.clone(), t);
            if observations
                .iter()
                .any(|o| o.probe == p.name && !o.outcome.is_error())
            {
                self.set_gauge(LAST_SUCCESS, labels, t);
            }
        }
    }

    /// Builds the model of a suite from a run's observations.
    pub fn from_run(
        suite: &Suite,
        region: &str,
        observations: &[Observation],
        now: SystemTime,
    ) -> Self {
        let mut m = MetricsModel::new(suite, region);
        m.prepare(suite);
        for o in observations {
            m.observe(suite, o);
        }
        m.finish_run(suite, observations, now);
        m
    }

    /// Adds previously exported values (counters and histograms add up; a gauge is kept
    /// only where this run did not set it, so `last_success` survives a failed run).
    /// Samples of unknown families or with buckets that no longer match are ignored.
    pub fn carry_forward(&mut self, previous: &[Sample]) {
        // Histogram parts by (family, labels): cumulative (le, count) pairs and the sum.
        let mut hist_parts: BTreeMap<(String, Labels), HistParts> = BTreeMap::new();
        let previous: Vec<Sample> = previous
            .iter()
            .map(|s| Sample {
                name: s.name.clone(),
                labels: canon(s.labels.clone()),
                value: s.value,
            })
            .collect();
        for s in &previous {
            if let Some(base) = s.name.strip_suffix("_total") {
                if let Some(f) = self
                    .families
                    .get_mut(base)
                    .filter(|f| f.kind == Kind::Counter)
                {
                    if let Value::Counter(v) = f
                        .series
                        .entry(s.labels.clone())
                        .or_insert(Value::Counter(0.0))
                    {
                        *v += s.value;
                    }
                    continue;
                }
            }
            if let Some(f) = self
                .families
                .get_mut(&s.name)
                .filter(|f| f.kind == Kind::Gauge)
            {
                f.series
                    .entry(s.labels.clone())
                    .or_insert(Value::Gauge(s.value));
                continue;
            }
            if let Some(base) = s.name.strip_suffix("_bucket") {
                if self
                    .families
                    .get(base)
                    .is_some_and(|f| f.kind == Kind::Histogram)
                {
                    let mut labels = s.labels.clone();
                    let Some(i) = labels.iter().position(|(k, _)| k == "le") else {
                        continue;
                    };
                    let le = parse_float(&labels.remove(i).1);
                    if let Some(le) = le {
                        hist_parts
                            .entry((base.to_string(), labels))
                            .or_default()
                            .0
                            .push((le, s.value));
                    }
                }
            } else if let Some(base) = s.name.strip_suffix("_sum") {
                if self
                    .families
                    .get(base)
                    .is_some_and(|f| f.kind == Kind::Histogram)
                {
                    hist_parts
                        .entry((base.to_string(), s.labels.clone()))
                        .or_default()
                        .1 = s.value;
                }
            }
        }
        for ((name, labels), (mut cumulative, sum)) in hist_parts {
            let Some(f) = self.families.get_mut(&name) else {
                continue;
            };
            cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
            let bounds: Vec<f64> = f
                .buckets
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .collect();
            let same = cumulative.len() == bounds.len()
                && cumulative.iter().zip(&bounds).all(|((le, _), b)| {
                    (le.is_infinite() && b.is_infinite())
                        || (le - b).abs() <= 1e-9 * b.abs().max(1.0)
                });
            if !same {
                tracing::warn!(metric = %name, "previous histogram has other buckets; not carried forward");
                continue;
            }
            let mut counts = Vec::with_capacity(bounds.len());
            let mut prev = 0.0;
            for (_, c) in &cumulative {
                counts.push((c - prev).max(0.0).round() as u64);
                prev = *c;
            }
            let n = bounds.len();
            if let Value::Histogram { counts: c, sum: s } =
                f.series.entry(labels).or_insert_with(|| Value::Histogram {
                    counts: vec![0; n],
                    sum: 0.0,
                })
            {
                if c.len() == counts.len() {
                    for (a, b) in c.iter_mut().zip(&counts) {
                        *a += b;
                    }
                    *s += sum;
                }
            }
        }
    }

    /// Every sample as Prometheus stores it (`_total`, `_bucket{le}`, `_sum`, `_count`).
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for f in self.families.values() {
            for (labels, v) in &f.series {
                match v {
                    Value::Counter(x) => out.push(Sample {
                        name: format!("{}_total", f.name),
                        labels: labels.clone(),
                        value: *x,
                    }),
                    Value::Gauge(x) => out.push(Sample {
                        name: f.name.clone(),
                        labels: labels.clone(),
                        value: *x,
                    }),
                    Value::Histogram { counts, sum } => {
                        let mut cum = 0u64;
                        for (i, c) in counts.iter().enumerate() {
                            cum += c;
                            let le = f
                                .buckets
                                .get(i)
                                .map(|b| fmt_float(*b))
                                .unwrap_or_else(|| "+Inf".into());
                            let mut l = labels.clone();
                            l.push(("le".into(), le));
                            out.push(Sample {
                                name: format!("{}_bucket", f.name),
                                labels: l,
                                value: cum as f64,
                            });
                        }
                        out.push(Sample {
                            name: format!("{}_sum", f.name),
                            labels: labels.clone(),
                            value: *sum,
                        });
                        out.push(Sample {
                            name: format!("{}_count", f.name),
                            labels: labels.clone(),
                            value: cum as f64,
                        });
                    }
                }
            }
        }
        out
    }

    /// The Prometheus text format 0.0.4 (Pushgateway, textfile collector).
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        for f in self.families.values().filter(|f| !f.series.is_empty()) {
            let (name, ty) = match f.kind {
                Kind::Counter => (format!("{}_total", f.name), "counter"),
                Kind::Gauge => (f.name.clone(), "gauge"),
                Kind::Histogram => (f.name.clone(), "histogram"),
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {ty}");
            for s in self.samples().iter().filter(|s| family_of(&s.name, f)) {
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    s.name,
                    render_labels(&s.labels),
                    fmt_value(s.value)
                );
            }
        }
        out
    }

    /// OpenMetrics text through `prometheus-client` (`/metrics`, `promtool check metrics`).
    pub fn encode_openmetrics(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Collector(self.clone())));
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &registry) {
            Ok(()) if self.exemplars.is_empty() => out,
            Ok(()) => self.attach_exemplars(&out),
            Err(e) => format!("# encoding failed: {e}\n# EOF\n"),
        }
    }

    /// Appends ` # {trace_id="…",span_id="…"} value timestamp` to the bucket lines that have
    /// an exemplar. `prometheus-client` cannot be handed exemplars of stored counts, so they
    /// are placed by walking its output in the collector's own order: each histogram series
    /// writes `_sum`, `_count`, then its buckets in order, series in label order.
    fn attach_exemplars(&self, text: &str) -> String {
        let hist: Vec<&Family> = self
            .families
            .values()
            .filter(|f| f.kind == Kind::Histogram && !f.series.is_empty())
            .collect();
        let mut order = hist.iter().flat_map(|f| {
            f.series.keys().map(move |l| {
                (
                    f.name.as_str(),
                    self.exemplars.get(&(f.name.clone(), l.clone())),
                )
            })
        });
        let starts = |line: &str, name: &str, suffix: &str| {
            line.strip_prefix(name)
                .and_then(|r| r.strip_prefix(suffix))
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        };
        let mut out = String::with_capacity(text.len() + 128 * self.exemplars.len());
        let mut current: Option<(&str, Option<&BTreeMap<usize, Exemplar>>)> = None;
        let mut bucket = 0usize;
        for line in text.lines() {
            out.push_str(line);
            if let Some(f) = hist.iter().find(|f| starts(line, &f.name, "_sum")) {
                current = order.next();
                bucket = 0;
                if current.is_none_or(|(n, _)| n != f.name) {
                    // The encoder's order is not the one expected: no exemplars rather
                    // than wrong ones.
                    tracing::warn!("exemplars not attached: unexpected exposition order");
                    return text.to_string();
                }
            } else if let Some((name, ex)) = current {
                if starts(line, name, "_bucket") {
                    if let Some(e) = ex.and_then(|m| m.get(&bucket)) {
                        let _ = write!(
                            out,
                            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {:.3}",
                            e.trace_id,
                            e.span_id,
                            fmt_value(e.value),
                            e.unix
                        );
                    }
                    bucket += 1;
                }
            }
            out.push('\n');
        }
        out
    }
}

fn family_of(sample: &str, f: &Family) -> bool {
    match f.kind {
        Kind::Counter => sample == format!("{}_total", f.name),
        Kind::Gauge => sample == f.name,
        Kind::Histogram => sample
            .strip_prefix(f.name.as_str())
            .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count")),
    }
}

/// Cumulative `(le, count)` pairs and the sum of one histogram series read back.
type HistParts = (Vec<(f64, f64)>, f64);

/// Labels sorted by name: one series has one key however its labels were listed.
fn canon(mut labels: Labels) -> Labels {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels
}

/// `0.25`, `1`, `+Inf` as Prometheus prints `le` values.
pub fn fmt_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v}");
    if s.contains('e') {
        format!("{v:e}")
    } else {
        s
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        fmt_float(v)
    }
}

/// A series' labels as `prometheus-client` encodes them. Its encoder writes a label value
/// verbatim, so each value goes through the same `escape_label_value` as the text format.
struct EscapedLabels<'a>(&'a Labels);

impl EncodeLabelSet for EscapedLabels<'_> {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (k, v) in self.0 {
            (k.as_str(), EscapedValue(v)).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

struct EscapedValue<'a>(&'a str);

impl EncodeLabelValue for EscapedValue<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&escape_label_value(self.0))
    }
}

#[derive(Debug)]
struct Collector(MetricsModel);

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.families.values().filter(|f| !f.series.is_empty()) {
            let unit = f.unit.map(|u| {
                if u == "seconds" {
                    Unit::Seconds
                } else {
                    Unit::Other(u.to_string())
                }
            });
            // prometheus-client appends the unit to the name itself.
            let base = match f.unit {
                Some(u) => f
                    .name
                    .strip_suffix(&format!("_{u}"))
                    .unwrap_or(&f.name)
                    .to_string(),
                None => f.name.clone(),
            };
            let ty = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut me =
                encoder.encode_descriptor(&base, &escape_help(&f.help), unit.as_ref(), ty)?;
            for (labels, v) in &f.series {
                let escaped = EscapedLabels(labels);
                let fam = me.encode_family(&escaped)?;
                SeriesMetric {
                    value: v,
                    buckets: &f.buckets,
                }
                .encode(fam)?;
            }
        }
        Ok(())
    }
}

struct SeriesMetric<'a> {
    value: &'a Value,
    buckets: &'a [f64],
}

impl EncodeMetric for SeriesMetric<'_> {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match self.value {
            Value::Counter(v) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(v, None)
            }
            Value::Gauge(v) => encoder.encode_gauge(v),
            Value::Histogram { counts, sum } => {
                let count: u64 = counts.iter().sum();
                let buckets: Vec<(f64, u64)> = self
                    .buckets
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::MAX))
                    .zip(counts.iter().copied())
                    .collect();
                encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    *sum, count, &buckets, None,
                )
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.value {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram { .. } => MetricType::Histogram,
        }
    }
}

#[cfg(test)]
mod tests;

/// How many series a suite creates: those a healthy run writes (`fixed`: every check
/// passes), and at most how many more failed checks and values taken from responses
/// (tiers, escalation phrases; capped per slice) can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SeriesCount {
    pub fixed: u64,
    pub dynamic_max: u64,
}

impl SeriesCount {
    pub fn max(&self) -> u64 {
        self.fixed + self.dynamic_max
    }
}

/// Counts the series of a suite by putting, for every slice of every probe, one good and one
/// bad run through the real metrics model: every SLI, check and signal the probe can
/// produce. Failed checks and response-valued labels (tiers, escalation phrases) are counted
/// apart, at their cap.
pub fn series_count(suite: &Suite) -> SeriesCount {
    use crate::measure::StreamStats;
    let mut runs = Vec::new();
    let mut dynamic = 0u64;
    for p in &suite.probes {
        let Some(ep) = suite.endpoints.get(&p.endpoint) else {
            continue;
        };
        let slices: std::collections::BTreeSet<&str> =
            p.cases.iter().map(|c| c.slice.as_str()).collect();
        let mut latencies: Vec<Sli> = Sli::produced_by(ep.protocol)
            .iter()
            .copied()
            .filter(|s| s.kind() == SliKind::Latency)
            .collect();
        if p.freshness.is_some() {
            latencies.push(Sli::AnswerStaleness);
        }
        if p.canary_fact.is_some() {
            latencies.push(Sli::FreshnessLag);
        }
        if p.cases.iter().all(|c| c.turns.is_empty()) {
            latencies.retain(|s| *s != Sli::ConversationDuration);
        }
        let judged = p
            .cases
            .iter()
            .any(|c| c.expect.judge.is_some() || c.turns.iter().any(|t| t.expect.judge.is_some()));
        let compared = p.cases.iter().any(|c| {
            c.expect.similar.is_some() || c.turns.iter().any(|t| t.expect.similar.is_some())
        });
        // A stream left at its first visible token has no completion, cadence or verdicts.
        let early = p.stop_after_first_visible;
        if early {
            latencies.retain(|s| !matches!(s, Sli::TimeToCompletion | Sli::InterChunkGap));
        }
        let any_schema = ep.schema.is_some() || p.cases.iter().any(|c| c.expect.schema.is_some());
        let llm = ep.protocol.info().counts_tokens() || ep.price.is_some();
        for slice in &slices {
            let names: std::collections::BTreeSet<&'static str> = p
                .cases
                .iter()
                .filter(|c| c.slice == *slice)
                .flat_map(|c| crate::check::check_names(ep, &c.expect))
                .collect();
            let names = if early { Default::default() } else { names };
            // A failed check adds its `passed="false"` series.
            dynamic += names.len() as u64;
            // Capped values: MAX_TIERS of them, then `other`.
            let capped = crate::slo::aggregate::MAX_TIERS as u64 + 1;
            if ep.tier.is_some() {
                dynamic += capped;
            }
            if ep.escalation_phrases.is_some() {
                dynamic += capped;
            }
            for good in [true, false] {
                let mut v = crate::check::Verdicts {
                    schema_valid: any_schema.then_some(good),
                    fallback: ep.fallback.as_ref().map(|_| !good),
                    escalated: (!early
                        && (ep.escalation.is_some() || ep.escalation_phrases.is_some()))
                    .then_some(!good),
                    cache_hit: ep.cache.as_ref().map(|_| good),
                    tier_primary: ep
                        .tier
                        .as_ref()
                        .filter(|t| !t.primary.is_empty())
                        .map(|_| good),
                    answer_chars: Some(10),
                    ..Default::default()
                };
                if good {
                    v.checks = names
                        .iter()
                        .filter(|n| **n != "answer")
                        .map(|n| crate::check::CheckResult::new(n, true, ""))
                        .collect();
                }
                let chat = ep.protocol.is_chat();
                runs.push(Observation {
                    endpoint: ep.name.clone(),
                    probe: p.name.clone(),
                    case_id: String::new(),
                    slice: slice.to_string(),
                    run: 1,
                    started_at: SystemTime::UNIX_EPOCH,
                    outcome: if good {
                        crate::observation::Outcome::Ok
                    } else {
                        crate::observation::Outcome::CheckFailed
                    },
                    error: None,
                    status: Some(200),
                    latency: latencies.iter().map(|s| (*s, 0.1)).collect(),
                    verdicts: v,
                    judged: true,
                    connect_seconds: None,
                    // Every protocol over HTTP reports its connection mode.
                    net: crate::timeline::NetSummary {
                        connection: (!ep.protocol.is_websocket()).then_some(
                            if ep.net.pool.is_some() {
                                "reuse"
                            } else {
                                "fresh"
                            },
                        ),
                        ..Default::default()
                    },
                    stream: chat.then(|| StreamStats {
                        chunks: 1,
                        tokens_per_chunk: vec![1],
                        gaps: if early { vec![] } else { vec![0.1] },
                        ..Default::default()
                    }),
                    audio: ep.voice().map(|_| crate::measure::audio::Playout {
                        format: "opus",
                        prebuffer: 0.08,
                        underruns: u32::from(!good),
                        stalled_seconds: 0.0,
                        longest_stall: 0.0,
                        prebuffer_needed: 0.0,
                        audio_seconds: 1.0,
                        chunks: 1,
                        first_audio_heard: None,
                        leading_silence: None,
                        real_time_factor: None,
                    }),
                    job: None,
                    freshness: p
                        .freshness
                        .as_ref()
                        .map(|_| crate::check::freshness::Freshness {
                            fact: String::new(),
                            fresh: good,
                            current: String::new(),
                            staleness_seconds: 0.0,
                            lower_bound: false,
                            stale_value: None,
                        }),
                    fact: None,
                    quality_errors: Vec::new(),
                    answer_chars: Some(10),
                    // Answers a protocol driver assembles (chat, voice) are counted in tokens.
                    answer_tokens: ep.protocol.info().answers_text.then_some(3),
                    tokens: llm.then(crate::observation::Tokens::default),
                    cost_dollars: ep.price.map(|_| 0.0),
                    stopped_early: false,
                    elapsed_seconds: 0.0,
                    usage: None,
                    answer: None,
                    trace: None,
                    judgments: if judged {
                        vec![crate::check::records::JudgeRecord {
                            turn: None,
                            verdict: if good { "pass" } else { "fail" },
                            judgment: crate::check::judge::decide(&[Ok(
                                crate::check::judge::Verdict {
                                    pass: good,
                                    score: None,
                                    reason: String::new(),
                                },
                            )]),
                            label: None,
                            cached: false,
                        }]
                    } else {
                        Vec::new()
                    },
                    similar: if compared {
                        vec![crate::schedule::judged::SimilarRecord {
                            turn: None,
                            similarity: Some(if good { 1.0 } else { 0.0 }),
                            threshold: 0.5,
                            passed: good,
                            error: None,
                        }]
                    } else {
                        Vec::new()
                    },
                    turns: Vec::new(),
                    judge_tokens: judged.then(crate::observation::Tokens::default),
                    judge_cost_dollars: None,
                });
            }
        }
    }
    let m = MetricsModel::from_run(suite, "plan", &runs, SystemTime::UNIX_EPOCH);
    if std::env::var_os("CANARY_DEBUG_SERIES").is_some() {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for x in m.samples() {
            *by.entry(x.name).or_default() += 1;
        }
        eprintln!("{by:#?}");
    }
    SeriesCount {
        fixed: m.samples().len() as u64,
        dynamic_max: dynamic,
    }
}
