//! Simulated text-to-speech endpoints with recorded ground truth.
//!
//! - `POST /v1/audio/speech` (OpenAI's shape): `{"input", "response_format": "pcm" | "wav" |
//!   "opus" | "mp3", "stream_format": "audio" | "sse"}`. `audio`: a chunked body of raw PCM16
//!   (24 kHz, `audio/pcm;rate=24000`), WAV (a header, then PCM16), Ogg Opus (48 kHz, one page
//!   per packet) or MP3 (a committed fixture, `fixtures/`); `sse`: `speech.audio.delta`
//!   events with the same bytes in base64, then `speech.audio.done`.
//! - `GET /v1/tts/ws` (WebSocket): a start message `{"text", "format", "sim"}`, then JSON
//!   messages with base64 audio: `style=isfinal` (`{"audio": ...}`, the transcript as `text`
//!   on the first audible one, then `{"isFinal": true}`) or `style=typed`
//!   (`{"type": "chunk", "data": ...}`, `{"type": "transcript"}`, then `{"type": "done"}`)
//!   or `style=binary` (binary messages of raw audio, `{"type": "transcript"}`, then
//!   `{"type": "Flushed"}`, as Deepgram's speak socket). Only the first client message is
//!   read (the start); later ones (a flush) are left unread.
//!
//! The scenario (lead-in, pacing, gaps, jitter, faults) is the voice routes' own
//! ([`super::voice::Scenario`]), from the query string and a `sim` object in the request.
//! The PCM, WAV and Ogg audio is made here (the simulator's own PCM encoder and WAV header,
//! libopus's encoder, the `ogg` crate's writer); the MP3 is cut into frames by this module's
//! own header reading. Truth (`/truth` `voices`) is the write of each chunk, measured from
//! the request's arrival, as for the voice routes.
//!
//! Where the first audible sample is: PCM and WAV at the lead-in; Ogg Opus at the lead-in
//! plus the encoder's lookahead (the `OpusHead` pre-skip makes the decoded stream start at
//! the input); MP3 at the lead-in plus LAME's encoder delay (576) and the decoder's delay
//! (529), counted from the first decoded sample (the fixtures were made with LAME 3.100).
//! MP3 frames are sent when their first decoded sample is due in real time.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use http_body::Frame;
use serde_json::{json, Value};

use super::voice::{encode, reply_text, Scenario, Signal, VoiceFault, VoiceTruth};
use super::SimState;
use crate::rng::{fnv1a, SplitMix64};

/// 300 ms of silence then 1 s of speech, 24 kHz mono, 64 kbps, LAME Info tag.
pub const MP3_24K: &[u8] = include_bytes!("fixtures/speech-24k-mono.mp3");
/// 600 ms of noise then 1 s of speech, 44.1 kHz stereo, 128 kbps, no tag.
pub const MP3_44K: &[u8] = include_bytes!("fixtures/speech-44k-stereo-notag.mp3");
/// LAME's encoder delay plus the decoder's: where the fixtures' input starts once decoded.
const MP3_DELAY: usize = 576 + 529;

/// One write of the answer's audio.
struct Chunk {
    at: Duration,
    bytes: Vec<u8>,
}

/// An answer's audio, cut into timed chunks.
struct Plan {
    format: &'static str,
    content_type: &'static str,
    chunks: Vec<Chunk>,
    /// The chunk holding the first audible sample, and where the sample sits in it.
    first_audible: usize,
    offset_s: f64,
    lead_s: f64,
    speech_s: f64,
}

/// The sending time of chunks at these stream positions: real time from the first, the
/// lead-in at once with `ahead`, jitter, and the pause: sending stops `gap_at_ms` into the
/// speech for `gap_ms`, and the chunks synthesized meanwhile go out together when it ends (a
/// text-to-speech service keeps synthesizing while its connection is stuck), later chunks on
/// time. So a pause is one underrun, never a second one from the clock's noise after it.
fn times(
    s: &Scenario,
    positions: &[Duration],
    lead: Duration,
    rng: &mut SplitMix64,
) -> Vec<Duration> {
    let mut last = Duration::ZERO;
    positions
        .iter()
        .map(|&pos| {
            let mut at = if s.ahead && pos < lead {
                Duration::ZERO
            } else {
                pos
            };
            if let Some(g) = s.gap_at_ms {
                let start = lead + Duration::from_millis(g);
                let end = start + Duration::from_millis(s.gap_ms);
                if pos >= start {
                    at = at.max(end);
                }
            }
            if s.jitter_ms > 0 {
                at += Duration::from_micros(rng.next_u64() % (s.jitter_ms * 1000 + 1));
            }
            last = last.max(at);
            last
        })
        .collect()
}

