//! Audio streams in any of the formats a text-to-speech service sends, decoded as the bytes
//! arrive (split at any byte): raw PCM16, G.711, WAV (the header parsed for rate, channels
//! and encoding), Ogg Opus and MP3. [`Format`] names a format (from the suite's
//! `audio_format`, or from a response's `Content-Type` such as `audio/pcm;rate=24000`);
//! [`Decoder`] turns pieces into mono samples.

use super::g711;
use super::mp3::Mp3Stream;
use super::ogg::OggOpusDemuxer;
use super::opus::OpusStream;
use super::AudioError;

/// An audio stream's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Linear PCM, 16-bit little-endian (headerless).
    Pcm16,
    /// G.711 mu-law (headerless).
    Pcmu,
    /// G.711 A-law (headerless).
    Pcma,
    /// RIFF WAVE: a header, then PCM16, 32-bit float or G.711 samples.
    Wav,
    /// Ogg Opus.
    OggOpus,
    /// MPEG Layer III.
    Mp3,
}

/// The names `audio_format` accepts for the HTTP and JSON-over-WebSocket audio protocols.
pub const NAMES: &[&str] = &[
    "pcm16",
    "pcm",
    "pcmu",
    "g711_ulaw",
    "pcma",
    "g711_alaw",
    "wav",
    "ogg",
    "ogg-opus",
    "opus",
    "mp3",
    "mpeg",
];

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pcm16" | "pcm" | "audio/pcm" | "s16le" => Format::Pcm16,
            "pcmu" | "g711_ulaw" | "ulaw" | "mulaw" | "audio/pcmu" => Format::Pcmu,
            "pcma" | "g711_alaw" | "alaw" | "audio/pcma" => Format::Pcma,
            "wav" | "wave" => Format::Wav,
            "ogg" | "ogg-opus" | "opus" => Format::OggOpus,
            "mp3" | "mpeg" => Format::Mp3,
            _ => return None,
        })
    }

    /// The name in reports (`audio.format`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcm16 => "pcm16",
            Format::Pcmu => "pcmu",
            Format::Pcma => "pcma",
            Format::Wav => "wav",
            Format::OggOpus => "ogg-opus",
            Format::Mp3 => "mp3",
        }
    }
}

/// What a `Content-Type` says about audio: the format and, for headerless PCM, its `rate`
/// and `channels` parameters. `None` when it names no audio format canary decodes.
pub fn from_content_type(ct: &str) -> Option<(Format, Option<u32>, Option<u16>)> {
    let mut parts = ct.split(';');
    let mime = parts.next()?.trim().to_ascii_lowercase();
    let mut rate = None;
    let mut channels = None;
    let mut codecs = None;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "rate" | "samplerate" | "sample_rate" => rate = v.parse().ok(),
            "channels" => channels = v.parse().ok(),
            "codecs" => codecs = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    let format = match mime.as_str() {
        "audio/pcm" | "audio/x-pcm" | "audio/raw" | "audio/s16le" | "audio/x-s16le" => {
            Format::Pcm16
        }
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Format::Wav,
        "audio/ogg" | "audio/opus" | "application/ogg" => {
            if codecs.as_deref().is_some_and(|c| !c.contains("opus")) {
                return None;
            }
            Format::OggOpus
        }
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" => Format::Mp3,
        "audio/basic" | "audio/pcmu" | "audio/x-mulaw" | "audio/ulaw" => Format::Pcmu,
        "audio/pcma" | "audio/x-alaw" | "audio/alaw" => Format::Pcma,
        _ => return None,
    };
    Some((format, rate, channels))
}

/// Headerless PCM16 or G.711 with a given channel count: samples split between pieces at
/// any byte are carried over, channels averaged to mono.
#[derive(Debug, Clone)]
struct Linear {
    encoding: Encoding,
    channels: usize,
    carry: Vec<u8>,
    frame: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Pcm16,
    Float32,
    Ulaw,
    Alaw,
}

impl Encoding {
    fn width(self) -> usize {
        match self {
            Encoding::Pcm16 => 2,
            Encoding::Float32 => 4,
            Encoding::Ulaw | Encoding::Alaw => 1,
        }
    }
}

