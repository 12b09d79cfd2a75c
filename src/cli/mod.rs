//! The command line: the arguments of every command (`Cli`, `Command` and one `…Args` per
//! command), the exit codes (0 every SLO met, 1 an SLO missed or the gate failed, 2 usage or
//! config error, 3 nothing could be measured, 4 the gate could not decide), `main` with the
//! logging setup, and `dispatch`, which hands each command to its module below. `anyhow`
//! lives here, at the edge; the library below returns typed errors.
//!
//! | module | command |
//! |---|---|
//! | `validate` | `canary validate` (and `--dump-config`) |
//! | `run` | `canary run`: `run_suite`, `run_suites`, the targets' snapshots, reports |
//! | `calibrate` | `canary calibrate` |
//! | `plan` | `canary plan` |
//! | `gate` | `canary gate`: the gate's outputs and exit codes from its verdict and errors |
//! | `rules` | `canary rules` |
//! | `serve` | `canary serve` (the monitor itself is `crate::serve`) |
//! | `sim` | `canary sim` |
//! | `demo` | `canary demo`: the simulator on its own thread, the ground-truth lines |
//! | `bench` | `canary bench` (the benchmarks are `crate::bench`) |
//! | `protocols` | `canary protocols` |
//! | `shared` | what several commands share: loading suites with their diagnostics printed, warnings, unrunnable endpoints, stdout, `plural` |
//!
//! `canary probe` and `canary init` live in `crate::quickstart`, completions and the man
//! page in `shell`.

mod bench;
mod calibrate;
mod demo;
mod gate;
mod plan;
pub mod protocols;
mod rules;
pub mod run;
mod serve;
mod shared;
mod shell;
mod sim;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use run::{run_suite, SuiteRun};
pub use shared::plural;

pub use crate::exit::{
    EXIT_INCONCLUSIVE, EXIT_NOTHING_MEASURED, EXIT_OK, EXIT_SLO_MISSED, EXIT_USAGE,
};

#[derive(Parser, Debug)]
#[command(
    name = "canary",
    version,
    about = "Synthetic probes and quality canary for AI endpoints"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check suites and golden sets; print every error with file:line:column.
    Validate(ValidateArgs),
    /// Run every case of the suites once (or --runs times), print the SLI table, judge the SLOs.
    Run(RunArgs),
    /// Measure the judges of a suite: run its judged cases and print, per probe and slice,
    /// the verdicts, the judge's agreement with itself and, for cases with a human label
    /// (`expect.label`), its accuracy, error rate, false pass and false fail rates.
    Calibrate(CalibrateArgs),
    /// Print what the suites will cost before anything runs: probes, tokens and dollars per
    /// day, rotation coverage and the series each suite creates.
    Plan(PlanArgs),
    /// The pre-release gate: run the golden set against a candidate and a baseline,
    /// interleaved, and fail when the candidate misses an SLO or is worse beyond tolerance.
    /// Exit 0 pass, 1 fail, 4 inconclusive (too few runs to decide).
    Gate(GateArgs),
    /// Generate SLO rules from suites: Prometheus rules (plain or PrometheusRule), Pyrra,
    /// Sloth or OpenSLO documents.
    Rules(RulesArgs),
    /// Run the suites on their schedules as a long-running monitor: SQLite history, /metrics,
    /// the SLO state API and a status page.
    Serve(ServeArgs),
    /// Start the reference AI-endpoint simulator (ground truth at GET /truth).
    Sim(SimArgs),
    /// Benchmark measurement fidelity and cost against the simulator's ground truth (and the
    /// peers aiperf, GuideLLM and inference-perf); writes bench.json and bench.md.
    Bench(BenchArgs),
    /// Probe one endpoint now, without a suite: the answer's timeline (connect, head, first
    /// token, first visible token, stalls, completion, cadence; voice: first audible audio,
    /// underruns), with -n the percentiles. Exit 0 every run answered, 1 some failed, 3 none.
    Probe(crate::quickstart::probe::ProbeArgs),
    /// Write a commented starter suite KIND.yaml and golden/KIND.jsonl into DIR that validate
    /// and run against `canary sim` as written.
    Init(crate::quickstart::init::InitArgs),
    /// Print a shell completion script, e.g. `canary completions bash > ~/.local/share/bash-completion/completions/canary`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `canary man > canary.1 && man ./canary.1`.
    Man,
    /// List the protocols this build speaks (built-in stream descriptions with their
    /// framing and file); `--show NAME` prints a description, FILES are checked as descriptions.
    Protocols(ProtocolsArgs),
    /// Start the simulator, run the example suites against it, print the tables and verdicts.
    Demo(DemoArgs),
}

