//! `canary demo`: the simulator on a thread and runtime of its own, the example suites (built
//! in, or `--probes DIR`) pointed at it through the environment, each run's table and report,
//! and the ground-truth lines that compare what canary measured with what the simulator
//! served (requests, streams, jobs, voice).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::measure::sli::Sli;
use crate::observation::Observation;
use crate::schedule::executor::RunOptions;
use crate::suite::{self, ProcessEnv, Suite};

use super::run::{run_suite, write_report};
use super::shared::unrunnable;
use super::{DemoArgs, EXIT_NOTHING_MEASURED, EXIT_OK, EXIT_USAGE};

/// Runs the simulator on a thread of its own with a one-worker runtime; returns its address.
/// The thread ends with the process.
fn start_sim_thread(
    state: std::sync::Arc<crate::sim::SimState>,
) -> anyhow::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let std_listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot bind a loopback port")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("canary-sim".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("simulator runtime failed: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => {
                        if let Err(e) = crate::sim::serve(l, state).await {
                            eprintln!("simulator failed: {e}");
                        }
                    }
                    Err(e) => eprintln!("simulator listener failed: {e}"),
                }
            });
        })?;
    Ok((addr, handle))
}

/// Compares each chat probe's measured time to first visible token with the simulator's
/// server-side write times (sorted against sorted: the runs of one endpoint are alike).
fn stream_truth_line(
    s: &Suite,
    observations: &[Observation],
    streams: &[crate::sim::chat::StreamTruth],
) -> String {
    let mut worst: f64 = 0.0;
    let mut compared = 0usize;
    // Per endpoint: the streams the simulator served for it (whichever model answered) and
    // the runs of every probe on it.
    for ep in s.endpoints.values() {
        let path = ep
            .url
            .replace("{model}", ep.model.as_deref().unwrap_or(""))
            .parse::<http::Uri>()
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        // From the response head on, so the server's accept queue (a time-base offset the
        // server cannot see) does not count as measurement error.
        let mut truth: Vec<f64> = streams
            .iter()
            .filter(|t| t.path == path && Some(&t.requested_model) == ep.model.as_ref())
            .filter_map(|t| t.first_visible.map(|v| v - t.headers))
            .collect();
        // A conversation's turns are each a stream of their own.
        let mut measured: Vec<f64> = observations
            .iter()
            .filter(|o| o.endpoint == ep.name)
            .flat_map(|o| {
                let maps: Vec<&std::collections::BTreeMap<Sli, f64>> = if o.turns.is_empty() {
                    vec![&o.latency]
                } else {
                    o.turns.iter().map(|t| &t.latency).collect()
                };
                maps.into_iter().filter_map(|m| {
                    Some(m.get(&Sli::TimeToFirstVisibleToken)? - m.get(&Sli::TimeToFirstByte)?)
                })
            })
            .collect();
        if truth.len() != measured.len() || truth.is_empty() {
            continue;
        }
        truth.sort_by(f64::total_cmp);
        measured.sort_by(f64::total_cmp);
        for (m, t) in measured.iter().zip(&truth) {
            worst = worst.max((m - t).abs());
            compared += 1;
        }
    }
    format!(
        "ground truth (streams): {} served; headers to first visible token within {:.2} ms of the server's write times over {} runs",
        streams.len(),
        worst * 1e3,
        compared
    )
}

/// The demo's comparison of job completion with the simulator's ready times: every
/// completed job must be measured no earlier than it was ready and no later than its
/// reported poll error.
fn job_truth_line(
    observations: &[crate::observation::Observation],
    jobs: &[crate::sim::preview::JobTruth],
) -> String {
    let (mut compared, mut within, mut worst_over) = (0, 0, 0.0f64);
    for o in observations {
        let (Some(ttc), Some(j)) = (o.latency_of(Sli::TimeToCompletion), &o.job) else {
            continue;
        };
        let Some(id) = j.id.as_deref() else { continue };
        let id = id.rsplit('/').next().unwrap_or(id);
        let Some(t) = jobs.iter().find(|t| t.id == id) else {
            continue;
        };
        compared += 1;
        let over = ttc - t.ready_after_s;
        let bound = j.completion_error_seconds.unwrap_or(0.0) + 0.003;
        if over >= -0.002 && over <= bound {
            within += 1;
        }
        worst_over = worst_over.max(over);
    }
    if compared == 0 {
        return String::new();
    }
    format!(
        "ground truth (jobs): {within} of {compared} completions within their reported poll error of the service's ready time (largest lag {:.1} ms)",
        worst_over * 1e3
    )
}

/// The demo's comparison of time to first audio with the simulator's write times: answers
/// are matched by the `{case}#{run}` id the example suite sends and by audio format.
fn voice_truth_line(
    observations: &[crate::observation::Observation],
    voices: &[crate::sim::voice::VoiceTruth],
) -> String {
    let mut worst = 0.0f64;
    let mut compared = 0;
    for o in observations {
        let (Some(ttfa), Some(audio)) = (o.latency_of(Sli::TimeToFirstAudio), &o.audio) else {
            continue;
        };
        let key = format!("{}#{}", o.case_id, o.run);
        let truth = voices.iter().find(|v| {
            v.format == audio.format && v.id.as_deref().is_some_and(|id| id.ends_with(&key))
        });
        // The first audible sample is due at its chunk's write plus its offset in the chunk;
        // for Opus the decoded pre-echo is audible from the chunk's start.
        let due = truth.and_then(|t| {
            let offset = if t.format.contains("opus") {
                0.0
            } else {
                t.first_audible_offset_s
            };
            t.first_audible_chunk_s.map(|c| c + offset)
        });
        if let Some(t) = due {
            worst = worst.max((ttfa - t).abs());
            compared += 1;
        }
    }
    format!(
        "ground truth (voice): {} answers; time to first audible audio within {:.2} ms of the first audible sample's due time (its chunk's write) over {} matched answers",
        voices.len(),
        worst * 1e3,
        compared
    )
}

