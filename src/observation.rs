//! The observation: the one record of a case run that every later stage consumes
//! (aggregation, SLO verdicts, reports, metrics). Built from a timeline by the measures and
//! the checks; labelled with endpoint, probe, case, slice and tier.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::check::freshness::Freshness;
use crate::check::signals::{FactLag, Quality};
use crate::check::{self, Verdicts};
use crate::measure::{self, audio::Playout, sli::Sli, StreamStats};
use crate::suite::{Case, Endpoint};
use crate::timeline::{ErrorClass, JobSummary, NetSummary, ProbeError, Timeline, Usage};

/// How a case run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    CheckFailed,
    Error(ErrorClass),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::CheckFailed => "check_failed",
            Outcome::Error(c) => c.as_str(),
        }
    }

    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// Tokens of one run. `output` is what is billed as output (reasoning included);
/// `reasoning` is the part of it spent reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub reasoning: u64,
    /// Some figure was estimated from text because the server sent no usage.
    pub estimated: bool,
}

/// Estimated tokens of a case's input: every string in it.
pub fn input_tokens_estimate(input: &serde_json::Value) -> u64 {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push(' ');
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut text = String::new();
    walk(input, &mut text);
    u64::from(crate::drivers::chat_events::estimate_tokens(&text))
}

/// One case run, measured and judged.
#[derive(Debug, Clone)]
pub struct Observation {
    pub endpoint: String,
    pub probe: String,
    pub case_id: String,
    pub slice: String,
    /// 1-based run number of this case within the invocation.
    pub run: u32,
    pub started_at: SystemTime,
    pub outcome: Outcome,
    pub error: Option<ProbeError>,
    pub status: Option<u16>,
    /// Latency SLI values in seconds (all that the timeline yields, errors included).
    pub latency: BTreeMap<Sli, f64>,
    pub verdicts: Verdicts,
    /// Whether the checks ran (a 2xx response arrived).
    pub judged: bool,
    /// Connection setup before the request was written (seconds).
    pub connect_seconds: Option<f64>,
    /// How the network was crossed (HTTP version).
    pub net: NetSummary,
    /// Stream cadence (chat protocols).
    pub stream: Option<StreamStats>,
    /// What a listener heard (voice protocols): playout, underruns, leading silence.
    pub audio: Option<Playout>,
    /// How an asynchronous job was followed (polls, submit time, completion error bound).
    pub job: Option<JobSummary>,
    /// Freshness of the answer against the probe's source of truth.
    pub freshness: Option<Freshness>,
    /// The write-then-read canary fact.
    pub fact: Option<FactLag>,
    /// Quality signals that could not be measured, and why.
    pub quality_errors: Vec<String>,
    /// Length of the whole answer in characters and tokens (answer-shape drift).
    pub answer_chars: Option<u64>,
    pub answer_tokens: Option<u64>,
    /// Tokens the run used (server's usage, else estimated) and what they cost.
    pub tokens: Option<Tokens>,
    pub cost_dollars: Option<f64>,
    /// The stream was left at its first visible token (`stop_after: first_visible`).
    pub stopped_early: bool,
    /// From the start of the case run to its last event (seconds): how long the case took,
    /// deadline included.
    pub elapsed_seconds: f64,
    pub usage: Option<Usage>,
    /// The answer as judged, or what arrived before the run failed (cut to 500 characters).
    pub answer: Option<String>,
    /// The case run's span (trace id, events, child spans), when the executor traced it.
    pub trace: Option<Box<crate::timeline::trace::CaseTrace>>,
    /// What the judges said (one per judged turn, and for the whole case).
    pub judgments: Vec<crate::check::records::JudgeRecord>,
    /// Similarity to the reference (one per compared turn, and for the whole case).
    pub similar: Vec<crate::check::records::SimilarRecord>,
    /// A conversation's turns (empty for a single-turn case).
    pub turns: Vec<crate::check::records::TurnRecord>,
    /// Tokens the judges used for this run (cached judgments cost none) and their cost.
    pub judge_tokens: Option<Tokens>,
    pub judge_cost_dollars: Option<f64>,
}

/// Builds an observation from what a caller knows, everything else empty (no error, no
/// stream, no audio, no quality signals): for tests, and for the synthetic runs the metrics
/// model counts its series with. Starts as a run 1 of case `""` in slice `""`, `ok`, HTTP
/// 200, judged, at the Unix epoch.
#[derive(Debug, Clone)]
#[must_use]
pub struct ObservationBuilder(Observation);

