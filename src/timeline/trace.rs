//! Trace context of a case run: the W3C trace id and span id canary gives each case run, the
//! `traceparent` header its probe requests carry, the child spans recorded while the case
//! runs (freshness reads, the canary fact, judge calls), and the span events derived from the
//! finished timeline (connect, TLS, headers, first token, first visible token, first audible
//! audio, each stall, completion). `sink::otlp` encodes the result as OTLP spans; `serve`'s
//! exposition uses the trace id as a histogram exemplar.
//!
//! Two task-locals carry the context without threading it through every signature:
//! [`CASE`] is set by the executor around one case run (child spans attach to it from any
//! code awaited inside, see [`child`]); [`REQUEST`] is set by `drivers::run_case` around the
//! probe request itself, only when the endpoint allows `traceparent`, and read by the HTTP
//! and WebSocket connection code when it writes the request head.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Event, Timeline, TokenKind};

/// A W3C trace context: the case run's trace id and its own span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// 64 random bits: SipHash with the process's random keys over a counter, the time and the
/// process id (unique per call; not for secrets).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A new span id (never all zeros, which W3C forbids).
pub fn new_span_id() -> [u8; 8] {
    loop {
        let v = random_u64();
        if v != 0 {
            return v.to_be_bytes();
        }
    }
}

impl TraceContext {
    /// A new trace with a new root span.
    pub fn new_root() -> Self {
        let mut trace_id = [0u8; 16];
        loop {
            trace_id[..8].copy_from_slice(&random_u64().to_be_bytes());
            trace_id[8..].copy_from_slice(&random_u64().to_be_bytes());
            if trace_id != [0u8; 16] {
                break;
            }
        }
        TraceContext {
            trace_id,
            span_id: new_span_id(),
        }
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// `00-<trace id>-<span id>-01`: version 00, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id_hex(), self.span_id_hex())
    }

    /// Parses a `traceparent` value (version 00 layout); `None` when malformed or all-zero.
    pub fn parse(value: &str) -> Option<TraceContext> {
        let parts: Vec<&str> = value.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return None;
        };
        if version.len() != 2 || *version == "ff" || flags.len() != 2 {
            return None;
        }
        let trace_id: [u8; 16] = unhex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = unhex(span)?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, span_id })
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2)
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A span recorded inside a case run (freshness read, canary fact, judge call).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpan {
    pub name: String,
    pub span_id: [u8; 8],
    pub start: SystemTime,
    pub end: SystemTime,
    /// Why it failed (redacted); `None` when it succeeded.
    pub error: Option<String>,
    pub attributes: Vec<(String, String)>,
}

/// What the executor keeps for one case run while it runs.
#[derive(Debug)]
pub struct CaseScope {
    pub ctx: TraceContext,
    children: Mutex<Vec<ChildSpan>>,
}

impl CaseScope {
    pub fn new(ctx: TraceContext) -> Arc<Self> {
        Arc::new(CaseScope {
            ctx,
            children: Mutex::new(Vec::new()),
        })
    }

    /// The child spans recorded so far, in the order they ended.
    pub fn children(&self) -> Vec<ChildSpan> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

tokio::task_local! {
    /// The case run being executed (set by the executor around one case run).
    pub static CASE: Arc<CaseScope>;
    /// The `traceparent` the probe request carries (set by `drivers::run_case` when the
    /// endpoint allows it).
    pub static REQUEST: String;
}

/// The trace context of the case run this task executes, if any.
pub fn current() -> Option<TraceContext> {
    CASE.try_with(|c| c.ctx).ok()
}

/// The `traceparent` header value the probe request being written should carry.
pub fn request_traceparent() -> Option<http::HeaderValue> {
    REQUEST
        .try_with(|v| http::HeaderValue::from_str(v).ok())
        .ok()
        .flatten()
}

/// A child span being timed; record it with [`ChildGuard::end`] (dropped unended, it is
/// recorded as ended then, without an error).
#[derive(Debug)]
pub struct ChildGuard {
    span: Option<ChildSpan>,
    scope: Option<Arc<CaseScope>>,
}

impl ChildGuard {
    /// Adds an attribute (a value from a target must not be a secret: it is exported).
    pub fn attribute(&mut self, key: &str, value: impl Into<String>) {
        if let Some(s) = self.span.as_mut() {
            s.attributes.push((key.to_string(), value.into()));
        }
    }

