//! The benchmark's workloads against the simulator: the suites it writes (so that the
//! in-process runs and the `canary run` child processes probe exactly the same thing), and
//! each measurement: fidelity at a load level, coordinated omission, and cost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};

use super::fidelity::{audio_error, chat_errors, sent_unix};
use super::load::{self, Done, Job};
use super::procs::{self, SimProcess};
use super::stats::{abs, Dist};
use super::{BenchError, CostReport, Fidelity, Omission, RunCost, DEADLINE};
use crate::measure::sli::Sli;
use crate::observation::Outcome;
use crate::sim::chat::StreamTruth;
use crate::sim::voice::VoiceTruth;
use crate::suite::{Case, Endpoint, ProcessEnv};

/// Streams of Opus beyond which the simulator's real-time encoder and canary's decoder
/// together need more than this machine's two cores (about 30 µs to encode and 20 µs to
/// decode each 20 ms packet, both sides on the same cores).
pub const OPUS_MAX_STREAMS: usize = 100;
/// Realtime voice answers in flight at the most (50 base64 deltas a second each: 1,000
/// answers are 50,000 messages a second, what two cores can write and decode together).
pub const REALTIME_MAX_STREAMS: usize = 1000;

/// Words (tokens) per streamed answer.
pub const WORDS: usize = 40;

/// An endpoint and the one case the benchmark sends it.
#[derive(Clone)]
pub struct Subject {
    pub endpoint: Arc<Endpoint>,
    pub case: Arc<Case>,
}

/// The written suites and what they load to.
pub struct Scenarios {
    pub dir: PathBuf,
    pub plain: Subject,
    pub reasoning: Subject,
    pub realtime: Subject,
    pub opus: Subject,
    pub plain_suite: PathBuf,
    pub reasoning_suite: PathBuf,
    pub hundred_suite: PathBuf,
}

fn chat_suite(name: &str, base: &str, model: &str, golden: &str) -> String {
    format!(
        "# Written by `canary bench`: {WORDS}-word streamed answers from the simulator.\n\
         suite: {name}\n\
         defaults: {{ timeout: 60s, runs: 1 }}\n\
         endpoints:\n  chat:\n    protocol: openai-chat\n    url: \"{base}/v1/chat/completions\"\n\
         \x20   model: {model}\n\
         \x20   headers: {{ x-sim-words: \"{WORDS}\", x-request-id: \"${{BENCH_REQUEST_ID:-bench}}\" }}\n\
         probes:\n  - {{ name: {name}, endpoint: chat, golden: {golden} }}\n"
    )
}

const CASE: &str = r#"{"id": "capital", "slice": "geography", "input": {"prompt": "What is the capital of France?"}, "expect": {"contains": ["Paris"]}}"#;

