//! The Llama Mapper imitation: `POST /map` and `POST /map/batch` normalize detector outputs
//! into a taxonomy, with per-detector latency, a schema-invalid rate and a fallback rate
//! drawn deterministically from the seed. Every request is recorded as ground truth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::fault::{BrokenBody, DripBody, Fault, HugeBody};
use super::{SimState, TruthRecord};

/// The taxonomy the simulated model maps to (detector, detector output) -> label.
pub fn taxonomy(detector: &str, output: &str) -> Option<&'static str> {
    Some(match (detector, output) {
        ("presidio", "EMAIL_ADDRESS") => "PII.Contact.Email",
        ("presidio", "PHONE_NUMBER") => "PII.Contact.Phone",
        ("presidio", "CREDIT_CARD") => "PII.Financial.CreditCard",
        ("presidio", "US_SSN") => "PII.Identifier.SSN",
        ("presidio", "PERSON") => "PII.Identity.Name",
        ("llama-guard", "S1") => "HARM.Violence.ViolentCrime",
        ("llama-guard", "S2") => "HARM.Crime.NonViolent",
        ("llama-guard", "S10") => "HARM.Hate.Speech",
        ("llama-guard", "S11") => "HARM.SelfHarm.Suicide",
        ("llama-guard", "safe") => "SAFE.None",
        ("deberta-toxicity", "toxic") => "HARM.Toxicity.General",
        ("deberta-toxicity", "insult") => "HARM.Toxicity.Insult",
        ("deberta-toxicity", "threat") => "HARM.Toxicity.Threat",
        ("deberta-toxicity", "non-toxic") => "SAFE.None",
        ("regex-secrets", "AWS_ACCESS_KEY") => "SECURITY.Credential.Cloud",
        ("regex-secrets", "GITHUB_TOKEN") => "SECURITY.Credential.Token",
        ("regex-secrets", "PRIVATE_KEY") => "SECURITY.Credential.PrivateKey",
        _ => return None,
    })
}

struct Item {
    detector: String,
    output: String,
}

fn parse_item(v: &Value) -> Result<Item, String> {
    let detector = v
        .get("detector")
        .and_then(Value::as_str)
        .ok_or("missing string field `detector`")?;
    let output = v
        .get("output")
        .and_then(Value::as_str)
        .ok_or("missing string field `output`")?;
    Ok(Item {
        detector: detector.to_string(),
        output: output.to_string(),
    })
}

/// One mapped item. `invalid` breaks the schema (taxonomy as a string, confidence as text).
fn mapped(item: &Item, fallback: bool, invalid: bool, confidence: f64) -> Value {
    let label = taxonomy(&item.detector, &item.output);
    let fallback = fallback || label.is_none();
    let label = label.unwrap_or("UNKNOWN");
    let conf = if fallback { 0.55 } else { confidence };
    if invalid {
        return json!({
            "detector": item.detector, "output": item.output,
            "taxonomy": label, "confidence": "high",
            "provenance": if fallback { "fallback" } else { "model" },
        });
    }
    json!({
        "detector": item.detector,
        "output": item.output,
        "taxonomy": [label],
        "scores": { label: conf },
        "confidence": conf,
        "provenance": if fallback { "fallback" } else { "model" },
        "model": if fallback { "rules-v2" } else { "mapper-lora-v3" },
        "version": "sim-1",
    })
}

fn bad_request(state: &SimState, path: &str, start: Instant, msg: String) -> Response {
    state.record(TruthRecord {
        seq: 0,
        path: path.into(),
        detector: String::new(),
        items: 0,
        status: 400,
        server_seconds: start.elapsed().as_secs_f64(),
        designed_seconds: 0.0,
        schema_valid: false,
        fallback: false,
        cache_hit: false,
        fault: None,
    });
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}

/// `POST /map`: `{"detector": ..., "output": ...}`.
pub async fn map(
    State(state): State<Arc<SimState>>,
    r: Option<axum::Extension<super::Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let start = super::received(r);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&state, "/map", start, format!("body is not JSON: {e}")),
    };
    let item = match parse_item(&req) {
        Ok(i) => i,
        Err(e) => return bad_request(&state, "/map", start, e),
    };
    respond(&state, "/map", &headers, &body, start, vec![item], false).await
}

/// `POST /map/batch`: `{"items": [{"detector": ..., "output": ...}, ...]}`.
pub async fn map_batch(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let start = Instant::now();
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(
                &state,
                "/map/batch",
                start,
                format!("body is not JSON: {e}"),
            )
        }
    };
    let Some(arr) = req.get("items").and_then(Value::as_array) else {
        return bad_request(
            &state,
            "/map/batch",
            start,
            "missing array field `items`".into(),
        );
    };
    if arr.is_empty() || arr.len() > 100 {
        return bad_request(
            &state,
            "/map/batch",
            start,
            "`items` must hold 1 to 100 items".into(),
        );
    }
    let mut items = Vec::new();
    for (i, v) in arr.iter().enumerate() {
        match parse_item(v) {
            Ok(it) => items.push(it),
            Err(e) => return bad_request(&state, "/map/batch", start, format!("items[{i}]: {e}")),
        }
    }
    respond(&state, "/map/batch", &headers, &body, start, items, true).await
}

