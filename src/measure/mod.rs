//! Measures: pure functions from a timeline to latency SLI values (seconds).
//!
//! Each definition lives here once and is unit-tested on hand-built timelines. Latencies are
//! measured from the moment the request was handed to the connection (`RequestSent`), as
//! the design fixes; connection setup (resolve, TCP, TLS) is reported apart as
//! [`connect_time`] because a fresh connection per probe would otherwise add a handshake that
//! a warm client does not pay. Values are computed for every run; aggregation uses them only
//! for runs without an error.

pub mod audio;
pub mod sli;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::timeline::{Event, Timeline, TokenKind};
use sli::Sli;

/// The origin of every latency: the request was written (the start of the run if it never was).
pub fn origin(t: &Timeline) -> Duration {
    t.first(|e| matches!(e, Event::RequestSent))
        .unwrap_or(Duration::ZERO)
}

fn since_origin(t: &Timeline, at: Option<Duration>) -> Option<f64> {
    at.map(|a| a.saturating_sub(origin(t)).as_secs_f64())
}

/// Request written to the response headers; for voice protocols (no response head), to the
/// first audio chunk of any kind, silent or not.
pub fn time_to_first_byte(t: &Timeline) -> Option<f64> {
    since_origin(
        t,
        t.first(|e| matches!(e, Event::Headers { .. } | Event::Audio { .. })),
    )
}

/// Whether a token-bearing piece of this kind is a token for every measure here: reasoning
/// and visible pieces are; tool-call scaffolding (function names, JSON arguments) is not, in
/// every protocol. The one place this is decided: ttft, the cadence and
/// `reasoning_seconds` read only the pieces it admits.
pub fn is_token(kind: TokenKind) -> bool {
    match kind {
        TokenKind::Reasoning | TokenKind::Visible => true,
        TokenKind::Tool => false,
    }
}

/// Request written to the first token of any kind (reasoning counts; tool-call scaffolding
/// does not, see [`is_token`]; a role-only or empty delta is not a token and never reaches
/// the timeline).
pub fn time_to_first_token(t: &Timeline) -> Option<f64> {
    since_origin(
        t,
        t.first(|e| matches!(e, Event::Token { kind, .. } if is_token(*kind))),
    )
}

/// Request written to the first content a renderer would show: a visible piece with a
/// non-whitespace character (reasoning, tool calls and a leading "\n\n" do not count).
pub fn time_to_first_visible_token(t: &Timeline) -> Option<f64> {
    since_origin(t, first_visible(t))
}

fn first_visible(t: &Timeline) -> Option<Duration> {
    t.first(|e| {
        matches!(
            e,
            Event::Token {
                kind: TokenKind::Visible,
                shows: true,
                ..
            }
        )
    })
}

/// Request written to the stream's terminator, or to the end of the body when there is none.
/// Absent when the response never completed.
pub fn time_to_completion(t: &Timeline) -> Option<f64> {
    let end = t
        .first(|e| matches!(e, Event::Terminator))
        .or_else(|| t.first(|e| matches!(e, Event::Done)));
    since_origin(t, end)
}

/// Connection setup (resolve + proxy + TCP + TLS) before the request was written; not an
/// SLI. The sum of the phases the transport recorded (a credential fetch is not in it);
/// for a timeline without them, the start of the run to the last connection event.
pub fn connect_time(t: &Timeline) -> Option<f64> {
    t.net.setup_seconds().or_else(|| {
        t.last(|e| matches!(e, Event::Connected | Event::TlsEstablished))
            .map(|d| d.as_secs_f64())
    })
}

