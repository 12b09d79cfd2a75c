//! The command line: parses arguments, runs a command, maps the result to an exit code
//! (0 every SLO met, 1 an SLO missed or the gate failed, 2 usage or config error, 3 nothing
//! could be measured, 4 the gate could not decide).
//! `anyhow` lives here, at the edge; the library below returns typed errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::measure::sli::Sli;
use crate::observation::Observation;
use crate::schedule::executor::{self, RunOptions};
use crate::sink::export::{self, Outputs};
use crate::sink::{report::Report, table};
use crate::slo::{self, aggregate};
use crate::suite::{self, Diagnostic, ProcessEnv, Suite};

pub const EXIT_OK: u8 = 0;
pub const EXIT_SLO_MISSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOTHING_MEASURED: u8 = 3;

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
    Validate {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// Print each suite as it resolves (environment and files interpolated), with
        /// secrets redacted.
        #[arg(long)]
        dump_config: bool,
    },
    /// Run every case of the suites once (or --runs times), print the SLI table, judge the SLOs.
    Run {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// Region label of this vantage point.
        #[arg(long, env = "CANARY_REGION", default_value = "local")]
        region: String,
        /// Write the JSON report here (with several suites: FILE gets the suite name before its extension).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Runs of each case (overrides the suite).
        #[arg(long)]
        runs: Option<u32>,
        /// Case runs in flight at once (overrides the suite).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Hard deadline per case run, e.g. 10s (overrides the suite).
        #[arg(long, value_parser = parse_dur)]
        timeout: Option<std::time::Duration>,
        /// Do not print the table.
        #[arg(long, short)]
        quiet: bool,
        /// Push the metrics to this Pushgateway (grouping key job="canary", region, suite).
        #[arg(long, env = "CANARY_PUSH_URL")]
        push: Option<String>,
        /// Send the metrics with Prometheus remote write to this URL (…/api/v1/write).
        #[arg(long, env = "CANARY_REMOTE_WRITE_URL")]
        remote_write: Option<String>,
        /// Write the metrics for node_exporter's textfile collector (atomically).
        #[arg(long)]
        textfile: Option<PathBuf>,
        /// Keep what could not be delivered here; the next run delivers it first.
        #[arg(long, env = "CANARY_SPOOL")]
        spool: Option<PathBuf>,
        /// Export the metrics over OTLP/HTTP (protobuf) to this full URL, e.g.
        /// http://collector:4318/v1/metrics (default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or
        /// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics).
        #[arg(long, value_name = "URL")]
        otlp: Option<String>,
        /// Export one span per case run over OTLP/HTTP to this full URL, e.g.
        /// http://collector:4318/v1/traces (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
        /// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces).
        #[arg(long, value_name = "URL")]
        otlp_traces: Option<String>,
        /// Exit 0 when an SLO is missed (a CronJob whose metrics carry the verdict); errors
        /// still exit 2 or 3.
        #[arg(long)]
        no_slo_exit: bool,
        /// Shuffle the case runs with this seed (the same seed gives the same request
        /// sequence) and make `{{seed}}` available to request templates.
        #[arg(long)]
        seed: Option<u64>,
        /// Unrecorded warm-up runs of each case before the recorded ones.
        #[arg(long, default_value_t = 0)]
        warmup: u32,
        /// Write the targets' metrics snapshots (endpoints with `metrics_url`) here.
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// Remember the values of facts seen (freshness probes) in this file across runs, so
        /// a stale answer's old value can be named and dated.
        #[arg(long, env = "CANARY_STATE")]
        state: Option<PathBuf>,
        /// Probes with a rotation (`sample` / `budget`) run the subset of this tick of their
        /// schedule (default: the tick of now).
        #[arg(long)]
        tick: Option<u64>,
    },
    /// Measure the judges of a suite: run its judged cases and print, per probe and slice,
    /// the verdicts, the judge's agreement with itself and, for cases with a human label
    /// (`expect.label`), its accuracy, error rate, false pass and false fail rates.
    Calibrate {
        suite: PathBuf,
        /// Runs of each judged case.
        #[arg(long)]
        runs: Option<u32>,
        #[arg(long)]
        concurrency: Option<usize>,
        /// Keep judgments across runs in the cache beside this state file.
        #[arg(long, env = "CANARY_STATE")]
        state: Option<PathBuf>,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print what the suites will cost before anything runs: probes, tokens and dollars per
    /// day, rotation coverage and the series each suite creates.
    Plan {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        /// Region (it seeds the rotation order).
        #[arg(long, env = "CANARY_REGION", default_value = "local")]
        region: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The pre-release gate: run the golden set against a candidate and a baseline,
    /// interleaved, and fail when the candidate misses an SLO or is worse beyond tolerance.
    /// Exit 0 pass, 1 fail, 4 inconclusive (too few runs to decide).
    Gate {
        suite: PathBuf,
        /// The candidate: one base URL for every endpoint, or NAME=URL per endpoint (repeatable).
        #[arg(long, required = true)]
        candidate: Vec<String>,
        /// The baseline: as --candidate; the suite's own endpoints when absent.
        #[arg(long)]
        baseline: Vec<String>,
        /// Runs of each case on each side.
        #[arg(long, default_value_t = 10)]
        runs: u32,
        /// Seed of the interleaved order and the bootstrap.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Markdown summary (e.g. $GITHUB_STEP_SUMMARY).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// JUnit XML.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// JSON report with both sides.
        #[arg(long)]
        report: Option<PathBuf>,
        /// What an undecided gate exits with (default: 4).
        #[arg(long, value_enum)]
        inconclusive: Option<InconclusiveAs>,
    },
    /// Generate SLO rules from suites: Prometheus rules (plain or PrometheusRule), Pyrra,
    /// Sloth or OpenSLO documents.
    Rules {
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "prometheus")]
        format: crate::slo::rules::Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Base URL of the runbook; alerts link `<URL>#<slo>`.
        #[arg(long)]
        runbook_url: Option<String>,
        /// Namespace of generated Kubernetes objects.
        #[arg(long, default_value = "monitoring")]
        namespace: String,
    },
    /// Run the suites on their schedules as a long-running monitor: SQLite history, /metrics,
    /// the SLO state API and a status page.
    Serve {
        /// Suite files or folders of suites.
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
        /// The history database (SQLite, WAL mode).
        #[arg(long, default_value = "canary.db")]
        db: PathBuf,
        #[arg(long, env = "CANARY_REGION", default_value = "local")]
        region: String,
        /// Spread each probe's start over this much time (a stable offset per probe and region).
        #[arg(long, default_value = "30s", value_parser = parse_dur)]
        splay: std::time::Duration,
        /// Case runs in flight at once, across every probe.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// On SIGTERM, how long runs in flight may take to finish.
        #[arg(long, default_value = "30s", value_parser = parse_dur)]
        grace: std::time::Duration,
        /// How long full case records are kept (SLO events are kept for the longest window + 1 day).
        #[arg(long, default_value = "1d", value_parser = parse_dur)]
        records_for: std::time::Duration,
        /// How often retention and compaction run.
        #[arg(long, default_value = "10m", value_parser = parse_dur)]
        compact_every: std::time::Duration,
        /// Enable POST /api/v1/gate (it sends the suite's requests, credentials included, to
        /// the URLs in the request body: only for trusted callers).
        #[arg(long)]
        allow_gate: bool,
        #[command(flatten)]
        fleet: crate::serve::FleetArgs,
        /// Export the metrics over OTLP/HTTP to this full URL after every probe run (default:
        /// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics).
        #[arg(long, value_name = "URL")]
        otlp: Option<String>,
        /// Export each probe run's spans over OTLP/HTTP to this full URL (default:
        /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces).
        #[arg(long, value_name = "URL")]
        otlp_traces: Option<String>,
    },
    /// Start the reference AI-endpoint simulator (ground truth at GET /truth).
    Sim {
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Seed of every random draw (latency, schema-invalid, fallback).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulator configuration (YAML or JSON).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Behaviour preset (to play a candidate against a baseline).
        #[arg(long, value_enum)]
        profile: Option<crate::sim::Profile>,
    },
    /// Benchmark measurement fidelity and cost against the simulator's ground truth (and the
    /// peer `aiperf`); writes bench.json and bench.md.
    Bench {
        /// Where the report, the generated suites and the tools' outputs go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Streams in flight for the fidelity measurements (comma-separated).
        #[arg(long, default_value = "1,100,500,1000")]
        levels: String,
        /// Fewer runs everywhere: a smoke run, not reference figures.
        #[arg(long)]
        quick: bool,
        /// `aiperf`: run NVIDIA's aiperf side by side (installed into OUT/aiperf-venv from
        /// PyPI when absent); `none`: skip it.
        #[arg(long, default_value = "aiperf", value_parser = ["aiperf", "none"])]
        peer: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Only these sections (comma-separated): fidelity, omission, cost, audio, peer.
        #[arg(long)]
        only: Option<String>,
    },
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
    Protocols {
        /// Print the description file of this built-in protocol.
        #[arg(long)]
        show: Option<String>,
        /// Description files to check (each error with file:line and the fix).
        files: Vec<PathBuf>,
    },
    /// Start the simulator, run the example suites against it, print the tables and verdicts.
    Demo {
        /// Run the suites of this folder instead of the built-in examples (which the demo
        /// writes to OUT/examples).
        #[arg(long)]
        probes: Option<PathBuf>,
        /// Where the JSON reports go.
        #[arg(long, default_value = "target/canary-demo")]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// How `canary gate` treats an undecided verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InconclusiveAs {
    Pass,
    Fail,
}

