//! The common `openai-chat` chunk read without a `serde_json::Value`: a typed, borrowed parse
//! of `{"model": "...", "choices": [{"index": 0, "delta": {"role", "content",
//! "reasoning_content", "reasoning", "refusal"}, "finish_reason": ...}]}` (other top-level
//! and per-choice keys such as `id`, `object`, `created` or `logprobs` are skipped unread).
//!
//! It gives the same pieces as the general table in `chat_events.rs`, or declines, and the
//! general table reads the chunk: a chunk with a non-null `usage` or `error`, a choice with a
//! `message`, a delta with any other key (`tool_calls`, `reasoning_details`, a `content`
//! list, ...), a value of an unexpected type, an array where an object belongs (a derived
//! struct would read one field by field: [`Obj`] refuses it), or a key given twice. A test
//! holds the two equal on every chunk of the recorded real streams and on hand-built edge
//! cases.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{value::MapAccessDeserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Piece;
use crate::timeline::TokenKind;

/// A struct read from a JSON object only (derived structs also accept an array of their
/// fields in order, which the general table would not read as the same thing).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Obj<Choice<'a>>>>,
    /// Present and not null: the general table reads it.
    #[serde(default)]
    usage: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<Obj<Delta<'a>>>,
    #[serde(default)]
    message: Option<IgnoredAny>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delta<'a> {
    #[serde(default, rename = "role")]
    _role: Option<IgnoredAny>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
}

/// Pushes the pieces of one `openai-chat` chunk's data and returns true, or returns false
/// with nothing pushed when it is not the common shape (the caller then runs the general
/// table on it).
pub(super) fn openai_chat(data: &str, out: &mut Vec<Piece>) -> bool {
    let Ok(Obj(chunk)) = serde_json::from_str::<Obj<Chunk<'_>>>(data) else {
        return false;
    };
    if chunk.usage.is_some() || chunk.error.is_some() {
        return false;
    }
    let choices = chunk.choices.unwrap_or_default();
    if choices.iter().any(|c| c.0.message.is_some()) {
        return false;
    }
    if let Some(m) = chunk.model {
        out.push(Piece::Model(m.into_owned()));
    }
    for Obj(choice) in choices {
        // Only the first choice is what a single-answer UI renders.
        if choice.index.unwrap_or(0) != 0 {
            continue;
        }
        if let Some(Obj(d)) = choice.delta {
            // Servers that send the reasoning under both names send it twice: the first
            // non-empty one is the delta's reasoning.
            if let Some(t) = non_empty(d.reasoning_content).or_else(|| non_empty(d.reasoning)) {
                out.push(owned(TokenKind::Reasoning, t));
            }
            if let Some(t) = non_empty(d.content) {
                out.push(owned(TokenKind::Visible, t));
            }
            if let Some(t) = non_empty(d.refusal) {
                out.push(owned(TokenKind::Visible, t));
            }
        }
        if let Some(f) = choice.finish_reason {
            out.push(Piece::Finish(f.into_owned()));
        }
    }
    true
}

fn non_empty(t: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    t.filter(|t| !t.is_empty())
}

fn owned(kind: TokenKind, t: Cow<'_, str>) -> Piece {
    Piece::Text {
        kind,
        text: t.into_owned(),
        tokens: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::chat_events::Interpreter;
    use crate::suite::Protocol;
    use serde_json::Value;

    /// The general table's pieces for one chunk (a fresh interpreter: the state it keeps is
    /// for `usage`, which this path declines).
    fn general(data: &str) -> Option<Vec<Piece>> {
        let j: Value = serde_json::from_str(data).ok()?;
        let mut out = Vec::new();
        Interpreter::new(Protocol::OpenaiChat).openai_chat("", &j, &mut out);
        Some(out)
    }

    /// Runs both paths; returns whether this one took the chunk. Panics when it took it and
    /// the pieces differ, or pushed pieces when it declined.
    fn same(data: &str) -> bool {
        let mut out = Vec::new();
        let took = openai_chat(data, &mut out);
        if took {
            assert_eq!(Some(out), general(data), "{data}");
        } else {
            assert!(out.is_empty(), "declined with pieces pushed: {data}");
        }
        took
    }

    #[test]
    fn every_data_line_of_the_recorded_streams_reads_the_same_on_both_paths() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-streams");
        let (mut lines, mut took) = (0, 0);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("sse") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data.starts_with('{') {
                    lines += 1;
                    took += usize::from(same(data));
                }
            }
        }
        // The recordings hold a few hundred chunks; most are the common shape.
        assert!(lines > 200, "{lines}");
        assert!(took * 2 > lines, "{took} of {lines}");
    }

    #[test]
    fn the_common_shapes_are_taken_and_read_the_same() {
        for data in [
            r#"{"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"model":"m","choices":[{"index":0,"delta":{"content":"Pa\"ris\u00e9 \ud83d\ude00"},"logprobs":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":"think"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"a","reasoning":"a","content":"b","refusal":"c"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"other choice"}},{"index":0,"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null,"error":null}"#,
            r#"{"choices":[{"index":0,"delta":null,"message":null}]}"#,
            r#"{"choices":null}"#,
            r#"{}"#,
        ] {
            assert!(same(data), "declined: {data}");
        }
    }

    #[test]
    fn anything_else_is_declined_for_the_general_table() {
        for data in [
            // Read by the general table only.
            r#"{"choices":[],"usage":{"completion_tokens":3}}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"choices":[{"message":{"content":"whole"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_details":[{"type":"reasoning.text","text":"x"}]}}]}"#,
            // Unexpected types, where the general table reads less or nothing.
            r#"{"model":7,"choices":[{"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":"0","delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0.0,"delta":{"content":"x"}}]}"#,
            // Arrays in place of objects: a derived struct would read them field by field.
            r#"["m",[[0,["", "x"]]]]"#,
            r#"{"choices":[[0,{"content":"x"}]]}"#,
            r#"{"choices":[{"delta":[null,"x"]}]}"#,
            // A key twice (the general table keeps the last one).
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            "not json",
        ] {
            assert!(!same(data), "taken: {data}");
        }
    }
}