/// Cadence of a stream after the first visible token.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StreamStats {
    /// Token pieces of any kind (reasoning and visible; tool scaffolding is not a token).
    pub chunks: u32,
    pub visible_tokens: u64,
    pub reasoning_tokens: u64,
    /// Tokens of each token-bearing piece from the first visible one on.
    pub tokens_per_chunk: Vec<u32>,
    /// Gaps between consecutive token-bearing pieces from the first visible one on (seconds).
    pub gaps: Vec<f64>,
    pub longest_gap: Option<f64>,
    /// Gaps longer than the probe's stall threshold.
    pub stalls: u32,
    /// Visible tokens after the first visible piece, per second until the last visible piece.
    pub output_tokens_per_second: Option<f64>,
    /// First token to first visible token (time spent reasoning before the answer shows).
    pub reasoning_seconds: Option<f64>,
}

/// Stream cadence over the token pieces ([`is_token`]); `None` when the timeline holds no
/// token at all (a tool-call-only answer has none).
pub fn stream_stats(t: &Timeline, stall: Duration) -> Option<StreamStats> {
    let tokens: Vec<(Duration, TokenKind, u32, bool)> = t
        .events
        .iter()
        .filter_map(|e| match e.event {
            Event::Token {
                kind,
                tokens,
                shows,
            } if is_token(kind) => Some((e.at, kind, tokens, shows)),
            _ => None,
        })
        .collect();
    if tokens.is_empty() {
        return None;
    }
    let mut s = StreamStats {
        chunks: tokens.len() as u32,
        ..Default::default()
    };
    for (_, kind, n, _) in &tokens {
        match kind {
            TokenKind::Visible => s.visible_tokens += u64::from(*n),
            TokenKind::Reasoning => s.reasoning_tokens += u64::from(*n),
            TokenKind::Tool => {}
        }
    }
    if let Some(first) = tokens
        .iter()
        .position(|(_, k, _, shows)| *k == TokenKind::Visible && *shows)
    {
        let after = &tokens[first..];
        s.tokens_per_chunk = after.iter().map(|(_, _, n, _)| *n).collect();
        s.gaps = after
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs_f64())
            .collect();
        // A run that failed after its answer started (deadline, broken stream) was silent
        // from its last piece to the failure: that open gap is felt too.
        let last = after.last().map(|x| x.0).unwrap_or_default();
        if let Some(abort) = t.first(|e| matches!(e, Event::Abort)).filter(|a| *a > last) {
            s.gaps.push((abort - last).as_secs_f64());
        }
        s.longest_gap = s.gaps.iter().copied().reduce(f64::max);
        let limit = stall.as_secs_f64();
        s.stalls = s.gaps.iter().filter(|g| **g > limit).count() as u32;
        let visible: Vec<&(Duration, TokenKind, u32, bool)> =
            after.iter().filter(|x| x.1 == TokenKind::Visible).collect();
        if let (Some(f), Some(l)) = (visible.first(), visible.last()) {
            let span = (l.0 - f.0).as_secs_f64();
            let later: u64 = visible.iter().skip(1).map(|x| u64::from(x.2)).sum();
            if span > 0.0 && later > 0 {
                s.output_tokens_per_second = Some(later as f64 / span);
            }
        }
        s.reasoning_seconds = Some((tokens[first].0 - tokens[0].0).as_secs_f64());
    }
    Some(s)
}

/// Every latency SLI this timeline yields (`inter_chunk_gap` is the run's longest gap).
pub fn latencies(t: &Timeline, stream: Option<&StreamStats>) -> BTreeMap<Sli, f64> {
    let mut out = BTreeMap::new();
    let pairs = [
        (Sli::TimeToFirstByte, time_to_first_byte(t)),
        (Sli::TimeToFirstToken, time_to_first_token(t)),
        (Sli::TimeToFirstVisibleToken, time_to_first_visible_token(t)),
        (Sli::TimeToCompletion, time_to_completion(t)),
        (Sli::InterChunkGap, stream.and_then(|s| s.longest_gap)),
        (Sli::TimeToFirstAudio, audio::time_to_first_audio(t)),
        (Sli::LeadingSilence, audio::leading_silence(t)),
    ];
    for (sli, v) in pairs {
        if let Some(v) = v {
            out.insert(sli, v);
        }
    }
    out
}

#[cfg(test)]
mod tests;
