//! What the chat protocols' events mean, as pure functions: each SSE event (or a whole
//! non-streamed body) becomes [`Piece`]s — reasoning, visible text, tool-call scaffolding,
//! the model, usage, the terminator, or an error. One table per protocol:
//!
//! - `openai-chat`: `choices[].delta.content` is visible (a `refusal` too); a `content` list
//!   of parts has `thinking` parts (reasoning) and `text` parts (visible);
//!   `delta.reasoning_content` / `delta.reasoning` (vLLM, DeepSeek, Together, OpenRouter) are
//!   reasoning, else `delta.reasoning_details[]` (Snowflake; OpenRouter repeats its
//!   `reasoning` there); `delta.tool_calls` is tool scaffolding; a role-only or empty delta
//!   is nothing; `[DONE]` terminates; an `error` object in a data line is a stream error
//!   (after the usage the same chunk carries).
//! - `openai-responses`: `response.output_text.delta` / `response.refusal.delta` visible;
//!   `response.reasoning*` deltas reasoning; `response.function_call_arguments.delta` tool;
//!   `response.completed` / `response.incomplete` terminate; `response.failed` / `error` fail.
//! - `anthropic-messages`: `content_block_start` declares each block's type (`text`,
//!   `thinking`, `redacted_thinking` — itself a reasoning piece with no text — `tool_use`);
//!   `content_block_delta` carries `text_delta`, `thinking_delta`, `input_json_delta`;
//!   `message_stop` terminates; `error` fails.
//!
//! Tool pieces are kept apart here; that they are not tokens is the measures' decision
//! (`measure::is_token`).

use std::collections::HashMap;

use serde_json::Value;

use super::sse::SseEvent;
use crate::suite::Protocol;
use crate::timeline::{ErrorClass, ProbeError, TokenKind};

/// One meaningful part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text {
        kind: TokenKind,
        text: String,
        /// Tokens when the server reported them for this piece.
        tokens: Option<u32>,
    },
    Model(String),
    Usage {
        input: Option<u64>,
        output: Option<u64>,
        reasoning: Option<u64>,
    },
    Finish(String),
    /// Base64 audio an event carried (described audio streams: `http-audio`, `ws-json-audio`).
    Audio(String),
    Terminator,
    Error(String),
}

/// Interprets the events of one stream (keeps the little state some protocols need).
#[derive(Debug)]
pub struct Interpreter {
    protocol: Protocol,
    /// Anthropic: the type of each content block by index.
    blocks: HashMap<u64, TokenKind>,
    /// OpenAI-compatible servers that report cumulative usage on every chunk.
    last_completion_tokens: Option<u64>,
}

impl Interpreter {
    pub fn new(protocol: Protocol) -> Self {
        Interpreter {
            protocol,
            blocks: HashMap::new(),
            last_completion_tokens: None,
        }
    }

