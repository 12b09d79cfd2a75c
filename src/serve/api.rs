//! The HTTP API of `serve` (axum): `/metrics` (OpenMetrics), `/api/v1/slo`, `/api/v1/probes`,
//! `/api/v1/runs/{id}`, `/healthz`, `/readyz`, the status page at `/`, and `POST /api/v1/gate`
//! (JSON only, no foreign `Origin`, candidate hosts checked before anything is sent).
//! Costly routes need the bearer token when one is set; `--private` puts the read-only
//! routes behind it too (`auth`). Response shapes are described by `docs/api.schema.json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
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
            "shard": state.shard.to_string(),
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

/// OpenMetrics (what Prometheus asks for, and the default); the text format 0.0.4 for a client
/// that asks for `text/plain` only (`promtool check metrics` lints that one). Both escape label
/// values through `sink::expfmt`.
async fn metrics(State(state): State<Arc<ServeState>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    let plain = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let encode = |m: &crate::sink::metrics::MetricsModel| {
        if plain {
            m.encode_text()
        } else {
            m.encode_openmetrics()
        }
    };
    let text = match state.metrics.lock() {
        Ok(m) => encode(&m),
        Err(e) => encode(&e.into_inner()),
    };
    let content_type = if plain {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
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

/// A gate request must say it is JSON: `text/plain` (and form types) are what a web page may
/// send to another site without asking first (no CORS preflight); `application/json` is not.
fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media = ct
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!(
            "send the gate request as `Content-Type: application/json` (got {})",
            ct.map(|c| format!("`{}`", c.chars().take(80).collect::<String>()))
                .unwrap_or_else(|| "none".into())
        ))
    }
}

/// A request from a browser carries `Origin`. Only canary's own origin passes (`http://` or
/// `https://` and the request's `Host`), and only when that host is an IP address or
/// `localhost`: under a DNS name, a page could rebind the name to this server and look
/// same-origin to the browser. Canary's own page sends no requests, so a real client of the
/// gate (Flagger, CI, curl) sends no `Origin` at all.
fn own_origin(headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let shown: String = origin.chars().take(80).collect();
    let refused = || {
        Err(format!(
            "a gate request from a web page (Origin `{shown}`) is refused: call the API from a client (Flagger, CI, curl), which sends no Origin"
        ))
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return refused();
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let by_address =
        name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost");
    let same = ["http://", "https://"]
        .iter()
        .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")));
    if by_address && same {
        Ok(())
    } else {
        refused()
    }
}

/// `POST /api/v1/gate`: runs `canary gate` on one of the served suites. The body is either
/// `{"suite", "candidate", "baseline"?, "runs"?, "seed"?}` or a Flagger webhook payload with
/// those keys under `metadata` (as strings). 200 when the gate passes, 409 when it fails or
/// cannot decide; the body carries the verdict, the reasons and the Markdown summary.
/// Refused before anything is sent: 403 when the endpoint is off (`--allow-gate`), for a
/// foreign `Origin`, and for a candidate or baseline host the suite does not allow
/// (`gate.allowed_hosts`, else its own endpoints); 415 when the body is not declared JSON.
async fn gate(
    State(state): State<Arc<ServeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // The token: `Authorization: Bearer`, or for Flagger, whose webhooks cannot set headers,
    // `token` in the body's `metadata` (read only when no Authorization header came).
    if state.access.token.is_some() {
        let body_token = if headers.contains_key(header::AUTHORIZATION) {
            None
        } else {
            serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.get("metadata")
                    .and_then(|m| m.get("token"))
                    .or_else(|| v.get("token"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        };
        if !state.access.allows(&headers, body_token.as_deref()) {
            return super::auth::unauthorized();
        }
    }
    if !state.allow_gate {
        return error(
            StatusCode::FORBIDDEN,
            "the gate endpoint is off: start serve with --allow-gate (it sends the suite's requests, credentials included, to the URLs given)",
        );
    }
    if let Err(e) = own_origin(&headers) {
        return error(StatusCode::FORBIDDEN, &e);
    }
    if let Err(e) = json_content_type(&headers) {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e);
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
    let suites = state.gate_suites();
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
    if let Err(e) =
        crate::gate::check_hosts(&suite, &[&cand, &base], crate::gate::HostPolicy::Remote)
    {
        return error(StatusCode::FORBIDDEN, &e);
    }
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
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &crate::secret::redact(&e.to_string()),
        ),
    }
}

/// The routes: the read-only ones (behind the token under `--private`), the costly ones
/// (the gate checks the token itself, as it may come in the body), and the health checks
/// (always open: they say nothing but "ok").
pub fn router(state: Arc<ServeState>) -> Router {
    let mut read = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/v1/slo", get(slo))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/runs/{id}", get(run));
    if state.access.private {
        read = read.route_layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            super::auth::require,
        ));
    }
    read.route("/api/v1/gate", axum::routing::post(gate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_a_json_content_type_is_a_gate_request() {
        assert!(json_content_type(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(json_content_type(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )]))
        .is_ok());
        for refused in [
            "text/plain",
            "text/plain; x=application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
        ] {
            let e = json_content_type(&headers(&[("content-type", refused)])).unwrap_err();
            assert!(e.contains("application/json"), "{refused}: {e}");
        }
        assert!(json_content_type(&headers(&[])).is_err());
    }

    #[test]
    fn a_foreign_or_rebindable_origin_is_refused() {
        let h =
            |origin: &str, host: &str| own_origin(&headers(&[("origin", origin), ("host", host)]));
        assert!(own_origin(&headers(&[("host", "canary.example.com")])).is_ok());
        assert!(h("http://127.0.0.1:9464", "127.0.0.1:9464").is_ok());
        assert!(h("http://localhost:9464", "localhost:9464").is_ok());
        assert!(h("http://[::1]:9464", "[::1]:9464").is_ok());
        assert!(h("http://evil.example", "127.0.0.1:9464").is_err());
        assert!(h("null", "127.0.0.1:9464").is_err());
        assert!(h("http://127.0.0.1:9465", "127.0.0.1:9464").is_err());
        // Same origin under a DNS name: possibly a rebinding page.
        assert!(h("http://canary.example.com", "canary.example.com").is_err());
        assert!(own_origin(&headers(&[("origin", "http://127.0.0.1:9464")])).is_err());
    }
}
