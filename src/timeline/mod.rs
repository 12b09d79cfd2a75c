//! The timeline: what arrived during one request and when, on one monotonic clock.
//!
//! A driver owns a [`Recorder`] for the length of one case run. It stamps each event the
//! moment the bytes are handed to it (before any parsing) with [`Recorder::mark`]. Measures
//! and checks are pure functions of the finished [`Timeline`].

pub mod trace;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;

/// A class of failure. The set is closed so that it is safe as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The case's hard deadline passed.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The TCP connection could not be opened (refused, unreachable).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// The peer broke the protocol (malformed HTTP, unexpected frames).
    Protocol,
    /// A non-2xx status other than 429.
    HttpStatus,
    /// HTTP 429: the endpoint rate-limited the probe.
    RateLimited,
    /// The body was expected to be JSON and was not (or not UTF-8).
    InvalidJson,
    /// The body exceeded the configured cap.
    BodyTooLarge,
    /// Content could not be decoded (audio, base64, encoding).
    Decode,
    /// The request could not be built from the case (e.g. invalid header value).
    Request,
    /// A stream ended without its terminator (`[DONE]`, `message_stop`, `response.completed`).
    Truncated,
    /// The server reported an error inside a stream that had started with 200.
    StreamError,
    /// An asynchronous job ended in its failed state (the server's reason is the message).
    JobFailed,
    /// The forward proxy could not be reached or refused the request (CONNECT answered
    /// with a non-2xx status, 407 for missing credentials).
    Proxy,
    /// A followed redirect pointed back to an address already visited in the chain.
    RedirectLoop,
    /// A credential could not be obtained (token endpoint failed, key file unusable).
    Auth,
}

impl ErrorClass {
    /// Every class (the closed set of outcome label values besides `ok` and `check_failed`).
    pub const ALL: &'static [ErrorClass] = &[
        ErrorClass::Timeout,
        ErrorClass::Dns,
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Reset,
        ErrorClass::Protocol,
        ErrorClass::HttpStatus,
        ErrorClass::RateLimited,
        ErrorClass::InvalidJson,
        ErrorClass::BodyTooLarge,
        ErrorClass::Decode,
        ErrorClass::Request,
        ErrorClass::Truncated,
        ErrorClass::StreamError,
        ErrorClass::JobFailed,
        ErrorClass::Proxy,
        ErrorClass::RedirectLoop,
        ErrorClass::Auth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Dns => "dns",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Reset => "reset",
            ErrorClass::Protocol => "protocol",
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::InvalidJson => "invalid_json",
            ErrorClass::BodyTooLarge => "body_too_large",
            ErrorClass::Decode => "decode",
            ErrorClass::Request => "request",
            ErrorClass::Truncated => "truncated",
            ErrorClass::StreamError => "stream_error",
            ErrorClass::JobFailed => "job_failed",
            ErrorClass::Proxy => "proxy",
            ErrorClass::RedirectLoop => "redirect_loop",
            ErrorClass::Auth => "auth",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest error message kept (after redaction).
pub const MAX_ERROR_CHARS: usize = 600;

/// A classified failure of one case run. The message is redacted of secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ProbeError {
    pub class: ErrorClass,
    pub message: String,
}

impl ProbeError {
    /// Redacts secrets from the whole message first, then bounds its length (cutting first
    /// could leave part of a secret that no longer matches).
    pub fn new(class: ErrorClass, message: impl AsRef<str>) -> Self {
        let redacted = crate::secret::redact(message.as_ref());
        let message = if redacted.chars().count() > MAX_ERROR_CHARS {
            let mut m: String = redacted.chars().take(MAX_ERROR_CHARS).collect();
            m.push('…');
            m
        } else {
            redacted
        };
        ProbeError { class, message }
    }
}

