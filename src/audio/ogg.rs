//! Incremental Ogg Opus demuxing: pages arrive split across WebSocket messages at any byte.
//!
//! Bytes are buffered until a whole page is present (27-byte header, segment table, body),
//! then handed to the `ogg` crate's page parser and packet reader. The first packet is the
//! `OpusHead` (channels, pre-skip), the second `OpusTags`; both are consumed here and only
//! audio packets are returned. Anything malformed is an [`AudioError`], never a panic.

use ogg::reading::{BasePacketReader, PageParser};

use super::AudioError;

/// A packet larger than this (spread over many pages) is refused: no Opus packet is near it.
pub const MAX_PACKET: usize = 1 << 20;
/// The largest possible Ogg page: header, 255 lacing values, 255 x 255 body bytes.
const MAX_PAGE: usize = 27 + 255 + 255 * 255;

/// What the `OpusHead` packet said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpusHead {
    pub channels: u8,
    /// Output gain in dB (Q7.8 in the header), to be applied by a player.
    pub gain_db: f32,
    /// Samples (at 48 kHz) to drop from the start of the decoded stream.
    pub pre_skip: u16,
    pub input_rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Tags,
    Audio,
}

/// Demuxes an Ogg Opus byte stream fed in pieces.
pub struct OggOpusDemuxer {
    buf: Vec<u8>,
    reader: BasePacketReader,
    stage: Stage,
    head: Option<OpusHead>,
    /// Body bytes pushed since the last packet came out (bounds a never-ending packet).
    pending: usize,
    /// The serial number of the one logical stream accepted.
    serial: Option<u32>,
}

impl std::fmt::Debug for OggOpusDemuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OggOpusDemuxer({:?}, {} buffered)",
            self.stage,
            self.buf.len()
        )
    }
}

impl Default for OggOpusDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl OggOpusDemuxer {
    pub fn new() -> Self {
        OggOpusDemuxer {
            buf: Vec::new(),
            reader: BasePacketReader::new(),
            stage: Stage::Head,
            head: None,
            pending: 0,
            serial: None,
        }
    }

    /// The stream's header, once it has arrived.
    pub fn head(&self) -> Option<OpusHead> {
        self.head
    }

    /// Whether bytes of an unfinished page are waiting (a stream that ends here was cut).
    pub fn has_partial_page(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Adds bytes; returns the audio packets they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, AudioError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        // Pages are read from an offset and the buffer is drained once: a message of many
        // small pages costs time in proportion to its size.
        let mut off = 0;
        let result = self.pages(&mut off, &mut out);
        self.buf.drain(..off);
        result.map(|()| out)
    }

    fn pages(&mut self, off: &mut usize, out: &mut Vec<Vec<u8>>) -> Result<(), AudioError> {
        while let Some(len) = self.whole_page_len(*off)? {
            let page = self.buf[*off..*off + len].to_vec();
            *off += len;
            self.check_serial(&page)?;
            self.pending += len;
            self.push_page(page)?;
            while let Some(p) = self.reader.read_packet() {
                self.pending = 0;
                if let Some(audio) = self.packet(p.data)? {
                    out.push(audio);
                }
            }
            if self.pending > MAX_PACKET {
                return Err(AudioError::Corrupt(format!(
                    "an Ogg packet runs past {MAX_PACKET} bytes"
                )));
            }
        }
        Ok(())
    }

    /// One logical stream only: a second serial or a second beginning-of-stream page is a
    /// multiplexed or chained stream, which a voice answer is not.
    fn check_serial(&mut self, page: &[u8]) -> Result<(), AudioError> {
        let serial = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
        let bos = page[5] & 0x02 != 0;
        match self.serial {
            None => self.serial = Some(serial),
            Some(s) if s == serial && !bos => {}
            Some(_) => {
                return Err(AudioError::Unsupported(
                    "multiplexed or chained Ogg streams are not supported (a second logical stream began)".into(),
                ))
            }
        }
        Ok(())
    }

