//! Fidelity: how far each measured SLI of one run is from the simulator's ground truth.
//!
//! The simulator runs in another process on the same machine and records its write times
//! relative to each request's arrival, plus the arrival's wall-clock time. A run records its
//! events relative to its own start, plus the start's wall-clock time. Both wall clocks are
//! the same kernel clock, so every event can be placed on one time line: the error of a
//! latency is when canary stamped the bytes minus when the server wrote them. Pure functions:
//! the load runner feeds them the product's own measures.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sim::chat::StreamTruth;
use crate::sim::voice::VoiceTruth;
use crate::timeline::Timeline;

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Wall-clock time at which the run's request was written: the origin of its latencies.
pub fn sent_unix(t: &Timeline) -> f64 {
    unix(t.started_at) + crate::measure::origin(t).as_secs_f64()
}

/// Signed errors (measured minus truth, seconds) of one streamed chat run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatErrors {
    /// Time to first visible token.
    pub first_visible: Option<f64>,
    /// Each inter-chunk gap, measured minus written, in order.
    pub gaps: Vec<f64>,
    /// The measured and written gaps could not be paired (different counts).
    pub gaps_unpaired: bool,
}

/// The errors of one chat run: `sent` is the request's wall-clock send time, `ttfvt` and
/// `gaps` are what canary measured (its `time_to_first_visible_token` and `inter_chunk_gap`
/// values), `truth` what the server recorded for the same request.
pub fn chat_errors(sent: f64, ttfvt: Option<f64>, gaps: &[f64], truth: &StreamTruth) -> ChatErrors {
    let first_visible = match (ttfvt, truth.first_visible) {
        (Some(m), Some(w)) => Some((sent + m) - (truth.received_unix + w)),
        _ => None,
    };
    let written: Vec<f64> = truth
        .visible_chunks
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    let paired = written.len() == gaps.len();
    ChatErrors {
        first_visible,
        gaps: if paired {
            gaps.iter().zip(&written).map(|(m, w)| m - w).collect()
        } else {
            Vec::new()
        },
        gaps_unpaired: !paired,
    }
}

/// Signed error (measured minus truth, seconds) of one voice run's time to first audible
/// audio: the truth is the write of the chunk holding the first audible sample, plus the
/// sample's place in it.
pub fn audio_error(sent: f64, ttfa: Option<f64>, truth: &VoiceTruth) -> Option<f64> {
    let m = ttfa?;
    let chunk = truth.first_audible_chunk_s?;
    Some((sent + m) - (truth.received_unix + chunk + truth.first_audible_offset_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure;
    use crate::timeline::{Event, Stamped, TokenKind};
    use std::time::Duration;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn token(at: u64, shows: bool) -> Stamped {
        Stamped {
            at: ms(at),
            event: Event::Token {
                kind: TokenKind::Visible,
                tokens: 1,
                shows,
            },
        }
    }

    /// A run started at t=1000 s (wall clock), wrote its request at +2 ms; the server got it
    /// 1 ms later and wrote a blank delta, then words every 20 ms from its 10 ms.
    fn timeline(read_lag_ms: &[u64]) -> Timeline {
        let mut events = vec![
            Stamped {
                at: ms(2),
                event: Event::RequestSent,
            },
            Stamped {
                at: ms(4),
                event: Event::Headers { status: 200 },
            },
            token(5, false),
        ];
        for (k, lag) in read_lag_ms.iter().enumerate() {
            // Server write of word k: arrival (3 ms) + 10 ms + 20 ms * k.
            events.push(token(3 + 10 + 20 * k as u64 + lag, true));
        }
        Timeline {
            events,
            ..Timeline::empty(UNIX_EPOCH + Duration::from_secs(1000))
        }
    }

    fn truth(words: usize) -> StreamTruth {
        StreamTruth {
            received_unix: 1000.003,
            first_visible: Some(0.010),
            visible_chunks: (0..words).map(|k| (0.010 + 0.020 * k as f64, 1)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn errors_are_read_time_minus_write_time_through_the_products_measures() {
        // Reads lag the writes by 0, 1, 0 and 3 ms.
        let t = timeline(&[0, 1, 0, 3]);
        let ttfvt = measure::time_to_first_visible_token(&t);
        let stats = measure::stream_stats(&t, Duration::from_secs(1)).unwrap();
        let sent = sent_unix(&t);
        assert!((sent - 1000.002).abs() < 1e-9);
        let e = chat_errors(sent, ttfvt, &stats.gaps, &truth(4));
        assert!(e.first_visible.unwrap().abs() < 1e-9, "{e:?}");
        let want = [0.001, -0.001, 0.003];
        assert_eq!(e.gaps.len(), 3);
        for (g, w) in e.gaps.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{:?}", e.gaps);
        }
        assert!(!e.gaps_unpaired);
        // A late first read is an error of exactly its lateness.
        let late = timeline(&[7, 7]);
        let e = chat_errors(
            sent_unix(&late),
            measure::time_to_first_visible_token(&late),
            &measure::stream_stats(&late, Duration::from_secs(1))
                .unwrap()
                .gaps,
            &truth(2),
        );
        assert!((e.first_visible.unwrap() - 0.007).abs() < 1e-9);
        assert!(e.gaps[0].abs() < 1e-9);
    }

    #[test]
    fn unpaired_gaps_and_missing_values_are_not_errors_of_zero() {
        let t = timeline(&[0, 0, 0]);
        let gaps = measure::stream_stats(&t, Duration::from_secs(1))
            .unwrap()
            .gaps;
        let e = chat_errors(sent_unix(&t), None, &gaps, &truth(5));
        assert_eq!(e.first_visible, None);
        assert!(e.gaps.is_empty());
        assert!(e.gaps_unpaired);
    }

    #[test]
    fn audio_error_counts_the_onset_inside_its_chunk() {
        let v = VoiceTruth {
            seq: 1,
            path: "/v1/realtime".into(),
            id: None,
            format: "pcm16".into(),
            first_chunk_s: Some(0.02),
            first_audible_chunk_s: Some(0.32),
            first_audible_offset_s: 0.005,
            lead_in_s: 0.3,
            speech_s: 1.0,
            gap_s: 0.0,
            max_late_s: 0.0,
            received_unix: 50.0,
            chunks: 66,
            done_s: None,
            fault: None,
            transcript: String::new(),
        };
        // Sent at 49.999; heard 0.3262 s later: 0.8 ms after the onset was written.
        let e = audio_error(49.999, Some(0.3262), &v).unwrap();
        assert!((e - 0.0002).abs() < 1e-9, "{e}");
        assert_eq!(audio_error(49.999, None, &v), None);
    }
}
