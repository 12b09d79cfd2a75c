//! The chat drivers: `openai-chat` (Chat Completions), `openai-responses` (Responses API)
//! and `anthropic-messages` (Messages API), streamed (SSE) or not.
//!
//! The driver builds the request from the case, then feeds every body piece, stamped when
//! it arrived, through the SSE parser and the protocol's event table ([`chat_events`]);
//! every content-bearing piece becomes a `Token` event on the timeline at the instant its
//! bytes completed. A stream without its terminator is `truncated`; an error event inside a
//! 200 stream is `stream_error`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat_events::{estimate_tokens, full_body, Interpreter, Piece};
use super::http::{self, HttpRequest};
use super::sse::SseParser;
use super::RunVars;
use crate::suite::{Case, Endpoint, Protocol};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, TokenKind, Usage};

/// Anthropic's API version header, sent unless the suite sets one.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Default `max_tokens` for Anthropic, which requires it.
pub const ANTHROPIC_MAX_TOKENS: u64 = 1024;

/// Performs one case run, recording everything on `rec`.
pub async fn run(endpoint: &Endpoint, case: &Case, vars: RunVars, rec: &mut Recorder) {
    if let Err(e) = exchange(endpoint, case, vars, rec).await {
        rec.fail(e);
    }
}

/// The messages of a case: `input.messages`, or one user message from `input.text` / `input.prompt`.
pub fn messages(input: &Value) -> Option<Value> {
    if let Some(m) = input.get("messages").filter(|m| m.is_array()) {
        return Some(m.clone());
    }
    let text = input
        .get("text")
        .or_else(|| input.get("prompt"))
        .and_then(Value::as_str)?;
    Some(json!([{"role": "user", "content": text}]))
}

/// The request body for a case. `input.body` is sent as given (with `stream` added when
/// absent); otherwise it is built from `input.messages` (or `text`), the model, the
/// endpoint's `params` and the case's `input.params`.
pub fn request_body(endpoint: &Endpoint, case: &Case) -> Result<Value, ProbeError> {
    let input = &case.input;
    if let Some(Value::Object(b)) = input.get("body") {
        let mut b = b.clone();
        b.entry("stream").or_insert(Value::Bool(endpoint.stream));
        return Ok(Value::Object(b));
    }
    let msgs = messages(input).ok_or_else(|| {
        ProbeError::new(
            ErrorClass::Request,
            "the case has no `input.messages`, `input.text` or `input.body`",
        )
    })?;
    let model = input
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| endpoint.model.clone());
    let mut body = Map::new();
    if let Some(m) = model {
        body.insert("model".into(), Value::String(m));
    }
    match endpoint.protocol {
        Protocol::OpenaiChat => {
            body.insert("messages".into(), msgs);
            if endpoint.stream {
                body.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        Protocol::OpenaiResponses => {
            body.insert("input".into(), msgs);
        }
        Protocol::AnthropicMessages => {
            // Anthropic takes the system prompt apart from the messages.
            let mut list = msgs.as_array().cloned().unwrap_or_default();
            let mut system = Vec::new();
            list.retain(|m| {
                if m.get("role").and_then(Value::as_str) == Some("system") {
                    if let Some(c) = m.get("content").and_then(Value::as_str) {
                        system.push(c.to_string());
                    }
                    false
                } else {
                    true
                }
            });
            if let Some(s) = input.get("system").and_then(Value::as_str) {
                system.insert(0, s.to_string());
            }
            if !system.is_empty() {
                body.insert("system".into(), Value::String(system.join("\n\n")));
            }
            body.insert("messages".into(), Value::Array(list));
            body.insert("max_tokens".into(), json!(ANTHROPIC_MAX_TOKENS));
        }
        _ => {}
    }
    body.insert("stream".into(), Value::Bool(endpoint.stream));
    // The case's or the endpoint's output cap (an endpoint `params` entry still wins).
    let cap = input
        .get("max_tokens")
        .and_then(Value::as_u64)
        .or(endpoint.max_tokens.map(u64::from));
    if let Some(n) = cap {
        let key = match endpoint.protocol {
            Protocol::OpenaiResponses => "max_output_tokens",
            _ => "max_tokens",
        };
        body.insert(key.into(), json!(n));
    }
    for (k, v) in &endpoint.params {
        body.insert(k.clone(), v.clone());
    }
    if let Some(Value::Object(p)) = input.get("params") {
        for (k, v) in p {
            body.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

async fn exchange(
    endpoint: &Endpoint,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let uri: ::http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))?;
    let body = vars.render(&request_body(endpoint, case)?, case)?;
    let wants_stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| {
        ProbeError::new(
            ErrorClass::Request,
            format!("cannot encode the request: {e}"),
        )
    })?);
    let mut headers = endpoint.headers.clone();
    if endpoint.protocol == Protocol::AnthropicMessages
        && !headers
            .iter()
            .any(|(n, _)| n.as_str() == "anthropic-version")
    {
        headers.push((
            ::http::HeaderName::from_static("anthropic-version"),
            ::http::HeaderValue::from_static(ANTHROPIC_VERSION),
        ));
    }
    let req = HttpRequest {
        method: endpoint.method.clone(),
        uri: &uri,
        headers: &headers,
        body: Some(bytes),
        content_type: Some("application/json"),
        accept: if wants_stream {
            "text/event-stream"
        } else {
            "application/json"
        },
        tls: endpoint.tls.as_ref(),
        net: Some(&endpoint.net),
    };
    let streaming = http::send(req, rec).await?;
    let status = streaming.status;
    let is_sse = streaming.headers.iter().any(|(n, v)| {
        n == "content-type"
            && v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
    });
    if !(200..300).contains(&status) {
        let resp = match streaming.read_all(endpoint.max_body, rec).await {
            Ok(r) | Err((_, r)) => r,
        };
        let e = http::status_error(&resp);
        rec.set_response(resp);
        return Err(e);
    }
    if is_sse {
        stream(endpoint, streaming, vars.stop_early, rec).await
    } else {
        whole(endpoint, streaming, rec).await
    }
}

