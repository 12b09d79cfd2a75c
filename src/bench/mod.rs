//! `canary bench`: measurement fidelity and cost, proven against ground truth and peers.
//!
//! The harness starts the simulator as a process of its own (`canary sim`) and measures:
//!
//! - **fidelity under load**: streams at 1, 100, 500 and 1,000 in flight, run in this
//!   process by the same drivers and measures as `canary run`; each run's
//!   `time_to_first_visible_token`, `inter_chunk_gap` and `time_to_first_audio` is compared
//!   with the simulator's write times for the same request ([`fidelity`]);
//! - **coordinated omission**: an open-loop schedule against a fixed number of slots, latency
//!   from the scheduled and from the actual send time;
//! - **cost**: `canary run` as a child process (1,000 streamed probes, a 100-case run, start
//!   to first request), its CPU and peak memory from the kernel's accounting ([`procs`]),
//!   and the floor under the streamed run's CPU: the same streams read by a client that
//!   parses nothing ([`floor`]);
//! - **audio**: decoding throughput per core ([`audio`]);
//! - **peers**: NVIDIA's `aiperf`, vLLM's GuideLLM and inference-perf on the same scenarios,
//!   each installed in a private virtualenv when absent ([`peer`]).
//!
//! It writes `bench.json` and `bench.md` to its output folder.

pub mod audio;
pub mod fidelity;
pub mod floor;
pub mod load;
pub mod peer;
pub mod procs;
pub mod scenario;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use stats::Dist;

/// What can stop the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot run a process: {0}")]
    Spawn(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the benchmark's suite did not load: {0}")]
    Suite(String),
    #[error("the simulator's ground truth could not be read: {0}")]
    Truth(String),
    #[error("audio: {0}")]
    Audio(String),
    #[error("the report could not be serialised: {0}")]
    Report(String),
    #[error(
        "{level} streams in flight need about {need} open files in this process and as many in the \
         simulator, and RLIMIT_NOFILE allows {soft} (hard limit {hard}): raise the hard limit \
         (`ulimit -Hn`, systemd's `LimitNOFILE=`, the container's `nofile` ulimit) or pick lower \
         --levels"
    )]
    FileLimit {
        level: usize,
        need: u64,
        soft: u64,
        hard: u64,
    },
}

/// Open files a level needs besides one socket per stream (the runtime, the simulator's
/// control connection, reports, the libraries' own files).
const FD_MARGIN: u64 = 256;

/// Refuses a level this process could not hold open (after raising the soft limit to the
/// hard one): the run would fail half-way with `connect` errors instead.
fn check_file_limit(levels: &[usize]) -> Result<(), BenchError> {
    crate::procfs::raise_nofile_limit();
    let Some((soft, hard)) = crate::procfs::nofile_limit() else {
        return Ok(());
    };
    match levels.iter().max() {
        Some(&level) if level as u64 + FD_MARGIN > soft => Err(BenchError::FileLimit {
            level,
            need: level as u64 + FD_MARGIN,
            soft,
            hard,
        }),
        _ => Ok(()),
    }
}

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `bench.json`, `bench.md`, the generated suites and the tools' outputs go.
    pub out: PathBuf,
    /// Streams in flight for the fidelity measurements.
    pub levels: Vec<usize>,
    /// Fewer runs everywhere (a smoke run; the figures are not the reference ones).
    pub quick: bool,
    /// The peers to run side by side (each installed when absent); none when empty.
    pub peers: Vec<peer::Peer>,
    /// The canary binary (the simulator and the `canary run` cost measurements).
    pub exe: PathBuf,
    pub seed: u64,
    /// Only these sections (all when empty): see [`SECTIONS`].
    pub only: Vec<String>,
}

/// The report's sections, for `--only`.
pub const SECTIONS: &[&str] = &["fidelity", "omission", "cost", "audio", "peer"];

