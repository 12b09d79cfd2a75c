//! The simulator's judged-quality services, with ground truth:
//!
//! - **A judge** on the OpenAI chat route: any model whose name starts with `sim-judge`. It
//!   reads the last user message's `<answer>` and `<reference>` tags and applies a documented
//!   rule: the true verdict is **pass** when the answer holds the reference (lowercase,
//!   whitespace runs made one space, a final `.` of the reference dropped), or, without a
//!   reference, when the answer does not say "not sure". With an error rate (`judge.error_rate`
//!   in the config, or `-errNN` in the model name: NN percent) the verdict is flipped when a
//!   hash of the seed, the question, the answer, the reference, the rubric and the request's
//!   `seed` falls
//!   under it, so each (answer, sample) flips or not deterministically. `sim-judge-malformed`
//!   answers prose instead of the JSON verdict. Every call is recorded (`GET /truth`,
//!   `judges`).
//! - **Embeddings** at `POST /v1/embeddings` (OpenAI-compatible): a 256-dimension vector per
//!   input, each lowercase alphanumeric word adding ±1 at a dimension chosen by its FNV-1a hash,
//!   normalised; the cosine of two texts measures their shared words.
//! - **Conversations** ([`conversation_answer`]): a follow-up answered from the conversation
//!   so far; the `forgetful` profile ignores it (quality drops on multi-turn slices only).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::SimState;

/// The judge's behaviour (`judge:` in the simulator's config).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Share of verdicts flipped (models named `...-errNN` use NN% instead).
    pub error_rate: f64,
}

/// One judge call as the simulator answered it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JudgeTruth {
    pub seq: u64,
    pub model: String,
    pub question: String,
    pub answer: String,
    pub reference: Option<String>,
    /// The verdict the rule gives.
    pub truth: bool,
    /// The verdict sent (`None`: a malformed answer was sent).
    pub verdict: Option<bool>,
    pub flipped: bool,
    /// The request's `seed` (one per sample).
    pub sample_seed: Option<u64>,
}

fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let i = text.find(&open)? + open.len();
    let j = text[i..].find(&close)? + i;
    Some(text[i..j].trim())
}

