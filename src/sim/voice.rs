//! Simulated voice endpoints with recorded ground truth.
//!
//! - `GET /v1/voice` (WebSocket): answers a `start` JSON message with Opus audio, one raw
//!   packet per binary message or an Ogg Opus stream split mid-page, then a `transcript`
//!   event and `done`.
//! - `GET /v1/realtime` (WebSocket): speaks the OpenAI Realtime events (GA names, or beta
//!   with `api=beta`), base64 PCM16 24 kHz or G.711 8 kHz as the session asks.
//!
//! Each answer is a lead-in (digital silence or low noise) then speech-like sound (a
//! harmonic voice in syllables), encoded here with libopus or written as PCM by this
//! module's own code. Audio is paced in real time from a short first delay; the lead-in can
//! be sent ahead of real time in one burst (`ahead`), a pause can be put in the middle of
//! the utterance (`gap_at_ms`, `gap_ms`) and jitter added. The scenario comes from the query
//! string and, for `/v1/voice`, from a `sim` object in the start message. The truth
//! (`GET /truth`, `voices`) records when the first chunk and the first audible chunk were
//! written to the socket, measured from the moment the request message arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::SimState;
use crate::rng::{fnv1a, SplitMix64};

/// What the lead-in holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lead {
    #[default]
    Silence,
    /// White noise around -55 dBFS: not audible, not digital zero.
    Noise,
}

/// A misbehaviour of the voice simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoiceFault {
    /// An invalid Opus packet where the speech starts.
    Corrupt,
    /// The TCP connection drops half-way through the speech, without a WebSocket close.
    Close,
    /// An `error` event where the speech starts.
    Error,
    /// Realtime: an audio delta that is not base64.
    BadBase64,
    /// Realtime: the session announces an unsupported sample rate.
    BadRate,
    /// Realtime: `response.done` with status `failed`.
    Failed,
    /// `/v1/audio/speech` MP3: the frame holding the first audible sample is cut short.
    TruncatedFrame,
    /// `/v1/audio/speech` WAV: the header declares twice the audio sent.
    WavLength,
}

/// One answer's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Copied into the truth record to find this answer again.
    pub id: Option<String>,
    /// From the request to the first audio chunk.
    pub first_ms: u64,
    pub lead_in_ms: u64,
    pub lead: Lead,
    /// The lead-in goes out at once, ahead of real time.
    pub ahead: bool,
    pub speech_ms: u64,
    /// A pause in sending, starting this far into the speech.
    pub gap_at_ms: Option<u64>,
    pub gap_ms: u64,
    /// Up to this much random delay per chunk (sending order is kept).
    pub jitter_ms: u64,
    /// Audio per chunk (Opus frame: 10, 20, 40 or 60 ms; realtime delta: any).
    pub frame_ms: Option<u64>,
    /// `/v1/voice`: `raw` or `ogg`.
    pub container: String,
    /// `/v1/voice`: 1 or 2.
    pub channels: u8,
    pub fault: Option<VoiceFault>,
    /// `/v1/realtime`: `ga` or `beta` event names.
    pub api: String,
    /// `/v1/audio/speech`, `/v1/tts/ws`: the audio format (`pcm`, `wav`, `opus`, `mp3`;
    /// on `/v1/audio/speech` the body's `response_format` unless given here).
    pub format: Option<String>,
    /// MP3: the fixture served (`speech-24k-mono`, `speech-44k-stereo-notag`).
    pub fixture: Option<String>,
    /// `/v1/tts/ws`: message shapes, `isfinal` (`{"audio"}` then `{"isFinal": true}`),
    /// `typed` (`{"type": "chunk", "data"}` then `{"type": "done"}`) or `binary` (binary
    /// audio messages, then `{"type": "Flushed"}`).
    pub style: Option<String>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            id: None,
            first_ms: 20,
            lead_in_ms: 300,
            lead: Lead::Silence,
            ahead: false,
            speech_ms: 1000,
            gap_at_ms: None,
            gap_ms: 0,
            jitter_ms: 0,
            frame_ms: None,
            container: "raw".into(),
            channels: 1,
            fault: None,
            api: "ga".into(),
            format: None,
            fixture: None,
            style: None,
        }
    }
}

