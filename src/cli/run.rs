//! `canary run`: the flags checked, the suites loaded, the fact history and judgment cache
//! configured, SIGTERM turned into "stop starting cases"; then `run_suites` runs each suite
//! (`run_suite`: warm-up, the targets' "before" snapshots, the recorded runs, the "after"
//! snapshots, aggregation, SLO verdicts, the report and the table), prints it, exports the
//! metrics, writes the JSON reports, and picks the exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::Context;

use crate::observation::Observation;
use crate::schedule::executor::{self, RunOptions};
use crate::sink::export::{self, Outputs};
use crate::sink::{report::Report, table};
use crate::slo::{self, aggregate};
use crate::suite::{ProcessEnv, Suite};

use super::shared::{load, unrunnable};
use super::{RunArgs, EXIT_NOTHING_MEASURED, EXIT_OK, EXIT_SLO_MISSED, EXIT_USAGE};

/// Worker threads of the async runtime: `CANARY_THREADS` when set to a positive number;
/// otherwise one for `canary run`, tokio's default (one per core) for everything else.
///
/// A run's work is waiting on sockets: one worker serves its streams with no thread waking
/// another (a futex and an eventfd write per hand-over between two workers), which took CPU
/// per streamed probe from 0.73-0.84 ms to 0.60-0.68 ms (docs/performance.md). Arrival stamps
/// come from the kernel, so a read made later by the single worker is still stamped when the
/// bytes arrived. The server, simulator, benchmark and gate keep a worker per core.
pub(super) fn worker_threads(cmd: &super::Command, env: Option<String>) -> Option<usize> {
    if let Some(n) = env.and_then(|v| v.trim().parse::<usize>().ok()) {
        return (n > 0).then_some(n);
    }
    matches!(cmd, super::Command::Run(_)).then_some(1)
}

/// Runs `canary run`; returns the exit code.
pub(super) async fn exec(a: RunArgs) -> anyhow::Result<u8> {
    let RunArgs {
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
    } = a;
    let mut otlp =
        match crate::sink::otlp::Config::resolve(otlp.as_deref(), otlp_traces.as_deref(), &|k| {
            std::env::var(k).ok()
        }) {
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

pub(super) fn write_report(path: &Path, report: &Report) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_run_uses_one_worker_unless_canary_threads_says_otherwise() {
        let run = super::super::Cli::try_parse_from(["canary", "run", "suite.yaml"]).unwrap();
        let sim = super::super::Cli::try_parse_from(["canary", "sim"]).unwrap();
        assert_eq!(worker_threads(&run.command, None), Some(1));
        assert_eq!(worker_threads(&sim.command, None), None);
        assert_eq!(worker_threads(&run.command, Some("4".into())), Some(4));
        assert_eq!(worker_threads(&sim.command, Some(" 3 ".into())), Some(3));
        // Zero or garbage: tokio's default, not a runtime that cannot start.
        assert_eq!(worker_threads(&run.command, Some("0".into())), None);
        assert_eq!(worker_threads(&run.command, Some("many".into())), Some(1));
    }
}