/// `canary validate` arguments.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    /// Print each suite as it resolves (environment and files interpolated), with
    /// secrets redacted.
    #[arg(long)]
    pub dump_config: bool,
}

/// `canary run` arguments.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    /// Region label of this vantage point.
    #[arg(long, env = "CANARY_REGION", default_value = "local")]
    pub region: String,
    /// Write the JSON report here (with several suites: FILE gets the suite name before its extension).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Runs of each case (overrides the suite).
    #[arg(long)]
    pub runs: Option<u32>,
    /// Case runs in flight at once (overrides the suite).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Hard deadline per case run, e.g. 10s (overrides the suite).
    #[arg(long, value_parser = parse_dur)]
    pub timeout: Option<std::time::Duration>,
    /// Do not print the table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Push the metrics to this Pushgateway (grouping key job="canary", region, suite).
    #[arg(long, env = "CANARY_PUSH_URL")]
    pub push: Option<String>,
    /// Send the metrics with Prometheus remote write to this URL (…/api/v1/write).
    #[arg(long, env = "CANARY_REMOTE_WRITE_URL")]
    pub remote_write: Option<String>,
    /// Write the metrics for node_exporter's textfile collector (atomically).
    #[arg(long)]
    pub textfile: Option<PathBuf>,
    /// Keep what could not be delivered here; the next run delivers it first.
    #[arg(long, env = "CANARY_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Export the metrics over OTLP/HTTP (protobuf) to this full URL, e.g.
    /// http://collector:4318/v1/metrics (default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or
    /// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics).
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// Export one span per case run over OTLP/HTTP to this full URL, e.g.
    /// http://collector:4318/v1/traces (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
    /// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces).
    #[arg(long, value_name = "URL")]
    pub otlp_traces: Option<String>,
    /// Exit 0 when an SLO is missed (a CronJob whose metrics carry the verdict); errors
    /// still exit 2 or 3.
    #[arg(long)]
    pub no_slo_exit: bool,
    /// Shuffle the case runs with this seed (the same seed gives the same request
    /// sequence) and make `{{seed}}` available to request templates.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Unrecorded warm-up runs of each case before the recorded ones.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    /// Write the targets' metrics snapshots (endpoints with `metrics_url`) here.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Remember the values of facts seen (freshness probes) in this file across runs, so
    /// a stale answer's old value can be named and dated.
    #[arg(long, env = "CANARY_STATE")]
    pub state: Option<PathBuf>,
    /// Probes with a rotation (`sample` / `budget`) run the subset of this tick of their
    /// schedule (default: the tick of now).
    #[arg(long)]
    pub tick: Option<u64>,
}

/// `canary calibrate` arguments.
#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    pub suite: PathBuf,
    /// Runs of each judged case.
    #[arg(long)]
    pub runs: Option<u32>,
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Keep judgments across runs in the cache beside this state file.
    #[arg(long, env = "CANARY_STATE")]
    pub state: Option<PathBuf>,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `canary plan` arguments.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    /// Region (it seeds the rotation order).
    #[arg(long, env = "CANARY_REGION", default_value = "local")]
    pub region: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `canary gate` arguments.
#[derive(clap::Args, Debug)]
pub struct GateArgs {
    pub suite: PathBuf,
    /// The candidate: one base URL for every endpoint, or NAME=URL per endpoint (repeatable).
    #[arg(long, required = true)]
    pub candidate: Vec<String>,
    /// The baseline: as --candidate; the suite's own endpoints when absent.
    #[arg(long)]
    pub baseline: Vec<String>,
    /// Runs of each case on each side.
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
    /// Seed of the interleaved order and the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Markdown summary (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// JUnit XML.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// JSON report with both sides.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// What an undecided gate exits with (default: 4).
    #[arg(long, value_enum)]
    pub inconclusive: Option<InconclusiveAs>,
}

/// `canary rules` arguments.
#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "prometheus")]
    pub format: crate::slo::rules::Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Base URL of the runbook; alerts link `<URL>#<slo>`.
    #[arg(long)]
    pub runbook_url: Option<String>,
    /// Namespace of generated Kubernetes objects.
    #[arg(long, default_value = "monitoring")]
    pub namespace: String,
}

