//! MP3 (MPEG-1, MPEG-2 and MPEG-2.5 Layer III) decoding of a stream that arrives in pieces
//! split at any byte.
//!
//! The decoding itself is symphonia's (`symphonia-bundle-mp3`, the MP3 decoder only). What
//! is done here is the framing symphonia's demuxer would do for a file: a leading ID3v2 tag
//! is skipped, each frame is cut at the length its 4-byte header gives and handed to the
//! decoder whole (the decoder keeps the bit reservoir across frames), and the first frame is
//! checked for a Xing / Info tag with a LAME extension. That tag frame is not audio.
//!
//! **Delay.** An MP3 decoder's output lags the encoder's input by the encoder's delay (LAME
//! and ffmpeg's libmp3lame: 576 samples) plus the decoder's own 529 samples (the synthesis
//! filterbank and MDCT overlap: 528, plus the one every gapless player counts). Like the Ogg
//! Opus pre-skip, those samples are dropped from the start of the decoded stream, so that the
//! onset sits where the speech starts in the encoder's input: `encoder delay + 529` samples,
//! the encoder delay from the LAME tag when the stream has one, else LAME's 576. The
//! encoder's padding (the end of the last frame) comes after everything and shifts nothing.
//!
//! Anything malformed (no frame header where the next frame should start, a frame cut short
//! at the end of the stream, a header that changes the stream's rate or layer, a frame the
//! decoder refuses) is an [`AudioError`], never a panic.

use symphonia_core::codecs::audio::well_known::CODEC_ID_MP3;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration as SDuration, Timestamp};

use super::AudioError;

/// The decoder's own delay in samples (528 + 1, the gapless convention of LAME and symphonia).
pub const DECODER_DELAY: u32 = 529;
/// The encoder delay assumed when the stream carries no LAME tag (LAME, libmp3lame).
pub const DEFAULT_ENCODER_DELAY: u32 = 576;
/// The most bytes buffered while looking for the next frame (an ID3v2 tag may be large).
const MAX_BUFFER: usize = 4 << 20;

/// What one frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// 1 (MPEG-1), 2 (MPEG-2) or 25 (MPEG-2.5).
    pub version: u8,
    pub rate: u32,
    pub channels: u8,
    /// Bytes of the whole frame, header included.
    pub len: usize,
    /// Samples per channel the frame decodes to.
    pub samples: u32,
    pub crc: bool,
}

/// Parses a Layer III frame header; `None` when the bytes are not one (a Layer I or II
/// header, a free-format or reserved bitrate, a reserved rate, no sync).
pub fn parse_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = match (b[1] >> 3) & 0x03 {
        0 => 25,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    if (b[1] >> 1) & 0x03 != 0x01 {
        return None; // not Layer III
    }
    let crc = b[1] & 0x01 == 0;
    let bitrate_idx = usize::from(b[2] >> 4);
    let rate_idx = usize::from((b[2] >> 2) & 0x03);
    let padding = usize::from((b[2] >> 1) & 0x01);
    if bitrate_idx == 0 || bitrate_idx == 15 || rate_idx == 3 {
        return None;
    }
    const V1: [u32; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = if version == 1 { V1 } else { V2 }[bitrate_idx];
    let rate = [44_100, 48_000, 32_000][rate_idx]
        / match version {
            1 => 1,
            2 => 2,
            _ => 4,
        };
    let coef = if version == 1 { 144 } else { 72 };
    let len = (coef * kbps as usize * 1000) / rate as usize + padding;
    let channels = if (b[3] >> 6) == 3 { 1 } else { 2 };
    Some(FrameHeader {
        version,
        rate,
        channels,
        len,
        samples: if version == 1 { 1152 } else { 576 },
        crc,
    })
}

/// The encoder delay a Xing / Info frame's LAME extension gives: `Some(None)` for a tag frame
/// without one, `None` when the frame is not a tag frame (it is audio).
pub fn tag_delay(frame: &[u8], h: &FrameHeader) -> Option<Option<u32>> {
    let side = match (h.version == 1, h.channels == 1) {
        (true, true) => 17,
        (true, false) => 32,
        (false, true) => 9,
        (false, false) => 17,
    };
    let at = 4 + if h.crc { 2 } else { 0 } + side;
    let id = frame.get(at..at + 4)?;
    if id == b"VBRI" {
        return Some(None);
    }
    if id != b"Xing" && id != b"Info" {
        return None;
    }
    let flags = u32::from_be_bytes(frame.get(at + 4..at + 8)?.try_into().ok()?);
    let mut lame = at + 8;
    for (bit, size) in [(1, 4), (2, 4), (4, 100), (8, 4)] {
        if flags & bit != 0 {
            lame += size;
        }
    }
    // The LAME extension: a 9-byte encoder name, 12 bytes of settings and gains, then the
    // delay and the padding, 12 bits each.
    let Some(name) = frame.get(lame..lame + 4) else {
        return Some(None);
    };
    if !name.iter().all(u8::is_ascii_alphanumeric) {
        return Some(None);
    }
    let Some(t) = frame.get(lame + 21..lame + 24) else {
        return Some(None);
    };
    Some(Some((u32::from(t[0]) << 4) | (u32::from(t[1]) >> 4)))
}

/// Decodes an MP3 stream fed in pieces to mono samples in [-1, 1].
pub struct Mp3Stream {
    decoder: symphonia_bundle_mp3::MpaDecoder,
    buf: Vec<u8>,
    /// The stream's first frame header (rate, version), once seen.
    first: Option<FrameHeader>,
    frames: u64,
    skip: usize,
    interleaved: Vec<f32>,
    id3_checked: bool,
    /// The encoder delay the stream's tag gave, if it had one.
    tagged_delay: Option<u32>,
}

impl std::fmt::Debug for Mp3Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mp3Stream({} frames)", self.frames)
    }
}