impl Options {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// Sections of `--only`.
pub fn parse_sections(s: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
    match v.iter().find(|x| !SECTIONS.contains(&x.as_str())) {
        Some(bad) => Err(format!(
            "--only: unknown section {bad:?}; valid: {}",
            SECTIONS.join(", ")
        )),
        None => Ok(v),
    }
}

/// The benchmark's report (`bench.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub canary_version: &'static str,
    pub started_at: String,
    pub command: String,
    pub quick: bool,
    pub machine: Machine,
    pub fidelity: Vec<Fidelity>,
    pub coordinated_omission: Vec<Omission>,
    pub cost: CostReport,
    pub audio: Vec<audio::Throughput>,
    pub peer: peer::PeerSection,
    pub targets: Vec<Target>,
}

/// Where the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    fn read() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu,
            kernel,
        }
    }
}

/// Error of one SLI at one load level: |measured - truth| in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    pub sli: &'static str,
    /// The simulator scenario (model or voice protocol).
    pub scenario: String,
    /// Streams in flight.
    pub streams: usize,
    /// Runs made, runs that succeeded, and runs matched with a truth record.
    pub runs: usize,
    pub ok: usize,
    pub matched: usize,
    /// |error| in milliseconds (one value per run, per gap for `inter_chunk_gap`).
    pub error_ms: Option<Dist>,
    /// Mean signed error in milliseconds (positive: canary stamped later than the write).
    pub bias_ms: Option<f64>,
    /// Runs whose gaps could not be paired with the written ones.
    pub unpaired: usize,
    pub wall_seconds: f64,
    /// CPU of this process (canary's drivers and measures) and of the simulator meanwhile.
    pub canary_cpu_seconds: f64,
    pub sim_cpu_seconds: f64,
    /// Peak resident memory of this process and of the simulator over the level (MB), where
    /// the kernel lets the peak be reset before it.
    pub canary_peak_rss_mb: Option<f64>,
    pub sim_peak_rss_mb: Option<f64>,
}

/// Latency from the scheduled and from the actual send time under one offered load.
#[derive(Debug, Clone, Serialize)]
pub struct Omission {
    pub sli: &'static str,
    pub offered_per_second: f64,
    pub in_flight: usize,
    pub requests: usize,
    pub ok: usize,
    /// Milliseconds, from the actual send time (what a closed-loop prober reports).
    pub from_actual_ms: Option<Dist>,
    /// Milliseconds, from the time the request was due (what a user arriving then felt).
    pub from_scheduled_ms: Option<Dist>,
    /// How late requests were sent (ms).
    pub send_lag_ms: Option<Dist>,
}

/// What `canary run` costs.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CostReport {
    /// 1,000 streamed probes of 40 tokens, 100 in flight.
    pub streamed: Option<RunCost>,
    /// The same streams read and discarded by a client that parses nothing ([`floor`]): what
    /// the kernel and the runtime take, under any client's CPU per probe.
    pub floor: Option<RunCost>,
    /// A 100-case run.
    pub hundred_cases: Option<RunCost>,
    /// Process start to the first request at the server (ms).
    pub start_to_first_request_ms: Option<Dist>,
}

/// One measured `canary run`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunCost {
    pub requests: usize,
    pub in_flight: usize,
    pub ok: usize,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub cpu_ms_per_probe: f64,
    pub peak_rss_bytes: u64,
}

/// A target the issue sets and whether it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: Option<f64>,
    pub limit: f64,
    pub unit: &'static str,
    pub met: bool,
}

/// Megabytes for a table cell (`-` when unknown).
fn mb(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} MB"))
        .unwrap_or_else(|| "-".into())
}

fn write(path: PathBuf, text: &str) -> Result<(), BenchError> {
    std::fs::write(&path, text).map_err(|source| BenchError::Write { path, source })
}

