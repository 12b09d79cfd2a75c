//! The executor: runs every case of a suite `runs` times with at most `concurrency` case
//! runs in flight, each under its hard deadline, and returns one observation per case run.
//! A case that fails never stops the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::drivers;
use crate::observation::Observation;
use crate::suite::Suite;

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Runs of each case (overrides the suite and probe `runs`).
    pub runs: Option<u32>,
    /// Case runs in flight at once (overrides `defaults.concurrency`).
    pub concurrency: Option<usize>,
    /// Overrides every case's deadline.
    pub timeout: Option<Duration>,
    /// Seeded order: the case runs are shuffled with this seed (the same seed gives the same
    /// request sequence), and `{{seed}}` is available to request templates.
    pub seed: Option<u64>,
    /// Unrecorded runs of each case before the recorded ones (warm caches, loaded models).
    pub warmup: u32,
    /// Where the targets' metrics snapshots are written (`metrics_url` endpoints).
    pub artifacts: Option<std::path::PathBuf>,
    /// The tick of the probes' schedules whose rotation subset runs (default: now's).
    pub tick: Option<u64>,
    /// Set to `true` to stop: no new case starts, runs in flight are abandoned, and what was
    /// measured so far is returned (SIGTERM during `canary run`).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Counts finished case runs for the progress line of `canary run` on a terminal.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// The region, the fact history, the judgment cache and the backoff table of this run.
    pub ctx: super::RunContext,
}

/// Told how a run advances (the progress line of `canary run` on a terminal).
pub trait ProgressSink: Send + Sync + std::fmt::Debug {
    /// A suite starts with `total` case runs.
    fn begin(&self, suite: &str, total: usize);
    /// A case run finished (`error`: its outcome is an error).
    fn finished(&self, error: bool);
    /// The suite's runs are over.
    fn end(&self);
}

