//! The HTTP API of `serve` (axum): `/metrics` (OpenMetrics), `/api/v1/slo`, `/api/v1/probes`,
//! `/api/v1/runs/{id}`, `/healthz`, `/readyz`, and the status page at `/`. Response shapes
//! are described by `docs/api.schema.json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::ServeState;
use crate::slo::burn::{self, BurnState, Events};

/// The state of one SLO on one slice (or `*`).
#[derive(Debug, Clone, Serialize)]
pub struct SliceState {
    pub slice: String,
    #[serde(flatten)]
    pub state: BurnState,
}

/// One SLO with its slices.
#[derive(Debug, Clone, Serialize)]
pub struct SloState {
    pub suite: String,
    pub name: String,
    pub probe: String,
    pub endpoint: String,
    pub sli: String,
    pub objective: f64,
    pub threshold: Option<f64>,
    pub window: String,
    pub per_slice: bool,
    /// Schedule period of the probe (seconds): no alert window is shorter than two of them.
    pub period_seconds: f64,
    /// Any slice (or the aggregate) breached.
    pub breached: bool,
    /// The worst state of any slice (or the aggregate): `breached`, `budget_exhausted`,
    /// `burning`, `ok`, `no_data`.
    pub status: burn::Status,
    /// The window of `current_burn` (the long window of the fastest page pair).
    pub burn_window: String,
    pub slices: Vec<SliceState>,
}