/// `canary serve` arguments.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Suite files or folders of suites.
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// The history database (SQLite, WAL mode).
    #[arg(long, default_value = "canary.db")]
    pub db: PathBuf,
    #[arg(long, env = "CANARY_REGION", default_value = "local")]
    pub region: String,
    /// Spread each probe's start over this much time (a stable offset per probe and region).
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    pub splay: std::time::Duration,
    /// Case runs in flight at once, across every probe.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// On SIGTERM, how long runs in flight may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    pub grace: std::time::Duration,
    /// How long full case records are kept (SLO events are kept for the longest window + 1 day).
    #[arg(long, default_value = "1d", value_parser = parse_dur)]
    pub records_for: std::time::Duration,
    /// How often retention and compaction run.
    #[arg(long, default_value = "10m", value_parser = parse_dur)]
    pub compact_every: std::time::Duration,
    /// Enable POST /api/v1/gate (it sends the suite's requests, credentials included, to
    /// the URLs in the request body: only for trusted callers).
    #[arg(long)]
    pub allow_gate: bool,
    #[command(flatten)]
    pub fleet: crate::serve::FleetArgs,
    /// Export the metrics over OTLP/HTTP to this full URL after every probe run (default:
    /// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics).
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// Export each probe run's spans over OTLP/HTTP to this full URL (default:
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces).
    #[arg(long, value_name = "URL")]
    pub otlp_traces: Option<String>,
}

/// `canary sim` arguments.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Seed of every random draw (latency, schema-invalid, fallback).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulator configuration (YAML or JSON).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Behaviour preset (to play a candidate against a baseline).
    #[arg(long, value_enum)]
    pub profile: Option<crate::sim::Profile>,
}

/// `canary bench` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Where the report, the generated suites and the tools' outputs go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Streams in flight for the fidelity measurements (comma-separated).
    #[arg(long, default_value = "1,100,500,1000")]
    pub levels: String,
    /// Fewer runs everywhere: a smoke run, not reference figures.
    #[arg(long)]
    pub quick: bool,
    /// Peers to run side by side: `all`, `none`, or a comma-separated list of `aiperf`,
    /// `guidellm`, `inference-perf` (each installed into OUT/<peer>-venv from PyPI when
    /// absent).
    #[arg(long, default_value = "all")]
    pub peer: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only these sections (comma-separated): fidelity, omission, cost, audio, peer.
    #[arg(long)]
    pub only: Option<String>,
}

/// `canary protocols` arguments.
#[derive(clap::Args, Debug)]
pub struct ProtocolsArgs {
    /// Print the description file of this built-in protocol.
    #[arg(long)]
    pub show: Option<String>,
    /// Description files to check (each error with file:line and the fix).
    pub files: Vec<PathBuf>,
}

/// `canary demo` arguments.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Run the suites of this folder instead of the built-in examples (which the demo
    /// writes to OUT/examples).
    #[arg(long)]
    pub probes: Option<PathBuf>,
    /// Where the JSON reports go.
    #[arg(long, default_value = "target/canary-demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// How `canary gate` treats an undecided verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InconclusiveAs {
    Pass,
    Fail,
}

fn parse_dur(s: &str) -> Result<std::time::Duration, String> {
    crate::suite::units::parse_duration(s)
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // One socket per stream in flight: the soft open-file limit goes up to the hard one.
    crate::procfs::raise_nofile_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = run::worker_threads(&cli.command, std::env::var("CANARY_THREADS").ok()) {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_NOTHING_MEASURED);
        }
    };
    let result = rt.block_on(dispatch(cli.command));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", crate::secret::redact(&format!("{e:#}")));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one command; its exit code, or an error `main` prints and exits 2 with.
async fn dispatch(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Validate(a) => Ok(validate::exec(&a)),
        Command::Run(a) => run::exec(a).await,
        Command::Calibrate(a) => calibrate::exec(a).await,
        Command::Plan(a) => plan::exec(&a),
        Command::Gate(a) => gate::exec(a).await,
        Command::Rules(a) => rules::exec(a),
        Command::Serve(a) => serve::exec(a).await,
        Command::Sim(a) => sim::exec(a).await,
        Command::Bench(a) => bench::exec(a).await,
        Command::Probe(a) => Ok(crate::quickstart::probe::run(a).await),
        Command::Init(a) => Ok(crate::quickstart::init::run(&a)),
        Command::Completions { shell } => Ok(shell::run_completions(shell)),
        Command::Man => Ok(shell::run_man()),
        Command::Protocols(a) => protocols::exec(&a),
        Command::Demo(a) => demo::exec(a).await,
    }
}
