//! The peers: NVIDIA's `aiperf`, vLLM's `GuideLLM` and Kubernetes SIG's `inference-perf`
//! (all from PyPI), run against the same simulator scenarios as canary, with every tool's
//! figures set against the simulator's ground truth for the same requests.
//!
//! Each peer is installed into `OUT/<peer>-venv` when absent (a pinned version, CPU only:
//! nothing pulls torch or CUDA), with an offline whitespace tokenizer (one word, one token)
//! so that nothing is fetched from the Hugging Face hub. Requests are matched with the
//! simulator's records by the `X-Request-ID` a tool sends (aiperf), or else by each request's
//! send time against the simulator's arrival times (GuideLLM and inference-perf send no
//! request id; both record when they sent). What a peer cannot be driven to do, or does not
//! record, is said in the report instead of failing the benchmark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::procs::{self, SimProcess};
use super::scenario::{self, Scenarios};
use super::stats::{abs, Dist};
use crate::measure::sli::Sli;
use crate::sim::chat::StreamTruth;

/// The aiperf release the harness installs.
pub const AIPERF_VERSION: &str = "0.13.0";
/// The GuideLLM release the harness installs.
pub const GUIDELLM_VERSION: &str = "0.8.1";
/// The inference-perf release the harness installs.
pub const INFERENCE_PERF_VERSION: &str = "0.7.0";

/// A peer tool `--peer` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    Aiperf,
    Guidellm,
    InferencePerf,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::Aiperf, Peer::Guidellm, Peer::InferencePerf];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Aiperf => "aiperf",
            Peer::Guidellm => "guidellm",
            Peer::InferencePerf => "inference-perf",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Peer::Aiperf => AIPERF_VERSION,
            Peer::Guidellm => GUIDELLM_VERSION,
            Peer::InferencePerf => INFERENCE_PERF_VERSION,
        }
    }

    /// How the harness installs and drives it (the report's note).
    fn how(self) -> &'static str {
        match self {
            Peer::Aiperf => {
                "pip install aiperf; an offline whitespace tokenizer built from aiperf's own prompt \
                 corpus; requests matched by the X-Request-ID aiperf sends and records with its \
                 wall-clock send time (profile_export.jsonl)"
            }
            Peer::Guidellm => {
                "pip install --no-deps guidellm, then its declared dependencies except torch (PyPI's \
                 Linux torch is the CUDA build, gigabytes of nvidia-* wheels; PyTorch's CPU index is not \
                 reachable from this machine). GuideLLM imports torch only for its prompt data loader \
                 (torch.utils.data.DataLoader over an IterableDataset); the harness puts a stand-in of \
                 those four names on PYTHONPATH that iterates in process, so GuideLLM's prompts are \
                 prepared without torch's data worker process and its CPU and memory figures exclude \
                 what importing torch would add. Synthetic prompts through an offline whitespace \
                 tokenizer (--tokenizer kind=hf_auto,model=DIR), backend validation off; GuideLLM \
                 sends no request id, so requests are matched by the wall-clock send time it records \
                 (info.timings.request_start) with the simulator's arrival times; it keeps only the \
                 first and last token times of a request, so gaps between words cannot be checked"
            }
            Peer::InferencePerf => {
                "pip install --no-deps inference-perf, then its declared dependencies (none pulls \
                 torch). It declares Python >= 3.12: the harness uses python3.13 or python3.12 when \
                 one runs, otherwise python3 with --ignore-requires-python (Debian 12 has 3.11; the \
                 package runs there). Its mock data generator (prompts \"mock prompt N\", no data set \
                 to download) through the chat API, a local whitespace tokenizer, the answer length \
                 fixed by the simulator's x-sim-words header (the mock generator sets no max_tokens); \
                 it sends no request id, so requests are matched by the send time it records \
                 (time.perf_counter, CLOCK_MONOTONIC, converted to wall-clock time with the offset read \
                 at the end of the run) with the simulator's arrival times. Its time to first token \
                 counts tokens with the configured tokenizer: a whitespace-only delta is no token for \
                 the whitespace tokenizer, so here it fires on the first word; with a model's BPE \
                 tokenizer the blank delta is a token and it would fire there, as aiperf's does"
            }
        }
    }
}

/// `--peer`: `all`, `none`, or a comma-separated list of peers.
pub fn parse_peers(s: &str) -> Result<Vec<Peer>, String> {
    match s.trim() {
        "all" => return Ok(Peer::ALL.to_vec()),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        let Some(p) = Peer::ALL.iter().find(|p| p.name() == name) else {
            return Err(format!(
                "--peer: unknown peer {name:?}; valid: all, none, or a list of {}",
                Peer::ALL.map(Peer::name).join(", ")
            ));
        };
        if !out.contains(p) {
            out.push(*p);
        }
    }
    Ok(out)
}

/// The peers' part of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PeerSection {
    Skipped { reason: String },
    Ran(PeerReport),
}

impl PeerSection {
    pub fn skipped(reason: &str) -> PeerSection {
        PeerSection::Skipped {
            reason: reason.into(),
        }
    }
}

/// Every tool on every scenario.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    pub peers: Vec<PeerStatus>,
    pub scenarios: Vec<Comparison>,
}

/// One peer: installed and driven, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub tool: String,
    pub version: String,
    /// The interpreter its virtualenv runs on.
    pub python: Option<String>,
    /// How it was installed, driven offline, and matched with the truth.
    pub how: String,
    /// Why it did not run, when it did not.
    pub not_run: Option<String>,
}

/// One scenario: the truth and each tool's figures for the same requests.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub name: String,
    pub model: String,
    pub requests: usize,
    pub concurrency: usize,
    /// aiperf's extra arguments for this run.
    pub aiperf_args: Vec<String>,
    /// What the simulator wrote during the first peer's run, from each request's arrival
    /// (ms): first token of any kind, first visible word, mean gap between visible words.
    pub truth_first_token_ms: Option<Dist>,
    pub truth_first_visible_ms: Option<Dist>,
    pub truth_gap_ms: Option<f64>,
    pub tools: Vec<ToolFigures>,
    /// Peers asked for that did not run on this scenario, and why.
    pub not_run: Vec<NotRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    pub tool: String,
    pub reason: String,
}

/// One tool's figures on a scenario.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ToolFigures {
    pub tool: String,
    pub ok: usize,
    pub matched: usize,
    /// How its requests were matched with the simulator's records: `x-request-id` or
    /// `send time` (in send order, each with the first unclaimed arrival after it).
    pub matched_by: String,
    /// Arrival at the simulator minus the tool's recorded send time (ms), for requests
    /// matched by send time: how far apart the two ends of a pair are.
    pub send_to_arrival_ms: Option<Dist>,
    /// The tool's "time to first token" as it reports it (ms).
    pub first_token_ms: Option<Dist>,
    /// The tool's first answer text figure (aiperf and GuideLLM: time to first output
    /// token; inference-perf: its time to first token; canary: time to first visible token).
    pub first_output_ms: Option<Dist>,
    /// |first output stamp - the write of the first visible word| (ms): what a user saw.
    pub first_output_error_ms: Option<Dist>,
    pub first_output_bias_ms: Option<f64>,
    /// |first token stamp - the write of the first token of any kind| (ms).
    pub first_token_error_ms: Option<Dist>,
    /// |measured - written| of each gap between visible words (ms).
    pub gap_error_ms: Option<Dist>,
    /// The tool's inter-token figure (ms), the mean over requests.
    pub inter_token_ms: Option<f64>,
    /// Whole process tree, for the same number of requests.
    pub cpu_seconds: f64,
    pub cpu_ms_per_request: f64,
    pub peak_rss_bytes: u64,
    pub processes: usize,
    pub wall_seconds: f64,
    /// What this tool does not record, so the figure is missing.
    pub notes: Vec<String>,
}