impl Scenario {
    /// Overlays the fields of a JSON object (the start message's `sim`).
    pub(super) fn overlay(&self, v: &Value) -> Result<Scenario, String> {
        let mut base = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, x) in o {
                b.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(base).map_err(|e| format!("invalid sim scenario: {e}"))
    }
}

/// The ground truth of one voice answer (seconds from the request message's arrival).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VoiceTruth {
    pub seq: u64,
    pub path: String,
    pub id: Option<String>,
    /// `opus`, `ogg-opus`, `pcm16`, `pcmu`, `pcma`.
    pub format: String,
    /// The first audio chunk (silent or not) was written.
    pub first_chunk_s: Option<f64>,
    /// The chunk holding the first audible sample was written.
    pub first_audible_chunk_s: Option<f64>,
    /// Where the first audible sample sits inside that chunk.
    pub first_audible_offset_s: f64,
    pub lead_in_s: f64,
    pub speech_s: f64,
    /// The pause in the middle of the speech.
    pub gap_s: f64,
    /// The latest any audio chunk went out after its due time (seconds): how far the
    /// simulator's own schedule slipped on a busy machine, which bounds how far a measure of
    /// the answer's pacing (a stall, the buffer a pause needs) can move. Recorded by the TTS
    /// routes; 0 where not recorded.
    #[serde(default)]
    pub max_late_s: f64,
    /// Wall-clock time of the request message's arrival (seconds since the Unix epoch), the
    /// base of every time here; benchmarks align it with the client's own stamps.
    #[serde(default)]
    pub received_unix: f64,
    pub chunks: u64,
    /// The final event was written (absent when the answer was cut or failed).
    pub done_s: Option<f64>,
    pub fault: Option<VoiceFault>,
    pub transcript: String,
}

impl VoiceTruth {
    /// The record of an answer about to be sent, before any chunk went out.
    pub(super) fn new(
        path: &str,
        format: &str,
        s: &Scenario,
        offset_s: f64,
        transcript: &str,
    ) -> Self {
        VoiceTruth {
            seq: 0,
            path: path.into(),
            id: s.id.clone(),
            format: format.into(),
            first_chunk_s: None,
            first_audible_chunk_s: None,
            first_audible_offset_s: offset_s,
            lead_in_s: s.lead_in_ms as f64 / 1000.0,
            speech_s: s.speech_ms as f64 / 1000.0,
            gap_s: if s.gap_at_ms.is_some() {
                s.gap_ms as f64 / 1000.0
            } else {
                0.0
            },
            max_late_s: 0.0,
            received_unix: 0.0,
            chunks: 0,
            done_s: None,
            fault: s.fault,
            transcript: transcript.into(),
        }
    }
}

const SPEECH_AMPLITUDE: f32 = 0.3;

/// Speech-like sound: a 110-150 Hz voice with six harmonics in 200 ms syllables (160 ms
/// voiced, 40 ms at a sixth of the level), starting at full level from its first sample.
pub fn speech(rate: u32, samples: usize, seed: u64) -> Vec<f32> {
    speech_range(rate, 0, samples, seed)
}