/// Resolves once `stop` says stop (never, when there is no `stop`).
async fn stopped(stop: &Option<tokio::sync::watch::Receiver<bool>>) {
    let Some(rx) = stop else {
        return std::future::pending().await;
    };
    let mut rx = rx.clone();
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// One unit of work: a case of a probe, the n-th time.
struct Job {
    probe_index: usize,
    case_index: usize,
    run: u32,
}

/// Runs the suite and returns observations in plan order (probe, case, run).
pub async fn execute(suite: &Suite, opts: &RunOptions) -> Vec<Observation> {
    let concurrency = opts
        .concurrency
        .unwrap_or(suite.defaults.concurrency)
        .max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let all: Vec<usize> = (0..suite.probes.len()).collect();
    execute_probes(Arc::new(suite.clone()), &all, opts, permits).await
}

/// Runs every case `opts.warmup` times without recording anything (warm caches, loaded
/// models), round by round, under the suite's concurrency limit.
pub async fn warm_up(suite: &Suite, opts: &RunOptions) {
    let concurrency = opts
        .concurrency
        .unwrap_or(suite.defaults.concurrency)
        .max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let suite = Arc::new(suite.clone());
    for round in 1..=opts.warmup {
        let mut set = JoinSet::new();
        for pi in 0..suite.probes.len() {
            // A probe with a rotation warms up only this tick's subset.
            let cases = tick_subset(&suite, &suite.probes[pi], opts)
                .unwrap_or_else(|| (0..suite.probes[pi].cases.len()).collect());
            for ci in cases {
                let suite = Arc::clone(&suite);
                let permits = Arc::clone(&permits);
                let (timeout, seed) = (opts.timeout, opts.seed);
                let region = opts.ctx.region.clone();
                set.spawn(async move {
                    let _permit = permits.acquire_owned().await.ok();
                    let probe = suite.probes.get(pi)?;
                    let case = probe.cases.get(ci)?;
                    let endpoint = suite.endpoints.get(&probe.endpoint)?;
                    let vars = drivers::RunVars { run: round, seed, stop_early: probe.stop_after_first_visible, region };
                    let t = drivers::run_case(
                        endpoint,
                        case,
                        vars,
                        timeout.unwrap_or(probe.timeout),
                    )
                    .await;
                    tracing::debug!(probe = %probe.name, case = %case.id, round, error = ?t.error, "warm-up run finished");
                    Some(())
                });
            }
        }
        loop {
            tokio::select! {
                biased;
                _ = stopped(&opts.stop) => {
                    set.abort_all();
                    return;
                }
                j = set.join_next() => if j.is_none() { break },
            }
        }
    }
}

/// Runs the given probes of a suite under a shared concurrency limit (`serve` shares one
/// semaphore across every probe it schedules).
pub async fn execute_probes(
    suite: Arc<Suite>,
    probes: &[usize],
    opts: &RunOptions,
    permits: Arc<Semaphore>,
) -> Vec<Observation> {
    // Round-robin over runs so that warm runs of one case are spread across the invocation.
    let max_runs = probes
        .iter()
        .filter_map(|i| suite.probes.get(*i))
        .map(|p| opts.runs.unwrap_or(p.runs))
        .max()
        .unwrap_or(1);
    // A probe with a rotation runs only this tick's subset of its cases.
    let subsets: Vec<Option<Vec<usize>>> = suite
        .probes
        .iter()
        .map(|p| tick_subset(&suite, p, opts))
        .collect();
    let mut jobs = Vec::new();
    for run in 1..=max_runs {
        for &pi in probes {
            let Some(probe) = suite.probes.get(pi) else {
                continue;
            };
            if run > opts.runs.unwrap_or(probe.runs) {
                continue;
            }
            let all: Vec<usize> = (0..probe.cases.len()).collect();
            let cases = subsets.get(pi).cloned().flatten().unwrap_or(all);
            for ci in cases {
                jobs.push(Job {
                    probe_index: pi,
                    case_index: ci,
                    run,
                });
            }
        }
    }
    if let Some(seed) = opts.seed {
        crate::rng::shuffle(&mut jobs, seed);
    }
    let seed = opts.seed;
    if let Some(p) = &opts.progress {
        p.begin(&suite.name, jobs.len());
    }
    let mut set = JoinSet::new();
    for (order, job) in jobs.into_iter().enumerate() {
        let suite = Arc::clone(&suite);
        let timeout = opts.timeout;
        let progress = opts.progress.clone();
        let ctx = opts.ctx.clone();
        // The slot is taken here, in order, so runs start in the (seeded) order of the list.
        // The semaphore is never closed; if it were, run without a permit rather than lose the case.
        let permit = tokio::select! {
            biased;
            _ = stopped(&opts.stop) => break,
            p = Arc::clone(&permits).acquire_owned() => p.ok(),
        };
        set.spawn(async move {
            let _permit = permit;
            let probe = &suite.probes[job.probe_index];
            let case = &probe.cases[job.case_index];
            // Validation guarantees the endpoint exists; `get` keeps that a logic error, not a panic.
            let endpoint = suite.endpoints.get(&probe.endpoint)?;
            let deadline = timeout.unwrap_or(probe.timeout);
            let vars = drivers::RunVars {
                run: job.run,
                seed,
                stop_early: probe.stop_after_first_visible,
                region: ctx.region.clone(),
            };
            let obs = run_one(endpoint, probe, case, vars, deadline, &ctx).await;
            if let Some(p) = &progress {
                p.finished(obs.outcome.is_error());
            }
            tracing::debug!(
                probe = %probe.name,
                case = %case.id,
                run = job.run,
                outcome = obs.outcome.as_str(),
                "case run finished"
            );
            Some((job.probe_index, job.case_index, job.run, order, obs))
        });
    }
    let mut results = Vec::new();
    loop {
        let joined = tokio::select! {
            biased;
            _ = stopped(&opts.stop) => {
                // Runs still in flight are abandoned; every run that finished is kept
                // (an aborted task that had already finished still yields its result).
                set.abort_all();
                while let Some(j) = set.join_next().await {
                    if let Ok(Some(r)) = j {
                        results.push(r);
                    }
                }
                tracing::warn!(finished = results.len(), "stopping: runs in flight abandoned");
                break;
            }
            j = set.join_next() => j,
        };
        let Some(joined) = joined else { break };
        match joined {
            Ok(Some(r)) => results.push(r),
            Ok(None) => tracing::error!("a probe names an endpoint that does not exist"),
            Err(e) if e.is_cancelled() => {}
            Err(e) => tracing::error!("a case run task failed: {e}"),
        }
    }
    if let Some(p) = &opts.progress {
        p.end();
    }
    results.sort_by_key(|(p, c, r, order, _)| (*p, *c, *r, *order));
    results.into_iter().map(|(.., obs)| obs).collect()
}

/// The cases of a probe with a rotation that run at this tick (`None`: every case).
pub fn tick_subset(
    suite: &Suite,
    probe: &crate::suite::Probe,
    opts: &RunOptions,
) -> Option<Vec<usize>> {
    probe.sampling.as_ref()?;
    let ticks = probe.schedule.as_ref()?.ticks_per_day().ok()?;
    let endpoint = suite.endpoints.get(&probe.endpoint)?;
    let rate = super::rotation::cases_per_tick(probe, endpoint, ticks)?;
    let order = super::rotation::order(probe, opts.seed.unwrap_or(0), &opts.ctx.region);
    let tick = opts.tick.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        super::rotation::tick_at(now, ticks)
    });
    Some(super::rotation::select(&order, rate, tick))
}

