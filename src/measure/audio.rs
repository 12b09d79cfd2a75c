//! Audio measures: pure functions of a voice timeline.
//!
//! - **time_to_first_audio**: request written to the arrival of the chunk holding the
//!   audible onset, plus the onset's offset inside that chunk to the extent the chunk
//!   arrived earlier than real time would allow: the onset at stream position `p` cannot be
//!   heard before `a0 + p` (`a0`: the first chunk's arrival). A chunk that carries 300 ms of
//!   silence before the voice is heard 300 ms after it arrived; a packet paced in real time
//!   is heard when it arrives, wherever the codec's delay puts the onset inside it.
//! - **leading_silence**: decoded audio before the onset.
//! - **playout** (stall-and-resume jitter buffer): playback starts `prebuffer` after the
//!   first chunk arrives; a chunk that arrives after the buffer ran dry is an underrun, and
//!   playback resumes when it arrives. Reports underruns, stalled time, the prebuffer that
//!   would have avoided every underrun and when the onset is heard through the buffer.
//!   A chunk less than [`ON_TIME`] late is on time (timer noise of a paced sender), so one
//!   network pause counts as one underrun.

use std::time::Duration;

use serde::Serialize;

use super::origin;
use crate::timeline::{Event, Timeline};

/// Lateness below this is not an underrun.
pub const ON_TIME: Duration = Duration::from_millis(1);

/// One audio chunk on the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chunk {
    pub arrival: Duration,
    pub position: Duration,
    pub duration: Duration,
}

/// The audio chunks of a timeline, in arrival order.
pub fn chunks(t: &Timeline) -> Vec<Chunk> {
    t.events
        .iter()
        .filter_map(|e| match e.event {
            Event::Audio {
                position, duration, ..
            } => Some(Chunk {
                arrival: e.at,
                position,
                duration,
            }),
            _ => None,
        })
        .collect()
}

/// The chunk holding stream position `pos`, and `pos`'s offset inside it.
fn holding(chunks: &[Chunk], pos: Duration) -> Option<(&Chunk, Duration)> {
    chunks
        .iter()
        .find(|c| c.position <= pos && pos < c.position + c.duration)
        .or_else(|| {
            // An onset exactly at the end of the decoded audio (zero-length tail).
            chunks.iter().rev().find(|c| c.position <= pos)
        })
        .map(|c| (c, pos.saturating_sub(c.position)))
}

/// Request written to the first audible audio (seconds); `None` when nothing was audible.
pub fn time_to_first_audio(t: &Timeline) -> Option<f64> {
    let audio = t.audio.as_ref()?;
    let onset = audio.onset?;
    let cs = chunks(t);
    let a0 = cs.first()?.arrival;
    // The first audible sample, not the start of its 10 ms window: the chunk that holds it
    // (the onset window may begin in the silent chunk before it), and its place in it.
    let heard = audio.first_audible.unwrap_or(onset);
    let (c, _) = holding(&cs, heard)?;
    let offset = heard.saturating_sub(c.position);
    let due = a0 + heard;
    let early = due.saturating_sub(c.arrival).min(offset);
    Some((c.arrival + early).saturating_sub(origin(t)).as_secs_f64())
}

/// Decoded audio before the audible onset (seconds).
pub fn leading_silence(t: &Timeline) -> Option<f64> {
    t.audio.as_ref()?.onset.map(|d| d.as_secs_f64())
}

/// Request written to the first audio chunk of any kind, silent or not (seconds).
pub fn time_to_first_chunk(t: &Timeline) -> Option<f64> {
    t.first(|e| matches!(e, Event::Audio { .. }))
        .map(|a| a.saturating_sub(origin(t)).as_secs_f64())
}

/// What a listener behind a jitter buffer would have experienced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Playout {
    /// How the audio came: `opus`, `ogg-opus`, `pcm16`, `pcmu`, `pcma`.
    pub format: &'static str,
    /// The buffer modelled (seconds of audio held before playback starts).
    pub prebuffer: f64,
    pub underruns: u32,
    /// Time playback stood still waiting for audio (seconds).
    pub stalled_seconds: f64,
    pub longest_stall: f64,
    /// The smallest prebuffer with which no underrun would have happened (seconds).
    pub prebuffer_needed: f64,
    /// Decoded audio in total (seconds).
    pub audio_seconds: f64,
    pub chunks: usize,
    /// Request written to the onset playing through this buffer (seconds).
    pub first_audio_heard: Option<f64>,
    /// Decoded audio before the onset (seconds).
    pub leading_silence: Option<f64>,
    /// Seconds of audio delivered per second of wall time: `audio_seconds` over the time from
    /// the first audio chunk's arrival to the last one's. A stream paced in real time is just
    /// above 1 (the last chunk's own duration is not delivery time); below 1 the listener runs
    /// dry without a buffer. `None` when all the audio came in one read.
    pub real_time_factor: Option<f64>,
}