/// What happened at one instant of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The host name resolved.
    Resolved,
    /// The TCP connection is open.
    Connected,
    /// The TLS handshake completed.
    TlsEstablished,
    /// The request head and body were handed to the connection.
    RequestSent,
    /// The response status line and headers arrived.
    Headers { status: u16 },
    /// A piece of the response body arrived.
    Body { bytes: usize },
    /// A content-bearing piece of a stream (a delta with text, reasoning or a tool call).
    Token {
        kind: TokenKind,
        /// Tokens in this piece: from the server's usage when it reports it per chunk,
        /// otherwise estimated from the text.
        tokens: u32,
        /// Whether the piece holds a character a renderer would show (not only whitespace).
        shows: bool,
    },
    /// A WebSocket upgrade was accepted (status 101).
    Upgraded,
    /// A chunk of audio arrived and was decoded: where it sits in the decoded stream, how
    /// long it plays and how loud it is (mean-removed RMS, dBFS).
    Audio {
        position: Duration,
        duration: Duration,
        dbfs: f32,
    },
    /// A job status poll was answered (`job` protocol; its own connection's phases are not
    /// recorded, so that connect and first-byte times stay those of the submit).
    Poll { status: u16 },
    /// The stream's terminator arrived (`[DONE]`, `message_stop`, `response.completed`).
    Terminator,
    /// The response (or stream) is complete.
    Done,
    /// The run failed here (deadline, broken connection, error event): a stream that went
    /// silent is measured up to this moment.
    Abort,
}

/// What a token-bearing piece of a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Reasoning or thinking content: never shown as the answer.
    Reasoning,
    /// Answer text (or a refusal) that a renderer shows.
    Visible,
    /// Tool-call scaffolding (names, JSON arguments): not shown as text.
    Tool,
}

/// Token usage reported by the server (or estimated, then `estimated` is true).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub estimated: bool,
}

/// An event and the time it happened, measured from the start of the case run.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    pub at: Duration,
    pub event: Event,
}

/// The final response as received (body capped by the driver).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Everything one case run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Wall-clock time of the start, for reports only; never used for durations.
    pub started_at: SystemTime,
    pub events: Vec<Stamped>,
    pub response: Option<Response>,
    pub error: Option<ProbeError>,
    /// The answer text assembled by a protocol driver (chat: the visible text).
    pub answer_text: Option<String>,
    /// The JSON document paths read from (chat streams: a summary with `model`, `text`, `usage`).
    pub doc: Option<serde_json::Value>,
    pub usage: Option<Usage>,
    /// Voice protocols: what the decoded audio held.
    pub audio: Option<AudioSummary>,
    /// `job`: how the job was followed.
    pub job: Option<JobSummary>,
    /// The driver stopped reading at the first visible token, as the probe asked.
    pub stopped_early: bool,
    /// How the network was crossed: the HTTP version spoken.
    pub net: NetSummary,
}

impl Timeline {
    /// A timeline started at `started_at` with nothing recorded yet.
    pub fn empty(started_at: SystemTime) -> Timeline {
        Timeline {
            started_at,
            events: Vec::with_capacity(16),
            response: None,
            error: None,
            answer_text: None,
            doc: None,
            usage: None,
            audio: None,
            job: None,
            stopped_early: false,
            net: NetSummary::default(),
        }
    }
}

/// How one case run crossed the network, beyond the timeline's events (case records only).
///
/// The setup phases of the run's first connection partition its setup time: `dns_seconds`
/// (resolving the target, or the proxy when there is one), `proxy_seconds` (TCP to the
/// proxy and its CONNECT answer), `tcp_seconds` (TCP to the target; none through a proxy,
/// whose TCP connect is in `proxy_seconds`) and `tls_seconds` (the handshake with the
/// target, through the tunnel when proxied). A reused connection has none of them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NetSummary {
    /// The protocol of the (last) response: `http/1.1`, `h2` (over TLS) or `h2c`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_version: Option<&'static str>,
    /// `fresh` (a new connection per case run) or `reuse` (a keep-alive pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<&'static str>,
    /// Under `reuse`: whether this run's first request went over a pooled connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_seconds: Option<f64>,
    /// The proxy the run went through (`host:port`, never credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Time spent obtaining a credential for this run (a token fetch; zero when cached),
    /// kept out of every latency and of the connection phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_seconds: Option<f64>,
    /// Redirects followed, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<RedirectHop>,
}

/// The setup phases of one new connection (seconds each).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Phases {
    pub dns: Option<f64>,
    pub proxy: Option<f64>,
    pub tcp: Option<f64>,
    pub tls: Option<f64>,
}

/// One followed redirect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedirectHop {
    pub status: u16,
    /// Where it pointed (redacted; the query string dropped).
    pub location: String,
    /// The new address is another origin (scheme, host or port): credentials were not sent.
    pub cross_origin: bool,
    /// When the redirect's head arrived, from the start of the run (seconds).
    pub at_seconds: f64,
}