/// What a stream told us besides its text.
#[derive(Default)]
struct Summary {
    model: Option<String>,
    finish: Option<String>,
    input: Option<u64>,
    output: Option<u64>,
    reasoning: Option<u64>,
    counted_output: u64,
    counted_reasoning: u64,
    reasoning_text: String,
}

impl Summary {
    fn apply(
        &mut self,
        piece: Piece,
        at: std::time::Instant,
        rec: &mut Recorder,
    ) -> Result<bool, ProbeError> {
        match piece {
            Piece::Text { kind, text, tokens } => {
                let tokens = tokens.unwrap_or_else(|| estimate_tokens(&text));
                let shows = kind == TokenKind::Visible && text.chars().any(|c| !c.is_whitespace());
                rec.mark_at(
                    at,
                    Event::Token {
                        kind,
                        tokens,
                        shows,
                    },
                );
                match kind {
                    TokenKind::Visible => {
                        rec.push_answer(&text);
                        self.counted_output += u64::from(tokens);
                    }
                    TokenKind::Reasoning => {
                        if self.reasoning_text.len() < 4096 {
                            self.reasoning_text.push_str(&text);
                        }
                        self.counted_reasoning += u64::from(tokens);
                    }
                    TokenKind::Tool => self.counted_output += u64::from(tokens),
                }
            }
            Piece::Model(m) => {
                self.model.get_or_insert(m);
            }
            Piece::Usage {
                input,
                output,
                reasoning,
            } => {
                self.input = input.or(self.input);
                self.output = output.or(self.output);
                self.reasoning = reasoning.or(self.reasoning);
            }
            Piece::Finish(f) => self.finish = Some(f),
            Piece::Terminator => {
                rec.mark_at(at, Event::Terminator);
                return Ok(true);
            }
            Piece::Error(msg) => return Err(ProbeError::new(ErrorClass::StreamError, msg)),
        }
        Ok(false)
    }

    fn finish(self, rec: &mut Recorder) {
        self.finish_with(rec, None);
    }

    /// Sets the run's answer document: the same shape streamed or not (`model`, `text`,
    /// `reasoning`, `finish_reason`, `usage`), with the provider's own body under `raw` when
    /// the answer was not streamed.
    fn finish_with(self, rec: &mut Recorder, raw: Option<Value>) {
        let estimated = self.output.is_none();
        let usage = Usage {
            input_tokens: self.input,
            output_tokens: Some(
                self.output
                    .unwrap_or(self.counted_output + self.counted_reasoning),
            ),
            reasoning_tokens: self
                .reasoning
                .or((self.counted_reasoning > 0).then_some(self.counted_reasoning)),
            estimated,
        };
        let text = rec_answer(rec);
        let mut doc = json!({
            "model": self.model,
            "text": text,
            "reasoning": self.reasoning_text,
            "finish_reason": self.finish,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "estimated": usage.estimated,
            },
        });
        if let (Some(raw), Some(obj)) = (raw, doc.as_object_mut()) {
            obj.insert("raw".into(), raw);
        }
        rec.set_answer(None, Some(doc), Some(usage));
    }
}

fn rec_answer(rec: &Recorder) -> String {
    rec.answer().unwrap_or_default().to_string()
}

