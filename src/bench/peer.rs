//! The peer: NVIDIA's `aiperf` (PyPI), run against the same simulator scenarios as canary,
//! with both tools' figures set against the simulator's ground truth for the same requests.
//!
//! aiperf is installed into `OUT/aiperf-venv` when absent (a pinned version, from PyPI), with
//! an offline whitespace tokenizer (one word, one token) so that nothing is fetched from the
//! Hugging Face hub. aiperf sends an `X-Request-ID` per request and writes the same id with
//! its wall-clock send time to `profile_export.jsonl`; the simulator records the header, so
//! each of aiperf's requests is matched with its truth exactly as canary's are.

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

/// The aiperf release the harness installs (the one these figures were taken with).
pub const AIPERF_VERSION: &str = "0.13.0";

/// The peer's part of the report.
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

/// Both tools on every scenario.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    pub tool: String,
    pub version: String,
    pub scenarios: Vec<Comparison>,
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
    /// What the simulator wrote, from each request's arrival (ms): first token of any kind,
    /// first visible word, mean gap between visible words.
    pub truth_first_token_ms: Option<Dist>,
    pub truth_first_visible_ms: Option<Dist>,
    pub truth_gap_ms: Option<f64>,
    pub tools: Vec<ToolFigures>,
}

/// One tool's figures on a scenario.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ToolFigures {
    pub tool: String,
    pub ok: usize,
    pub matched: usize,
    /// The tool's "time to first token" as it reports it (ms).
    pub first_token_ms: Option<Dist>,
    /// The tool's first answer text figure (aiperf: time to first output token; canary:
    /// time to first visible token), ms.
    pub first_output_ms: Option<Dist>,
    /// |first output stamp - the write of the first visible word| (ms): what a user saw.
    pub first_output_error_ms: Option<Dist>,
    pub first_output_bias_ms: Option<f64>,
    /// |first token stamp - the write of the first token of any kind| (ms): the tool's
    /// fidelity to its own definition.
    pub first_token_error_ms: Option<Dist>,
    /// |measured - written| of each gap between visible words (ms).
    pub gap_error_ms: Option<Dist>,
    /// The tool's mean inter-token figure (ms).
    pub inter_token_ms: Option<f64>,
    /// Whole process tree, for the same number of requests.
    pub cpu_seconds: f64,
    pub cpu_ms_per_request: f64,
    pub peak_rss_bytes: u64,
    pub processes: usize,
    pub wall_seconds: f64,
}

/// What one scenario asks of both tools.
struct Plan {
    name: &'static str,
    model: &'static str,
    requests: usize,
    concurrency: usize,
    extra: Vec<String>,
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
        }];
    }
    vec![
        // aiperf's default: a fixed concurrency alone.
        Plan {
            name: "plain, concurrency",
            model: "sim-plain",
            requests: 1000,
            concurrency: 100,
            extra: Vec::new(),
        },
        // With a request rate as well, aiperf's timing loop stops spinning on a core.
        Plan {
            name: "plain, concurrency + rate",
            model: "sim-plain",
            requests: 1000,
            concurrency: 100,
            extra: rate.clone(),
        },
        Plan {
            name: "reasoning, concurrency + rate",
            model: "sim-reasoning",
            requests: 200,
            concurrency: 20,
            extra: rate,
        },
    ]
}

/// Runs the peer side by side with canary; the reason when it cannot.
pub async fn run(
    out: &Path,
    sim: &SimProcess,
    sc: &Scenarios,
    exe: &Path,
    quick: bool,
) -> PeerSection {
    let setup = {
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || install(&out)).await
    };
    let aiperf = match setup {
        Ok(Ok(a)) => a,
        Ok(Err(reason)) => return PeerSection::Skipped { reason },
        Err(e) => return PeerSection::skipped(&e.to_string()),
    };
    let mut scenarios = Vec::new();
    let mut canary_cache: HashMap<(&str, usize, usize), ToolFigures> = HashMap::new();
    for plan in plans(quick) {
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
        let peer = match aiperf_figures(&aiperf, out, sim, &plan).await {
            Ok(p) => p,
            Err(reason) => return PeerSection::Skipped { reason },
        };
        scenarios.push(Comparison {
            name: plan.name.into(),
            model: plan.model.into(),
            requests: plan.requests,
            concurrency: plan.concurrency,
            aiperf_args: plan.extra.clone(),
            truth_first_token_ms: peer.1.first_token,
            truth_first_visible_ms: peer.1.first_visible,
            truth_gap_ms: peer.1.gap,
            tools: vec![canary, peer.0],
        });
    }
    PeerSection::Ran(PeerReport {
        tool: "aiperf".into(),
        version: AIPERF_VERSION.into(),
        scenarios,
    })
}