impl Mp3Stream {
    pub fn new() -> Result<Self, AudioError> {
        let mut params = AudioCodecParameters::new();
        params.for_codec(CODEC_ID_MP3);
        let decoder =
            symphonia_bundle_mp3::MpaDecoder::try_new(&params, &AudioDecoderOptions::default())
                .map_err(|e| AudioError::Unsupported(format!("MP3 decoder: {e}")))?;
        Ok(Mp3Stream {
            decoder,
            buf: Vec::new(),
            first: None,
            frames: 0,
            skip: 0,
            interleaved: Vec::new(),
            id3_checked: false,
            tagged_delay: None,
        })
    }

    /// The stream's sample rate, once its first frame header has arrived.
    pub fn rate(&self) -> Option<u32> {
        self.first.map(|h| h.rate)
    }

    /// The encoder delay the stream's LAME tag gave (`None`: no tag, 576 assumed).
    pub fn tagged_delay(&self) -> Option<u32> {
        self.tagged_delay
    }

    /// Whether bytes of an unfinished frame are waiting (a stream that ends here was cut).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Adds bytes; appends the mono samples of the frames they completed to `out` (cleared
    /// first).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), AudioError> {
        out.clear();
        self.buf.extend_from_slice(bytes);
        let mut off = 0;
        let r = self.frames_from(&mut off, out);
        self.buf.drain(..off.min(self.buf.len()));
        if r.is_ok() && self.buf.len() > MAX_BUFFER {
            return Err(AudioError::Corrupt(format!(
                "no complete MP3 frame in {MAX_BUFFER} bytes"
            )));
        }
        r
    }

    /// The stream ended: a partial frame left over was cut short.
    pub fn finish(&self) -> Result<(), AudioError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(AudioError::Corrupt(format!(
                "the MP3 stream ends inside a frame ({} bytes of it arrived)",
                self.buf.len()
            )))
        }
    }

    fn frames_from(&mut self, off: &mut usize, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if !self.id3_checked {
            if self.buf.len() < 10 {
                return Ok(());
            }
            if &self.buf[..3] == b"ID3" {
                let s = &self.buf[6..10];
                if s.iter().any(|b| b & 0x80 != 0) {
                    return Err(AudioError::Corrupt("an ID3v2 tag with a bad size".into()));
                }
                let size = s.iter().fold(0usize, |a, &b| (a << 7) | usize::from(b));
                let footer = if self.buf[5] & 0x10 != 0 { 10 } else { 0 };
                let total = 10 + size + footer;
                if self.buf.len() < total {
                    return Ok(());
                }
                *off = total;
            }
            self.id3_checked = true;
        }
        loop {
            let rest = &self.buf[*off..];
            if rest.len() < 4 {
                return Ok(());
            }
            if rest.starts_with(b"TAG") {
                // An ID3v1 tag closes the stream: 128 bytes, not audio.
                if rest.len() < 128 {
                    return Ok(());
                }
                *off += 128;
                continue;
            }
            let Some(h) = parse_header(rest) else {
                return Err(AudioError::Corrupt(format!(
                    "no MP3 frame header where frame {} should start (bytes {:02x?}): a frame was cut short or the stream holds something else",
                    self.frames + 1,
                    &rest[..4]
                )));
            };
            if let Some(f) = self.first {
                if f.version != h.version || f.rate != h.rate {
                    return Err(AudioError::Corrupt(format!(
                        "frame {} changes the stream from {} Hz to {} Hz",
                        self.frames + 1,
                        f.rate,
                        h.rate
                    )));
                }
            }
            if rest.len() < h.len {
                return Ok(());
            }
            let frame = &rest[..h.len];
            let first = self.first.is_none();
            self.frames += 1;
            *off += h.len;
            if first {
                self.first = Some(h);
                let delay = match tag_delay(frame, &h) {
                    Some(tagged) => {
                        self.tagged_delay = tagged;
                        self.skip =
                            (tagged.unwrap_or(DEFAULT_ENCODER_DELAY) + DECODER_DELAY) as usize;
                        continue; // the tag frame is not audio
                    }
                    None => DEFAULT_ENCODER_DELAY + DECODER_DELAY,
                };
                self.skip = delay as usize;
            }
            let packet = PacketRef::new(0, Timestamp::new(0), SDuration::new(0), frame);
            let (decoder, interleaved) = (&mut self.decoder, &mut self.interleaved);
            // A decoder bug on hostile input must end this run with an error, not the probe.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decoder.decode_ref(&packet).map(|d| {
                    d.copy_to_vec_interleaved(interleaved);
                    d.spec().channels().count().max(1)
                })
            }));
            let channels = match decoded {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return Err(AudioError::Corrupt(format!(
                        "MP3 frame {} ({} bytes) does not decode: {e}",
                        self.frames,
                        frame.len()
                    )))
                }
                Err(_) => {
                    return Err(AudioError::Corrupt(format!(
                        "MP3 frame {} ({} bytes) made the decoder fail",
                        self.frames,
                        frame.len()
                    )))
                }
            };
            let start = out.len();
            if channels == 1 {
                out.extend_from_slice(&self.interleaved);
            } else {
                let scale = 1.0 / channels as f32;
                out.extend(
                    self.interleaved
                        .chunks_exact(channels)
                        .map(|f| f.iter().sum::<f32>() * scale),
                );
            }
            let skip = self.skip.min(out.len() - start);
            if skip > 0 {
                out.drain(start..start + skip);
                self.skip -= skip;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_give_rate_and_length() {
        // MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding, joint stereo.
        let h = parse_header(&[0xFF, 0xFB, 0x90, 0x44]).unwrap();
        assert_eq!(
            (h.version, h.rate, h.len, h.samples),
            (1, 44_100, 417, 1152)
        );
        assert_eq!(h.channels, 2);
        // MPEG-2 Layer III, 48 kbps, 24 kHz, unpadded, mono.
        let h = parse_header(&[0xFF, 0xF3, 0x64, 0xC4]).unwrap();
        assert_eq!((h.version, h.rate, h.len, h.samples), (2, 24_000, 144, 576));
        assert_eq!(h.channels, 1);
        // Layer II, free format, reserved rate, no sync.
        assert!(parse_header(&[0xFF, 0xFD, 0x90, 0x44]).is_none());
        assert!(parse_header(&[0xFF, 0xFB, 0x00, 0x44]).is_none());
        assert!(parse_header(&[0xFF, 0xFB, 0x9C, 0x44]).is_none());
        assert!(parse_header(&[0x00, 0xFB, 0x90, 0x44]).is_none());
    }

    /// Decodes a fixture in pieces of `step` bytes; (onset, first audible sample, total) in
    /// seconds, and the decoder.
    fn onset_of(bytes: &[u8], step: usize) -> (f64, f64, f64, Mp3Stream) {
        let mut d = Mp3Stream::new().unwrap();
        let mut out = Vec::new();
        let mut track: Option<crate::audio::Track> = None;
        for piece in bytes.chunks(step) {
            d.push(piece, &mut out).unwrap();
            if let Some(rate) = d.rate() {
                let t = track.get_or_insert_with(|| crate::audio::Track::new(rate, -40.0));
                t.push(&out);
            }
        }
        d.finish().unwrap();
        let t = track.unwrap();
        (
            t.onset().unwrap().as_secs_f64(),
            t.first_audible().unwrap().as_secs_f64(),
            t.total().as_secs_f64(),
            d,
        )
    }

    #[test]
    fn the_decoder_delay_and_the_encoder_delay_do_not_shift_the_onset() {
        // 300 ms of digital silence, then speech; LAME Info tag (encoder delay 576).
        let tagged = include_bytes!("../sim/fixtures/speech-24k-mono.mp3");
        for step in [1, 7, 144, 100_000] {
            let (onset, first, total, d) = onset_of(tagged, step);
            assert_eq!(d.tagged_delay(), Some(576));
            assert!(
                (first - 0.300).abs() < 0.001,
                "step {step}: first audible {first}"
            );
            assert!((onset - 0.300).abs() <= 0.010, "step {step}: onset {onset}");
            // 1.3 s of input plus the encoder's padding (under one 24 ms frame).
            assert!((1.3..1.35).contains(&total), "{total}");
        }
        // 600 ms of noise, then speech; no tag: LAME's 576 assumed.
        let untagged = include_bytes!("../sim/fixtures/speech-44k-stereo-notag.mp3");
        let (onset, first, _, d) = onset_of(untagged, 417);
        assert_eq!(d.tagged_delay(), None);
        assert_eq!(d.rate(), Some(44_100));
        assert!((first - 0.600).abs() < 0.001, "first audible {first}");
        assert!((onset - 0.600).abs() <= 0.010, "onset {onset}");
    }

    #[test]
    fn corrupted_streams_are_errors_or_audio_never_panics() {
        // 2,000 copies of the fixtures with bytes flipped, cut and fed at random splits.
        let mut rng = crate::rng::SplitMix64::new(21);
        let fixtures: [&[u8]; 2] = [
            include_bytes!("../sim/fixtures/speech-24k-mono.mp3"),
            include_bytes!("../sim/fixtures/speech-44k-stereo-notag.mp3"),
        ];
        for i in 0..2000 {
            let mut b = fixtures[i % 2].to_vec();
            for _ in 0..(1 + rng.next_u64() % 8) {
                let at = (rng.next_u64() as usize) % b.len();
                b[at] ^= 1 << (rng.next_u64() % 8);
            }
            b.truncate(1 + (rng.next_u64() as usize) % b.len());
            let step = 1 + (rng.next_u64() as usize) % 700;
            let mut d = Mp3Stream::new().unwrap();
            let mut out = Vec::new();
            for piece in b.chunks(step) {
                if d.push(piece, &mut out).is_err() {
                    break;
                }
            }
            let _ = d.finish();
        }
    }

    #[test]
    fn garbage_and_cut_frames_are_errors_not_panics() {
        let mut d = Mp3Stream::new().unwrap();
        let mut out = Vec::new();
        assert!(d.push(b"not an mp3 stream at all", &mut out).is_err());
        let mut d = Mp3Stream::new().unwrap();
        d.push(&[0xFF, 0xFB, 0x90, 0x44, 0, 0], &mut out).unwrap();
        assert!(d.has_partial());
        assert!(d.finish().is_err());
        let mut d = Mp3Stream::new().unwrap();
        // A bad ID3 size byte.
        assert!(d
            .push(b"ID3\x04\x00\x00\x80\x00\x00\x00", &mut out)
            .is_err());
    }
}