fn wav_header(data_len: u32, rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// PCM16 (headerless or in a WAV), 24 kHz mono, `frame_ms` per chunk (default 20).
fn pcm_plan(s: &Scenario, wav: bool, rng: &mut SplitMix64, seed: u64) -> Plan {
    let rate = 24_000u32;
    let frame_ms = s.frame_ms.unwrap_or(20).clamp(5, 1000);
    let per_frame = 24 * frame_ms as usize;
    let signal = Signal::new(s, rate, rng, seed);
    let frames = signal.len().div_ceil(per_frame);
    let lead_samples = 24 * s.lead_in_ms as usize;
    let positions: Vec<Duration> = (0..frames)
        .map(|k| Duration::from_millis(frame_ms) * k as u32)
        .collect();
    let at = times(s, &positions, Duration::from_millis(s.lead_in_ms), rng);
    let mut chunks: Vec<Chunk> = (0..frames)
        .map(|k| {
            let n = per_frame.min(signal.len() - k * per_frame);
            Chunk {
                at: at[k],
                bytes: encode::pcm16(&signal.frame(k * per_frame, n)),
            }
        })
        .collect();
    if wav {
        let data = (signal.len() * 2) as u32;
        let declared = if s.fault == Some(VoiceFault::WavLength) {
            data * 2
        } else {
            data
        };
        let mut first = wav_header(declared, rate);
        first.append(&mut chunks[0].bytes);
        chunks[0].bytes = first;
    }
    Plan {
        format: if wav { "wav" } else { "pcm16" },
        content_type: if wav {
            "audio/wav"
        } else {
            "audio/pcm;rate=24000"
        },
        chunks,
        first_audible: lead_samples / per_frame,
        offset_s: (lead_samples % per_frame) as f64 / f64::from(rate),
        lead_s: s.lead_in_ms as f64 / 1000.0,
        speech_s: s.speech_ms as f64 / 1000.0,
    }
}

/// Ogg Opus, 48 kHz mono, 20 ms packets, one page each; the header pages go with the first.
fn opus_plan(s: &Scenario, rng: &mut SplitMix64, seed: u64) -> Result<Plan, String> {
    let per_frame = 960usize;
    let signal = Signal::new(s, 48_000, rng, seed);
    let frames = signal.len().div_ceil(per_frame);
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .map_err(|e| e.to_string())?;
    let lookahead = enc.get_lookahead().unwrap_or(312).clamp(0, 65535) as u16;
    let mut writer = ogg::writing::PacketWriter::new(Vec::new());
    let end = ogg::writing::PacketWriteEndInfo::EndPage;
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1]);
    head.extend_from_slice(&lookahead.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&3u32.to_le_bytes());
    tags.extend_from_slice(b"sim");
    tags.extend_from_slice(&0u32.to_le_bytes());
    writer
        .write_packet(head, 7, end, 0)
        .and_then(|_| writer.write_packet(tags, 7, end, 0))
        .map_err(|e| e.to_string())?;
    let mut prefix = std::mem::take(writer.inner_mut());
    let positions: Vec<Duration> = (0..frames)
        .map(|k| Duration::from_millis(20) * k as u32)
        .collect();
    let at = times(s, &positions, Duration::from_millis(s.lead_in_ms), rng);
    let mut chunks = Vec::with_capacity(frames);
    for (k, &when) in at.iter().enumerate() {
        let p = enc
            .encode_vec_float(&signal.frame(k * per_frame, per_frame), 4000)
            .map_err(|e| e.to_string())?;
        let info = if k + 1 == frames {
            ogg::writing::PacketWriteEndInfo::EndStream
        } else {
            end
        };
        let granule = u64::from(lookahead) + (k as u64 + 1) * per_frame as u64;
        writer
            .write_packet(p, 7, info, granule)
            .map_err(|e| e.to_string())?;
        let mut bytes = std::mem::take(&mut prefix);
        bytes.append(writer.inner_mut());
        chunks.push(Chunk { at: when, bytes });
    }
    let shifted = 48 * s.lead_in_ms as usize + usize::from(lookahead);
    Ok(Plan {
        format: "ogg-opus",
        content_type: "audio/ogg; codecs=opus",
        chunks,
        first_audible: shifted / per_frame,
        offset_s: (shifted % per_frame) as f64 / 48_000.0,
        lead_s: s.lead_in_ms as f64 / 1000.0,
        speech_s: s.speech_ms as f64 / 1000.0,
    })
}