/// aiperf's paths once installed.
struct Aiperf {
    bin: PathBuf,
    tokenizer: PathBuf,
    tmp: PathBuf,
    hf_home: PathBuf,
}

/// Builds the offline tokenizer: whitespace words, aiperf's prompt corpus as vocabulary
/// (unknown words are still one token each).
const MAKE_TOKENIZER: &str = r###"
import sys, pathlib
import aiperf.dataset.generator as g
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import PreTrainedTokenizerFast
out = sys.argv[1]
corpus = pathlib.Path(g.__file__).parent / "assets" / "shakespeare.txt"
vocab = {"[UNK]": 0, "[PAD]": 1, "[BOS]": 2, "[EOS]": 3}
for w in corpus.read_text(encoding="utf-8").split():
    vocab.setdefault(w, len(vocab))
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="##")
fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                               bos_token="[BOS]", eos_token="[EOS]", model_max_length=10**9)
fast.save_pretrained(out)
"###;

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

/// Installs aiperf and the tokenizer under `out` when absent. Blocking.
fn install(out: &Path) -> Result<Aiperf, String> {
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
    let tokenizer = out.join("aiperf-tokenizer");
    if !tokenizer.join("tokenizer.json").exists() {
        let script = out.join("aiperf-tokenizer.py");
        std::fs::write(&script, MAKE_TOKENIZER).map_err(|e| e.to_string())?;
        sh(
            Command::new(&python).arg(&script).arg(&tokenizer),
            &out.join("aiperf-tokenizer.log"),
            "building aiperf's offline tokenizer",
        )?;
    }
    let tmp = out.join("aiperf-tmp");
    let hf_home = out.join("aiperf-hf-home");
    for d in [&tmp, &hf_home] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    Ok(Aiperf {
        bin,
        tokenizer,
        tmp,
        hf_home,
    })
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
    })
}