/// What one scenario asks of every tool.
struct Plan {
    name: &'static str,
    model: &'static str,
    requests: usize,
    concurrency: usize,
    /// aiperf's extra arguments.
    extra: Vec<String>,
    /// An aiperf-only variant (its request-rate mode has no counterpart in the others).
    aiperf_only: bool,
}

fn plans(quick: bool) -> Vec<Plan> {
    let rate = vec!["--request-rate".to_string(), "1000".to_string()];
    if quick {
        return vec![Plan {
            name: "plain",
            model: "sim-plain",
            requests: 50,
            concurrency: 10,
            extra: rate,
            aiperf_only: false,
        }];
    }
    vec![
        // Each tool's default: a fixed concurrency alone.
        Plan {
            name: "plain, concurrency",
            model: "sim-plain",
            requests: 1000,
            concurrency: 100,
            extra: Vec::new(),
            aiperf_only: false,
        },
        // With a request rate as well, aiperf's timing loop stops spinning on a core.
        Plan {
            name: "plain, concurrency + rate",
            model: "sim-plain",
            requests: 1000,
            concurrency: 100,
            extra: rate.clone(),
            aiperf_only: true,
        },
        Plan {
            name: "reasoning, concurrency",
            model: "sim-reasoning",
            requests: 200,
            concurrency: 20,
            extra: rate,
            aiperf_only: false,
        },
    ]
}

/// A peer ready to run.
enum Installed {
    Aiperf(Aiperf),
    Guidellm(Guidellm),
    InferencePerf(InferencePerf),
}

/// Runs the peers side by side with canary; the reason when nothing can run.
pub async fn run(
    out: &Path,
    sim: &SimProcess,
    sc: &Scenarios,
    exe: &Path,
    quick: bool,
    peers: &[Peer],
) -> PeerSection {
    let mut statuses = Vec::new();
    let mut ready: Vec<(Peer, Installed)> = Vec::new();
    for &p in peers {
        eprintln!("peer: {} {}", p.name(), p.version());
        let setup = {
            let out = out.to_path_buf();
            tokio::task::spawn_blocking(move || install(p, &out)).await
        };
        let (installed, python, not_run) = match setup {
            Ok(Ok((i, python))) => (Some(i), Some(python), None),
            Ok(Err(reason)) => (None, None, Some(reason)),
            Err(e) => (None, None, Some(e.to_string())),
        };
        if let Some(reason) = &not_run {
            eprintln!("peer: {} not run: {reason}", p.name());
        }
        statuses.push(PeerStatus {
            tool: p.name().into(),
            version: p.version().into(),
            python,
            how: p.how().into(),
            not_run,
        });
        if let Some(i) = installed {
            ready.push((p, i));
        }
    }
    if ready.is_empty() {
        let reasons: Vec<String> = statuses
            .iter()
            .filter_map(|s| Some(format!("{}: {}", s.tool, s.not_run.as_deref()?)))
            .collect();
        return PeerSection::Skipped {
            reason: format!("no peer could be installed ({})", reasons.join("; ")),
        };
    }
    let mut scenarios = Vec::new();
    let mut canary_cache: HashMap<(&str, usize, usize), ToolFigures> = HashMap::new();
    for plan in plans(quick) {
        let runs: Vec<&(Peer, Installed)> = ready
            .iter()
            .filter(|(p, _)| !plan.aiperf_only || *p == Peer::Aiperf)
            .collect();
        if plan.aiperf_only && !peers.contains(&Peer::Aiperf) {
            continue;
        }
        eprintln!(
            "peer: {} ({} requests, {} in flight)",
            plan.name, plan.requests, plan.concurrency
        );
        let key = (plan.model, plan.requests, plan.concurrency);
        let canary = match canary_cache.get(&key) {
            Some(c) => Ok(c.clone()),
            None => canary_figures(sc, sim, exe, &plan).await,
        };
        let canary = match canary {
            Ok(c) => c,
            Err(e) => {
                return PeerSection::Skipped {
                    reason: format!("canary's side failed: {e}"),
                }
            }
        };
        canary_cache.insert(key, canary.clone());
        let mut cmp = Comparison {
            name: plan.name.into(),
            model: plan.model.into(),
            requests: plan.requests,
            concurrency: plan.concurrency,
            aiperf_args: plan.extra.clone(),
            truth_first_token_ms: None,
            truth_first_visible_ms: None,
            truth_gap_ms: None,
            tools: vec![canary],
            not_run: Vec::new(),
        };
        for s in &statuses {
            if let Some(reason) = &s.not_run {
                if !plan.aiperf_only || s.tool == Peer::Aiperf.name() {
                    cmp.not_run.push(NotRun {
                        tool: s.tool.clone(),
                        reason: format!("not installed: {reason}"),
                    });
                }
            }
        }
        for (p, inst) in runs {
            eprintln!("peer: {} on {}", p.name(), plan.name);
            let r = match inst {
                Installed::Aiperf(a) => aiperf_figures(a, out, sim, &plan).await,
                Installed::Guidellm(g) => guidellm_figures(g, out, sim, &plan).await,
                Installed::InferencePerf(i) => inference_perf_figures(i, out, sim, &plan).await,
            };
            match r {
                Ok((f, truth)) => {
                    if cmp.truth_first_visible_ms.is_none() {
                        cmp.truth_first_token_ms = truth.first_token;
                        cmp.truth_first_visible_ms = truth.first_visible;
                        cmp.truth_gap_ms = truth.gap;
                    }
                    cmp.tools.push(f);
                }
                Err(reason) => {
                    eprintln!("peer: {} failed on {}: {reason}", p.name(), plan.name);
                    cmp.not_run.push(NotRun {
                        tool: p.name().into(),
                        reason,
                    });
                }
            }
        }
        scenarios.push(cmp);
    }
    PeerSection::Ran(PeerReport {
        peers: statuses,
        scenarios,
    })
}

fn sh(cmd: &mut Command, log: &Path, what: &str) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed (see {})", log.display()))
    }
}

/// A command's standard output, trimmed, when it succeeds.
fn output_of(cmd: &mut Command) -> Option<String> {
    let o = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn python_version(python: &Path) -> String {
    output_of(
        Command::new(python).args(["-c", "import platform; print(platform.python_version())"]),
    )
    .unwrap_or_default()
}

/// Creates `out/NAME-venv` with `interpreter` and runs each pip step in it, unless a marker
/// says a complete install of `version` is there. Blocking. Returns the venv's python.
fn venv_install(
    out: &Path,
    name: &str,
    version: &str,
    interpreter: &str,
    steps: &[Vec<String>],
) -> Result<PathBuf, String> {
    let venv = out.join(format!("{name}-venv"));
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".canary-installed-{version}"));
    if marker.exists() {
        return Ok(python);
    }
    eprintln!("peer: installing {name} {version} into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    sh(
        Command::new(interpreter).arg("-m").arg("venv").arg(&venv),
        &out.join(format!("{name}-venv.log")),
        &format!("{interpreter} -m venv"),
    )?;
    for (i, step) in steps.iter().enumerate() {
        sh(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(step),
            &out.join(format!("{name}-install-{i}.log")),
            &format!("pip install {}", step.join(" ")),
        )?;
    }
    std::fs::write(&marker, "").map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(python)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Installs a peer (when absent) and what it needs to run offline. Blocking.
fn install(p: Peer, out: &Path) -> Result<(Installed, String), String> {
    match p {
        Peer::Aiperf => install_aiperf(out).map(|(a, py)| (Installed::Aiperf(a), py)),
        Peer::Guidellm => install_guidellm(out).map(|(g, py)| (Installed::Guidellm(g), py)),
        Peer::InferencePerf => {
            install_inference_perf(out).map(|(i, py)| (Installed::InferencePerf(i), py))
        }
    }
}

