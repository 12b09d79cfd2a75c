//! The chat drivers: `openai-chat` (Chat Completions), `openai-responses` (Responses API)
//! and `anthropic-messages` (Messages API), streamed (SSE) or not.
//!
//! The driver builds the request from the case, then feeds every body piece, stamped when
//! it arrived, through the SSE parser and the protocol's event table ([`chat_events`]);
//! every content-bearing piece becomes a `Token` event on the timeline at the instant its
//! bytes completed. A stream without its terminator is `truncated`; an error event inside a
//! 200 stream is `stream_error`. The streaming read loop ([`read_pieces`]) is shared with the
//! described streams (`drivers::stream`) through [`PieceSource`].

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::chat_events::{estimate_tokens, full_body, Interpreter, Piece};
use super::sse::SseParser;
use super::RunVars;
use crate::net::http::{self, HttpRequest};
use crate::suite::{Case, ChatSettings, Endpoint, Protocol};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, TokenKind, Usage};

/// Anthropic's API version header, sent unless the suite sets one.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Default `max_tokens` for Anthropic, which requires it.
pub const ANTHROPIC_MAX_TOKENS: u64 = 1024;

/// Performs one case run, recording everything on `rec`.
pub async fn run(
    endpoint: &Endpoint,
    chat: &ChatSettings,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, chat, case, vars, rec).await {
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
pub fn request_body(
    endpoint: &Endpoint,
    chat: &ChatSettings,
    case: &Case,
) -> Result<Value, ProbeError> {
    let input = &case.input;
    if let Some(Value::Object(b)) = input.get("body") {
        let mut b = b.clone();
        b.entry("stream").or_insert(Value::Bool(chat.stream));
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
            if chat.stream {
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
    body.insert("stream".into(), Value::Bool(chat.stream));
    // The case's or the endpoint's output cap (an endpoint `params` entry still wins).
    let cap = input
        .get("max_tokens")
        .and_then(Value::as_u64)
        .or(chat.max_tokens.map(u64::from));
    if let Some(n) = cap {
        let key = match endpoint.protocol {
            Protocol::OpenaiResponses => "max_output_tokens",
            _ => "max_tokens",
        };
        body.insert(key.into(), json!(n));
    }
    for (k, v) in &chat.params {
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
    chat: &ChatSettings,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let uri: ::http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))?;
    let body = vars.render(&request_body(endpoint, chat, case)?, case)?;
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
            // Audio belongs to the audio protocols; a text stream's description may name it.
            Piece::Audio(_) => {}
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

/// A stream cut into units and read into pieces, one read at a time: the chat protocols'
/// SSE event tables here, the described streams in `drivers::stream`. Every piece carries the
/// arrival of the read that completed its unit.
pub(crate) trait PieceSource: Send {
    /// Feeds one read; pieces of units completed before an error are still appended.
    fn feed(
        &mut self,
        at: std::time::Instant,
        data: &[u8],
        out: &mut Vec<(std::time::Instant, Piece)>,
    ) -> Result<(), ProbeError>;
    /// The body ended cleanly (a framing may hold a last unit without its delimiter).
    fn finish(&mut self, _out: &mut Vec<(std::time::Instant, Piece)>) -> Result<(), ProbeError> {
        Ok(())
    }
    /// Units seen so far.
    fn units(&self) -> usize;
    /// The body stopped inside a unit.
    fn has_partial(&self) -> bool;
    /// The terminator as the user knows it (for a truncated stream's message); `None`: a
    /// clean end of the body completes the stream.
    fn terminator(&self) -> Option<String>;
}

/// The chat protocols: SSE events read by the protocol's event table.
struct ChatSource {
    parser: SseParser,
    interp: Interpreter,
    events: Vec<super::sse::SseEvent>,
    pieces: Vec<Piece>,
    n_events: usize,
    which: &'static str,
}

impl PieceSource for ChatSource {
    fn feed(
        &mut self,
        at: std::time::Instant,
        data: &[u8],
        out: &mut Vec<(std::time::Instant, Piece)>,
    ) -> Result<(), ProbeError> {
        let framed = self.parser.feed(at, data, &mut self.events);
        for ev in self.events.drain(..) {
            self.n_events += 1;
            self.interp.on_event(&ev, &mut self.pieces)?;
            out.extend(self.pieces.drain(..).map(|p| (ev.at, p)));
        }
        framed
    }

    fn units(&self) -> usize {
        self.n_events
    }

    fn has_partial(&self) -> bool {
        self.parser.has_partial()
    }

    fn terminator(&self) -> Option<String> {
        Some(self.which.to_string())
    }
}

async fn stream(
    endpoint: &Endpoint,
    streaming: http::Streaming,
    stop_at_first_visible: bool,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let which = match endpoint.protocol {
        Protocol::OpenaiChat => "data: [DONE]",
        Protocol::OpenaiResponses => "response.completed",
        _ => "message_stop",
    };
    let mut source = ChatSource {
        parser: SseParser::new(usize::try_from(endpoint.max_body).unwrap_or(usize::MAX)),
        interp: Interpreter::new(endpoint.protocol),
        events: Vec::new(),
        pieces: Vec::new(),
        n_events: 0,
        which,
    };
    read_pieces(endpoint, streaming, stop_at_first_visible, rec, &mut source).await
}

/// Reads a stream to its end (or its terminator) through `source`, recording every piece on
/// the timeline at its unit's arrival, and sets the answer.
pub(crate) async fn read_pieces(
    endpoint: &Endpoint,
    streaming: http::Streaming,
    stop_at_first_visible: bool,
    rec: &mut Recorder,
    source: &mut dyn PieceSource,
) -> Result<(), ProbeError> {
    let mut streaming = streaming.stamped();
    // The status and headers are known now; keep them even if the deadline cuts the stream.
    rec.set_response(crate::timeline::Response {
        status: streaming.status,
        headers: streaming.headers.clone(),
        body: Bytes::new(),
    });
    let max = endpoint.max_body;
    let mut summary = Summary::default();
    let mut pieces = Vec::new();
    let mut total: u64 = 0;
    let mut terminated = false;
    let mut stopped = false;
    let mut ended = false;
    let result = loop {
        let chunk = streaming.next_chunk().await;
        let fed = match chunk {
            None => {
                ended = true;
                source.finish(&mut pieces)
            }
            Some(Err(e)) => break Err(e),
            Some(Ok((at, data))) => {
                rec.mark_at(at, Event::Body { bytes: data.len() });
                total += data.len() as u64;
                if total > max {
                    break Err(ProbeError::new(
                        ErrorClass::BodyTooLarge,
                        format!("stream exceeded the {max}-byte cap"),
                    ));
                }
                source.feed(at, &data, &mut pieces)
            }
        };
        let mut failed = None;
        for (at, piece) in pieces.drain(..) {
            match summary.apply(piece, at, rec) {
                Ok(true) => {
                    terminated = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
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
        if let Err(e) = fed {
            break Err(e);
        }
        if ended {
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
    let n_events = source.units();
    let needs_terminator = source.terminator();
    // Without a terminator event, a clean end of a body that stopped between units is the
    // stream's completion.
    let completed_by_end =
        result.is_ok() && !terminated && needs_terminator.is_none() && !source.has_partial();
    if terminated || completed_by_end {
        rec.mark(Event::Done);
    }
    drop(streaming);
    summary.finish(rec);
    if let Err(e) = result {
        // A connection that breaks mid-stream leaves the user a cut-off answer: truncated.
        if e.class == ErrorClass::Reset && n_events > 0 && !terminated {
            let what = match &needs_terminator {
                Some(t) => format!("before the stream's terminator `{t}`"),
                None => "before the end of the stream".to_string(),
            };
            return Err(ProbeError::new(
                ErrorClass::Truncated,
                format!(
                    "the connection broke after {n_events} events, {what} ({})",
                    e.message
                ),
            ));
        }
        return Err(e);
    }
    if !terminated && !completed_by_end {
        let partial = if source.has_partial() {
            " (it stopped inside an event)"
        } else {
            ""
        };
        let what = match &needs_terminator {
            Some(t) => format!("without `{t}`"),
            None => "in the middle of a unit".to_string(),
        };
        return Err(ProbeError::new(
            ErrorClass::Truncated,
            format!("the stream ended after {n_events} events {what}{partial}"),
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