/// One record of aiperf's `profile_export.jsonl`, the fields read.
#[derive(serde::Deserialize)]
struct Record {
    metadata: RecordMeta,
    #[serde(default)]
    metrics: HashMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct RecordMeta {
    x_request_id: Option<String>,
    request_start_ns: Option<u64>,
}

/// A metric of a record in milliseconds (aiperf writes `{value, unit}`; other units are
/// converted, unknown ones ignored).
fn metric(r: &Record, name: &str) -> Option<f64> {
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

/// Runs aiperf on `plan` and reads its records; its figures and the truth's.
async fn aiperf_figures(
    a: &Aiperf,
    out: &Path,
    sim: &SimProcess,
    plan: &Plan,
) -> Result<(ToolFigures, TruthFigures), String> {
    scenario::reset(sim).await.map_err(|e| e.to_string())?;
    // What an earlier (failed) run left in aiperf's temporary folder goes first.
    let _ = std::fs::remove_dir_all(&a.tmp);
    std::fs::create_dir_all(&a.tmp).map_err(|e| format!("{}: {e}", a.tmp.display()))?;
    let slug: String = plan
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = out.join("aiperf").join(&slug);
    let _ = std::fs::remove_dir_all(&dir);
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
    let log = out.join(format!("aiperf-{slug}.log"));
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
            "aiperf exited with {:?} (see {})",
            cost.exit_code,
            log.display()
        ));
    }
    let text = std::fs::read_to_string(dir.join("profile_export.jsonl"))
        .map_err(|e| format!("aiperf wrote no per-request records: {e}"))?;
    let records: Vec<Record> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if records.is_empty() {
        return Err(format!(
            "none of aiperf's records could be read ({} lines in {})",
            text.lines().count(),
            dir.join("profile_export.jsonl").display()
        ));
    }
    let page = scenario::truth(sim).await.map_err(|e| e.to_string())?;
    let by_id: HashMap<&str, &StreamTruth> = page
        .streams
        .iter()
        .filter_map(|s| s.request_id.as_deref().map(|id| (id, s)))
        .collect();
    let mut f = ToolFigures {
        tool: format!("aiperf {AIPERF_VERSION}"),
        cpu_seconds: cost.cpu_seconds,
        cpu_ms_per_request: cost.cpu_seconds * 1e3 / plan.requests.max(1) as f64,
        peak_rss_bytes: cost.peak_rss_bytes,
        processes: cost.processes,
        wall_seconds: cost.wall_seconds,
        ..Default::default()
    };
    let (mut ttft, mut ttfo, mut out_err, mut tok_err, mut gap_err, mut itl) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut truths = Vec::new();
    for r in &records {
        let Some(first) = metric(r, "time_to_first_token") else {
            continue;
        };
        f.ok += 1;
        let first_out = metric(r, "time_to_first_output_token").unwrap_or(first);
        ttft.push(first / 1e3);
        ttfo.push(first_out / 1e3);
        itl.extend(metric(r, "inter_token_latency").map(|v| v / 1e3));
        let (Some(id), Some(start)) = (
            r.metadata.x_request_id.as_deref(),
            r.metadata.request_start_ns,
        ) else {
            continue;
        };
        let Some(t) = by_id.get(id) else {
            continue;
        };
        f.matched += 1;
        truths.push(*t);
        let sent = start as f64 / 1e9;
        if let Some(w) = t.first_visible {
            out_err.push((sent + first_out / 1e3) - (t.received_unix + w));
        }
        if let Some(w) = t.first_token {
            tok_err.push((sent + first / 1e3) - (t.received_unix + w));
        }
        // aiperf's chunk gaps start at the blank delta; the last ones pair with the words'.
        let icl = r.metrics.get("inter_chunk_latency");
        let ms_per_unit = icl
            .and_then(|m| m.get("unit"))
            .and_then(|u| u.as_str())
            .and_then(unit_to_ms)
            .unwrap_or(f64::NAN);
        let chunks: Vec<f64> = icl
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
        let written = written_gaps(t);
        if chunks.len() >= written.len() {
            let tail = &chunks[chunks.len() - written.len()..];
            gap_err.extend(tail.iter().zip(&written).map(|(m, w)| m - w));
        }
    }
    let ms = |v: &[f64]| Dist::of(v).map(|d| d.scaled(1e3));
    f.first_token_ms = ms(&ttft);
    f.first_output_ms = ms(&ttfo);
    f.first_output_error_ms = ms_abs(&out_err);
    f.first_output_bias_ms = mean_ms(&out_err);
    f.first_token_error_ms = ms_abs(&tok_err);
    f.gap_error_ms = ms_abs(&gap_err);
    f.inter_token_ms = mean_ms(&itl);
    Ok((f, truth_figures(&truths)))
}

fn cell(d: &Option<Dist>) -> String {
    d.map(|d| format!("{:.1} / {:.1}", d.p50, d.p99))
        .unwrap_or_else(|| "-".into())
}

/// The peer's section of the Markdown report.
pub fn markdown(p: &PeerSection) -> String {
    let r = match p {
        PeerSection::Skipped { reason } => return format!("## Peer\n\nNot run: {reason}.\n"),
        PeerSection::Ran(r) => r,
    };
    let mut md = format!(
        "## Side by side with {} {}\n\nSame simulator, same scenario, same requests and concurrency; every request \
         matched with the simulator's record by its `X-Request-ID`. Figures in ms as p50 / p99. \"First output\" is \
         aiperf's time to first output token and canary's time to first visible token; its error is against the \
         write of the first visible word. CPU and memory are the whole process tree for the same number of requests.\n\n",
        r.tool, r.version
    );
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
        md += "| tool | ok (matched) | first token | first output | first output error vs visible | bias | first token error | gap error | mean inter-token | CPU | CPU / request | peak RSS (processes) |\n\
               |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for t in &s.tools {
            md += &format!(
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {:.2} s | {:.2} ms | {:.0} MB ({}) |\n",
                t.tool,
                t.ok,
                t.matched,
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
    }
    md
}