    /// The length of the page at `off` in the buffer, if all of it is there.
    fn whole_page_len(&self, off: usize) -> Result<Option<usize>, AudioError> {
        let b = &self.buf[off..];
        let magic = b.len().min(4);
        if b[..magic] != b"OggS"[..magic] {
            return Err(AudioError::Corrupt(
                "not an Ogg stream (a page does not start with `OggS`)".into(),
            ));
        }
        if b.len() < 27 {
            return Ok(None);
        }
        let segments = usize::from(b[26]);
        if b.len() < 27 + segments {
            return Ok(None);
        }
        let body: usize = b[27..27 + segments].iter().map(|&x| usize::from(x)).sum();
        let len = 27 + segments + body;
        debug_assert!(len <= MAX_PAGE);
        Ok((b.len() >= len).then_some(len))
    }

    fn push_page(&mut self, page: Vec<u8>) -> Result<(), AudioError> {
        let corrupt = |e: ogg::OggReadError| AudioError::Corrupt(format!("bad Ogg page: {e}"));
        let mut header = [0u8; 27];
        header.copy_from_slice(&page[..27]);
        let reader = &mut self.reader;
        // The crate's parser is not written for hostile input: keep any panic inside it a
        // decode error of this run.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (mut parser, seg_len) = PageParser::new(header).map_err(corrupt)?;
            let segs = page[27..27 + seg_len].to_vec();
            let body_len = parser.parse_segments(segs);
            let body = page[27 + seg_len..].to_vec();
            if body.len() != body_len {
                return Err(AudioError::Corrupt("Ogg page body length mismatch".into()));
            }
            let pg = parser.parse_packet_data(body).map_err(corrupt)?;
            reader.push_page(pg).map_err(corrupt)
        }));
        match r {
            Ok(r) => r,
            Err(_) => Err(AudioError::Corrupt(
                "malformed Ogg page (the parser gave up)".into(),
            )),
        }
    }

    fn packet(&mut self, data: Vec<u8>) -> Result<Option<Vec<u8>>, AudioError> {
        match self.stage {
            Stage::Head => {
                self.head = Some(parse_head(&data)?);
                self.stage = Stage::Tags;
                Ok(None)
            }
            Stage::Tags => {
                if !data.starts_with(b"OpusTags") {
                    return Err(AudioError::Corrupt(
                        "the second Ogg packet is not `OpusTags`".into(),
                    ));
                }
                self.stage = Stage::Audio;
                Ok(None)
            }
            Stage::Audio => Ok(Some(data)),
        }
    }
}

