//! Audio: what a listener would hear, computed from what arrived.
//!
//! Decoding (Opus through system libopus, PCM16, G.711 mu-law and A-law, MP3 through
//! symphonia, WAV), the Ogg demuxer for Ogg Opus streams, [`stream::Decoder`] for a
//! text-to-speech stream in any of those formats, and the loudness analysis that finds the
//! audible onset. Nothing here does network I/O (`input` reads a voice case's WAV file):
//! drivers feed the bytes of each chunk as it arrives, and the timeline keeps, per chunk,
//! its arrival time, its decoded duration and its loudness.

pub mod g711;
pub mod input;
pub mod loudness;
pub mod mp3;
pub mod ogg;
pub mod opus;
pub mod pcm;
pub mod stream;
pub mod wav;

use std::time::Duration;

pub use loudness::{OnsetDetector, DEFAULT_THRESHOLD_DBFS};

/// Why audio could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// The bytes are not valid for the declared codec or container.
    #[error("{0}")]
    Corrupt(String),
    /// Valid, but a format canary does not decode (sample rate, channel mapping, encoding).
    #[error("{0}")]
    Unsupported(String),
}

/// The duration of `samples` frames at `rate` Hz (exact to the nanosecond).
pub fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let nanos = u128::from(samples) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Averages interleaved channels into one (mono passes through).
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    out.clear();
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

/// One decoded chunk as the analysis saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkLevel {
    /// Where the chunk starts in the decoded stream.
    pub position: Duration,
    pub duration: Duration,
    /// Mean-removed RMS of the whole chunk in dBFS.
    pub dbfs: f32,
}

/// The decoded stream of one response: its position, loudness and audible onset.
#[derive(Debug, Clone)]
pub struct Track {
    rate: u32,
    samples: u64,
    detector: OnsetDetector,
}

impl Track {
    pub fn new(rate: u32, threshold_dbfs: f32) -> Self {
        Track {
            rate,
            samples: 0,
            detector: OnsetDetector::new(rate, threshold_dbfs),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Adds a decoded mono chunk; returns where it sits and how loud it is.
    pub fn push(&mut self, mono: &[f32]) -> ChunkLevel {
        let position = samples_to_duration(self.samples, self.rate);
        self.samples += mono.len() as u64;
        self.detector.push(mono);
        ChunkLevel {
            position,
            duration: samples_to_duration(mono.len() as u64, self.rate),
            dbfs: loudness::dbfs(mono),
        }
    }

    /// Decoded audio so far.
    pub fn total(&self) -> Duration {
        samples_to_duration(self.samples, self.rate)
    }

    /// Where the audible onset is in the stream, once one has been confirmed.
    pub fn onset(&self) -> Option<Duration> {
        self.detector.onset()
    }

    /// The first sample of the onset window loud enough to be heard.
    pub fn first_audible(&self) -> Option<Duration> {
        self.detector.first_audible_sample()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_exact() {
        assert_eq!(samples_to_duration(480, 48_000), Duration::from_millis(10));
        assert_eq!(
            samples_to_duration(2400, 24_000),
            Duration::from_millis(100)
        );
        assert_eq!(samples_to_duration(1, 0), Duration::ZERO);
    }

    #[test]
    fn downmix_averages_frames() {
        let mut out = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
        downmix(&[0.25], 1, &mut out);
        assert_eq!(out, vec![0.25]);
    }

    #[test]
    fn track_places_chunks_and_finds_the_onset() {
        let mut t = Track::new(8000, DEFAULT_THRESHOLD_DBFS);
        let silence = vec![0.0f32; 800];
        let tone: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.3).sin()).collect();
        let a = t.push(&silence);
        let b = t.push(&tone);
        assert_eq!(a.position, Duration::ZERO);
        assert_eq!(b.position, Duration::from_millis(100));
        assert!(a.dbfs <= -100.0 && b.dbfs > -20.0);
        assert_eq!(t.onset(), Some(Duration::from_millis(100)));
        assert_eq!(t.total(), Duration::from_millis(200));
    }
}