impl ObservationBuilder {
    pub fn case(mut self, id: &str) -> Self {
        self.0.case_id = id.to_string();
        self
    }
    pub fn slice(mut self, slice: &str) -> Self {
        self.0.slice = slice.to_string();
        self
    }
    pub fn run(mut self, run: u32) -> Self {
        self.0.run = run;
        self
    }
    pub fn started_at(mut self, at: SystemTime) -> Self {
        self.0.started_at = at;
        self
    }
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.0.outcome = outcome;
        self
    }
    pub fn status(mut self, status: Option<u16>) -> Self {
        self.0.status = status;
        self
    }
    /// One latency SLI's value (seconds).
    pub fn latency(mut self, sli: Sli, seconds: f64) -> Self {
        self.0.latency.insert(sli, seconds);
        self
    }
    pub fn verdicts(mut self, verdicts: Verdicts) -> Self {
        self.0.verdicts = verdicts;
        self
    }
    pub fn judged(mut self, judged: bool) -> Self {
        self.0.judged = judged;
        self
    }
    /// Any other field.
    pub fn with(mut self, set: impl FnOnce(&mut Observation)) -> Self {
        set(&mut self.0);
        self
    }
    pub fn build(self) -> Observation {
        self.0
    }
}

impl Observation {
    /// An observation of `endpoint`'s `probe` to fill in (see [`ObservationBuilder`]).
    pub fn builder(endpoint: &str, probe: &str) -> ObservationBuilder {
        ObservationBuilder(Observation {
            endpoint: endpoint.to_string(),
            probe: probe.to_string(),
            case_id: String::new(),
            slice: String::new(),
            run: 1,
            started_at: SystemTime::UNIX_EPOCH,
            outcome: Outcome::Ok,
            error: None,
            status: Some(200),
            latency: BTreeMap::new(),
            verdicts: Verdicts::default(),
            judged: true,
            connect_seconds: None,
            net: NetSummary::default(),
            stream: None,
            audio: None,
            job: None,
            freshness: None,
            fact: None,
            quality_errors: Vec::new(),
            answer_chars: None,
            answer_tokens: None,
            tokens: None,
            cost_dollars: None,
            stopped_early: false,
            elapsed_seconds: 0.0,
            usage: None,
            answer: None,
            trace: None,
            judgments: Vec::new(),
            similar: Vec::new(),
            turns: Vec::new(),
            judge_tokens: None,
            judge_cost_dollars: None,
        })
    }

    /// Measures and judges a finished timeline.
    pub fn from_timeline(
        endpoint: &Endpoint,
        probe: &str,
        case: &Case,
        run: u32,
        stall: Duration,
        timeline: &Timeline,
    ) -> Self {
        // Voice: transcript pieces are not a cadence anyone feels; the audio playout is.
        let voice = endpoint.protocol.is_voice();
        let stream = if voice {
            None
        } else {
            measure::stream_stats(timeline, stall)
        };
        let mut latency = measure::latencies(timeline, stream.as_ref());
        if voice {
            latency.remove(&Sli::TimeToFirstVisibleToken);
            // Voice: the first audio bytes, not a response head (`http-audio` has one).
            match measure::audio::time_to_first_chunk(timeline) {
                Some(v) => latency.insert(Sli::TimeToFirstByte, v),
                None => latency.remove(&Sli::TimeToFirstByte),
            };
        }
        let verdicts = check::evaluate(endpoint, &case.expect, timeline);
        let verdicts_answer = verdicts.answer.clone();
        let answer_chars = verdicts.answer_chars;
        let judged = !timeline.stopped_early
            && timeline
                .response
                .as_ref()
                .is_some_and(|r| check::answered(r.status))
            && timeline
                .error
                .as_ref()
                .is_none_or(|e| e.class == ErrorClass::InvalidJson);
        let outcome = match &timeline.error {
            Some(e) => Outcome::Error(e.class),
            None if !verdicts.checks_passed() => Outcome::CheckFailed,
            None => Outcome::Ok,
        };
        Observation {
            endpoint: endpoint.name.clone(),
            probe: probe.to_string(),
            case_id: case.id.clone(),
            slice: case.slice.clone(),
            run,
            started_at: timeline.started_at,
            outcome,
            error: timeline.error.clone(),
            status: timeline.response.as_ref().map(|r| r.status),
            latency,
            verdicts,
            judged,
            connect_seconds: measure::connect_time(timeline),
            net: timeline.net.clone(),
            stream,
            audio: endpoint
                .voice()
                .and_then(|v| measure::audio::playout(timeline, v.prebuffer)),
            job: timeline.job.clone(),
            freshness: None,
            fact: None,
            quality_errors: Vec::new(),
            answer_chars,
            answer_tokens: answer_chars.and_then(|_| {
                timeline.usage.and_then(|u| u.output_tokens).or_else(|| {
                    timeline
                        .answer_text
                        .as_deref()
                        .map(|a| u64::from(crate::drivers::chat_events::estimate_tokens(a)))
                })
            }),
            tokens: None,
            cost_dollars: None,
            stopped_early: timeline.stopped_early,
            elapsed_seconds: timeline
                .events
                .last()
                .map(|e| e.at.as_secs_f64())
                .unwrap_or(0.0),
            usage: timeline.usage,
            answer: verdicts_answer.or_else(|| {
                timeline
                    .answer_text
                    .as_ref()
                    .map(|a| crate::secret::redact(a).chars().take(500).collect())
            }),
            trace: None,
            judgments: Vec::new(),
            similar: Vec::new(),
            turns: Vec::new(),
            judge_tokens: None,
            judge_cost_dollars: None,
        }
    }

