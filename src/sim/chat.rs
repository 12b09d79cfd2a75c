//! Chat endpoints of the simulator: `/v1/chat/completions`, `/v1/responses` and
//! `/v1/messages`, streamed or not, with scenarios chosen by the model name:
//!
//! | model contains | behaviour |
//! |---|---|
//! | `reasoning` | reasoning deltas for 800 ms before the answer |
//! | `chunky` | five words per chunk every 100 ms (50 words/s) |
//! | `stall` | a 1.5 s pause in the middle of the answer |
//! | `drop` | the connection breaks halfway through |
//! | `slow-headers` | response headers only after 600 ms |
//! | `error` | an error event halfway through a 200 stream |
//! | `no-done` | the stream ends cleanly but without its terminator |
//! | `bad-utf8` | bytes that are not UTF-8 inside an event halfway through |
//! | anything else | one word every 20 ms (50 words/s), after a whitespace-only first delta |
//!
//! Every stream starts with the traps peers fall into: a role-only chunk at once
//! (`openai-chat`), then a whitespace-only delta, then the first real word. The `x-sim-write`
//! header picks how bytes are written: `events` (one write per event, default), `bytes` (one
//! byte per write) or `coalesce` (the whole stream in one write at the end). `x-sim-tier:
//! fallback` (or `"sim_tier": "fallback"` in the body) answers from the fallback model
//! [`FALLBACK_MODEL`]; prompts outside what the model knows get a refusal. Ground truth (the
//! server-side write times of the first byte, first reasoning, first visible word and last
//! byte, and of every chunk) is recorded per request.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use super::api::{Api, Sem};
use super::SimState;

/// How the body bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Events,
    Bytes,
    Coalesce,
}

/// One scheduled event: when (after the headers), what, and its bytes.
#[derive(Debug, Clone)]
pub struct Item {
    pub at: Duration,
    pub sem: Sem,
    pub words: u32,
    pub bytes: Bytes,
}

/// Ground truth of one chat request (seconds since the request was received).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamTruth {
    pub seq: u64,
    pub path: String,
    pub model: String,
    /// The model the request asked for (`model` is the one that answered).
    #[serde(default)]
    pub requested_model: String,
    pub stream: bool,
    pub write_mode: String,
    /// When the handler produced the response head (hyper writes it at once).
    pub headers: f64,
    pub first_byte: Option<f64>,
    /// First token of any kind: reasoning, the whitespace-only delta, or a word.
    pub first_token: Option<f64>,
    pub first_reasoning: Option<f64>,
    pub first_visible: Option<f64>,
    pub terminator: Option<f64>,
    pub last_byte: Option<f64>,
    /// Write time and words of every visible chunk (from the first non-blank one).
    pub visible_chunks: Vec<(f64, u32)>,
    pub visible_words: u32,
    pub reasoning_words: u32,
    pub completed: bool,
    pub answer: String,
    /// Wall-clock time of the request's arrival (seconds since the Unix epoch): every time
    /// above is relative to it; benchmarks align it with the client's own stamps.
    #[serde(default)]
    pub received_unix: f64,
    /// The request's `x-request-id` header, if any (benchmarks match runs by it).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The model that answers when the fallback tier is forced (`x-sim-tier: fallback` or
/// `"sim_tier": "fallback"` in the body).
pub const FALLBACK_MODEL: &str = "sim-fallback-mini";

/// A simulated model's answer for a prompt: the first sentence is right for the golden set.
pub fn answer_for(prompt: &str) -> String {
    answer_with(prompt, false)
}