/// The private folders a peer's run writes to (temporary files, Hugging Face's cache).
fn private_dirs(out: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let tmp = out.join(format!("{name}-tmp"));
    let hf_home = out.join(format!("{name}-hf-home"));
    for d in [&tmp, &hf_home] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    Ok((tmp, hf_home))
}

/// Builds an offline whitespace tokenizer (one word, one token) whose vocabulary is the
/// words of the tool's own prompt source (unknown words are still one token each).
const MAKE_WORD_TOKENIZER: &str = r###"
import sys, pathlib
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import PreTrainedTokenizerFast
out, source = sys.argv[1], sys.argv[2]
if source == "guidellm":
    from faker.providers.lorem.en_US import Provider
    words = []
    for w in Provider.word_list:
        words += [w, w.capitalize(), w + ".", w.capitalize() + "."]
elif source == "aiperf":
    import aiperf.dataset.generator as g
    corpus = pathlib.Path(g.__file__).parent / "assets" / "shakespeare.txt"
    words = corpus.read_text(encoding="utf-8").split()
else:
    import inference_perf
    corpus = pathlib.Path(inference_perf.__file__).parent / "assets" / "shakespeare.txt"
    words = corpus.read_text(encoding="utf-8").split()
vocab = {"[UNK]": 0, "[PAD]": 1, "[BOS]": 2, "[EOS]": 3}
for w in words:
    vocab.setdefault(w, len(vocab))
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="##")
fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                               bos_token="[BOS]", eos_token="[EOS]", model_max_length=10**9)
fast.save_pretrained(out)
"###;

fn word_tokenizer(out: &Path, python: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = out.join(format!("{name}-tokenizer"));
    if !dir.join("tokenizer.json").exists() {
        let script = out.join("word-tokenizer.py");
        std::fs::write(&script, MAKE_WORD_TOKENIZER).map_err(|e| e.to_string())?;
        sh(
            Command::new(python).arg(&script).arg(&dir).arg(name),
            &out.join(format!("{name}-tokenizer.log")),
            &format!("building {name}'s offline tokenizer"),
        )?;
    }
    Ok(dir)
}

/// aiperf's paths once installed.
struct Aiperf {
    bin: PathBuf,
    tokenizer: PathBuf,
    tmp: PathBuf,
    hf_home: PathBuf,
}

/// Installs aiperf and its tokenizer under `out` when absent. Blocking.
fn install_aiperf(out: &Path) -> Result<(Aiperf, String), String> {
    let venv = out.join("aiperf-venv");
    let bin = venv.join("bin/aiperf");
    let python = venv.join("bin/python");
    if !bin.exists() {
        eprintln!(
            "peer: installing aiperf {AIPERF_VERSION} into {}",
            venv.display()
        );
        sh(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &out.join("aiperf-venv.log"),
            "python3 -m venv",
        )?;
        sh(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                &format!("aiperf=={AIPERF_VERSION}"),
            ]),
            &out.join("aiperf-install.log"),
            "pip install aiperf",
        )?;
    }
    let tokenizer = word_tokenizer(out, &python, "aiperf")?;
    let (tmp, hf_home) = private_dirs(out, "aiperf")?;
    Ok((
        Aiperf {
            bin,
            tokenizer,
            tmp,
            hf_home,
        },
        python_version(&python),
    ))
}

/// The simulator's figures for the requests matched (ms from arrival).
#[derive(Default)]
struct TruthFigures {
    first_token: Option<Dist>,
    first_visible: Option<Dist>,
    gap: Option<f64>,
}

fn truth_figures(truths: &[&StreamTruth]) -> TruthFigures {
    let ms = |v: Vec<f64>| Dist::of(&v).map(|d| d.scaled(1e3));
    let gaps: Vec<f64> = truths.iter().flat_map(|t| written_gaps(t)).collect();
    TruthFigures {
        first_token: ms(truths.iter().filter_map(|t| t.first_token).collect()),
        first_visible: ms(truths.iter().filter_map(|t| t.first_visible).collect()),
        gap: (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64 * 1e3),
    }
}

fn written_gaps(t: &StreamTruth) -> Vec<f64> {
    t.visible_chunks
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect()
}

fn ms_abs(v: &[f64]) -> Option<Dist> {
    Dist::of(&abs(v)).map(|d| d.scaled(1e3))
}

fn mean_ms(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64 * 1e3)
}

/// canary's figures: the same requests in this process (matched with the truth), and its
/// cost as a `canary run` child process for the same number of requests.
async fn canary_figures(
    sc: &Scenarios,
    sim: &SimProcess,
    exe: &Path,
    plan: &Plan,
) -> Result<ToolFigures, super::BenchError> {
    let runs = scenario::chat_runs(sc, sim, plan.model, plan.requests, plan.concurrency).await?;
    let (mut ttft, mut ttfvt, mut tok_err, mut gaps_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (d, truth, _) in &runs.matched {
        let o = &d.observation;
        let sent = super::fidelity::sent_unix(&d.timeline);
        if let Some(v) = o.latency_of(Sli::TimeToFirstToken) {
            ttft.push(v);
            if let Some(w) = truth.first_token {
                tok_err.push((sent + v) - (truth.received_unix + w));
            }
        }
        ttfvt.extend(o.latency_of(Sli::TimeToFirstVisibleToken));
        if let Some(s) = &o.stream {
            gaps_ms.extend(s.gaps.iter().copied());
        }
    }
    let first = runs.first_visible_errors();
    let suite = if plan.model.contains("reasoning") {
        &sc.reasoning_suite
    } else {
        &sc.plain_suite
    };
    scenario::reset(sim).await?;
    let requests = plan.requests.to_string();
    let cost = scenario::measured_run(
        sc,
        exe,
        &format!("peer-canary-{}", plan.model),
        suite,
        plan.requests,
        plan.concurrency,
        &["--runs", &requests],
    )
    .await?;
    let ms = |v: &[f64]| Dist::of(v).map(|d| d.scaled(1e3));
    Ok(ToolFigures {
        tool: format!("canary {}", env!("CARGO_PKG_VERSION")),
        ok: runs.ok,
        matched: runs.matched.len(),
        first_token_ms: ms(&ttft),
        first_output_ms: ms(&ttfvt),
        first_output_error_ms: ms_abs(&first),
        first_output_bias_ms: mean_ms(&first),
        first_token_error_ms: ms_abs(&tok_err),
        gap_error_ms: ms_abs(&runs.gap_errors()),
        inter_token_ms: mean_ms(&gaps_ms),
        cpu_seconds: cost.cpu_seconds,
        cpu_ms_per_request: cost.cpu_ms_per_probe,
        peak_rss_bytes: cost.peak_rss_bytes,
        processes: 1,
        wall_seconds: cost.wall_seconds,
        matched_by: "x-request-id".into(),
        ..Default::default()
    })
}

/// One request as a peer recorded it, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    /// The `X-Request-ID` it sent, if any.
    id: Option<String>,
    /// When it sent the request (seconds since the Unix epoch).
    sent_unix: f64,
    /// Its time to first token, from the send.
    first_token: f64,
    /// Its first answer-text figure, from the send.
    first_output: f64,
    /// Gaps between the chunks it stamped (empty when it keeps no per-chunk times).
    chunk_gaps: Vec<f64>,
    /// Its inter-token figure for this request.
    inter_token: Option<f64>,
}

/// How a tool's requests are paired with the simulator's records.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MatchBy {
    RequestId,
    SendTime,
}

