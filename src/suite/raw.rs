//! Stage one of suite loading: serde structs that mirror the file and deny unknown keys.
//! Types are checked here; meaning (references, protocol requirements, compiled paths and
//! schemas) is checked by `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::units::{ByteSize, Dur, OneOrMany, Percent};
use super::Protocol;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub suite: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub endpoints: BTreeMap<String, RawEndpoint>,
    #[serde(default)]
    pub probes: Vec<RawProbe>,
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    pub gate: Option<RawGate>,
    /// Escalation and refusal phrases added to every endpoint's.
    pub escalation_phrases: Option<OneOrMany>,
    /// Which SLIs get per-slice histograms, and the series the suite may create.
    pub cardinality: Option<RawCardinality>,
}

/// The `gate:` section: how `canary gate` compares a candidate with the baseline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub confidence: Option<Percent>,
    pub latency_tolerance: Option<Percent>,
    pub ratio_tolerance: Option<Percent>,
    pub quantile: Option<Percent>,
    pub min_runs: Option<u32>,
    pub slis: Option<OneOrMany>,
    /// Hosts a gate's candidate and baseline URLs may point at (`host`, `host:port`,
    /// `*.domain`).
    pub allowed_hosts: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub timeout: Option<Dur>,
    pub runs: Option<u32>,
    pub concurrency: Option<u32>,
    pub schedule: Option<String>,
    pub max_body: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub protocol: Protocol,
    pub url: Option<String>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub model: Option<String>,
    pub tier: Option<RawExtractor>,
    pub fallback: Option<RawMatcher>,
    pub cache: Option<RawMatcher>,
    pub escalation: Option<RawEscalation>,
    pub schema: Option<String>,
    pub answer: Option<RawExtractor>,
    pub timeout: Option<Dur>,
    pub max_body: Option<ByteSize>,
    /// Chat protocols: request a stream (default true); described streams: the description.
    pub stream: Option<Value>,
    /// Chat protocols: extra request body fields (temperature, max_tokens, ...).
    pub params: Option<serde_json::Map<String, Value>>,
    // Keys of the streaming, voice and job protocols (their drivers validate them).
    pub start: Option<Value>,
    pub transcript: Option<Value>,
    pub done: Option<Value>,
    pub audio_format: Option<String>,
    pub container: Option<String>,
    /// ws-opus: the rate Opus is decoded at.
    pub sample_rate: Option<u32>,
    /// realtime: `ga` or `beta` event names.
    pub api: Option<String>,
    /// realtime: the `session` of `session.update`, or `false`.
    pub session: Option<Value>,
    /// Voice: the level (dBFS) above which a 10 ms window is audible.
    pub audible_threshold: Option<f64>,
    /// Voice: the playout buffer modelled.
    pub prebuffer: Option<Dur>,
    /// job: the request that starts the job.
    pub submit: Option<RawSubmit>,
    /// job: where the job id is (`Location` when absent).
    pub id: Option<RawExtractor>,
    /// job: how completion is followed (polling or an SSE stream).
    pub poll: Option<RawPoll>,
    /// job: marks a failed job, and where its reason is.
    pub failed: Option<RawFailed>,
    /// job: the server's own queue time (seconds) in the final status.
    pub queue: Option<RawExtractor>,
    /// The target's own Prometheus metrics, fetched before and after a run.
    pub metrics_url: Option<String>,
    /// Target series to set next to canary's SLIs: `SLI: {good, total}` or `SLI: {histogram}`.
    pub metrics_compare: Option<BTreeMap<String, RawCompare>>,
    /// Constant labels on this endpoint's series (e.g. `model`, `route`).
    pub labels: Option<BTreeMap<String, String>>,
    /// Prices for cost accounting.
    pub price: Option<RawPrice>,
    /// Chat protocols: the most output tokens a probe asks for.
    pub max_tokens: Option<u32>,
    /// Allows credentials over plain http/ws to a host that is not loopback.
    pub allow_insecure: Option<bool>,
    /// TLS: a custom CA (added to the system roots) and a client certificate and key (mTLS).
    pub tls: Option<RawTls>,
    /// The HTTP version spoken: `auto` (default), `1.1` or `2`.
    pub http: Option<Value>,
    /// Send a W3C `traceparent` header with each probe request (default true).
    pub traceparent: Option<bool>,
    /// `none`, `env` (default) or a proxy URL / `{ url, username, password }`.
    pub proxy: Option<Value>,
    /// Redirects followed (0, the default: a redirect is an error).
    pub follow_redirects: Option<Value>,
    /// `fresh` (default) or `reuse`.
    pub connection: Option<Value>,
    /// Host name -> IP address, instead of DNS.
    pub resolve: Option<Value>,
    /// A credential obtained per request (`type: aws-sigv4 | oauth2-client-credentials |
    /// google-service-account`).
    pub auth: Option<Value>,
}

/// `tls: { ca, cert, key }`: PEM files, relative to the suite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `price: { input_per_mtok, output_per_mtok }` in dollars per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// `sample: { per_tick: N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSample {
    pub per_tick: u32,
}

/// `budget: { tokens_per_day | dollars_per_day }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub tokens_per_day: Option<f64>,
    pub dollars_per_day: Option<f64>,
}

/// `cardinality: { per_slice: [SLI...], max_series: N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCardinality {
    pub per_slice: Option<OneOrMany>,
    pub max_series: Option<u64>,
}