pub const EXIT_INCONCLUSIVE: u8 = 4;

fn parse_dur(s: &str) -> Result<std::time::Duration, String> {
    suite::units::parse_duration(s)
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

async fn dispatch(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Validate {
            suites,
            dump_config,
        } => {
            let code = validate(&suites);
            if dump_config && code == EXIT_OK {
                let files = suite::suite_files(&suites).unwrap_or_default();
                for f in &files {
                    match suite::validate::resolved(f, &ProcessEnv::default()) {
                        Ok(v) => {
                            println!("# {} (resolved; secrets redacted)", f.display());
                            print!("{}", crate::sink::yaml_out::to_yaml(&v));
                        }
                        Err(d) => {
                            for x in d {
                                eprintln!("{}", crate::secret::redact(&x.to_string()));
                            }
                            return Ok(EXIT_USAGE);
                        }
                    }
                }
            }
            Ok(code)
        }
        Command::Run {
            suites,
            region,
            report,
            runs,
            concurrency,
            timeout,
            quiet,
            push,
            remote_write,
            textfile,
            spool,
            otlp,
            otlp_traces,
            no_slo_exit,
            seed,
            warmup,
            artifacts,
            state,
            tick,
        } => {
            let mut otlp = match crate::sink::otlp::Config::resolve(
                otlp.as_deref(),
                otlp_traces.as_deref(),
                &|k| std::env::var(k).ok(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {}", crate::secret::redact(&e));
                    return Ok(EXIT_USAGE);
                }
            };
            otlp.state = state.clone();
            if let Some(t) = textfile
                .as_deref()
                .filter(|t| t.extension().is_some_and(|x| x != "prom"))
            {
                eprintln!(
                    "error: --textfile {}: node_exporter's textfile collector reads only *.prom files; name it e.g. {}",
                    t.display(),
                    t.with_extension("prom").display()
                );
                return Ok(EXIT_USAGE);
            }
            let loaded = match load(&suites, &ProcessEnv::default()) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let cache = state
                .as_deref()
                .map(crate::schedule::judged::cache_path_for);
            let ctx = match crate::schedule::RunContext::new(&region)
                .with_facts(state.as_deref())
                .and_then(|c| c.with_judgments(cache.as_deref()))
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            // SIGTERM (a CronJob's pod being stopped) or Ctrl-C: stop starting cases, keep
            // what was measured, and deliver it like any run.
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                eprintln!("stopping: delivering what was measured so far");
                let _ = stop_tx.send(true);
            });
            let opts = RunOptions {
                runs,
                concurrency,
                timeout,
                seed,
                warmup,
                artifacts,
                tick,
                stop: Some(stop_rx),
                progress: crate::quickstart::progress::Progress::for_terminal(quiet),
                ctx: ctx.clone(),
            };
            let outputs = Outputs {
                report,
                push,
                remote_write,
                textfile,
                spool,
                otlp,
            };
            let code = run_suites(&loaded, &region, &outputs, &opts, quiet).await?;
            if let Err(e) = ctx.facts.save() {
                eprintln!("warning: the fact history could not be saved: {e}");
            }
            if let Err(e) = ctx.judgments.save() {
                eprintln!("warning: the judgment cache could not be saved: {e}");
            }
            Ok(if no_slo_exit && code == EXIT_SLO_MISSED {
                EXIT_OK
            } else {
                code
            })
        }
        Command::Gate {
            suite,
            candidate,
            baseline,
            runs,
            seed,
            concurrency,
            markdown,
            junit,
            report,
            inconclusive,
        } => {
            let loaded = match load(std::slice::from_ref(&suite), &ProcessEnv::default()) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let [s] = loaded.as_slice() else {
                eprintln!(
                    "error: {}: the gate judges one suite, and this holds {}; name the suite file",
                    suite.display(),
                    plural(loaded.len(), "suite")
                );
                return Ok(EXIT_USAGE);
            };
            let blocked = unrunnable(s);
            if !blocked.is_empty() {
                for b in &blocked {
                    eprintln!("{b}");
                }
                return Ok(EXIT_USAGE);
            }
            let opts = crate::gate::GateOptions {
                candidate: crate::gate::Targets::parse(&candidate)
                    .map_err(|e| anyhow::anyhow!("--candidate: {e}"))?,
                baseline: crate::gate::Targets::parse(&baseline)
                    .map_err(|e| anyhow::anyhow!("--baseline: {e}"))?,
                runs,
                seed,
                concurrency,
                permits: None,
                ctx: crate::schedule::RunContext::default(),
            };
            let outcome = match crate::gate::run(s, &opts).await {
                Ok(o) => o,
                Err(e) if e.starts_with("nothing could be measured") => {
                    eprintln!("{}", crate::secret::redact(&e));
                    return Ok(EXIT_NOTHING_MEASURED);
                }
                Err(e) => return Err(anyhow::anyhow!(e)),
            };
            let md = crate::gate::output::markdown(&outcome);
            print_out(&format!("{md}\n"))?;
            for (path, text) in [
                (markdown, md.clone()),
                (junit, crate::gate::output::junit(&outcome)),
                (report, crate::gate::output::json(&outcome)),
            ] {
                if let Some(p) = path {
                    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(&p, text)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                }
            }
            Ok(match (outcome.verdict, inconclusive) {
                (crate::gate::Verdict::Pass, _) => EXIT_OK,
                (crate::gate::Verdict::Fail, _) => EXIT_SLO_MISSED,
                (crate::gate::Verdict::Inconclusive, Some(InconclusiveAs::Pass)) => EXIT_OK,
                (crate::gate::Verdict::Inconclusive, Some(InconclusiveAs::Fail)) => EXIT_SLO_MISSED,
                (crate::gate::Verdict::Inconclusive, None) => EXIT_INCONCLUSIVE,
            })
        }
        Command::Rules {
            suites,
            format,
            out,
            runbook_url,
            namespace,
        } => {
            let loaded = match load(&suites, &ProcessEnv::default()) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let mut opts = crate::slo::rules::RulesOptions {
                namespace,
                ..Default::default()
            };
            match runbook_url {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    opts.runbook = Some(u)
                }
                Some(u) => {
                    eprintln!(
                        "error: --runbook-url {u}: an alert links it from wherever it is shown, so it must be an absolute http(s) URL, e.g. https://git.example.com/platform/canary/blob/main/docs/slo.md"
                    );
                    return Ok(EXIT_USAGE);
                }
                None => eprintln!(
                    "note: the alerts carry no runbook_url; pass --runbook-url URL (where your runbook page is served) to link one"
                ),
            }
            loaded.iter().for_each(print_warnings);
            let text = crate::slo::rules::generate(&loaded, format, &opts);
            match out {
                Some(p) => std::fs::write(&p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print_out(&text)?,
            }
            Ok(EXIT_OK)
        }
        Command::Calibrate {
            suite,
            runs,
            concurrency,
            state,
            json,
        } => {
            let loaded = match load(std::slice::from_ref(&suite), &ProcessEnv::default()) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let cache = state
                .as_deref()
                .map(crate::schedule::judged::cache_path_for);
            let ctx = match crate::schedule::RunContext::default().with_judgments(cache.as_deref())
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            let mut all_rows = Vec::new();
            let mut judged = false;
            for s in &loaded {
                let only = crate::sink::calibrate::judged_only(s);
                if only.probes.is_empty() {
                    continue;
                }
                let opts = RunOptions {
                    runs,
                    concurrency,
                    ctx: ctx.clone(),
                    ..Default::default()
                };
                let obs = crate::schedule::executor::execute(&only, &opts).await;
                judged |= crate::sink::calibrate::judged_any(&obs);
                let stats = crate::slo::aggregate::aggregate(&obs);
                all_rows.extend(crate::sink::calibrate::rows(&stats));
            }
            if let Err(e) = ctx.judgments.save() {
                eprintln!("warning: the judgment cache could not be saved: {e}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all_rows)?);
            } else {
                print!(
                    "{}",
                    crate::sink::calibrate::table(&all_rows, ctx.judgments.calls())
                );
            }
            if !judged {
                eprintln!("error: nothing was judged: the suite has no case with a judge (`judge` on a probe, or `expect.judge`), or no judged case got an answer");
                return Ok(EXIT_NOTHING_MEASURED);
            }
            Ok(EXIT_OK)
        }
        Command::Plan {
            suites,
            // The plan does not depend on the region (a rotation's order does, per tick).
            region: _,
            json,
        } => {
            let loaded = match load(&suites, &ProcessEnv::default()) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let plans: Vec<crate::schedule::plan::SuitePlan> =
                loaded.iter().map(crate::schedule::plan::plan).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                for p in &plans {
                    print!("{}", crate::schedule::plan::render(p));
                }
            }
            let over = plans.iter().any(|p| p.over_budget());
            Ok(if over { EXIT_USAGE } else { EXIT_OK })
        }
        Command::Serve {
            suites,
            listen,
            db,
            region,
            splay,
            concurrency,
            grace,
            records_for,
            compact_every,
            allow_gate,
            fleet,
            otlp,
            otlp_traces,
        } => {
            let otlp = match crate::sink::otlp::Config::resolve(
                otlp.as_deref(),
                otlp_traces.as_deref(),
                &|k| std::env::var(k).ok(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {}", crate::secret::redact(&e));
                    return Ok(EXIT_USAGE);
                }
            };
            crate::serve::serve(crate::serve::ServeConfig {
                otlp,
                allow_gate,
                fleet,
                paths: suites,
                listen,
                db,
                region,
                splay,
                concurrency,
                grace,
                records_for,
                compact_every,
            })
            .await?;
            Ok(EXIT_OK)
        }
        Command::Sim {
            listen,
            seed,
            config,
            profile,
        } => sim(listen, seed, config.as_deref(), profile).await,
        Command::Demo { probes, out, seed } => demo(probes, &out, seed).await,
        Command::Probe(a) => Ok(crate::quickstart::probe::run(a).await),
        Command::Init(a) => Ok(crate::quickstart::init::run(&a)),
        Command::Completions { shell } => Ok(crate::quickstart::shell::run_completions(shell)),
        Command::Man => Ok(crate::quickstart::shell::run_man()),
        Command::Protocols { show, files } => crate::protocols_cmd::run(show.as_deref(), &files),
        Command::Bench {
            out,
            levels,
            quick,
            peer,
            seed,
            only,
        } => {
            let only = match only {
                Some(s) => crate::bench::parse_sections(&s).map_err(anyhow::Error::msg)?,
                None => Vec::new(),
            };
            let opts = crate::bench::Options {
                only,
                out,
                levels: crate::bench::parse_levels(&levels).map_err(anyhow::Error::msg)?,
                quick,
                peer: peer == "aiperf",
                exe: std::env::current_exe().context("cannot find the canary binary")?,
                seed,
            };
            let report = crate::bench::run(&opts).await?;
            print_out(&crate::bench::markdown(&report))?;
            println!(
                "report: {} and {}",
                opts.out.join("bench.json").display(),
                opts.out.join("bench.md").display()
            );
            Ok(EXIT_OK)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

fn print_diags(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{}", crate::secret::redact(&d.to_string()));
    }
    let _ = writeln!(
        err,
        "{} error{}",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}

fn load(paths: &[PathBuf], env: &ProcessEnv) -> Result<Vec<Suite>, u8> {
    match suite::load_all(paths, env) {
        Ok(s) => Ok(s),
        Err(d) => {
            print_diags(&d);
            Err(EXIT_USAGE)
        }
    }
}

fn validate(paths: &[PathBuf]) -> u8 {
    match suite::load_all(paths, &ProcessEnv::default()) {
        Ok(suites) => {
            for s in &suites {
                let cases: usize = s.probes.iter().map(|p| p.cases.len()).sum();
                println!(
                    "ok: {} (suite {}: {}, {}, {}, {})",
                    s.file.display(),
                    s.name,
                    plural(s.endpoints.len(), "endpoint"),
                    plural(s.probes.len(), "probe"),
                    plural(cases, "case"),
                    plural(s.slos.len(), "SLO")
                );
                print_warnings(s);
                for e in s.endpoints.values() {
                    if !e.protocol.implemented() {
                        println!(
                            "note: endpoint `{}` uses protocol `{}`, which this build cannot run yet",
                            e.name,
                            e.protocol.as_str()
                        );
                    }
                }
            }
            EXIT_OK
        }
        Err(d) => {
            print_diags(&d);
            EXIT_USAGE
        }
    }
}

/// `1 endpoint`, `2 endpoints`.
pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// A suite's warnings (things that load but probably do not do what was meant), on stderr.
fn print_warnings(s: &Suite) {
    let mut err = std::io::stderr().lock();
    for w in &s.warnings {
        let _ = writeln!(err, "warning: {}", crate::secret::redact(&w.to_string()));
    }
}

/// Endpoints whose protocol has no driver in this build (probed ones only).
fn unrunnable(s: &Suite) -> Vec<String> {
    s.probes
        .iter()
        .filter_map(|p| s.endpoints.get(&p.endpoint))
        .filter(|e| !e.protocol.implemented())
        .map(|e| {
            format!(
                "{}: endpoint `{}` uses protocol `{}`, which this build cannot run yet",
                s.file.display(),
                e.name,
                e.protocol.as_str()
            )
        })
        .collect()
}

/// The outcome of running one suite.
pub struct SuiteRun {
    pub suite: String,
    pub started: SystemTime,
    pub finished: SystemTime,
    pub observations: Vec<Observation>,
    pub verdicts: Vec<slo::SloVerdict>,
    pub report: Report,
    pub table: String,
}

/// Runs one suite and builds its report and table.
pub async fn run_suite(s: &Suite, region: &str, opts: &RunOptions) -> SuiteRun {
    // Warm-ups come before the "before" snapshot: the target's counters then cover exactly
    // the recorded runs.
    executor::warm_up(s, opts).await;
    let mut snaps = snapshot_targets(s, None).await;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let observations = executor::execute(s, opts).await;
    snaps = snapshot_targets(s, Some(snaps)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let finished = SystemTime::now();
    let stats = aggregate::aggregate(&observations);
    let verdicts = slo::evaluate(s, &observations);
    let report = Report::build(
        &s.name,
        region,
        &s.labels,
        started,
        finished,
        &stats,
        &verdicts,
        &observations,
    );
    let mut report = report;
    report.seed = opts.seed;
    report.warmup = opts.warmup;
    report.resources = crate::sink::report::Resources::now();
    report.target_metrics = target_reports(s, &snaps, &observations, opts.artifacts.as_deref());
    let mut table = table::render(&s.name, region, elapsed, &stats, &verdicts);
    table.push_str(&crate::sink::table::job_lines(&observations));
    table.push_str(&crate::sink::table::token_lines(&stats));
    table.push_str(&crate::sink::table::judge_lines(&stats));
    for t in &report.target_metrics {
        table.push_str(&crate::sink::table::target_lines(t));
    }
    SuiteRun {
        suite: s.name.clone(),
        started,
        finished,
        observations,
        verdicts,
        report,
        table,
    }
}

/// Fetches each `metrics_url` once (before the run, or after it when `before` is given).
async fn snapshot_targets(
    s: &Suite,
    before: Option<BTreeMap<String, crate::sink::target::Snapshots>>,
) -> BTreeMap<String, crate::sink::target::Snapshots> {
    let mut out = before.unwrap_or_default();
    let after = !out.is_empty();
    for e in s.endpoints.values() {
        let Some(m) = &e.metrics else { continue };
        let snap = out.entry(e.name.clone()).or_default();
        let page = crate::sink::target::fetch(
            &m.url,
            "text/plain; version=0.0.4, application/openmetrics-text;q=0.5",
        )
        .await;
        match (page, after) {
            (Ok(p), false) => snap.before = Some(p),
            (Ok(p), true) => snap.after = Some(p),
            (Err(err), when) => snap.errors.push(format!(
                "{} the run: {}",
                if when { "after" } else { "before" },
                crate::secret::redact(&err)
            )),
        }
    }
    out
}

/// The target-metrics sections of the report; snapshots are written to `artifacts`.
fn target_reports(
    s: &Suite,
    snaps: &BTreeMap<String, crate::sink::target::Snapshots>,
    observations: &[crate::observation::Observation],
    artifacts: Option<&Path>,
) -> Vec<crate::sink::target::TargetReport> {
    let mut out = Vec::new();
    for (name, snap) in snaps {
        let Some(e) = s.endpoints.get(name) else {
            continue;
        };
        let Some(m) = &e.metrics else { continue };
        let mut files = Vec::new();
        let mut errors = snap.errors.clone();
        if let Some(dir) = artifacts {
            for (when, page) in [("before", &snap.before), ("after", &snap.after)] {
                let Some(page) = page else { continue };
                let path = dir.join(format!("{}.{}.{when}.prom", s.name, e.name));
                let written =
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, page));
                match written {
                    Ok(()) => files.push(path.display().to_string()),
                    Err(err) => errors.push(format!("cannot write {}: {err}", path.display())),
                }
            }
        }
        out.push(crate::sink::target::TargetReport {
            endpoint: e.name.clone(),
            url: crate::secret::redact(&m.url),
            artifacts: files,
            errors,
            comparisons: crate::sink::target::compare(e, snap, observations),
        });
    }
    out
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn report_path(base: &Path, suite: &str, many: bool) -> PathBuf {
    if !many {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report");
    let ext = base.extension().and_then(|s| s.to_str()).unwrap_or("json");
    base.with_file_name(format!("{stem}.{suite}.{ext}"))
}

fn write_report(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, report.to_json())
        .with_context(|| format!("cannot write report {}", path.display()))
}

async fn run_suites(
    suites: &[Suite],
    region: &str,
    outputs: &Outputs,
    opts: &RunOptions,
    quiet: bool,
) -> anyhow::Result<u8> {
    let blocked: Vec<String> = suites.iter().flat_map(unrunnable).collect();
    if !blocked.is_empty() {
        for b in &blocked {
            eprintln!("{b}");
        }
        return Ok(EXIT_USAGE);
    }
    let mut any_measured = false;
    let mut any_missed = false;
    let mut any_lost = false;
    for s in suites {
        let r = run_suite(s, region, opts).await;
        if !quiet {
            println!("{}", crate::secret::redact(&r.table));
        } else {
            // Quiet still says why the exit code is 1.
            for l in table::missed_lines(&r.suite, &r.verdicts) {
                eprintln!("{}", crate::secret::redact(&l));
            }
        }
        if outputs.wants_metrics() {
            // One textfile per suite when there are several (node_exporter reads them all).
            let mut outs = outputs.clone();
            if let Some(t) = &outputs.textfile {
                let named = report_path(t, &r.suite, suites.len() > 1);
                // node_exporter reads `*.prom` only.
                outs.textfile = Some(if t.extension().is_none() {
                    named.with_extension("prom")
                } else {
                    named
                });
            }
            let d = export::export(s, region, &r.observations, r.started, r.finished, &outs).await;
            for w in &d.warnings {
                eprintln!("warning: {}", crate::secret::redact(w));
            }
            for l in &d.lost {
                eprintln!("error: {}", crate::secret::redact(l));
            }
            any_lost |= !d.lost.is_empty();
        }
        if let Some(base) = outputs.report.as_deref() {
            let path = report_path(base, &r.suite, suites.len() > 1);
            write_report(&path, &r.report)?;
            if !quiet {
                println!("report: {}", path.display());
            }
        }
        any_measured |= r.observations.iter().any(|o| !o.outcome.is_error());
        any_missed |= r.verdicts.iter().any(|v| !v.met);
        for o in r
            .observations
            .iter()
            .filter(|o| o.outcome.is_error())
            .take(5)
        {
            if let Some(e) = &o.error {
                eprintln!(
                    "{} / {} / {} run {}: {}: {}",
                    o.endpoint, o.probe, o.case_id, o.run, e.class, e.message
                );
            }
        }
    }
    Ok(if !any_measured {
        eprintln!("nothing could be measured: every case run failed");
        EXIT_NOTHING_MEASURED
    } else if any_lost {
        eprintln!("results could not be delivered or spooled (see above)");
        EXIT_NOTHING_MEASURED
    } else if any_missed {
        EXIT_SLO_MISSED
    } else {
        EXIT_OK
    })
}

fn load_sim_config(path: Option<&Path>, seed: u64) -> anyhow::Result<crate::sim::SimConfig> {
    let mut cfg = match path {
        None => crate::sim::SimConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let tree = suite::yaml::parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{}:{}: invalid YAML: {}",
                    p.display(),
                    e.pos.line,
                    e.pos.col,
                    e.message
                )
            })?;
            serde_path_to_error::deserialize(tree.to_json())
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", p.display(), e.path(), e.inner()))?
        }
    };
    cfg.seed = seed;
    Ok(cfg)
}

async fn sim(
    listen: SocketAddr,
    seed: u64,
    config: Option<&Path>,
    profile: Option<crate::sim::Profile>,
) -> anyhow::Result<u8> {
    let mut cfg = load_sim_config(config, seed)?;
    if let Some(p) = profile {
        cfg.profile = p;
    }
    let (listener, addr) = crate::sim::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("canary sim listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let state = crate::sim::SimState::new(cfg);
    tokio::select! {
        r = crate::sim::serve(listener, state) => r.context("simulator failed")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(EXIT_OK)
}

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

async fn demo(probes: Option<PathBuf>, out: &Path, seed: u64) -> anyhow::Result<u8> {
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