    /// Fills in the run's tokens and cost: the server's usage where it sent it, otherwise
    /// estimated from the case's input and the answer (and marked as estimated). Applies to
    /// chat and voice protocols, and to any endpoint with a price.
    pub fn account_tokens(mut self, endpoint: &Endpoint, case: &Case) -> Self {
        let llm = endpoint.protocol.info().counts_tokens() || endpoint.price.is_some();
        if !llm || (self.outcome.is_error() && self.answer_chars.is_none() && self.usage.is_none())
        {
            return self;
        }
        let u = self.usage.unwrap_or_default();
        let mut estimated = u.estimated;
        let input = u.input_tokens.unwrap_or_else(|| {
            estimated = true;
            input_tokens_estimate(&case.input)
        });
        let reasoning = u.reasoning_tokens.unwrap_or_else(|| {
            self.stream
                .as_ref()
                .map(|s| s.reasoning_tokens)
                .unwrap_or(0)
        });
        let output = u.output_tokens.unwrap_or_else(|| {
            estimated = true;
            self.answer_tokens.unwrap_or(0) + reasoning
        });
        let t = Tokens {
            input,
            output,
            reasoning,
            estimated,
        };
        self.cost_dollars = endpoint.price.map(|p| p.cost(t.input, t.output));
        self.tokens = Some(t);
        self
    }

    /// Adds what the probe's quality signals found (freshness, canary fact) and judges
    /// `expect.fresh`.
    pub fn with_quality(mut self, q: Quality, case: &Case) -> Self {
        if let Some(f) = &q.freshness {
            if !self.outcome.is_error() {
                self.latency
                    .insert(Sli::AnswerStaleness, f.staleness_seconds);
            }
            if let Some(want) = case.expect.fresh {
                let detail = if f.fresh {
                    format!("the answer holds the current value {:?}", f.current)
                } else {
                    match &f.stale_value {
                        Some(v) => format!(
                            "the answer holds {v:?}, superseded {:.1}s ago by {:?}",
                            f.staleness_seconds, f.current
                        ),
                        None => format!(
                            "the answer does not hold the current value {:?} (true for {:.1}s)",
                            f.current, f.staleness_seconds
                        ),
                    }
                };
                self.verdicts.checks.push(crate::check::CheckResult::new(
                    "fresh",
                    f.fresh == want,
                    detail,
                ));
                if f.fresh != want && self.outcome == Outcome::Ok {
                    self.outcome = Outcome::CheckFailed;
                }
            }
        }
        if let Some(l) = q.fact.as_ref().and_then(|f| f.lag_seconds) {
            self.latency.insert(Sli::FreshnessLag, l);
        }
        self.freshness = q.freshness;
        self.fact = q.fact;
        self.quality_errors = q.errors;
        self
    }

    /// A latency value that counts for aggregation: present and the run did not error.
    pub fn latency_of(&self, sli: Sli) -> Option<f64> {
        if self.outcome.is_error() {
            return None;
        }
        self.latency.get(&sli).copied()
    }

    /// Every sample of a latency SLI for histograms: all gaps for `inter_chunk_gap`, the one
    /// value otherwise; nothing for a run that errored.
    pub fn samples(&self, sli: Sli) -> Vec<f64> {
        if self.outcome.is_error() {
            return Vec::new();
        }
        // A conversation: every turn's value (the run's own value is its worst turn).
        if !self.turns.is_empty() && sli != Sli::ConversationDuration {
            return self
                .turns
                .iter()
                .filter_map(|t| t.latency.get(&sli).copied())
                .collect();
        }
        match (sli, &self.stream) {
            (Sli::InterChunkGap, Some(s)) => s.gaps.clone(),
            _ => self.latency_of(sli).into_iter().collect(),
        }
    }

    /// Good (`true`) or bad (`false`) for a ratio SLI; `None` when it does not apply to this run.
    pub fn ratio(&self, sli: Sli) -> Option<bool> {
        let v = &self.verdicts;
        match sli {
            Sli::Success => Some(!self.outcome.is_error()),
            Sli::ChecksPassed => self.judged.then(|| v.checks_passed()),
            Sli::SchemaValid => v.schema_valid,
            Sli::NotFallback => v.fallback.map(|f| !f),
            Sli::NotEscalated => v.escalated.map(|e| !e),
            Sli::CacheHit => v.cache_hit,
            Sli::TierPrimary => v.tier_primary,
            // Applies to runs that showed an answer: a stall is judged after the first visible token.
            Sli::NoStall => self
                .stream
                .as_ref()
                .filter(|s| !s.tokens_per_chunk.is_empty())
                .map(|s| s.stalls == 0),
            Sli::Fresh => self.freshness.as_ref().map(|f| f.fresh),
            // Applies to runs whose audio started playing.
            Sli::NoUnderrun => self.audio.as_ref().map(|a| a.underruns == 0),
            // A judge error is never a pass.
            Sli::JudgePassed => {
                (!self.judgments.is_empty()).then(|| self.judgments.iter().all(|j| j.passed()))
            }
            Sli::Similar => {
                (!self.similar.is_empty()).then(|| self.similar.iter().all(|s| s.passed))
            }
            _ => None,
        }
    }
}