    /// Interprets one SSE event. Data that is not JSON is a protocol error.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Piece>) -> Result<(), ProbeError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            // The chat terminator; OpenRouter also ends its Responses streams with it, after
            // `response.completed`: nothing there.
            if self.protocol == Protocol::OpenaiChat {
                out.push(Piece::Terminator);
            }
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        // Most chunks of most servers: read without building a `Value` (same pieces).
        if self.protocol == Protocol::OpenaiChat
            && ev.event != "error"
            && fast::openai_chat(data, out)
        {
            return Ok(());
        }
        let json: Value = serde_json::from_str(data).map_err(|e| {
            let head: String = data.chars().take(80).collect();
            ProbeError::new(
                ErrorClass::Protocol,
                format!("stream event data is not JSON ({e}): {head:?}"),
            )
        })?;
        match self.protocol {
            Protocol::OpenaiChat => self.openai_chat(&ev.event, &json, out),
            Protocol::OpenaiResponses => responses(&ev.event, &json, out),
            Protocol::AnthropicMessages => self.anthropic(&ev.event, &json, out),
            _ => {}
        }
        Ok(())
    }

    fn openai_chat(&mut self, event: &str, j: &Value, out: &mut Vec<Piece>) {
        if event == "error" || j.get("error").is_some_and(|e| !e.is_null()) {
            // OpenRouter reports the run's usage on the very chunk that carries the error.
            if let Some(u) = j.get("usage").filter(|u| u.is_object()) {
                out.push(chat_usage(u));
            }
            out.push(Piece::Error(error_message(j)));
            return;
        }
        if let Some(m) = j.get("model").and_then(Value::as_str) {
            out.push(Piece::Model(m.to_string()));
        }
        // Per-chunk tokens from cumulative usage (vLLM continuous usage stats).
        let mut chunk_tokens = None;
        if let Some(u) = j.get("usage").filter(|u| !u.is_null()) {
            let completion = u.get("completion_tokens").and_then(Value::as_u64);
            if let (Some(c), Some(prev)) = (completion, self.last_completion_tokens) {
                chunk_tokens = u32::try_from(c.saturating_sub(prev)).ok();
            } else if let Some(c) = completion {
                if j.get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty())
                {
                    chunk_tokens = u32::try_from(c).ok();
                }
            }
            self.last_completion_tokens = completion.or(self.last_completion_tokens);
            out.push(chat_usage(u));
        }
        for choice in j
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Only the first choice is what a single-answer UI renders.
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.get("delta").or_else(|| choice.get("message"));
            if let Some(d) = delta {
                chat_delta(d, &mut chunk_tokens, out);
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                out.push(Piece::Finish(f.to_string()));
            }
        }
    }

    fn anthropic(&mut self, event: &str, j: &Value, out: &mut Vec<Piece>) {
        let ty = j.get("type").and_then(Value::as_str).unwrap_or(event);
        match ty {
            "message_start" => {
                if let Some(m) = j.pointer("/message/model").and_then(Value::as_str) {
                    out.push(Piece::Model(m.to_string()));
                }
                if let Some(u) = j.pointer("/message/usage") {
                    out.push(anthropic_usage(u));
                }
            }
            "content_block_start" => {
                let idx = j.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = j.get("content_block");
                let kind = match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("text") => TokenKind::Visible,
                    Some("thinking") | Some("redacted_thinking") => TokenKind::Reasoning,
                    _ => TokenKind::Tool,
                };
                self.blocks.insert(idx, kind);
                if block.and_then(|b| b.get("type")).and_then(Value::as_str)
                    == Some("redacted_thinking")
                {
                    // Encrypted thinking: no text and no deltas, but reasoning the model
                    // produced, so it is a reasoning piece (with no text) when it starts.
                    out.push(text(TokenKind::Reasoning, "", None));
                }
                let initial = block
                    .and_then(|b| b.get("text").or_else(|| b.get("thinking")))
                    .and_then(Value::as_str);
                if let Some(t) = initial.filter(|t| !t.is_empty()) {
                    out.push(text(kind, t, None));
                }
            }
            "content_block_delta" => {
                let idx = j.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(d) = j.get("delta") else { return };
                let (kind, t) = match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => (TokenKind::Visible, d.get("text")),
                    Some("thinking_delta") => (TokenKind::Reasoning, d.get("thinking")),
                    Some("input_json_delta") => (TokenKind::Tool, d.get("partial_json")),
                    Some("signature_delta") => return,
                    _ => (
                        self.blocks.get(&idx).copied().unwrap_or(TokenKind::Tool),
                        d.get("text"),
                    ),
                };
                if let Some(t) = t.and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push(text(kind, t, None));
                }
            }
            "message_delta" => {
                if let Some(r) = j.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(Piece::Finish(r.to_string()));
                }
                if let Some(u) = j.get("usage") {
                    out.push(anthropic_usage(u));
                }
            }
            "message_stop" => out.push(Piece::Terminator),
            "error" => out.push(Piece::Error(error_message(j))),
            _ => {} // ping, content_block_stop
        }
    }
}

/// The pieces of one `openai-chat` delta (or a non-streamed `message`), in the order
/// reasoning, tool, visible. `chunk_tokens` (the server's count for the chunk) goes to the
/// first text piece.
fn chat_delta(d: &Value, chunk_tokens: &mut Option<u32>, out: &mut Vec<Piece>) {
    let non_empty = |key: &str| d.get(key).and_then(Value::as_str).filter(|t| !t.is_empty());
    // Servers that send the reasoning under both names send the same text twice: the first
    // non-empty one is the delta's reasoning.
    if let Some(t) = non_empty("reasoning_content").or_else(|| non_empty("reasoning")) {
        out.push(text(TokenKind::Reasoning, t, chunk_tokens.take()));
    } else if let Some(details) = d.get("reasoning_details").and_then(Value::as_array) {
        // Snowflake Cortex carries reasoning only here; OpenRouter repeats its `reasoning`
        // here too, which is why this is read only when no reasoning string came with it.
        reasoning_details(details, chunk_tokens, out);
    }
    if let Some(calls) = d.get("tool_calls").and_then(Value::as_array) {
        let args: String = calls
            .iter()
            .filter_map(|c| {
                let f = c.get("function")?;
                let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                let a = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                Some(format!("{name}{a}"))
            })
            .collect();
        if !args.is_empty() {
            out.push(text(TokenKind::Tool, &args, chunk_tokens.take()));
        }
    }
    match d.get("content") {
        Some(Value::String(t)) if !t.is_empty() => {
            out.push(text(TokenKind::Visible, t, chunk_tokens.take()));
        }
        // Mistral (magistral) and others: a list of typed parts.
        Some(Value::Array(parts)) => {
            for part in parts {
                content_part(part, chunk_tokens, out);
            }
        }
        _ => {}
    }
    if let Some(t) = non_empty("refusal") {
        out.push(text(TokenKind::Visible, t, chunk_tokens.take()));
    }
}

