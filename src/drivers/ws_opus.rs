//! The `ws-opus` driver: a WebSocket that answers a `start` message with Opus audio.
//!
//! Binary messages hold one raw Opus packet each (48 kHz, mono or stereo) or, with
//! `container: ogg`, pieces of an Ogg Opus stream split at any byte. Text messages are JSON
//! events: the transcript, the event that ends the utterance, and `error`. The utterance
//! must end with its `done` event: a socket that closes first is `truncated`.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::voice::{self, Listener};
use super::{ws, RunVars};
use crate::audio::ogg::OggOpusDemuxer;
use crate::audio::opus::OpusStream;
use crate::suite::template::render;
use crate::suite::{Case, Container, Endpoint, VoiceSpec};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder};

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

async fn exchange(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    case: &Case,
    run: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let vars = run.template(case);
    let start = render(&spec.start, &vars).map_err(|m| ProbeError::new(ErrorClass::Request, m))?;
    let mut opus =
        OpusStream::new(spec.sample_rate).map_err(|e| voice::decode_error(e, "decoder"))?;
    let (format, mut ogg) = match spec.container {
        Container::Raw => ("opus", None),
        Container::Ogg => ("ogg-opus", Some(OggOpusDemuxer::new())),
    };
    let mut listener = Listener::new(format, spec.sample_rate, spec.threshold_dbfs);
    let mut ws = ws::connect(endpoint, rec).await?;
    rec.mark(Event::RequestSent);
    ws.send_text(start.to_string()).await?;

    let mut packets = 0u64;
    let mut gain = 1.0f32;
    let mut scaled: Vec<f32> = Vec::new();
    let mut pre_skip_set = false;
    let mut done: Option<Value> = None;
    while let Some(msg) = ws.next().await {
        let (at, msg) = msg?;
        match msg {
            Message::Binary(bytes) => {
                let batch = match ogg.as_mut() {
                    None => vec![bytes.to_vec()],
                    Some(d) => {
                        let out = d
                            .push(&bytes)
                            .map_err(|e| voice::decode_error(e, "Ogg stream"))?;
                        if let (false, Some(h)) = (pre_skip_set, d.head()) {
                            opus.set_pre_skip(h.pre_skip);
                            // The header's output gain is part of what a player plays.
                            gain = 10f32.powf(h.gain_db / 20.0);
                            pre_skip_set = true;
                        }
                        out
                    }
                };
                for p in batch {
                    packets += 1;
                    let pcm = opus
                        .decode(&p)
                        .map_err(|e| voice::decode_error(e, &format!("Opus packet {packets}")))?;
                    if gain == 1.0 {
                        listener.hear(at, pcm, rec)?;
                    } else {
                        scaled.clear();
                        scaled.extend(pcm.iter().map(|x| x * gain));
                        listener.hear(at, &scaled, rec)?;
                    }
                    if packets.is_multiple_of(voice::YIELD_EVERY) {
                        tokio::task::yield_now().await;
                    }
                }
            }
            Message::Text(text) => {
                let v = voice::parse_event(text.as_str())?;
                let kind = v
                    .get("type")
                    .or_else(|| v.get("event"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if kind == spec.transcript_event {
                    if let Some(t) = v.get(&spec.transcript_field).and_then(Value::as_str) {
                        voice::transcript(at, t, rec);
                    }
                } else if kind == spec.done_event {
                    if ogg.as_ref().is_some_and(|d| d.has_partial_page()) {
                        return Err(ProbeError::new(
                            ErrorClass::Truncated,
                            "`done` arrived while an Ogg page was still incomplete",
                        ));
                    }
                    rec.mark_at(at, Event::Terminator);
                    done = Some(v);
                    break;
                } else if kind == "error" {
                    return Err(voice::error_event(&v));
                }
            }
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let why = frame
                    .map(|f| format!(" (close code {}: {})", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(cut_short(
                    &listener,
                    packets,
                    &why,
                    voice::close_class(code),
                ));
            }
            _ => {}
        }
    }
    let Some(doc) = done else {
        return Err(cut_short(&listener, packets, "", ErrorClass::Truncated));
    };
    rec.mark(Event::Done);
    let text = rec.answer().map(str::to_string);
    rec.set_answer(text, Some(doc), None);
    ws.close().await;
    Ok(())
}

fn cut_short(listener: &Listener, packets: u64, why: &str, class: ErrorClass) -> ProbeError {
    let state = if listener.started() {
        format!("mid-utterance, after {packets} audio packet(s)")
    } else {
        "before any audio".to_string()
    };
    ProbeError::new(
        class,
        format!("the socket closed {state} without the `done` event{why}"),
    )
}
