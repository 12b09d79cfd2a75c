//! Stage two's result: a validated suite with compiled paths, regexes and schemas, ready to run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::check::extract::{Extractor, Matcher};
use crate::measure::sli::Sli;

pub use super::protocol::Protocol;

/// A validated suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub file: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub defaults: Defaults,
    pub endpoints: BTreeMap<String, Arc<Endpoint>>,
    pub probes: Vec<Probe>,
    pub slos: Vec<Slo>,
    pub gate: GateSettings,
    /// Histogram buckets per latency SLI (seconds) replacing the defaults; SLO thresholds are
    /// always added.
    pub buckets: BTreeMap<Sli, Vec<f64>>,
    pub cardinality: Cardinality,
    /// What loaded but probably does not do what the user meant, with its location.
    pub warnings: Vec<super::Diagnostic>,
}

impl Suite {
    /// The probe an SLO is about. The loader checked every SLO's `probe:` names one of the
    /// suite's probes; `None` only where a caller cut the suite's probes afterwards (a serve
    /// shard keeps the SLOs of its own probes, so not there either).
    pub fn probe_of(&self, slo: &Slo) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == slo.probe)
    }
}

/// How `canary gate` compares a candidate with the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// One-sided confidence of every comparison.
    pub confidence: f64,
    /// A latency percentile may grow by this share before it is a regression.
    pub latency_tolerance: f64,
    /// A good share may drop by this much (absolute) before it is a regression.
    pub ratio_tolerance: f64,
    /// The latency percentile compared (0.95 = p95).
    pub quantile: f64,
    /// Fewer runs per side and slice than this is undecided.
    pub min_runs: u32,
    /// Only these SLIs are compared (all measured ones when empty).
    pub slis: Vec<Sli>,
    /// `gate.allowed_hosts`: the hosts a candidate or baseline URL may point at, for
    /// `canary gate` and serve's gate API. `None` (absent): the CLI may target any host, the
    /// API only the suite's own endpoint hosts and ports (`crate::gate::check_hosts`).
    pub allowed_hosts: Option<Vec<super::hosts::HostPattern>>,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            confidence: 0.95,
            latency_tolerance: 0.10,
            ratio_tolerance: 0.02,
            quantile: 0.95,
            min_runs: 5,
            slis: Vec::new(),
            allowed_hosts: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub timeout: Duration,
    pub runs: u32,
    pub concurrency: usize,
    /// The suite's default cron schedule, parsed at load time.
    pub schedule: Option<super::cron::CronSchedule>,
    pub max_body: u64,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;
pub const DEFAULT_CONCURRENCY: usize = 8;
pub const DEFAULT_STALL: Duration = Duration::from_secs(1);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86400);

/// One endpoint: where and how to send a request, and how to read the response.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub protocol: Protocol,
    pub url: String,
    pub method: http::Method,
    /// Header values may be secrets: never print them.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub model: Option<String>,
    pub tier: Option<TierSpec>,
    pub fallback: Option<Matcher>,
    pub cache: Option<Matcher>,
    pub escalation: Option<Matcher>,
    pub schema: Option<Schema>,
    pub answer: Option<Extractor>,
    pub timeout: Duration,
    pub max_body: u64,
    /// The target's own metrics, snapshotted around a run and compared with canary's view.
    pub metrics: Option<TargetMetrics>,
    /// Constant labels on this endpoint's series.
    pub labels: BTreeMap<String, String>,
    /// Phrases that mark an escalation or refusal in the answer text (`None`: not looked for).
    pub escalation_phrases: Option<EscalationPhrases>,
    /// Dollars per million input and output tokens.
    pub price: Option<Price>,
    /// The endpoint's own TLS client settings (custom CA, client certificate for mTLS).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Network settings: the HTTP version spoken.
    pub net: crate::net::transport::Net,
    /// Probe requests carry the case run's W3C `traceparent` (`traceparent: false` turns it off).
    pub traceparent: bool,
    /// What the protocol's family needs besides the keys every endpoint has.
    pub settings: Settings,
}

