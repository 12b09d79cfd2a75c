//! Text-to-speech probes (`http-audio`, `ws-json-audio`) against the simulator's recorded
//! ground truth: for every transport (a chunked HTTP body, SSE events, JSON WebSocket
//! messages) and format (PCM16, WAV, Ogg Opus, MP3 with and without a LAME tag), time to
//! first audio within 5 ms of the moment the first audible sample was due from the chunks
//! written (both counted from the first chunk), time to first byte the first chunk's write
//! (plus the request's way to the simulator's handler), leading silence within 10 ms of the
//! lead-in; a pause is one underrun of its length less the prebuffer; bad audio (a cut MP3
//! frame, a WAV header that lies about its length, bad base64) is `decode` while the healthy
//! cases of the same run are measured.

mod common;
use common::*;
use serde_json::Value;

const TOLERANCE: f64 = 0.005;

/// The simulator's clock starts when its handler sees the request, canary's when the request
/// is written. Between them lie the loopback hop and the simulator's wake-up: microseconds on
/// a quiet machine, a few milliseconds on a busy one (CI's two cores). The user waits through
/// it, so canary counts it; the comparisons take it out, measured per case as how much later
/// than its write the first chunk was stamped, which must itself stay under this bound.
const TRANSIT: f64 = 0.010;

/// Time to first audio less the request's transit: when the first audible sample came, on
/// the simulator's clock.
fn ttfa_on_sim_clock(name: &str, c: &Value, first_written: f64) -> f64 {
    let ttfa = f(&c["latency"]["time_to_first_audio"]);
    let ttfb = f(&c["latency"]["time_to_first_byte"]);
    let transit = ttfb - first_written;
    assert!(
        (-0.001..=TRANSIT).contains(&transit),
        "{name}: time_to_first_byte {ttfb:.4} vs the first chunk's write {first_written:.4}"
    );
    ttfa - transit
}

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How an endpoint is reached.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// `http-audio`, raw audio body.
    Body,
    /// `http-audio`, `stream_format: sse` through the built-in `openai-speech` description.
    Sse,
    /// `ws-json-audio`, `{"audio"}` ... `{"isFinal": true}`.
    WsFinal,
    /// `ws-json-audio`, `{"type": "chunk"}` ... `{"type": "done"}`.
    WsTyped,
    /// `ws-json-audio`, binary audio messages, a start of two messages (speak, flush), JSON
    /// events only for the transcript and `{"type": "Flushed"}`.
    WsBinary,
}

/// (endpoint name, transport, query, extra endpoint YAML)
type Ep<'a> = (&'a str, Via, &'a str, &'a str);

fn suite(sim: &str, eps: &[Ep]) -> String {
    let ws = sim.replace("http://", "ws://");
    let mut s =
        String::from("suite: tts-truth\ndefaults: { timeout: 10s, concurrency: 3 }\nendpoints:\n");
    let mut probes = String::from("probes:\n");
    for (name, via, query, extra) in eps {
        let q = format!("id={name}&speech_ms=500&{query}");
        let (proto, url, golden) = match via {
            Via::Body => (
                "http-audio",
                format!("{sim}/v1/audio/speech?{q}"),
                "body.jsonl",
            ),
            Via::Sse => (
                "http-audio",
                format!("{sim}/v1/audio/speech?{q}"),
                "sse.jsonl",
            ),
            Via::WsFinal => ("ws-json-audio", format!("{ws}/v1/tts/ws?{q}"), "ws.jsonl"),
            Via::WsTyped => (
                "ws-json-audio",
                format!("{ws}/v1/tts/ws?style=typed&{q}"),
                "ws.jsonl",
            ),
            Via::WsBinary => (
                "ws-json-audio",
                format!("{ws}/v1/tts/ws?style=binary&{q}"),
                "ws.jsonl",
            ),
        };
        s += &format!("  {name}:\n    protocol: {proto}\n    url: \"{url}\"\n");
        match via {
            Via::Body => {}
            Via::Sse => s += "    stream: { extends: openai-speech }\n",
            Via::WsFinal => {
                s += "    start: { text: \"{{input.text}}\" }\n";
                s += "    stream:\n      events: [{ audio: $.audio, text: $.text }]\n      terminator: { json: $.isFinal, equals: true }\n      error: { match: { json: $.error }, message: $.error }\n";
            }
            Via::WsTyped => {
                s += "    start: { text: \"{{input.text}}\" }\n";
                s += "    stream:\n      events:\n        - { match: { json: $.type, equals: chunk }, audio: $.data }\n        - { match: { json: $.type, equals: transcript }, text: $.text }\n      terminator: { json: $.type, equals: done }\n      error: { match: { json: $.type, equals: error }, message: $.message }\n";
            }
            Via::WsBinary => {
                s += "    start: [{ type: Speak, text: \"{{input.text}}\" }, { type: Flush }]\n";
                s += "    stream:\n      events: [{ match: { json: $.type, equals: transcript }, text: $.text }]\n      terminator: { json: $.type, equals: Flushed }\n";
            }
        }
        for line in extra.lines() {
            s += &format!("    {line}\n");
        }
        probes += &format!("  - {{ name: {name}, endpoint: {name}, golden: {golden} }}\n");
    }
    s + &probes
}

