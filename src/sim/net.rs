//! Network routes of the simulator: redirects (`/net/redirect`, `/net/loop/{name}`), a
//! request echo that records the headers each request carried and the connection it came
//! on (`/net/echo`), and an OAuth2 token endpoint issuing short-lived tokens with a route
//! that takes only a live one (`/oauth/token`, `/oauth/protected`). `GET /net/seen` returns
//! what these routes saw.
//!
//! `?delay_ms=N` on the token endpoint and the protected route delays the answer.
//! The token endpoint takes the client-credentials grant (client authenticated by HTTP
//! Basic or in the form) and the JWT-bearer grant (a service account's RS256 assertion,
//! verified against `net.jwt_public_key` when configured). Like the rest of the simulator
//! it parses requests itself and shares no code with the probe side.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::SimState;

/// The network routes' behaviour (`net:` in the simulator's configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// The one client the token endpoint knows.
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of an issued token (seconds), unless the token URL asks `?ttl=SECONDS`.
    pub token_ttl_seconds: f64,
    /// PEM public key that JWT-bearer assertions must verify against (RS256); without it
    /// an assertion's claims are checked but not its signature.
    pub jwt_public_key: Option<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            client_id: "canary-client".into(),
            client_secret: "canary-client-secret".into(),
            token_ttl_seconds: 2.0,
            jwt_public_key: None,
        }
    }
}

/// One request to `/net/*` or `/oauth/protected`, as it arrived.
#[derive(Debug, Clone, Serialize)]
pub struct SeenRequest {
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The peer's address: one per TCP connection.
    pub peer: Option<String>,
    /// The `Host` header (HTTP/1.1) or the `:authority` (HTTP/2).
    pub host: Option<String>,
    /// Every header but `host`, names lowercased.
    pub headers: HashMap<String, String>,
    pub body_bytes: usize,
    pub status: u16,
}

/// One token request.
#[derive(Debug, Clone, Serialize)]
pub struct TokenFetch {
    pub grant: String,
    pub client_id: Option<String>,
    pub issued: bool,
    pub ttl_seconds: f64,
    /// Claims of a JWT-bearer assertion, and whether its signature verified.
    pub claims: Option<Value>,
    pub signature_verified: Option<bool>,
}

/// What the network routes saw.
#[derive(Default)]
pub struct NetState {
    seen: Mutex<Vec<SeenRequest>>,
    fetches: Mutex<Vec<TokenFetch>>,
    tokens: Mutex<HashMap<String, Instant>>,
    issued: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NetState {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        method: &Method,
        path: String,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        host: Option<String>,
        body_bytes: usize,
        status: u16,
    ) {
        let mut seen = lock(&self.seen);
        let seq = seen.len() as u64 + 1;
        seen.push(SeenRequest {
            seq,
            method: method.to_string(),
            path,
            peer: peer.map(|p| p.to_string()),
            host: host.or_else(|| {
                headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            }),
            headers: headers
                .iter()
                .filter(|(n, _)| n.as_str() != "host")
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body_bytes,
            status,
        });
    }
}

type Peer = Option<axum::Extension<ConnectInfo<super::Peer>>>;

fn peer(p: Peer) -> Option<SocketAddr> {
    p.map(|axum::Extension(ConnectInfo(p))| p.addr)
}

fn authority(uri: &axum::http::Uri) -> Option<String> {
    uri.authority().map(|a| a.to_string())
}

/// `/net/redirect?to=URL[&status=302]`: a redirect to `to`.
async fn redirect(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: axum::http::Uri,
    p: Peer,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let status = q
        .get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (300..400).contains(s))
        .unwrap_or(302);
    let to = q.get("to").cloned().unwrap_or_else(|| "/net/echo".into());
    state.net.record(
        &method,
        uri.path().to_string(),
        peer(p),
        &headers,
        authority(&uri),
        body.len(),
        status,
    );
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    (code, [("location", to)], "redirecting\n").into_response()
}

/// `/net/loop/{name}`: `a` and `b` redirect to each other, `self` to itself.
async fn redirect_loop(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: axum::http::Uri,
    p: Peer,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let to = match name.as_str() {
        "a" => "/net/loop/b",
        "b" => "/net/loop/a",
        _ => "/net/loop/self",
    };
    state.net.record(
        &method,
        uri.path().to_string(),
        peer(p),
        &headers,
        authority(&uri),
        0,
        302,
    );
    (StatusCode::FOUND, [("location", to)], "loop\n").into_response()
}

