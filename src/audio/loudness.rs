//! Loudness and the audible onset.
//!
//! Loudness is the mean-removed RMS of a window in dBFS (full scale = 1.0), so a DC offset
//! is not mistaken for sound. The onset is the start of the first 10 ms window above the
//! threshold (default -40 dBFS) that stays above it for 50 ms: five consecutive windows.
//! Windows are counted from the first decoded sample of the response, whatever the chunking.

use std::time::Duration;

/// Windows are this long.
pub const WINDOW: Duration = Duration::from_millis(10);
/// A window is audible above this level unless the endpoint says otherwise.
pub const DEFAULT_THRESHOLD_DBFS: f32 = -40.0;
/// Audible windows in a row needed for an onset (5 x 10 ms = 50 ms).
pub const SUSTAIN_WINDOWS: u32 = 5;
/// The level reported for digital silence (log of zero).
pub const SILENCE_DBFS: f32 = -120.0;

/// Mean-removed RMS of `samples` in dBFS; [`SILENCE_DBFS`] for silence or no samples.
pub fn dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&x| {
            let d = f64::from(x) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    if !var.is_finite() || var <= 0.0 {
        return SILENCE_DBFS;
    }
    let db = 10.0 * var.log10();
    (db as f32).max(SILENCE_DBFS)
}

/// Finds the audible onset in a stream fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct OnsetDetector {
    rate: u32,
    window_len: usize,
    threshold: f32,
    partial: Vec<f32>,
    windows: u64,
    /// Index of the first window of the current run of audible windows.
    run_start: u64,
    /// The first sample of that window whose deviation from the window's mean reaches the
    /// threshold's amplitude (where the sound starts inside the window).
    run_first_sample: u64,
    run_len: u32,
    onset_window: Option<u64>,
    onset_sample: Option<u64>,
}

impl OnsetDetector {
    pub fn new(rate: u32, threshold_dbfs: f32) -> Self {
        let window_len = ((rate as usize) / 100).max(1);
        OnsetDetector {
            rate,
            window_len,
            threshold: threshold_dbfs,
            partial: Vec::with_capacity(window_len),
            windows: 0,
            run_start: 0,
            run_first_sample: 0,
            run_len: 0,
            onset_window: None,
            onset_sample: None,
        }
    }

    pub fn push(&mut self, mut samples: &[f32]) {
        if self.onset_window.is_some() {
            return;
        }
        while !samples.is_empty() {
            let need = self.window_len - self.partial.len();
            let take = need.min(samples.len());
            self.partial.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.partial.len() == self.window_len {
                let loud = dbfs(&self.partial) > self.threshold;
                if loud && self.run_len == 0 {
                    self.run_first_sample = self.windows * self.window_len as u64
                        + first_above(&self.partial, self.threshold) as u64;
                }
                self.partial.clear();
                self.close_window(loud);
                if self.onset_window.is_some() {
                    return;
                }
            }
        }
    }

    fn close_window(&mut self, loud: bool) {
        if loud {
            if self.run_len == 0 {
                self.run_start = self.windows;
            }
            self.run_len += 1;
            if self.run_len >= SUSTAIN_WINDOWS {
                self.onset_window = Some(self.run_start);
                self.onset_sample = Some(self.run_first_sample);
            }
        } else {
            self.run_len = 0;
        }
        self.windows += 1;
    }

    /// The onset's position in the stream: the start of its first window.
    pub fn onset(&self) -> Option<Duration> {
        self.onset_window.map(|w| {
            super::samples_to_duration(w.saturating_mul(self.window_len as u64), self.rate)
        })
    }

    /// Where the sound starts inside the onset's first window (the first sample that
    /// reaches the threshold's amplitude): the sample a listener hears first.
    pub fn first_audible_sample(&self) -> Option<Duration> {
        self.onset_sample
            .map(|s| super::samples_to_duration(s, self.rate))
    }
}

