//! What the voice drivers share: listening to decoded audio (one [`Track`] per response,
//! one `Audio` event per chunk, the audio summary kept current on the timeline so that a
//! run cut short by its deadline still says what was heard), collecting the transcript, and
//! for the text-to-speech protocols ([`AudioIn`], [`AudioEvents`]) an audio stream in any
//! format and the described events that carry it.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use serde_json::Value;

use super::chat_events::{estimate_tokens, Piece};
use super::stream::{StreamSpec, Unit};
use crate::audio::stream::{Decoder, Format};
use crate::audio::{AudioError, Track};
use crate::timeline::{AudioSummary, ErrorClass, Event, ProbeError, Recorder, TokenKind, Usage};

/// The listener of one response.
pub struct Listener {
    track: Track,
    format: &'static str,
    threshold: f32,
    chunks: u64,
}

impl Listener {
    pub fn new(format: &'static str, rate: u32, threshold_dbfs: f32) -> Self {
        Listener {
            track: Track::new(rate, threshold_dbfs),
            format,
            threshold: threshold_dbfs,
            chunks: 0,
        }
    }

    /// Whether any audio was heard yet.
    pub fn started(&self) -> bool {
        self.chunks > 0
    }

    /// Starts over at another rate (a session announced its rate before any audio); a rate
    /// change once audio has played would misplace everything after it, so it is an error.
    pub fn set_rate(&mut self, rate: u32) -> Result<(), ProbeError> {
        if rate == self.track.rate() {
            return Ok(());
        }
        if self.started() {
            return Err(decode_error(
                AudioError::Unsupported(format!(
                    "the sample rate changed from {} Hz to {rate} Hz mid-answer",
                    self.track.rate()
                )),
                "session",
            ));
        }
        self.track = Track::new(rate, self.threshold);
        Ok(())
    }

    /// Decoded audio so far.
    pub fn total(&self) -> std::time::Duration {
        self.track.total()
    }

    /// Records one decoded chunk (mono samples) that arrived at `at`. A chunk that decodes
    /// to nothing (an empty delta, a packet eaten by pre-skip) is not audio and is skipped.
    /// More than [`MAX_AUDIO`] of audio in one answer is refused.
    pub fn hear(
        &mut self,
        at: Instant,
        mono: &[f32],
        rec: &mut Recorder,
    ) -> Result<(), ProbeError> {
        if mono.is_empty() {
            return Ok(());
        }
        if self.track.total() > MAX_AUDIO {
            return Err(ProbeError::new(
                ErrorClass::BodyTooLarge,
                format!("more than {} s of audio in one answer", MAX_AUDIO.as_secs()),
            ));
        }
        let level = self.track.push(mono);
        self.chunks += 1;
        rec.mark_at(
            at,
            Event::Audio {
                position: level.position,
                duration: level.duration,
                dbfs: level.dbfs,
            },
        );
        rec.set_audio(AudioSummary {
            format: self.format,
            sample_rate: self.track.rate(),
            onset: self.track.onset(),
            first_audible: self.track.first_audible(),
            total: self.track.total(),
            chunks: self.chunks,
            threshold_dbfs: self.threshold,
        });
        Ok(())
    }
}

/// The most audio one answer may hold (decoding beyond it would only burn CPU).
pub const MAX_AUDIO: std::time::Duration = std::time::Duration::from_secs(600);

/// Audio chunks decoded between yields to the runtime: one message holding thousands of
/// packets must not keep the deadline from firing.
pub const YIELD_EVERY: u64 = 64;

/// The class of a close frame that arrived before the end of the answer: normal closes cut
/// the answer short; server errors and policy closes are errors of the stream; "try again
/// later" is rate limiting.
pub fn close_class(code: Option<u16>) -> ErrorClass {
    match code {
        Some(1013) => ErrorClass::RateLimited,
        Some(1008) | Some(1011) | Some(1014) => ErrorClass::StreamError,
        Some(1002) | Some(1003) | Some(1007) | Some(1009) => ErrorClass::Protocol,
        _ => ErrorClass::Truncated,
    }
}

/// Records a piece of the transcript that arrived at `at`.
pub fn transcript(at: Instant, text: &str, rec: &mut Recorder) {
    if text.is_empty() {
        return;
    }
    rec.mark_at(
        at,
        Event::Token {
            kind: TokenKind::Visible,
            tokens: estimate_tokens(text),
            shows: text.chars().any(|c| !c.is_whitespace()),
        },
    );
    rec.push_answer(text);
}

/// A decoding failure as the run's error.
pub fn decode_error(e: AudioError, what: &str) -> ProbeError {
    ProbeError::new(ErrorClass::Decode, format!("{what}: {e}"))
}

/// Parses a text message as JSON (a server that sends anything else broke the protocol).
pub fn parse_event(text: &str) -> Result<Value, ProbeError> {
    serde_json::from_str(text).map_err(|e| {
        let head: String = text.chars().take(80).collect();
        ProbeError::new(
            ErrorClass::InvalidJson,
            format!("a text message is not JSON ({e}): {head}"),
        )
    })
}