/// The answer, optionally wrong on multi-step prompts (a candidate that regresses there).
pub fn answer_with(prompt: &str, wrong_multi_step: bool) -> String {
    let p = prompt.to_ascii_lowercase();
    let head = if p.contains("capital of france") {
        "The capital of France is Paris."
    } else if p.contains("capital of japan") {
        "The capital of Japan is Tokyo."
    } else if p.contains("17") && p.contains("3") && (p.contains("times") || p.contains('*')) {
        if wrong_multi_step {
            "17 times 3 plus 9 is 61."
        } else {
            "First, 17 times 3 is 51. Then 51 plus 9 is 60. The answer is 60."
        }
    } else if p.contains("train") && p.contains("km") {
        if wrong_multi_step {
            "The train goes 120 km in 3 hours."
        } else {
            "The train covers 120 km in 2 hours, so its speed is 60 km/h. In 3 hours it covers 180 km."
        }
    } else if p.contains("mercury") {
        "Do you mean the planet or the element? Mercury the planet is closest to the Sun; mercury the element is a liquid metal."
    } else if p.contains("bank") {
        "It depends on the meaning: a river bank is the land beside a river, while a bank is also a financial institution."
    } else if p.contains("klingon") || p.contains("zorblax") {
        "I am not sure I can help with that; it is outside what I know."
    } else if p.contains("json") {
        "{\"answer\": \"ok\", \"confidence\": 0.9}"
    } else {
        "Here is a simulated answer."
    };
    if head.starts_with('{') {
        return head.to_string();
    }
    const FILLER: &[&str] = &[
        "This",
        "reply",
        "continues",
        "with",
        "filler",
        "words",
        "so",
        "that",
        "the",
        "stream",
        "has",
        "enough",
        "chunks",
        "to",
        "measure",
        "its",
        "cadence",
        "and",
        "its",
        "rate",
        "of",
        "tokens",
        "per",
        "second",
    ];
    let mut words: Vec<&str> = head.split(' ').collect();
    let mut i = 0;
    while words.len() < 40 {
        words.push(FILLER[i % FILLER.len()]);
        i += 1;
    }
    words.join(" ")
}

struct Scenario {
    headers_delay: Duration,
    reasoning: Duration,
    first_visible: Duration,
    words_per_chunk: usize,
    chunk_every: Duration,
    stall_at_half: Option<Duration>,
    drop_at_half: bool,
    error_at_half: bool,
    /// The error is the endpoint's rate limit (`throttle` in the model name).
    throttle: bool,
    bad_utf8_at_half: bool,
    terminator: bool,
}

fn scenario(model: &str) -> Scenario {
    scenario_with(model, 1.0)
}

/// A scenario with every time scaled by `factor` (the simulator's profile).
fn scenario_with(model: &str, factor: f64) -> Scenario {
    let mut s = scenario_base(model);
    s.headers_delay = s.headers_delay.mul_f64(factor);
    s.reasoning = s.reasoning.mul_f64(factor);
    s.first_visible = s.first_visible.mul_f64(factor);
    s.chunk_every = s.chunk_every.mul_f64(factor);
    s
}

fn scenario_base(model: &str) -> Scenario {
    let m = model.to_ascii_lowercase();
    let mut s = Scenario {
        headers_delay: Duration::ZERO,
        reasoning: Duration::ZERO,
        first_visible: Duration::from_millis(120),
        words_per_chunk: 1,
        chunk_every: Duration::from_millis(20),
        stall_at_half: None,
        drop_at_half: false,
        error_at_half: false,
        throttle: false,
        bad_utf8_at_half: false,
        terminator: true,
    };
    if m.contains("reasoning") {
        s.reasoning = Duration::from_millis(800);
    }
    if m.contains("chunky") {
        s.words_per_chunk = 5;
        s.chunk_every = Duration::from_millis(100);
    }
    if m.contains("stall") {
        s.stall_at_half = Some(Duration::from_millis(1500));
    }
    if m.contains("drop") {
        s.drop_at_half = true;
    }
    if m.contains("slow-headers") {
        s.headers_delay = Duration::from_millis(600);
    }
    if m.contains("error") {
        s.error_at_half = true;
    }
    if m.contains("throttle") {
        s.error_at_half = true;
        s.throttle = true;
    }
    if m.contains("no-done") {
        s.terminator = false;
    }
    if m.contains("bad-utf8") {
        s.bad_utf8_at_half = true;
    }
    s
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    let mut out = String::new();
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
    Bytes::from(out)
}