impl Scenarios {
    /// Writes the suites into `dir/suites` for the simulator at `base` and loads them.
    pub fn write(dir: &Path, base: &str) -> Result<Scenarios, BenchError> {
        let sdir = dir.join("suites");
        std::fs::create_dir_all(&sdir).map_err(|source| BenchError::Write {
            path: sdir.clone(),
            source,
        })?;
        let ws = base.replacen("http://", "ws://", 1);
        let put = |name: &str, text: String| -> Result<PathBuf, BenchError> {
            let p = sdir.join(name);
            super::write(p.clone(), &text)?;
            Ok(p)
        };
        put("capital.jsonl", format!("{CASE}\n"))?;
        let hundred: String = (1..=100)
            .map(|k| {
                format!(
                    "{{\"id\": \"q{k:03}\", \"slice\": \"s{}\", \"input\": {{\"prompt\": \"Question {k}: what is the capital of France?\"}}, \"expect\": {{\"contains\": [\"Paris\"]}}}}\n",
                    k % 5
                )
            })
            .collect();
        put("hundred.jsonl", hundred)?;
        put(
            "voice.jsonl",
            "{\"id\": \"hello\", \"slice\": \"greeting\", \"input\": {\"text\": \"Hello there\"}}\n"
                .into(),
        )?;
        let plain_suite = put(
            "plain.yaml",
            chat_suite("bench-plain", base, "sim-plain", "capital.jsonl"),
        )?;
        let reasoning_suite = put(
            "reasoning.yaml",
            chat_suite("bench-reasoning", base, "sim-reasoning", "capital.jsonl"),
        )?;
        let hundred_suite = put(
            "hundred.yaml",
            chat_suite("bench-hundred", base, "sim-plain", "hundred.jsonl"),
        )?;
        let scenario = "lead_in_ms=300&frame_ms=20&speech_ms=1000";
        let voice_suite = put(
            "voice.yaml",
            format!(
                "# Written by `canary bench`: 300 ms of silence, then 1 s of speech, in real time.\n\
                 suite: bench-voice\n\
                 defaults: {{ timeout: 60s, runs: 1 }}\n\
                 endpoints:\n\
                 \x20 realtime:\n    protocol: realtime\n    url: \"{ws}/v1/realtime?{scenario}\"\n    audio_format: pcm16\n\
                 \x20 opus:\n    protocol: ws-opus\n    url: \"{ws}/v1/voice?{scenario}\"\n\
                 \x20   start: {{ type: start, id: \"{{{{case.id}}}}#{{{{run}}}}\", text: \"{{{{input.text}}}}\" }}\n\
                 probes:\n\
                 \x20 - {{ name: realtime, endpoint: realtime, golden: voice.jsonl }}\n\
                 \x20 - {{ name: opus, endpoint: opus, golden: voice.jsonl }}\n"
            ),
        )?;
        let plain = target(&plain_suite, 0)?;
        let reasoning = target(&reasoning_suite, 0)?;
        let realtime = target(&voice_suite, 0)?;
        let opus = target(&voice_suite, 1)?;
        Ok(Scenarios {
            dir: dir.to_path_buf(),
            plain,
            reasoning,
            realtime,
            opus,
            plain_suite,
            reasoning_suite,
            hundred_suite,
        })
    }
}