/// MPEG Layer III frames of a fixture (the simulator's own header reading: MPEG-1 and
/// MPEG-2, as the fixtures are): (frames, samples per frame, rate).
fn mp3_frames(b: &[u8]) -> (Vec<&[u8]>, usize, u32) {
    let mut out = Vec::new();
    let mut i = 0;
    let (mut per, mut rate) = (1152, 44_100);
    while i + 4 <= b.len() && b[i] == 0xFF && b[i + 1] & 0xE0 == 0xE0 {
        let mpeg1 = b[i + 1] & 0x08 != 0;
        let br = usize::from(b[i + 2] >> 4);
        let sr = usize::from((b[i + 2] >> 2) & 3);
        let pad = usize::from((b[i + 2] >> 1) & 1);
        let kbps = if mpeg1 {
            [
                0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
            ]
        } else {
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
        }
        .get(br)
        .copied()
        .unwrap_or(0);
        rate = if mpeg1 {
            [44_100, 48_000, 32_000]
        } else {
            [22_050, 24_000, 16_000]
        }
        .get(sr)
        .copied()
        .unwrap_or(44_100);
        per = if mpeg1 { 1152 } else { 576 };
        let len = (if mpeg1 { 144 } else { 72 }) * kbps * 1000 / rate as usize + pad;
        if len < 4 || i + len > b.len() {
            break;
        }
        out.push(&b[i..i + len]);
        i += len;
    }
    (out, per, rate)
}

/// A fixture's frames, each sent when its first decoded sample is due; the tag frame and
/// frames that decode to nothing once the delay is dropped go with the first that does.
fn mp3_plan(s: &Scenario, rng: &mut SplitMix64) -> Plan {
    let noisy = s.fixture.as_deref() == Some("speech-44k-stereo-notag");
    let (bytes, lead_ms) = if noisy {
        (MP3_44K, 600)
    } else {
        (MP3_24K, 300)
    };
    let (mut frames, per, rate) = mp3_frames(bytes);
    let mut prefix = Vec::new();
    if frames.first().is_some_and(|f| {
        f[..f.len().min(48)]
            .windows(4)
            .any(|w| w == b"Info" || w == b"Xing")
    }) {
        prefix.extend_from_slice(frames.remove(0));
    }
    let lead = rate as usize * lead_ms / 1000;
    let target = lead + MP3_DELAY;
    let mut chunks: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut first_audible = 0;
    let mut offset = 0;
    for (k, f) in frames.iter().enumerate() {
        let mut f = f.to_vec();
        if (k * per..(k + 1) * per).contains(&target) {
            if s.fault == Some(VoiceFault::TruncatedFrame) {
                f.truncate(f.len().saturating_sub(8));
            }
            first_audible = chunks.len();
            offset = target - (k * per).max(MP3_DELAY);
        }
        prefix.extend_from_slice(&f);
        if (k + 1) * per > MP3_DELAY {
            chunks.push((
                (k * per).saturating_sub(MP3_DELAY),
                std::mem::take(&mut prefix),
            ));
        }
    }
    let positions: Vec<Duration> = chunks
        .iter()
        .map(|(p, _)| Duration::from_secs_f64(*p as f64 / f64::from(rate)))
        .collect();
    let at = times(s, &positions, Duration::from_millis(lead_ms as u64), rng);
    Plan {
        format: "mp3",
        content_type: "audio/mpeg",
        chunks: chunks
            .into_iter()
            .zip(at)
            .map(|((_, bytes), at)| Chunk { at, bytes })
            .collect(),
        first_audible,
        offset_s: offset as f64 / f64::from(rate),
        lead_s: lead_ms as f64 / 1000.0,
        speech_s: 1.0,
    }
}