/// The playout model over a timeline's audio chunks; `None` when no audio arrived.
pub fn playout(t: &Timeline, prebuffer: Duration) -> Option<Playout> {
    let cs = chunks(t);
    let first = cs.first()?;
    let a0 = first.arrival;
    let onset = t.audio.as_ref().and_then(|a| a.onset);
    let mut clock = a0 + prebuffer;
    let mut underruns = 0u32;
    let mut stalled = Duration::ZERO;
    let mut longest = Duration::ZERO;
    let mut needed = Duration::ZERO;
    let mut heard = None;
    for c in &cs {
        if c.arrival > clock {
            let s = c.arrival - clock;
            if s >= ON_TIME {
                underruns += 1;
                stalled += s;
                longest = longest.max(s);
            }
            clock = c.arrival;
        }
        // Without underruns, chunk i plays at a0 + B + position_i: B must cover every lateness.
        needed = needed.max(c.arrival.saturating_sub(a0 + c.position));
        if let Some(o) = onset {
            if heard.is_none() && c.position <= o && o < c.position + c.duration {
                heard = Some(clock + (o - c.position));
            }
        }
        clock += c.duration;
    }
    let total = t
        .audio
        .as_ref()
        .map(|a| a.total)
        .unwrap_or_else(|| cs.iter().map(|c| c.duration).sum());
    let span = cs
        .last()
        .map(|l| l.arrival.saturating_sub(a0))
        .unwrap_or_default();
    let real_time_factor =
        (span >= Duration::from_micros(100)).then(|| total.as_secs_f64() / span.as_secs_f64());
    Some(Playout {
        format: t.audio.as_ref().map(|a| a.format).unwrap_or("unknown"),
        prebuffer: prebuffer.as_secs_f64(),
        underruns,
        stalled_seconds: stalled.as_secs_f64(),
        longest_stall: longest.as_secs_f64(),
        prebuffer_needed: needed.as_secs_f64(),
        audio_seconds: total.as_secs_f64(),
        chunks: cs.len(),
        first_audio_heard: heard.map(|h| h.saturating_sub(origin(t)).as_secs_f64()),
        leading_silence: leading_silence(t),
        real_time_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{AudioSummary, Stamped};
    use std::time::SystemTime;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Request sent at 10 ms; chunks as (arrival ms, duration ms), contiguous positions.
    fn voice(chunks: &[(u64, u64)], onset_ms: Option<u64>) -> Timeline {
        let mut events = vec![Stamped {
            at: MS(10),
            event: Event::RequestSent,
        }];
        let mut pos = 0;
        for &(at, dur) in chunks {
            events.push(Stamped {
                at: MS(at),
                event: Event::Audio {
                    position: MS(pos),
                    duration: MS(dur),
                    dbfs: -20.0,
                },
            });
            pos += dur;
        }
        Timeline {
            events,
            audio: Some(AudioSummary {
                format: "opus",
                sample_rate: 48_000,
                onset: onset_ms.map(MS),
                first_audible: onset_ms.map(MS),
                total: MS(pos),
                chunks: chunks.len() as u64,
                threshold_dbfs: -40.0,
            }),
            ..Timeline::empty(SystemTime::UNIX_EPOCH)
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn real_time_packets_onset_at_the_packet_that_holds_it() {
        // 20 ms packets at real time from 50 ms; 300 ms of silence, then voice.
        let pk: Vec<(u64, u64)> = (0..30).map(|i| (50 + 20 * i, 20)).collect();
        let t = voice(&pk, Some(300));
        // The 16th packet (position 300 ms) arrived at 350 ms; the request went at 10 ms.
        assert!(close(time_to_first_audio(&t), 0.340));
        assert!(close(time_to_first_chunk(&t), 0.040));
        assert!(close(leading_silence(&t), 0.300));
    }

    #[test]
    fn silence_sent_ahead_of_real_time_does_not_count() {
        // 300 ms of silence in a burst at 20 ms, then voice paced from 320 ms.
        let mut pk: Vec<(u64, u64)> = (0..15).map(|_| (20, 20)).collect();
        pk.extend((0..10).map(|i| (320 + 20 * i, 20)));
        let t = voice(&pk, Some(300));
        assert!(close(time_to_first_audio(&t), 0.310));
        assert!(close(time_to_first_chunk(&t), 0.010));
    }

    #[test]
    fn the_onset_offset_inside_a_large_chunk_is_added() {
        // One 1 s chunk at 100 ms whose voice starts 250 ms in.
        let t = voice(&[(100, 1000)], Some(250));
        assert!(close(time_to_first_audio(&t), 0.340));
        // Nothing audible: no value.
        assert_eq!(time_to_first_audio(&voice(&[(100, 1000)], None)), None);
    }

    #[test]
    fn a_codec_delay_inside_a_real_time_packet_is_not_added() {
        // Pre-skip removed: packets cover [20k - 6.5, 20k + 13.5) ms; the onset at 300 ms sits
        // 6.5 ms into the packet that arrived at its real-time moment (a0 + 300).
        let mut events = voice(&[], Some(300)).events;
        for k in 0..20u64 {
            let pos = Duration::from_micros((k * 20_000).saturating_sub(6_500));
            let dur = if k == 0 {
                MS(13) + Duration::from_micros(500)
            } else {
                MS(20)
            };
            events.push(Stamped {
                at: MS(30 + 20 * k),
                event: Event::Audio {
                    position: pos,
                    duration: dur,
                    dbfs: -20.0,
                },
            });
        }
        let mut t = voice(&[], Some(300));
        t.events = events;
        assert!(close(time_to_first_audio(&t), 0.320));
    }

    #[test]
    fn the_chunk_holding_the_first_audible_sample_decides() {
        // The onset window starts at 100 ms, inside a silent chunk that arrived at 1.0 s;
        // the voice starts at 108 ms, in the next chunk, which came after a 2 s pause.
        let mut t = voice(&[(1000, 105), (3000, 500)], Some(100));
        if let Some(a) = t.audio.as_mut() {
            a.first_audible = Some(MS(108));
        }
        assert!(close(time_to_first_audio(&t), 2.990));
    }

    #[test]
    fn a_late_chunk_is_heard_when_it_arrives() {
        // The onset is 200 ms into a chunk that arrived long after real time.
        let t = voice(&[(10, 100), (500, 1000)], Some(300));
        assert!(close(time_to_first_audio(&t), 0.490));
        // Through the buffer it plays once the 200 ms before it have played.
        assert!(close(playout(&t, MS(0)).unwrap().first_audio_heard, 0.690));
    }

    #[test]
    fn playout_counts_an_underrun_of_the_gap_minus_the_prebuffer() {
        // Real-time 20 ms packets from 0; a 300 ms gap before the 11th packet.
        let mut pk: Vec<(u64, u64)> = (0..10).map(|i| (20 * i, 20)).collect();
        pk.extend((10..20).map(|i| (20 * i + 300, 20)));
        let t = voice(&pk, Some(0));
        let p = playout(&t, MS(80)).unwrap();
        assert_eq!(p.underruns, 1);
        assert!((p.stalled_seconds - 0.220).abs() < 1e-9);
        assert!((p.longest_stall - 0.220).abs() < 1e-9);
        assert!((p.prebuffer_needed - 0.300).abs() < 1e-9);
        assert!((p.audio_seconds - 0.400).abs() < 1e-9);
        // 400 ms of audio over 680 ms (from the first packet to the last).
        assert!((p.real_time_factor.unwrap() - 0.4 / 0.68).abs() < 1e-9);
        // With the needed prebuffer there is no underrun.
        assert_eq!(playout(&t, MS(300)).unwrap().underruns, 0);
        // The onset at 0 plays once the prebuffer is full: 80 ms after arrival, minus the 10 ms origin.
        assert!(close(p.first_audio_heard, 0.070));
    }

    #[test]
    fn a_burst_ahead_of_real_time_never_underruns() {
        let pk: Vec<(u64, u64)> = (0..50).map(|_| (30, 20)).collect();
        let p = playout(&voice(&pk, None), MS(0)).unwrap();
        assert_eq!(p.underruns, 0);
        assert_eq!(p.prebuffer_needed, 0.0);
        assert_eq!(p.first_audio_heard, None);
        // All in one read: faster than any rate that can be measured.
        assert_eq!(p.real_time_factor, None);
        assert!(playout(&voice(&[], None), MS(80)).is_none());
    }
}
