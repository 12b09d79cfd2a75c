//! `canary serve`: the independent monitor. Probes run on their cron schedules, every
//! observation goes to the SQLite history, and an HTTP API serves `/metrics`, the SLO state
//! (`/api/v1/slo`), the last runs, and a status page — without trusting any vendor's status
//! page. SIGTERM/SIGINT drain in-flight runs within a grace period; SIGHUP reloads the suites
//! (an invalid config keeps the old one). For a fleet: `auth` guards the API with a bearer
//! token, `shard` splits the probes across replicas, `notify` pushes breach changes to
//! webhook receivers.

pub mod api;
pub mod auth;
pub mod history;
pub mod notify;
pub mod page;
pub mod scheduler;
pub mod shard;
pub mod slo_state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Semaphore};

use crate::observation::Observation;
use crate::schedule::executor::{self, RunOptions};
use crate::sink::metrics::MetricsModel;
use crate::sink::report::Report;
use crate::slo;
use crate::suite::{self, Diagnostic, ProcessEnv, Suite};
use history::{History, HistoryError, RunRow, SloEvent};
use scheduler::{Clock, LoopStats};

/// The default schedule of a probe that declares none.
pub const DEFAULT_SCHEDULE: &str = "*/5 * * * *";

/// Settings of `canary serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub paths: Vec<PathBuf>,
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub region: String,
    pub splay: Duration,
    pub concurrency: usize,
    pub grace: Duration,
    /// How long full case records are kept (SLO events are kept for the longest window + 1 day).
    pub records_for: Duration,
    pub compact_every: Duration,
    /// Enables `POST /api/v1/gate`, which sends the suite's requests (credentials included) to
    /// the URLs in the request body: only for a monitor reachable by trusted callers.
    pub allow_gate: bool,
    /// Token, shards and notifications.
    pub fleet: FleetArgs,
    /// OTLP export after every probe run (`--otlp`, `--otlp-traces`, `OTEL_EXPORTER_OTLP_*`).
    pub otlp: crate::sink::otlp::Config,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::suite::units::parse_duration(s)
}

/// The options of `serve` for a fleet: the API's token, shards across replicas, breach
/// notifications (flattened into the `serve` command line).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FleetArgs {
    /// File holding the API token (else CANARY_TOKEN). Costly routes (POST /api/v1/gate)
    /// need `Authorization: Bearer TOKEN`; without a token they open only on loopback.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The read-only routes (/, /metrics, /api/v1/*) need the token too; /healthz and
    /// /readyz stay open for the kubelet.
    #[arg(long)]
    pub private: bool,
    /// Run only shard I of N of the probes (a stable hash of SUITE/PROBE); `auto/N` takes I
    /// from the hostname's ordinal, as a StatefulSet names its pods.
    #[arg(long, env = "CANARY_SHARD", value_name = "I/N")]
    pub shard: Option<String>,
    /// POST Alertmanager webhook payloads (version 4) here when an SLO turns breached or
    /// clears (repeatable).
    #[arg(long, value_name = "URL")]
    pub notify_alertmanager: Vec<String>,
    /// POST canary's JSON document here when an SLO turns breached or clears (repeatable).
    #[arg(long, value_name = "URL")]
    pub notify_webhook: Vec<String>,
    /// How often the SLOs are evaluated for notifications and undelivered ones retried.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub notify_every: Duration,
    /// Where undelivered notifications wait (default: DB.spool beside the database).
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// This monitor's address as receivers should link it (default http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,
}

/// What the monitor knows about one probe.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ProbeState {
    pub suite: String,
    pub probe: String,
    pub endpoint: String,
    pub schedule: String,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_runs: u64,
    pub last_errors: u64,
    pub last_outcomes: BTreeMap<String, u64>,
    pub total_runs: u64,
    pub skipped_overruns: u64,
    pub running: bool,
}