/// An endpoint's protocol-specific settings, one variant per protocol family. The loader
/// builds the variant from the protocol (`Protocol::info().family`), so a voice endpoint
/// always has its voice settings and a driver never meets an endpoint without what it needs.
#[derive(Debug, Clone)]
pub enum Settings {
    /// `http-json`: nothing beyond the common keys.
    Json,
    /// The chat dialects (`openai-chat`, `openai-responses`, `anthropic-messages`).
    Chat(ChatSettings),
    /// Described streams (`stream` and the built-in descriptions): chat settings and the
    /// compiled description of the stream.
    Described(ChatSettings, Arc<crate::drivers::stream::StreamSpec>),
    /// Voice protocols: how the session runs and how its audio is judged, and for the
    /// event-carrying ones (`http-audio` with a `stream:`, `ws-json-audio`) the description
    /// of their events.
    Voice(VoiceSpec, Option<Arc<crate::drivers::stream::StreamSpec>>),
    /// `job`: how the job is submitted and followed to completion.
    Job(Box<JobSpec>),
}

/// What a chat probe asks for beyond the case's messages.
#[derive(Debug, Clone, Default)]
pub struct ChatSettings {
    /// Ask for a stream.
    pub stream: bool,
    /// Extra request body fields.
    pub params: serde_json::Map<String, Value>,
    /// The most output tokens a probe asks for.
    pub max_tokens: Option<u32>,
}

impl Endpoint {
    /// Chat settings (chat dialects and described streams).
    pub fn chat(&self) -> Option<&ChatSettings> {
        match &self.settings {
            Settings::Chat(c) | Settings::Described(c, _) => Some(c),
            _ => None,
        }
    }

    /// Voice settings (voice protocols).
    pub fn voice(&self) -> Option<&VoiceSpec> {
        match &self.settings {
            Settings::Voice(v, _) => Some(v),
            _ => None,
        }
    }

    /// Job settings (`job`).
    pub fn job(&self) -> Option<&JobSpec> {
        match &self.settings {
            Settings::Job(j) => Some(j.as_ref()),
            _ => None,
        }
    }

    /// The stream description, where the endpoint's answer is read through one.
    pub fn stream_spec(&self) -> Option<&Arc<crate::drivers::stream::StreamSpec>> {
        match &self.settings {
            Settings::Described(_, d) => Some(d),
            Settings::Voice(_, d) => d.as_ref(),
            _ => None,
        }
    }

    /// The most output tokens a probe asks for (chat protocols).
    pub fn max_tokens(&self) -> Option<u32> {
        self.chat().and_then(|c| c.max_tokens)
    }
}

/// Prices of an endpoint in dollars per million tokens (reasoning is billed as output).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1e6
    }
}

/// How many cases of a probe run each tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// A fixed number of cases per tick.
    PerTick(u32),
    /// As many cases per tick as a daily budget allows.
    TokensPerDay(f64),
    DollarsPerDay(f64),
}

/// Rotation of a probe's cases over the ticks of its schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub rotation: Rotation,
    /// Every case must run within this period.
    pub coverage: Option<Duration>,
}

/// Which latency SLIs get per-slice histograms and the series budget of a suite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cardinality {
    /// `None`: every SLI per slice.
    pub per_slice: Option<Vec<Sli>>,
    pub max_series: Option<u64>,
}

impl Cardinality {
    /// Whether `sli`'s histogram is kept per slice.
    pub fn per_slice(&self, sli: Sli) -> bool {
        self.per_slice.as_ref().is_none_or(|l| l.contains(&sli))
    }
}

/// An asynchronous job API: submit, then poll (or follow a stream) until done.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub submit_method: http::Method,
    pub submit_url: String,
    /// The submit body template; the case's `input.body` (or `input`) when absent.
    pub submit_body: Option<Value>,
    /// Where the job id is in the submit response; `None`: the `Location` header.
    pub id: Option<Extractor>,
    pub follow: JobFollow,
    pub done: Matcher,
    pub failed: Option<Matcher>,
    /// JSONPath of the failure reason.
    pub reason: Option<Extractor>,
    /// The server's queue time (seconds) in the final status.
    pub queue: Option<Extractor>,
}

/// How a job is followed to completion.
#[derive(Debug, Clone, PartialEq)]
pub enum JobFollow {
    /// GET the URL (`{id}` replaced) every `every`, growing by `backoff` up to `max_every`.
    Poll {
        url: Option<String>,
        every: Duration,
        backoff: f64,
        max_every: Duration,
    },
    /// Read an SSE stream of status events (`{id}` replaced).
    Stream { url: String },
}

/// Default poll interval: small next to any preview-scale SLO (the error it bounds is reported).
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_millis(100);

/// The target's own metrics endpoint and the series compared with canary's SLIs.
#[derive(Debug, Clone)]
pub struct TargetMetrics {
    pub url: String,
    pub compare: Vec<(Sli, TargetSeries)>,
}