/// Renders one semantic event in the API's wire format.
fn render(api: Api, sem: Sem, text: &str, model: &str, words: u32, reasoning_words: u32) -> Bytes {
    match api {
        Api::Gemini
        | Api::GeminiArray
        | Api::Ollama
        | Api::Tgi
        | Api::BedrockConverse
        | Api::InHouse => super::streams::render(api, sem, text, model, words, reasoning_words),
        Api::OpenaiChat => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            match sem {
                Sem::Meta => sse(
                    None,
                    &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                ),
                Sem::Reasoning => sse(
                    None,
                    &chunk(json!({"reasoning_content": text}), Value::Null),
                ),
                Sem::Blank | Sem::Visible => {
                    sse(None, &chunk(json!({"content": text}), Value::Null))
                }
                Sem::Terminator => {
                    let mut b = sse(None, &chunk(json!({}), json!("stop"))).to_vec();
                    b.extend_from_slice(&sse(
                        None,
                        &json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model, "choices": [],
                                "usage": {"prompt_tokens": 12, "completion_tokens": words + reasoning_words,
                                          "completion_tokens_details": {"reasoning_tokens": reasoning_words}}}),
                    ));
                    b.extend_from_slice(b"data: [DONE]\n\n");
                    Bytes::from(b)
                }
                Sem::Error => sse(
                    None,
                    &json!({"error": {"message": "simulated overload", "type": "server_error"}}),
                ),
            }
        }
        Api::OpenaiResponses => match sem {
            Sem::Meta => sse(
                Some("response.created"),
                &json!({"type": "response.created", "response": {"id": "resp_sim", "model": model, "status": "in_progress"}}),
            ),
            Sem::Reasoning => sse(
                Some("response.reasoning_summary_text.delta"),
                &json!({"type": "response.reasoning_summary_text.delta", "delta": text}),
            ),
            Sem::Blank | Sem::Visible => sse(
                Some("response.output_text.delta"),
                &json!({"type": "response.output_text.delta", "delta": text}),
            ),
            Sem::Terminator => sse(
                Some("response.completed"),
                &json!({"type": "response.completed", "response": {"id": "resp_sim", "model": model, "status": "completed",
                        "usage": {"input_tokens": 12, "output_tokens": words + reasoning_words,
                                  "output_tokens_details": {"reasoning_tokens": reasoning_words}}}}),
            ),
            Sem::Error => sse(
                Some("error"),
                &json!({"type": "error", "code": "server_error", "message": "simulated overload"}),
            ),
        },
        Api::AnthropicMessages => match sem {
            Sem::Meta => {
                let mut b = sse(
                    Some("message_start"),
                    &json!({"type": "message_start", "message": {"id": "msg_sim", "type": "message", "role": "assistant",
                            "model": model, "content": [], "usage": {"input_tokens": 12, "output_tokens": 1}}}),
                )
                .to_vec();
                b.extend_from_slice(&sse(Some("ping"), &json!({"type": "ping"})));
                Bytes::from(b)
            }
            Sem::Reasoning => sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": text}}),
            ),
            Sem::Blank | Sem::Visible => sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": text}}),
            ),
            Sem::Terminator => {
                let mut b = sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": 1}),
                )
                .to_vec();
                b.extend_from_slice(&sse(
                    Some("message_delta"),
                    &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": words + reasoning_words}}),
                ));
                b.extend_from_slice(&sse(Some("message_stop"), &json!({"type": "message_stop"})));
                Bytes::from(b)
            }
            Sem::Error => sse(
                Some("error"),
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        },
    }
}