    /// Ends the span now; `Err(reason)` marks it failed (the reason is redacted).
    pub fn end(mut self, result: Result<(), &str>) {
        if let Some(s) = self.span.as_mut() {
            s.error = result.err().map(crate::secret::redact);
        }
        self.record();
    }

    fn record(&mut self) {
        if let (Some(mut s), Some(scope)) = (self.span.take(), self.scope.take()) {
            s.end = SystemTime::now();
            scope
                .children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.record();
    }
}

/// Starts a child span of the current case run: the hook for work a case run does besides
/// its probe request. Freshness reads (`canary.freshness.read`), the canary fact's write
/// (`canary.fact.write`) and each of its questions (`canary.fact.question`) use it; a judge
/// call should open `canary.judge` around its request the same way:
///
/// ```ignore
/// let span = crate::timeline::trace::child("canary.judge");
/// let verdict = call_the_judge().await;
/// span.end(verdict.as_ref().map(|_| ()).map_err(|e| e.as_str()));
/// ```
///
/// Outside a case run (no [`CASE`] in this task) the guard records nothing. Work spawned
/// onto another task does not inherit the task-local: start and end the span in the task
/// that awaits the work.
pub fn child(name: &str) -> ChildGuard {
    match CASE.try_with(Arc::clone) {
        Ok(scope) => {
            let now = SystemTime::now();
            ChildGuard {
                span: Some(ChildSpan {
                    name: name.to_string(),
                    span_id: new_span_id(),
                    start: now,
                    end: now,
                    error: None,
                    attributes: Vec::new(),
                }),
                scope: Some(scope),
            }
        }
        Err(_) => ChildGuard {
            span: None,
            scope: None,
        },
    }
}

/// One event of the case span: a name, its wall-clock time and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub at: SystemTime,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// An attribute value of a span or event.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The span of one case run, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseTrace {
    pub ctx: TraceContext,
    pub start: SystemTime,
    pub end: SystemTime,
    /// Whether the probe request carried `traceparent` (the endpoint's `traceparent`).
    pub propagated: bool,
    pub events: Vec<SpanEvent>,
    pub children: Vec<ChildSpan>,
    /// The model that answered (`model` of the response document), for `gen_ai.response.model`.
    pub response_model: Option<String>,
}

/// The span events of a probe timeline, in time order: `dns`, `connect`, `tls`, `upgrade`,
/// `request_sent`, `headers`, `first_token`, `first_visible_token`, `first_audible_audio`,
/// one `stall` per gap between stream pieces longer than `stall` (stamped at the piece that
/// ended it, with `canary.gap_seconds`), `completion` and `error`. `first_audio` is the
/// measured time to first audio (seconds from the request), which the audio onset fixes
/// inside a chunk rather than at an event.
pub fn span_events(t: &Timeline, stall: Duration, first_audio: Option<f64>) -> Vec<SpanEvent> {
    let wall = |at: Duration| t.started_at + at;
    let mut out: Vec<(Duration, SpanEvent)> = Vec::new();
    let mut push = |at: Duration, name: &'static str, attributes| {
        out.push((
            at,
            SpanEvent {
                name,
                at: wall(at),
                attributes,
            },
        ))
    };
    type IsEvent = fn(&Event) -> bool;
    let firsts: [(&'static str, IsEvent); 5] = [
        ("dns", |e| matches!(e, Event::Resolved)),
        ("connect", |e| matches!(e, Event::Connected)),
        ("tls", |e| matches!(e, Event::TlsEstablished)),
        ("upgrade", |e| matches!(e, Event::Upgraded)),
        ("request_sent", |e| matches!(e, Event::RequestSent)),
    ];
    for (name, pred) in firsts {
        if let Some(at) = t.first(pred) {
            push(at, name, Vec::new());
        }
    }
    if let Some(s) = t.events.iter().find_map(|e| match e.event {
        Event::Headers { status } => Some((e.at, status)),
        _ => None,
    }) {
        push(
            s.0,
            "headers",
            vec![("http.response.status_code", AttrValue::Int(i64::from(s.1)))],
        );
    }
    let tokens: Vec<(Duration, TokenKind, bool)> = t
        .events
        .iter()
        .filter_map(|e| match e.event {
            Event::Token { kind, shows, .. } if crate::measure::is_token(kind) => {
                Some((e.at, kind, shows))
            }
            _ => None,
        })
        .collect();
    if let Some((at, ..)) = tokens.first() {
        push(*at, "first_token", Vec::new());
    }
    if let Some(i) = tokens
        .iter()
        .position(|(_, k, shows)| *k == TokenKind::Visible && *shows)
    {
        push(tokens[i].0, "first_visible_token", Vec::new());
        // Stalls: the same gaps as the cadence measures (from the first visible piece on).
        let limit = stall.as_secs_f64();
        for w in tokens[i..].windows(2) {
            let gap = (w[1].0 - w[0].0).as_secs_f64();
            if gap > limit {
                push(
                    w[1].0,
                    "stall",
                    vec![("canary.gap_seconds", AttrValue::Float(gap))],
                );
            }
        }
    }
    if let Some(s) = first_audio {
        let at = crate::measure::origin(t) + Duration::from_secs_f64(s.max(0.0));
        push(at, "first_audible_audio", Vec::new());
    }
    let end = t
        .first(|e| matches!(e, Event::Terminator))
        .or_else(|| t.first(|e| matches!(e, Event::Done)));
    if let Some(at) = end {
        push(at, "completion", Vec::new());
    }
    if let (Some(e), Some(at)) = (&t.error, t.first(|e| matches!(e, Event::Abort))) {
        push(
            at,
            "error",
            vec![
                ("error.type", AttrValue::Str(e.class.as_str().to_string())),
                ("exception.message", AttrValue::Str(e.message.clone())),
            ],
        );
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Stamped;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let c = TraceContext::new_root();
        let tp = c.traceparent();
        assert_eq!(tp.len(), 55);
        assert_eq!(TraceContext::parse(&tp), Some(c));
        assert_ne!(TraceContext::new_root().trace_id, c.trace_id);
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-0000000000000001-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333é-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn child_spans_attach_to_the_case_in_scope_only() {
        // Outside a case: nothing recorded, no panic.
        child("outside").end(Ok(()));
        let scope = CaseScope::new(TraceContext::new_root());
        crate::secret::register("sk-abcdefghijklmnopqrstuvwxyz");
        CASE.scope(scope.clone(), async {
            assert_eq!(current(), Some(scope.ctx));
            let mut s = child("canary.judge");
            s.attribute("k", "v");
            s.end(Err("judge said no: Bearer sk-abcdefghijklmnopqrstuvwxyz"));
            drop(child("dropped"));
        })
        .await;
        let c = scope.children();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "canary.judge");
        assert_eq!(c[0].attributes, vec![("k".to_string(), "v".to_string())]);
        assert!(!c[0].error.as_deref().unwrap_or("").contains("sk-abc"));
        assert!(c[1].error.is_none());
        assert!(request_traceparent().is_none());
    }

    #[test]
    fn events_follow_the_timeline() {
        let ms = Duration::from_millis;
        let mut t = Timeline::empty(SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let tok = |kind, shows| Event::Token {
            kind,
            tokens: 1,
            shows,
        };
        for (at, event) in [
            (ms(1), Event::Connected),
            (ms(2), Event::RequestSent),
            (ms(10), Event::Headers { status: 200 }),
            (ms(20), tok(TokenKind::Reasoning, true)),
            (ms(30), tok(TokenKind::Visible, false)),
            (ms(40), tok(TokenKind::Visible, true)),
            (ms(1600), tok(TokenKind::Visible, true)),
            (ms(1700), Event::Terminator),
        ] {
            t.events.push(Stamped { at, event });
        }
        let ev = span_events(&t, Duration::from_secs(1), None);
        let names: Vec<&str> = ev.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "connect",
                "request_sent",
                "headers",
                "first_token",
                "first_visible_token",
                "stall",
                "completion"
            ]
        );
        assert_eq!(ev[4].at, t.started_at + ms(40));
        assert_eq!(ev[5].at, t.started_at + ms(1600));
    }
}
