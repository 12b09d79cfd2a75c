//! The `http-audio` driver: text-to-speech over HTTP (OpenAI's `/v1/audio/speech` and most
//! TTS vendors).
//!
//! The request is the case's `input.body` (rendered as for `http-json`). The answer is read
//! one of two ways, decided by the response:
//!
//! - **Audio body**: a (chunked) body of PCM16, G.711, WAV, Ogg Opus or MP3, the format from
//!   the endpoint's `audio_format`, else from the response's `Content-Type`
//!   (`audio/pcm;rate=24000`, `audio/wav`, `audio/ogg`, `audio/mpeg`, ...). Every body piece
//!   is decoded as it arrives and stamped with the arrival of the read that delivered it. The
//!   clean end of the body completes the answer.
//! - **Audio events**: a body that is not audio, read through the endpoint's `stream:`
//!   description (SSE or NDJSON framing, base64 audio at its `audio` paths, transcript at its
//!   `text` paths, terminator, error rule), e.g. OpenAI's `stream_format: sse`.

use bytes::Bytes;

use super::stream::{Framer, Unit};
use super::voice::{AudioEvents, AudioIn};
use super::RunVars;
use crate::audio::stream::{from_content_type, Format};
use crate::net::http::{self, HttpRequest};
use crate::suite::{Case, Endpoint, VoiceSpec};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, Response};

pub async fn run(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, spec, case, vars, rec).await {
        rec.fail(e);
    }
}

async fn exchange(
    endpoint: &Endpoint,
    spec: &VoiceSpec,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let uri: ::http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))?;
    let body = match case.input.get("body") {
        Some(b) => Some(Bytes::from(
            serde_json::to_vec(&vars.render(b, case)?).map_err(|e| {
                ProbeError::new(
                    ErrorClass::Request,
                    format!("cannot encode input.body: {e}"),
                )
            })?,
        )),
        None => None,
    };
    let accept = match endpoint.stream_spec() {
        Some(s) => s.framing.accept(),
        None => "audio/*",
    };
    let req = HttpRequest {
        method: endpoint.method.clone(),
        uri: &uri,
        headers: &endpoint.headers,
        content_type: body.as_ref().map(|_| "application/json"),
        body,
        accept,
        tls: endpoint.tls.as_ref(),
        net: Some(&endpoint.net),
    };
    let streaming = http::send(req, rec).await?;
    if !(200..300).contains(&streaming.status) {
        let resp = match streaming.read_all(endpoint.max_body, rec).await {
            Ok(r) | Err((_, r)) => r,
        };
        let e = http::status_error(&resp);
        rec.set_response(resp);
        return Err(e);
    }
    let ct = streaming
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let from_ct = from_content_type(&ct);
    // Audio in the body when the response says so (or the endpoint describes no events);
    // otherwise events through the description.
    let events = match (endpoint.stream_spec(), from_ct) {
        (Some(s), None) => Some(s.clone()),
        _ => None,
    };
    // `audio_format` names the events' audio when the endpoint describes events (a raw body
    // is then read by its Content-Type), else the body's, over its Content-Type.
    let described = endpoint.stream_spec().is_some();
    let (format, rate, channels) = match (&events, from_ct, spec.media) {
        (Some(_), _, m) => (m.unwrap_or(Format::Pcm16), spec.media_rate, None),
        (None, Some((f, r, c)), m) => (
            if described { f } else { m.unwrap_or(f) },
            spec.media_rate.or(r),
            c,
        ),
        (None, None, Some(m)) => (m, spec.media_rate, None),
        (None, None, None) => {
            let shown = if ct.is_empty() { "none" } else { ct.as_str() };
            return Err(ProbeError::new(
                ErrorClass::Decode,
                format!(
                    "the response's Content-Type ({shown}) names no audio format canary decodes; set the endpoint's `audio_format`, or describe the events that carry the audio (`stream:`)"
                ),
            ));
        }
    };
    let mut audio = AudioIn::new(format, rate, channels, spec.threshold_dbfs)?;
    let mut body = streaming.stamped();
    rec.set_response(Response {
        status: body.status,
        headers: body.headers.clone(),
        body: Bytes::new(),
    });
    let mut framer = events.as_ref().map(|s| {
        Framer::new(
            s.framing,
            usize::try_from(endpoint.max_body).unwrap_or(usize::MAX),
        )
    });
    let mut handler = events.map(AudioEvents::new);
    let mut units: Vec<Unit> = Vec::new();
    let mut total: u64 = 0;
    let mut terminated = false;
    let result: Result<(), ProbeError> = async {
        loop {
            let Some(piece) = body.next_chunk().await else {
                break;
            };
            let (at, data) = piece?;
            rec.mark_at(at, Event::Body { bytes: data.len() });
            total += data.len() as u64;
            if total > endpoint.max_body {
                return Err(ProbeError::new(
                    ErrorClass::BodyTooLarge,
                    format!("the audio exceeded the {}-byte cap", endpoint.max_body),
                ));
            }
            match (framer.as_mut(), handler.as_mut()) {
                (Some(f), Some(h)) => {
                    let framed = f.feed(at, &data, &mut units);
                    for u in units.drain(..) {
                        if h.apply(&u, &mut audio, rec).await? {
                            terminated = true;
                            break;
                        }
                    }
                    framed?;
                    if terminated {
                        return Ok(());
                    }
                }
                _ => audio.feed(at, &data, rec).await?,
            }
        }
        if let (Some(f), Some(h)) = (framer.as_mut(), handler.as_mut()) {
            f.finish(&mut units)?;
            for u in units.drain(..) {
                if h.apply(&u, &mut audio, rec).await? {
                    terminated = true;
                    break;
                }
            }
        }
        Ok(())
    }
    .await;
    drop(body);
    let usage = handler.as_ref().and_then(AudioEvents::usage);
    let text = rec.answer().map(str::to_string);
    rec.set_answer(text, None, usage);
    if let Err(e) = result {
        if e.class == ErrorClass::Reset && (audio.started() || total > 0) {
            return Err(ProbeError::new(
                ErrorClass::Truncated,
                format!(
                    "the connection broke after {} piece(s) of audio ({})",
                    audio.pieces(),
                    e.message
                ),
            ));
        }
        return Err(e);
    }
    match &handler {
        Some(h) if !terminated => {
            if let Some(t) = h.terminator() {
                let partial = if framer.as_ref().is_some_and(Framer::has_partial) {
                    " (it stopped inside an event)"
                } else {
                    ""
                };
                return Err(ProbeError::new(
                    ErrorClass::Truncated,
                    format!(
                        "the stream ended after {} events without `{t}`{partial}",
                        h.units()
                    ),
                ));
            }
        }
        _ => {}
    }
    audio.finish()?;
    if !terminated {
        rec.mark(Event::Terminator);
    }
    rec.mark(Event::Done);
    Ok(())
}