/// Runs the whole benchmark and writes its report; returns the report.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    std::fs::create_dir_all(&opts.out).map_err(|source| BenchError::Write {
        path: opts.out.clone(),
        source,
    })?;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if opts.wants("fidelity") {
        // Before the simulator starts: it inherits the raised limit.
        check_file_limit(&opts.levels)?;
    }
    let sim = procs::SimProcess::start(&opts.exe, opts.seed)?;
    let sc = scenario::Scenarios::write(&opts.out, &sim.base)?;
    let sim = Arc::new(sim);

    let mut fidelity = Vec::new();
    let levels: &[usize] = if opts.wants("fidelity") {
        &opts.levels
    } else {
        &[]
    };
    for &n in levels {
        eprintln!("fidelity: {n} streams in flight");
        fidelity.extend(scenario::chat_level(&sc, &sim, "sim-plain", n, opts.quick).await?);
        if n <= 100 {
            fidelity.extend(scenario::chat_level(&sc, &sim, "sim-reasoning", n, opts.quick).await?);
        }
        if n <= scenario::REALTIME_MAX_STREAMS {
            fidelity.push(
                scenario::voice_level(&sc, &sim, scenario::Voice::Realtime, n, opts.quick).await?,
            );
        }
        if n <= scenario::OPUS_MAX_STREAMS {
            fidelity.push(
                scenario::voice_level(&sc, &sim, scenario::Voice::Opus, n, opts.quick).await?,
            );
        }
    }
    let omission = if opts.wants("omission") {
        eprintln!("coordinated omission");
        scenario::omission(&sc, opts.quick).await?
    } else {
        Vec::new()
    };
    let cost = if opts.wants("cost") {
        eprintln!("cost of canary run");
        scenario::cost(&sc, &sim, &opts.exe, opts.quick).await?
    } else {
        CostReport::default()
    };
    let audio = if opts.wants("audio") {
        eprintln!("audio decoding throughput");
        let (secs, cpu) = if opts.quick { (5, 0.2) } else { (60, 3.0) };
        tokio::task::spawn_blocking(move || audio::throughput(secs, cpu))
            .await
            .map_err(|e| BenchError::Audio(e.to_string()))??
    } else {
        Vec::new()
    };
    let peer = if !opts.wants("peer") {
        peer::PeerSection::skipped("not selected (--only)")
    } else if !opts.peers.is_empty() {
        peer::run(&opts.out, &sim, &sc, &opts.exe, opts.quick, &opts.peers).await
    } else {
        peer::PeerSection::skipped("not asked for (--peer none)")
    };
    let targets = targets(&fidelity, &cost);
    let report = Report {
        canary_version: env!("CARGO_PKG_VERSION"),
        started_at,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick: opts.quick,
        machine: Machine::read(),
        fidelity,
        coordinated_omission: omission,
        cost,
        audio,
        peer,
        targets,
    };
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| BenchError::Report(e.to_string()))?;
    write(opts.out.join("bench.json"), &json)?;
    write(opts.out.join("bench.md"), &markdown(&report))?;
    Ok(report)
}

fn target(name: String, value: Option<f64>, limit: f64, unit: &'static str) -> Target {
    Target {
        met: value.is_some_and(|v| v <= limit),
        name,
        value,
        limit,
        unit,
    }
}

/// The targets, judged on the measured figures.
fn targets(fidelity: &[Fidelity], cost: &CostReport) -> Vec<Target> {
    let mut out = Vec::new();
    for f in fidelity {
        let limit = match f.streams {
            1 => 1.0,
            1000 => 5.0,
            _ => continue,
        };
        if f.scenario == "sim-reasoning" || f.scenario == "ws-opus" {
            continue;
        }
        out.push(target(
            format!(
                "p99 error of {} ({}) at {} stream(s)",
                f.sli, f.scenario, f.streams
            ),
            f.error_ms.map(|d| d.p99),
            limit,
            "ms",
        ));
    }
    out.push(target(
        "CPU per streamed probe (1,000 probes, 40 tokens, 100 in flight)".into(),
        cost.streamed.as_ref().map(|c| c.cpu_ms_per_probe),
        0.3,
        "ms",
    ));
    out.push(target(
        "peak RSS of a 100-case run".into(),
        cost.hundred_cases
            .as_ref()
            .map(|c| c.peak_rss_bytes as f64 / 1e6),
        30.0,
        "MB",
    ));
    out.push(target(
        "process start to first request (median)".into(),
        cost.start_to_first_request_ms.map(|d| d.p50),
        20.0,
        "ms",
    ));
    out
}