/// Environment variables the demo points at the simulator.
pub const SIM_URL_VARS: &[&str] = &[
    "MAPPER_URL",
    "CHAT_URL",
    "STREAMS_URL",
    "ANTHROPIC_URL",
    "PREVIEW_URL",
    "RAG_URL",
    "TTS_URL",
    "JUDGE_URL",
    "EMBEDDINGS_URL",
];
/// WebSocket variables the demo points at the simulator.
pub const SIM_WS_VARS: &[&str] = &["VOICE_URL", "REALTIME_URL", "TTS_WS_URL"];

/// Runs `canary demo`; returns the exit code.
pub(super) async fn exec(a: DemoArgs) -> anyhow::Result<u8> {
    let DemoArgs { probes, out, seed } = a;
    // The examples travel inside the binary: the demo runs from any folder. `--probes` runs
    // a folder of the user's instead.
    let dir = match probes {
        Some(d) => d,
        None => {
            let root = out.join("examples");
            crate::examples::write_to(&root)
                .with_context(|| format!("cannot write the example suites to {}", root.display()))?
        }
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "error: --probes {}: cannot read the folder of suites ({e}); give a folder of \
                 *.yaml suites, or leave --probes out to run the built-in examples",
                dir.display()
            );
            return Ok(EXIT_USAGE);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();

    let state = crate::sim::SimState::new(crate::sim::SimConfig {
        seed,
        ..Default::default()
    });
    // The simulator gets its own thread and runtime, as a separate server would: its timing
    // never waits on the probes' work and the probes never wait on its.
    let (addr, _sim_thread) =
        start_sim_thread(state.clone()).context("cannot start the simulator")?;
    println!("canary demo: simulator on http://{addr} (seed {seed})\n");

    let mut env = ProcessEnv::default();
    for v in SIM_URL_VARS {
        env.overrides
            .insert((*v).to_string(), format!("http://{addr}"));
    }
    for v in SIM_WS_VARS {
        env.overrides
            .insert((*v).to_string(), format!("ws://{addr}"));
    }
    let mut ran = 0;
    for f in &files {
        let s = match suite::load_suite(f, &env) {
            Ok(s) => s,
            Err(d) => {
                println!(
                    "skipping {}: it does not load ({} errors; run `canary validate {}`)",
                    f.display(),
                    d.len(),
                    f.display()
                );
                continue;
            }
        };
        let blocked = unrunnable(&s);
        if !blocked.is_empty() {
            println!("skipping {}: {}", f.display(), blocked.join("; "));
            continue;
        }
        let before = state.truth().len();
        let before_streams = state.streams().len();
        let before_voices = state.voices().len();
        let opts = RunOptions {
            ctx: crate::schedule::RunContext::new("demo"),
            ..RunOptions::default()
        };
        let r = run_suite(&s, "demo", &opts).await;
        println!("{}", r.table);
        let truth = &state.truth()[before..];
        if !truth.is_empty() {
            let measured_invalid = r
                .observations
                .iter()
                .filter(|o| o.verdicts.schema_valid == Some(false))
                .count();
            let measured_fallback = r
                .observations
                .iter()
                .filter(|o| o.verdicts.fallback == Some(true))
                .count();
            let true_invalid = truth
                .iter()
                .filter(|t| t.status == 200 && !t.schema_valid)
                .count();
            let true_fallback = truth
                .iter()
                .filter(|t| t.status == 200 && t.fallback)
                .count();
            println!(
                "ground truth (requests): {} served; schema-invalid {} measured / {} true; fallback {} measured / {} true",
                truth.len(),
                measured_invalid,
                true_invalid,
                measured_fallback,
                true_fallback
            );
        }
        let streams = &state.streams()[before_streams..];
        if !streams.is_empty() {
            println!("{}", stream_truth_line(&s, &r.observations, streams));
        }
        let jobs = state.preview.truth();
        let jobs_line = job_truth_line(&r.observations, &jobs);
        if !jobs_line.is_empty() {
            println!("{jobs_line}");
        }
        let voices = &state.voices()[before_voices..];
        if !voices.is_empty() {
            println!("{}", voice_truth_line(&r.observations, voices));
        }
        let path = out.join(format!("{}.json", s.name));
        write_report(&path, &r.report)?;
        println!("report: {}\n", path.display());
        ran += 1;
    }
    if ran == 0 {
        eprintln!(
            "no example suite could run against the simulator in {}",
            dir.display()
        );
        return Ok(EXIT_NOTHING_MEASURED);
    }
    println!(
        "`canary run` exits 1 when an SLO is missed; the demo always exits 0 once it has run."
    );
    Ok(EXIT_OK)
}