async fn stream(
    endpoint: &Endpoint,
    streaming: http::Streaming,
    stop_at_first_visible: bool,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let mut streaming = streaming.stamped();
    // The status and headers are known now; keep them even if the deadline cuts the stream.
    rec.set_response(crate::timeline::Response {
        status: streaming.status,
        headers: streaming.headers.clone(),
        body: Bytes::new(),
    });
    let max = endpoint.max_body;
    let mut parser = SseParser::new(usize::try_from(max).unwrap_or(usize::MAX));
    let mut interp = Interpreter::new(endpoint.protocol);
    let mut summary = Summary::default();
    let mut events = Vec::new();
    let mut pieces = Vec::new();
    let mut total: u64 = 0;
    let mut terminated = false;
    let mut stopped = false;
    let mut n_events = 0usize;
    let result = loop {
        let Some(chunk) = streaming.next_chunk().await else {
            break Ok(());
        };
        let (at, data) = match chunk {
            Ok(c) => c,
            Err(e) => break Err(e),
        };
        rec.mark_at(at, Event::Body { bytes: data.len() });
        total += data.len() as u64;
        if total > max {
            break Err(ProbeError::new(
                ErrorClass::BodyTooLarge,
                format!("stream exceeded the {max}-byte cap"),
            ));
        }
        if let Err(e) = parser.feed(at, &data, &mut events) {
            break Err(e);
        }
        let mut failed = None;
        for ev in events.drain(..) {
            n_events += 1;
            if let Err(e) = interp.on_event(&ev, &mut pieces) {
                failed = Some(e);
                break;
            }
            for piece in pieces.drain(..) {
                match summary.apply(piece, ev.at, rec) {
                    Ok(true) => terminated = true,
                    Ok(false) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_some() || terminated {
                break;
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if terminated {
            // The answer is complete: what the server does with the connection afterwards
            // (keep-alive comments, a reset, trailing bytes) is not the user's wait.
            break Ok(());
        }
        if stop_at_first_visible
            && rec
                .last_at(|e| {
                    matches!(
                        e,
                        Event::Token {
                            kind: TokenKind::Visible,
                            shows: true,
                            ..
                        }
                    )
                })
                .is_some()
        {
            // A latency-only probe has what it came for; the rest of the answer would only
            // cost tokens.
            stopped = true;
            break Ok(());
        }
    };
    if stopped {
        rec.stop_early();
        drop(streaming);
        summary.finish(rec);
        return Ok(());
    }
    if terminated {
        rec.mark(Event::Done);
    }
    drop(streaming);
    summary.finish(rec);
    if let Err(e) = result {
        // A connection that breaks mid-stream leaves the user a cut-off answer: truncated.
        if e.class == ErrorClass::Reset && n_events > 0 && !terminated {
            return Err(ProbeError::new(
                ErrorClass::Truncated,
                format!("the connection broke after {n_events} events, before the stream's terminator ({})", e.message),
            ));
        }
        return Err(e);
    }
    if !terminated {
        let partial = if parser.has_partial() {
            " (it stopped inside an event)"
        } else {
            ""
        };
        let which = match endpoint.protocol {
            Protocol::OpenaiChat => "data: [DONE]",
            Protocol::OpenaiResponses => "response.completed",
            _ => "message_stop",
        };
        return Err(ProbeError::new(
            ErrorClass::Truncated,
            format!("the stream ended after {n_events} events without `{which}`{partial}"),
        ));
    }
    Ok(())
}

async fn whole(
    endpoint: &Endpoint,
    streaming: http::Streaming,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let resp = match streaming.read_all(endpoint.max_body, rec).await {
        Ok(r) => r,
        Err((e, partial)) => {
            rec.set_response(partial);
            return Err(e);
        }
    };
    let json: Value = match serde_json::from_slice(&resp.body) {
        Ok(j) => j,
        Err(e) => {
            rec.set_response(resp);
            return Err(ProbeError::new(
                ErrorClass::InvalidJson,
                format!("response body is not JSON ({e})"),
            ));
        }
    };
    // Everything arrived with the end of the body: the first visible token is the completion.
    let done = rec
        .last_at(|e| matches!(e, Event::Done))
        .unwrap_or_else(|| rec.now());
    let mut summary = Summary::default();
    let mut err = None;
    for piece in full_body(endpoint.protocol, &json) {
        if let Err(e) = summary.apply_at(piece, done, rec) {
            err = Some(e);
            break;
        }
    }
    rec.set_response(resp);
    summary.finish_with(rec, Some(json));
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Summary {
    fn apply_at(
        &mut self,
        piece: Piece,
        at: std::time::Duration,
        rec: &mut Recorder,
    ) -> Result<bool, ProbeError> {
        let instant = rec.instant_of(at);
        self.apply(piece, instant, rec)
    }
}