/// Shared state of a running monitor.
pub struct ServeState {
    pub region: String,
    pub suites: RwLock<Arc<Vec<Suite>>>,
    pub history: Arc<History>,
    /// One model for every suite (rebuilt on reload: counters restart, as after a restart).
    pub metrics: Mutex<MetricsModel>,
    pub probes: Mutex<BTreeMap<(String, String), ProbeState>>,
    pub loop_stats: Mutex<BTreeMap<(String, String), Arc<LoopStats>>>,
    pub permits: Arc<Semaphore>,
    pub ready: AtomicBool,
    pub started_at: SystemTime,
    pub allow_gate: bool,
    /// One gate at a time.
    pub gate_lock: tokio::sync::Mutex<()>,
    /// Who may call the API.
    pub access: Arc<auth::Access>,
    /// This replica's shard: `suites` holds only its probes.
    pub shard: shard::Shard,
    /// The suites whole, for the gate (which runs every probe of a suite).
    pub gate_suites: RwLock<Arc<Vec<Suite>>>,
    /// Wakes the notifier after a probe run (none without receivers).
    pub poke: Option<Arc<tokio::sync::Notify>>,
    pub otlp: crate::sink::otlp::Config,
    /// The region, the fact history and judgment cache (beside the database), and the
    /// backoff table every probe run and gate of this monitor shares.
    pub ctx: crate::schedule::RunContext,
}