fn norm(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rule: pass when the answer holds the reference, or (without one) when it is not a
/// "not sure" answer.
pub fn true_verdict(answer: &str, reference: Option<&str>) -> bool {
    let a = norm(answer);
    match reference.map(norm) {
        Some(r) if !r.trim_end_matches('.').is_empty() => a.contains(r.trim_end_matches('.')),
        _ => !a.contains("not sure"),
    }
}

/// The error rate of a judge model: `-errNN` in the name, else the configured one.
fn error_rate(model: &str, configured: f64) -> f64 {
    model
        .split('-')
        .find_map(|p| p.strip_prefix("err").and_then(|n| n.parse::<f64>().ok()))
        .map(|pct| pct / 100.0)
        .unwrap_or(configured)
        .clamp(0.0, 1.0)
}

fn last_user(req: &Value) -> String {
    req.get("messages")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Answers a judge request (OpenAI chat, streamed or not).
pub fn handle(state: &Arc<SimState>, model: &str, req: &Value) -> Response {
    let prompt = last_user(req);
    let answer = tag(&prompt, "answer").unwrap_or("").to_string();
    let reference = tag(&prompt, "reference").map(str::to_string);
    let rubric = tag(&prompt, "rubric").unwrap_or("");
    let question = tag(&prompt, "question").unwrap_or("").to_string();
    let sample_seed = req.get("seed").and_then(Value::as_u64);
    let truth = true_verdict(&answer, reference.as_deref());
    let cfg = state.config();
    let rate = error_rate(model, cfg.judge.error_rate);
    let mut key = Vec::new();
    for part in [
        question.as_str(),
        answer.as_str(),
        reference.as_deref().unwrap_or(""),
        rubric,
        &sample_seed.map(|s| s.to_string()).unwrap_or_default(),
    ] {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    let mut r = crate::rng::SplitMix64::new(cfg.seed ^ crate::rng::fnv1a(&key));
    let flipped = r.next_f64() < rate;
    let verdict = truth != flipped;
    let malformed = model.contains("malformed");
    let content = if malformed {
        "The answer looks fine to me, I would pass it.".to_string()
    } else {
        json!({
            "verdict": if verdict { "pass" } else { "fail" },
            "score": if verdict { 0.9 } else { 0.1 },
            "reason": match (reference.is_some(), truth) {
                (true, true) => "the answer holds the reference",
                (true, false) => "the answer misses the reference",
                (false, true) => "the answer is not a \"not sure\" answer",
                (false, false) => "the answer says it is not sure",
            },
        })
        .to_string()
    };
    state.record_judge(JudgeTruth {
        model: model.to_string(),
        question,
        answer,
        reference,
        truth,
        verdict: (!malformed).then_some(verdict),
        flipped: flipped && !malformed,
        sample_seed,
        ..Default::default()
    });
    let prompt_tokens = prompt.split_whitespace().count() as u64 + 60;
    let completion_tokens = content.split_whitespace().count() as u64;
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        return axum::Json(json!({
            "id": "chatcmpl-judge", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }))
        .into_response();
    }
    let mut body = String::new();
    for data in [
        json!({"model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"model": model, "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": "stop"}]}),
        json!({"model": model, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}),
    ] {
        body.push_str(&format!("data: {data}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

/// Dimensions of the simulator's embeddings.
pub const DIMENSIONS: usize = 256;

/// The simulator's embedding of a text (see the module doc).
pub fn embed(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; DIMENSIONS];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = crate::rng::fnv1a(word.as_bytes());
        let dim = (h % DIMENSIONS as u64) as usize;
        v[dim] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let n: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": format!("body is not JSON: {e}"), "type": "invalid_request_error"}})),
            )
                .into_response()
        }
    };
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "`input` must be a string or a list of strings", "type": "invalid_request_error"}})),
            )
                .into_response()
        }
    };
    state.count_embeddings(inputs.len() as u64);
    let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    axum::Json(json!({
        "object": "list", "data": data,
        "model": req.get("model").and_then(Value::as_str).unwrap_or("sim-embed"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

fn text_of(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// What the simulated model answers in a conversation (`None`: not a conversation, or a
/// turn answered like a single question). `messages` in OpenAI or Anthropic shape.
///
/// - a tool result in the conversation (`role: tool`) → `The weather in CITY is N degrees.`
///   from its `temp_c`;
/// - `tools` offered and the last user message asks about the weather → a tool call
///   `get_weather {"city": ...}` (returned as `Err`);
/// - a follow-up about "population" → the population of the city the conversation named
///   (Paris or Tokyo);
/// - "first question" → the first user message repeated;
/// - the `forgetful` profile answers both follow-ups with "I am not sure what you are
///   referring to." (the conversation is ignored).
pub fn conversation_answer(
    messages: &[Value],
    tools: bool,
    forgetful: bool,
) -> Option<Result<String, Value>> {
    let users: Vec<String> = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(text_of)
        .filter(|t| !t.is_empty())
        .collect();
    let last = users.last()?.to_lowercase();
    if let Some(tool) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
    {
        let content = text_of(tool);
        let temp = serde_json::from_str::<Value>(&content)
            .ok()
            .and_then(|v| v.get("temp_c").cloned())
            .map(|t| t.to_string())
            .unwrap_or_else(|| "an unknown number of".into());
        let city = if last.contains("tokyo") {
            "Tokyo"
        } else {
            "Paris"
        };
        return Some(Ok(format!("The weather in {city} is {temp} degrees.")));
    }
    if tools && last.contains("weather") {
        let city = if last.contains("tokyo") {
            "Tokyo"
        } else {
            "Paris"
        };
        return Some(Err(json!({
            "id": "call_sim_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json!({"city": city}).to_string()}
        })));
    }
    let history = messages
        .iter()
        .take(messages.len().saturating_sub(1))
        .map(text_of)
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase();
    let not_sure = "I am not sure what you are referring to.";
    if last.contains("population") {
        if forgetful {
            return Some(Ok(not_sure.into()));
        }
        return Some(Ok(if history.contains("tokyo") {
            "Tokyo has about 14 million inhabitants.".into()
        } else if history.contains("paris") {
            "Paris has about 2.1 million inhabitants.".into()
        } else {
            not_sure.into()
        }));
    }
    if last.contains("first question") {
        if forgetful || users.len() < 2 {
            return Some(Ok(not_sure.into()));
        }
        return Some(Ok(format!("Your first question was: {}", users[0])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_and_the_error_rate_name() {
        assert!(true_verdict("The capital is Paris.", Some("paris.")));
        assert!(!true_verdict("The capital is Lyon.", Some("Paris")));
        assert!(true_verdict("Fine.", None));
        assert!(!true_verdict("I am not sure.", None));
        assert_eq!(error_rate("sim-judge-err10", 0.0), 0.10);
        assert_eq!(error_rate("sim-judge", 0.25), 0.25);
    }

    #[test]
    fn embeddings_measure_shared_words() {
        let a = embed("Paris is the capital of France");
        let b = embed("the capital of France is Paris");
        let c = embed("Tokyo has about 14 million inhabitants");
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        assert!((dot(&a, &b) - 1.0).abs() < 1e-9);
        assert!(dot(&a, &c) < 0.5);
    }

    #[test]
    fn follow_ups_read_the_conversation_unless_forgetful() {
        let m = vec![
            json!({"role": "user", "content": "What is the capital of France?"}),
            json!({"role": "assistant", "content": "The capital of France is Paris."}),
            json!({"role": "user", "content": "What is its population?"}),
        ];
        assert_eq!(
            conversation_answer(&m, false, false),
            Some(Ok("Paris has about 2.1 million inhabitants.".into()))
        );
        assert_eq!(
            conversation_answer(&m, false, true),
            Some(Ok("I am not sure what you are referring to.".into()))
        );
        assert_eq!(conversation_answer(&m[..1], false, false), None);
    }
}