/// One part of an `openai-chat` content list: `thinking` parts (their `thinking` as a string
/// or a list of text parts) are reasoning, `text` and `refusal` parts visible; any other part
/// (references, tool scaffolding, images) is not text.
fn content_part(part: &Value, chunk_tokens: &mut Option<u32>, out: &mut Vec<Piece>) {
    let str_at = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    match part.get("type").and_then(Value::as_str) {
        Some("thinking") => match part.get("thinking") {
            Some(Value::String(t)) if !t.is_empty() => {
                out.push(text(TokenKind::Reasoning, t, chunk_tokens.take()));
            }
            Some(Value::Array(inner)) => {
                for t in inner.iter().filter_map(|p| str_at(p, "text")) {
                    out.push(text(TokenKind::Reasoning, &t, chunk_tokens.take()));
                }
            }
            _ => {}
        },
        Some("text") => {
            if let Some(t) = str_at(part, "text") {
                out.push(text(TokenKind::Visible, &t, chunk_tokens.take()));
            }
        }
        Some("refusal") => {
            if let Some(t) = str_at(part, "refusal") {
                out.push(text(TokenKind::Visible, &t, chunk_tokens.take()));
            }
        }
        _ => {}
    }
}

/// `delta.reasoning_details[]` (OpenRouter's and Snowflake's shape): `reasoning.text`
/// entries' `text` and `reasoning.summary` entries' `summary` are reasoning. An encrypted
/// entry (`reasoning.encrypted`, non-empty `data`) is reasoning the model produced without
/// its text: a reasoning piece with no text, when the delta has no readable reasoning.
fn reasoning_details(details: &[Value], chunk_tokens: &mut Option<u32>, out: &mut Vec<Piece>) {
    let mut any = false;
    let mut opaque = false;
    for detail in details {
        let ty = detail.get("type").and_then(Value::as_str).unwrap_or("");
        let key = match ty {
            "reasoning.summary" => "summary",
            "reasoning.encrypted" => {
                opaque |= detail
                    .get("data")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty());
                continue;
            }
            _ => "text",
        };
        if let Some(t) = detail
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push(text(TokenKind::Reasoning, t, chunk_tokens.take()));
            any = true;
        }
    }
    if opaque && !any {
        out.push(text(TokenKind::Reasoning, "", chunk_tokens.take()));
    }
}