/// `/net/echo`: records the request and answers what it saw.
async fn echo(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: axum::http::Uri,
    p: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.net.record(
        &method,
        uri.path().to_string(),
        peer(p),
        &headers,
        authority(&uri),
        body.len(),
        200,
    );
    Json(json!({ "ok": true, "method": method.to_string(), "body_bytes": body.len() }))
        .into_response()
}

async fn seen(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({
        "requests": *lock(&state.net.seen),
        "token_fetches": *lock(&state.net.fetches),
    }))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn oauth_error(status: StatusCode, code: &str, desc: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": desc })),
    )
        .into_response()
}

/// `POST /oauth/token[?ttl=SECONDS]`: client credentials or a JWT-bearer assertion.
async fn token(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let cfg = state.config().net;
    delay(&q).await;
    let f = form(&body);
    let ttl = q
        .get("ttl")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(cfg.token_ttl_seconds);
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    let mut fetch = TokenFetch {
        grant: grant.clone(),
        client_id: None,
        issued: false,
        ttl_seconds: ttl,
        claims: None,
        signature_verified: None,
    };
    let ok = match grant.as_str() {
        "client_credentials" => {
            let basic = headers
                .get("authorization")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                });
            let (id, secret) = basic.unwrap_or_else(|| {
                (
                    f.get("client_id").cloned().unwrap_or_default(),
                    f.get("client_secret").cloned().unwrap_or_default(),
                )
            });
            fetch.client_id = Some(id.clone());
            id == cfg.client_id && secret == cfg.client_secret
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let assertion = f.get("assertion").cloned().unwrap_or_default();
            let claims = assertion
                .split('.')
                .nth(1)
                .and_then(|p| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(p)
                        .ok()
                })
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let verified = cfg.jwt_public_key.as_deref().map(|pem| {
                let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) else {
                    return false;
                };
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                v.validate_aud = false;
                jsonwebtoken::decode::<Value>(&assertion, &key, &v).is_ok()
            });
            fetch.client_id = claims
                .as_ref()
                .and_then(|c| c["iss"].as_str())
                .map(str::to_string);
            let ok = claims.is_some() && verified != Some(false);
            fetch.claims = claims;
            fetch.signature_verified = verified;
            ok
        }
        _ => {
            lock(&state.net.fetches).push(fetch);
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use client_credentials or jwt-bearer",
            );
        }
    };
    if !ok {
        lock(&state.net.fetches).push(fetch);
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or bad credentials",
        );
    }
    let n = {
        let mut i = lock(&state.net.issued);
        *i += 1;
        *i
    };
    let (mut rng, _) = state.rng_for("/oauth/token", &n.to_le_bytes());
    let tok = format!("sim-token-{n}-{:016x}", rng.next_u64());
    lock(&state.net.tokens).insert(tok.clone(), Instant::now() + Duration::from_secs_f64(ttl));
    fetch.issued = true;
    lock(&state.net.fetches).push(fetch);
    Json(json!({ "access_token": tok, "token_type": "Bearer", "expires_in": ttl })).into_response()
}

/// Waits `?delay_ms=N` (at most 10 s) before answering.
async fn delay(q: &HashMap<String, String>) {
    if let Some(ms) = q.get("delay_ms").and_then(|d| d.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    }
}

/// `/oauth/protected[?delay_ms=N]`: 200 with a live bearer token; 401 (echoing the token)
/// otherwise.
async fn protected(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: axum::http::Uri,
    p: Peer,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let tok = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let live = lock(&state.net.tokens)
        .get(&tok)
        .is_some_and(|exp| Instant::now() < *exp);
    // Judged on arrival, as a real server authenticates; the delay is the work after it.
    delay(&q).await;
    let status = if live { 200 } else { 401 };
    state.net.record(
        &method,
        uri.path().to_string(),
        peer(p),
        &headers,
        authority(&uri),
        body.len(),
        status,
    );
    if live {
        Json(json!({ "ok": true })).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            format!("token {tok} is unknown or expired\n"),
        )
            .into_response()
    }
}

/// Adds the network routes.
pub fn routes(router: axum::Router<Arc<SimState>>) -> axum::Router<Arc<SimState>> {
    use axum::routing::{any, get, post};
    router
        .route("/net/redirect", any(redirect))
        .route("/net/loop/{name}", any(redirect_loop))
        .route("/net/echo", any(echo))
        .route("/net/seen", get(seen))
        .route("/oauth/token", post(token))
        .route("/oauth/protected", any(protected))
}
