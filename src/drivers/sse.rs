//! An incremental Server-Sent Events parser (WHATWG "event stream" interpretation).
//!
//! Bytes are fed as they arrive, each piece with the instant it was read. An event is
//! stamped with the arrival instant of the piece that *completed* it (the blank line that
//! dispatches it), before any JSON parsing. Handles events split across reads, many events in
//! one read, `\r\n` / `\n` / `\r` line ends, comments, `event:`/`data:`/`id:`/`retry:` fields,
//! multi-line data, a UTF-8 BOM, and rejects invalid UTF-8 and oversized events with a
//! classified error instead of panicking or growing without bound.

use std::time::Instant;

use crate::timeline::{ErrorClass, ProbeError};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The arrival instant of the bytes that completed the event.
    pub at: Instant,
    /// The `event:` field, empty when absent (the spec's default type is "message").
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

/// Incremental parser state.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended with `\r`: a following `\n` belongs to the same line end.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    started: bool,
    /// Bytes buffered for the event being assembled (line + fields).
    pending: usize,
    max_event: usize,
}

impl SseParser {
    /// `max_event` bounds the bytes one event may occupy (an endless line is an error).
    pub fn new(max_event: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            started: false,
            pending: 0,
            max_event,
        }
    }

    /// Feeds one piece of the stream; completed events are appended to `out`.
    pub fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProbeError> {
        let mut rest = bytes;
        if !self.started && !rest.is_empty() {
            // A BOM may be split across reads; strip it only when it arrives whole at the start.
            if let Some(r) = rest.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
                rest = r;
            }
            self.started = true;
        }
        for &b in rest {
            match b {
                b'\n' if self.after_cr => {
                    self.after_cr = false;
                }
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(at, out)?;
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                    self.pending += 1;
                    if self.pending > self.max_event {
                        return Err(ProbeError::new(
                            ErrorClass::BodyTooLarge,
                            format!(
                                "an SSE event exceeded {} bytes without ending",
                                self.max_event
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, at: Instant, out: &mut Vec<SseEvent>) -> Result<(), ProbeError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            // Dispatch.
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                out.push(SseEvent {
                    at,
                    event: std::mem::take(&mut self.event),
                    data,
                    id: self.id.clone(),
                });
            } else {
                self.event.clear();
            }
            self.has_data = false;
            self.pending = 0;
            return Ok(());
        }
        let text = std::str::from_utf8(&line).map_err(|e| {
            ProbeError::new(
                ErrorClass::Protocol,
                format!(
                    "invalid UTF-8 in the event stream at byte {} of a line",
                    e.valid_up_to()
                ),
            )
        })?;
        if text.starts_with(':') {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match text.find(':') {
            Some(i) => {
                let v = &text[i + 1..];
                (&text[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (text, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields are ignored
        }
        Ok(())
    }

    /// True when bytes of an unfinished event are buffered (the stream ended mid-event).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse_pieces(pieces: &[(u64, &[u8])]) -> Result<Vec<(u64, String, String)>, ProbeError> {
        let base = Instant::now();
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for (ms, bytes) in pieces {
            p.feed(base + Duration::from_millis(*ms), bytes, &mut out)?;
        }
        Ok(out
            .into_iter()
            .map(|e| ((e.at - base).as_millis() as u64, e.event, e.data))
            .collect())
    }

    #[test]
    fn one_event_per_blank_line_with_event_and_data() {
        let got = parse_pieces(&[(1, b"event: a\ndata: {\"x\":1}\n\ndata: two\n\n")]).unwrap();
        assert_eq!(
            got,
            vec![
                (1, "a".into(), "{\"x\":1}".into()),
                (1, "".into(), "two".into())
            ]
        );
    }

    #[test]
    fn an_event_is_stamped_when_its_last_byte_arrives() {
        let got = parse_pieces(&[
            (1, b"da"),
            (5, b"ta: hel"),
            (9, b"lo\n"),
            (12, b"\n"),
            (20, b"data: x\n\n"),
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![(12, "".into(), "hello".into()), (20, "".into(), "x".into())]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_even_split_between_reads() {
        let got = parse_pieces(&[(1, b"data: a\r"), (2, b"\n\r"), (3, b"\ndata: b\r\r")]).unwrap();
        assert_eq!(
            got,
            vec![(2, "".into(), "a".into()), (3, "".into(), "b".into())]
        );
    }

    #[test]
    fn comments_multiline_data_and_fields_without_space() {
        let got = parse_pieces(&[(
            1,
            b": keep-alive\n\ndata:line1\ndata: line2\nid: 7\nretry: 10\n\n",
        )])
        .unwrap();
        assert_eq!(got, vec![(1, "".into(), "line1\nline2".into())]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let got = parse_pieces(&[(1, b"event: ping\n\ndata: x\n\n")]).unwrap();
        assert_eq!(got, vec![(1, "".into(), "x".into())]);
    }

    #[test]
    fn bom_is_stripped() {
        let got = parse_pieces(&[(1, b"\xEF\xBB\xBFdata: x\n\n")]).unwrap();
        assert_eq!(got[0].2, "x");
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let stream = b"event: message_start\r\ndata: {\"a\": 1}\r\n\r\n: c\n\ndata: [DONE]\n\n";
        let whole = parse_pieces(&[(0, stream)]).unwrap();
        let pieces: Vec<(u64, &[u8])> = stream
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64, std::slice::from_ref(b)))
            .collect();
        let split = parse_pieces(&pieces).unwrap();
        assert_eq!(
            whole.iter().map(|e| (&e.1, &e.2)).collect::<Vec<_>>(),
            split.iter().map(|e| (&e.1, &e.2)).collect::<Vec<_>>()
        );
        // Stamped at the final newline of each event.
        let ends: Vec<u64> = split.iter().map(|e| e.0).collect();
        assert_eq!(ends, vec![38, 58]);
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error_not_a_panic() {
        let e = parse_pieces(&[(1, b"data: \xff\xfe\n\n")]).unwrap_err();
        assert_eq!(e.class, ErrorClass::Protocol);
    }

    #[test]
    fn an_endless_line_is_bounded() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        let e = p.feed(Instant::now(), &[b'a'; 100], &mut out).unwrap_err();
        assert_eq!(e.class, ErrorClass::BodyTooLarge);
    }

    #[test]
    fn partial_event_is_visible_at_the_end() {
        let mut p = SseParser::new(1 << 10);
        let mut out = Vec::new();
        p.feed(Instant::now(), b"data: x\n", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(p.has_partial());
    }
}