/// Evaluates every SLO from the history at `now` (Unix seconds).
pub fn slo_states(state: &ServeState, now: f64) -> Vec<SloState> {
    let mut out = Vec::new();
    for suite in state.suites().iter() {
        for slo in &suite.slos {
            let since = now - slo.window.as_secs_f64();
            let rows = state
                .history
                .slo_events(&suite.name, &slo.name, since)
                .unwrap_or_else(|e| {
                    tracing::error!("cannot read the history: {e}");
                    Vec::new()
                });
            let all: Vec<Events> = rows.iter().map(|(_, e)| *e).collect();
            let step = Duration::from_secs(60);
            let period = crate::slo::rules::slo_period(suite, slo);
            let mut slices = vec![SliceState {
                slice: "*".into(),
                state: burn::evaluate(&all, now, slo.objective, slo.window, step, period),
            }];
            if slo.per_slice {
                let mut names: Vec<String> = rows.iter().map(|(s, _)| s.clone()).collect();
                if let Some(p) = suite.probes.iter().find(|p| p.name == slo.probe) {
                    names.extend(p.cases.iter().map(|c| c.slice.clone()));
                }
                names.sort();
                names.dedup();
                for name in names {
                    let ev: Vec<Events> = rows
                        .iter()
                        .filter(|(s, _)| *s == name)
                        .map(|(_, e)| *e)
                        .collect();
                    slices.push(SliceState {
                        slice: name,
                        state: burn::evaluate(&ev, now, slo.objective, slo.window, step, period),
                    });
                }
            }
            let endpoint = suite
                .probes
                .iter()
                .find(|p| p.name == slo.probe)
                .map(|p| p.endpoint.clone())
                .unwrap_or_default();
            out.push(SloState {
                suite: suite.name.clone(),
                name: slo.name.clone(),
                probe: slo.probe.clone(),
                endpoint,
                sli: slo.sli.name().to_string(),
                objective: slo.objective,
                threshold: slo.threshold.map(|t| t.as_secs_f64()),
                window: burn::prom_duration(slo.window),
                per_slice: slo.per_slice,
                period_seconds: period.as_secs_f64(),
                breached: slices.iter().any(|s| s.state.breached),
                status: slices
                    .iter()
                    .map(|s| s.state.status)
                    .filter(|s| *s != burn::Status::NoData)
                    .min()
                    .unwrap_or(burn::Status::NoData),
                burn_window: burn::windows(slo.window, period, slo.objective)
                    .first()
                    .map(|w| burn::prom_duration(w.long))
                    .unwrap_or_default(),
                slices,
            });
        }
    }
    out
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn slo(State(state): State<Arc<ServeState>>) -> Response {
    let now = now_unix();
    let st = state.clone();
    match tokio::task::spawn_blocking(move || slo_states(&st, now)).await {
        Ok(slos) => Json(json!({
            "generated_at": crate::sink::report::rfc3339(SystemTime::now()),
            "region": state.region,
            "breached": slos.iter().any(|s| s.breached),
            "slos": slos,
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("evaluation failed: {e}"),
        ),
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

/// The probes with their last runs and recent failures.
pub fn probes_value(state: &ServeState) -> Value {
    let probes: Vec<super::ProbeState> = state
        .probes
        .lock()
        .map(|p| p.values().cloned().collect())
        .unwrap_or_default();
    let stats = state
        .loop_stats
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let list: Vec<Value> = probes
        .into_iter()
        .map(|mut p| {
            if let Some(s) = stats.get(&(p.suite.clone(), p.probe.clone())) {
                p.skipped_overruns = s.skipped.load(Ordering::Relaxed);
            }
            let recent: Vec<Value> = state
                .history
                .recent_runs(&p.suite, &p.probe, 20)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.outcome != "ok")
                .take(5)
                .map(|r| json!({"id": r.id, "case": r.case_id, "slice": r.slice, "outcome": r.outcome, "error": r.error, "at": r.ts}))
                .collect();
            let mut v = serde_json::to_value(&p).unwrap_or(Value::Null);
            v["recent_failures"] = Value::Array(recent);
            v
        })
        .collect();
    json!({ "region": state.region, "probes": list })
}

async fn probes(State(state): State<Arc<ServeState>>) -> Response {
    match tokio::task::spawn_blocking(move || probes_value(&state)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

async fn run(State(state): State<Arc<ServeState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "a run id is a number");
    };
    let h = state.history.clone();
    match tokio::task::spawn_blocking(move || h.run(id)).await {
        Ok(Ok(Some(r))) => {
            let record: Value = serde_json::from_str(&r.record).unwrap_or(Value::Null);
            Json(json!({"id": r.id, "ts": r.ts, "suite": r.suite, "record": record}))
                .into_response()
        }
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            &format!("no run {id} (runs are kept for a limited time)"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn metrics(State(state): State<Arc<ServeState>>) -> Response {
    let text = match state.metrics.lock() {
        Ok(m) => m.encode_openmetrics(),
        Err(e) => e.into_inner().encode_openmetrics(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn ready(State(state): State<Arc<ServeState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn page(State(state): State<Arc<ServeState>>) -> Response {
    match tokio::task::spawn_blocking(move || super::page::render(&state, now_unix())).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `POST /api/v1/gate`: runs `canary gate` on one of the served suites. The body is either
/// `{"suite", "candidate", "baseline"?, "runs"?, "seed"?}` or a Flagger webhook payload with
/// those keys under `metadata` (as strings). 200 when the gate passes, 409 when it fails or
/// cannot decide; the body carries the verdict, the reasons and the Markdown summary.
async fn gate(State(state): State<Arc<ServeState>>, body: axum::body::Bytes) -> Response {
    if !state.allow_gate {
        return error(
            StatusCode::FORBIDDEN,
            "the gate endpoint is off: start serve with --allow-gate (it sends the suite's requests, credentials included, to the URLs given)",
        );
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
    };
    let src = v.get("metadata").filter(|m| m.is_object()).unwrap_or(&v);
    let text = |k: &str| {
        src.get(k).and_then(|x| {
            x.as_str()
                .map(str::to_string)
                .or_else(|| x.as_u64().map(|n| n.to_string()))
        })
    };
    let list = |k: &str| -> Vec<String> {
        match src.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    };
    let suites = state.suites();
    let suite = match text("suite") {
        Some(name) => suites.iter().find(|s| s.name == name).cloned(),
        None if suites.len() == 1 => suites.first().cloned(),
        None => None,
    };
    let Some(suite) = suite else {
        let names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "name the suite to gate with `suite` (served: {})",
                names.join(", ")
            ),
        );
    };
    let candidate = list("candidate");
    if candidate.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "give `candidate`: a base URL, or NAME=URL per endpoint",
        );
    }
    let parse = |l: &[String]| crate::gate::Targets::parse(l);
    let (Ok(cand), Ok(base)) = (parse(&candidate), parse(&list("baseline"))) else {
        return error(
            StatusCode::BAD_REQUEST,
            "`candidate`/`baseline`: one base URL, or NAME=URL per endpoint",
        );
    };
    let opts = crate::gate::GateOptions {
        candidate: cand,
        baseline: base,
        runs: text("runs")
            .and_then(|r| r.parse().ok())
            .unwrap_or(10)
            .clamp(1, 1000),
        seed: text("seed").and_then(|r| r.parse().ok()).unwrap_or(42),
        concurrency: 8,
        // Within serve's own concurrency limit, one gate at a time.
        permits: Some(state.permits.clone()),
    };
    let _one_gate = state.gate_lock.lock().await;
    match crate::gate::run(&suite, &opts).await {
        Ok(o) => {
            let status = if o.verdict == crate::gate::Verdict::Pass {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            let body = json!({
                "verdict": o.verdict,
                "reasons": o.reasons,
                "summary": crate::gate::output::markdown(&o),
            });
            (status, Json(body)).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &crate::secret::redact(&e)),
    }
}

/// The routes.
pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/v1/slo", get(slo))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/gate", axum::routing::post(gate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}