async fn respond(
    state: &SimState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    start: Instant,
    items: Vec<Item>,
    batch: bool,
) -> Response {
    let config = state.config();
    let cfg = &config.mapper;
    let fault = Fault::from_headers(headers);
    // Faulted requests draw from their own sequence, so a fault endpoint never shifts the
    // draws of the normal ones however the requests interleave.
    let key_path = match &fault {
        Some(f) => format!("{path}#{}", f.name()),
        None => path.to_string(),
    };
    let (mut rng, occurrence) = state.rng_for(&key_path, body);
    // The simulated response cache: an identical request seen before is a hit.
    let cache_hit = occurrence > 1;
    // Draw order is fixed: latency per item, then invalid, then fallback per item.
    let mut designed = Duration::ZERO;
    for (i, it) in items.iter().enumerate() {
        let dist = cfg.detectors.get(&it.detector).unwrap_or(&cfg.latency);
        let d = dist
            .sample(rng.next_normal())
            .mul_f64(config.profile.latency_factor());
        designed += if i == 0 {
            d
        } else {
            d.mul_f64(cfg.batch_item_factor)
        };
    }
    let invalid = rng.next_f64() < cfg.schema_invalid_rate;
    let fallbacks: Vec<bool> = items
        .iter()
        .map(|_| rng.next_f64() < cfg.fallback_rate)
        .collect();
    let confidence = 0.80 + 0.19 * rng.next_f64();

    if fault == Some(Fault::Hang) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    tokio::time::sleep(designed).await;

    let results: Vec<Value> = items
        .iter()
        .zip(&fallbacks)
        .enumerate()
        .map(|(i, (it, fb))| mapped(it, *fb, invalid && i == 0, confidence))
        .collect();
    let any_fallback = results.iter().any(|r| r["provenance"] == "fallback");
    let payload = if batch {
        json!({"results": results, "count": items.len()})
    } else {
        results.into_iter().next().unwrap_or(Value::Null)
    };
    let detector = items
        .iter()
        .map(|i| i.detector.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let json_bytes = Bytes::from(payload.to_string());

    let (status, resp_body, schema_valid, fallback): (u16, Body, bool, bool) = match &fault {
        Some(Fault::EchoAuth) => {
            let auth = headers
                .get("authorization")
                .or_else(|| headers.get("x-api-key"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let body = format!(
                "{{\"error\":\"unauthorized\",\"detail\":\"{} rejected credentials: {auth}\"}}",
                "x".repeat(130)
            );
            (401, Body::from(body), false, false)
        }
        Some(Fault::Status(code)) => (
            *code,
            Body::from(json!({"error": format!("simulated status {code}")}).to_string()),
            false,
            false,
        ),
        Some(Fault::InvalidJson) => (
            200,
            Body::from("{\"taxonomy\": [\"PII.Contact"),
            false,
            false,
        ),
        Some(Fault::Huge(n)) => (200, Body::new(HugeBody { remaining: *n }), false, false),
        Some(Fault::Truncate) => (
            200,
            Body::new(BrokenBody::new(json_bytes.slice(..json_bytes.len() / 2))),
            false,
            false,
        ),
        Some(Fault::Drip(every)) => (
            200,
            Body::new(DripBody {
                data: json_bytes.clone(),
                every: *every,
                sleep: None,
            }),
            !invalid,
            any_fallback,
        ),
        Some(Fault::Hang) | None => (200, Body::from(json_bytes), !invalid, any_fallback),
    };
    state.record(TruthRecord {
        seq: 0,
        path: path.into(),
        detector,
        items: items.len(),
        status,
        server_seconds: start.elapsed().as_secs_f64(),
        designed_seconds: designed.as_secs_f64(),
        schema_valid,
        fallback,
        cache_hit,
        fault: fault.as_ref().map(Fault::name),
    });
    let mut resp = Response::new(resp_body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "x-cache",
        http::HeaderValue::from_static(if cache_hit { "HIT" } else { "MISS" }),
    );
    if status == 429 {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxonomy_knows_the_golden_detectors() {
        assert_eq!(
            taxonomy("presidio", "EMAIL_ADDRESS"),
            Some("PII.Contact.Email")
        );
        assert_eq!(taxonomy("presidio", "nope"), None);
    }

    #[test]
    fn invalid_items_break_the_schema_shape() {
        let it = Item {
            detector: "presidio".into(),
            output: "EMAIL_ADDRESS".into(),
        };
        let ok = mapped(&it, false, false, 0.9);
        assert!(ok["taxonomy"].is_array());
        assert_eq!(ok["provenance"], "model");
        let bad = mapped(&it, false, true, 0.9);
        assert!(bad["taxonomy"].is_string());
        let fb = mapped(&it, true, false, 0.9);
        assert_eq!(fb["provenance"], "fallback");
        let unknown = mapped(
            &Item {
                detector: "x".into(),
                output: "y".into(),
            },
            false,
            false,
            0.9,
        );
        assert_eq!(unknown["provenance"], "fallback");
    }
}
