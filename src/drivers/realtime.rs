//! The `realtime` driver: OpenAI-Realtime-style sessions over a WebSocket.
//!
//! Client events: `session.update` (the endpoint's `session`, unless `false`), then the
//! case's input, either text (`conversation.item.create` with `input_text`) or a WAV file
//! (`input_audio_buffer.append` in 100 ms chunks, then `input_audio_buffer.commit`), then
//! `response.create`, the moment the clock's origin is taken. Server events are read under
//! both their GA and beta names: audio deltas (base64 PCM16 24 kHz or G.711 8 kHz),
//! transcript deltas, `response.done` (its `status` decides success) and `error`.

use base64::Engine as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::voice::{self, Listener};
use super::ws::{self, Ws};
use super::RunVars;
use crate::audio::{g711, pcm::Pcm16, AudioError};
use crate::suite::template::render;
use crate::suite::{AudioFormat, Case, Endpoint, VoiceSpec};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, Usage};

/// Lowest and highest PCM rate a session may announce.
pub const PCM_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

const AUDIO_DELTA: &[&str] = &["response.output_audio.delta", "response.audio.delta"];
const TEXT_DELTA: &[&str] = &[
    "response.output_audio_transcript.delta",
    "response.audio_transcript.delta",
    "response.output_text.delta",
    "response.text.delta",
];

pub async fn run(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    case: &Case,
    run: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, spec, case, run, rec).await {
        rec.fail(e);
    }
}

fn request_err(m: impl AsRef<str>) -> ProbeError {
    ProbeError::new(ErrorClass::Request, m)
}

async fn exchange(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    case: &Case,
    run: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let vars = run.template(case);
    let session = match &spec.session {
        Some(s) => Some(render(s, &vars).map_err(request_err)?),
        None => None,
    };
    // The file is read off the runtime's threads: a slow disk must not stall other probes.
    let input_audio = match case.input.get("audio").and_then(Value::as_str) {
        Some(path) => {
            let (path, format) = (path.to_string(), spec.audio_format);
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::audio::input::read_input(&path, format)
                        .map_err(|e| request_err(e.to_string()))
                })
                .await
                .map_err(|e| request_err(format!("reading the input audio failed: {e}")))??,
            )
        }
        None => None,
    };
    let text = case
        .input
        .get("text")
        .or_else(|| case.input.get("prompt"))
        .and_then(Value::as_str);
    if input_audio.is_none() && text.is_none() {
        return Err(request_err(
            "a realtime case needs `input.text` or `input.audio` (a WAV file)",
        ));
    }

    let mut ws = ws::connect(endpoint, rec).await?;
    if let Some(s) = session {
        send(&mut ws, json!({"type": "session.update", "session": s})).await?;
    }
    if let Some(chunks) = input_audio {
        for c in chunks {
            send(
                &mut ws,
                json!({"type": "input_audio_buffer.append", "audio": c}),
            )
            .await?;
        }
        send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await?;
    }
    if let Some(t) = text {
        send(
            &mut ws,
            json!({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": t}]}}),
        )
        .await?;
    }
    rec.mark(Event::RequestSent);
    send(&mut ws, json!({"type": "response.create"})).await?;

    let format = spec.audio_format;
    let mut listener = Listener::new(format.as_str(), format.rate(), spec.threshold_dbfs);
    let mut pcm = Pcm16::default();
    let mut samples = Vec::new();
    let mut deltas = 0u64;
    let mut done: Option<Value> = None;
    while let Some(msg) = ws.next().await {
        let (at, msg) = msg?;
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let why = frame
                    .map(|f| format!(" (close code {}: {})", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(cut_short(deltas, &why, voice::close_class(code)));
            }
            _ => continue,
        };
        let v = voice::parse_event(text.as_str())?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if AUDIO_DELTA.contains(&kind) {
            deltas += 1;
            let b64 = v.get("delta").and_then(Value::as_str).unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    ProbeError::new(
                        ErrorClass::Decode,
                        format!("audio delta {deltas} is not base64: {e}"),
                    )
                })?;
            match format {
                AudioFormat::Pcm16 => pcm.decode(&bytes, &mut samples),
                AudioFormat::Pcmu => g711::decode(&bytes, false, &mut samples),
                AudioFormat::Pcma => g711::decode(&bytes, true, &mut samples),
            }
            listener.hear(at, &samples, rec)?;
            if deltas.is_multiple_of(voice::YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        } else if TEXT_DELTA.contains(&kind) {
            if let Some(t) = v.get("delta").and_then(Value::as_str) {
                voice::transcript(at, t, rec);
            }
        } else if kind == "response.done" {
            let resp = v.get("response").cloned().unwrap_or(Value::Null);
            let status = resp
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("completed");
            if status != "completed" {
                let details = resp
                    .get("status_details")
                    .map(Value::to_string)
                    .unwrap_or_default();
                return Err(ProbeError::new(
                    ErrorClass::StreamError,
                    format!("response.done with status `{status}` {details}"),
                ));
            }
            rec.mark_at(at, Event::Terminator);
            done = Some(resp);
            break;
        } else if kind == "error" {
            return Err(voice::error_event(&v));
        } else if kind == "session.created" || kind == "session.updated" {
            if let Some(rate) = announced_rate(&v, format) {
                if !PCM_RATES.contains(&rate) {
                    return Err(voice::decode_error(
                        AudioError::Unsupported(format!(
                            "the session announced {rate} Hz audio (supported: 8000 to 48000 Hz)"
                        )),
                        kind,
                    ));
                }
                listener.set_rate(rate)?;
            }
        }
    }
    let Some(doc) = done else {
        return Err(cut_short(deltas, "", ErrorClass::Truncated));
    };
    rec.mark(Event::Done);
    let usage = doc.get("usage").map(|u| Usage {
        input_tokens: u.get("input_tokens").and_then(Value::as_u64),
        output_tokens: u.get("output_tokens").and_then(Value::as_u64),
        reasoning_tokens: None,
        estimated: false,
    });
    let text = rec.answer().map(str::to_string);
    rec.set_answer(text, Some(doc), usage);
    ws.close().await;
    Ok(())
}

async fn send(ws: &mut Ws, v: Value) -> Result<(), ProbeError> {
    ws.send_text(v.to_string()).await
}

/// The output rate a `session.created` / `session.updated` announces for PCM, if any.
fn announced_rate(v: &Value, format: AudioFormat) -> Option<u32> {
    if format != AudioFormat::Pcm16 {
        return None;
    }
    let f = v.pointer("/session/audio/output/format")?;
    let rate = f.get("rate")?.as_u64()?;
    Some(u32::try_from(rate).unwrap_or(u32::MAX))
}

fn cut_short(deltas: u64, why: &str, class: ErrorClass) -> ProbeError {
    let state = if deltas > 0 {
        format!("mid-utterance, after {deltas} audio delta(s)")
    } else {
        "before any audio".to_string()
    };
    ProbeError::new(
        class,
        format!("the socket closed {state} without `response.done`{why}"),
    )
}
