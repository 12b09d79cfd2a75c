//! Audio decoding throughput: seconds of audio decoded and analysed (loudness per 10 ms,
//! onset search) per second of CPU, on one core, for each path a voice probe takes.
//!
//! Run: `cargo bench --bench audio` (writes `target/bench/audio.json` and `.md`).
//! The input is 60 s of the simulator's speech-like signal, encoded once before timing.

use std::time::Instant;

use base64::Engine as _;
use canary::audio::{g711, ogg::OggOpusDemuxer, opus::OpusStream, pcm::Pcm16, Track};

const SECONDS: usize = 60;

/// CPU time of this process (user + system), from /proc; wall time where /proc is absent.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Result {
    path: &'static str,
    audio_seconds: f64,
    cpu_seconds: f64,
}

/// Runs `decode_all` until at least 3 s of CPU are spent; returns audio seconds per CPU second.
fn measure(path: &'static str, audio_per_pass: f64, mut decode_all: impl FnMut()) -> Result {
    decode_all(); // warm-up
    let wall = Instant::now();
    let c0 = cpu_seconds();
    let mut passes = 0u32;
    loop {
        decode_all();
        passes += 1;
        let spent = match (c0, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => wall.elapsed().as_secs_f64(),
        };
        if spent >= 3.0 && passes >= 3 {
            return Result {
                path,
                audio_seconds: audio_per_pass * f64::from(passes),
                cpu_seconds: spent,
            };
        }
    }
}

fn main() {
    let speech48 = canary::sim::voice::speech(48_000, 48_000 * SECONDS, 7);
    let speech24 = canary::sim::voice::speech(24_000, 24_000 * SECONDS, 7);
    let speech8 = canary::sim::voice::speech(8_000, 8_000 * SECONDS, 7);
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .expect("libopus encoder");
    let packets: Vec<Vec<u8>> = speech48
        .chunks(960)
        .map(|f| enc.encode_vec_float(f, 4000).expect("encode"))
        .collect();
    let mut ogg_bytes = Vec::new();
    {
        let mut w = ogg::writing::PacketWriter::new(&mut ogg_bytes);
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let end = ogg::writing::PacketWriteEndInfo::EndPage;
        w.write_packet(head, 1, end, 0).expect("ogg");
        w.write_packet(b"OpusTags\0\0\0\0\0\0\0\0".to_vec(), 1, end, 0)
            .expect("ogg");
        for (i, p) in packets.iter().enumerate() {
            w.write_packet(p.clone(), 1, end, (i as u64 + 1) * 960)
                .expect("ogg");
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
    let secs = SECONDS as f64;

    let results = vec![
        measure("opus raw packets (48 kHz) + loudness", secs, || {
            let mut d = OpusStream::new(48_000).expect("decoder");
            let mut t = Track::new(48_000, -40.0);
            for p in &packets {
                let pcm = d.decode(p).expect("decode");
                t.push(pcm);
            }
            std::hint::black_box(t.total());
        }),
        measure("ogg opus (1 KiB messages) + loudness", secs, || {
            let mut dm = OggOpusDemuxer::new();
            let mut d = OpusStream::new(48_000).expect("decoder");
            d.set_pre_skip(312);
            let mut t = Track::new(48_000, -40.0);
            for piece in ogg_bytes.chunks(1024) {
                for p in dm.push(piece).expect("demux") {
                    t.push(d.decode(&p).expect("decode"));
                }
            }
            std::hint::black_box(t.total());
        }),
        measure("realtime base64 pcm16 (24 kHz) + loudness", secs, || {
            let mut d = Pcm16::default();
            let mut out = Vec::new();
            let mut t = Track::new(24_000, -40.0);
            for delta in &pcm_deltas {
                let bytes = b64.decode(delta).expect("base64");
                d.decode(&bytes, &mut out);
                t.push(&out);
            }
            std::hint::black_box(t.total());
        }),
        measure("g711 mu-law (8 kHz) + loudness", secs, || {
            let mut out = Vec::new();
            let mut t = Track::new(8_000, -40.0);
            for c in ulaw.chunks(800) {
                g711::decode(c, false, &mut out);
                t.push(&out);
            }
            std::hint::black_box(t.total());
        }),
    ];

    let mut md = String::from(
        "| path | audio decoded | CPU | x real time per core |\n|---|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for r in &results {
        let x = r.audio_seconds / r.cpu_seconds;
        md += &format!(
            "| {} | {:.0} s | {:.2} s | {:.0} |\n",
            r.path, r.audio_seconds, r.cpu_seconds, x
        );
        json.push(serde_json::json!({
            "path": r.path, "audio_seconds": r.audio_seconds,
            "cpu_seconds": r.cpu_seconds, "x_real_time_per_core": x,
        }));
    }
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("audio.json"),
        serde_json::to_string_pretty(&serde_json::json!({"benchmark": "audio", "results": json}))
            .unwrap_or_default(),
    );
    let _ = std::fs::write(dir.join("audio.md"), md);
}
