//! Streams described as data (`protocol: stream` and the built-in descriptions such as
//! `gemini`, `ollama`, `tgi`, `bedrock-converse`): the framers that cut a body into units
//! ([`framing`]: SSE, NDJSON, a streamed JSON array, AWS event stream), the compiled
//! description that says what each unit means ([`spec`]), and the driver that feeds both
//! into the chat drivers' measuring loop ([`driver`]), so every chat measure and check works
//! on them unchanged. Every unit is stamped with the arrival of the read that completed it,
//! before any parsing.

pub mod driver;
pub mod eventstream;
pub mod framing;
pub mod jsonseq;
pub mod ndjson;
pub mod spec;
pub mod unit;

pub use framing::{Framer, Framing, Unit, UnitKind};
pub use spec::StreamSpec;