/// Pairs samples with truth records: by request id, or in send order, each sample with the
/// earliest unclaimed arrival no more than 1 ms before its send (the two clocks are one
/// kernel clock; the slack absorbs the conversion of a monotonic stamp).
fn pair<'a>(
    samples: &[Sample],
    truths: &'a [StreamTruth],
    by: MatchBy,
) -> Vec<(usize, &'a StreamTruth)> {
    match by {
        MatchBy::RequestId => {
            let by_id: HashMap<&str, &StreamTruth> = truths
                .iter()
                .filter_map(|s| s.request_id.as_deref().map(|id| (id, s)))
                .collect();
            samples
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, *by_id.get(s.id.as_deref()?)?)))
                .collect()
        }
        MatchBy::SendTime => {
            let mut order: Vec<usize> = (0..samples.len()).collect();
            order.sort_by(|a, b| samples[*a].sent_unix.total_cmp(&samples[*b].sent_unix));
            let mut arrivals: Vec<&StreamTruth> = truths.iter().collect();
            arrivals.sort_by(|a, b| a.received_unix.total_cmp(&b.received_unix));
            let mut j = 0;
            let mut out = Vec::new();
            for i in order {
                while j < arrivals.len() && arrivals[j].received_unix < samples[i].sent_unix - 1e-3
                {
                    j += 1;
                }
                if j == arrivals.len() {
                    break;
                }
                out.push((i, arrivals[j]));
                j += 1;
            }
            out
        }
    }
}

/// A tool's figures from its samples and the simulator's records of the same run.
fn figures(
    tool: String,
    samples: &[Sample],
    truths: &[StreamTruth],
    by: MatchBy,
    cost: &procs::Cost,
    requests: usize,
) -> (ToolFigures, TruthFigures) {
    let mut f = ToolFigures {
        tool,
        ok: samples.len(),
        matched_by: match by {
            MatchBy::RequestId => "x-request-id",
            MatchBy::SendTime => "send time",
        }
        .into(),
        cpu_seconds: cost.cpu_seconds,
        cpu_ms_per_request: cost.cpu_seconds * 1e3 / requests.max(1) as f64,
        peak_rss_bytes: cost.peak_rss_bytes,
        processes: cost.processes,
        wall_seconds: cost.wall_seconds,
        ..Default::default()
    };
    let pairs = pair(samples, truths, by);
    f.matched = pairs.len();
    let (mut out_err, mut tok_err, mut gap_err, mut delay) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut matched_truths = Vec::new();
    for (i, t) in pairs {
        let s = &samples[i];
        matched_truths.push(t);
        delay.push(t.received_unix - s.sent_unix);
        if let Some(w) = t.first_visible {
            out_err.push((s.sent_unix + s.first_output) - (t.received_unix + w));
        }
        if let Some(w) = t.first_token {
            tok_err.push((s.sent_unix + s.first_token) - (t.received_unix + w));
        }
        // A tool's chunk gaps may start at the blank delta; the last ones pair with the words'.
        let written = written_gaps(t);
        if !s.chunk_gaps.is_empty() && s.chunk_gaps.len() >= written.len() {
            let tail = &s.chunk_gaps[s.chunk_gaps.len() - written.len()..];
            gap_err.extend(tail.iter().zip(&written).map(|(m, w)| m - w));
        }
    }
    let ms = |v: Vec<f64>| Dist::of(&v).map(|d| d.scaled(1e3));
    f.first_token_ms = ms(samples.iter().map(|s| s.first_token).collect());
    f.first_output_ms = ms(samples.iter().map(|s| s.first_output).collect());
    f.first_output_error_ms = ms_abs(&out_err);
    f.first_output_bias_ms = mean_ms(&out_err);
    f.first_token_error_ms = ms_abs(&tok_err);
    f.gap_error_ms = ms_abs(&gap_err);
    let itl: Vec<f64> = samples.iter().filter_map(|s| s.inter_token).collect();
    f.inter_token_ms = mean_ms(&itl);
    if by == MatchBy::SendTime {
        f.send_to_arrival_ms = ms(delay);
    }
    (f, truth_figures(&matched_truths))
}

/// One record of aiperf's `profile_export.jsonl`, the fields read.
#[derive(serde::Deserialize)]
struct AiperfRecord {
    metadata: AiperfMeta,
    #[serde(default)]
    metrics: HashMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct AiperfMeta {
    x_request_id: Option<String>,
    request_start_ns: Option<u64>,
}

/// A metric of a record in milliseconds (aiperf writes `{value, unit}`; other units are
/// converted, unknown ones ignored).
fn metric(r: &AiperfRecord, name: &str) -> Option<f64> {
    let m = r.metrics.get(name)?;
    let scale = unit_to_ms(m.get("unit").and_then(|u| u.as_str()).unwrap_or("ms"))?;
    Some(m.get("value")?.as_f64()? * scale)
}

fn unit_to_ms(unit: &str) -> Option<f64> {
    match unit {
        "ms" => Some(1.0),
        "s" | "sec" => Some(1e3),
        "us" => Some(1e-3),
        "ns" => Some(1e-6),
        _ => None,
    }
}

/// aiperf's records (one JSON object a line; lines that do not parse are skipped).
fn parse_aiperf(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for r in text
        .lines()
        .filter_map(|l| serde_json::from_str::<AiperfRecord>(l).ok())
    {
        let (Some(first), Some(start)) = (
            metric(&r, "time_to_first_token"),
            r.metadata.request_start_ns,
        ) else {
            continue;
        };
        let first_out = metric(&r, "time_to_first_output_token").unwrap_or(first);
        let icl = r.metrics.get("inter_chunk_latency");
        let ms_per_unit = icl
            .and_then(|m| m.get("unit"))
            .and_then(|u| u.as_str())
            .and_then(unit_to_ms)
            .unwrap_or(f64::NAN);
        let chunk_gaps = icl
            .and_then(|m| m.get("value"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x * ms_per_unit / 1e3)
                    .filter(|x| x.is_finite())
                    .collect()
            })
            .unwrap_or_default();
        out.push(Sample {
            id: r.metadata.x_request_id.clone(),
            sent_unix: start as f64 / 1e9,
            first_token: first / 1e3,
            first_output: first_out / 1e3,
            chunk_gaps,
            inter_token: metric(&r, "inter_token_latency").map(|v| v / 1e3),
        });
    }
    out
}

/// GuideLLM's `benchmarks.json`: every successful request of every benchmark.
fn parse_guidellm(text: &str) -> Result<Vec<Sample>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("GuideLLM's report is not JSON: {e}"))?;
    let benches = v
        .get("benchmarks")
        .and_then(|b| b.as_array())
        .ok_or("GuideLLM's report has no benchmarks")?;
    let mut out = Vec::new();
    for b in benches {
        let reqs = b
            .pointer("/requests/successful")
            .and_then(|r| r.as_array())
            .ok_or("a GuideLLM benchmark has no requests.successful (request sampling on?)")?;
        for r in reqs {
            let f = |p: &str| r.pointer(p).and_then(|x| x.as_f64());
            let (Some(start), Some(ttft)) = (
                f("/info/timings/request_start"),
                f("/time_to_first_token_ms"),
            ) else {
                continue;
            };
            out.push(Sample {
                id: None,
                sent_unix: start,
                first_token: ttft / 1e3,
                first_output: f("/time_to_first_output_token_ms").unwrap_or(ttft) / 1e3,
                chunk_gaps: Vec::new(),
                inter_token: f("/inter_token_latency_ms").map(|v| v / 1e3),
            });
        }
    }
    Ok(out)
}