/// Loads `file` and returns the endpoint and first case of its `probe`-th probe.
fn target(file: &Path, probe: usize) -> Result<Subject, BenchError> {
    let suite = crate::suite::validate::load_suite(file, &ProcessEnv::default()).map_err(|d| {
        BenchError::Suite(
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let p = suite
        .probes
        .get(probe)
        .ok_or_else(|| BenchError::Suite(format!("{}: no probe {probe}", file.display())))?;
    let endpoint = suite
        .endpoints
        .get(&p.endpoint)
        .ok_or_else(|| BenchError::Suite(format!("{}: no endpoint", file.display())))?;
    let case = p
        .cases
        .first()
        .ok_or_else(|| BenchError::Suite(format!("{}: no case", file.display())))?;
    Ok(Subject {
        endpoint: Arc::clone(endpoint),
        case: Arc::new(case.clone()),
    })
}

/// The endpoint with its `x-request-id` set to `id`.
fn with_request_id(e: &Endpoint, id: &str) -> Endpoint {
    let mut e = e.clone();
    e.headers
        .retain(|(n, _)| !n.as_str().eq_ignore_ascii_case("x-request-id"));
    if let Ok(v) = HeaderValue::from_str(id) {
        e.headers.push((HeaderName::from_static("x-request-id"), v));
    }
    e
}

/// The largest ground-truth page read: 20,000 streams of 40 words are about 17 MB.
const TRUTH_CAP: u64 = 512 << 20;

async fn sim_call(method: http::Method, url: &str) -> Result<String, BenchError> {
    tokio::time::timeout(Duration::from_secs(120), sim_exchange(method, url))
        .await
        .map_err(|_| BenchError::Truth(format!("{url}: no answer within 120 s")))?
}

async fn sim_exchange(method: http::Method, url: &str) -> Result<String, BenchError> {
    let get = method == http::Method::GET;
    let uri: http::Uri = url.parse().map_err(|e| BenchError::Truth(format!("{e}")))?;
    let mut rec = crate::timeline::Recorder::start();
    let req = crate::net::http::HttpRequest {
        method,
        uri: &uri,
        headers: &[],
        body: None,
        content_type: None,
        accept: if get { "application/json" } else { "*/*" },
        tls: None,
        net: None,
    };
    let s = crate::net::http::send(req, &mut rec)
        .await
        .map_err(|e| BenchError::Truth(e.to_string()))?;
    let r = s
        .read_all(if get { TRUTH_CAP } else { 1 << 20 }, &mut rec)
        .await
        .map_err(|(e, _)| BenchError::Truth(e.to_string()))?;
    if !(200..300).contains(&r.status) {
        return Err(BenchError::Truth(format!("{url}: HTTP {}", r.status)));
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// Clears the simulator's ground truth.
pub async fn reset(sim: &SimProcess) -> Result<(), BenchError> {
    sim_call(http::Method::DELETE, &format!("{}/truth", sim.base))
        .await
        .map(|_| ())
}

#[derive(serde::Deserialize)]
pub struct TruthPage {
    #[serde(default)]
    pub streams: Vec<StreamTruth>,
    #[serde(default)]
    pub voices: Vec<VoiceTruth>,
}

pub async fn truth(sim: &SimProcess) -> Result<TruthPage, BenchError> {
    let text = sim_call(http::Method::GET, &format!("{}/truth", sim.base)).await?;
    serde_json::from_str(&text).map_err(|e| BenchError::Truth(e.to_string()))
}

/// What a level cost: wall time, CPU seconds and peak RSS (MB) of this process and of the
/// simulator.
pub struct Spent {
    pub wall: f64,
    pub cpu: f64,
    pub sim_cpu: f64,
    pub rss_mb: Option<f64>,
    pub sim_rss_mb: Option<f64>,
}

/// Runs `jobs` with `n` in flight and returns them with what both processes spent.
async fn measured_load(sim: &SimProcess, jobs: Vec<Job>, n: usize) -> (Vec<Done>, Spent) {
    use crate::procfs::{peak_rss, reset_peak_rss};
    let me0 = own_cpu();
    let sim0 = super::cpu_of(sim.pid());
    let (me_reset, sim_reset) = (reset_peak_rss(None), reset_peak_rss(Some(sim.pid())));
    let t0 = Instant::now();
    let done = load::run(jobs, n, DEADLINE).await;
    let wall = t0.elapsed().as_secs_f64();
    let mb = |reset: bool, file: String| {
        reset
            .then(|| peak_rss(&file))
            .flatten()
            .map(|b| b as f64 / 1e6)
    };
    let spent = Spent {
        wall,
        cpu: own_cpu() - me0,
        sim_cpu: super::cpu_of(sim.pid()) - sim0,
        rss_mb: mb(me_reset, "/proc/self/status".into()),
        sim_rss_mb: mb(sim_reset, format!("/proc/{}/status", sim.pid())),
    };
    (done, spent)
}

fn own_cpu() -> f64 {
    crate::sink::report::Resources::now()
        .map(|r| r.cpu_seconds)
        .unwrap_or(0.0)
}

fn ms(v: &[f64]) -> Option<Dist> {
    Dist::of(&abs(v)).map(|d| d.scaled(1e3))
}

fn bias(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64 * 1e3)
}

/// Streamed chat runs made in this process, each matched with its truth record.
pub struct ChatRuns {
    pub ok: usize,
    /// Successful runs with their truth: (observation's run, truth, errors).
    pub matched: Vec<(Done, StreamTruth, super::fidelity::ChatErrors)>,
    pub unpaired: usize,
    pub spent: Spent,
}

impl ChatRuns {
    pub fn first_visible_errors(&self) -> Vec<f64> {
        self.matched
            .iter()
            .filter_map(|(_, _, e)| e.first_visible)
            .collect()
    }

    pub fn gap_errors(&self) -> Vec<f64> {
        self.matched
            .iter()
            .flat_map(|(_, _, e)| e.gaps.iter().copied())
            .collect()
    }
}

/// `runs` streams of `model` with `n` in flight, matched with the simulator's truth.
pub async fn chat_runs(
    sc: &Scenarios,
    sim: &SimProcess,
    model: &str,
    runs: usize,
    n: usize,
) -> Result<ChatRuns, BenchError> {
    let t = if model.contains("reasoning") {
        &sc.reasoning
    } else {
        &sc.plain
    };
    reset(sim).await?;
    let keys: Vec<String> = (0..runs).map(|k| format!("{model}-{n}-{k}")).collect();
    let jobs = keys
        .iter()
        .enumerate()
        .map(|(k, key)| Job {
            endpoint: Arc::new(with_request_id(&t.endpoint, key)),
            case: Arc::clone(&t.case),
            run: k as u32 + 1,
            due: None,
        })
        .collect();
    let (done, spent) = measured_load(sim, jobs, n).await;
    let mut page = truth(sim).await?;
    let mut by_id: HashMap<String, StreamTruth> = page
        .streams
        .drain(..)
        .filter_map(|s| s.request_id.clone().map(|id| (id, s)))
        .collect();
    let mut out = ChatRuns {
        ok: 0,
        matched: Vec::new(),
        unpaired: 0,
        spent,
    };
    for d in done {
        if d.observation.outcome != Outcome::Ok {
            continue;
        }
        out.ok += 1;
        let Some(truth) = keys.get(d.index).and_then(|k| by_id.remove(k)) else {
            continue;
        };
        let measured_gaps = d
            .observation
            .stream
            .as_ref()
            .map(|s| s.gaps.clone())
            .unwrap_or_default();
        let e = chat_errors(
            sent_unix(&d.timeline),
            d.observation.latency_of(Sli::TimeToFirstVisibleToken),
            &measured_gaps,
            &truth,
        );
        out.unpaired += usize::from(e.gaps_unpaired);
        out.matched.push((d, truth, e));
    }
    Ok(out)
}

/// Time to first visible token and inter-chunk gaps of `model` with `n` streams in flight.
pub async fn chat_level(
    sc: &Scenarios,
    sim: &SimProcess,
    model: &str,
    n: usize,
    quick: bool,
) -> Result<Vec<Fidelity>, BenchError> {
    let reasoning = model.contains("reasoning");
    let runs = match (quick, n, reasoning) {
        (true, 1, _) => 3,
        (true, ..) => n,
        (false, 1, false) => 30,
        (false, 1, true) => 10,
        (false, _, false) => 2 * n,
        (false, _, true) => n,
    };
    let r = chat_runs(sc, sim, model, runs, n).await?;
    let (first, gaps) = (r.first_visible_errors(), r.gap_errors());
    let (ok, matched, unpaired) = (r.ok, r.matched.len(), r.unpaired);
    let s = &r.spent;
    let row = |sli: Sli, v: &[f64], unpaired: usize| Fidelity {
        sli: sli.name(),
        scenario: model.to_string(),
        streams: n,
        runs,
        ok,
        matched,
        error_ms: ms(v),
        bias_ms: bias(v),
        unpaired,
        wall_seconds: s.wall,
        canary_cpu_seconds: s.cpu,
        sim_cpu_seconds: s.sim_cpu,
        canary_peak_rss_mb: s.rss_mb,
        sim_peak_rss_mb: s.sim_rss_mb,
    };
    Ok(vec![
        row(Sli::TimeToFirstVisibleToken, &first, 0),
        row(Sli::InterChunkGap, &gaps, unpaired),
    ])
}

/// A voice protocol of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// OpenAI Realtime, base64 PCM16 at 24 kHz.
    Realtime,
    /// Raw Opus packets over a WebSocket.
    Opus,
}

/// Time to first audible audio with `n` voice streams in flight.
pub async fn voice_level(
    sc: &Scenarios,
    sim: &SimProcess,
    voice: Voice,
    n: usize,
    quick: bool,
) -> Result<Fidelity, BenchError> {
    let (t, scenario) = match voice {
        Voice::Realtime => (&sc.realtime, "realtime-pcm16"),
        Voice::Opus => (&sc.opus, "ws-opus"),
    };
    let runs = match (quick, n) {
        (true, 1) => 3,
        (false, 1) => 15,
        _ => n,
    };
    reset(sim).await?;
    // Realtime answers are found by an `id` in the URL, Opus ones by the start message's
    // `{case.id}#{run}`.
    let keys: Vec<String> = (1..=runs)
        .map(|run| match voice {
            Voice::Realtime => format!("rt-{n}-{run}"),
            Voice::Opus => format!("{}#{run}", t.case.id),
        })
        .collect();
    let jobs = keys
        .iter()
        .enumerate()
        .map(|(k, key)| {
            let mut e = (*t.endpoint).clone();
            if voice == Voice::Realtime {
                e.url = format!("{}&id={key}", e.url);
            }
            Job {
                endpoint: Arc::new(e),
                case: Arc::clone(&t.case),
                run: k as u32 + 1,
                due: None,
            }
        })
        .collect();
    let (done, s) = measured_load(sim, jobs, n).await;
    let page = truth(sim).await?;
    let by_id: HashMap<&str, &VoiceTruth> = page
        .voices
        .iter()
        .filter_map(|v| v.id.as_deref().map(|id| (id, v)))
        .collect();
    let (mut errors, mut ok, mut matched) = (Vec::new(), 0, 0);
    for d in &done {
        if d.observation.outcome != Outcome::Ok {
            continue;
        }
        ok += 1;
        let Some(truth) = keys.get(d.index).and_then(|k| by_id.get(k.as_str())) else {
            continue;
        };
        matched += 1;
        errors.extend(audio_error(
            sent_unix(&d.timeline),
            d.observation.latency_of(Sli::TimeToFirstAudio),
            truth,
        ));
    }
    Ok(Fidelity {
        sli: Sli::TimeToFirstAudio.name(),
        scenario: scenario.into(),
        streams: n,
        runs,
        ok,
        matched,
        error_ms: ms(&errors),
        bias_ms: bias(&errors),
        unpaired: 0,
        wall_seconds: s.wall,
        canary_cpu_seconds: s.cpu,
        sim_cpu_seconds: s.sim_cpu,
        canary_peak_rss_mb: s.rss_mb,
        sim_peak_rss_mb: s.sim_rss_mb,
    })
}

/// Slots of the coordinated-omission runs.
const SLOTS: usize = 100;

/// Open-loop schedules at, below and above what `SLOTS` slots of ~0.85 s streams carry
/// (about 117 per second).
pub async fn omission(sc: &Scenarios, quick: bool) -> Result<Vec<Omission>, BenchError> {
    let seconds = if quick { 1.0 } else { 3.0 };
    let mut out = Vec::new();
    for rate in [50.0, 100.0, 200.0] {
        let count = (rate * seconds) as usize;
        let jobs = (0..count)
            .map(|k| Job {
                endpoint: Arc::new(with_request_id(&sc.plain.endpoint, &format!("co-{k}"))),
                case: Arc::clone(&sc.plain.case),
                run: k as u32 + 1,
                due: Some(Duration::from_secs_f64(k as f64 / rate)),
            })
            .collect();
        let done = load::run(jobs, SLOTS, DEADLINE).await;
        let (mut actual, mut scheduled, mut lag, mut ok) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for d in &done {
            let (Some(v), Some(due)) = (
                d.observation.latency_of(Sli::TimeToFirstVisibleToken),
                d.due_unix,
            ) else {
                continue;
            };
            ok += 1;
            let late = (sent_unix(&d.timeline) - due).max(0.0);
            actual.push(v);
            scheduled.push(v + late);
            lag.push(late);
        }
        let ms = |v: &[f64]| Dist::of(v).map(|d| d.scaled(1e3));
        out.push(Omission {
            sli: Sli::TimeToFirstVisibleToken.name(),
            offered_per_second: rate,
            in_flight: SLOTS,
            requests: count,
            ok,
            from_actual_ms: ms(&actual),
            from_scheduled_ms: ms(&scheduled),
            send_lag_ms: ms(&lag),
        });
    }
    Ok(out)
}

/// Runs `canary run` with `args` as a measured child process; its output goes to files.
async fn canary_run(
    exe: &Path,
    dir: &Path,
    name: &str,
    args: Vec<String>,
    env: Option<(&str, String)>,
) -> Result<procs::Cost, BenchError> {
    let log = |ext: &str| -> Result<Stdio, BenchError> {
        let p = dir.join(format!("{name}.{ext}"));
        std::fs::File::create(&p)
            .map(Stdio::from)
            .map_err(|source| BenchError::Write { path: p, source })
    };
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(args)
        .stdout(log("out")?)
        .stderr(log("err")?);
    cmd.env_remove("BENCH_REQUEST_ID");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || procs::run_measured(&mut cmd, Duration::from_secs(600)))
        .await
        .map_err(|e| BenchError::Spawn(e.to_string()))?
}

/// Outcomes `ok` and peak RSS from a `canary run` report.
fn report_figures(path: &Path) -> (usize, u64) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (0, 0);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (0, 0);
    };
    let ok = v["cases"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["outcome"] == "ok").count())
        .unwrap_or(0);
    (ok, v["resources"]["peak_rss_bytes"].as_u64().unwrap_or(0))
}