/// Samples `start..start + n` of [`speech`] (synthesised as they are sent, like a TTS).
pub fn speech_range(rate: u32, start: usize, n: usize, seed: u64) -> Vec<f32> {
    let f0 = 110.0 + (seed % 40) as f32;
    let rate_f = rate as f32;
    let norm: f32 = (1..=6).map(|h| 1.0 / h as f32).sum();
    (start..start + n)
        .map(|i| {
            let t = i as f32 / rate_f;
            let syl = (t * 1000.0) as u64 % 200;
            let env = if syl < 160 { 1.0 } else { 1.0 / 6.0 };
            let mut v = 0.0;
            for h in 1..=6 {
                let f = f0 * h as f32;
                if f < rate_f / 2.0 {
                    v += (std::f32::consts::TAU * f * t).sin() / h as f32;
                }
            }
            SPEECH_AMPLITUDE * env * v / norm
        })
        .collect()
}

fn lead_in(kind: Lead, samples: usize, rng: &mut SplitMix64) -> Vec<f32> {
    match kind {
        Lead::Silence => vec![0.0; samples],
        Lead::Noise => (0..samples)
            .map(|_| 0.003 * (rng.next_f64() as f32 * 2.0 - 1.0))
            .collect(),
    }
}

/// The answer's audio, produced frame by frame as it is sent: the lead-in, then speech,
/// then zeros to fill the last frame.
pub(super) struct Signal {
    rate: u32,
    lead: Vec<f32>,
    speech: usize,
    seed: u64,
}