fn plan(format: &str, s: &Scenario, seed: u64) -> Result<Plan, String> {
    let mut rng = SplitMix64::new(seed);
    match format {
        "pcm" | "pcm16" => Ok(pcm_plan(s, false, &mut rng, seed)),
        "wav" => Ok(pcm_plan(s, true, &mut rng, seed)),
        "opus" | "ogg" => opus_plan(s, &mut rng, seed),
        "mp3" => Ok(mp3_plan(s, &mut rng)),
        other => Err(format!(
            "unsupported response_format `{other}` (the simulator speaks pcm, wav, opus, mp3)"
        )),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What one write is, for the truth.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Audio { index: usize },
    Other,
    Final,
}

/// A body that writes its chunks on time and records when each was written.
struct TtsBody {
    received: Instant,
    begin: Instant,
    items: VecDeque<(Duration, Bytes, Mark)>,
    first_audible: usize,
    /// Drop the connection instead of this item (the `close` fault).
    drop_at: Option<usize>,
    sent: usize,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    truth: VoiceTruth,
    state: Arc<SimState>,
    recorded: bool,
}

impl TtsBody {
    fn record(&mut self) {
        if !self.recorded {
            self.recorded = true;
            self.state.record_voice(self.truth.clone());
        }
    }
}

impl Drop for TtsBody {
    fn drop(&mut self) {
        self.record();
    }
}

impl http_body::Body for TtsBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some((at, _, _)) = this.items.front() else {
            this.record();
            return Poll::Ready(None);
        };
        let due = this.begin + *at;
        if Instant::now() < due {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due.into())));
            if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
        }
        this.sleep = None;
        if this.drop_at == Some(this.sent) {
            this.items.clear();
            this.record();
            return Poll::Ready(Some(Err(std::io::Error::other(
                "simulated connection drop",
            ))));
        }
        let Some((_, bytes, mark)) = this.items.pop_front() else {
            return Poll::Ready(None);
        };
        this.sent += 1;
        let now = Instant::now();
        let t = now.saturating_duration_since(this.received).as_secs_f64();
        match mark {
            Mark::Audio { index } => {
                let late = now.saturating_duration_since(due).as_secs_f64();
                this.truth.max_late_s = this.truth.max_late_s.max(late);
                this.truth.chunks += 1;
                this.truth.first_chunk_s.get_or_insert(t);
                if index == this.first_audible {
                    this.truth.first_audible_chunk_s = Some(t);
                }
            }
            Mark::Final => this.truth.done_s = Some(t),
            Mark::Other => {}
        }
        if this.items.is_empty() && !matches!(mark, Mark::Other) && this.truth.done_s.is_none() {
            this.truth.done_s = Some(t);
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"message": msg, "type": "invalid_request_error"}})),
    )
        .into_response()
}

