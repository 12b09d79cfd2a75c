//! A streamed JSON array (`[{...},\n{...}]`), as Gemini's `streamGenerateContent` sends
//! without `alt=sse`: each element is a unit as soon as its closing bracket arrives. The
//! scanner tracks strings, escapes and nesting only (the interpreter parses each element);
//! anything but whitespace, commas and elements outside the elements is a `protocol` error.

use std::time::Instant;

use super::unit::{Unit, UnitKind};
use crate::timeline::{ErrorClass, ProbeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Inside the array, expecting an element (or `]` when no element came yet).
    Element,
    /// After an element, expecting `,` or `]`.
    AfterElement,
    /// Inside an element.
    In,
    /// After the closing `]`.
    Done,
}

#[derive(Debug)]
pub struct JsonSeqParser {
    state: State,
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escape: bool,
    max_unit: usize,
    first: bool,
    /// Bytes consumed, for error positions.
    offset: u64,
}

impl JsonSeqParser {
    pub fn new(max_unit: usize) -> JsonSeqParser {
        JsonSeqParser {
            state: State::Start,
            buf: Vec::new(),
            depth: 0,
            in_string: false,
            escape: false,
            max_unit,
            first: true,
            offset: 0,
        }
    }

    fn garbage(&self, b: u8, expected: &str) -> ProbeError {
        ProbeError::new(
            ErrorClass::Protocol,
            format!(
                "the streamed JSON array has {:?} at byte {} where {expected} was expected",
                char::from(b),
                self.offset
            ),
        )
    }

    pub fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        out: &mut Vec<Unit>,
    ) -> Result<(), ProbeError> {
        for &b in bytes {
            self.step(at, b, out)?;
            self.offset += 1;
        }
        Ok(())
    }

    fn step(&mut self, at: Instant, b: u8, out: &mut Vec<Unit>) -> Result<(), ProbeError> {
        let blank = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        match self.state {
            State::Start => {
                if b == b'[' {
                    self.state = State::Element;
                } else if !(blank || (self.offset < 3 && matches!(b, 0xEF | 0xBB | 0xBF))) {
                    return Err(self.garbage(b, "`[`"));
                }
            }
            State::Element => match b {
                b'{' | b'[' => {
                    self.state = State::In;
                    self.depth = 1;
                    self.buf.push(b);
                    self.first = false;
                }
                b']' if self.first => self.state = State::Done,
                _ if blank => {}
                _ => return Err(self.garbage(b, "an object")),
            },
            State::AfterElement => match b {
                b',' => self.state = State::Element,
                b']' => self.state = State::Done,
                _ if blank => {}
                _ => return Err(self.garbage(b, "`,` or `]`")),
            },
            State::In => {
                if self.buf.len() >= self.max_unit {
                    return Err(ProbeError::new(
                        ErrorClass::BodyTooLarge,
                        format!(
                            "an element of the streamed JSON array exceeded {} bytes",
                            self.max_unit
                        ),
                    ));
                }
                self.buf.push(b);
                if self.in_string {
                    if self.escape {
                        self.escape = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                    }
                    return Ok(());
                }
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            let bytes = std::mem::take(&mut self.buf);
                            let data = String::from_utf8(bytes).map_err(|e| {
                                ProbeError::new(
                                    ErrorClass::Protocol,
                                    format!(
                                        "invalid UTF-8 in an element of the streamed JSON array at byte {}",
                                        e.utf8_error().valid_up_to()
                                    ),
                                )
                            })?;
                            out.push(Unit {
                                at,
                                event: String::new(),
                                kind: UnitKind::Event,
                                data,
                            });
                            self.state = State::AfterElement;
                        }
                    }
                    _ => {}
                }
            }
            State::Done => {
                if !blank {
                    return Err(self.garbage(b, "nothing after the closing `]`"));
                }
            }
        }
        Ok(())
    }

    /// True unless the array was closed (a body that stops before `]` was cut).
    pub fn has_partial(&self) -> bool {
        self.state != State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::super::framing::{feed_split, Framing};
    use super::*;

    fn units(body: &[u8], cuts: &[usize]) -> Result<Vec<(u64, String)>, ProbeError> {
        Ok(feed_split(Framing::JsonSeq, body, cuts)?
            .into_iter()
            .map(|(ms, u)| (ms, u.data))
            .collect())
    }

    const GEMINI: &[u8] = b"[{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a}]\\\"{\"}]}}]}\n,\r\n{\"usageMetadata\": {\"promptTokenCount\": 8}}\n]";

    #[test]
    fn elements_come_out_whole_with_brackets_inside_strings() {
        let got = units(GEMINI, &[]).unwrap();
        assert_eq!(got.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
        assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "a}]\"{");
        assert!(serde_json::from_str::<serde_json::Value>(&got[1].1).is_ok());
    }

    #[test]
    fn split_at_every_byte_equals_whole_and_stamps_the_closing_brace() {
        let whole = units(GEMINI, &[]).unwrap();
        let cuts: Vec<usize> = (1..GEMINI.len()).collect();
        let split = units(GEMINI, &cuts).unwrap();
        assert_eq!(
            whole.iter().map(|u| &u.1).collect::<Vec<_>>(),
            split.iter().map(|u| &u.1).collect::<Vec<_>>()
        );
        let close = GEMINI.iter().position(|&b| b == b'\n').unwrap() - 1;
        assert_eq!(split[0].0, close as u64);
    }

    #[test]
    fn empty_array_and_unclosed_array() {
        assert!(units(b" [ ] ", &[]).unwrap().is_empty());
        let mut p = JsonSeqParser::new(1 << 10);
        let mut out = Vec::new();
        p.feed(Instant::now(), b"[{\"a\":1}", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(p.has_partial(), "no closing bracket yet");
        p.feed(Instant::now(), b"]", &mut out).unwrap();
        assert!(!p.has_partial());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"data: {}"[..],
            b"[{\"a\":1} {\"b\":2}]",
            b"[1, 2]",
            b"[{}]x",
            b"[,{}]",
        ] {
            let e = units(bad, &[]).unwrap_err();
            assert_eq!(
                e.class,
                ErrorClass::Protocol,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn huge_element_is_bounded() {
        let mut p = JsonSeqParser::new(64);
        let mut body = b"[{\"a\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1000));
        let e = p.feed(Instant::now(), &body, &mut Vec::new()).unwrap_err();
        assert_eq!(e.class, ErrorClass::BodyTooLarge);
    }
}