/// `escalation:` a matcher (`{json | header, equals | regex}`), and/or phrases looked for in
/// the answer (`phrases`, `builtin: false` to drop the built-in list).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    pub json: Option<String>,
    pub header: Option<String>,
    pub equals: Option<Value>,
    pub regex: Option<String>,
    pub phrases: Option<OneOrMany>,
    pub builtin: Option<bool>,
}

/// `freshness: { truth: { url, value, updated_at } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreshness {
    pub truth: RawTruth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTruth {
    pub url: String,
    pub value: String,
    pub updated_at: String,
}

/// `canary_fact: { write: {method, url, body}, read_every, give_up_after }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanaryFact {
    pub write: RawSubmit,
    pub read_every: Option<Dur>,
    pub give_up_after: Option<Dur>,
}

/// `submit: {method, url, body}` of a job endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubmit {
    pub url: String,
    pub method: Option<String>,
    /// A template over the case; the case's `input.body` (or `input`) when absent.
    pub body: Option<Value>,
    /// Extra headers (values from `${ENV}` / `${file:...}` for credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `poll: {url, every, backoff, max_every}` or `poll: {stream}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub url: Option<String>,
    pub every: Option<Dur>,
    pub backoff: Option<f64>,
    pub max_every: Option<Dur>,
    /// An SSE stream of status events instead of polling.
    pub stream: Option<String>,
}

/// `failed: {json | header, equals | regex, reason}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailed {
    pub json: Option<String>,
    pub header: Option<String>,
    pub equals: Option<Value>,
    pub regex: Option<String>,
    /// JSONPath of the server's reason.
    pub reason: Option<String>,
}

/// One comparison of a target series with an SLI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    pub good: Option<String>,
    pub total: Option<String>,
    pub histogram: Option<String>,
}

/// `{json: PATH}` or `{header: NAME}`; `primary` lists the primary tiers (for `tier_primary`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtractor {
    pub json: Option<String>,
    pub header: Option<String>,
    pub primary: Option<OneOrMany>,
}

/// `{json: PATH | header: NAME, equals: VALUE | hit: VALUE | regex: RE}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    pub json: Option<String>,
    pub header: Option<String>,
    pub equals: Option<Value>,
    pub hit: Option<Value>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: String,
    pub endpoint: String,
    pub golden: String,
    pub stall: Option<Dur>,
    pub freshness: Option<RawFreshness>,
    pub canary_fact: Option<RawCanaryFact>,
    /// Rotation: run this many cases per tick instead of all of them.
    pub sample: Option<RawSample>,
    /// Rotation sized by a daily budget.
    pub budget: Option<RawBudget>,
    /// Every case runs at least once within this period (rotation).
    pub coverage: Option<Dur>,
    /// Output tokens expected per answer, for budgets (default: max_tokens, else 256).
    pub expected_output_tokens: Option<u32>,
    /// `first_visible`: stop reading a stream at the first visible token (latency only).
    pub stop_after: Option<String>,
    pub timeout: Option<Dur>,
    pub runs: Option<u32>,
    pub schedule: Option<String>,
    /// A judge for every case of the probe (cases may override or turn it off).
    pub judge: Option<RawJudge>,
    /// Similarity to the reference for every case that has one.
    pub similar: Option<RawSimilar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub name: String,
    pub probe: String,
    pub sli: String,
    pub threshold: Option<Dur>,
    pub objective: Percent,
    pub window: Option<Dur>,
    #[serde(default)]
    pub per_slice: bool,
    pub description: Option<String>,
    /// Outcomes left out of the SLO (e.g. `[rate_limited]`: a known 429 storm of a test is not
    /// the service failing its users).
    pub exclude: Option<OneOrMany>,
}

/// One golden case (a JSONL line).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    pub id: String,
    pub slice: Option<String>,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub expect: RawExpect,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub equals: Option<Value>,
    pub contains: Option<OneOrMany>,
    pub contains_any: Option<OneOrMany>,
    pub regex: Option<String>,
    pub not_regex: Option<String>,
    pub json: Option<BTreeMap<String, Value>>,
    pub schema: Option<String>,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub not_escalated: Option<bool>,
    pub fresh: Option<bool>,
    pub transcript_contains: Option<OneOrMany>,
    pub tier: Option<OneOrMany>,
    /// `true`, a rubric, or `{endpoint, rubric, rubric_file, threshold, samples, temperature}`.
    pub judge: Option<RawCaseJudge>,
    /// `true`, a threshold, or `{endpoint, threshold}`.
    pub similar: Option<RawCaseSimilar>,
    pub reference: Option<String>,
    /// `pass` or `fail`: a human's verdict, to measure the judge against.
    pub label: Option<String>,
}

/// A judge's settings (a probe's `judge`, or a case's `expect.judge` object).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJudge {
    pub endpoint: Option<String>,
    pub rubric: Option<String>,
    pub rubric_file: Option<String>,
    pub threshold: Option<f64>,
    pub samples: Option<u32>,
    pub temperature: Option<f64>,
}

/// A case's `expect.judge`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCaseJudge {
    On(bool),
    Rubric(String),
    Settings(RawJudge),
}

/// Similarity settings (a probe's `similar`, or a case's `expect.similar` object).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimilar {
    pub endpoint: Option<String>,
    pub threshold: Option<f64>,
}

/// A case's `expect.similar`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCaseSimilar {
    On(bool),
    Threshold(f64),
    Settings(RawSimilar),
}

/// One user turn of a conversation case (`input.turns[]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTurn {
    pub user: String,
    #[serde(default)]
    pub expect: RawExpect,
    pub tool_results: Option<serde_json::Map<String, Value>>,
}