/// Anthropic opens a content block before its deltas.
fn block_start(index: u32, kind: &str) -> Bytes {
    let block = if kind == "thinking" {
        json!({"type": "thinking", "thinking": ""})
    } else {
        json!({"type": "text", "text": ""})
    };
    sse(
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

/// Builds the schedule of one response.
pub fn script(api: Api, model: &str, answer: &str) -> (Duration, Vec<Item>, bool) {
    script_with(api, model, answer, 1.0)
}

/// The schedule with every time scaled by `factor`.
pub fn script_with(
    api: Api,
    model: &str,
    answer: &str,
    factor: f64,
) -> (Duration, Vec<Item>, bool) {
    let sc = scenario_with(model, factor);
    let words: Vec<String> = answer
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect();
    let mut items = Vec::new();
    let mut push = |at: Duration, sem: Sem, words: u32, bytes: Bytes| {
        items.push(Item {
            at,
            sem,
            words,
            bytes,
        })
    };
    push(
        Duration::from_millis(2),
        Sem::Meta,
        0,
        render(api, Sem::Meta, "", model, 0, 0),
    );
    let mut t = Duration::from_millis(20);
    let mut reasoning_words = 0u32;
    if !sc.reasoning.is_zero() {
        if api == Api::AnthropicMessages {
            push(t, Sem::Meta, 0, block_start(0, "thinking"));
        }
        let step = Duration::from_millis(40);
        let mut i = 0;
        while t < sc.reasoning {
            let w = ["Let", " me", " think", " step", " by", " step", "."][i % 7];
            push(
                t,
                Sem::Reasoning,
                1,
                render(api, Sem::Reasoning, w, model, 0, 0),
            );
            reasoning_words += 1;
            t += step;
            i += 1;
        }
        if api == Api::AnthropicMessages {
            push(
                t,
                Sem::Meta,
                0,
                sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": 0}),
                ),
            );
        }
    }
    if api == Api::AnthropicMessages {
        push(t, Sem::Meta, 0, block_start(1, "text"));
    }
    // The whitespace-only delta a renderer would not show, half-way to the first word.
    let first = sc.reasoning + sc.first_visible;
    push(
        sc.reasoning + sc.first_visible / 2,
        Sem::Blank,
        0,
        render(api, Sem::Blank, "\n\n", model, 0, 0),
    );
    let chunks: Vec<String> = words
        .chunks(sc.words_per_chunk)
        .map(|c| c.concat())
        .collect();
    let half = chunks.len() / 2;
    let mut at = first;
    let mut total_words = 0u32;
    let mut broken = false;
    for (i, c) in chunks.iter().enumerate() {
        if i == half {
            if let Some(stall) = sc.stall_at_half {
                at += stall;
            }
            if sc.error_at_half {
                let kind = if sc.throttle { "throttle" } else { "" };
                push(
                    at,
                    Sem::Error,
                    0,
                    render(api, Sem::Error, kind, model, 0, 0),
                );
                return (sc.headers_delay, items, false);
            }
            if sc.bad_utf8_at_half {
                // Bytes that are not UTF-8 inside an event of a 200 stream.
                let bytes = Bytes::from_static(
                    b"data: {\"choices\": [{\"delta\": {\"content\": \"\xff\xfe\xfd\"}}]}\n\n",
                );
                push(at, Sem::Visible, 0, bytes);
                at += sc.chunk_every;
            }
            if sc.drop_at_half {
                broken = true;
                break;
            }
        }
        let n = c.split(' ').filter(|w| !w.is_empty()).count() as u32;
        total_words += n;
        push(
            at,
            Sem::Visible,
            n,
            render(api, Sem::Visible, c, model, 0, 0),
        );
        at += sc.chunk_every;
    }
    if !broken && sc.terminator {
        let end = at - sc.chunk_every + Duration::from_millis(5);
        push(
            end,
            Sem::Terminator,
            0,
            render(
                api,
                Sem::Terminator,
                "",
                model,
                total_words,
                reasoning_words,
            ),
        );
    }
    (sc.headers_delay, items, broken)
}

/// A body that writes its scheduled items on time and records when each was written.
struct ScriptBody {
    received: Instant,
    headers_at: Instant,
    items: VecDeque<Item>,
    mode: WriteMode,
    broken: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes mode: the rest of the current item, one byte per write.
    current: Option<(Item, usize)>,
    yielded_once: bool,
    truth: StreamTruth,
    state: Arc<SimState>,
    recorded: bool,
}

impl ScriptBody {
    fn note(&mut self, sem: Sem, words: u32, now: Instant) {
        let t = (now - self.received).as_secs_f64();
        let tr = &mut self.truth;
        tr.first_byte.get_or_insert(t);
        tr.last_byte = Some(t);
        if matches!(sem, Sem::Reasoning | Sem::Blank | Sem::Visible) {
            tr.first_token.get_or_insert(t);
        }
        match sem {
            Sem::Reasoning => {
                tr.first_reasoning.get_or_insert(t);
                tr.reasoning_words += words;
            }
            Sem::Visible => {
                tr.first_visible.get_or_insert(t);
                tr.visible_words += words;
                tr.visible_chunks.push((t, words));
            }
            Sem::Terminator => tr.terminator = Some(t),
            _ => {}
        }
    }

    fn record(&mut self) {
        if !self.recorded {
            self.recorded = true;
            self.state.record_stream(self.truth.clone());
        }
    }
}

impl Drop for ScriptBody {
    fn drop(&mut self) {
        self.record();
    }
}

impl http_body::Body for ScriptBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // Bytes mode: finish the current item one byte per write, letting hyper flush between.
        if let Some((item, pos)) = this.current.take() {
            if !this.yielded_once {
                this.yielded_once = true;
                this.current = Some((item, pos));
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.yielded_once = false;
            let byte = item.bytes.slice(pos..pos + 1);
            let now = Instant::now();
            if pos + 1 < item.bytes.len() {
                this.truth
                    .first_byte
                    .get_or_insert((now - this.received).as_secs_f64());
                this.current = Some((item, pos + 1));
            } else {
                this.note(item.sem, item.words, now);
            }
            return Poll::Ready(Some(Ok(Frame::data(byte))));
        }
        let due = match (this.mode, this.items.front(), this.items.back()) {
            (_, None, _) => {
                if this.broken {
                    this.record();
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "simulated connection drop",
                    ))));
                }
                this.truth.completed = true;
                this.record();
                return Poll::Ready(None);
            }
            (WriteMode::Coalesce, Some(_), Some(last)) => this.headers_at + last.at,
            (_, Some(first), _) => this.headers_at + first.at,
        };
        if Instant::now() < due {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due.into())));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        this.sleep = None;
        let now = Instant::now();
        match this.mode {
            WriteMode::Coalesce => {
                let items: Vec<Item> = this.items.drain(..).collect();
                let mut all = Vec::new();
                for it in &items {
                    all.extend_from_slice(&it.bytes);
                    this.note(it.sem, it.words, now);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(all)))))
            }
            WriteMode::Events => {
                let Some(it) = this.items.pop_front() else {
                    return Poll::Ready(None);
                };
                this.note(it.sem, it.words, now);
                Poll::Ready(Some(Ok(Frame::data(it.bytes))))
            }
            WriteMode::Bytes => {
                let Some(it) = this.items.pop_front() else {
                    return Poll::Ready(None);
                };
                let byte = it.bytes.slice(0..1);
                this.truth
                    .first_byte
                    .get_or_insert((now - this.received).as_secs_f64());
                if it.bytes.len() > 1 {
                    this.current = Some((it, 1));
                } else {
                    this.note(it.sem, it.words, now);
                }
                Poll::Ready(Some(Ok(Frame::data(byte))))
            }
        }
    }
}

