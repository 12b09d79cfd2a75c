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
    /// Any slice (or the aggregate) breached.
    pub breached: bool,
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
            let mut slices = vec![SliceState {
                slice: "*".into(),
                state: burn::evaluate(&all, now, slo.objective, slo.window, step),
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
                        state: burn::evaluate(&ev, now, slo.objective, slo.window, step),
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
                breached: slices.iter().any(|s| s.state.breached),
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

/// The routes.
pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/v1/slo", get(slo))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/runs/{id}", get(run))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}
