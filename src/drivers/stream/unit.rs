//! The unit every framing's parser yields: one event of a described stream, stamped with
//! the arrival of the read that completed it.

use std::time::Instant;

/// What kind of unit arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitKind {
    /// An ordinary event.
    Event,
    /// An exception or error frame (AWS event stream), with its type or code.
    Exception(String),
}

/// One framed unit of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Arrival of the read that completed the unit.
    pub at: Instant,
    /// The SSE `event:` name or the event stream's `:event-type` (empty when absent).
    pub event: String,
    pub kind: UnitKind,
    /// The unit's text (JSON for every framing but SSE, where it may be anything).
    pub data: String,
}