use std::future::Future;

/// Most words a fixed-length answer has.
const MAX_FIXED_WORDS: u64 = 10_000;

/// A fixed answer length asked for: the `x-sim-words` header, or the request's output-token
/// limit when it also says `ignore_eos: true` (as load generators ask vLLM for exact lengths).
fn fixed_words(headers: &HeaderMap, req: &Value) -> Option<usize> {
    let from_header = headers
        .get("x-sim-words")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from_body = || {
        if req.get("ignore_eos").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| req.get(*k).and_then(Value::as_u64))
    };
    from_header
        .or_else(from_body)
        .filter(|n| *n > 0)
        .map(|n| n.min(MAX_FIXED_WORDS) as usize)
}

/// `answer` cut or padded (with filler words) to exactly `n` words.
fn exactly_words(answer: &str, n: usize) -> String {
    const FILLER: &[&str] = &[
        "and", "so", "the", "answer", "goes", "on", "with", "more", "words", "to", "read",
    ];
    let mut words: Vec<&str> = answer.split_whitespace().take(n).collect();
    let mut k = 0;
    while words.len() < n {
        words.push(FILLER[k % FILLER.len()]);
        k += 1;
    }
    words.join(" ")
}

fn prompt_of(api: Api, body: &Value) -> String {
    let msgs = match api {
        Api::OpenaiChat | Api::AnthropicMessages => body.get("messages"),
        Api::OpenaiResponses => body.get("input"),
        _ => return super::streams::prompt_of(body),
    };
    match msgs {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|m| match m.get("content") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(parts)) => Some(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn full_response(api: Api, model: &str, answer: &str, reasoning: bool, words: u32) -> Value {
    let thought = "Let me think step by step.";
    match api {
        Api::OpenaiChat => {
            let mut message = json!({"role": "assistant", "content": answer});
            if reasoning {
                message["reasoning_content"] = json!(thought);
            }
            json!({"id": "chatcmpl-sim", "object": "chat.completion", "model": model,
                   "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 12, "completion_tokens": words}})
        }
        Api::OpenaiResponses => {
            let mut output = vec![];
            if reasoning {
                output.push(json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": thought}]}));
            }
            output.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]}));
            json!({"id": "resp_sim", "object": "response", "model": model, "status": "completed", "output": output,
                   "usage": {"input_tokens": 12, "output_tokens": words}})
        }
        Api::AnthropicMessages => {
            let mut content = vec![];
            if reasoning {
                content.push(json!({"type": "thinking", "thinking": thought}));
            }
            content.push(json!({"type": "text", "text": answer}));
            json!({"id": "msg_sim", "type": "message", "role": "assistant", "model": model, "content": content,
                   "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": words}})
        }
        // The described-stream routes always stream.
        _ => json!({"model": model, "text": answer}),
    }
}