struct Run {
    report: Value,
    truth: Vec<Value>,
    code: Option<i32>,
    stderr: String,
}

fn run(eps: &[Ep]) -> Run {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "body.jsonl",
        "{\"id\": \"hello\", \"slice\": \"greeting\", \"input\": {\"body\": {\"model\": \"tts-1\", \"input\": \"Hello there\", \"voice\": \"alloy\"}}}\n",
    );
    write(
        dir.path(),
        "sse.jsonl",
        "{\"id\": \"hello\", \"slice\": \"greeting\", \"input\": {\"body\": {\"model\": \"tts-1\", \"input\": \"Hello there\", \"voice\": \"alloy\", \"stream_format\": \"sse\"}}}\n",
    );
    write(
        dir.path(),
        "ws.jsonl",
        "{\"id\": \"hello\", \"slice\": \"greeting\", \"input\": {\"text\": \"Hello there\"}, \"expect\": {\"transcript_contains\": [\"hello there\"]}}\n",
    );
    let s = write(dir.path(), "s.yaml", &suite(&sim.url, eps));
    let report = dir.path().join("r.json");
    let out = canary(
        &[
            "run",
            s.to_str().unwrap(),
            "--quiet",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    let truth: Value = serde_json::from_str(&sim.get("/truth")).unwrap();
    Run {
        report: read_json(&report),
        truth: truth["voices"].as_array().unwrap().clone(),
        code: out.status.code(),
        stderr,
    }
}

impl Run {
    fn case(&self, endpoint: &str) -> &Value {
        self.report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["endpoint"] == endpoint)
            .unwrap_or_else(|| panic!("no case for {endpoint}: {}", self.stderr))
    }
    fn truth(&self, endpoint: &str) -> &Value {
        self.truth
            .iter()
            .find(|t| t["id"] == endpoint)
            .unwrap_or_else(|| panic!("no truth for {endpoint}: {:?}", self.truth))
    }
    /// When the first audible sample was due from the chunks written: the write of the chunk
    /// holding it plus its offset in the chunk. Ogg Opus: the chunk's write (the decoded
    /// pre-echo is audible from the start of the packet, as on `ws-opus`).
    fn truth_audible(&self, endpoint: &str) -> f64 {
        let t = self.truth(endpoint);
        let chunk = f(&t["first_audible_chunk_s"]);
        if t["format"].as_str().unwrap_or("").ends_with("ogg-opus") {
            chunk
        } else {
            chunk + f(&t["first_audible_offset_s"])
        }
    }
}