impl ServeState {
    /// The suites this replica runs (its shard's probes).
    pub fn suites(&self) -> Arc<Vec<Suite>> {
        self.suites
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The suites as loaded, every probe (the gate's).
    pub fn gate_suites(&self) -> Arc<Vec<Suite>> {
        self.gate_suites
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// Loads the suites `serve` can run (all probes need a driver in this build).
pub fn load_suites(paths: &[PathBuf]) -> Result<Vec<Suite>, Vec<Diagnostic>> {
    let suites = suite::load_all(paths, &ProcessEnv::default())?;
    let mut diags = Vec::new();
    for s in &suites {
        for p in &s.probes {
            if let Some(e) = s
                .endpoints
                .get(&p.endpoint)
                .filter(|e| !e.protocol.implemented())
            {
                diags.push(Diagnostic::new(
                    &s.file,
                    None,
                    format!("endpoints.{}", e.name),
                    format!(
                        "protocol `{}` cannot run in this build",
                        e.protocol.as_str()
                    ),
                ));
            }
        }
    }
    if diags.is_empty() {
        Ok(suites)
    } else {
        Err(diags)
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs one probe once: execute, record metrics and history, update the probe's state.
pub async fn run_probe(state: Arc<ServeState>, suite: Arc<Suite>, probe_index: usize) {
    let Some(probe) = suite.probes.get(probe_index) else {
        return;
    };
    let key = (suite.name.clone(), probe.name.clone());
    let started = SystemTime::now();
    if let Ok(mut p) = state.probes.lock() {
        let e = p.entry(key.clone()).or_default();
        e.running = true;
        e.last_started = Some(crate::sink::report::rfc3339(started));
    }
    let observations = executor::execute_probes(
        suite.clone(),
        &[probe_index],
        &RunOptions {
            ctx: state.ctx.clone(),
            ..RunOptions::default()
        },
        state.permits.clone(),
    )
    .await;
    let finished = SystemTime::now();
    if suite.probes[probe_index].freshness.is_some() {
        if let Err(e) = state.ctx.facts.save() {
            tracing::warn!("the fact history could not be saved: {e}");
        }
    }
    if let Err(e) = state.ctx.judgments.save() {
        tracing::warn!("the judgment cache could not be saved: {e}");
    }
    record(&state, &suite, &observations, finished).await;
    if let Some(p) = &state.poke {
        p.notify_one();
    }
    if state.otlp.enabled() {
        // The suite's series as they stand (cumulative since the model was built) and this
        // run's spans, off the probe loop; a failure is logged (the next export carries the
        // counts again).
        let model = state.metrics.lock().ok().map(|m| m.clone());
        if let Some(model) = model {
            tokio::spawn(crate::sink::otlp::export_serve(
                state.otlp.clone(),
                model,
                suite.clone(),
                observations.clone(),
                finished,
            ));
        }
    }
    if let Ok(mut p) = state.probes.lock() {
        // A probe removed by a reload while it ran is not brought back.
        let Some(e) = p.get_mut(&key) else { return };
        e.running = false;
        e.last_finished = Some(crate::sink::report::rfc3339(finished));
        e.last_runs = observations.len() as u64;
        e.last_errors = observations.iter().filter(|o| o.outcome.is_error()).count() as u64;
        e.total_runs += observations.len() as u64;
        e.last_outcomes.clear();
        for o in &observations {
            *e.last_outcomes
                .entry(o.outcome.as_str().to_string())
                .or_default() += 1;
        }
    }
}

/// Feeds observations to the metrics model and the history.
pub async fn record(
    state: &Arc<ServeState>,
    suite: &Suite,
    observations: &[Observation],
    finished: SystemTime,
) {
    if let Ok(mut model) = state.metrics.lock() {
        for o in observations {
            model.observe(suite, o);
        }
        model.finish_run(suite, observations, finished);
    }
    // The case records, as the JSON report writes them.
    let report = Report::build(
        &suite.name,
        &state.region,
        &suite.labels,
        finished,
        finished,
        &Default::default(),
        &[],
        observations,
    );
    let mut runs = Vec::new();
    let mut events = Vec::new();
    for (o, case) in observations.iter().zip(&report.cases) {
        let ts = unix(o.started_at);
        let latency: BTreeMap<&str, f64> = o.latency.iter().map(|(k, v)| (k.name(), *v)).collect();
        runs.push(RunRow {
            id: 0,
            ts,
            suite: suite.name.clone(),
            endpoint: o.endpoint.clone(),
            probe: o.probe.clone(),
            case_id: o.case_id.clone(),
            slice: o.slice.clone(),
            outcome: o.outcome.as_str().to_string(),
            error: o.error.as_ref().map(|e| e.message.clone()),
            latency: serde_json::to_string(&latency).unwrap_or_else(|_| "{}".into()),
            record: crate::secret::redact(
                &serde_json::to_string(case).unwrap_or_else(|_| "{}".into()),
            ),
        });
        for s in suite.slos.iter().filter(|s| s.probe == o.probe) {
            let (good, total) = slo::judge_counts(s, o);
            if total > 0 {
                events.push(SloEvent {
                    ts,
                    suite: suite.name.clone(),
                    slo: s.name.clone(),
                    slice: o.slice.clone(),
                    good,
                    total,
                });
            }
        }
    }
    let h = state.history.clone();
    match tokio::task::spawn_blocking(move || h.insert(&runs, &events)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("cannot store observations: {e}"),
        Err(e) => tracing::error!("history task failed: {e}"),
    }
}

/// A metrics model for the suites (this shard's), with their zero series and the shard's
/// probe count.
fn fresh_metrics(suites: &[Suite], region: &str, shard: shard::Shard) -> MetricsModel {
    let mut m = MetricsModel::new_multi(suites, region);
    for s in suites {
        m.prepare(s);
    }
    shard.export(&mut m, suites.iter().map(|s| s.probes.len()).sum());
    m
}

/// Starts one loop per probe; returns the stop switch and the loops.
fn start_loops(
    state: &Arc<ServeState>,
    splay: Duration,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinSet<Option<tokio::task::JoinHandle<()>>>,
) {
    let (stop, rx) = watch::channel(false);
    let mut set = tokio::task::JoinSet::new();
    let clock = Clock::start();
    for suite in state.suites().iter() {
        let suite = Arc::new(suite.clone());
        for (i, p) in suite.probes.iter().enumerate() {
            // The schedule was parsed when the suite loaded.
            let Some(schedule) = p
                .schedule
                .clone()
                .or_else(|| crate::suite::cron::parse(DEFAULT_SCHEDULE).ok())
            else {
                tracing::error!(probe = %p.name, "invalid schedule {DEFAULT_SCHEDULE}; probe not scheduled");
                continue;
            };
            let key = (suite.name.clone(), p.name.clone());
            let stats = Arc::new(LoopStats::default());
            if let Ok(mut ls) = state.loop_stats.lock() {
                ls.insert(key.clone(), stats.clone());
            }
            if let Ok(mut ps) = state.probes.lock() {
                let e = ps.entry(key).or_default();
                e.suite = suite.name.clone();
                e.probe = p.name.clone();
                e.endpoint = p.endpoint.clone();
                e.schedule = schedule.expr.clone();
            }
            // The splay never reaches the period, or the probe would skip firings.
            let cap = schedule.period() / 2;
            if splay > cap {
                eprintln!(
                    "warning: --splay {} is more than half of probe `{}`'s schedule period ({}): its start is spread over {} instead",
                    humantime::format_duration(splay),
                    p.name,
                    humantime::format_duration(schedule.period()),
                    humantime::format_duration(cap)
                );
            }
            let offset =
                scheduler::splay_offset(&state.region, &suite.name, &p.name, splay.min(cap));
            let (st, su) = (state.clone(), suite.clone());
            let runner: scheduler::Runner =
                Arc::new(move || Box::pin(run_probe(st.clone(), su.clone(), i)));
            set.spawn(scheduler::probe_loop(
                schedule,
                offset,
                clock,
                runner,
                stats,
                rx.clone(),
            ));
        }
    }
    (stop, set)
}

/// Stops loops and waits for their in-flight runs up to `grace`.
async fn drain(
    stop: watch::Sender<bool>,
    sets: Vec<tokio::task::JoinSet<Option<tokio::task::JoinHandle<()>>>>,
    grace: Duration,
) {
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    let mut running = Vec::new();
    // The current loops and those a reload retired (already told to stop).
    for mut loops in sets {
        while let Some(r) = loops.join_next().await {
            if let Ok(Some(h)) = r {
                running.push(h);
            }
        }
    }
    for h in running {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let abort = h.abort_handle();
        if tokio::time::timeout(left, h).await.is_err() {
            tracing::warn!("a probe run outlived the grace period and was stopped");
            abort.abort();
        }
    }
}

/// Why the monitor cannot start. The cause of a failed step is its `source` (printed after
/// it by the CLI), not part of the message.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Access(#[from] auth::AuthError),
    #[error(transparent)]
    Shard(#[from] shard::ShardError),
    #[error("--notify-{flag}: {url} is not an http:// or https:// URL")]
    NotifyUrl { flag: &'static str, url: String },
    /// The suites' diagnostics, one per line, redacted.
    #[error("{0}")]
    Suites(String),
    #[error("cannot create {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The fact history or the judgment cache beside the database is unreadable.
    #[error(transparent)]
    State(#[from] crate::schedule::state_file::StateError),
    #[error("cannot open {}", .path.display())]
    History {
        path: PathBuf,
        #[source]
        source: HistoryError,
    },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the monitor until SIGTERM or SIGINT.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    // Access first: an unprotected costly route on the network is refused before anything
    // is loaded or bound.
    let access = auth::Access {
        token: auth::load_token(
            cfg.fleet.token_file.as_deref(),
            std::env::var(auth::TOKEN_ENV).ok(),
        )?,
        private: cfg.fleet.private,
    };
    access.check(cfg.listen, cfg.allow_gate)?;
    let shard = match &cfg.fleet.shard {
        Some(text) => shard::Shard::parse(text, shard::hostname)?,
        None => shard::Shard::default(),
    };
    let mut receivers = Vec::new();
    for (format, urls) in [
        (notify::Format::Alertmanager, &cfg.fleet.notify_alertmanager),
        (notify::Format::Json, &cfg.fleet.notify_webhook),
    ] {
        for url in urls {
            match url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                }
                _ => {
                    return Err(ServeError::NotifyUrl {
                        flag: if format == notify::Format::Json {
                            "webhook"
                        } else {
                            "alertmanager"
                        },
                        url: notify::shown(url),
                    })
                }
            }
            receivers.push(notify::Receiver {
                format,
                url: url.clone(),
            });
        }
    }
    let all = load_suites(&cfg.paths).map_err(|d| {
        ServeError::Suites(
            d.iter()
                .map(|d| crate::secret::redact(&d.to_string()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let suites = shard.own(&all);
    if let Some(dir) = cfg.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // The values of facts seen by freshness probes, and the judgment cache, live beside the
    // database.
    let ctx = crate::schedule::RunContext::new(&cfg.region)
        .with_judgments(Some(&cfg.db.with_extension("judgments.json")))?
        .with_facts(Some(&cfg.db.with_extension("facts.json")))?;
    let history = Arc::new(
        History::open(&cfg.db).map_err(|source| ServeError::History {
            path: cfg.db.clone(),
            source,
        })?,
    );
    let poke = (!receivers.is_empty()).then(|| Arc::new(tokio::sync::Notify::new()));
    let state = Arc::new(ServeState {
        region: cfg.region.clone(),
        metrics: Mutex::new(fresh_metrics(&suites, &cfg.region, shard)),
        suites: RwLock::new(Arc::new(suites)),
        history: history.clone(),
        probes: Mutex::new(BTreeMap::new()),
        loop_stats: Mutex::new(BTreeMap::new()),
        permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
        ready: AtomicBool::new(false),
        started_at: SystemTime::now(),
        allow_gate: cfg.allow_gate,
        gate_lock: tokio::sync::Mutex::new(()),
        access: Arc::new(access),
        shard,
        gate_suites: RwLock::new(Arc::new(all)),
        poke: poke.clone(),
        otlp: cfg.otlp.clone(),
        ctx,
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (http_stop, mut http_stop_rx) = watch::channel(false);
    let app = api::router(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop_rx.changed().await;
            })
            .await;
    });
    let compactor = {
        let (st, every, records_for) = (state.clone(), cfg.compact_every, cfg.records_for);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let keep = st
                    .suites()
                    .iter()
                    .flat_map(|s| s.slos.iter().map(|x| x.window))
                    .max()
                    .unwrap_or(Duration::from_secs(30 * 86400))
                    + Duration::from_secs(86400);
                let h = st.history.clone();
                let now = unix(SystemTime::now());
                match tokio::task::spawn_blocking(move || h.compact(now, records_for, keep)).await {
                    Ok(Err(e)) => tracing::error!("compaction failed: {e}"),
                    Err(e) => tracing::error!("compaction task failed: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        })
    };
    let notifier = poke.map(|poke| {
        let n = Arc::new(notify::Notifier::new(
            receivers,
            cfg.fleet
                .spool
                .clone()
                .unwrap_or_else(|| cfg.db.with_extension("spool")),
            &cfg.region,
            shard,
            cfg.fleet
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
        ));
        tokio::spawn(notify::run(state.clone(), n, poke, cfg.fleet.notify_every))
    });
    let (mut stop, mut loops) = start_loops(&state, cfg.splay);
    let mut retired: Vec<tokio::task::JoinSet<Option<tokio::task::JoinHandle<()>>>> = Vec::new();
    state.ready.store(true, Ordering::SeqCst);
    println!(
        "canary serve listening on http://{addr} (region {}, db {}, shard {shard}: {})",
        cfg.region,
        cfg.db.display(),
        crate::sink::table::plural(state.suites().iter().map(|s| s.probes.len()).sum(), "probe")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                match load_suites(&cfg.paths) {
                    Ok(all) => {
                        // Once, on stderr (it is an event the operator asked for, not a warning).
                        eprintln!("SIGHUP: reloaded {}", crate::sink::table::plural(all.len(), "suite"));
                        let new = state.shard.own(&all);
                        if let Ok(mut g) = state.gate_suites.write() {
                            *g = Arc::new(all);
                        }
                        if let Ok(mut m) = state.metrics.lock() {
                            *m = fresh_metrics(&new, &state.region, state.shard);
                        }
                        if let Ok(mut ps) = state.probes.lock() {
                            ps.retain(|(suite, probe), _| new.iter().any(|s| &s.name == suite && s.probes.iter().any(|p| &p.name == probe)));
                        }
                        if let Ok(mut s) = state.suites.write() {
                            *s = Arc::new(new);
                        }
                        // Old loops stop; their runs in flight finish, and shutdown waits for them too.
                        let _ = stop.send(true);
                        let (s2, l2) = start_loops(&state, cfg.splay);
                        stop = s2;
                        retired.push(std::mem::replace(&mut loops, l2));
                        if let Ok(mut ls) = state.loop_stats.lock() {
                            let suites = state.suites();
                            ls.retain(|(suite, probe), _| suites.iter().any(|s| &s.name == suite && s.probes.iter().any(|p| &p.name == probe)));
                        }
                    }
                    Err(d) => {
                        let text: Vec<String> = d.iter().map(|d| crate::secret::redact(&d.to_string())).collect();
                        tracing::error!("SIGHUP: the new config is invalid; keeping the old one:\n{}", text.join("\n"));
                        eprintln!("reload refused, keeping the old config:\n{}", text.join("\n"));
                    }
                }
            }
        }
    }
    // Shutdown: not ready, no new probes, in-flight runs finish within the grace period.
    state.ready.store(false, Ordering::SeqCst);
    retired.push(loops);
    drain(stop, retired, cfg.grace).await;
    compactor.abort();
    // Undelivered notifications stay in the spool for the next start.
    if let Some(n) = notifier {
        n.abort();
    }
    if let Err(e) = history.checkpoint() {
        tracing::error!("final checkpoint failed: {e}");
    }
    let _ = http_stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    eprintln!("canary serve stopped cleanly");
    Ok(())
}
