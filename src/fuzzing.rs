//! The fuzzing entry points: every parser that reads bytes a target or a user controls,
//! fed arbitrary input. `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run NAME`);
//! `tests/fuzz_regressions.rs` replays the kept inputs on every test run. Each must return
//! (an error is fine) and never panic or hang.

use std::time::Instant;

/// The SSE parser, with the input split into pieces at positions the input itself picks.
pub fn sse(data: &[u8]) {
    let (cuts, body) = split_control(data);
    let mut p = crate::drivers::sse::SseParser::new(1 << 16);
    let mut out = Vec::new();
    for piece in pieces(body, cuts) {
        if p.feed(Instant::now(), piece, &mut out).is_err() {
            return;
        }
        out.clear();
    }
}

/// OpenAI-Realtime server events as the `realtime` driver reads them: JSON, the event type,
/// base64 audio deltas decoded as PCM16 and G.711.
pub fn realtime_events(data: &[u8]) {
    use base64::Engine as _;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut pcm = crate::audio::pcm::Pcm16::default();
    let mut samples = Vec::new();
    let mut track = crate::audio::Track::new(24_000, -40.0);
    for line in text.lines() {
        let Ok(v) = crate::drivers::voice::parse_event(line) else {
            continue;
        };
        let _ = crate::drivers::voice::error_event(&v);
        let kind = v
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if kind.ends_with("audio.delta") {
            let b64 = v
                .get("delta")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                pcm.decode(&bytes, &mut samples);
                track.push(&samples);
                crate::audio::g711::decode(&bytes, bytes.len() % 2 == 0, &mut samples);
                track.push(&samples);
            }
        }
    }
}

/// An Ogg Opus stream split at arbitrary bytes, each audio packet decoded by libopus.
pub fn ogg_opus(data: &[u8]) {
    let (cuts, body) = split_control(data);
    let mut demux = crate::audio::ogg::OggOpusDemuxer::new();
    let Ok(mut dec) = crate::audio::opus::OpusStream::new(48_000) else {
        return;
    };
    let mut track = crate::audio::Track::new(48_000, -40.0);
    for piece in pieces(body, cuts) {
        match demux.push(piece) {
            Ok(packets) => {
                if let Some(h) = demux.head() {
                    dec.set_pre_skip(h.pre_skip);
                }
                for p in packets {
                    if let Ok(pcm) = dec.decode(&p) {
                        track.push(pcm);
                    }
                }
            }
            Err(_) => return,
        }
    }
    // Raw packets too: the whole input as one Opus packet.
    let _ = dec.decode(body);
}

fn with_file(name: &str, data: &[u8], f: impl FnOnce(&std::path::Path)) {
    let dir = std::env::temp_dir().join(format!("canary-fuzz-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join(name);
    if std::fs::write(&path, data).is_ok() {
        f(&path);
    }
}

/// The suite loader (YAML, interpolation, validation) on an arbitrary file.
pub fn suite_loader(data: &[u8]) {
    with_file("suite.yaml", data, |p| {
        let env = crate::suite::ProcessEnv::default();
        let _ = crate::suite::load_suite(p, &env);
    });
}

/// The golden JSONL loader on an arbitrary file.
pub fn golden_loader(data: &[u8]) {
    with_file("golden.jsonl", data, |p| {
        let _ = crate::suite::golden::load(p);
    });
}

/// The first byte of the input picks how to split the rest (1 to 256 byte pieces).
/// A described stream's framer and interpretation: the input (after its first byte, which
/// picks the read size) framed by `framing` and each unit read by the built-in description
/// `spec`, as a run would. Every error must be a classified error.
fn described(framing: crate::drivers::stream::Framing, spec: &str, data: &[u8]) {
    use crate::drivers::stream::driver::SpecSource;
    use crate::drivers::stream::StreamSpec;
    use std::sync::{Arc, OnceLock};
    // Compiled once: the description is not what is being fuzzed.
    static SPECS: OnceLock<Vec<(String, Arc<StreamSpec>)>> = OnceLock::new();
    let specs = SPECS.get_or_init(|| {
        crate::suite::stream::BUILTINS
            .iter()
            .filter_map(|(n, _, _)| {
                let s = crate::suite::stream::builtin_spec(n)?.ok()?;
                Some((n.to_string(), Arc::new(s)))
            })
            .collect()
    });
    let Some((_, s)) = specs.iter().find(|(n, _)| n == spec) else {
        return;
    };
    let mut s = StreamSpec::clone(s);
    s.framing = framing;
    let (cuts, body) = split_control(data);
    let mut src = SpecSource::new(Arc::new(s), 1 << 16);
    let mut out = Vec::new();
    for piece in pieces(body, cuts) {
        use crate::drivers::chat::PieceSource as _;
        if src.feed(Instant::now(), piece, &mut out).is_err() {
            return;
        }
        out.clear();
    }
}

/// The NDJSON framer, read by the `ollama` description.
pub fn ndjson(data: &[u8]) {
    described(crate::drivers::stream::Framing::Ndjson, "ollama", data);
}

/// The streamed-JSON-array framer, read by the `gemini` description.
pub fn json_seq(data: &[u8]) {
    described(crate::drivers::stream::Framing::JsonSeq, "gemini", data);
}

/// The AWS event stream framer (CRCs, headers), read by the `bedrock-converse` description.
pub fn eventstream(data: &[u8]) {
    described(
        crate::drivers::stream::Framing::AwsEventStream,
        "bedrock-converse",
        data,
    );
}

/// A text-to-speech audio stream (`http-audio`, `ws-json-audio`): the first byte picks the
/// format (PCM16 mono or stereo, G.711, WAV, Ogg Opus, MP3), the second the piece size; each
/// piece decoded and analysed as it arrives, then the end checked.
pub fn audio_stream(data: &[u8]) {
    use crate::audio::stream::{Decoder, Format};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (cuts, body) = split_control(rest);
    let (format, channels) = match pick % 7 {
        0 => (Format::Pcm16, 1),
        1 => (Format::Pcm16, 2),
        2 => (Format::Pcmu, 1),
        3 => (Format::Pcma, 1),
        4 => (Format::Wav, 1),
        5 => (Format::OggOpus, 1),
        _ => (Format::Mp3, 1),
    };
    let Ok(mut d) = Decoder::new(format, None, Some(channels)) else {
        return;
    };
    let mut out = Vec::new();
    let mut track: Option<crate::audio::Track> = None;
    for piece in pieces(body, cuts) {
        if d.push(piece, &mut out).is_err() {
            return;
        }
        if let Some(rate) = d.rate() {
            track
                .get_or_insert_with(|| crate::audio::Track::new(rate, -40.0))
                .push(&out);
        }
    }
    let _ = d.finish();
}

fn split_control(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((c, rest)) => (usize::from(*c) + 1, rest),
        None => (1, data),
    }
}

fn pieces(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    data.chunks(size.max(1))
}