/// One recorded case run: waits as an endpoint that rate-limited us asked (Retry-After),
/// runs the case with its quality signals, remembers a new Retry-After, measures and judges.
async fn run_one(
    endpoint: &crate::suite::Endpoint,
    probe: &crate::suite::Probe,
    case: &crate::suite::Case,
    vars: drivers::RunVars,
    deadline: Duration,
    ctx: &super::RunContext,
) -> Observation {
    if let Some(wait) = ctx.backoff.wait_for(&endpoint.url) {
        tokio::time::sleep(wait).await;
    }
    // One trace per case run: its span covers the quality signals' reads and writes, the
    // judge calls (child spans) and the probe request, which carries the trace as
    // `traceparent`.
    let scope =
        crate::timeline::trace::CaseScope::new(crate::timeline::trace::TraceContext::new_root());
    let start = std::time::SystemTime::now();
    let case_scope = &crate::timeline::trace::CASE;
    if !case.turns.is_empty() {
        let (mut obs, timeline) = case_scope
            .scope(
                scope.clone(),
                super::judged::run_conversation(endpoint, probe, case, vars, deadline, ctx),
            )
            .await;
        ctx.backoff.note(&endpoint.url, &timeline);
        // A conversation's span: its turns' requests and judge calls as children; the
        // per-turn moments are in the case record's `turns`.
        obs.trace = Some(Box::new(crate::timeline::trace::CaseTrace {
            ctx: scope.ctx,
            start,
            end: std::time::SystemTime::now(),
            propagated: endpoint.traceparent,
            events: Vec::new(),
            children: scope.children(),
            response_model: None,
        }));
        return obs;
    }
    let run = vars.run;
    let (timeline, quality) = case_scope
        .scope(
            scope.clone(),
            super::quality::run_case(endpoint, probe, case, vars, deadline, ctx),
        )
        .await;
    ctx.backoff.note(&endpoint.url, &timeline);
    let obs = Observation::from_timeline(endpoint, &probe.name, case, run, probe.stall, &timeline)
        .with_quality(quality, case)
        .account_tokens(endpoint, case);
    let mut obs = case_scope
        .scope(
            scope.clone(),
            super::judged::judge_observation(obs, endpoint, case, &timeline, ctx),
        )
        .await;
    let end = std::time::SystemTime::now();
    let first_audio = obs
        .latency
        .get(&crate::measure::sli::Sli::TimeToFirstAudio)
        .copied();
    obs.trace = Some(Box::new(crate::timeline::trace::CaseTrace {
        ctx: scope.ctx,
        start: start.min(timeline.started_at),
        end,
        propagated: endpoint.traceparent,
        events: crate::timeline::trace::span_events(&timeline, probe.stall, first_audio),
        children: scope.children(),
        response_model: timeline
            .doc
            .as_ref()
            .and_then(|d| d.get("model"))
            .and_then(|m| m.as_str())
            .map(|m| m.chars().filter(|c| !c.is_control()).take(128).collect()),
    }));
    obs
}

/// One planned case run of an explicit plan (the gate interleaves candidate and baseline).
#[derive(Clone)]
pub struct Planned {
    pub suite: Arc<Suite>,
    pub probe: usize,
    pub case: usize,
    pub run: u32,
    /// Which side of a comparison the run belongs to.
    pub side: usize,
    /// `{{seed}}` of request templates.
    pub seed: Option<u64>,
}

/// Runs a plan in its order (runs start in that order, up to the concurrency limit) and
/// returns `(side, observation)` in plan order.
pub async fn execute_plan(
    plan: Vec<Planned>,
    permits: Arc<Semaphore>,
    ctx: &super::RunContext,
) -> Vec<(usize, Observation)> {
    let mut set = JoinSet::new();
    for (order, job) in plan.into_iter().enumerate() {
        let ctx = ctx.clone();
        // Slots are taken in plan order, so runs start in that order.
        let permit = Arc::clone(&permits).acquire_owned().await.ok();
        set.spawn(async move {
            let _permit = permit;
            let probe = job.suite.probes.get(job.probe)?;
            let case = probe.cases.get(job.case)?;
            let endpoint = job.suite.endpoints.get(&probe.endpoint)?;
            let vars = drivers::RunVars {
                run: job.run,
                seed: job.seed,
                stop_early: probe.stop_after_first_visible,
                region: ctx.region.clone(),
            };
            let obs = run_one(endpoint, probe, case, vars, probe.timeout, &ctx).await;
            Some((order, job.side, obs))
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Some(r)) => out.push(r),
            Ok(None) => tracing::error!("a planned run names a probe or case that does not exist"),
            Err(e) => tracing::error!("a case run task failed: {e}"),
        }
    }
    out.sort_by_key(|(order, ..)| *order);
    out.into_iter().map(|(_, side, obs)| (side, obs)).collect()
}
