//! The `ws-json-audio` driver: text-to-speech over a WebSocket whose messages are JSON
//! carrying base64 audio (`{"audio": "..."}` then `{"isFinal": true}`; or
//! `{"type": "chunk", "data": "..."}` then `{"type": "done"}`).
//!
//! After the upgrade the clock's origin is taken and the rendered `start` message is sent
//! (as for `ws-opus`; a list of messages is sent in order, for services that want the text
//! and a flush apart). Each text message is one event of the endpoint's `stream:` description:
//! audio at its `audio` paths (in the endpoint's `audio_format`, PCM16 by default), the
//! transcript at its `text` paths, the end at its `terminator`, errors by its `error` rule.
//! A binary message is audio bytes in the same format. A socket that closes before the
//! terminator is `truncated`.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;

use super::stream::StreamSpec;
use super::stream::{Unit, UnitKind};
use super::voice::{self, AudioEvents, AudioIn};
use super::{ws, RunVars};
use crate::audio::stream::Format;
use crate::suite::template::render;
use crate::suite::{Case, Endpoint, VoiceSpec};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder};

pub async fn run(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    desc: &Arc<StreamSpec>,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, spec, Arc::clone(desc), case, vars, rec).await {
        rec.fail(e);
    }
}

async fn exchange(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    desc: Arc<StreamSpec>,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let start = render(&spec.start, &vars.template(case))
        .map_err(|m| ProbeError::new(ErrorClass::Request, m))?;
    let format = spec.media.unwrap_or(Format::Pcm16);
    let mut audio = AudioIn::new(format, spec.media_rate, None, spec.threshold_dbfs)?;
    let mut events = AudioEvents::new(Arc::clone(&desc));
    // A list is several messages, sent in order (e.g. open, text, flush).
    let messages = match start {
        serde_json::Value::Array(list) => list,
        one => vec![one],
    };
    let mut ws = ws::connect(endpoint, rec).await?;
    rec.mark(Event::RequestSent);
    for m in messages {
        ws.send_text(m.to_string()).await?;
    }
    let mut terminated = false;
    while let Some(msg) = ws.next().await {
        let (at, msg) = msg?;
        match msg {
            Message::Text(text) => {
                let unit = Unit {
                    at,
                    event: String::new(),
                    kind: UnitKind::Event,
                    data: text.as_str().to_string(),
                };
                if events.apply(&unit, &mut audio, rec).await? {
                    terminated = true;
                    break;
                }
            }
            Message::Binary(bytes) => audio.feed(at, &bytes, rec).await?,
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                if events.terminator().is_none() && matches!(code, None | Some(1000)) {
                    break;
                }
                let why = frame
                    .map(|f| format!(" (close code {}: {})", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(cut_short(&audio, &events, &why, voice::close_class(code)));
            }
            _ => {}
        }
    }
    let text = rec.answer().map(str::to_string);
    rec.set_answer(text, None, events.usage());
    if !terminated {
        if events.terminator().is_some() {
            return Err(cut_short(&audio, &events, "", ErrorClass::Truncated));
        }
        // A description without a terminator: the clean close ends the answer.
        rec.mark(Event::Terminator);
    }
    audio.finish()?;
    rec.mark(Event::Done);
    ws.close().await;
    Ok(())
}

fn cut_short(audio: &AudioIn, events: &AudioEvents, why: &str, class: ErrorClass) -> ProbeError {
    let state = if audio.started() {
        format!("mid-utterance, after {} message(s)", events.units())
    } else {
        "before any audio".to_string()
    };
    let end = events.terminator().unwrap_or("the end of the answer");
    ProbeError::new(
        class,
        format!("the socket closed {state} without `{end}`{why}"),
    )
}
