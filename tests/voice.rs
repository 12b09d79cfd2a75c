//! Voice probes against the simulator's recorded ground truth: time to first audible audio
//! within 5 ms of the moment the first audible chunk was written, with 300 ms and 600 ms of
//! leading silence or noise, paced in real time or sent ahead of it in a burst; time to
//! first byte is the first chunk, not the first sound; a pause mid-utterance is an underrun
//! of its length less the prebuffer; bad audio is a classified error of its own case.

mod common;
use common::*;
use serde_json::Value;

const TOLERANCE: f64 = 0.005;

/// Timing tests run one at a time: on two cores, parallel tests would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// (endpoint name, protocol, path, query, extra endpoint YAML)
type Ep<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn suite(sim: &str, eps: &[Ep]) -> String {
    let ws = sim.replace("http://", "ws://");
    let mut s = String::from(
        "suite: voice-truth\ndefaults: { timeout: 10s, concurrency: 3 }\nendpoints:\n",
    );
    let mut probes = String::from("probes:\n");
    for (name, proto, path, query, extra) in eps {
        s += &format!(
            "  {name}:\n    protocol: {proto}\n    url: \"{ws}{path}?id={name}&speech_ms=500&{query}\"\n"
        );
        if *proto == "ws-opus" {
            s += "    start: { type: start, text: \"{{input.text}}\" }\n";
        }
        for line in extra.lines() {
            s += &format!("    {line}\n");
        }
        probes += &format!("  - {{ name: {name}, endpoint: {name}, golden: g.jsonl }}\n");
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
        "g.jsonl",
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
            .unwrap_or_else(|| panic!("no case for {endpoint}"))
    }
    fn truth(&self, endpoint: &str) -> &Value {
        self.truth
            .iter()
            .find(|t| t["id"] == endpoint)
            .unwrap_or_else(|| panic!("no truth for {endpoint}: {:?}", self.truth))
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn time_to_first_audio_is_the_first_audible_chunk_not_the_first_byte() {
    let eps: &[Ep] = &[
        ("opus-300", "ws-opus", "/v1/voice", "lead_in_ms=300", ""),
        (
            "opus-600-noise",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=600&lead=noise",
            "",
        ),
        (
            "opus-300-ahead",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=300&ahead=true",
            "",
        ),
        (
            "opus-600-ahead",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=600&ahead=true&lead=noise",
            "",
        ),
        (
            "opus-stereo",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=300&channels=2",
            "",
        ),
        (
            "ogg-300",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=300&container=ogg",
            "container: ogg",
        ),
        (
            "ogg-600-ahead",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=600&container=ogg&ahead=true",
            "container: ogg",
        ),
        ("rt-300", "realtime", "/v1/realtime", "lead_in_ms=300", ""),
        (
            "rt-600-ahead",
            "realtime",
            "/v1/realtime",
            "lead_in_ms=600&ahead=true&frame_ms=50",
            "",
        ),
        (
            "rt-beta",
            "realtime",
            "/v1/realtime",
            "lead_in_ms=300&api=beta",
            "api: beta",
        ),
        (
            "rt-pcmu",
            "realtime",
            "/v1/realtime",
            "lead_in_ms=300&frame_ms=20",
            "audio_format: pcmu",
        ),
        (
            "rt-pcma",
            "realtime",
            "/v1/realtime",
            "lead_in_ms=600&frame_ms=20&lead=noise",
            "audio_format: g711_alaw",
        ),
    ];
    let r = run(eps);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_report_valid(&r.report);
    for (name, ..) in eps {
        let c = r.case(name);
        let t = r.truth(name);
        assert_eq!(c["outcome"], "ok", "{name}: {c}");
        let ttfa = f(&c["latency"]["time_to_first_audio"]);
        let ttfb = f(&c["latency"]["time_to_first_byte"]);
        // The write of the chunk that holds the first audible sample (for Opus the decoded
        // pre-echo is audible from the start of that packet).
        let truth_audible = f(&t["first_audible_chunk_s"]);
        let truth_first = f(&t["first_chunk_s"]);
        assert!(
            (ttfa - truth_audible).abs() <= TOLERANCE,
            "{name}: time_to_first_audio {ttfa:.4} vs truth {truth_audible:.4}"
        );
        assert!(
            (ttfb - truth_first).abs() <= TOLERANCE,
            "{name}: time_to_first_byte {ttfb:.4} vs truth {truth_first:.4}"
        );
        let lead = f(&t["lead_in_s"]);
        // First byte and first sound differ by the lead-in, whatever the pacing.
        assert!(ttfa - ttfb > lead - 0.03, "{name}: {ttfb} vs {ttfa}");
        assert!(ttfb < 0.1, "{name}: the first chunk comes at once ({ttfb})");
        let silence = f(&c["latency"]["leading_silence"]);
        assert!(
            (silence - lead).abs() <= 0.011,
            "{name}: leading silence {silence} vs {lead}"
        );
        let audio = &c["audio"];
        assert!(
            (f(&audio["audio_seconds"]) - (lead + 0.5)).abs() < 0.03,
            "{name}: {audio}"
        );
        assert_eq!(c["checks"][0]["check"], "transcript_contains", "{name}");
        assert_eq!(c["checks"][0]["passed"], true, "{name}: {c}");
    }
}

#[test]
fn a_pause_mid_utterance_is_one_underrun_of_its_length_less_the_prebuffer() {
    let eps: &[Ep] = &[
        (
            "opus-gap",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=200&gap_at_ms=200&gap_ms=300",
            "prebuffer: 80ms",
        ),
        (
            "rt-gap",
            "realtime",
            "/v1/realtime",
            "lead_in_ms=200&frame_ms=20&gap_at_ms=200&gap_ms=300",
            "prebuffer: 80ms",
        ),
        (
            "opus-gap-buffered",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=200&gap_at_ms=200&gap_ms=300",
            "prebuffer: 400ms",
        ),
        (
            "opus-jitter",
            "ws-opus",
            "/v1/voice",
            "lead_in_ms=200&jitter_ms=30",
            "prebuffer: 80ms",
        ),
    ];
    let r = run(eps);
    for name in ["opus-gap", "rt-gap"] {
        let c = r.case(name);
        let gap = f(&r.truth(name)["gap_s"]);
        let a = &c["audio"];
        assert_eq!(a["underruns"], 1, "{name}: {a}");
        let stalled = f(&a["stalled_seconds"]);
        assert!(
            (stalled - (gap - 0.080)).abs() <= TOLERANCE,
            "{name}: stalled {stalled} for a {gap} s pause"
        );
        assert!(
            (f(&a["prebuffer_needed"]) - gap).abs() <= 0.02,
            "{name}: {a}"
        );
    }
    // The no_underrun SLI follows: bad for the pauses, good with a buffer that absorbs them.
    assert_eq!(r.case("opus-gap-buffered")["audio"]["underruns"], 0);
    let jitter = &r.case("opus-jitter")["audio"];
    assert_eq!(
        jitter["underruns"], 0,
        "30 ms of jitter fits an 80 ms buffer: {jitter}"
    );
    let slo = r.report["slices"].as_array().unwrap();
    let gap_slice = slo
        .iter()
        .find(|s| s["endpoint"] == "opus-gap" && s["slice"] == "*")
        .unwrap();
    assert_eq!(gap_slice["counts"]["no_underrun"]["good"], 0, "{gap_slice}");
}

#[test]
fn bad_audio_is_a_classified_error_of_its_own_case() {
    let eps: &[Ep] = &[
        ("corrupt-opus", "ws-opus", "/v1/voice", "fault=corrupt", ""),
        (
            "closed-mid-utterance",
            "ws-opus",
            "/v1/voice",
            "fault=close",
            "",
        ),
        ("error-event", "ws-opus", "/v1/voice", "fault=error", ""),
        ("ogg-but-raw", "ws-opus", "/v1/voice", "container=ogg", ""),
        (
            "rt-bad-base64",
            "realtime",
            "/v1/realtime",
            "fault=bad-base64",
            "",
        ),
        (
            "rt-bad-rate",
            "realtime",
            "/v1/realtime",
            "fault=bad-rate",
            "",
        ),
        ("rt-closed", "realtime", "/v1/realtime", "fault=close", ""),
        ("rt-failed", "realtime", "/v1/realtime", "fault=failed", ""),
        ("healthy", "ws-opus", "/v1/voice", "lead_in_ms=300", ""),
    ];
    let r = run(eps);
    assert_eq!(
        r.code,
        Some(0),
        "no SLO declared: errors are results, not a crash: {}",
        r.stderr
    );
    for (name, want) in [
        ("corrupt-opus", "decode"),
        ("closed-mid-utterance", "truncated"),
        ("error-event", "stream_error"),
        ("ogg-but-raw", "decode"),
        ("rt-bad-base64", "decode"),
        ("rt-bad-rate", "decode"),
        ("rt-closed", "truncated"),
        ("rt-failed", "stream_error"),
    ] {
        let c = r.case(name);
        assert_eq!(c["outcome"], want, "{name}: {c}");
    }
    let ok = r.case("healthy");
    assert_eq!(ok["outcome"], "ok");
    assert!(
        (f(&ok["latency"]["time_to_first_audio"])
            - f(&r.truth("healthy")["first_audible_chunk_s"]))
        .abs()
            <= TOLERANCE
    );
    // What was heard before the socket closed is still reported.
    let cut = r.case("closed-mid-utterance");
    assert!(f(&cut["audio"]["audio_seconds"]) > 0.3, "{cut}");
}

#[test]
fn realtime_sends_a_wav_file_as_input_audio() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sim = Sim::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    // 0.5 s of a 24 kHz tone, written as a WAV by hand (RIFF header + PCM16).
    let samples: Vec<i16> = (0..12_000)
        .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    let mut wav = Vec::new();
    let data_len = (samples.len() * 2) as u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&24_000u32.to_le_bytes());
    wav.extend_from_slice(&48_000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::create_dir_all(dir.path().join("audio")).unwrap();
    std::fs::write(dir.path().join("audio/ask.wav"), &wav).unwrap();
    write(dir.path(), "g.jsonl", "{\"id\": \"spoken\", \"input\": {\"audio\": \"audio/ask.wav\"}, \"expect\": {\"transcript_contains\": [\"24000 bytes\"]}}\n");
    let ws = sim.url.replace("http://", "ws://");
    let s = write(
        dir.path(),
        "s.yaml",
        &format!("suite: wav\nendpoints:\n  rt: {{ protocol: realtime, url: \"{ws}/v1/realtime?speech_ms=300\" }}\nprobes:\n  - {{ name: rt, endpoint: rt, golden: g.jsonl }}\n"),
    );
    let (out, r) = run_with_report(&s, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(r["cases"][0]["outcome"], "ok", "{}", r["cases"][0]);

    // A WAV at the wrong rate is a load error naming the golden line.
    std::fs::write(dir.path().join("audio/ask.wav"), {
        let mut w = wav.clone();
        w[24..28].copy_from_slice(&16_000u32.to_le_bytes());
        w[28..32].copy_from_slice(&32_000u32.to_le_bytes());
        w
    })
    .unwrap();
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("g.jsonl:1") && err.contains("16000 Hz"),
        "{err}"
    );
}
