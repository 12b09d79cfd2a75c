//! `/preview`: an asynchronous preview-job API in the shape of the Montage-AI preview
//! fast-path, with the service's own `/metrics`.
//!
//! - `POST /preview` (JSON body): `202 {"id", "status": "queued"}` with `Location` and
//!   `X-Cache: HIT` when an identical body was submitted before (a warm proxy cache), `MISS`
//!   otherwise. A body with `"kind": "corrupt"` makes a job that fails.
//! - `GET /preview/{id}`: `queued`, then `processing`, then `ready` (with `preview_url`,
//!   `queue_seconds`, `worker`) or `failed` (with `error`), at seeded times.
//! - `GET /preview/{id}/events`: the same states as an SSE stream, pushed when they happen.
//! - `GET /metrics`: the service's view: `montage_time_to_preview_seconds` (buckets 0.1 ..
//!   16), `montage_proxy_cache_request_total{status}` counting proxy segment requests (a warm
//!   job fetches 3 segments from cache and revalidates once; a cold one misses 3 times, so
//!   the service's hit rate is not the share of warm jobs a client sees), and
//!   `montage_preview_requests_total{status}`.
//!
//! Ground truth (`GET /truth`, `jobs`): when each job became ready, from its submit's arrival.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{LatencyDist, SimState};

/// The preview service's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreviewConfig {
    /// Submit to ready for an input seen for the first time.
    pub miss: LatencyDist,
    /// Submit to ready for a repeated input (warm cache).
    pub hit: LatencyDist,
    /// Share of the time spent queued before processing starts.
    pub queue_share: f64,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig {
            miss: LatencyDist::ms(2500, 9000),
            hit: LatencyDist::ms(600, 1500),
            queue_share: 0.25,
        }
    }
}

/// The truth of one job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobTruth {
    pub seq: u64,
    pub id: String,
    /// Submit arrival to ready (or failed), as designed and as served.
    pub ready_after_s: f64,
    pub queue_s: f64,
    pub cache_hit: bool,
    pub failed: bool,
    pub reason: Option<String>,
    /// The submitted body's `seed`/`run`/`asset`, to check a request sequence.
    pub key: String,
}

struct Job {
    queued_until: Instant,
    ready_at: Instant,
    truth: JobTruth,
    worker: u32,
}

/// The service's state: jobs and its own counters.
#[derive(Default)]
pub struct PreviewState {
    jobs: Mutex<HashMap<String, Job>>,
    order: Mutex<Vec<String>>,
}

const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

impl PreviewState {
    pub fn truth(&self) -> Vec<JobTruth> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        order
            .iter()
            .filter_map(|id| jobs.get(id).map(|j| j.truth.clone()))
            .collect()
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `POST /preview`.
pub async fn submit(
    State(state): State<Arc<SimState>>,
    r: Option<axum::Extension<super::Received>>,
    body: Bytes,
) -> Response {
    let received = super::received(r);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("body is not JSON: {e}")}),
            )
        }
    };
    // The cache key is the input, not the run's nonce fields.
    let mut key_doc = req.clone();
    if let Some(o) = key_doc.as_object_mut() {
        o.remove("run");
        o.remove("nonce");
    }
    let key_bytes = serde_json::to_vec(&key_doc).unwrap_or_default();
    let (mut rng, seen) = state.rng_for("/preview", &key_bytes);
    let cache_hit = seen > 1;
    let cfg = state.config();
    let dist = if cache_hit {
        cfg.preview.hit
    } else {
        cfg.preview.miss
    };
    let delay = dist
        .sample(rng.next_normal())
        .mul_f64(cfg.profile.latency_factor());
    let queue = delay.mul_f64(cfg.preview.queue_share.clamp(0.0, 1.0));
    let fail = req.get("kind").and_then(Value::as_str) == Some("corrupt");
    let reason = fail.then(|| "decode failed: the input file is corrupt".to_string());
    let preview = &state.preview;
    let id = {
        let mut order = preview.order.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("pv-{}", order.len() + 1);
        order.push(id.clone());
        id
    };
    let key = ["asset", "seed", "run"]
        .iter()
        .filter_map(|k| req.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",");
    let job = Job {
        queued_until: received + queue,
        ready_at: received + delay,
        worker: (rng.next_u64() % 3) as u32,
        truth: JobTruth {
            seq: preview.order.lock().map(|o| o.len() as u64).unwrap_or(0),
            id: id.clone(),
            ready_after_s: delay.as_secs_f64(),
            queue_s: queue.as_secs_f64(),
            cache_hit,
            failed: fail,
            reason,
            key,
        },
    };
    preview
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), job);
    let mut resp = json_response(StatusCode::ACCEPTED, json!({"id": id, "status": "queued"}));
    let h = resp.headers_mut();
    h.insert(
        "x-cache",
        HeaderValue::from_static(if cache_hit { "HIT" } else { "MISS" }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/preview/{id}")) {
        h.insert(header::LOCATION, v);
    }
    resp
}