fn dist_cells(d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!("{:.3} | {:.3} | {:.3}", d.p50, d.p99, d.max),
        None => "- | - | -".into(),
    }
}

/// The Markdown version of the report.
pub fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# canary bench\n\n`{}` (canary {}, {}{}), {} cores ({}), Linux {}.\n\n",
        r.command,
        r.canary_version,
        r.started_at,
        if r.quick {
            ", quick: not reference figures"
        } else {
            ""
        },
        r.machine.cores,
        r.machine.cpu,
        r.machine.kernel
    );
    md += "## Targets\n\n| target | measured | limit | met |\n|---|---:|---:|:---:|\n";
    for t in &r.targets {
        md += &format!(
            "| {} | {} | {} {} | {} |\n",
            t.name,
            t.value
                .map(|v| format!("{v:.3} {}", t.unit))
                .unwrap_or_else(|| "-".into()),
            t.limit,
            t.unit,
            if t.met { "yes" } else { "**no**" }
        );
    }
    md += "\n## Fidelity under load\n\n|measured - truth| in ms: canary's stamp of the bytes against the simulator's write, on one clock. \
           CPU and peak RSS are canary's (this process) and the simulator's over the level.\n\n\
           | SLI | scenario | streams | runs (ok / matched) | p50 | p99 | max | bias | canary CPU | sim CPU | canary RSS | sim RSS | wall |\n\
           |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for f in &r.fidelity {
        md += &format!(
            "| {} | {} | {} | {} ({} / {}){} | {} | {} | {:.2} s | {:.2} s | {} | {} | {:.1} s |\n",
            f.sli,
            f.scenario,
            f.streams,
            f.runs,
            f.ok,
            f.matched,
            if f.unpaired > 0 {
                format!(", {} unpaired", f.unpaired)
            } else {
                String::new()
            },
            dist_cells(&f.error_ms),
            f.bias_ms
                .map(|b| format!("{b:+.3}"))
                .unwrap_or_else(|| "-".into()),
            f.canary_cpu_seconds,
            f.sim_cpu_seconds,
            mb(f.canary_peak_rss_mb),
            mb(f.sim_peak_rss_mb),
            f.wall_seconds
        );
    }
    md += "\n## Coordinated omission\n\nOpen-loop schedule, a fixed number of slots: latency (ms) from the actual send \
           (what a closed-loop tool reports) and from the time the request was due.\n\n\
           | SLI | offered/s | slots | requests (ok) | actual p50 | actual p99 | scheduled p50 | scheduled p99 | send lag p99 | send lag max |\n\
           |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for o in &r.coordinated_omission {
        let f = |d: &Option<Dist>, p99: bool| {
            d.map(|d| format!("{:.1}", if p99 { d.p99 } else { d.p50 }))
                .unwrap_or_else(|| "-".into())
        };
        md += &format!(
            "| {} | {:.0} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
            o.sli,
            o.offered_per_second,
            o.in_flight,
            o.requests,
            o.ok,
            f(&o.from_actual_ms, false),
            f(&o.from_actual_ms, true),
            f(&o.from_scheduled_ms, false),
            f(&o.from_scheduled_ms, true),
            f(&o.send_lag_ms, true),
            o.send_lag_ms
                .map(|d| format!("{:.1}", d.max))
                .unwrap_or_else(|| "-".into()),
        );
    }
    md += "\n## Cost of `canary run`\n\n| run | requests | in flight | ok | wall | CPU | CPU per probe | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, c) in [
        ("streamed, 40 tokens each", &r.cost.streamed),
        (
            "floor: the same streams read and discarded (no parsing)",
            &r.cost.floor,
        ),
        ("100 cases", &r.cost.hundred_cases),
    ] {
        if let Some(c) = c {
            let rss = match c.peak_rss_bytes {
                0 => "-".to_string(),
                b => format!("{:.1} MB", b as f64 / 1e6),
            };
            md += &format!(
                "| {name} | {} | {} | {} | {:.2} s | {:.2} s | {:.3} ms | {rss} |\n",
                c.requests, c.in_flight, c.ok, c.wall_seconds, c.cpu_seconds, c.cpu_ms_per_probe,
            );
        }
    }
    if let (Some(s), Some(f)) = (&r.cost.streamed, &r.cost.floor) {
        md += &format!(
            "\nOf the streamed run's {:.3} ms per probe, {:.3} ms is the floor (the kernel and the runtime, which no client's parsing goes below) and {:.3} ms canary's own work.\n",
            s.cpu_ms_per_probe,
            f.cpu_ms_per_probe,
            s.cpu_ms_per_probe - f.cpu_ms_per_probe
        );
    }
    if let Some(d) = r.cost.start_to_first_request_ms {
        md += &format!(
            "\nProcess start to the first request at the server: median {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} starts.\n",
            d.p50, d.p99, d.max, d.n
        );
    }
    md += "\n## Audio decoding throughput (one core)\n\n";
    md += &audio::markdown(&r.audio);
    md += "\n";
    md += &peer::markdown(&r.peer);
    md
}

