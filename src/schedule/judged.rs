//! Judged quality at run time: asking a case's judge endpoint (through the same chat
//! drivers as any probe) and its embeddings endpoint, the judgment cache (keyed by answer,
//! rubric and judge; kept beside `--state` across runs), and conversations (`input.turns`:
//! each user turn sent with the real conversation so far, tool calls answered from canned
//! results, per-turn checks, judges and latencies).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::state_file::{read_state, write_state, StateError};
use super::RunContext;
use crate::check::judge::{self, Judgment};
use crate::check::CheckResult;
use crate::drivers::{self, RunVars};
use crate::measure::sli::Sli;
use crate::observation::{Observation, Outcome, Tokens};
use crate::suite::{Case, Endpoint, Expect, JudgeSpec, Probe, Protocol, SimilarSpec};
use crate::timeline::Timeline;

pub use crate::check::records::{JudgeRecord, SimilarRecord, TurnRecord};

// ---------------------------------------------------------------------------------------
// The judgment cache.

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    judgments: HashMap<String, Judgment>,
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<String, Judgment>,
    dirty: bool,
}

/// Most judgments kept; new ones are not cached beyond it.
pub const MAX_CACHED: usize = 100_000;

type Inflight = HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>;

/// The judgments of a run (across runs when it has a file), the judgments being asked, and
/// how many judge requests were made (cache hits make none).
#[derive(Debug, Default)]
pub struct JudgmentCache {
    cache: Mutex<Cache>,
    path: Option<PathBuf>,
    /// One lock per judgment being asked, so that runs of one answer in flight together ask
    /// the judge once and the others take the cached judgment.
    inflight: Mutex<Inflight>,
    calls: AtomicU64,
}

/// Where the judgment cache of a state file lives: the state file with the extension
/// `judgments.json` (`--state /data/canary.json` → `/data/canary.judgments.json`).
pub fn cache_path_for(state: &Path) -> PathBuf {
    state.with_extension("judgments.json")
}

impl JudgmentCache {
    /// The cache in `path` (a missing file starts empty), saved there by [`Self::save`].
    pub fn load(path: Option<&Path>) -> Result<JudgmentCache, StateError> {
        let mut map = HashMap::new();
        if let Some(p) = path {
            if let Some(text) = read_state(p)? {
                let f: CacheFile =
                    serde_json::from_str(&text).map_err(|source| StateError::Malformed {
                        path: p.to_path_buf(),
                        what: "judgment cache",
                        source,
                    })?;
                map = f.judgments;
            }
        }
        Ok(JudgmentCache {
            cache: Mutex::new(Cache { map, dirty: false }),
            path: path.map(Path::to_path_buf),
            ..JudgmentCache::default()
        })
    }

    /// Writes the cache to its file, if it has one and changed, atomically.
    pub fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if !c.dirty {
                return Ok(());
            }
            c.dirty = false;
            let f = CacheFile {
                version: 1,
                judgments: c.map.clone(),
            };
            serde_json::to_string(&f).map_err(|source| StateError::Encode {
                what: "judgment cache",
                source,
            })?
        };
        write_state(path, &text)
    }

    /// Judge requests made through this cache.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &str) -> Option<Judgment> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }

    fn remember(&self, key: String, j: &Judgment) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.map.len() < MAX_CACHED || c.map.contains_key(&key) {
            c.map.insert(key, j.clone());
            c.dirty = true;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Asking the judge and the embeddings endpoint.

/// The question of a case, for the judge: the last user message, else `text` / `prompt`,
/// else the input as JSON.
pub fn question_of(input: &Value) -> String {
    if let Some(list) = input.get("messages").and_then(Value::as_array) {
        if let Some(m) = list
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        {
            return match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
        }
    }
    for k in ["text", "prompt"] {
        if let Some(s) = input.get(k).and_then(Value::as_str) {
            return s.to_string();
        }
    }
    match input.get("body") {
        Some(b) => b.to_string(),
        None => input.to_string(),
    }
}

fn synthetic(id: &str, input: Value) -> Case {
    Case {
        id: id.to_string(),
        slice: "judge".into(),
        input,
        ..Case::default()
    }
}

/// Asks `spec`'s judge about one answer (`samples` times), or takes the cached judgment.
pub async fn judge(
    spec: &JudgeSpec,
    question: &str,
    answer: &str,
    reference: Option<&str>,
    label: Option<bool>,
    turn: Option<u32>,
    ctx: &RunContext,
) -> JudgeRecord {
    let key = judge::cache_key(spec, question, answer, reference);
    let cache = &ctx.judgments;
    let lock = cache
        .inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.clone())
        .or_default()
        .clone();
    let guard = lock.lock().await;
    let prompt = judge::prompt(question, answer, reference, &spec.rubric);
    let r = judge_locked(spec, &key, prompt, label, turn, ctx).await;
    drop(guard);
    let mut map = cache.inflight.lock().unwrap_or_else(|e| e.into_inner());
    // The map's own handle and ours: nobody else waits on this judgment.
    if std::sync::Arc::strong_count(&lock) <= 2 {
        map.remove(&key);
    }
    r
}