/// Parses an `OpusHead` identification header (RFC 7845, section 5.1).
pub fn parse_head(p: &[u8]) -> Result<OpusHead, AudioError> {
    if p.len() < 19 || !p.starts_with(b"OpusHead") {
        return Err(AudioError::Corrupt(
            "the Ogg stream does not start with an `OpusHead` packet".into(),
        ));
    }
    if p[8] >> 4 != 0 {
        return Err(AudioError::Unsupported(format!(
            "OpusHead version {} is not supported",
            p[8]
        )));
    }
    let channels = p[9];
    let family = p[18];
    if channels == 0 || (family == 0 && channels > 2) {
        return Err(AudioError::Corrupt(format!(
            "OpusHead has {channels} channels for mapping family 0"
        )));
    }
    if family != 0 {
        return Err(AudioError::Unsupported(format!(
            "Opus channel mapping family {family} ({channels} channels) is not supported; mono and stereo are"
        )));
    }
    Ok(OpusHead {
        channels,
        gain_db: f32::from(i16::from_le_bytes([p[16], p[17]])) / 256.0,
        pre_skip: u16::from_le_bytes([p[10], p[11]]),
        input_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ogg Opus stream written with the `ogg` crate's writer (not this demuxer's code).
    fn stream(packets: &[Vec<u8>], pre_skip: u16) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = ogg::writing::PacketWriter::new(&mut out);
            let mut head = b"OpusHead".to_vec();
            head.push(1);
            head.push(1);
            head.extend_from_slice(&pre_skip.to_le_bytes());
            head.extend_from_slice(&48_000u32.to_le_bytes());
            head.extend_from_slice(&[0, 0, 0]);
            w.write_packet(head, 7, ogg::writing::PacketWriteEndInfo::EndPage, 0)
                .unwrap();
            let mut tags = b"OpusTags".to_vec();
            tags.extend_from_slice(&[0; 8]);
            w.write_packet(tags, 7, ogg::writing::PacketWriteEndInfo::EndPage, 0)
                .unwrap();
            for (i, p) in packets.iter().enumerate() {
                let end = if i + 1 == packets.len() {
                    ogg::writing::PacketWriteEndInfo::EndStream
                } else if i % 3 == 2 {
                    ogg::writing::PacketWriteEndInfo::EndPage
                } else {
                    ogg::writing::PacketWriteEndInfo::NormalPacket
                };
                w.write_packet(p.clone(), 7, end, (i as u64 + 1) * 960)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn packets_come_out_whatever_the_split() {
        let packets: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let bytes = stream(&packets, 312);
        for step in [1usize, 5, 27, 100, bytes.len()] {
            let mut d = OggOpusDemuxer::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                got.extend(d.push(piece).unwrap());
            }
            assert_eq!(got, packets, "split every {step} bytes");
            assert_eq!(d.head().map(|h| h.pre_skip), Some(312));
            assert!(!d.has_partial_page());
        }
    }

    #[test]
    fn a_second_logical_stream_is_refused() {
        let mut a = stream(&[vec![1, 2, 3]], 0);
        let mut b = stream(&[vec![4, 5]], 0);
        // A page of another serial, written by the crate's writer.
        let mut out = Vec::new();
        {
            let mut w = ogg::writing::PacketWriter::new(&mut out);
            w.write_packet(
                vec![9u8; 3],
                8,
                ogg::writing::PacketWriteEndInfo::EndStream,
                0,
            )
            .unwrap();
        }
        a.append(&mut out);
        let mut d = OggOpusDemuxer::new();
        assert!(matches!(d.push(&a), Err(AudioError::Unsupported(_))));
        // Two heads of the same serial (a chained stream) are refused too.
        b.extend(stream(&[vec![6]], 0));
        assert!(OggOpusDemuxer::new().push(&b).is_err());
    }

    #[test]
    fn many_tiny_pages_in_one_message_are_linear() {
        let packets: Vec<Vec<u8>> = (0..20_000u32).map(|i| vec![(i % 251) as u8]).collect();
        let mut bytes = Vec::new();
        {
            let mut w = ogg::writing::PacketWriter::new(&mut bytes);
            let mut head = b"OpusHead\x01\x01".to_vec();
            head.extend_from_slice(&[0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0]);
            w.write_packet(head, 7, ogg::writing::PacketWriteEndInfo::EndPage, 0)
                .unwrap();
            w.write_packet(
                b"OpusTags".to_vec(),
                7,
                ogg::writing::PacketWriteEndInfo::EndPage,
                0,
            )
            .unwrap();
            for (i, p) in packets.iter().enumerate() {
                w.write_packet(
                    p.clone(),
                    7,
                    ogg::writing::PacketWriteEndInfo::EndPage,
                    i as u64,
                )
                .unwrap();
            }
        }
        let mut d = OggOpusDemuxer::new();
        assert_eq!(d.push(&bytes).unwrap().len(), packets.len());
    }

    #[test]
    fn garbage_and_bad_heads_are_errors() {
        let mut d = OggOpusDemuxer::new();
        assert!(d.push(b"RIFF....").is_err());
        let mut bytes = stream(&[vec![1, 2, 3]], 0);
        // Break the CRC of the first page.
        bytes[22] ^= 0xFF;
        assert!(OggOpusDemuxer::new().push(&bytes).is_err());
        assert!(matches!(
            parse_head(b"OpusHead\x01\x06\x00\x00\x80\xbb\x00\x00\x00\x00\x01"),
            Err(AudioError::Unsupported(_))
        ));
        assert!(parse_head(b"OpusHea").is_err());
    }
}