pub(crate) async fn handle(
    api: Api,
    path: &str,
    received: Instant,
    state: Arc<SimState>,
    headers: HeaderMap,
    body: Bytes,
    model_in_path: Option<String>,
) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": format!("body is not JSON: {e}"), "type": "invalid_request_error"}})))
                .into_response()
        }
    };
    let requested = model_in_path
        .as_deref()
        .or_else(|| req.get("model").and_then(Value::as_str))
        .or_else(|| headers.get("x-sim-model").and_then(|v| v.to_str().ok()))
        .unwrap_or("sim-plain");
    if api == Api::OpenaiChat && requested.starts_with("sim-judge") {
        return super::judge::handle(&state, requested, &req);
    }
    // A forced fallback tier answers from a smaller model, whatever was asked for.
    let fallback = headers
        .get("x-sim-tier")
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.get("sim_tier").and_then(Value::as_str))
        == Some("fallback");
    let model = if fallback {
        FALLBACK_MODEL.to_string()
    } else {
        requested.to_string()
    };
    let stream =
        api.always_streams() || req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let mode = match headers.get("x-sim-write").and_then(|v| v.to_str().ok()) {
        Some("bytes") => WriteMode::Bytes,
        Some("coalesce") => WriteMode::Coalesce,
        _ => WriteMode::Events,
    };
    let profile = state.config().profile;
    let mut answer = answer_with(&prompt_of(api, &req), profile.wrong_multi_step());
    // A conversation (an earlier answer or a tool result in the messages) or tools offered:
    // the answer follows the conversation ([`super::judge::conversation_answer`]).
    let msgs = match api {
        Api::OpenaiChat | Api::AnthropicMessages => req.get("messages"),
        Api::OpenaiResponses => req.get("input"),
        _ => None,
    }
    .and_then(Value::as_array);
    if let Some(list) = msgs {
        let multi = list.iter().any(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("assistant") | Some("tool")
            )
        });
        let tools = req.get("tools").is_some_and(|t| !t.is_null());
        if multi || tools {
            match super::judge::conversation_answer(list, tools, profile.forgetful()) {
                Some(Ok(text)) => answer = text,
                Some(Err(call)) if api == Api::OpenaiChat => {
                    return axum::Json(json!({
                        "id": "chatcmpl-sim", "object": "chat.completion", "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 8},
                    }))
                    .into_response();
                }
                _ => {
                    let last_user = list
                        .iter()
                        .rev()
                        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                        .and_then(|m| m.get("content"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    answer = answer_with(last_user, profile.wrong_multi_step());
                }
            }
        }
    }
    if let Some(n) = fixed_words(&headers, &req) {
        answer = exactly_words(&answer, n);
    }
    let (headers_delay, items, broken) =
        script_with(api, &model, &answer, profile.latency_factor());
    let mut truth = StreamTruth {
        path: path.to_string(),
        model: model.clone(),
        requested_model: requested.to_string(),
        stream,
        write_mode: format!("{mode:?}").to_ascii_lowercase(),
        answer: answer.clone(),
        received_unix: super::unix_seconds(received),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect()),
        ..Default::default()
    };
    tokio::time::sleep(headers_delay).await;
    if !stream {
        // Everything is computed before the answer is sent, as a non-streaming server does.
        let last = items.last().map(|i| i.at).unwrap_or_default();
        tokio::time::sleep(last).await;
        if items.iter().any(|i| i.sem == Sem::Error) || broken {
            truth.headers = received.elapsed().as_secs_f64();
            state.record_stream(truth);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({"error": {"message": "simulated overload", "type": "server_error"}}),
                ),
            )
                .into_response();
        }
        let words: u32 = items
            .iter()
            .filter(|i| i.sem == Sem::Visible)
            .map(|i| i.words)
            .sum();
        let payload = full_response(
            api,
            &model,
            &answer,
            scenario(&model).reasoning > Duration::ZERO,
            words,
        );
        let t = received.elapsed().as_secs_f64();
        truth.headers = t;
        truth.first_byte = Some(t);
        truth.first_token = Some(t);
        truth.first_visible = Some(t);
        truth.last_byte = Some(t);
        truth.terminator = Some(t);
        truth.visible_words = words;
        truth.completed = true;
        state.record_stream(truth);
        return axum::Json(payload).into_response();
    }
    let headers_at = Instant::now();
    truth.headers = (headers_at - received).as_secs_f64();
    let body = ScriptBody {
        received,
        headers_at,
        items: items.into(),
        mode,
        broken,
        sleep: None,
        current: None,
        yielded_once: false,
        truth,
        state,
        recorded: false,
    };
    let mut resp = Response::new(Body::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(api.content_type()),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// The POST handler of one API.
pub fn route(api: Api) -> axum::routing::MethodRouter<Arc<SimState>> {
    axum::routing::post(
        move |State(state): State<Arc<SimState>>,
              r: Option<axum::Extension<super::Received>>,
              headers: HeaderMap,
              body: Bytes| async move {
            handle(
                api,
                api.path(),
                super::received(r),
                state,
                headers,
                body,
                None,
            )
            .await
        },
    )
}

/// The described-stream routes ([`super::streams`] renders their events), with the model
/// taken from the URL where the protocol puts it there.
pub fn stream_routes(router: axum::Router<Arc<SimState>>) -> axum::Router<Arc<SimState>> {
    use axum::routing::post;
    router
        .route(
            Api::Gemini.path(),
            post(
                |State(state): State<Arc<SimState>>,
                 axum::extract::Path(call): axum::extract::Path<String>,
                 axum::extract::RawQuery(query): axum::extract::RawQuery,
                 r: Option<axum::Extension<super::Received>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let model = call.split(':').next().unwrap_or("").to_string();
                    let alt_sse = query
                        .as_deref()
                        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
                    let api = if alt_sse {
                        Api::Gemini
                    } else {
                        Api::GeminiArray
                    };
                    let path = format!("/v1beta/models/{call}");
                    handle(
                        api,
                        &path,
                        super::received(r),
                        state,
                        headers,
                        body,
                        Some(model),
                    )
                    .await
                },
            ),
        )
        .route(
            Api::BedrockConverse.path(),
            post(
                |State(state): State<Arc<SimState>>,
                 axum::extract::Path(id): axum::extract::Path<String>,
                 r: Option<axum::Extension<super::Received>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let path = format!("/model/{id}/converse-stream");
                    handle(
                        Api::BedrockConverse,
                        &path,
                        super::received(r),
                        state,
                        headers,
                        body,
                        Some(id),
                    )
                    .await
                },
            ),
        )
        .route(Api::Ollama.path(), plain(Api::Ollama, "/api/chat"))
        .route("/api/generate", plain(Api::Ollama, "/api/generate"))
        .route(Api::Tgi.path(), plain(Api::Tgi, "/generate_stream"))
        .route(Api::InHouse.path(), plain(Api::InHouse, "/inhouse/stream"))
}