/// inference-perf's `per_request_lifecycle_metrics.json`; `mono_to_unix` converts its
/// `time.perf_counter()` stamps to wall-clock time. Its time to first token is its first
/// token-bearing stamp (`output_token_times`, after its tokenizer's correction) minus the
/// start; its inter-token latency the mean gap between those stamps; the chunk gaps are
/// those of every content chunk it stamped (`chunk_times`).
fn parse_inference_perf(text: &str, mono_to_unix: f64) -> Result<Vec<Sample>, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("inference-perf's per-request report is not JSON: {e}"))?;
    let reqs = v
        .as_array()
        .ok_or("inference-perf's per-request report is not a list")?;
    let times = |r: &serde_json::Value, k: &str| -> Vec<f64> {
        r.pointer(&format!("/info/response_metrics/{k}"))
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for r in reqs {
        if r.get("error").is_some_and(|e| !e.is_null()) {
            continue;
        }
        let Some(start) = r.get("start_time").and_then(|x| x.as_f64()) else {
            continue;
        };
        let tokens = times(r, "output_token_times");
        let chunks = times(r, "chunk_times");
        let Some(first) = tokens.first() else {
            continue;
        };
        let deltas: Vec<f64> = tokens.windows(2).map(|w| w[1] - w[0]).collect();
        out.push(Sample {
            id: None,
            sent_unix: start + mono_to_unix,
            first_token: first - start,
            first_output: first - start,
            chunk_gaps: chunks.windows(2).map(|w| w[1] - w[0]).collect(),
            inter_token: (!deltas.is_empty())
                .then(|| deltas.iter().sum::<f64>() / deltas.len() as f64),
        });
    }
    Ok(out)
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Runs a peer's command with its CPU and memory measured; its log file's path.
async fn measured(mut cmd: Command, log: PathBuf, what: &str) -> Result<procs::Cost, String> {
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
    let cost = tokio::task::spawn_blocking(move || {
        procs::run_measured(&mut cmd, Duration::from_secs(1800))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if cost.exit_code != Some(0) {
        return Err(format!(
            "{what} exited with {:?} (see {})",
            cost.exit_code,
            log.display()
        ));
    }
    Ok(cost)
}

/// A clean private folder for one run's outputs.
/// Before a peer's run of `plan`: the simulator's records cleared, and the tool's temporary
/// folder and its output folder for the plan (`OUT/TOOL/SLUG`) emptied, so that nothing an
/// earlier (failed) run left is read. Returns the plan's slug and that output folder.
async fn fresh_run(
    sim: &SimProcess,
    tmp: &Path,
    out: &Path,
    tool: &str,
    plan: &Plan,
) -> Result<(String, PathBuf), String> {
    scenario::reset(sim).await.map_err(|e| e.to_string())?;
    fresh_dir(tmp)?;
    let slug = slug(plan.name);
    let dir = out.join(tool).join(&slug);
    fresh_dir(&dir)?;
    Ok((slug, dir))
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs aiperf on `plan` and reads its records; its figures and the truth's.
async fn aiperf_figures(
    a: &Aiperf,
    out: &Path,
    sim: &SimProcess,
    plan: &Plan,
) -> Result<(ToolFigures, TruthFigures), String> {
    let (slug, dir) = fresh_run(sim, &a.tmp, out, "aiperf", plan).await?;
    let mut cmd = Command::new(&a.bin);
    cmd.args(["profile", "--model", plan.model, "--url", &sim.base])
        .args(["--endpoint-type", "chat", "--streaming"])
        .arg("--tokenizer")
        .arg(&a.tokenizer)
        .args(["--request-count", &plan.requests.to_string()])
        .args(["--concurrency", &plan.concurrency.to_string()])
        .args([
            "--osl",
            "40",
            "--extra-inputs",
            "ignore_eos:true",
            "--isl",
            "100",
        ])
        .args([
            "--random-seed",
            "1",
            "--ui-type",
            "none",
            "--log-level",
            "warning",
        ])
        .args(["--no-server-metrics", "--no-gpu-telemetry"])
        .args(&plan.extra)
        .arg("--artifact-dir")
        .arg(&dir)
        .env("TMPDIR", &a.tmp)
        .env("HF_HOME", &a.hf_home)
        .env_remove("HF_HUB_OFFLINE");
    let cost = measured(cmd, out.join(format!("aiperf-{slug}.log")), "aiperf").await?;
    let path = dir.join("profile_export.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("aiperf wrote no per-request records: {e}"))?;
    let samples = parse_aiperf(&text);
    if samples.is_empty() {
        return Err(format!(
            "none of aiperf's records could be read ({} lines in {})",
            text.lines().count(),
            path.display()
        ));
    }
    let page = scenario::truth(sim).await.map_err(|e| e.to_string())?;
    Ok(figures(
        format!("aiperf {AIPERF_VERSION}"),
        &samples,
        &page.streams,
        MatchBy::RequestId,
        &cost,
        plan.requests,
    ))
}
/// GuideLLM's paths once installed.
struct Guidellm {
    bin: PathBuf,
    tokenizer: PathBuf,
    /// The torch stand-in, put on `PYTHONPATH`.
    stand_in: PathBuf,
    tmp: PathBuf,
    hf_home: PathBuf,
}

/// GuideLLM's declared dependencies (its 0.8.1 metadata) without torch, its `perf` extra,
/// and jinja2 (imported by its vLLM backend module, which torch otherwise brings).
const GUIDELLM_DEPS: &[&str] = &[
    "click~=8.4.0",
    "culsans~=0.10.0",
    "datasets>=5.0.1",
    "eval_type_backport",
    "faker",
    "ftfy>=6.0.0",
    "httpx[http2]<1.0.0",
    "loguru",
    "msgpack",
    "numpy>=2.0.0",
    "protobuf",
    "pydantic>=2.11.7",
    "pydantic-settings>=2.0.0",
    "pyyaml>=6.0.0",
    "rich",
    "sanic",
    "tabulate",
    "transformers",
    "uvloop>=0.18",
    "more-itertools>=10.8.0",
    "typing-extensions>=4.15.0",
    "websockets>=13.0",
    "orjson",
    "msgspec",
    "jinja2",
];

/// The four names of torch GuideLLM's data loader uses, as files of a package `torch`:
/// `DataLoader` iterates its dataset in this process (torch's with `num_workers=0`).
const TORCH_STAND_IN: &[(&str, &str)] = &[
    (
        "torch/__init__.py",
        r#""""canary bench's stand-in for the torch names GuideLLM's data loader uses."""
import random as _random

from . import utils  # noqa: F401

__version__ = "0.0.0+canary-stand-in"


class Generator:
    def __init__(self):
        self._rng = _random.Random()

    def manual_seed(self, seed):
        self._rng.seed(seed)
        return self
"#,
    ),
    (
        "torch/utils/__init__.py",
        "from . import data  # noqa: F401\n",
    ),
    (
        "torch/utils/data/__init__.py",
        r#"from .dataloader import DataLoader, get_worker_info  # noqa: F401
from .dataset import IterableDataset  # noqa: F401
"#,
    ),
    (
        "torch/utils/data/dataset.py",
        r#"from typing import Generic, TypeVar

T_co = TypeVar("T_co", covariant=True)


class IterableDataset(Generic[T_co]):
    def __iter__(self):
        raise NotImplementedError
"#,
    ),
    (
        "torch/utils/data/dataloader.py",
        r#"from typing import Generic, TypeVar

T_co = TypeVar("T_co", covariant=True)


def get_worker_info():
    return None


class DataLoader(Generic[T_co]):
    def __init__(self, dataset, batch_size=1, shuffle=False, collate_fn=None,
                 num_workers=0, prefetch_factor=None, generator=None, **kwargs):
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn or (lambda b: b)

    def __iter__(self):
        batch = []
        for item in self.dataset:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch:
            yield self.collate_fn(batch)
"#,
    ),
];

/// Installs GuideLLM (without torch), the stand-in and its tokenizer when absent. Blocking.
fn install_guidellm(out: &Path) -> Result<(Guidellm, String), String> {
    let python = venv_install(
        out,
        "guidellm",
        GUIDELLM_VERSION,
        "python3",
        &[
            vec!["--no-deps".into(), format!("guidellm=={GUIDELLM_VERSION}")],
            strings(GUIDELLM_DEPS),
        ],
    )?;
    let stand_in = out.join("guidellm-torch-stand-in");
    for (path, text) in TORCH_STAND_IN {
        let p = stand_in.join(path);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let tokenizer = word_tokenizer(out, &python, "guidellm")?;
    let (tmp, hf_home) = private_dirs(out, "guidellm")?;
    Ok((
        Guidellm {
            bin: out.join("guidellm-venv/bin/guidellm"),
            tokenizer,
            stand_in,
            tmp,
            hf_home,
        },
        python_version(&python),
    ))
}

/// Runs GuideLLM on `plan` (its concurrent profile, synthetic prompts of 100 words, answers
/// of 40) and reads its per-request records.
async fn guidellm_figures(
    g: &Guidellm,
    out: &Path,
    sim: &SimProcess,
    plan: &Plan,
) -> Result<(ToolFigures, TruthFigures), String> {
    let (slug, dir) = fresh_run(sim, &g.tmp, out, "guidellm", plan).await?;
    let report = dir.join("benchmarks.json");
    let mut cmd = Command::new(&g.bin);
    cmd.arg("run")
        .arg("--backend")
        .arg(format!(
            "kind=openai_http,target={},model={},validate_backend=false",
            sim.base, plan.model
        ))
        .arg("--profile")
        .arg(format!("kind=concurrent,streams={}", plan.concurrency))
        .arg("--constraint")
        .arg(format!("kind=max_requests,count={}", plan.requests))
        .args([
            "--data",
            "kind=synthetic_text,prompt_tokens=100,output_tokens=40",
        ])
        .arg("--tokenizer")
        .arg(format!("kind=hf_auto,model={}", g.tokenizer.display()))
        .arg("--output")
        .arg(format!("kind=json,path={}", report.display()))
        .arg("--disable-console-interactive")
        .env("PYTHONPATH", &g.stand_in)
        .env("USE_TORCH", "0")
        .env("HF_HUB_OFFLINE", "1")
        .env("TMPDIR", &g.tmp)
        .env("HF_HOME", &g.hf_home);
    let cost = measured(cmd, out.join(format!("guidellm-{slug}.log")), "guidellm").await?;
    let written = Written {
        tool: format!("guidellm {GUIDELLM_VERSION}"),
        writer: "GuideLLM",
        what: "report",
        path: &report,
        note: "gap error: GuideLLM keeps only the first and last token time of a request",
    };
    send_time_figures(sim, written, parse_guidellm, &cost, plan.requests).await
}

/// The per-request report a peer without request ids wrote.
struct Written<'a> {
    /// Name and version, as the table shows them.
    tool: String,
    /// The tool's name in messages.
    writer: &'static str,
    /// What the file is, in messages.
    what: &'static str,
    path: &'a Path,
    /// What the table says about the tool's figures.
    note: &'static str,
}

/// A peer that sends no request id, after its run: its report read and parsed (at least one
/// successful request), its requests matched by send time with the simulator's records.
async fn send_time_figures(
    sim: &SimProcess,
    w: Written<'_>,
    parse: impl FnOnce(&str) -> Result<Vec<Sample>, String>,
    cost: &procs::Cost,
    requests: usize,
) -> Result<(ToolFigures, TruthFigures), String> {
    let text = std::fs::read_to_string(w.path).map_err(|e| {
        format!(
            "{} wrote no {} at {}: {e}",
            w.writer,
            w.what,
            w.path.display()
        )
    })?;
    let samples = parse(&text)?;
    if samples.is_empty() {
        return Err(format!(
            "{}'s {} holds no successful request ({})",
            w.writer,
            w.what,
            w.path.display()
        ));
    }
    let page = scenario::truth(sim).await.map_err(|e| e.to_string())?;
    let (mut f, truth) = figures(
        w.tool,
        &samples,
        &page.streams,
        MatchBy::SendTime,
        cost,
        requests,
    );
    f.notes.push(w.note.into());
    Ok((f, truth))
}

/// inference-perf's paths once installed.
struct InferencePerf {
    bin: PathBuf,
    python: PathBuf,
    tokenizer: PathBuf,
    tmp: PathBuf,
    hf_home: PathBuf,
}

/// inference-perf's declared dependencies (its 0.7.0 metadata).
const INFERENCE_PERF_DEPS: &[&str] = &[
    "aiohttp>=3.11.11",
    "pydantic>=2.10.6",
    "numpy>=2.2.2",
    "datasets>=3.3.2",
    "transformers==5.13.0",
    "jinja2>=3.1.0",
    "google-cloud-storage>=3.1.0",
    "pyyaml>=6.0.2",
    "boto3>=1.39.0",
    "uvloop>=0.21.0",
    "tqdm>=4.67.1",
    "aiofiles>=25.1.0",
    "tiktoken>=0.12.0",
    "rich>=13.0.0",
    "av>=13.0.0",
    "pillow>=10.0.0",
    "prometheus-client>=0.20.0",
];

/// An interpreter of Python 3.12 or later on `PATH`, if one runs.
fn python312() -> Option<String> {
    ["python3.13", "python3.12", "python3"]
        .into_iter()
        .find_map(|p| {
            output_of(Command::new(p).args([
                "-c",
                "import sys; assert sys.version_info >= (3, 12); print(sys.executable)",
            ]))
            .map(|_| p.to_string())
        })
}

/// Installs inference-perf and its tokenizer when absent. Blocking.
fn install_inference_perf(out: &Path) -> Result<(InferencePerf, String), String> {
    let (interpreter, mut first) = match python312() {
        Some(p) => (p, vec!["--no-deps".to_string()]),
        None => (
            "python3".to_string(),
            vec![
                "--no-deps".to_string(),
                "--ignore-requires-python".to_string(),
            ],
        ),
    };
    first.push(format!("inference-perf=={INFERENCE_PERF_VERSION}"));
    let python = venv_install(
        out,
        "inference-perf",
        INFERENCE_PERF_VERSION,
        &interpreter,
        &[first, strings(INFERENCE_PERF_DEPS)],
    )?;
    let tokenizer = word_tokenizer(out, &python, "inference-perf")?;
    let (tmp, hf_home) = private_dirs(out, "inference-perf")?;
    let version = python_version(&python);
    Ok((
        InferencePerf {
            bin: out.join("inference-perf-venv/bin/inference-perf"),
            python,
            tokenizer,
            tmp,
            hf_home,
        },
        version,
    ))
}

/// inference-perf's configuration for `plan`: its concurrent load type, the mock data
/// generator through the chat API, a per-request report in `dir`.
fn inference_perf_config(base: &str, plan: &Plan, tokenizer: &Path, dir: &Path) -> String {
    let q = |s: &str| serde_json::Value::String(s.into()).to_string();
    format!(
        "api:\n  type: chat\n  streaming: true\n  headers: {{x-sim-words: \"40\"}}\n\
         data:\n  type: mock\n\
         load:\n  type: concurrent\n  stages:\n    - {{num_requests: {}, concurrency_level: {}}}\n\
         server:\n  type: vllm\n  model_name: {}\n  base_url: {}\n  ignore_eos: true\n\
         tokenizer:\n  pretrained_model_name_or_path: {}\n\
         report:\n  request_lifecycle:\n    summary: true\n    per_stage: false\n    per_request: true\n\
         storage:\n  local_storage:\n    path: {}\n",
        plan.requests,
        plan.concurrency,
        q(plan.model),
        q(base),
        q(&tokenizer.display().to_string()),
        q(&dir.display().to_string()),
    )
}

/// Wall-clock time minus `time.perf_counter()` (CLOCK_MONOTONIC, one clock for every
/// process), read in the peer's own interpreter.
fn monotonic_offset(python: &Path) -> Result<f64, String> {
    output_of(Command::new(python).args([
        "-c",
        "import time\nbest = None\nfor _ in range(20):\n    a = time.perf_counter(); w = time.time(); b = time.perf_counter()\n    if best is None or b - a < best[0]: best = (b - a, w - (a + b) / 2)\nprint(repr(best[1]))",
    ]))
    .and_then(|s| s.parse::<f64>().ok())
    .ok_or_else(|| "cannot read the monotonic clock's offset from inference-perf's Python".into())
}

/// Runs inference-perf on `plan` and reads its per-request report.
async fn inference_perf_figures(
    ip: &InferencePerf,
    out: &Path,
    sim: &SimProcess,
    plan: &Plan,
) -> Result<(ToolFigures, TruthFigures), String> {
    let (slug, dir) = fresh_run(sim, &ip.tmp, out, "inference-perf", plan).await?;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        inference_perf_config(&sim.base, plan, &ip.tokenizer, &dir.join("report")),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let mut cmd = Command::new(&ip.bin);
    cmd.arg("-c")
        .arg(&config)
        .args(["--log-level", "WARNING"])
        .env("HF_HUB_OFFLINE", "1")
        .env("TMPDIR", &ip.tmp)
        .env("HF_HOME", &ip.hf_home);
    let cost = measured(
        cmd,
        out.join(format!("inference-perf-{slug}.log")),
        "inference-perf",
    )
    .await?;
    let offset = monotonic_offset(&ip.python)?;
    let path = dir.join("report/per_request_lifecycle_metrics.json");
    let written = Written {
        tool: format!("inference-perf {INFERENCE_PERF_VERSION}"),
        writer: "inference-perf",
        what: "per-request report",
        path: &path,
        note: "first output: inference-perf has one first-token figure; with the whitespace tokenizer it fires on the first word",
    };
    let parse = |text: &str| parse_inference_perf(text, offset);
    send_time_figures(sim, written, parse, &cost, plan.requests).await
}
fn cell(d: &Option<Dist>) -> String {
    d.map(|d| format!("{:.1} / {:.1}", d.p50, d.p99))
        .unwrap_or_else(|| "-".into())
}

/// The peers' section of the Markdown report.
pub fn markdown(p: &PeerSection) -> String {
    let r = match p {
        PeerSection::Skipped { reason } => return format!("## Peers\n\nNot run: {reason}.\n"),
        PeerSection::Ran(r) => r,
    };
    let mut md = String::from(
        "## Side by side with peers\n\nSame simulator, same scenario, same number of requests and concurrency; every request \
         matched with the simulator's record of it, by the `X-Request-ID` the tool sends or else by the send time it records \
         (\"matched by\"). Figures in ms as p50 / p99. \"First output\" is aiperf's and GuideLLM's time to first output token, \
         inference-perf's time to first token and canary's time to first visible token; its error is against the write of \
         the first visible word, the first token error against the write of the first token of any kind. CPU and memory are \
         the whole process tree for the same number of requests (for several processes, the sum of each one's peak).\n\n",
    );
    for s in &r.peers {
        md += &format!(
            "- **{} {}**{}: {}.{}\n",
            s.tool,
            s.version,
            s.python
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!(" (Python {v})"))
                .unwrap_or_default(),
            s.how,
            s.not_run
                .as_deref()
                .map(|r| format!(" **Not run**: {r}."))
                .unwrap_or_default()
        );
    }
    md += "\n";
    for s in &r.scenarios {
        md += &format!(
            "### {} ({}, {} requests, {} in flight{})\n\nTruth: first token {}, first visible word {}, mean gap between words {}.\n\n",
            s.name,
            s.model,
            s.requests,
            s.concurrency,
            if s.aiperf_args.is_empty() {
                String::new()
            } else {
                format!(", aiperf `{}`", s.aiperf_args.join(" "))
            },
            cell(&s.truth_first_token_ms),
            cell(&s.truth_first_visible_ms),
            s.truth_gap_ms
                .map(|g| format!("{g:.1}"))
                .unwrap_or_else(|| "-".into()),
        );
        md += "| tool | ok (matched) | matched by | first token | first output | first output error vs visible | bias | first token error | gap error | mean inter-token | CPU | CPU / request | peak RSS (processes) |\n\
               |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for t in &s.tools {
            md += &format!(
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} s | {:.2} ms | {:.0} MB ({}) |\n",
                t.tool,
                t.ok,
                t.matched,
                match t.send_to_arrival_ms {
                    Some(d) => format!("{} (arrival - send p99 {:.1} ms)", t.matched_by, d.p99),
                    None => t.matched_by.clone(),
                },
                cell(&t.first_token_ms),
                cell(&t.first_output_ms),
                cell(&t.first_output_error_ms),
                t.first_output_bias_ms
                    .map(|b| format!("{b:+.1}"))
                    .unwrap_or_else(|| "-".into()),
                cell(&t.first_token_error_ms),
                cell(&t.gap_error_ms),
                t.inter_token_ms
                    .map(|g| format!("{g:.1}"))
                    .unwrap_or_else(|| "-".into()),
                t.cpu_seconds,
                t.cpu_ms_per_request,
                t.peak_rss_bytes as f64 / 1e6,
                t.processes
            );
        }
        md += "\n";
        for t in &s.tools {
            for n in &t.notes {
                md += &format!("- {}: {n}.\n", t.tool);
            }
        }
        for n in &s.not_run {
            md += &format!("- {} not run on this scenario: {}.\n", n.tool, n.reason);
        }
        md += "\n";
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(received_unix: f64, id: Option<&str>) -> StreamTruth {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "path": "/v1/chat/completions", "model": "sim-plain", "stream": true,
            "write_mode": "events", "headers": 0.001, "first_byte": 0.002,
            "first_token": 0.060, "first_reasoning": null, "first_visible": 0.120,
            "terminator": 0.2, "last_byte": 0.2,
            "visible_chunks": [[0.120, 1], [0.140, 1], [0.160, 1]],
            "visible_words": 3, "reasoning_words": 0, "completed": true, "answer": "a b c",
            "received_unix": received_unix, "request_id": id
        }))
        .unwrap()
    }

    #[test]
    fn peers_parse_as_a_list_all_or_none() {
        assert_eq!(parse_peers("all").unwrap(), Peer::ALL.to_vec());
        assert!(parse_peers("none").unwrap().is_empty());
        assert_eq!(
            parse_peers("inference-perf, aiperf,aiperf").unwrap(),
            vec![Peer::InferencePerf, Peer::Aiperf]
        );
        let e = parse_peers("aiperf,vegeta").unwrap_err();
        assert!(e.contains("vegeta") && e.contains("guidellm"), "{e}");
    }

    #[test]
    fn aiperf_records_parse_with_units_and_skip_garbage() {
        let text = concat!(
            r#"{"metadata":{"x_request_id":"r1","request_start_ns":1000000000000000000},"metrics":{"#,
            r#""time_to_first_token":{"value":60.5,"unit":"ms"},"time_to_first_output_token":{"value":0.1205,"unit":"s"},"#,
            r#""inter_token_latency":{"value":21.0,"unit":"ms"},"inter_chunk_latency":{"value":[60.0,20.0,20.0],"unit":"ms"}}}"#,
            "\nnot json\n",
            r#"{"metadata":{"x_request_id":"r2","request_start_ns":1},"metrics":{}}"#,
            "\n"
        );
        let s = parse_aiperf(text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].id.as_deref(), Some("r1"));
        assert!((s[0].sent_unix - 1e9).abs() < 1e-6);
        assert!((s[0].first_token - 0.0605).abs() < 1e-9);
        assert!((s[0].first_output - 0.1205).abs() < 1e-9);
        assert_eq!(s[0].chunk_gaps.len(), 3);
        assert!((s[0].chunk_gaps[1] - 0.020).abs() < 1e-9);
        assert!((s[0].inter_token.unwrap() - 0.021).abs() < 1e-9);
    }

    #[test]
    fn guidellm_report_parses_and_rejects_what_is_not_one() {
        let text = r#"{"benchmarks":[{"requests":{"successful":[
            {"info":{"timings":{"request_start":1700000000.5}},"time_to_first_token_ms":61.0,
             "time_to_first_output_token_ms":121.0,"inter_token_latency_ms":21.5},
            {"info":{"timings":{}},"time_to_first_token_ms":61.0}
        ],"errored":[]}}]}"#;
        let s = parse_guidellm(text).unwrap();
        assert_eq!(s.len(), 1);
        assert!((s[0].sent_unix - 1700000000.5).abs() < 1e-6);
        assert!((s[0].first_token - 0.061).abs() < 1e-9);
        assert!((s[0].first_output - 0.121).abs() < 1e-9);
        assert!(s[0].chunk_gaps.is_empty() && s[0].id.is_none());
        assert!(parse_guidellm("{").is_err());
        assert!(parse_guidellm(r#"{"benchmarks":[{}]}"#)
            .unwrap_err()
            .contains("successful"));
    }

    #[test]
    fn inference_perf_report_parses_on_the_wall_clock() {
        let text = r#"[
          {"start_time": 100.0, "end_time": 101.0, "error": null, "info": {"response_metrics": {
             "chunk_times": [100.06, 100.12, 100.14, 100.16],
             "output_token_times": [100.12, 100.14, 100.16]}}},
          {"start_time": 100.5, "error": {"error_msg": "boom"}, "info": {}},
          {"start_time": 100.7, "error": null, "info": {"response_metrics": {"output_token_times": []}}}
        ]"#;
        let s = parse_inference_perf(text, 1.7e9).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert!((s[0].sent_unix - (1.7e9 + 100.0)).abs() < 1e-6);
        assert!((s[0].first_token - 0.12).abs() < 1e-9);
        assert_eq!(s[0].first_output, s[0].first_token);
        assert_eq!(s[0].chunk_gaps.len(), 3);
        assert!((s[0].inter_token.unwrap() - 0.02).abs() < 1e-9);
        assert!(parse_inference_perf("{}", 0.0).is_err());
        assert!(parse_inference_perf("[", 0.0).is_err());
    }

    #[test]
    fn pairing_by_send_time_follows_send_order_and_skips_early_arrivals() {
        let samples: Vec<Sample> = [10.0, 10.0005, 11.0]
            .iter()
            .map(|&t| Sample {
                sent_unix: t,
                ..Default::default()
            })
            .collect();
        // An arrival before any send (another client) is never claimed.
        let truths = vec![
            truth(11.0003, None),
            truth(9.0, None),
            truth(10.0002, None),
            truth(10.0007, None),
        ];
        let p = pair(&samples, &truths, MatchBy::SendTime);
        let got: Vec<(usize, f64)> = p.iter().map(|(i, t)| (*i, t.received_unix)).collect();
        assert_eq!(got, vec![(0, 10.0002), (1, 10.0007), (2, 11.0003)]);
        let with_ids = [truth(1.0, Some("a")), truth(2.0, Some("b"))];
        let by_id = pair(
            &[Sample {
                id: Some("b".into()),
                ..Default::default()
            }],
            &with_ids,
            MatchBy::RequestId,
        );
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id[0].1.received_unix, 2.0);
    }

    #[test]
    fn figures_measure_errors_against_the_writes() {
        // Sent 1 ms before arrival; the tool saw the first token 0.2 ms after its write and
        // fired "first output" on the blank delta (60 ms before the first word).
        let s = Sample {
            sent_unix: 99.999,
            first_token: 0.0612,
            first_output: 0.0612,
            chunk_gaps: vec![0.060, 0.0201, 0.0199],
            inter_token: Some(0.0215),
            ..Default::default()
        };
        let cost = procs::Cost {
            cpu_seconds: 2.0,
            peak_rss_bytes: 5_000_000,
            processes: 3,
            ..Default::default()
        };
        let (f, t) = figures(
            "x".into(),
            &[s],
            &[truth(100.0, None)],
            MatchBy::SendTime,
            &cost,
            4,
        );
        assert_eq!((f.ok, f.matched), (1, 1));
        assert!((f.first_token_error_ms.unwrap().max - 0.2).abs() < 1e-6);
        assert!((f.first_output_bias_ms.unwrap() + 59.8).abs() < 1e-6);
        let gap = f.gap_error_ms.unwrap();
        assert_eq!(gap.n, 2);
        assert!((gap.max - 0.1).abs() < 1e-6);
        assert!((f.send_to_arrival_ms.unwrap().p50 - 1.0).abs() < 1e-6);
        assert!((f.inter_token_ms.unwrap() - 21.5).abs() < 1e-9);
        assert!((f.cpu_ms_per_request - 500.0).abs() < 1e-9);
        assert!((t.first_visible.unwrap().p50 - 120.0).abs() < 1e-9);
        assert!((t.gap.unwrap() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn inference_perf_config_is_yaml_with_the_plan() {
        let plan = &plans(true)[0];
        let y = inference_perf_config(
            "http://127.0.0.1:1",
            plan,
            Path::new("/t/tok"),
            Path::new("/t/out"),
        );
        let docs = yaml_rust2::YamlLoader::load_from_str(&y).unwrap();
        let v = &docs[0];
        assert_eq!(v["load"]["stages"][0]["num_requests"].as_i64(), Some(50));
        assert_eq!(
            v["load"]["stages"][0]["concurrency_level"].as_i64(),
            Some(10)
        );
        assert_eq!(v["server"]["base_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(v["api"]["headers"]["x-sim-words"].as_str(), Some("40"));
        assert_eq!(
            v["storage"]["local_storage"]["path"].as_str(),
            Some("/t/out")
        );
    }

    #[test]
    fn a_skipped_section_says_why_and_a_failed_peer_is_named() {
        assert!(markdown(&PeerSection::skipped("not asked for")).contains("not asked for"));
        let r = PeerSection::Ran(PeerReport {
            peers: vec![PeerStatus {
                tool: "guidellm".into(),
                version: GUIDELLM_VERSION.into(),
                python: None,
                how: "h".into(),
                not_run: Some("pip install failed".into()),
            }],
            scenarios: vec![Comparison {
                name: "plain".into(),
                model: "sim-plain".into(),
                requests: 1,
                concurrency: 1,
                aiperf_args: vec![],
                truth_first_token_ms: None,
                truth_first_visible_ms: None,
                truth_gap_ms: None,
                tools: vec![ToolFigures {
                    tool: "canary".into(),
                    matched_by: "x-request-id".into(),
                    ..Default::default()
                }],
                not_run: vec![NotRun {
                    tool: "guidellm".into(),
                    reason: "not installed: pip install failed".into(),
                }],
            }],
        });
        let md = markdown(&r);
        assert!(md.contains("**Not run**: pip install failed"), "{md}");
        assert!(md.contains("guidellm not run on this scenario"), "{md}");
    }
}