/// `POST /v1/audio/speech`.
pub async fn speech(
    State(state): State<Arc<SimState>>,
    r: Option<axum::Extension<super::Received>>,
    Query(base): Query<Scenario>,
    body: Bytes,
) -> Response {
    let received = super::received(r);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("body is not JSON: {e}")),
    };
    let s = match req.get("sim") {
        Some(o) => match base.overlay(o) {
            Ok(s) => s,
            Err(e) => return bad_request(e),
        },
        None => base,
    };
    let text = reply_text(req.get("input").and_then(Value::as_str).unwrap_or(""));
    let sse = req.get("stream_format").and_then(Value::as_str) == Some("sse");
    let format = s
        .format
        .clone()
        .or_else(|| {
            req.get("response_format")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| if sse { "pcm".into() } else { "mp3".into() });
    let seed = state.config().seed
        ^ fnv1a(text.as_bytes())
        ^ fnv1a(s.id.as_deref().unwrap_or("").as_bytes());
    // Encoding a whole answer takes milliseconds of CPU: off the runtime's workers, so that
    // requests arriving meanwhile are stamped on arrival and other streams are written on time.
    let planned = {
        let (format, s) = (format.clone(), s.clone());
        tokio::task::spawn_blocking(move || plan(&format, &s, seed)).await
    };
    let p = match planned {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return bad_request(e),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the simulator failed to encode the answer: {e}"),
            )
                .into_response()
        }
    };
    let fmt_name = if sse {
        format!("sse/{}", p.format)
    } else {
        p.format.to_string()
    };
    let mut truth = VoiceTruth::new("/v1/audio/speech", &fmt_name, &s, p.offset_s, &text);
    truth.lead_in_s = p.lead_s;
    truth.speech_s = p.speech_s;
    truth.received_unix = super::unix_seconds(received);
    let mut items = VecDeque::new();
    let n = p.chunks.len();
    for (k, c) in p.chunks.into_iter().enumerate() {
        let audio = Mark::Audio { index: k };
        if !sse {
            items.push_back((c.at, Bytes::from(c.bytes), audio));
            continue;
        }
        if k == p.first_audible {
            match s.fault {
                Some(VoiceFault::BadBase64) => {
                    let e = json!({"type": "speech.audio.delta", "audio": "!!not*base64!!"});
                    items.push_back((c.at, sse_bytes(&e), Mark::Other));
                }
                Some(VoiceFault::Error) => {
                    let e = json!({"type": "error", "error": {"message": "simulated synthesis failure", "code": "server_error"}});
                    items.push_back((c.at, sse_bytes(&e), Mark::Final));
                    break;
                }
                _ => {}
            }
        }
        let e = json!({"type": "speech.audio.delta", "audio": b64(&c.bytes)});
        items.push_back((c.at, sse_bytes(&e), audio));
        if k + 1 == n {
            let done = json!({"type": "speech.audio.done", "usage": {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52}});
            items.push_back((c.at, sse_bytes(&done), Mark::Final));
        }
    }
    let drop_at =
        (s.fault == Some(VoiceFault::Close)).then(|| p.first_audible + (n - p.first_audible) / 2);
    let headers_at = Instant::now();
    let body = TtsBody {
        received,
        begin: headers_at + Duration::from_millis(s.first_ms),
        items,
        first_audible: p.first_audible,
        drop_at,
        sent: 0,
        sleep: None,
        truth,
        state,
        recorded: false,
    };
    let mut resp = Response::new(axum::body::Body::new(body));
    let ct = if sse {
        "text/event-stream"
    } else {
        p.content_type
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    resp
}

fn sse_bytes(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// `GET /v1/tts/ws`.
pub async fn ws(
    State(state): State<Arc<SimState>>,
    Query(scenario): Query<Scenario>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _ = ws_session(socket, state, scenario).await;
    })
}

async fn send(socket: &mut WebSocket, v: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}