impl Signal {
    pub(super) fn new(s: &Scenario, rate: u32, rng: &mut SplitMix64, seed: u64) -> Self {
        let per_ms = (rate / 1000) as usize;
        Signal {
            rate,
            lead: lead_in(s.lead, per_ms * s.lead_in_ms as usize, rng),
            speech: per_ms * s.speech_ms as usize,
            seed,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lead.len() + self.speech
    }

    /// Samples `start..start + n`.
    pub(super) fn frame(&self, start: usize, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        let lead_end = self.lead.len();
        if start < lead_end {
            out.extend_from_slice(&self.lead[start..(start + n).min(lead_end)]);
        }
        let s0 = start.max(lead_end) - lead_end;
        let s1 = (start + n).saturating_sub(lead_end).min(self.speech);
        if s1 > s0 {
            out.extend(speech_range(self.rate, s0, s1 - s0, self.seed));
        }
        out.resize(n, 0.0);
        out
    }
}

/// When each chunk goes out, relative to the first chunk.
fn schedule(s: &Scenario, frames: usize, frame: Duration, rng: &mut SplitMix64) -> Vec<Duration> {
    let lead_frames = (s.lead_in_ms as usize * 1000).div_ceil(frame.as_micros().max(1) as usize);
    let mut out = Vec::with_capacity(frames);
    let mut last = Duration::ZERO;
    for k in 0..frames {
        let pos = frame * k as u32;
        let mut at = if s.ahead && k < lead_frames {
            Duration::ZERO
        } else {
            pos
        };
        if let Some(g) = s.gap_at_ms {
            if pos >= Duration::from_millis(s.lead_in_ms + g) {
                at += Duration::from_millis(s.gap_ms);
            }
        }
        if s.jitter_ms > 0 {
            at += Duration::from_micros(rng.next_u64() % (s.jitter_ms * 1000 + 1));
        }
        last = last.max(at);
        out.push(last);
    }
    out
}

pub(super) fn reply_text(input: &str) -> String {
    let t = input.trim();
    if t.is_empty() {
        "Hello, how can I help you today?".to_string()
    } else {
        format!("Sure. You asked: {t}")
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

fn secs(t: Instant, t0: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

/// `GET /v1/voice`.
pub async fn voice(
    State(state): State<Arc<SimState>>,
    Query(scenario): Query<Scenario>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _ = voice_session(socket, state, scenario).await;
    })
}

async fn voice_session(
    mut socket: WebSocket,
    state: Arc<SimState>,
    base: Scenario,
) -> Result<(), axum::Error> {
    // The start message.
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
            Err(e) => {
                let msg = json!({"type": "error", "message": e}).to_string();
                return socket.send(Message::Text(msg.into())).await;
            }
        },
        None => base,
    };
    if s.id.is_none() {
        s.id = start.get("id").and_then(Value::as_str).map(str::to_string);
    }
    let text = reply_text(start.get("text").and_then(Value::as_str).unwrap_or(""));
    let seed = state.config().seed
        ^ fnv1a(text.as_bytes())
        ^ fnv1a(s.id.as_deref().unwrap_or("").as_bytes());
    let mut rng = SplitMix64::new(seed);
    let frame_ms = s.frame_ms.unwrap_or(20);
    let frame_ms = if [10, 20, 40, 60].contains(&frame_ms) {
        frame_ms
    } else {
        20
    };
    let per_frame = (48 * frame_ms) as usize;
    let lead_samples = (48 * s.lead_in_ms) as usize;
    let signal = Signal::new(&s, 48_000, &mut rng, seed);
    let frames = signal.len().div_ceil(per_frame);
    let channels = if s.channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let Ok(mut enc) = opus::Encoder::new(48_000, channels, opus::Application::Audio) else {
        return Ok(());
    };
    let lookahead = enc.get_lookahead().unwrap_or(312).clamp(0, 65535) as u16;
    let ogg = s.container == "ogg";
    let frame = Duration::from_millis(frame_ms);
    let times = schedule(&s, frames, frame, &mut rng);
    // The encoder delays its input by its lookahead: the first audible input sample comes
    // out of the packet that covers it once shifted (pre-skip undoes the shift for Ogg,
    // not the packet it lands in).
    let shifted = lead_samples + usize::from(lookahead);
    let first_audible = shifted / per_frame;
    let mut truth = VoiceTruth::new(
        "/v1/voice",
        if ogg { "ogg-opus" } else { "opus" },
        &s,
        (shifted % per_frame) as f64 / 48_000.0,
        &text,
    );
    truth.received_unix = super::unix_seconds(t0);
    let mut writer = ogg::writing::PacketWriter::new(Vec::new());
    if ogg {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, s.channels.clamp(1, 2)]);
        head.extend_from_slice(&lookahead.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&5u32.to_le_bytes());
        tags.extend_from_slice(b"canry");
        tags.extend_from_slice(&0u32.to_le_bytes());
        let end = ogg::writing::PacketWriteEndInfo::EndPage;
        if writer.write_packet(head, 1, end, 0).is_err()
            || writer.write_packet(tags, 1, end, 0).is_err()
        {
            return Ok(());
        }
    }
    let begin = t0 + Duration::from_millis(s.first_ms);
    let speech_frames = frames - first_audible;
    for (k, &at) in times.iter().enumerate() {
        let f = signal.frame(k * per_frame, per_frame);
        let input: Vec<f32> = if s.channels == 2 {
            f.iter().flat_map(|&x| [x, x]).collect()
        } else {
            f
        };
        let Ok(p) = enc.encode_vec_float(&input, 4000) else {
            return Ok(());
        };
        sleep_until(begin + at).await;
        if k == first_audible {
            match s.fault {
                Some(VoiceFault::Corrupt) => {
                    socket.send(Message::Binary(vec![0x03].into())).await?;
                }
                Some(VoiceFault::Error) => {
                    let e = json!({"type": "error", "message": "simulated synthesis failure"});
                    socket.send(Message::Text(e.to_string().into())).await?;
                }
                _ => {}
            }
        }
        if s.fault == Some(VoiceFault::Close) && k == first_audible + speech_frames / 2 {
            state.record_voice(truth);
            return Ok(()); // dropping the socket closes TCP without a WebSocket close
        }
        if ogg {
            let end = if k + 1 == frames {
                ogg::writing::PacketWriteEndInfo::EndStream
            } else {
                ogg::writing::PacketWriteEndInfo::EndPage
            };
            let granule = lookahead as u64 + (k as u64 + 1) * per_frame as u64;
            if writer.write_packet(p, 1, end, granule).is_err() {
                return Ok(());
            }
            let bytes = std::mem::take(writer.inner_mut());
            // Split mid-page: the probe must reassemble pages across messages.
            let cut = bytes.len() / 2;
            socket
                .send(Message::Binary(bytes[..cut].to_vec().into()))
                .await?;
            socket
                .send(Message::Binary(bytes[cut..].to_vec().into()))
                .await?;
        } else {
            socket.send(Message::Binary(p.into())).await?;
        }
        let sent = Instant::now();
        truth.chunks += 1;
        if k == 0 {
            truth.first_chunk_s = Some(secs(sent, t0));
        }
        if k == first_audible {
            truth.first_audible_chunk_s = Some(secs(sent, t0));
            let t = json!({"type": "transcript", "text": text});
            socket.send(Message::Text(t.to_string().into())).await?;
        }
    }
    socket
        .send(Message::Text(json!({"type": "done"}).to_string().into()))
        .await?;
    truth.done_s = Some(secs(Instant::now(), t0));
    state.record_voice(truth);
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