pub async fn measured_run(
    sc: &Scenarios,
    exe: &Path,
    name: &str,
    suite: &Path,
    requests: usize,
    in_flight: usize,
    extra: &[&str],
) -> Result<RunCost, BenchError> {
    let report = sc.dir.join(format!("{name}.json"));
    let mut args = vec![
        suite.display().to_string(),
        "--quiet".into(),
        "--no-slo-exit".into(),
        "--report".into(),
        report.display().to_string(),
        "--concurrency".into(),
        in_flight.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let c = canary_run(exe, &sc.dir, name, args, None).await?;
    let (ok, reported_rss) = report_figures(&report);
    Ok(RunCost {
        requests,
        in_flight,
        ok,
        wall_seconds: c.wall_seconds,
        cpu_seconds: c.cpu_seconds,
        cpu_ms_per_probe: c.cpu_seconds * 1e3 / requests.max(1) as f64,
        peak_rss_bytes: c.peak_rss_bytes.max(reported_rss),
    })
}

/// What `canary run` costs: 1,000 streamed probes with 100 in flight, the floor under them
/// (the same streams read and discarded), a 100-case run, and process start to the first
/// request at the server.
pub async fn cost(
    sc: &Scenarios,
    sim: &SimProcess,
    exe: &Path,
    quick: bool,
) -> Result<CostReport, BenchError> {
    let n = if quick { 100 } else { 1000 };
    reset(sim).await?;
    let runs = n.to_string();
    let streamed = measured_run(
        sc,
        exe,
        "cost-streamed",
        &sc.plain_suite,
        n,
        100,
        &["--runs", &runs],
    )
    .await?;
    reset(sim).await?;
    let host = sim.base.trim_start_matches("http://").to_string();
    let floor = tokio::task::spawn_blocking(move || super::floor::measure(&host, n, 100))
        .await
        .map_err(|e| BenchError::Spawn(e.to_string()))??;
    reset(sim).await?;
    let hundred = measured_run(sc, exe, "cost-hundred", &sc.hundred_suite, 100, 10, &[]).await?;
    reset(sim).await?;
    let starts = if quick { 5 } else { 30 };
    let mut spawned = Vec::new();
    for k in 0..starts {
        let id = format!("start-{k}");
        let c = canary_run(
            exe,
            &sc.dir,
            "start",
            vec![sc.plain_suite.display().to_string(), "--quiet".into()],
            Some(("BENCH_REQUEST_ID", id.clone())),
        )
        .await?;
        spawned.push((id, c.spawned_unix));
    }
    let page = truth(sim).await?;
    let delays: Vec<f64> = spawned
        .iter()
        .filter_map(|(id, at)| {
            page.streams
                .iter()
                .find(|s| s.request_id.as_deref() == Some(id))
                .map(|s| s.received_unix - at)
        })
        .collect();
    Ok(CostReport {
        streamed: Some(streamed),
        floor: Some(floor),
        hundred_cases: Some(hundred),
        start_to_first_request_ms: Dist::of(&delays).map(|d| d.scaled(1e3)),
    })
}