/// A target series set next to one of canary's SLIs.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSeries {
    /// A ratio SLI: the increase of `good` over the increase of `total` during the run.
    Ratio {
        good: SeriesSelector,
        total: SeriesSelector,
    },
    /// A latency SLI: the target's histogram (name without `_bucket`), its increase during the run.
    Histogram { name: String },
}

/// A metric name and label matchers (`name{a="b"}`); every matching series is summed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSelector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl SeriesSelector {
    /// Parses `name` or `name{label="value",...}`.
    pub fn parse(text: &str) -> Result<SeriesSelector, String> {
        let text = text.trim();
        let (name, rest) = match text.find('{') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            return Err(format!("`{text}` does not start with a metric name"));
        }
        let mut labels = Vec::new();
        if let Some(r) = rest {
            let inner = r
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| format!("`{text}`: labels must be closed by `}}`"))?;
            for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| format!("`{part}` is not label=\"value\""))?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("`{part}`: the value must be quoted"))?;
                labels.push((k.trim().to_string(), v.to_string()));
            }
        }
        Ok(SeriesSelector {
            name: name.to_string(),
            labels,
        })
    }
}

/// How a voice endpoint is spoken to and listened to.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceSpec {
    /// `ws-opus`: the JSON sent after connecting (a template over the case).
    pub start: Value,
    /// `ws-opus`: the text event carrying the transcript, and its text field.
    pub transcript_event: String,
    pub transcript_field: String,
    /// `ws-opus`: the event that ends the utterance.
    pub done_event: String,
    /// `ws-opus`: raw Opus packets or an Ogg Opus stream.
    pub container: Container,
    /// `ws-opus`: the rate Opus is decoded at (libopus rates only).
    pub sample_rate: u32,
    /// `realtime`: the audio encoding of the session.
    pub audio_format: AudioFormat,
    /// `realtime`: event and session names (GA or beta).
    pub api: RealtimeApi,
    /// `realtime`: the `session` object of `session.update` (a template); `None` sends none.
    pub session: Option<Value>,
    /// `http-audio`, `ws-json-audio`: the audio's format (`None`: from the response's
    /// `Content-Type`; `ws-json-audio` then takes PCM16).
    pub media: Option<crate::audio::stream::Format>,
    /// `http-audio`, `ws-json-audio`: the rate of headerless PCM or G.711 (`None`: the
    /// `Content-Type`'s `rate`, else 24 kHz for PCM16 and 8 kHz for G.711).
    pub media_rate: Option<u32>,
    /// A 10 ms window is audible above this level (dBFS).
    pub threshold_dbfs: f32,
    /// Audio a client buffers before it starts playing (the playout model).
    pub prebuffer: Duration,
}

/// How Opus packets are framed on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// One raw Opus packet per binary message.
    Raw,
    /// An Ogg Opus stream split over binary messages at any byte.
    Ogg,
}

/// Audio encodings of OpenAI-Realtime-style sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// Linear PCM, 16-bit little-endian, mono, 24 kHz.
    Pcm16,
    /// G.711 mu-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
}

impl AudioFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Pcm16 => "pcm16",
            AudioFormat::Pcmu => "pcmu",
            AudioFormat::Pcma => "pcma",
        }
    }

    /// The sample rate the format implies.
    pub fn rate(self) -> u32 {
        match self {
            AudioFormat::Pcm16 => 24_000,
            AudioFormat::Pcmu | AudioFormat::Pcma => 8_000,
        }
    }
}

/// Which generation of the Realtime API's names to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealtimeApi {
    /// `response.output_audio.delta`, `session.type = realtime`, `audio/pcm` formats.
    Ga,
    /// `response.audio.delta`, `modalities`, `pcm16` / `g711_ulaw` formats.
    Beta,
}

/// A compiled JSON schema and the file it came from.
#[derive(Clone)]
pub struct Schema {
    pub path: PathBuf,
    pub validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.path.display())
    }
}

/// Where the serving tier is read, and which tiers count as primary.
#[derive(Debug, Clone)]
pub struct TierSpec {
    pub extractor: Extractor,
    pub primary: Vec<String>,
}

