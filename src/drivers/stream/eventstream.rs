//! AWS event stream framing (`application/vnd.amazon.eventstream`, Bedrock's
//! `ConverseStream`, `InvokeModelWithResponseStream`): binary messages of
//! `total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32`,
//! big-endian, CRC32 (IEEE) over the prelude and over everything before the message CRC.
//! Both CRCs are verified; a mismatch or an impossible length is `protocol`. Headers are
//! `name length (u8) | name | type (u8) | value`, every type decoded or skipped by its size.
//! `:message-type` `event` gives an event unit named by `:event-type`; `exception` (named by
//! `:exception-type`) and `error` (`:error-code`, `:error-message`) give exception units.

use std::time::Instant;

use super::unit::{Unit, UnitKind};
use crate::timeline::{ErrorClass, ProbeError};

/// The CRC32 (IEEE 802.3, reflected, polynomial 0xEDB88320) lookup table.
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// The smallest message: a 12-byte prelude and the 4-byte message CRC.
const MIN_MESSAGE: usize = 16;

#[derive(Debug)]
pub struct EventStreamParser {
    buf: Vec<u8>,
    max_message: usize,
    /// The prelude of the message at the front of `buf` was checked.
    prelude_ok: bool,
    offset: u64,
}

fn protocol(msg: String) -> ProbeError {
    ProbeError::new(ErrorClass::Protocol, msg)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl EventStreamParser {
    pub fn new(max_message: usize) -> EventStreamParser {
        EventStreamParser {
            buf: Vec::new(),
            max_message: max_message.max(MIN_MESSAGE),
            prelude_ok: false,
            offset: 0,
        }
    }

    pub fn feed(
        &mut self,
        at: Instant,
        bytes: &[u8],
        out: &mut Vec<Unit>,
    ) -> Result<(), ProbeError> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let result = loop {
            let rest = &self.buf[start..];
            if rest.len() < 12 {
                break Ok(());
            }
            let total = be32(&rest[0..4]) as usize;
            let headers_len = be32(&rest[4..8]) as usize;
            if !self.prelude_ok {
                let want = be32(&rest[8..12]);
                let got = crc32(&rest[0..8]);
                if want != got {
                    break Err(protocol(format!(
                        "event stream prelude CRC mismatch at byte {} (frame says {want:#010x}, bytes give {got:#010x})",
                        self.offset
                    )));
                }
                if total < MIN_MESSAGE || headers_len > total - MIN_MESSAGE {
                    break Err(protocol(format!(
                        "event stream message at byte {} has impossible lengths (total {total}, headers {headers_len})",
                        self.offset
                    )));
                }
                if total > self.max_message {
                    break Err(ProbeError::new(
                        ErrorClass::BodyTooLarge,
                        format!(
                            "an event stream message of {total} bytes exceeds the {}-byte cap",
                            self.max_message
                        ),
                    ));
                }
                self.prelude_ok = true;
            }
            if rest.len() < total {
                break Ok(());
            }
            let msg = &rest[..total];
            let want = be32(&msg[total - 4..]);
            let got = crc32(&msg[..total - 4]);
            if want != got {
                break Err(protocol(format!(
                    "event stream message CRC mismatch at byte {} (frame says {want:#010x}, bytes give {got:#010x})",
                    self.offset
                )));
            }
            let unit = match decode(
                at,
                &msg[12..12 + headers_len],
                &msg[12 + headers_len..total - 4],
            ) {
                Ok(u) => u,
                Err(e) => break Err(e),
            };
            out.push(unit);
            start += total;
            self.offset += total as u64;
            self.prelude_ok = false;
        };
        self.buf.drain(..start);
        result
    }

    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// A header value as far as framing cares: text for strings, nothing for the rest.
fn headers(mut h: &[u8]) -> Result<Vec<(String, Option<String>)>, ProbeError> {
    let short = || protocol("an event stream header runs past its headers".into());
    let mut out = Vec::new();
    while !h.is_empty() {
        let n = usize::from(h[0]);
        let name = h.get(1..1 + n).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let ty = *h.get(1 + n).ok_or_else(short)?;
        h = &h[2 + n..];
        let fixed = |len: usize| -> Result<usize, ProbeError> {
            if h.len() < len {
                Err(short())
            } else {
                Ok(len)
            }
        };
        let (len, value) = match ty {
            0 | 1 => (0, None),
            2 => (fixed(1)?, None),
            3 => (fixed(2)?, None),
            4 => (fixed(4)?, None),
            5 | 8 => (fixed(8)?, None),
            9 => (fixed(16)?, None),
            6 | 7 => {
                let l = fixed(2)?;
                let vlen = usize::from(u16::from_be_bytes([h[0], h[1]]));
                let v = h.get(l..l + vlen).ok_or_else(short)?;
                let text = (ty == 7).then(|| String::from_utf8_lossy(v).into_owned());
                (l + vlen, text)
            }
            other => {
                return Err(protocol(format!(
                    "event stream header `{name}` has unknown value type {other}"
                )))
            }
        };
        out.push((name, value));
        h = &h[len..];
    }
    Ok(out)
}

fn decode(at: Instant, h: &[u8], payload: &[u8]) -> Result<Unit, ProbeError> {
    let hs = headers(h)?;
    let get = |k: &str| hs.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.clone());
    let data = String::from_utf8(payload.to_vec()).map_err(|e| {
        protocol(format!(
            "invalid UTF-8 in an event stream payload at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let message_type = get(":message-type").unwrap_or_else(|| "event".into());
    Ok(match message_type.as_str() {
        "exception" => {
            let code = get(":exception-type").unwrap_or_else(|| "exception".into());
            Unit {
                at,
                event: code.clone(),
                kind: UnitKind::Exception(code),
                data,
            }
        }
        "error" => {
            let code = get(":error-code").unwrap_or_else(|| "error".into());
            let message = get(":error-message").unwrap_or_default();
            Unit {
                at,
                event: code.clone(),
                kind: UnitKind::Exception(code),
                data: serde_json::json!({ "message": message }).to_string(),
            }
        }
        _ => Unit {
            at,
            event: get(":event-type").unwrap_or_default(),
            kind: UnitKind::Event,
            data,
        },
    })
}

/// Encodes one message with string headers (tests and fuzz seeds; the simulator has its own).
#[cfg(test)]
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (n, v) in headers {
        h.push(n.len() as u8);
        h.extend_from_slice(n.as_bytes());
        h.push(7);
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let c = crc32(&m);
    m.extend_from_slice(&c.to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    let c = crc32(&m);
    m.extend_from_slice(&c.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::super::framing::{feed_split, Framing};
    use super::*;

    fn units(body: &[u8], cuts: &[usize]) -> Result<Vec<(u64, Unit)>, ProbeError> {
        feed_split(Framing::AwsEventStream, body, cuts)
    }

    fn sample() -> Vec<u8> {
        let mut b = encode(
            &[
                (":event-type", "contentBlockDelta"),
                (":message-type", "event"),
            ],
            br#"{"delta":{"text":"Hi"}}"#,
        );
        b.extend(encode(
            &[
                (":exception-type", "throttlingException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        ));
        b
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn events_and_exceptions_with_their_names() {
        let got = units(&sample(), &[]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.event, "contentBlockDelta");
        assert_eq!(got[0].1.kind, UnitKind::Event);
        assert_eq!(got[0].1.data, r#"{"delta":{"text":"Hi"}}"#);
        assert_eq!(
            got[1].1.kind,
            UnitKind::Exception("throttlingException".into())
        );
    }

    #[test]
    fn split_at_every_byte_equals_whole_and_stamps_the_last_byte() {
        let body = sample();
        let cuts: Vec<usize> = (1..body.len()).collect();
        let split = units(&body, &cuts).unwrap();
        let first_len = be32(&body[0..4]) as u64;
        assert_eq!(split[0].0, first_len - 1);
        assert_eq!(split[1].0, body.len() as u64 - 1);
        assert_eq!(split[0].1.data, units(&body, &[]).unwrap()[0].1.data);
    }

    #[test]
    fn other_header_types_are_skipped_by_size() {
        // bool true, byte, short, int, long, bytes, timestamp, uuid, then the string we need.
        let mut h = Vec::new();
        let mut add = |name: &str, ty: u8, val: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(ty);
            h.extend_from_slice(val);
        };
        add("t", 0, &[]);
        add("b", 2, &[7]);
        add("s", 3, &[0, 1]);
        add("i", 4, &[0, 0, 0, 1]);
        add("l", 5, &[0; 8]);
        add("y", 6, &[0, 2, 0xff, 0xfe]);
        add("ts", 8, &[0; 8]);
        add("u", 9, &[0; 16]);
        add(":event-type", 7, &[0, 4, b'p', b'i', b'n', b'g']);
        let payload = b"{}";
        let total = 12 + h.len() + payload.len() + 4;
        let mut m = (total as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let c = crc32(&m);
        m.extend_from_slice(&c.to_be_bytes());
        m.extend_from_slice(&h);
        m.extend_from_slice(payload);
        let c = crc32(&m);
        m.extend_from_slice(&c.to_be_bytes());
        let got = units(&m, &[]).unwrap();
        assert_eq!(got[0].1.event, "ping");
    }

    #[test]
    fn bad_crcs_and_lengths_are_protocol_errors() {
        let good = sample();
        let mut bad_prelude = good.clone();
        bad_prelude[9] ^= 1;
        let mut bad_message = good.clone();
        bad_message[20] ^= 1;
        let mut bad_len = encode(&[], b"{}");
        bad_len[3] = 4; // total 4, with a matching prelude CRC
        let c = crc32(&bad_len[0..8]);
        bad_len[8..12].copy_from_slice(&c.to_be_bytes());
        for body in [
            bad_prelude,
            bad_message,
            bad_len,
            b"data: {}\n\n garbage".to_vec(),
        ] {
            let e = units(&body, &[]).unwrap_err();
            assert_eq!(e.class, ErrorClass::Protocol, "{e:?}");
        }
    }

    #[test]
    fn a_huge_claimed_length_is_refused_before_buffering_it() {
        let mut m = Vec::new();
        m.extend_from_slice(&(1u32 << 30).to_be_bytes());
        m.extend_from_slice(&0u32.to_be_bytes());
        let c = crc32(&m);
        m.extend_from_slice(&c.to_be_bytes());
        let e = units(&m, &[]).unwrap_err();
        assert_eq!(e.class, ErrorClass::BodyTooLarge);
    }

    #[test]
    fn a_cut_message_is_partial() {
        let body = sample();
        let mut p = EventStreamParser::new(1 << 16);
        let mut out = Vec::new();
        p.feed(Instant::now(), &body[..body.len() - 3], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert!(p.has_partial());
    }
}