async fn ws_session(
    mut socket: WebSocket,
    state: Arc<SimState>,
    base: Scenario,
) -> Result<(), axum::Error> {
    let start = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(_))) => continue,
            _ => return Ok(()),
        }
    };
    let t0 = Instant::now();
    let start: Value = serde_json::from_str(start.as_str()).unwrap_or(Value::Null);
    let mut s = match start.get("sim") {
        Some(o) => match base.overlay(o) {
            Ok(s) => s,
            Err(e) => return send(&mut socket, json!({"error": e})).await,
        },
        None => base,
    };
    if s.id.is_none() {
        s.id = start.get("id").and_then(Value::as_str).map(str::to_string);
    }
    let text = reply_text(start.get("text").and_then(Value::as_str).unwrap_or(""));
    let format = s
        .format
        .clone()
        .or_else(|| {
            start
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "pcm".into());
    let binary = s.style.as_deref() == Some("binary");
    let typed = binary || s.style.as_deref() == Some("typed");
    let seed = state.config().seed
        ^ fnv1a(text.as_bytes())
        ^ fnv1a(s.id.as_deref().unwrap_or("").as_bytes());
    let p = match plan(&format, &s, seed) {
        Ok(p) => p,
        Err(e) => return send(&mut socket, json!({"error": e})).await,
    };
    let mut truth = VoiceTruth::new("/v1/tts/ws", p.format, &s, p.offset_s, &text);
    truth.lead_in_s = p.lead_s;
    truth.speech_s = p.speech_s;
    truth.received_unix = super::unix_seconds(t0);
    let begin = t0 + Duration::from_millis(s.first_ms);
    let n = p.chunks.len();
    for (k, c) in p.chunks.into_iter().enumerate() {
        tokio::time::sleep_until((begin + c.at).into()).await;
        if k == p.first_audible {
            match s.fault {
                Some(VoiceFault::BadBase64) => {
                    let m = if typed {
                        json!({"type": "chunk", "data": "!!not*base64!!"})
                    } else {
                        json!({"audio": "!!not*base64!!"})
                    };
                    send(&mut socket, m).await?;
                }
                Some(VoiceFault::Error) => {
                    let m = if typed {
                        json!({"type": "error", "message": "simulated synthesis failure"})
                    } else {
                        json!({"error": "simulated synthesis failure"})
                    };
                    send(&mut socket, m).await?;
                    truth.done_s = None;
                    state.record_voice(truth);
                    return Ok(());
                }
                _ => {}
            }
        }
        if s.fault == Some(VoiceFault::Close) && k == p.first_audible + (n - p.first_audible) / 2 {
            state.record_voice(truth);
            return Ok(()); // dropping the socket closes TCP without a WebSocket close
        }
        if binary {
            socket.send(Message::Binary(c.bytes.into())).await?;
        } else {
            let audio = b64(&c.bytes);
            let m = if typed {
                json!({"type": "chunk", "data": audio})
            } else if k == p.first_audible {
                json!({"audio": audio, "isFinal": false, "text": text})
            } else {
                json!({"audio": audio, "isFinal": false})
            };
            send(&mut socket, m).await?;
        }
        let sent = Instant::now().saturating_duration_since(t0).as_secs_f64();
        truth.chunks += 1;
        truth.first_chunk_s.get_or_insert(sent);
        if k == p.first_audible {
            truth.first_audible_chunk_s = Some(sent);
            if typed {
                send(&mut socket, json!({"type": "transcript", "text": text})).await?;
            }
        }
    }
    let end = if binary {
        json!({"type": "Flushed"})
    } else if typed {
        json!({"type": "done"})
    } else {
        json!({"isFinal": true})
    };
    send(&mut socket, end).await?;
    truth.done_s = Some(Instant::now().saturating_duration_since(t0).as_secs_f64());
    state.record_voice(truth);
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_split_into_whole_frames() {
        for (bytes, per, rate) in [(MP3_24K, 576, 24_000), (MP3_44K, 1152, 44_100)] {
            let (frames, p, r) = mp3_frames(bytes);
            assert_eq!((p, r), (per, rate));
            assert_eq!(frames.iter().map(|f| f.len()).sum::<usize>(), bytes.len());
        }
    }

    #[test]
    fn mp3_chunks_are_due_when_their_first_sample_plays() {
        let s = Scenario::default();
        let mut rng = SplitMix64::new(1);
        let p = mp3_plan(&s, &mut rng);
        // 300 ms lead-in at 24 kHz: the onset is 7200 + 1105 samples into the encoded
        // stream, in frame 14 (576 samples each), 241 samples in.
        assert_eq!(p.chunks[0].at, Duration::ZERO);
        assert!((p.offset_s - 241.0 / 24_000.0).abs() < 1e-9);
        let at = p.chunks[p.first_audible].at.as_secs_f64();
        assert!((at + p.offset_s - 0.3).abs() < 1e-6, "{at}");
    }

    #[test]
    fn a_pause_holds_back_the_chunks_due_in_it_then_sends_them_at_once() {
        let ms = Duration::from_millis;
        let s = Scenario {
            gap_at_ms: Some(100),
            gap_ms: 300,
            ..Default::default()
        };
        let positions: Vec<Duration> = (0..40).map(|k| ms(20) * k).collect();
        let t = times(&s, &positions, ms(200), &mut SplitMix64::new(1));
        assert_eq!(t[14], ms(280));
        // From 300 ms (the pause's start) to 600 ms: all at 600 ms; then on time.
        assert!(t[15..30].iter().all(|&x| x == ms(600)));
        assert_eq!(t[31], ms(620));
    }

    #[test]
    fn a_lying_wav_header_declares_twice_the_audio() {
        let s = Scenario {
            fault: Some(VoiceFault::WavLength),
            speech_ms: 100,
            lead_in_ms: 100,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(1);
        let p = pcm_plan(&s, true, &mut rng, 1);
        let declared = u32::from_le_bytes(p.chunks[0].bytes[40..44].try_into().unwrap());
        assert_eq!(declared, 2 * 4800 * 2);
    }
}