/// A probe: an endpoint and a golden set.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub endpoint: String,
    pub golden: PathBuf,
    pub cases: Vec<Case>,
    pub stall: Duration,
    pub timeout: Duration,
    pub runs: u32,
    /// Cron schedule for `serve` and the rotation's ticks (the probe's own, else the suite's
    /// default), parsed at load time.
    pub schedule: Option<super::cron::CronSchedule>,
    /// Answers must reflect the current value of a source of truth.
    pub freshness: Option<FreshnessSpec>,
    /// Write a unique fact, then ask until the answer reflects it.
    pub canary_fact: Option<CanaryFactSpec>,
    /// Rotation of the cases over ticks (all cases every tick when absent).
    pub sampling: Option<Sampling>,
    /// Output tokens expected per answer (budgets and `canary plan`).
    pub expected_output_tokens: u32,
    /// Stop reading a stream at the first visible token.
    pub stop_after_first_visible: bool,
}

/// Output tokens assumed per answer when neither the probe nor `max_tokens` says.
pub const DEFAULT_EXPECTED_OUTPUT_TOKENS: u32 = 256;

/// Where the truth of a case's fact is read (`{field}` in the URL: the case's input field).
#[derive(Debug, Clone)]
pub struct FreshnessSpec {
    pub url: String,
    /// The current value in the truth document.
    pub value: Extractor,
    /// When the current value became true (RFC 3339 or Unix seconds).
    pub updated_at: Extractor,
}

/// The write-then-read canary: the call that writes a nonce, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct CanaryFactSpec {
    pub method: http::Method,
    /// Headers of the write (credentials of the knowledge source are secrets).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `{field}` from the case's input; `{{nonce}}` anywhere in the URL or body.
    pub url: String,
    pub body: Option<Value>,
    pub read_every: Duration,
    pub give_up_after: Duration,
}

/// Escalation and refusal phrases looked for in answers (lowercase substrings).
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationPhrases {
    /// The built-in English hand-off and refusal phrases.
    pub builtin: bool,
    /// Phrases of the suite and the endpoint.
    pub extra: Vec<String>,
}

/// One golden case.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub id: String,
    pub slice: String,
    pub input: Value,
    pub expect: Expect,
    /// 1-based line in the golden file.
    pub line: usize,
    /// A conversation (`input.turns`): each user turn is sent with the conversation so far.
    /// Empty for a single-turn case.
    pub turns: Vec<Turn>,
}

/// One user turn of a conversation case.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// What the user says.
    pub user: String,
    /// What this turn's answer must hold.
    pub expect: Expect,
    /// Canned results answering the model's tool calls, by tool name (the turn's own, then
    /// the case's `input.tool_results`).
    pub tool_results: serde_json::Map<String, Value>,
}

/// A judge: a chat endpoint of the suite that grades answers against a rubric.
#[derive(Debug, Clone)]
pub struct JudgeSpec {
    pub endpoint: Arc<Endpoint>,
    pub rubric: String,
    /// A verdict passes when its score is at least this (the verdict field otherwise).
    pub threshold: Option<f64>,
    /// Asked this many times; the majority decides.
    pub samples: u32,
    pub temperature: Option<f64>,
}

/// Cosine similarity between the answer and the reference through an embeddings endpoint.
#[derive(Debug, Clone)]
pub struct SimilarSpec {
    pub endpoint: Arc<Endpoint>,
    pub threshold: f64,
}

/// The compiled `expect` of a case. Every present key must hold.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub equals: Option<Value>,
    pub contains: Vec<String>,
    pub contains_any: Vec<String>,
    pub regex: Option<Regex>,
    pub not_regex: Option<Regex>,
    pub json: Vec<(String, JsonPath, Value)>,
    pub schema: Option<Schema>,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub not_escalated: Option<bool>,
    pub fresh: Option<bool>,
    pub transcript_contains: Vec<String>,
    pub tier: Vec<String>,
    /// Graded by a judge endpoint (`expect.judge`, or the probe's `judge`).
    pub judge: Option<Arc<JudgeSpec>>,
    /// Close in meaning to the reference (`expect.similar`, or the probe's `similar`).
    pub similar: Option<SimilarSpec>,
    /// The golden answer the judge and the similarity compare with.
    pub reference: Option<String>,
    /// A human's verdict on the answer (`expect.label: pass|fail`): true for pass. Grades
    /// the judge, not the endpoint.
    pub label: Option<bool>,
}

/// One SLO.
#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    pub probe: String,
    pub sli: Sli,
    /// For latency SLIs: a run is good when its value is at most this.
    pub threshold: Option<Duration>,
    /// Share of good runs required, in (0, 1].
    pub objective: f64,
    pub window: Duration,
    pub per_slice: bool,
    pub description: Option<String>,
    /// Error classes whose runs the SLO leaves out of its events.
    pub exclude: Vec<crate::timeline::ErrorClass>,
}
