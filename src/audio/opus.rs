//! Opus decoding through the system libopus (the `opus` crate).
//!
//! Every packet is decoded to mono at the stream's rate (libopus downmixes stereo packets),
//! since loudness and onset need one channel. Samples the Ogg header's pre-skip names are
//! dropped from the start, as a player drops them.

use super::AudioError;

/// The longest Opus packet decodes to 120 ms: 5,760 samples at 48 kHz.
const MAX_FRAME: usize = 5760;

/// Rates libopus can decode to.
pub const RATES: &[u32] = &[8000, 12000, 16000, 24000, 48000];

/// Decodes a stream of Opus packets to mono samples in [-1, 1].
pub struct OpusStream {
    decoder: opus::Decoder,
    rate: u32,
    buf: Vec<f32>,
    skip: usize,
}

impl std::fmt::Debug for OpusStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpusStream({} Hz)", self.rate)
    }
}

impl OpusStream {
    pub fn new(rate: u32) -> Result<Self, AudioError> {
        if !RATES.contains(&rate) {
            return Err(AudioError::Unsupported(format!(
                "Opus cannot decode to {rate} Hz (valid: 8000, 12000, 16000, 24000, 48000)"
            )));
        }
        let decoder = opus::Decoder::new(rate, opus::Channels::Mono)
            .map_err(|e| AudioError::Unsupported(format!("libopus: {e}")))?;
        Ok(OpusStream {
            decoder,
            rate,
            buf: vec![0.0; MAX_FRAME * rate as usize / 48_000],
            skip: 0,
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Drops the first `samples_48k` samples (an Ogg Opus header's pre-skip, counted at 48 kHz).
    pub fn set_pre_skip(&mut self, samples_48k: u16) {
        self.skip = usize::from(samples_48k) * self.rate as usize / 48_000;
    }

    /// Decodes one packet; returns its samples (possibly none while pre-skip lasts).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError> {
        if packet.is_empty() {
            return Err(AudioError::Corrupt("empty Opus packet".into()));
        }
        let n = self
            .decoder
            .decode_float(packet, &mut self.buf, false)
            .map_err(|e| {
                AudioError::Corrupt(format!(
                    "Opus packet of {} bytes does not decode: {e}",
                    packet.len()
                ))
            })?;
        let n = n.min(self.buf.len());
        let skip = self.skip.min(n);
        self.skip -= skip;
        Ok(&self.buf[skip..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(frames: usize, amp: f32) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        (0..frames)
            .map(|f| {
                let pcm: Vec<f32> = (0..960)
                    .map(|i| amp * ((f * 960 + i) as f32 * 0.05).sin())
                    .collect();
                enc.encode_vec_float(&pcm, 4000).unwrap()
            })
            .collect()
    }

    #[test]
    fn decodes_20ms_packets_and_keeps_the_level() {
        let mut d = OpusStream::new(48_000).unwrap();
        let mut last = Vec::new();
        for p in encode(10, 0.5) {
            last = d.decode(&p).unwrap().to_vec();
            assert_eq!(last.len(), 960);
        }
        // A 0.5 sine is about -9 dBFS; the codec keeps it within a few dB.
        let db = crate::audio::loudness::dbfs(&last);
        assert!((db + 9.0).abs() < 3.0, "{db}");
    }

    #[test]
    fn corrupt_and_empty_packets_are_errors_not_panics() {
        let mut d = OpusStream::new(48_000).unwrap();
        assert!(matches!(d.decode(&[]), Err(AudioError::Corrupt(_))));
        // Code 3 (arbitrary frames) without its frame-count byte is invalid.
        assert!(matches!(d.decode(&[0x03]), Err(AudioError::Corrupt(_))));
        // A code-3 packet claiming 63 frames of 20 ms exceeds 120 ms.
        assert!(matches!(
            d.decode(&[0x0B, 0x3F]),
            Err(AudioError::Corrupt(_))
        ));
        // The decoder still works after an error.
        let p = encode(1, 0.3);
        assert_eq!(d.decode(&p[0]).unwrap().len(), 960);
    }

    #[test]
    fn pre_skip_is_dropped_at_any_rate() {
        let mut d = OpusStream::new(24_000).unwrap();
        d.set_pre_skip(312);
        let p = encode(2, 0.3);
        assert_eq!(d.decode(&p[0]).unwrap().len(), 480 - 156);
        assert_eq!(d.decode(&p[1]).unwrap().len(), 480);
        assert!(matches!(
            OpusStream::new(44_100),
            Err(AudioError::Unsupported(_))
        ));
    }
}