impl NetSummary {
    /// Connection setup of the run's first new connection: the sum of its phases.
    pub fn setup_seconds(&self) -> Option<f64> {
        let parts = [
            self.dns_seconds,
            self.proxy_seconds,
            self.tcp_seconds,
            self.tls_seconds,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

/// How a job was followed to completion.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct JobSummary {
    /// The server's job id (reports only; never a label).
    pub id: Option<String>,
    /// `poll` or `stream`.
    pub mode: &'static str,
    /// Status requests answered (polls) or status events read (stream).
    pub polls: u32,
    /// Submit request written to its response read (seconds).
    pub submit_seconds: Option<f64>,
    /// The server's own queue time from the final status (seconds).
    pub queue_seconds: Option<f64>,
    /// How far before the measured completion the job may have become done: from the
    /// request of the last status that was not done to the done status (seconds). Zero for
    /// a stream, whose done event is pushed when it happens.
    pub completion_error_seconds: Option<f64>,
    /// The longest interval between status requests (seconds).
    pub max_poll_interval: Option<f64>,
}

/// The decoded audio of one response, summarised by the driver's analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioSummary {
    /// `opus`, `ogg-opus`, `pcm16`, `pcmu` or `pcma`.
    pub format: &'static str,
    pub sample_rate: u32,
    /// Position of the audible onset in the decoded stream; `None` when nothing was audible.
    #[serde(serialize_with = "secs_opt")]
    pub onset: Option<Duration>,
    /// The first sample of the onset window that reaches the threshold's amplitude: it
    /// decides which chunk holds the onset.
    #[serde(serialize_with = "secs_opt")]
    pub first_audible: Option<Duration>,
    /// Decoded audio in total.
    #[serde(serialize_with = "secs")]
    pub total: Duration,
    /// Audio chunks received (packets or deltas).
    pub chunks: u64,
    /// The level an onset had to exceed (dBFS).
    pub threshold_dbfs: f32,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn secs_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Timeline {
    /// The first time `pred` holds for an event.
    pub fn first(&self, pred: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.events.iter().find(|e| pred(&e.event)).map(|e| e.at)
    }

    /// The last time `pred` holds for an event.
    pub fn last(&self, pred: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.events
            .iter()
            .rev()
            .find(|e| pred(&e.event))
            .map(|e| e.at)
    }
}

/// Records a timeline against one monotonic clock started at construction.
#[derive(Debug)]
pub struct Recorder {
    t0: Instant,
    timeline: Timeline,
    body_events: u64,
    audio_events: u64,
    token_events: u64,
    /// Index of the last audio event kept (merging needs no search).
    last_audio: Option<usize>,
}

/// Body-piece events kept per run (later pieces are counted, not stored).
pub const MAX_BODY_EVENTS: u64 = 1024;
/// Token events kept per run (a very long answer is still counted in the answer text up
/// to its cap; cadence is judged on the first pieces).
pub const MAX_TOKEN_EVENTS: u64 = 200_000;
/// Answer text kept per run (bytes); a hostile stream cannot grow memory past it.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Audio-chunk events kept per run (10 minutes of 20 ms packets); later chunks are merged
/// into the last one kept, so durations stay whole and memory bounded.
pub const MAX_AUDIO_EVENTS: u64 = 30_000;

impl Default for Recorder {
    fn default() -> Self {
        Self::start()
    }
}

impl Recorder {
    /// Starts the clock now.
    pub fn start() -> Self {
        Recorder {
            t0: Instant::now(),
            body_events: 0,
            audio_events: 0,
            token_events: 0,
            last_audio: None,
            timeline: Timeline::empty(SystemTime::now()),
        }
    }

    /// Time since the start.
    #[inline]
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Stamps `event` now.
    #[inline]
    pub fn mark(&mut self, event: Event) -> Duration {
        let at = self.t0.elapsed();
        self.timeline.events.push(Stamped { at, event });
        at
    }

    /// Records an event stamped earlier (the instant bytes arrived, taken before parsing).
    pub fn mark_at(&mut self, at: Instant, event: Event) {
        if matches!(event, Event::Body { .. }) {
            // A hostile server can send a body one byte per frame: keep the first pieces
            // only (no measure needs more) so memory stays bounded.
            self.body_events += 1;
            if self.body_events > MAX_BODY_EVENTS {
                return;
            }
        }
        if matches!(event, Event::Token { .. }) {
            self.token_events += 1;
            if self.token_events > MAX_TOKEN_EVENTS {
                return;
            }
        }
        if let Event::Audio { duration, .. } = event {
            self.audio_events += 1;
            if self.audio_events > MAX_AUDIO_EVENTS {
                if let Some(Stamped {
                    event: Event::Audio { duration: d, .. },
                    ..
                }) = self
                    .last_audio
                    .and_then(|i| self.timeline.events.get_mut(i))
                {
                    *d += duration;
                }
                return;
            }
            self.last_audio = Some(self.timeline.events.len());
        }
        let at = at.saturating_duration_since(self.t0);
        self.timeline.events.push(Stamped { at, event });
    }

    /// Notes that the driver stopped reading early on purpose.
    pub fn stop_early(&mut self) {
        self.timeline.stopped_early = true;
    }

    /// Records how the job has been followed so far.
    pub fn set_job(&mut self, summary: JobSummary) {
        self.timeline.job = Some(summary);
    }

    /// Notes the protocol a response came over.
    pub fn set_http_version(&mut self, v: &'static str) {
        self.timeline.net.http_version = Some(v);
    }

    /// The network summary, for the transport to fill in.
    pub fn net_mut(&mut self) -> &mut NetSummary {
        &mut self.timeline.net
    }

    /// Records the setup phases of a new connection; only the run's first connection's
    /// (later ones, after a redirect, are inside the latency the user feels).
    pub fn set_phases(&mut self, p: Phases) {
        let n = &mut self.timeline.net;
        if n.setup_seconds().is_some() {
            return;
        }
        n.dns_seconds = p.dns;
        n.proxy_seconds = p.proxy;
        n.tcp_seconds = p.tcp;
        n.tls_seconds = p.tls;
    }

    /// Records what the decoded audio held.
    pub fn set_audio(&mut self, summary: AudioSummary) {
        self.timeline.audio = Some(summary);
    }

    /// Body pieces seen, including those not kept as events.
    pub fn body_pieces(&self) -> u64 {
        self.body_events
    }

    pub fn set_response(&mut self, response: Response) {
        self.timeline.response = Some(response);
    }

    /// Records the failure; the first one wins.
    pub fn fail(&mut self, error: ProbeError) {
        if self.timeline.error.is_none() {
            self.timeline.error = Some(error);
            self.mark(Event::Abort);
        }
    }

    /// Appends answer text as it arrives (kept even if the deadline cuts the run short).
    pub fn push_answer(&mut self, text: &str) {
        let a = self.timeline.answer_text.get_or_insert_with(String::new);
        let room = MAX_ANSWER_BYTES.saturating_sub(a.len());
        if text.len() <= room {
            a.push_str(text);
        } else {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            a.push_str(&text[..cut]);
        }
    }

    /// The answer text so far.
    pub fn answer(&self) -> Option<&str> {
        self.timeline.answer_text.as_deref()
    }

    /// The last time `pred` held for a recorded event.
    pub fn last_at(&self, pred: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.timeline.last(pred)
    }

    /// An instant as a time on this clock (zero before the start).
    pub fn elapsed_at(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.t0)
    }

    /// The instant of a time on this clock.
    pub fn instant_of(&self, at: Duration) -> Instant {
        self.t0 + at
    }

    /// Sets what a protocol driver assembled from the response.
    pub fn set_answer(
        &mut self,
        text: Option<String>,
        doc: Option<serde_json::Value>,
        usage: Option<Usage>,
    ) {
        if text.is_some() {
            self.timeline.answer_text = text;
        }
        self.timeline.doc = doc;
        self.timeline.usage = usage;
    }

    pub fn finish(self) -> Timeline {
        self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_stamped_in_order_on_one_clock() {
        let mut r = Recorder::start();
        let a = r.mark(Event::Connected);
        std::thread::sleep(Duration::from_millis(2));
        let b = r.mark(Event::Done);
        assert!(b >= a + Duration::from_millis(2));
        let t = r.finish();
        assert_eq!(t.first(|e| matches!(e, Event::Done)), Some(b));
        assert_eq!(t.first(|e| matches!(e, Event::Headers { .. })), None);
    }

    #[test]
    fn first_error_wins_and_is_redacted() {
        crate::secret::register("timeline-secret-xyz");
        let mut r = Recorder::start();
        r.fail(ProbeError::new(
            ErrorClass::Connect,
            "refused with timeline-secret-xyz",
        ));
        r.fail(ProbeError::new(ErrorClass::Timeout, "late"));
        let t = r.finish();
        let e = t.error.unwrap();
        assert_eq!(e.class, ErrorClass::Connect);
        assert!(!e.message.contains("timeline-secret-xyz"));
    }
}