fn plain(api: Api, path: &'static str) -> axum::routing::MethodRouter<Arc<SimState>> {
    axum::routing::post(
        move |State(state): State<Arc<SimState>>,
              r: Option<axum::Extension<super::Received>>,
              headers: HeaderMap,
              body: Bytes| async move {
            let resp: Response =
                handle(api, path, super::received(r), state, headers, body, None).await;
            resp
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lengths_come_from_the_header_or_ignore_eos_with_a_token_limit() {
        let mut h = HeaderMap::new();
        assert_eq!(fixed_words(&h, &json!({"max_tokens": 7})), None);
        assert_eq!(
            fixed_words(&h, &json!({"max_tokens": 7, "ignore_eos": true})),
            Some(7)
        );
        assert_eq!(
            fixed_words(&h, &json!({"max_completion_tokens": 9, "ignore_eos": true})),
            Some(9)
        );
        h.insert("x-sim-words", "12".parse().unwrap());
        assert_eq!(fixed_words(&h, &json!({"max_tokens": 7})), Some(12));
        h.insert("x-sim-words", "99999999".parse().unwrap());
        assert_eq!(fixed_words(&h, &json!({})), Some(10_000));
        assert_eq!(exactly_words("one two three", 2), "one two");
        let long = exactly_words("one two", 100);
        assert_eq!(long.split(' ').count(), 100);
        assert!(long.starts_with("one two and so"));
    }

    #[test]
    fn golden_prompts_get_right_answers_padded_to_forty_words() {
        let a = answer_for("What is the capital of France?");
        assert!(a.starts_with("The capital of France is Paris."));
        assert_eq!(a.split(' ').count(), 40);
        assert!(answer_for("Give me JSON").starts_with('{'));
    }

    #[test]
    fn chunky_and_tiny_have_the_same_rate() {
        let answer = answer_for("x");
        let (_, tiny, _) = script(Api::OpenaiChat, "sim-plain", &answer);
        let (_, chunky, _) = script(Api::OpenaiChat, "sim-chunky", &answer);
        let span = |items: &[Item]| {
            let v: Vec<&Item> = items.iter().filter(|i| i.sem == Sem::Visible).collect();
            let words: u32 = v.iter().map(|i| i.words).sum();
            (
                words,
                (v.last().unwrap().at - v.first().unwrap().at).as_secs_f64(),
                v.len(),
            )
        };
        let (wt, st, nt) = span(&tiny);
        let (wc, sc, nc) = span(&chunky);
        assert_eq!(wt, 40);
        assert_eq!(wc, 40);
        assert_eq!(nt, 40);
        assert_eq!(nc, 8);
        // 39 gaps of 20 ms versus 7 gaps of 100 ms: 50 words per second either way.
        assert!(((wt - 1) as f64 / st - 50.0).abs() < 1e-6);
        assert!(((wc - 5) as f64 / sc - 50.0).abs() < 1e-6);
    }

    #[test]
    fn scenarios_shape_the_script() {
        let a = answer_for("x");
        let (_, items, broken) = script(Api::AnthropicMessages, "sim-drop", &a);
        assert!(broken);
        assert!(!items.iter().any(|i| i.sem == Sem::Terminator));
        let (_, items, _) = script(Api::OpenaiResponses, "sim-error", &a);
        assert_eq!(items.last().unwrap().sem, Sem::Error);
        let (_, items, _) = script(Api::OpenaiChat, "sim-reasoning", &a);
        let first_visible = items.iter().find(|i| i.sem == Sem::Visible).unwrap().at;
        assert_eq!(first_visible, Duration::from_millis(920));
        let (h, _, _) = script(Api::OpenaiChat, "sim-slow-headers", &a);
        assert_eq!(h, Duration::from_millis(600));
    }
}
