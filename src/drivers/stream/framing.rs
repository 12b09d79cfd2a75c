//! The framings a described stream may use, behind one incremental push interface: each
//! read's bytes go in with the instant they arrived, complete units come out stamped with
//! the arrival of the read that completed them.

use std::time::Instant;

use super::eventstream::EventStreamParser;
use super::jsonseq::JsonSeqParser;
use super::ndjson::NdjsonParser;
pub use super::unit::{Unit, UnitKind};
use crate::drivers::sse::{SseEvent, SseParser};
use crate::timeline::ProbeError;

/// How a body is cut into units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Server-Sent Events: one unit per dispatched event (`event:` name, `data:` text).
    Sse,
    /// One JSON document per line.
    Ndjson,
    /// A JSON array streamed element by element (`[{...},\n{...}]`).
    JsonSeq,
    /// AWS `application/vnd.amazon.eventstream` binary frames.
    AwsEventStream,
}

impl Framing {
    pub const ALL: &'static [Framing] = &[
        Framing::Sse,
        Framing::Ndjson,
        Framing::JsonSeq,
        Framing::AwsEventStream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Sse => "sse",
            Framing::Ndjson => "ndjson",
            Framing::JsonSeq => "json-seq",
            Framing::AwsEventStream => "aws-eventstream",
        }
    }

    pub fn parse(s: &str) -> Option<Framing> {
        Framing::ALL.iter().copied().find(|f| f.as_str() == s)
    }

    /// The `Accept` header a probe sends for this framing.
    pub fn accept(self) -> &'static str {
        match self {
            Framing::Sse => "text/event-stream",
            Framing::Ndjson => "application/x-ndjson",
            Framing::JsonSeq => "application/json",
            Framing::AwsEventStream => "application/vnd.amazon.eventstream",
        }
    }
}

/// An incremental parser for one framing.
#[derive(Debug)]
pub enum Framer {
    Sse(SseParser, Vec<SseEvent>),
    Ndjson(NdjsonParser),
    JsonSeq(JsonSeqParser),
    EventStream(EventStreamParser),
}

impl Framer {
    /// A parser for `framing`; `max_unit` bounds the bytes one unit may occupy.
    pub fn new(framing: Framing, max_unit: usize) -> Framer {
        match framing {
            Framing::Sse => Framer::Sse(SseParser::new(max_unit), Vec::new()),
            Framing::Ndjson => Framer::Ndjson(NdjsonParser::new(max_unit)),
            Framing::JsonSeq => Framer::JsonSeq(JsonSeqParser::new(max_unit)),
            Framing::AwsEventStream => Framer::EventStream(EventStreamParser::new(max_unit)),
        }
    }

    /// Feeds one read; complete units are appended to `out` (those completed before an
    /// error are kept).
    pub fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        out: &mut Vec<Unit>,
    ) -> Result<(), ProbeError> {
        match self {
            Framer::Sse(p, events) => {
                let r = p.feed(at, bytes, events);
                out.extend(events.drain(..).map(|e| Unit {
                    at: e.at,
                    event: e.event,
                    kind: UnitKind::Event,
                    data: e.data,
                }));
                r
            }
            Framer::Ndjson(p) => p.feed(at, bytes, out),
            Framer::JsonSeq(p) => p.feed(at, bytes, out),
            Framer::EventStream(p) => p.feed(at, bytes, out),
        }
    }

    /// The body ended cleanly: a last NDJSON line without its newline is still a unit.
    pub fn finish(&mut self, out: &mut Vec<Unit>) -> Result<(), ProbeError> {
        match self {
            Framer::Ndjson(p) => p.finish(out),
            _ => Ok(()),
        }
    }

    /// True when the body stopped inside a unit (or, for a JSON array, before its `]`).
    pub fn has_partial(&self) -> bool {
        match self {
            Framer::Sse(p, _) => p.has_partial(),
            Framer::Ndjson(p) => p.has_partial(),
            Framer::JsonSeq(p) => p.has_partial(),
            Framer::EventStream(p) => p.has_partial(),
        }
    }
}

/// Feeds `body` to a new `framing` parser cut at `cuts`, piece `i` stamped `i` ms after the
/// first; the units with their stamps in ms (the framers' tests).
#[cfg(test)]
pub(crate) fn feed_split(
    framing: Framing,
    body: &[u8],
    cuts: &[usize],
) -> Result<Vec<(u64, Unit)>, ProbeError> {
    let base = Instant::now();
    let mut framer = Framer::new(framing, 1 << 16);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in cuts.iter().chain(std::iter::once(&body.len())).enumerate() {
        let c = c.min(body.len()).max(start);
        framer.feed(
            base + std::time::Duration::from_millis(i as u64),
            &body[start..c],
            &mut out,
        )?;
        start = c;
    }
    framer.finish(&mut out)?;
    Ok(out
        .into_iter()
        .map(|u| ((u.at - base).as_millis() as u64, u))
        .collect())
}