fn query_has(name: &str, eps: &[Ep], part: &str) -> bool {
    eps.iter().any(|e| e.0 == name && e.2.contains(part))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn time_to_first_audio_is_the_first_audible_sample_on_every_transport_and_format() {
    let eps: &[Ep] = &[
        ("pcm-300", Via::Body, "format=pcm&lead_in_ms=300", ""),
        (
            "pcm-600-noise-ahead",
            Via::Body,
            "format=pcm&lead_in_ms=600&lead=noise&ahead=true",
            "",
        ),
        ("wav-300", Via::Body, "format=wav&lead_in_ms=300", ""),
        (
            "wav-600-noise-50ms",
            Via::Body,
            "format=wav&lead_in_ms=600&lead=noise&frame_ms=50",
            "",
        ),
        ("ogg-300", Via::Body, "format=opus&lead_in_ms=300", ""),
        (
            "ogg-600-ahead",
            Via::Body,
            "format=opus&lead_in_ms=600&ahead=true&lead=noise",
            "",
        ),
        ("mp3-tagged", Via::Body, "format=mp3", ""),
        (
            "mp3-untagged",
            Via::Body,
            "format=mp3&fixture=speech-44k-stereo-notag",
            "",
        ),
        (
            "mp3-as-configured",
            Via::Body,
            "format=mp3",
            "audio_format: mp3",
        ),
        (
            "sse-pcm",
            Via::Sse,
            "format=pcm&lead_in_ms=300",
            "audio_format: pcm16",
        ),
        ("sse-mp3", Via::Sse, "format=mp3", "audio_format: mp3"),
        (
            "sse-wav-noise",
            Via::Sse,
            "format=wav&lead_in_ms=600&lead=noise",
            "audio_format: wav",
        ),
        ("ws-pcm", Via::WsFinal, "format=pcm&lead_in_ms=300", ""),
        (
            "ws-wav-noise-ahead",
            Via::WsFinal,
            "format=wav&lead_in_ms=600&lead=noise&ahead=true",
            "audio_format: wav",
        ),
        (
            "ws-typed-mp3",
            Via::WsTyped,
            "format=mp3&fixture=speech-44k-stereo-notag",
            "audio_format: mp3",
        ),
        (
            "ws-typed-ogg",
            Via::WsTyped,
            "format=opus&lead_in_ms=300",
            "audio_format: ogg-opus",
        ),
        (
            "ws-binary-pcm",
            Via::WsBinary,
            "format=pcm&lead_in_ms=600&lead=noise",
            "audio_format: pcm16\nsample_rate: 24000",
        ),
    ];
    let r = run(eps);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_report_valid(&r.report);
    for (name, via, ..) in eps {
        let c = r.case(name);
        let t = r.truth(name);
        assert_eq!(c["outcome"], "ok", "{name}: {c}");
        let truth_audible = r.truth_audible(name);
        let ttfa = ttfa_on_sim_clock(name, c, f(&t["first_chunk_s"]));
        assert!(
            (ttfa - truth_audible).abs() <= TOLERANCE,
            "{name}: time_to_first_audio (less transit) {ttfa:.4} vs truth {truth_audible:.4}"
        );
        let lead = f(&t["lead_in_s"]);
        let silence = f(&c["latency"]["leading_silence"]);
        assert!(
            (silence - lead).abs() <= 0.010,
            "{name}: leading silence {silence} vs {lead}"
        );
        let audio = &c["audio"];
        // MP3 adds the encoder's padding (under one frame) at the end.
        let expected = lead + f(&t["speech_s"]);
        assert!(
            (f(&audio["audio_seconds"]) - expected).abs() < 0.03,
            "{name}: {audio} vs {expected}"
        );
        assert_eq!(audio["underruns"], 0, "{name}: {audio}");
        // Paced in real time (or ahead of it): at least one second of audio per second.
        let rtf = f(&audio["real_time_factor"]);
        assert!(rtf > 0.99, "{name}: real-time factor {rtf}");
        if !query_has(name, eps, "ahead=true") {
            assert!(rtf < 1.1, "{name}: real-time factor {rtf}");
        }
        let format = audio["format"].as_str().unwrap();
        assert!(
            t["format"].as_str().unwrap().ends_with(format),
            "{name}: {format} vs {}",
            t["format"]
        );
        if matches!(via, Via::WsFinal | Via::WsTyped | Via::WsBinary) {
            assert_eq!(c["checks"][0]["check"], "transcript_contains", "{name}");
            assert_eq!(c["checks"][0]["passed"], true, "{name}: {c}");
        }
    }
    // The MP3 decoder's delay and LAME's encoder delay are dropped, so the onset is where
    // the speech starts in the encoder's input, with or without the LAME tag.
    assert!((f(&r.case("mp3-tagged")["latency"]["leading_silence"]) - 0.3).abs() < 0.001);
    assert!((f(&r.case("mp3-untagged")["latency"]["leading_silence"]) - 0.6).abs() < 0.001);
}

#[test]
fn a_pause_mid_utterance_is_one_underrun_of_its_length_less_the_prebuffer() {
    let gap = "lead_in_ms=200&gap_at_ms=200&gap_ms=300";
    let eps: &[Ep] = &[
        (
            "pcm-gap",
            Via::Body,
            &format!("format=pcm&{gap}"),
            "prebuffer: 80ms",
        ),
        (
            "sse-mp3-gap",
            Via::Sse,
            "format=mp3&gap_at_ms=200&gap_ms=300",
            "audio_format: mp3\nprebuffer: 80ms",
        ),
        (
            "ws-wav-gap",
            Via::WsFinal,
            &format!("format=wav&{gap}"),
            "audio_format: wav\nprebuffer: 80ms",
        ),
        (
            "mp3-gap-buffered",
            Via::Body,
            "format=mp3&gap_at_ms=200&gap_ms=300",
            "prebuffer: 400ms",
        ),
        (
            "pcm-jitter",
            Via::Body,
            "format=pcm&lead_in_ms=200&jitter_ms=30",
            "prebuffer: 80ms",
        ),
    ];
    let r = run(eps);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for name in ["pcm-gap", "sse-mp3-gap", "ws-wav-gap"] {
        let c = r.case(name);
        assert_eq!(c["outcome"], "ok", "{name}: {c}");
        let truth = r.truth(name);
        let gap = f(&truth["gap_s"]);
        // The pause as designed; a write the simulator made late (a busy machine) moves the
        // stall by at most its lateness, which the truth records.
        let late = f(&truth["max_late_s"]);
        let a = &c["audio"];
        assert_eq!(a["underruns"], 1, "{name}: {a}");
        let stalled = f(&a["stalled_seconds"]);
        // A stall is the difference of two arrival stamps: twice one stamp's bound.
        assert!(
            (stalled - (gap - 0.080)).abs() <= 2.0 * TOLERANCE + late,
            "{name}: stalled {stalled} for a {gap} s pause (writes up to {late} s late)"
        );
        assert!(
            (f(&a["prebuffer_needed"]) - gap).abs() <= 0.03 + late,
            "{name}: {a}"
        );
    }
    assert_eq!(r.case("mp3-gap-buffered")["audio"]["underruns"], 0);
    let jitter = &r.case("pcm-jitter")["audio"];
    assert_eq!(
        jitter["underruns"], 0,
        "30 ms of jitter fits an 80 ms buffer: {jitter}"
    );
    let slices = r.report["slices"].as_array().unwrap();
    let gap_slice = slices
        .iter()
        .find(|s| s["endpoint"] == "pcm-gap" && s["slice"] == "*")
        .unwrap();
    assert_eq!(gap_slice["counts"]["no_underrun"]["good"], 0, "{gap_slice}");
}

#[test]
fn bad_audio_is_decode_while_healthy_cases_in_the_same_run_are_measured() {
    let eps: &[Ep] = &[
        (
            "mp3-cut-frame",
            Via::Body,
            "format=mp3&fault=truncated-frame",
            "",
        ),
        (
            "sse-mp3-cut-frame",
            Via::Sse,
            "format=mp3&fault=truncated-frame",
            "audio_format: mp3",
        ),
        ("wav-lies", Via::Body, "format=wav&fault=wav-length", ""),
        (
            "sse-bad-base64",
            Via::Sse,
            "format=pcm&fault=bad-base64",
            "audio_format: pcm16",
        ),
        (
            "ws-bad-base64",
            Via::WsFinal,
            "format=pcm&fault=bad-base64",
            "",
        ),
        (
            "ws-typed-bad-base64",
            Via::WsTyped,
            "format=pcm&fault=bad-base64",
            "",
        ),
        (
            "mp3-as-pcm-wav",
            Via::Body,
            "format=mp3",
            "audio_format: wav",
        ),
        (
            "sse-error",
            Via::Sse,
            "format=pcm&fault=error",
            "audio_format: pcm16",
        ),
        ("ws-error", Via::WsFinal, "format=pcm&fault=error", ""),
        ("ws-typed-error", Via::WsTyped, "format=pcm&fault=error", ""),
        ("body-closed", Via::Body, "format=pcm&fault=close", ""),
        ("ws-closed", Via::WsFinal, "format=pcm&fault=close", ""),
        ("healthy-mp3", Via::Body, "format=mp3", ""),
        ("healthy-ws", Via::WsFinal, "format=pcm&lead_in_ms=300", ""),
    ];
    let r = run(eps);
    assert_eq!(
        r.code,
        Some(0),
        "no SLO declared: errors are results, not a crash: {}",
        r.stderr
    );
    for (name, want) in [
        ("mp3-cut-frame", "decode"),
        ("sse-mp3-cut-frame", "decode"),
        ("wav-lies", "decode"),
        ("sse-bad-base64", "decode"),
        ("ws-bad-base64", "decode"),
        ("ws-typed-bad-base64", "decode"),
        ("mp3-as-pcm-wav", "decode"),
        ("sse-error", "stream_error"),
        ("ws-error", "stream_error"),
        ("ws-typed-error", "stream_error"),
        ("body-closed", "truncated"),
        ("ws-closed", "truncated"),
    ] {
        let c = r.case(name);
        assert_eq!(c["outcome"], want, "{name}: {c}");
    }
    for name in ["healthy-mp3", "healthy-ws"] {
        let ok = r.case(name);
        assert_eq!(ok["outcome"], "ok", "{name}: {ok}");
        let ttfa = ttfa_on_sim_clock(name, ok, f(&r.truth(name)["first_chunk_s"]));
        assert!(
            (ttfa - r.truth_audible(name)).abs() <= TOLERANCE,
            "{name}: {ttfa} vs {}",
            r.truth_audible(name)
        );
    }
    // What was heard before the bad audio is still reported: the WAV's 800 ms of audio
    // arrived before its header was caught lying, the cut connection's lead-in too.
    let lies = r.case("wav-lies");
    assert!(f(&lies["audio"]["audio_seconds"]) > 0.79, "{lies}");
    assert!(f(&lies["latency"]["time_to_first_audio"]) > 0.3, "{lies}");
    let cut = r.case("body-closed");
    assert!(f(&cut["audio"]["audio_seconds"]) > 0.3, "{cut}");
    assert!(
        lies["error"].as_str().unwrap_or("").contains("declares"),
        "{lies}"
    );
}

#[test]
fn audio_endpoints_are_checked_at_load_with_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"a\", \"input\": {\"text\": \"hi\"}}\n",
    );
    let s = write(
        dir.path(),
        "s.yaml",
        "suite: bad\nendpoints:\n  ws:\n    protocol: ws-json-audio\n    url: \"ws://127.0.0.1:1/tts\"\n  tts:\n    protocol: http-audio\n    url: \"http://127.0.0.1:1/v1/audio/speech\"\n    audio_format: flac\n  sse:\n    protocol: http-audio\n    url: \"http://127.0.0.1:1/v1/audio/speech\"\n    stream: { framing: sse, events: [{ text: $.text }] }\nprobes:\n  - { name: ws, endpoint: ws, golden: g.jsonl }\n  - { name: tts, endpoint: tts, golden: g.jsonl }\n",
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "s.yaml:4:13: endpoints.ws: missing required key `stream` for protocol `ws-json-audio`",
        "s.yaml:9:19: endpoints.tts.audio_format: unknown audio format `flac` (valid: pcm16",
        "s.yaml:13:13: endpoints.sse.stream: no event rule has an `audio` path",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
    // A case without the request body an `http-audio` endpoint POSTs.
    let s = write(
        dir.path(),
        "t.yaml",
        "suite: nobody\nendpoints:\n  tts: { protocol: http-audio, url: \"http://127.0.0.1:1/v1/audio/speech\" }\nprobes:\n  - { name: tts, endpoint: tts, golden: g.jsonl }\n",
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("g.jsonl:1") && err.contains("needs `input.body`"),
        "{err}"
    );
}