async fn judge_locked(
    spec: &JudgeSpec,
    key: &str,
    prompt: String,
    label: Option<bool>,
    turn: Option<u32>,
    ctx: &RunContext,
) -> JudgeRecord {
    if let Some(j) = ctx.judgments.cached(key) {
        return record(j, label, turn, true);
    }
    let mut verdicts = Vec::new();
    let (mut input_tokens, mut output_tokens) = (0u64, 0u64);
    for sample in 0..spec.samples {
        let mut params = Map::new();
        if let Some(t) = spec.temperature {
            params.insert("temperature".into(), json!(t));
        }
        // Distinct samples of one prompt: a seed per sample where the protocol takes one.
        if spec.samples > 1 && spec.endpoint.protocol == Protocol::OpenaiChat {
            params.insert("seed".into(), json!(sample));
        }
        let case = synthetic(
            "judge",
            json!({
                "messages": [
                    {"role": "system", "content": judge::SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "params": params,
            }),
        );
        ctx.judgments.calls.fetch_add(1, Ordering::Relaxed);
        // A child span of the case run (when one is being traced).
        let mut span = crate::timeline::trace::child("canary.judge");
        span.attribute("canary.judge.endpoint", spec.endpoint.name.clone());
        let tl = drivers::run_case(
            &spec.endpoint,
            &case,
            RunVars {
                run: sample + 1,
                region: ctx.region.clone(),
                ..RunVars::default()
            },
            spec.endpoint.timeout,
        )
        .await;
        span.end(
            tl.error
                .as_ref()
                .map_or(Ok(()), |e| Err(e.message.as_str())),
        );
        let (i, o) = tokens_of(&tl, &case.input);
        input_tokens += i;
        output_tokens += o;
        verdicts.push(match &tl.error {
            Some(e) => Err(format!(
                "the judge request failed: {} ({})",
                e.message,
                e.class.as_str()
            )),
            None => match crate::check::answer_text(&spec.endpoint, &tl) {
                Some(text) => judge::parse_verdict(&text, spec.threshold),
                None => Err("the judge sent no answer".into()),
            },
        });
    }
    let mut j = judge::decide(&verdicts);
    j.input_tokens = input_tokens;
    j.output_tokens = output_tokens;
    j.cost_dollars = spec
        .endpoint
        .price
        .map(|p| p.cost(input_tokens, output_tokens));
    // A judgment whose requests failed is not kept: the next run asks again.
    if verdicts.iter().all(Result::is_ok) {
        ctx.judgments.remember(key.to_string(), &j);
    }
    record(j, label, turn, false)
}

fn record(j: Judgment, label: Option<bool>, turn: Option<u32>, cached: bool) -> JudgeRecord {
    let verdict = match j.passed {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "judge_error",
    };
    JudgeRecord {
        turn,
        verdict,
        judgment: j,
        label,
        cached,
    }
}

fn tokens_of(tl: &Timeline, input: &Value) -> (u64, u64) {
    let u = tl.usage.unwrap_or_default();
    let i = u
        .input_tokens
        .unwrap_or_else(|| crate::observation::input_tokens_estimate(input));
    let o = u.output_tokens.unwrap_or_else(|| {
        tl.answer_text
            .as_deref()
            .map(|a| u64::from(crate::drivers::chat_events::estimate_tokens(a)))
            .unwrap_or(0)
    });
    (i, o)
}

/// Cosine similarity of the answer and the reference through `spec`'s embeddings endpoint
/// (`{"model", "input": [answer, reference]}`, OpenAI-compatible).
pub async fn similar(
    spec: &SimilarSpec,
    answer: &str,
    reference: &str,
    turn: Option<u32>,
    ctx: &RunContext,
) -> SimilarRecord {
    let mut body = Map::new();
    if let Some(m) = &spec.endpoint.model {
        body.insert("model".into(), json!(m));
    }
    body.insert("input".into(), json!([answer, reference]));
    let case = synthetic("embeddings", json!({ "body": body }));
    let span = crate::timeline::trace::child("canary.embeddings");
    let tl = drivers::run_case(
        &spec.endpoint,
        &case,
        RunVars {
            region: ctx.region.clone(),
            ..RunVars::default()
        },
        spec.endpoint.timeout,
    )
    .await;
    span.end(
        tl.error
            .as_ref()
            .map_or(Ok(()), |e| Err(e.message.as_str())),
    );
    let result: Result<f64, String> = match (&tl.error, &tl.response) {
        (Some(e), _) => Err(format!("the embeddings request failed: {}", e.message)),
        (None, Some(r)) => serde_json::from_slice::<Value>(&r.body)
            .map_err(|e| format!("the embeddings answer is not JSON: {e}"))
            .and_then(|doc| judge::embeddings(&doc))
            .and_then(|v| match v.as_slice() {
                [a, b] => judge::cosine(a, b)
                    .ok_or_else(|| "the two vectors differ in length or one is zero".into()),
                other => Err(format!("asked for 2 vectors, got {}", other.len())),
            }),
        (None, None) => Err("the embeddings request got no response".into()),
    };
    match result {
        Ok(s) => SimilarRecord {
            turn,
            similarity: Some(s),
            threshold: spec.threshold,
            passed: s >= spec.threshold,
            error: None,
        },
        Err(e) => SimilarRecord {
            turn,
            similarity: None,
            threshold: spec.threshold,
            passed: false,
            error: Some(crate::secret::redact(&e)),
        },
    }
}

fn prefix(turn: Option<u32>, s: String) -> String {
    match turn {
        Some(t) => format!("turn {t}: {s}"),
        None => s,
    }
}

/// Judges and compares one answer as `expect` asks; returns the records and their checks.
pub async fn assess(
    expect: &Expect,
    question: &str,
    answer: &str,
    turn: Option<u32>,
    ctx: &RunContext,
) -> (Option<JudgeRecord>, Option<SimilarRecord>, Vec<CheckResult>) {
    let mut checks = Vec::new();
    let reference = expect.reference.as_deref();
    let j = match &expect.judge {
        Some(spec) => {
            let r = judge(spec, question, answer, reference, expect.label, turn, ctx).await;
            let j = &r.judgment;
            let score = j
                .score
                .map(|s| format!(", score {s:.2}"))
                .unwrap_or_default();
            let detail = match j.passed {
                Some(p) => format!(
                    "{} ({}/{} samples{score}{}): {}",
                    if p { "pass" } else { "fail" },
                    if p { j.passes } else { j.fails },
                    j.samples,
                    if r.cached { ", cached" } else { "" },
                    j.reason
                ),
                None => format!("judge_error: {}", j.reason),
            };
            checks.push(CheckResult::new("judge", r.passed(), prefix(turn, detail)));
            Some(r)
        }
        None => None,
    };
    let s = match (&expect.similar, reference) {
        (Some(spec), Some(reference)) => {
            let r = similar(spec, answer, reference, turn, ctx).await;
            let detail = match (r.similarity, &r.error) {
                (Some(v), _) => format!("similarity {v:.3}, threshold {:.3}", r.threshold),
                (None, Some(e)) => format!("similar_error: {e}"),
                (None, None) => "no similarity".into(),
            };
            checks.push(CheckResult::new("similar", r.passed, prefix(turn, detail)));
            Some(r)
        }
        _ => None,
    };
    (j, s, checks)
}

/// Adds the judge and the similarity of a single-turn run to its observation.
pub async fn judge_observation(
    mut obs: Observation,
    endpoint: &Endpoint,
    case: &Case,
    timeline: &Timeline,
    ctx: &RunContext,
) -> Observation {
    let e = &case.expect;
    if (e.judge.is_none() && e.similar.is_none()) || !obs.judged || obs.outcome.is_error() {
        return obs;
    }
    let Some(answer) = crate::check::answer_text(endpoint, timeline) else {
        return obs;
    };
    let question = question_of(&case.input);
    let (j, s, checks) = assess(e, &question, &answer, None, ctx).await;
    add(&mut obs, j, s, checks);
    obs
}

fn add(
    obs: &mut Observation,
    j: Option<JudgeRecord>,
    s: Option<SimilarRecord>,
    checks: Vec<CheckResult>,
) {
    if checks.iter().any(|c| !c.passed) && obs.outcome == Outcome::Ok {
        obs.outcome = Outcome::CheckFailed;
    }
    obs.verdicts.checks.extend(checks);
    if let Some(j) = j {
        if !j.cached {
            let t = obs.judge_tokens.get_or_insert_with(Tokens::default);
            t.input += j.judgment.input_tokens;
            t.output += j.judgment.output_tokens;
            if let Some(c) = j.judgment.cost_dollars {
                *obs.judge_cost_dollars.get_or_insert(0.0) += c;
            }
        }
        obs.judgments.push(j);
    }
    if let Some(s) = s {
        if let Some(e) = &s.error {
            obs.quality_errors.push(format!("similar: {e}"));
        }
        obs.similar.push(s);
    }
}

// ---------------------------------------------------------------------------------------
// Conversations.

/// Most tool-call rounds answered within one turn.
pub const MAX_TOOL_ROUNDS: u32 = 4;

/// Tool calls of a non-streamed answer (`id`, `name`, arguments).
fn tool_calls(protocol: Protocol, tl: &Timeline) -> Vec<(String, String, Value)> {
    let Some(raw) = tl.doc.as_ref().and_then(|d| d.get("raw")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match protocol {
        Protocol::OpenaiChat => {
            let calls = raw
                .pointer("/choices/0/message/tool_calls")
                .and_then(Value::as_array);
            for c in calls.into_iter().flatten() {
                let id = c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("call")
                    .to_string();
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let args = c
                    .pointer("/function/arguments")
                    .cloned()
                    .unwrap_or(Value::Null);
                out.push((id, name, args));
            }
        }
        Protocol::AnthropicMessages => {
            for b in raw
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                    out.push((
                        b.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("toolu")
                            .to_string(),
                        b.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        b.get("input").cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
        Protocol::OpenaiResponses => {
            for b in raw
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if b.get("type").and_then(Value::as_str) == Some("function_call") {
                    out.push((
                        b.get("call_id")
                            .and_then(Value::as_str)
                            .unwrap_or("call")
                            .to_string(),
                        b.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        b.get("arguments").cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// Appends the model's tool calls and the canned results to the conversation, in the
/// protocol's shape. Returns the tools that had no canned result.
fn answer_tools(
    protocol: Protocol,
    calls: &[(String, String, Value)],
    results: &Map<String, Value>,
    history: &mut Vec<Value>,
) -> Vec<String> {
    let mut missing = Vec::new();
    let result_of = |name: &str, missing: &mut Vec<String>| -> String {
        match results.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => {
                missing.push(name.to_string());
                json!({"error": format!("no canned result for tool `{name}`")}).to_string()
            }
        }
    };
    match protocol {
        Protocol::AnthropicMessages => {
            let uses: Vec<Value> = calls
                .iter()
                .map(|(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input}))
                .collect();
            history.push(json!({"role": "assistant", "content": uses}));
            let res: Vec<Value> = calls
                .iter()
                .map(|(id, name, _)| {
                    json!({"type": "tool_result", "tool_use_id": id, "content": result_of(name, &mut missing)})
                })
                .collect();
            history.push(json!({"role": "user", "content": res}));
        }
        Protocol::OpenaiResponses => {
            for (id, name, args) in calls {
                history.push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": args}));
                history.push(json!({"type": "function_call_output", "call_id": id, "output": result_of(name, &mut missing)}));
            }
        }
        _ => {
            let list: Vec<Value> = calls
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
                })
                .collect();
            history.push(json!({"role": "assistant", "content": null, "tool_calls": list}));
            for (id, name, _) in calls {
                history.push(json!({"role": "tool", "tool_call_id": id, "content": result_of(name, &mut missing)}));
            }
        }
    }
    missing
}

/// Runs a conversation case: each user turn with the conversation so far (the endpoint's
/// real answers), tool calls answered from canned results, each turn measured and checked;
/// then the whole conversation's `expect`. An error stops the conversation at its turn.
pub async fn run_conversation(
    endpoint: &Endpoint,
    probe: &Probe,
    case: &Case,
    vars: RunVars,
    deadline: Duration,
    ctx: &RunContext,
) -> (Observation, Timeline) {
    let start = Instant::now();
    let mut history: Vec<Value> = case
        .input
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut records = Vec::new();
    let mut turn_obs: Vec<Observation> = Vec::new();
    let mut answers: Vec<String> = Vec::new();
    let mut transcript = String::new();
    let mut last_tl: Option<Timeline> = None;
    let mut quality_errors = Vec::new();
    let mut judgments = Vec::new();
    let mut similars = Vec::new();
    let mut extra_checks = Vec::new();
    for (i, turn) in case.turns.iter().enumerate() {
        let n = i as u32 + 1;
        history.push(json!({"role": "user", "content": turn.user}));
        let mut tool_rounds = 0;
        let (turn_case, tl) = loop {
            let mut input = Map::new();
            input.insert("messages".into(), Value::Array(history.clone()));
            for k in ["params", "model", "system", "max_tokens"] {
                if let Some(v) = case.input.get(k) {
                    input.insert(k.into(), v.clone());
                }
            }
            let turn_case = Case {
                id: case.id.clone(),
                slice: case.slice.clone(),
                input: Value::Object(input),
                expect: turn.expect.clone(),
                line: case.line,
                turns: Vec::new(),
            };
            let tl = drivers::run_case(endpoint, &turn_case, vars.clone(), deadline).await;
            let calls = if tl.error.is_none() {
                tool_calls(endpoint.protocol, &tl)
            } else {
                Vec::new()
            };
            if calls.is_empty() || tool_rounds >= MAX_TOOL_ROUNDS {
                break (turn_case, tl);
            }
            tool_rounds += 1;
            for m in answer_tools(endpoint.protocol, &calls, &turn.tool_results, &mut history) {
                quality_errors.push(format!("turn {n}: no canned result for tool `{m}`"));
            }
        };
        let mut obs = Observation::from_timeline(
            endpoint,
            &probe.name,
            &turn_case,
            vars.run,
            probe.stall,
            &tl,
        )
        .account_tokens(endpoint, &turn_case);
        let answer = crate::check::answer_text(endpoint, &tl);
        if obs.judged && !obs.outcome.is_error() {
            if let Some(a) = &answer {
                let (j, s, checks) = assess(&turn.expect, &turn.user, a, Some(n), ctx).await;
                add(&mut obs, j, s, checks);
            }
        }
        let turn_checks: Vec<CheckResult> = obs
            .verdicts
            .checks
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if !c.detail.starts_with("turn ") {
                    c.detail = format!("turn {n}: {}", c.detail);
                }
                c
            })
            .collect();
        records.push(TurnRecord {
            turn: n,
            outcome: obs.outcome.as_str(),
            error: obs.error.as_ref().map(|e| e.message.clone()),
            latency: obs.latency.clone(),
            tool_calls: tool_rounds,
            checks: turn_checks.clone(),
            answer: obs.answer.clone(),
        });
        extra_checks.extend(turn_checks);
        judgments.append(&mut obs.judgments);
        similars.append(&mut obs.similar);
        let text = answer.unwrap_or_default();
        transcript.push_str(&format!("user: {}\nassistant: {}\n", turn.user, text));
        history.push(json!({"role": "assistant", "content": text}));
        answers.push(text);
        let failed = obs.outcome.is_error();
        turn_obs.push(obs);
        last_tl = Some(tl);
        if failed {
            break;
        }
    }
    let Some(tl) = last_tl else {
        // Validation gives every conversation at least one turn.
        let run = vars.run;
        let tl = drivers::run_case(endpoint, case, vars, deadline).await;
        let obs = Observation::from_timeline(endpoint, &probe.name, case, run, probe.stall, &tl);
        return (obs, tl);
    };
    let Some(mut obs) = turn_obs.pop() else {
        let obs =
            Observation::from_timeline(endpoint, &probe.name, case, vars.run, probe.stall, &tl);
        return (obs, tl);
    };
    // The conversation: the last turn's record, with every turn's checks, the worst value
    // of each latency SLI over the turns, tokens summed, and the conversation's duration.
    let mut latency = obs.latency.clone();
    let mut tokens = obs.tokens;
    let mut cost = obs.cost_dollars;
    let mut judge_tokens = obs.judge_tokens;
    let mut judge_cost = obs.judge_cost_dollars;
    for o in &turn_obs {
        for (sli, v) in &o.latency {
            let e = latency.entry(*sli).or_insert(*v);
            *e = e.max(*v);
        }
        if let Some(t) = o.tokens {
            let s = tokens.get_or_insert_with(Tokens::default);
            s.input += t.input;
            s.output += t.output;
            s.reasoning += t.reasoning;
            s.estimated |= t.estimated;
        }
        if let Some(c) = o.cost_dollars {
            *cost.get_or_insert(0.0) += c;
        }
        if let Some(t) = o.judge_tokens {
            let s = judge_tokens.get_or_insert_with(Tokens::default);
            s.input += t.input;
            s.output += t.output;
        }
        if let Some(c) = o.judge_cost_dollars {
            *judge_cost.get_or_insert(0.0) += c;
        }
    }
    let errored = obs.outcome.is_error();
    if let Some(e) = obs.error.as_mut() {
        e.message = format!("turn {}: {}", records.len(), e.message);
    }
    obs.case_id = case.id.clone();
    obs.latency = latency;
    if !errored {
        obs.latency
            .insert(Sli::ConversationDuration, start.elapsed().as_secs_f64());
    }
    obs.tokens = tokens;
    obs.cost_dollars = cost;
    obs.judge_tokens = judge_tokens;
    obs.judge_cost_dollars = judge_cost;
    obs.verdicts.checks = extra_checks;
    obs.judgments = judgments;
    obs.similar = similars;
    obs.quality_errors.extend(quality_errors);
    obs.turns = records;
    obs.answer = Some(transcript.chars().take(500).collect());
    obs.answer_chars = Some(answers.iter().map(|a| a.chars().count() as u64).sum());
    // The whole conversation's expectations: text checks on every answer, the judge and
    // the similarity on the transcript.
    if !errored && obs.judged {
        let all = answers.join("\n\n");
        let mut whole = crate::check::text_checks_on(&case.expect, &all);
        for c in &mut whole {
            c.detail = format!("conversation: {}", c.detail);
        }
        let question: String = case
            .turns
            .iter()
            .map(|t| t.user.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let (j, s, checks) = assess(&case.expect, &question, &transcript, None, ctx).await;
        whole.extend(checks.into_iter().map(|mut c| {
            c.detail = format!("conversation: {}", c.detail);
            c
        }));
        obs.verdicts.checks.extend(whole);
        add(&mut obs, j, s, Vec::new());
    }
    if !errored {
        obs.outcome = if obs.verdicts.checks_passed() {
            Outcome::Ok
        } else {
            Outcome::CheckFailed
        };
    }
    (obs, tl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_is_the_last_user_message() {
        let i = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                                    {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]});
        assert_eq!(question_of(&i), "c");
        assert_eq!(question_of(&json!({"text": "t"})), "t");
        assert_eq!(question_of(&json!({"body": {"q": 1}})), "{\"q\":1}");
    }

    #[test]
    fn tool_results_follow_the_protocol_shape() {
        let calls = vec![(
            "c1".to_string(),
            "weather".to_string(),
            json!("{\"city\":\"Paris\"}"),
        )];
        let mut results = Map::new();
        results.insert("weather".into(), json!({"temp_c": 21}));
        let mut h = Vec::new();
        assert!(answer_tools(Protocol::OpenaiChat, &calls, &results, &mut h).is_empty());
        assert_eq!(h[0]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(h[1]["role"], "tool");
        assert_eq!(h[1]["content"], "{\"temp_c\":21}");
        let mut h = Vec::new();
        let missing = answer_tools(Protocol::AnthropicMessages, &calls, &Map::new(), &mut h);
        assert_eq!(missing, vec!["weather".to_string()]);
        assert_eq!(h[1]["content"][0]["type"], "tool_result");
    }
}