/// Seconds of CPU of a process so far (0 when unknown).
fn cpu_of(pid: u32) -> f64 {
    procs::process_cpu(pid).unwrap_or(0.0)
}

/// Levels of `--levels`.
pub fn parse_levels(s: &str) -> Result<Vec<usize>, String> {
    let v: Result<Vec<usize>, _> = s.split(',').map(|x| x.trim().parse::<usize>()).collect();
    match v {
        Ok(v) if !v.is_empty() && v.iter().all(|n| (1..=10_000).contains(n)) => Ok(v),
        _ => Err(format!(
            "--levels wants comma-separated stream counts from 1 to 10000 (got {s:?})"
        )),
    }
}

/// A deadline that no healthy benchmark run reaches.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_and_reject_nonsense() {
        assert_eq!(parse_sections("cost,peer").unwrap(), vec!["cost", "peer"]);
        assert!(parse_sections("cost,speed")
            .unwrap_err()
            .contains("fidelity"));
    }

    #[test]
    fn levels_parse_and_reject_nonsense() {
        assert_eq!(parse_levels("1,100, 500").unwrap(), vec![1, 100, 500]);
        assert!(parse_levels("").is_err());
        assert!(parse_levels("0").is_err());
        assert!(parse_levels("1,x").is_err());
    }

    #[test]
    fn targets_hold_only_under_their_limits() {
        let f = |streams, p99| Fidelity {
            sli: "time_to_first_visible_token",
            scenario: "sim-plain".into(),
            streams,
            runs: 1,
            ok: 1,
            matched: 1,
            error_ms: Some(Dist {
                n: 1,
                p50: p99,
                p99,
                max: p99,
                mean: p99,
            }),
            bias_ms: None,
            unpaired: 0,
            wall_seconds: 0.0,
            canary_cpu_seconds: 0.0,
            sim_cpu_seconds: 0.0,
            canary_peak_rss_mb: None,
            sim_peak_rss_mb: None,
        };
        let t = targets(
            &[f(1, 0.9), f(1000, 6.0), f(100, 50.0)],
            &CostReport::default(),
        );
        assert_eq!(t.len(), 5);
        assert!(t[0].met);
        assert!(!t[1].met);
        // Costs not measured are not met.
        assert!(t[2..].iter().all(|t| !t.met && t.value.is_none()));
    }
}
