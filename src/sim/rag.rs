//! A retrieval-augmented answer service whose index lags its source of truth.
//!
//! - `GET /truth/facts/{key}`: the source of truth, `{key, value, updated_at}` (RFC 3339).
//! - `PUT /admin/facts/{key}` `{"value": ...}`: writes a fact now; the index sees it
//!   `index_lag` later (default 3 s).
//! - `POST /rag/ask` `{"question", "key"}`: answers from the index, `{answer, tier, model,
//!   sources}`. A question without a known key gets a hand-off to a human (an escalation).
//!   `x-sim-tier: fallback` (or `"sim_tier": "fallback"` in the body) serves it from the
//!   fallback tier.
//!
//! Ground truth (`GET /truth`, `facts`): every write, when it was made and when the index
//! reflected it (Unix seconds).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::SimState;

/// The RAG service's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagConfig {
    /// How long after a write the index reflects it.
    #[serde(with = "super::secs_str")]
    pub index_lag: Duration,
    /// Facts known from the start (written a day before the simulator started).
    pub facts: std::collections::BTreeMap<String, String>,
}

impl Default for RagConfig {
    fn default() -> Self {
        RagConfig {
            index_lag: Duration::from_secs(3),
            facts: [
                ("basic-plan-price", "12 EUR per month"),
                ("support-hours", "9am to 5pm CET"),
                ("refund-window", "30 days"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

/// One write of a fact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FactWrite {
    pub key: String,
    pub value: String,
    /// Unix seconds of the write (the truth's `updated_at`).
    pub written: f64,
    /// Unix seconds from which the index answers with it.
    pub indexed: f64,
}

/// The service's facts.
#[derive(Default)]
pub struct RagState {
    writes: Mutex<Vec<FactWrite>>,
    seeded: Mutex<bool>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rfc3339(secs: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

impl RagState {
    fn seed(&self, cfg: &RagConfig) {
        let mut seeded = self.seeded.lock().unwrap_or_else(|e| e.into_inner());
        if *seeded {
            return;
        }
        *seeded = true;
        let day_ago = unix(SystemTime::now()) - 86_400.0;
        let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in &cfg.facts {
            w.push(FactWrite {
                key: k.clone(),
                value: v.clone(),
                written: day_ago,
                indexed: day_ago,
            });
        }
    }

    pub fn writes(&self) -> Vec<FactWrite> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The truth now: the latest write of `key`.
    fn truth(&self, key: &str) -> Option<FactWrite> {
        let w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        w.iter().rev().find(|f| f.key == key).cloned()
    }

    /// What the index answers at `now`: the latest write it has caught up with.
    fn indexed(&self, key: &str, now: f64) -> Option<FactWrite> {
        let w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        w.iter()
            .rev()
            .find(|f| f.key == key && f.indexed <= now)
            .cloned()
    }
}

/// `GET /truth/facts/{key}`.
pub async fn truth(State(state): State<Arc<SimState>>, Path(key): Path<String>) -> Response {
    state.rag.seed(&state.config().rag);
    match state.rag.truth(&key) {
        Some(f) => {
            axum::Json(json!({"key": key, "value": f.value, "updated_at": rfc3339(f.written)}))
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such fact"})),
        )
            .into_response(),
    }
}

/// `PUT /admin/facts/{key}`.
pub async fn write(
    State(state): State<Arc<SimState>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let cfg = state.config().rag;
    state.rag.seed(&cfg);
    let value = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("value").map(crate::check::extract::value_text));
    let Some(value) = value else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "body must be {\"value\": ...}"})),
        )
            .into_response();
    };
    let now = unix(SystemTime::now());
    let w = FactWrite {
        key: key.clone(),
        value: value.clone(),
        written: now,
        indexed: now + cfg.index_lag.as_secs_f64(),
    };
    state
        .rag
        .writes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(w.clone());
    axum::Json(
        json!({"key": key, "value": value, "updated_at": rfc3339(w.written),
                      "indexed_at": rfc3339(w.indexed)}),
    )
    .into_response()
}

/// `POST /rag/ask`.
pub async fn ask(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.rag.seed(&state.config().rag);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fallback = headers
        .get("x-sim-tier")
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.get("sim_tier").and_then(Value::as_str))
        == Some("fallback");
    let (tier, model) = if fallback {
        ("fallback", "rag-small")
    } else {
        ("primary", "rag-large")
    };
    let now = unix(SystemTime::now());
    let key = req.get("key").and_then(Value::as_str).unwrap_or("");
    let answer = match state.rag.indexed(key, now) {
        Some(f) => {
            json!({"answer": format!("The current {} is {}.", key.replace('-', " "), f.value),
                          "tier": tier, "model": model, "sources": [key], "escalated": false})
        }
        None => {
            json!({"answer": "I'm not sure about that. Let me transfer you to a human agent who can help.",
                       "tier": tier, "model": model, "sources": [], "escalated": true})
        }
    };
    axum::Json(answer).into_response()
}

/// The service's writes as ground truth.
pub fn truth_records(state: &SimState) -> Vec<FactWrite> {
    state.rag.writes()
}