/// The G.711 and PCM16 encoders of the simulator (its own, not the probe's).
pub(super) mod encode {
    pub fn pcm16(samples: &[f32]) -> Vec<u8> {
        samples
            .iter()
            .flat_map(|&x| ((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
            .collect()
    }

    /// mu-law by the segment search of ITU-T G.711.
    pub fn ulaw(samples: &[f32]) -> Vec<u8> {
        samples
            .iter()
            .map(|&x| {
                let s = (x.clamp(-1.0, 1.0) * 32767.0) as i32;
                let sign = if s < 0 { 0x80 } else { 0 };
                let mag = (s.abs().min(32635) + 0x84) as u32;
                let seg = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
                let mant = (mag >> (seg + 3)) & 0x0F;
                !((sign | (seg << 4) | mant) as u8)
            })
            .collect()
    }

    /// A-law by the segment search of ITU-T G.711.
    pub fn alaw(samples: &[f32]) -> Vec<u8> {
        samples
            .iter()
            .map(|&x| {
                let s = (x.clamp(-1.0, 1.0) * 32767.0) as i32;
                let (sign, mag) = if s >= 0 {
                    (0x80u32, s as u32)
                } else {
                    (0, (-s - 1) as u32)
                };
                let code = if mag < 256 {
                    mag >> 4
                } else {
                    let seg = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
                    (seg << 4) | ((mag >> (seg + 3)) & 0x0F)
                };
                ((sign | code) as u8) ^ 0x55
            })
            .collect()
    }
}

/// `GET /v1/realtime`.
pub async fn realtime(
    State(state): State<Arc<SimState>>,
    Query(scenario): Query<Scenario>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _ = realtime_session(socket, state, scenario).await;
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Fmt {
    Pcm16,
    Pcmu,
    Pcma,
}

fn format_of(session: &Value) -> Option<Fmt> {
    let ga = session
        .pointer("/audio/output/format/type")
        .and_then(Value::as_str);
    let beta = session.get("output_audio_format").and_then(Value::as_str);
    match ga.or(beta)? {
        "audio/pcm" | "pcm16" => Some(Fmt::Pcm16),
        "audio/pcmu" | "g711_ulaw" => Some(Fmt::Pcmu),
        "audio/pcma" | "g711_alaw" => Some(Fmt::Pcma),
        _ => None,
    }
}

async fn send_json(socket: &mut WebSocket, v: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}

async fn realtime_session(
    mut socket: WebSocket,
    state: Arc<SimState>,
    s: Scenario,
) -> Result<(), axum::Error> {
    let beta = s.api == "beta";
    let name = |ga: &'static str, b: &'static str| if beta { b } else { ga };
    let mut fmt = Fmt::Pcm16;
    let mut rate_announced = 24_000u64;
    if s.fault == Some(VoiceFault::BadRate) {
        rate_announced = 1_234_567;
    }
    let session = |fmt: Fmt, rate: u64| {
        let f = match fmt {
            Fmt::Pcm16 => json!({"type": "audio/pcm", "rate": rate}),
            Fmt::Pcmu => json!({"type": "audio/pcmu"}),
            Fmt::Pcma => json!({"type": "audio/pcma"}),
        };
        json!({"id": "sess_sim", "type": "realtime", "audio": {"output": {"format": f}}})
    };
    send_json(
        &mut socket,
        json!({"type": "session.created", "session": session(fmt, rate_announced)}),
    )
    .await?;
    let mut text = String::new();
    let mut input_bytes = 0usize;
    // Client events until `response.create`.
    let t0 = loop {
        let msg = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            _ => return Ok(()),
        };
        let at = Instant::now();
        let v: Value = serde_json::from_str(msg.as_str()).unwrap_or(Value::Null);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "session.update" => {
                if let Some(f) = v.get("session").and_then(format_of) {
                    fmt = f;
                }
                send_json(
                    &mut socket,
                    json!({"type": "session.updated", "session": session(fmt, rate_announced)}),
                )
                .await?;
            }
            "conversation.item.create" => {
                if let Some(t) = v.pointer("/item/content/0/text").and_then(Value::as_str) {
                    text = t.to_string();
                }
                send_json(
                    &mut socket,
                    json!({"type": "conversation.item.created", "item": v.get("item")}),
                )
                .await?;
            }
            "input_audio_buffer.append" => {
                let b64 = v.get("audio").and_then(Value::as_str).unwrap_or("");
                input_bytes += base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(|b| b.len())
                    .unwrap_or(0);
            }
            "input_audio_buffer.commit" => {
                send_json(
                    &mut socket,
                    json!({"type": "input_audio_buffer.committed", "item_id": "item_in"}),
                )
                .await?;
                if text.is_empty() {
                    text = format!("audio of {input_bytes} bytes");
                }
            }
            "response.create" => break at,
            _ => {}
        }
    };
    send_json(&mut socket, json!({"type": "response.created", "response": {"id": "resp_sim", "status": "in_progress"}})).await?;
    let reply = reply_text(&text);
    let seed = state.config().seed
        ^ fnv1a(reply.as_bytes())
        ^ fnv1a(s.id.as_deref().unwrap_or("").as_bytes());
    let mut rng = SplitMix64::new(seed);
    let rate: u32 = if fmt == Fmt::Pcm16 { 24_000 } else { 8_000 };
    let per_ms = (rate / 1000) as usize;
    let frame_ms = s.frame_ms.unwrap_or(100).max(1);
    let per_frame = per_ms * frame_ms as usize;
    let lead_samples = per_ms * s.lead_in_ms as usize;
    let signal = Signal::new(&s, rate, &mut rng, seed);
    let frames = signal.len().div_ceil(per_frame);
    let frame = Duration::from_millis(frame_ms);
    let times = schedule(&s, frames, frame, &mut rng);
    let first_audible = lead_samples / per_frame;
    let format = match fmt {
        Fmt::Pcm16 => "pcm16",
        Fmt::Pcmu => "pcmu",
        Fmt::Pcma => "pcma",
    };
    let mut truth = VoiceTruth::new(
        "/v1/realtime",
        format,
        &s,
        (lead_samples % per_frame) as f64 / f64::from(rate),
        &reply,
    );
    truth.received_unix = super::unix_seconds(t0);
    let begin = t0 + Duration::from_millis(s.first_ms);
    let audio_delta = name("response.output_audio.delta", "response.audio.delta");
    let text_delta = name(
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    );
    for (k, &at) in times.iter().enumerate() {
        let n = per_frame.min(signal.len() - k * per_frame);
        let chunk = signal.frame(k * per_frame, n);
        let chunk = &chunk[..];
        sleep_until(begin + at).await;
        if k == first_audible {
            match s.fault {
                Some(VoiceFault::BadBase64) => {
                    send_json(
                        &mut socket,
                        json!({"type": audio_delta, "delta": "!!not*base64!!"}),
                    )
                    .await?;
                }
                Some(VoiceFault::Error) => {
                    send_json(&mut socket, json!({"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "simulated overload"}})).await?;
                }
                _ => {}
            }
        }
        if s.fault == Some(VoiceFault::Close) && k == first_audible + (frames - first_audible) / 2 {
            state.record_voice(truth);
            return Ok(());
        }
        let bytes = match fmt {
            Fmt::Pcm16 => encode::pcm16(chunk),
            Fmt::Pcmu => encode::ulaw(chunk),
            Fmt::Pcma => encode::alaw(chunk),
        };
        let delta = base64::engine::general_purpose::STANDARD.encode(bytes);
        send_json(
            &mut socket,
            json!({"type": audio_delta, "response_id": "resp_sim", "item_id": "item_out",
            "output_index": 0, "content_index": 0, "delta": delta}),
        )
        .await?;
        let sent = Instant::now();
        truth.chunks += 1;
        if k == 0 {
            truth.first_chunk_s = Some(secs(sent, t0));
        }
        if k == first_audible {
            truth.first_audible_chunk_s = Some(secs(sent, t0));
            for w in reply.split_inclusive(' ') {
                send_json(
                    &mut socket,
                    json!({"type": text_delta, "response_id": "resp_sim", "delta": w}),
                )
                .await?;
            }
        }
    }
    send_json(
        &mut socket,
        json!({"type": name("response.output_audio.done", "response.audio.done")}),
    )
    .await?;
    let status = if s.fault == Some(VoiceFault::Failed) {
        "failed"
    } else {
        "completed"
    };
    send_json(&mut socket, json!({"type": "response.done", "response": {
        "id": "resp_sim", "object": "realtime.response", "status": status,
        "status_details": if status == "failed" { json!({"type": "failed", "error": {"message": "simulated failure"}}) } else { Value::Null },
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": reply}]}],
        "usage": {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52}
    }})).await?;
    truth.done_s = Some(secs(Instant::now(), t0));
    state.record_voice(truth);
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_is_loud_from_its_first_sample_and_lead_noise_is_not() {
        let s = speech(48_000, 4800, 1);
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        assert!(20.0 * rms(&s[..480]).log10() > -25.0);
        let mut rng = SplitMix64::new(1);
        let n = lead_in(Lead::Noise, 4800, &mut rng);
        assert!(20.0 * rms(&n).log10() < -50.0);
    }

    #[test]
    fn schedules_are_real_time_ahead_and_gapped() {
        let mut rng = SplitMix64::new(1);
        let ms = Duration::from_millis;
        let s = Scenario {
            lead_in_ms: 100,
            ..Default::default()
        };
        let t = schedule(&s, 10, ms(20), &mut rng);
        assert_eq!(t[0], ms(0));
        assert_eq!(t[5], ms(100));
        let ahead = Scenario {
            lead_in_ms: 100,
            ahead: true,
            ..Default::default()
        };
        let t = schedule(&ahead, 10, ms(20), &mut rng);
        assert_eq!(t[4], ms(0));
        assert_eq!(t[5], ms(100));
        let gap = Scenario {
            lead_in_ms: 100,
            gap_at_ms: Some(60),
            gap_ms: 300,
            ..Default::default()
        };
        let t = schedule(&gap, 12, ms(20), &mut rng);
        assert_eq!(t[7], ms(140));
        assert_eq!(t[8], ms(460));
    }

    #[test]
    fn the_simulators_g711_matches_the_standard_code_points() {
        assert_eq!(encode::ulaw(&[0.0]), vec![0xFF]);
        assert_eq!(encode::alaw(&[0.0]), vec![0xD5]);
        assert_eq!(encode::ulaw(&[-1.0])[0] & 0x80, 0);
    }
}
