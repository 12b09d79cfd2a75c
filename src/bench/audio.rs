//! Audio decoding throughput: seconds of audio decoded and analysed (loudness per 10 ms
//! window, onset search) per second of CPU on one core, for each path a voice probe takes.
//! The input is the simulator's speech-like signal, encoded once before timing.

use base64::Engine as _;
use serde::Serialize;

use super::BenchError;
use crate::audio::stream::{Decoder, Format};
use crate::audio::{g711, ogg::OggOpusDemuxer, opus::OpusStream, pcm::Pcm16, Track};

/// One decoding path's throughput.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub path: &'static str,
    pub audio_seconds: f64,
    pub cpu_seconds: f64,
    pub x_real_time_per_core: f64,
}

fn bad(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Audio(format!("{what}: {e}"))
}

/// Runs `pass` until `min_cpu` seconds of this thread's CPU are spent (at least 3 passes).
fn measure(
    path: &'static str,
    audio_per_pass: f64,
    min_cpu: f64,
    mut pass: impl FnMut() -> Result<(), BenchError>,
) -> Result<Throughput, BenchError> {
    pass()?; // warm-up
    let wall = std::time::Instant::now();
    let c0 = crate::procfs::thread_cpu_seconds();
    let mut passes = 0u32;
    loop {
        pass()?;
        passes += 1;
        let spent = match (c0, crate::procfs::thread_cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => wall.elapsed().as_secs_f64(),
        };
        if spent >= min_cpu && passes >= 3 {
            let audio = audio_per_pass * f64::from(passes);
            return Ok(Throughput {
                path,
                audio_seconds: audio,
                cpu_seconds: spent,
                x_real_time_per_core: audio / spent,
            });
        }
    }
}

/// Measures every path on `seconds` of audio, each for at least `min_cpu` CPU seconds.
/// Blocking: call from a blocking thread.
pub fn throughput(seconds: usize, min_cpu: f64) -> Result<Vec<Throughput>, BenchError> {
    let speech48 = crate::sim::voice::speech(48_000, 48_000 * seconds, 7);
    let speech24 = crate::sim::voice::speech(24_000, 24_000 * seconds, 7);
    let speech8 = crate::sim::voice::speech(8_000, 8_000 * seconds, 7);
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .map_err(|e| bad("libopus encoder", e))?;
    let packets = speech48
        .chunks(960)
        .map(|f| enc.encode_vec_float(f, 4000).map_err(|e| bad("encode", e)))
        .collect::<Result<Vec<Vec<u8>>, _>>()?;
    let mut ogg_bytes = Vec::new();
    {
        let mut w = ogg::writing::PacketWriter::new(&mut ogg_bytes);
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let end = ogg::writing::PacketWriteEndInfo::EndPage;
        w.write_packet(head, 1, end, 0).map_err(|e| bad("ogg", e))?;
        w.write_packet(b"OpusTags\0\0\0\0\0\0\0\0".to_vec(), 1, end, 0)
            .map_err(|e| bad("ogg", e))?;
        for (i, p) in packets.iter().enumerate() {
            w.write_packet(p.clone(), 1, end, (i as u64 + 1) * 960)
                .map_err(|e| bad("ogg", e))?;
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let pcm_deltas: Vec<String> = speech24
        .chunks(2400)
        .map(|c| {
            let raw: Vec<u8> = c
                .iter()
                .flat_map(|x| ((x * 32767.0) as i16).to_le_bytes())
                .collect();
            b64.encode(raw)
        })
        .collect();
    let ulaw: Vec<u8> = speech8
        .iter()
        .map(|x| g711::linear_to_ulaw((x * 32767.0) as i16))
        .collect();
    let secs = seconds as f64;
    Ok(vec![
        measure(
            "opus raw packets (48 kHz) + loudness",
            secs,
            min_cpu,
            || {
                let mut d = OpusStream::new(48_000).map_err(|e| bad("decoder", e))?;
                let mut t = Track::new(48_000, -40.0);
                for p in &packets {
                    t.push(d.decode(p).map_err(|e| bad("decode", e))?);
                }
                std::hint::black_box(t.total());
                Ok(())
            },
        )?,
        measure(
            "ogg opus (1 KiB messages) + loudness",
            secs,
            min_cpu,
            || {
                let mut dm = OggOpusDemuxer::new();
                let mut d = OpusStream::new(48_000).map_err(|e| bad("decoder", e))?;
                d.set_pre_skip(312);
                let mut t = Track::new(48_000, -40.0);
                for piece in ogg_bytes.chunks(1024) {
                    for p in dm.push(piece).map_err(|e| bad("demux", e))? {
                        t.push(d.decode(&p).map_err(|e| bad("decode", e))?);
                    }
                }
                std::hint::black_box(t.total());
                Ok(())
            },
        )?,
        measure(
            "realtime base64 pcm16 (24 kHz) + loudness",
            secs,
            min_cpu,
            || {
                let mut d = Pcm16::default();
                let mut out = Vec::new();
                let mut t = Track::new(24_000, -40.0);
                for delta in &pcm_deltas {
                    let bytes = b64.decode(delta).map_err(|e| bad("base64", e))?;
                    d.decode(&bytes, &mut out);
                    t.push(&out);
                }
                std::hint::black_box(t.total());
                Ok(())
            },
        )?,
        mp3(
            "mp3 24 kHz mono 64 kbps (4 KiB pieces) + loudness",
            crate::sim::tts::MP3_24K,
            min_cpu,
        )?,
        mp3(
            "mp3 44.1 kHz stereo 128 kbps (4 KiB pieces) + loudness",
            crate::sim::tts::MP3_44K,
            min_cpu,
        )?,
        measure("g711 mu-law (8 kHz) + loudness", secs, min_cpu, || {
            let mut out = Vec::new();
            let mut t = Track::new(8_000, -40.0);
            for c in ulaw.chunks(800) {
                g711::decode(c, false, &mut out);
                t.push(&out);
            }
            std::hint::black_box(t.total());
            Ok(())
        })?,
    ])
}

/// MP3 through the probe's stream decoder (symphonia, delay dropped, stereo averaged), on
/// one of the simulator's fixtures decoded 20 times per pass, each time from its start.
fn mp3(path: &'static str, bytes: &'static [u8], min_cpu: f64) -> Result<Throughput, BenchError> {
    let once = || -> Result<f64, BenchError> {
        let mut d = Decoder::new(Format::Mp3, None, None).map_err(|e| bad("decoder", e))?;
        let mut out = Vec::new();
        let mut t: Option<Track> = None;
        for piece in bytes.chunks(4096) {
            d.push(piece, &mut out).map_err(|e| bad("mp3", e))?;
            if let Some(rate) = d.rate() {
                t.get_or_insert_with(|| Track::new(rate, -40.0)).push(&out);
            }
        }
        d.finish().map_err(|e| bad("mp3", e))?;
        Ok(t.map(|t| t.total().as_secs_f64()).unwrap_or(0.0))
    };
    let seconds = once()?;
    measure(path, 20.0 * seconds, min_cpu, || {
        for _ in 0..20 {
            std::hint::black_box(once()?);
        }
        Ok(())
    })
}

/// The table of a throughput measurement.
pub fn markdown(results: &[Throughput]) -> String {
    let mut md = String::from(
        "| path | audio decoded | CPU | x real time per core |\n|---|---:|---:|---:|\n",
    );
    for r in results {
        md += &format!(
            "| {} | {:.0} s | {:.2} s | {:.0} |\n",
            r.path, r.audio_seconds, r.cpu_seconds, r.x_real_time_per_core
        );
    }
    md
}