/// Index of the first sample whose deviation from the mean reaches the amplitude of a
/// sine at `threshold_dbfs` RMS (0 when none does: the window is loud as a whole).
fn first_above(samples: &[f32], threshold_dbfs: f32) -> usize {
    if samples.is_empty() {
        return 0;
    }
    let mean = samples.iter().sum::<f32>() / samples.len() as f32;
    let amp = 10f32.powf(threshold_dbfs / 20.0) * std::f32::consts::SQRT_2;
    samples
        .iter()
        .position(|x| (x - mean).abs() >= amp)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|i| amp * (i as f32 * 0.2).sin()).collect()
    }

    #[test]
    fn levels_of_known_signals() {
        assert_eq!(dbfs(&[0.0; 100]), SILENCE_DBFS);
        assert_eq!(dbfs(&[]), SILENCE_DBFS);
        // A DC offset alone is silence once the mean is removed.
        assert_eq!(dbfs(&[0.5; 100]), SILENCE_DBFS);
        // A full-scale square wave is 0 dBFS; half scale is -6 dBFS.
        let sq: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(dbfs(&sq).abs() < 1e-4);
        let half: Vec<f32> = sq.iter().map(|x| x * 0.5).collect();
        assert!((dbfs(&half) + 6.0206).abs() < 1e-3);
    }

    #[test]
    fn onset_needs_fifty_ms_above_the_threshold() {
        // 48 kHz: 480 samples per window.
        let mut d = OnsetDetector::new(48_000, DEFAULT_THRESHOLD_DBFS);
        d.push(&vec![0.0; 480 * 3]);
        // A 40 ms click is not an onset.
        d.push(&tone(480 * 4, 0.5));
        d.push(&vec![0.0; 480 * 2]);
        assert_eq!(d.onset(), None);
        // Sound from window 9 on, fed in odd-sized pieces.
        let speech = tone(480 * 6, 0.5);
        for piece in speech.chunks(333) {
            d.push(piece);
        }
        assert_eq!(d.onset(), Some(Duration::from_millis(90)));
        let first = d.first_audible_sample().unwrap();
        assert!(first >= Duration::from_millis(90) && first < Duration::from_micros(90_100));
    }

    #[test]
    fn the_first_audible_sample_is_found_inside_the_window() {
        let mut d = OnsetDetector::new(48_000, DEFAULT_THRESHOLD_DBFS);
        // Silence, then sound from 7 ms into the second window.
        d.push(&vec![0.0; 480 + 336]);
        d.push(&tone(480 * 6, 0.5));
        assert_eq!(d.onset(), Some(Duration::from_millis(10)));
        let first = d.first_audible_sample().unwrap();
        assert!(
            first >= Duration::from_millis(17) && first < Duration::from_millis(18),
            "{first:?}"
        );
    }

    #[test]
    fn windows_at_odd_rates_are_placed_by_samples() {
        // 22050 Hz: a window is 220 samples (9.977 ms).
        let mut d = OnsetDetector::new(22_050, DEFAULT_THRESHOLD_DBFS);
        d.push(&vec![0.0; 220 * 100]);
        d.push(&tone(220 * 6, 0.5));
        assert_eq!(
            d.onset(),
            Some(crate::audio::samples_to_duration(22_000, 22_050))
        );
    }

    #[test]
    fn quiet_noise_stays_below_the_threshold() {
        let mut d = OnsetDetector::new(24_000, DEFAULT_THRESHOLD_DBFS);
        // About -55 dBFS of noise-like signal: never audible.
        let quiet: Vec<f32> = (0..24_000)
            .map(|i| 0.0025 * ((i * 7919 % 1000) as f32 / 500.0 - 1.0))
            .collect();
        d.push(&quiet);
        assert_eq!(d.onset(), None);
        let mut loud = OnsetDetector::new(24_000, -60.0);
        loud.push(&quiet);
        assert_eq!(loud.onset(), Some(Duration::ZERO));
    }

    #[test]
    fn an_unconfirmed_run_at_the_end_is_not_an_onset() {
        let mut d = OnsetDetector::new(8000, DEFAULT_THRESHOLD_DBFS);
        d.push(&tone(80 * 4 + 40, 0.5));
        assert_eq!(d.onset(), None);
    }
}