fn chat_usage(u: &Value) -> Piece {
    Piece::Usage {
        input: u.get("prompt_tokens").and_then(Value::as_u64),
        output: u.get("completion_tokens").and_then(Value::as_u64),
        reasoning: u
            .pointer("/completion_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
    }
}

fn text(kind: TokenKind, t: &str, tokens: Option<u32>) -> Piece {
    Piece::Text {
        kind,
        text: t.to_string(),
        tokens,
    }
}

fn anthropic_usage(u: &Value) -> Piece {
    Piece::Usage {
        input: u.get("input_tokens").and_then(Value::as_u64),
        output: u.get("output_tokens").and_then(Value::as_u64),
        reasoning: None,
    }
}

fn responses(event: &str, j: &Value, out: &mut Vec<Piece>) {
    let ty = j.get("type").and_then(Value::as_str).unwrap_or(event);
    let delta = || {
        j.get("delta")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    match ty {
        "response.output_text.delta" | "response.refusal.delta" => {
            if let Some(t) = delta() {
                out.push(text(TokenKind::Visible, t, None));
            }
        }
        t if t.starts_with("response.reasoning") && t.ends_with(".delta") => {
            if let Some(t) = delta() {
                out.push(text(TokenKind::Reasoning, t, None));
            }
        }
        "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
            if let Some(t) = delta() {
                out.push(text(TokenKind::Tool, t, None));
            }
        }
        "response.created" | "response.in_progress" => {
            if let Some(m) = j.pointer("/response/model").and_then(Value::as_str) {
                out.push(Piece::Model(m.to_string()));
            }
        }
        "response.completed" | "response.incomplete" => {
            if let Some(r) = j.get("response") {
                if let Some(m) = r.get("model").and_then(Value::as_str) {
                    out.push(Piece::Model(m.to_string()));
                }
                if let Some(u) = r.get("usage").filter(|u| !u.is_null()) {
                    out.push(responses_usage(u));
                }
                let reason = if ty == "response.incomplete" {
                    r.pointer("/incomplete_details/reason")
                        .and_then(Value::as_str)
                        .unwrap_or("incomplete")
                } else {
                    "completed"
                };
                out.push(Piece::Finish(reason.to_string()));
            }
            out.push(Piece::Terminator);
        }
        "response.failed" | "error" => {
            if let Some(u) = j.pointer("/response/usage").filter(|u| u.is_object()) {
                out.push(responses_usage(u));
            }
            out.push(Piece::Error(error_message(j)));
        }
        _ => {}
    }
}

fn responses_usage(u: &Value) -> Piece {
    Piece::Usage {
        input: u.get("input_tokens").and_then(Value::as_u64),
        output: u.get("output_tokens").and_then(Value::as_u64),
        reasoning: u
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
    }
}

/// The message of an error object in any of the protocols' shapes.
fn error_message(j: &Value) -> String {
    let e = j
        .get("error")
        .or_else(|| j.pointer("/response/error"))
        .unwrap_or(j);
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    let kind = e
        .get("type")
        .or_else(|| e.get("code"))
        .and_then(Value::as_str);
    let msg: String = msg.chars().take(300).collect();
    match kind {
        Some(k) => format!("{k}: {msg}"),
        None => msg,
    }
}

/// Pieces of a non-streamed response body (everything arrives at completion).
pub fn full_body(protocol: Protocol, j: &Value) -> Vec<Piece> {
    let mut out = Vec::new();
    if j.get("error").is_some_and(|e| !e.is_null())
        || j.get("type").and_then(Value::as_str) == Some("error")
    {
        out.push(Piece::Error(error_message(j)));
        return out;
    }
    if let Some(m) = j.get("model").and_then(Value::as_str) {
        out.push(Piece::Model(m.to_string()));
    }
    match protocol {
        Protocol::OpenaiChat => {
            let mut i = Interpreter::new(protocol);
            i.openai_chat("", j, &mut out);
        }
        Protocol::OpenaiResponses => {
            for item in j
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match item.get("type").and_then(Value::as_str) {
                    Some("reasoning") => {
                        for part in ["summary", "content"] {
                            for c in item
                                .get(part)
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                            {
                                if let Some(t) = c
                                    .get("text")
                                    .and_then(Value::as_str)
                                    .filter(|t| !t.is_empty())
                                {
                                    out.push(text(TokenKind::Reasoning, t, None));
                                }
                            }
                        }
                    }
                    Some("message") => {
                        for c in item
                            .get("content")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let t = c
                                .get("text")
                                .or_else(|| c.get("refusal"))
                                .and_then(Value::as_str);
                            if let Some(t) = t.filter(|t| !t.is_empty()) {
                                out.push(text(TokenKind::Visible, t, None));
                            }
                        }
                    }
                    Some("function_call") => {
                        if let Some(a) = item.get("arguments").and_then(Value::as_str) {
                            out.push(text(TokenKind::Tool, a, None));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(u) = j.get("usage").filter(|u| !u.is_null()) {
                out.push(responses_usage(u));
            }
        }
        Protocol::AnthropicMessages => {
            for block in j
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (kind, t) = match block.get("type").and_then(Value::as_str) {
                    Some("text") => (TokenKind::Visible, block.get("text")),
                    Some("thinking") => (TokenKind::Reasoning, block.get("thinking")),
                    Some("redacted_thinking") => {
                        out.push(text(TokenKind::Reasoning, "", None));
                        continue;
                    }
                    Some("tool_use") => (TokenKind::Tool, block.get("input")),
                    _ => continue,
                };
                let t = match t {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => continue,
                };
                if !t.is_empty() {
                    out.push(text(kind, &t, None));
                }
            }
            if let Some(r) = j.get("stop_reason").and_then(Value::as_str) {
                out.push(Piece::Finish(r.to_string()));
            }
            if let Some(u) = j.get("usage") {
                out.push(anthropic_usage(u));
            }
        }
        _ => {}
    }
    out
}

/// Estimates the tokens of a piece of text the way BPE tokenizers roughly split it: a word
/// of up to 6 characters is one token, longer words one per 5 characters, and each
/// punctuation or symbol character one token. Whitespace joins the following word.
pub fn estimate_tokens(text: &str) -> u32 {
    let mut tokens = 0u32;
    let mut word = 0usize;
    let flush = |word: &mut usize, tokens: &mut u32| {
        if *word > 0 {
            *tokens += if *word <= 6 {
                1
            } else {
                (*word).div_ceil(5) as u32
            };
            *word = 0;
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word += 1;
        } else {
            flush(&mut word, &mut tokens);
            if !c.is_whitespace() {
                tokens += 1;
            }
        }
    }
    flush(&mut word, &mut tokens);
    if tokens == 0 && !text.is_empty() {
        1
    } else {
        tokens
    }
}

mod fast;
#[cfg(test)]
mod tests;