/// An error event as the run's error: `rate_limited` when the server says it rate-limited
/// the session, `stream_error` otherwise.
pub fn error_event(v: &Value) -> ProbeError {
    let msg = error_message(v);
    let class = if msg.contains("rate_limit") || msg.contains("rate limit") {
        ErrorClass::RateLimited
    } else {
        ErrorClass::StreamError
    };
    ProbeError::new(class, format!("error event: {msg}"))
}

/// The message of an error event: `message`, `error.message` or `error` as text.
pub fn error_message(v: &Value) -> String {
    let e = v.get("error");
    let msg = v
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.and_then(|e| e.get("message")).and_then(Value::as_str))
        .or_else(|| e.and_then(Value::as_str))
        .unwrap_or("no message");
    match e.and_then(|e| e.get("code")).and_then(Value::as_str) {
        Some(code) => format!("{code}: {msg}"),
        None => msg.to_string(),
    }
}

/// An audio stream in any format, decoded piece by piece into a [`Listener`]: the audio of
/// `http-audio` and `ws-json-audio` answers. WAV and MP3 name their rate in their headers,
/// so the listener takes the rate when the first samples come out.
pub struct AudioIn {
    decoder: Decoder,
    listener: Listener,
    samples: Vec<f32>,
    pieces: u64,
}

impl AudioIn {
    pub fn new(
        format: Format,
        rate: Option<u32>,
        channels: Option<u16>,
        threshold_dbfs: f32,
    ) -> Result<Self, ProbeError> {
        let decoder =
            Decoder::new(format, rate, channels).map_err(|e| decode_error(e, format.as_str()))?;
        let listener = Listener::new(
            format.as_str(),
            decoder.rate().unwrap_or(48_000),
            threshold_dbfs,
        );
        Ok(AudioIn {
            decoder,
            listener,
            samples: Vec::new(),
            pieces: 0,
        })
    }

    /// Whether any audio was heard yet.
    pub fn started(&self) -> bool {
        self.listener.started()
    }

    /// Pieces of audio fed so far.
    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// Decodes a piece of the stream that arrived at `at`; its samples become one chunk.
    pub async fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        rec: &mut Recorder,
    ) -> Result<(), ProbeError> {
        self.pieces += 1;
        let what = self.decoder.format().as_str();
        self.decoder
            .push(bytes, &mut self.samples)
            .map_err(|e| decode_error(e, &format!("{what} audio, piece {}", self.pieces)))?;
        if self.samples.is_empty() {
            return Ok(());
        }
        if let Some(rate) = self.decoder.rate() {
            self.listener.set_rate(rate)?;
        }
        self.listener.hear(at, &self.samples, rec)?;
        if self.pieces.is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// The stream ended cleanly: a frame, page or WAV cut short is a `decode` error.
    pub fn finish(&self) -> Result<(), ProbeError> {
        self.decoder
            .finish()
            .map_err(|e| decode_error(e, self.decoder.format().as_str()))
    }
}

/// Events of a described audio stream (SSE, NDJSON or WebSocket text messages) applied to the
/// audio and the transcript: base64 audio at the description's `audio` paths, transcript
/// text at its `text` paths, its terminator and its error rule.
pub struct AudioEvents {
    spec: Arc<StreamSpec>,
    pieces: Vec<Piece>,
    units: u64,
    usage: Option<Usage>,
}

impl AudioEvents {
    pub fn new(spec: Arc<StreamSpec>) -> Self {
        AudioEvents {
            spec,
            pieces: Vec::new(),
            units: 0,
            usage: None,
        }
    }

    /// Events seen so far.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The terminator as the description says it, for a cut stream's message (`None`: the
    /// end of the body completes the stream).
    pub fn terminator(&self) -> Option<&str> {
        self.spec
            .terminator
            .as_ref()
            .map(|_| self.spec.terminator_text.as_str())
    }

    /// Usage the events reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Applies one event; `Ok(true)` at the terminator.
    pub async fn apply(
        &mut self,
        unit: &Unit,
        audio: &mut AudioIn,
        rec: &mut Recorder,
    ) -> Result<bool, ProbeError> {
        self.units += 1;
        self.pieces.clear();
        self.spec.interpret(unit, &mut self.pieces)?;
        let pieces = std::mem::take(&mut self.pieces);
        let mut ended = false;
        for piece in &pieces {
            match piece {
                Piece::Audio(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| {
                            ProbeError::new(
                                ErrorClass::Decode,
                                format!("the audio of event {} is not base64: {e}", self.units),
                            )
                        })?;
                    audio.feed(unit.at, &bytes, rec).await?;
                }
                Piece::Text {
                    kind: TokenKind::Visible,
                    text,
                    ..
                } => transcript(unit.at, text, rec),
                Piece::Usage { input, output, .. } => {
                    self.usage = Some(Usage {
                        input_tokens: *input,
                        output_tokens: *output,
                        reasoning_tokens: None,
                        estimated: false,
                    });
                }
                Piece::Terminator => {
                    rec.mark_at(unit.at, Event::Terminator);
                    ended = true;
                }
                Piece::Error(m) => {
                    return Err(ProbeError::new(ErrorClass::StreamError, m.clone()));
                }
                _ => {}
            }
        }
        self.pieces = pieces;
        Ok(ended)
    }
}