/// The status document of a job at `now`.
fn status_doc(id: &str, j: &Job, now: Instant) -> (Value, bool) {
    if now < j.queued_until {
        return (json!({"id": id, "status": "queued"}), false);
    }
    if now < j.ready_at {
        return (json!({"id": id, "status": "processing"}), false);
    }
    let doc = if j.truth.failed {
        json!({"id": id, "status": "failed", "error": j.truth.reason})
    } else {
        json!({"id": id, "status": "ready", "preview_url": format!("/previews/{id}.mp4"),
               "queue_seconds": j.truth.queue_s, "worker": format!("worker-{}", j.worker),
               "model": "montage-preview-v2"})
    };
    (doc, true)
}

/// `GET /preview/{id}`.
pub async fn status(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let now = Instant::now();
    let jobs = state.preview.jobs.lock().unwrap_or_else(|e| e.into_inner());
    match jobs.get(&id) {
        None => json_response(StatusCode::NOT_FOUND, json!({"error": "no such job"})),
        Some(j) => json_response(StatusCode::OK, status_doc(&id, j, now).0),
    }
}

/// `GET /preview/{id}/events`: status events pushed when the state changes.
pub async fn events(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let times = {
        let jobs = state.preview.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(&id).map(|j| (j.queued_until, j.ready_at))
    };
    let Some((queued_until, ready_at)) = times else {
        return json_response(StatusCode::NOT_FOUND, json!({"error": "no such job"}));
    };
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let state = state.clone();
        let id = id.clone();
        async move {
            let at = match step {
                0 => Instant::now(),
                1 => queued_until,
                2 => ready_at,
                _ => return None,
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let doc = {
                let jobs = state.preview.jobs.lock().unwrap_or_else(|e| e.into_inner());
                jobs.get(&id)
                    .map(|j| status_doc(&id, j, Instant::now().max(at)).0)
            }?;
            let frame = Bytes::from(format!("data: {doc}\n\n"));
            Some((Ok::<Bytes, std::convert::Infallible>(frame), step + 1))
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

/// `GET /metrics`: the preview service's own counters, in the Prometheus text format.
pub async fn metrics(State(state): State<Arc<SimState>>) -> Response {
    let now = Instant::now();
    let jobs = state.preview.jobs.lock().unwrap_or_else(|e| e.into_inner());
    let (mut hits, mut misses, mut ok, mut err) = (0u64, 0u64, 0u64, 0u64);
    let mut counts = vec![0u64; BUCKETS.len()];
    let (mut n, mut sum) = (0u64, 0.0f64);
    for j in jobs.values() {
        if j.truth.cache_hit {
            hits += 3;
            misses += 1;
        } else {
            misses += 3;
        }
        if now >= j.ready_at {
            if j.truth.failed {
                err += 1;
            } else {
                ok += 1;
                let v = j.truth.ready_after_s;
                n += 1;
                sum += v;
                for (c, b) in counts.iter_mut().zip(BUCKETS) {
                    if v <= *b {
                        *c += 1;
                    }
                }
            }
        }
    }
    let mut out = String::new();
    out += "# HELP montage_time_to_preview_seconds Submit to preview ready.\n# TYPE montage_time_to_preview_seconds histogram\n";
    for (c, b) in counts.iter().zip(BUCKETS) {
        out += &format!(
            "montage_time_to_preview_seconds_bucket{{model=\"montage-preview-v2\",route=\"preview\",le=\"{b}\"}} {c}\n"
        );
    }
    out += &format!("montage_time_to_preview_seconds_bucket{{model=\"montage-preview-v2\",route=\"preview\",le=\"+Inf\"}} {n}\n");
    out += &format!("montage_time_to_preview_seconds_sum{{model=\"montage-preview-v2\",route=\"preview\"}} {sum}\n");
    out += &format!("montage_time_to_preview_seconds_count{{model=\"montage-preview-v2\",route=\"preview\"}} {n}\n");
    out += "# HELP montage_proxy_cache_request_total Proxy segment requests by cache status.\n# TYPE montage_proxy_cache_request_total counter\n";
    out += &format!("montage_proxy_cache_request_total{{status=\"hit\"}} {hits}\nmontage_proxy_cache_request_total{{status=\"miss\"}} {misses}\n");
    out += "# HELP montage_preview_requests_total Finished preview jobs by status.\n# TYPE montage_preview_requests_total counter\n";
    out += &format!("montage_preview_requests_total{{status=\"ok\"}} {ok}\nmontage_preview_requests_total{{status=\"error\"}} {err}\n");
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