impl Linear {
    fn new(encoding: Encoding, channels: u16) -> Linear {
        Linear {
            encoding,
            channels: usize::from(channels.max(1)),
            carry: Vec::new(),
            frame: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        let step = self.encoding.width() * self.channels;
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / step * step;
        let scale = 1.0 / self.channels as f32;
        for frame in self.carry[..whole].chunks_exact(step) {
            self.frame.clear();
            match self.encoding {
                Encoding::Pcm16 => self.frame.extend(
                    frame
                        .chunks_exact(2)
                        .map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) / 32768.0),
                ),
                Encoding::Float32 => self.frame.extend(frame.chunks_exact(4).map(|p| {
                    let v = f32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                    if v.is_finite() {
                        v.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }
                })),
                Encoding::Ulaw => g711::decode(frame, false, &mut self.frame),
                Encoding::Alaw => g711::decode(frame, true, &mut self.frame),
            }
            out.push(self.frame.iter().sum::<f32>() * scale);
        }
        self.carry.drain(..whole);
    }

    fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }
}

/// A data length that means "unknown" in a streamed WAV header (0, or the largest values).
fn placeholder(len: u32) -> bool {
    len == 0 || len >= 0x7FFF_F000
}

#[derive(Debug)]
enum WavStage {
    /// Waiting for the 12-byte RIFF header.
    Riff,
    /// Reading chunk headers (and skipping chunks) before `data`.
    Chunks,
    /// Skipping the rest of a chunk that is not audio.
    Skip(u64),
    /// Audio: `left` bytes of it declared (`None`: unknown length, to the end of the stream).
    Data { left: Option<u64>, declared: u64 },
    /// After the declared audio: only chunks (LIST, id3) may follow.
    After,
}

/// A WAV stream: header, chunks, then samples.
#[derive(Debug)]
struct WavStream {
    stage: WavStage,
    buf: Vec<u8>,
    fmt: Option<(Encoding, u16, u32)>,
    pcm: Option<Linear>,
    seen: u64,
}

impl WavStream {
    fn new() -> WavStream {
        WavStream {
            stage: WavStage::Riff,
            buf: Vec::new(),
            fmt: None,
            pcm: None,
            seen: 0,
        }
    }

    fn rate(&self) -> Option<u32> {
        self.fmt.map(|f| f.2)
    }

    fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.buf.extend_from_slice(bytes);
        let mut off = 0;
        let r = self.step(&mut off, out);
        self.buf.drain(..off.min(self.buf.len()));
        r
    }

    fn step(&mut self, off: &mut usize, out: &mut Vec<f32>) -> Result<(), AudioError> {
        loop {
            let rest = &self.buf[*off..];
            match &mut self.stage {
                WavStage::Riff => {
                    if rest.len() < 12 {
                        return Ok(());
                    }
                    if &rest[..4] != b"RIFF" || &rest[8..12] != b"WAVE" {
                        return Err(AudioError::Corrupt(format!(
                            "not a WAV stream: it starts with {:?}",
                            String::from_utf8_lossy(&rest[..12])
                        )));
                    }
                    *off += 12;
                    self.stage = WavStage::Chunks;
                }
                WavStage::Chunks | WavStage::After => {
                    if rest.len() < 8 {
                        return Ok(());
                    }
                    let id: [u8; 4] = [rest[0], rest[1], rest[2], rest[3]];
                    let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    if !id.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                        return Err(AudioError::Corrupt(
                            if matches!(self.stage, WavStage::After) {
                                "the WAV header's data length is shorter than the audio sent (more samples follow the declared end)".to_string()
                            } else {
                                format!("a WAV chunk id that is not text: {id:02x?}")
                            },
                        ));
                    }
                    let after = matches!(self.stage, WavStage::After);
                    if &id == b"fmt " && !after {
                        let need = 8 + size as usize;
                        if !(16..=1024).contains(&size) {
                            return Err(AudioError::Corrupt(format!(
                                "a WAV fmt chunk of {size} bytes"
                            )));
                        }
                        if rest.len() < need {
                            return Ok(());
                        }
                        self.fmt = Some(fmt_chunk(&rest[8..need])?);
                        *off += need + (size as usize & 1);
                    } else if &id == b"data" && !after {
                        let Some((enc, ch, _)) = self.fmt else {
                            return Err(AudioError::Corrupt(
                                "the WAV data chunk comes before its fmt chunk".into(),
                            ));
                        };
                        self.pcm = Some(Linear::new(enc, ch));
                        *off += 8;
                        let left = (!placeholder(size)).then_some(u64::from(size));
                        self.stage = WavStage::Data {
                            left,
                            declared: u64::from(size),
                        };
                    } else {
                        *off += 8;
                        self.stage = WavStage::Skip(u64::from(size) + u64::from(size & 1));
                    }
                }
                WavStage::Skip(n) => {
                    let take = (*n).min(rest.len() as u64);
                    *n -= take;
                    *off += take as usize;
                    if *n > 0 {
                        return Ok(());
                    }
                    self.stage = if self.pcm.is_some() {
                        WavStage::After
                    } else {
                        WavStage::Chunks
                    };
                }
                WavStage::Data { left, .. } => {
                    let take = match left {
                        Some(l) => (*l).min(rest.len() as u64) as usize,
                        None => rest.len(),
                    };
                    if let Some(pcm) = self.pcm.as_mut() {
                        pcm.push(&rest[..take], out);
                    }
                    self.seen += take as u64;
                    *off += take;
                    if let Some(l) = left {
                        *l -= take as u64;
                        if *l == 0 {
                            self.stage = WavStage::After;
                            continue;
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    fn finish(&self) -> Result<(), AudioError> {
        match &self.stage {
            WavStage::Riff | WavStage::Chunks if self.pcm.is_none() => Err(AudioError::Corrupt(
                "the stream ends before the WAV data chunk".into(),
            )),
            WavStage::Data {
                left: Some(l),
                declared,
            } if *l > 0 => Err(AudioError::Corrupt(format!(
                "the WAV header declares {declared} bytes of audio; the stream ended after {}",
                self.seen
            ))),
            _ if self.pcm.as_ref().is_some_and(Linear::has_partial) => Err(AudioError::Corrupt(
                "the WAV stream ends inside a sample frame".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// Encoding, channels and rate of a `fmt ` chunk.
fn fmt_chunk(b: &[u8]) -> Result<(Encoding, u16, u32), AudioError> {
    let tag = u16::from_le_bytes([b[0], b[1]]);
    let channels = u16::from_le_bytes([b[2], b[3]]);
    let rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let bits = u16::from_le_bytes([b[14], b[15]]);
    // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes are the real tag.
    let tag = if tag == 0xFFFE && b.len() >= 26 {
        u16::from_le_bytes([b[24], b[25]])
    } else {
        tag
    };
    let enc = match (tag, bits) {
        (1, 16) => Encoding::Pcm16,
        (3, 32) => Encoding::Float32,
        (7, 8) => Encoding::Ulaw,
        (6, 8) => Encoding::Alaw,
        _ => {
            return Err(AudioError::Unsupported(format!(
                "WAV encoding {tag} with {bits}-bit samples (canary decodes 16-bit PCM, 32-bit float, 8-bit mu-law and A-law)"
            )))
        }
    };
    if channels == 0 || channels > 8 || !(8_000..=192_000).contains(&rate) {
        return Err(AudioError::Unsupported(format!(
            "WAV of {channels} channel(s) at {rate} Hz"
        )));
    }
    Ok((enc, channels, rate))
}

/// Ogg Opus through the demuxer and libopus at 48 kHz, pre-skip dropped, output gain applied.
struct OggStream {
    demux: OggOpusDemuxer,
    opus: OpusStream,
    gain: f32,
    head_seen: bool,
    packets: u64,
}

enum Kind {
    Linear(Linear),
    Wav(WavStream),
    Ogg(Box<OggStream>),
    Mp3(Box<Mp3Stream>),
}

/// Decodes one response's audio, piece by piece, to mono samples.
pub struct Decoder {
    format: Format,
    kind: Kind,
    rate: Option<u32>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoder({})", self.format.as_str())
    }
}

impl Decoder {
    /// A decoder for `format`; `rate` and `channels` apply to headerless formats (PCM16:
    /// 24 kHz mono unless given; G.711: 8 kHz).
    pub fn new(
        format: Format,
        rate: Option<u32>,
        channels: Option<u16>,
    ) -> Result<Self, AudioError> {
        let ch = channels.unwrap_or(1);
        let (kind, rate) = match format {
            Format::Pcm16 => (
                Kind::Linear(Linear::new(Encoding::Pcm16, ch)),
                Some(rate.unwrap_or(24_000)),
            ),
            Format::Pcmu => (
                Kind::Linear(Linear::new(Encoding::Ulaw, ch)),
                Some(rate.unwrap_or(8_000)),
            ),
            Format::Pcma => (
                Kind::Linear(Linear::new(Encoding::Alaw, ch)),
                Some(rate.unwrap_or(8_000)),
            ),
            Format::Wav => (Kind::Wav(WavStream::new()), None),
            Format::OggOpus => (
                Kind::Ogg(Box::new(OggStream {
                    demux: OggOpusDemuxer::new(),
                    opus: OpusStream::new(48_000)?,
                    gain: 1.0,
                    head_seen: false,
                    packets: 0,
                })),
                Some(48_000),
            ),
            Format::Mp3 => (Kind::Mp3(Box::new(Mp3Stream::new()?)), None),
        };
        if let Some(r) = rate {
            if !(1_000..=192_000).contains(&r) {
                return Err(AudioError::Unsupported(format!("a sample rate of {r} Hz")));
            }
        }
        Ok(Decoder { format, kind, rate })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The sample rate of the decoded samples, once known (WAV and MP3: from their headers).
    pub fn rate(&self) -> Option<u32> {
        match &self.kind {
            Kind::Wav(w) => w.rate(),
            Kind::Mp3(m) => m.rate(),
            _ => self.rate,
        }
    }

    /// Decodes a piece; `out` is cleared and receives the mono samples it completed.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), AudioError> {
        out.clear();
        match &mut self.kind {
            Kind::Linear(l) => {
                l.push(bytes, out);
                Ok(())
            }
            Kind::Wav(w) => w.push(bytes, out),
            Kind::Mp3(m) => m.push(bytes, out),
            Kind::Ogg(o) => {
                let packets = o.demux.push(bytes)?;
                if let (false, Some(h)) = (o.head_seen, o.demux.head()) {
                    o.opus.set_pre_skip(h.pre_skip);
                    o.gain = 10f32.powf(h.gain_db / 20.0);
                    o.head_seen = true;
                }
                for p in packets {
                    o.packets += 1;
                    let pcm = o.opus.decode(&p).map_err(|e| {
                        AudioError::Corrupt(format!("Opus packet {}: {e}", o.packets))
                    })?;
                    out.extend(pcm.iter().map(|x| x * o.gain));
                }
                Ok(())
            }
        }
    }

    /// The stream ended cleanly: anything left half-done (a cut frame or page, a WAV shorter
    /// than its header says) is an error.
    pub fn finish(&self) -> Result<(), AudioError> {
        match &self.kind {
            Kind::Linear(l) if l.has_partial() => Err(AudioError::Corrupt(
                "the audio ends inside a sample frame".into(),
            )),
            Kind::Linear(_) => Ok(()),
            Kind::Wav(w) => w.finish(),
            Kind::Mp3(m) => m.finish(),
            Kind::Ogg(o) if o.demux.has_partial_page() => Err(AudioError::Corrupt(
                "the Ogg stream ends inside a page".into(),
            )),
            Kind::Ogg(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_header(data_len: u32, channels: u16, rate: u32) -> Vec<u8> {
        let mut h = b"RIFF".to_vec();
        h.extend_from_slice(&data_len.wrapping_add(36).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        h.extend_from_slice(&(2 * channels).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    fn decode_split(d: &mut Decoder, bytes: &[u8], step: usize) -> Result<Vec<f32>, AudioError> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step.max(1)) {
            d.push(piece, &mut out)?;
            all.extend_from_slice(&out);
        }
        d.finish()?;
        Ok(all)
    }

    #[test]
    fn content_types_name_formats_and_rates() {
        assert_eq!(
            from_content_type("audio/pcm;rate=24000"),
            Some((Format::Pcm16, Some(24_000), None))
        );
        assert_eq!(
            from_content_type("audio/pcm; rate=16000; channels=2"),
            Some((Format::Pcm16, Some(16_000), Some(2)))
        );
        assert_eq!(from_content_type("audio/mpeg").unwrap().0, Format::Mp3);
        assert_eq!(from_content_type("audio/wav").unwrap().0, Format::Wav);
        assert_eq!(
            from_content_type("audio/ogg; codecs=opus").unwrap().0,
            Format::OggOpus
        );
        assert_eq!(from_content_type("audio/ogg; codecs=vorbis"), None);
        assert_eq!(from_content_type("application/json"), None);
        assert_eq!(Format::parse("g711_ulaw"), Some(Format::Pcmu));
        assert!(NAMES.iter().all(|n| Format::parse(n).is_some()));
    }

    #[test]
    fn wav_split_at_every_byte_gives_the_same_samples() {
        let samples: Vec<i16> = (0..50).map(|i| (i * 300 - 7000) as i16).collect();
        let mut bytes = wav_header(100, 1, 16_000);
        // A LIST chunk after the data is skipped.
        bytes.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        bytes.extend_from_slice(b"LIST\x04\x00\x00\x00abcd");
        for step in [1, 3, 7, 1000] {
            let mut d = Decoder::new(Format::Wav, None, None).unwrap();
            let got = decode_split(&mut d, &bytes, step).unwrap();
            assert_eq!(d.rate(), Some(16_000));
            assert_eq!(got.len(), 50, "step {step}");
            assert_eq!(got[0], -7000.0 / 32768.0);
        }
    }

    #[test]
    fn a_wav_header_that_lies_about_its_length_is_caught_both_ways() {
        let pcm: Vec<u8> = (0..200u32)
            .flat_map(|i| ((i * 97) as i16).to_le_bytes())
            .collect();
        // Declares more than arrives.
        let mut long = wav_header(4000, 1, 24_000);
        long.extend_from_slice(&pcm);
        let mut d = Decoder::new(Format::Wav, None, None).unwrap();
        let e = decode_split(&mut d, &long, 64).unwrap_err();
        assert!(e.to_string().contains("declares 4000 bytes"), "{e}");
        // Declares less than arrives (the rest is not a chunk).
        let mut short = wav_header(100, 1, 24_000);
        short.extend_from_slice(&pcm);
        let mut d = Decoder::new(Format::Wav, None, None).unwrap();
        assert!(decode_split(&mut d, &short, 64).is_err());
        // A placeholder length streams to the end.
        let mut open = wav_header(0xFFFF_FFFF, 2, 24_000);
        open.extend_from_slice(&pcm);
        let mut d = Decoder::new(Format::Wav, None, None).unwrap();
        assert_eq!(decode_split(&mut d, &open, 5).unwrap().len(), 100);
    }

    #[test]
    fn bad_wav_headers_are_errors() {
        let mut d = Decoder::new(Format::Wav, None, None).unwrap();
        let mut out = Vec::new();
        assert!(d.push(b"RIFX\0\0\0\0WAVEjunk", &mut out).is_err());
        let mut d = Decoder::new(Format::Wav, None, None).unwrap();
        let mut h = wav_header(10, 1, 24_000);
        h[20] = 2; // ADPCM
        assert!(matches!(
            d.push(&h, &mut out),
            Err(AudioError::Unsupported(_))
        ));
        let d = Decoder::new(Format::Wav, None, None).unwrap();
        assert!(d.finish().is_err());
    }

    #[test]
    fn stereo_pcm_is_averaged_and_odd_splits_carried() {
        let frames: Vec<[i16; 2]> = vec![[16384, 0], [-16384, -16384], [0, 8192]];
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<_>>())
            .collect();
        let mut d = Decoder::new(Format::Pcm16, Some(16_000), Some(2)).unwrap();
        let got = decode_split(&mut d, &bytes, 3).unwrap();
        assert_eq!(got, vec![0.25, -0.5, 0.125]);
        let mut d = Decoder::new(Format::Pcm16, None, None).unwrap();
        let mut out = Vec::new();
        d.push(&[1, 2, 3], &mut out).unwrap();
        assert!(d.finish().is_err());
        assert_eq!(d.rate(), Some(24_000));
    }
}
