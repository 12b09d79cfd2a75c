//! NDJSON framing: one JSON document per line (Ollama's native API, many in-house
//! services). `\r\n` is tolerated, blank lines are skipped, a line longer than the cap is
//! `body_too_large` (memory stays bounded), a line that is not UTF-8 is `protocol`. Whether a
//! line is valid JSON is the interpreter's question.

use std::time::Instant;

use super::unit::{Unit, UnitKind};
use crate::timeline::{ErrorClass, ProbeError};

#[derive(Debug)]
pub struct NdjsonParser {
    line: Vec<u8>,
    max_line: usize,
    last_at: Option<Instant>,
}

impl NdjsonParser {
    pub fn new(max_line: usize) -> NdjsonParser {
        NdjsonParser {
            line: Vec::new(),
            max_line,
            last_at: None,
        }
    }

    pub fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        out: &mut Vec<Unit>,
    ) -> Result<(), ProbeError> {
        if !bytes.is_empty() {
            self.last_at = Some(at);
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.push(&rest[..i])?;
            self.emit(at, out)?;
            rest = &rest[i + 1..];
        }
        self.push(rest)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(ProbeError::new(
                ErrorClass::BodyTooLarge,
                format!(
                    "an NDJSON line exceeded {} bytes without ending",
                    self.max_line
                ),
            ));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn emit(&mut self, at: Instant, out: &mut Vec<Unit>) -> Result<(), ProbeError> {
        let line = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&line).map_err(|e| {
            ProbeError::new(
                ErrorClass::Protocol,
                format!(
                    "invalid UTF-8 in an NDJSON line at byte {}",
                    e.valid_up_to()
                ),
            )
        })?;
        // A UTF-8 BOM at the very start, `\r` of CRLF and surrounding blanks are not data.
        let text = text.trim_start_matches('\u{feff}').trim();
        if !text.is_empty() {
            out.push(Unit {
                at,
                event: String::new(),
                kind: UnitKind::Event,
                data: text.to_string(),
            });
        }
        Ok(())
    }

    /// The body ended: a last line without its newline is a unit too.
    pub fn finish(&mut self, out: &mut Vec<Unit>) -> Result<(), ProbeError> {
        match self.last_at {
            Some(at) if !self.line.is_empty() => self.emit(at, out),
            _ => Ok(()),
        }
    }

    pub fn has_partial(&self) -> bool {
        self.line.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::super::framing::{feed_split, Framing};
    use super::*;

    fn units(body: &[u8], cuts: &[usize]) -> Result<Vec<(u64, String)>, ProbeError> {
        Ok(feed_split(Framing::Ndjson, body, cuts)?
            .into_iter()
            .map(|(ms, u)| (ms, u.data))
            .collect())
    }

    #[test]
    fn one_unit_per_line_crlf_and_blank_lines_skipped() {
        let got = units(b"{\"a\":1}\r\n\r\n  \n{\"b\":2}\n", &[]).unwrap();
        assert_eq!(got, vec![(0, "{\"a\":1}".into()), (0, "{\"b\":2}".into())]);
    }

    #[test]
    fn a_line_is_stamped_with_the_read_that_ended_it() {
        let got = units(b"{\"a\":1}\n{\"b\":2}\n", &[3, 8, 12]).unwrap();
        // Read 1 ("{\"a\":1}\n" ends in the piece [3..8]), read 3 ends the second line.
        assert_eq!(got, vec![(1, "{\"a\":1}".into()), (3, "{\"b\":2}".into())]);
    }

    #[test]
    fn split_at_every_byte_equals_whole() {
        let body = b"{\"response\":\"A\",\"done\":false}\r\n{\"response\":\" b\",\"done\":true}\n";
        let whole = units(body, &[]).unwrap();
        let cuts: Vec<usize> = (1..body.len()).collect();
        let split = units(body, &cuts).unwrap();
        assert_eq!(
            whole.iter().map(|u| &u.1).collect::<Vec<_>>(),
            split.iter().map(|u| &u.1).collect::<Vec<_>>()
        );
        let nl = body.iter().position(|&b| b == b'\n').unwrap() as u64;
        assert_eq!(split[0].0, nl, "stamped at the newline's read");
    }

    #[test]
    fn last_line_without_newline_counts_and_partial_is_seen() {
        let got = units(b"{\"a\":1}\n{\"b\":2}", &[]).unwrap();
        assert_eq!(got.len(), 2);
        let mut p = NdjsonParser::new(100);
        let mut out = Vec::new();
        p.feed(Instant::now(), b"{\"a\"", &mut out).unwrap();
        assert!(p.has_partial());
    }

    #[test]
    fn huge_line_is_bounded_and_bad_utf8_is_protocol() {
        let mut p = NdjsonParser::new(16);
        let mut out = Vec::new();
        let e = p.feed(Instant::now(), &[b'a'; 100], &mut out).unwrap_err();
        assert_eq!(e.class, ErrorClass::BodyTooLarge);
        let e = units(b"{\"a\":\"\xff\"}\n", &[]).unwrap_err();
        assert_eq!(e.class, ErrorClass::Protocol);
    }
}
