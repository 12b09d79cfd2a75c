//! `canary sim`: a real loopback server (axum) that imitates AI endpoints, with seeded,
//! deterministic behaviour and recorded ground truth (`GET /truth`).
//!
//! It shares no parsing or measuring code with the probe side: it writes its own JSON and
//! takes its own timestamps, so a bug in a probe cannot be cancelled by the same bug here.
//! Faults are injected per request with the `x-sim-fault` header (see [`fault::Fault`]).

pub mod api;
pub mod chat;
pub mod fault;
pub mod judge;
pub mod mapper;
pub mod net;
pub mod preview;
pub mod rag;
pub mod streams;
pub mod tts;
pub mod voice;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::rng;
use crate::suite::units::parse_duration;

/// A latency distribution: log-normal through the given median and p95.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyDist {
    #[serde(with = "secs_str")]
    pub median: Duration,
    #[serde(with = "secs_str")]
    pub p95: Duration,
}

impl LatencyDist {
    pub fn ms(median: u64, p95: u64) -> Self {
        LatencyDist {
            median: Duration::from_millis(median),
            p95: Duration::from_millis(p95),
        }
    }

    /// Draws one latency from a standard normal `z`, capped at 10 minutes.
    pub fn sample(&self, z: f64) -> Duration {
        let m = self.median.as_secs_f64().max(1e-6);
        let q = self.p95.as_secs_f64().max(m);
        let sigma = (q / m).ln() / 1.644_853_626_951_472_2;
        Duration::from_secs_f64((m * (sigma * z).exp()).min(600.0))
    }
}

pub(crate) mod secs_str {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// The mapper's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapperConfig {
    /// Latency of a detector not listed in `detectors`.
    pub latency: LatencyDist,
    /// Per-detector latency.
    pub detectors: BTreeMap<String, LatencyDist>,
    /// Share of responses that violate the mapper schema.
    pub schema_invalid_rate: f64,
    /// Share of answers served by the rule-only fallback.
    pub fallback_rate: f64,
    /// Extra latency per batch item beyond the first, as a share of one item's latency.
    pub batch_item_factor: f64,
}

impl Default for MapperConfig {
    fn default() -> Self {
        MapperConfig {
            latency: LatencyDist::ms(40, 120),
            detectors: BTreeMap::from([
                ("presidio".to_string(), LatencyDist::ms(35, 110)),
                ("llama-guard".to_string(), LatencyDist::ms(130, 330)),
                ("deberta-toxicity".to_string(), LatencyDist::ms(25, 70)),
                ("regex-secrets".to_string(), LatencyDist::ms(4, 12)),
            ]),
            schema_invalid_rate: 0.004,
            fallback_rate: 0.06,
            batch_item_factor: 0.3,
        }
    }
}

/// The simulator's configuration (`canary sim --config FILE`, YAML or JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub seed: u64,
    pub mapper: MapperConfig,
    /// The preview-job service (`/preview`).
    pub preview: preview::PreviewConfig,
    /// The RAG service whose index lags its truth (`/rag/ask`, `/truth/facts`).
    pub rag: rag::RagConfig,
    /// A behaviour preset, so that two simulators can play baseline and candidate:
    /// `baseline` (default), `slow` (every latency ×1.3), `multi-step-wrong` (chat answers to
    /// multi-step prompts are wrong), `faster-wrong` (chat answers show twice as fast, and
    /// multi-step answers are wrong), `forgetful` (follow-ups in a conversation are answered
    /// without the conversation).
    pub profile: Profile,
    /// The judge on the chat route (models `sim-judge*`).
    pub judge: judge::JudgeConfig,
    /// Redirect, echo and OAuth2 routes (`/net/*`, `/oauth/*`).
    pub net: net::NetConfig,
}

/// Behaviour presets of the simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    #[default]
    Baseline,
    Slow,
    MultiStepWrong,
    FasterWrong,
    Forgetful,
}

impl Profile {
    /// Factor applied to every latency.
    pub fn latency_factor(self) -> f64 {
        match self {
            Profile::Slow => 1.3,
            Profile::FasterWrong => 0.5,
            _ => 1.0,
        }
    }

    pub fn wrong_multi_step(self) -> bool {
        matches!(self, Profile::MultiStepWrong | Profile::FasterWrong)
    }

    /// Follow-ups in a conversation are answered without the conversation.
    pub fn forgetful(self) -> bool {
        self == Profile::Forgetful
    }
}

/// One request as the simulator saw it: the ground truth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthRecord {
    pub seq: u64,
    pub path: String,
    /// Detector (or detectors of a batch, comma-joined).
    pub detector: String,
    pub items: usize,
    pub status: u16,
    /// Server-side time from request received to response ready (the designed latency plus overhead).
    pub server_seconds: f64,
    /// The latency the simulator drew for this request.
    pub designed_seconds: f64,
    pub schema_valid: bool,
    pub fallback: bool,
    /// Served from the simulated cache (an identical request was answered before).
    pub cache_hit: bool,
    pub fault: Option<String>,
}

/// Shared state of a running simulator.
pub struct SimState {
    config: std::sync::RwLock<SimConfig>,
    truth: Mutex<Vec<TruthRecord>>,
    streams: Mutex<Vec<chat::StreamTruth>>,
    voices: Mutex<Vec<voice::VoiceTruth>>,
    traceparents: Mutex<Vec<TraceparentRecord>>,
    judges: Mutex<Vec<judge::JudgeTruth>>,
    embedded: std::sync::atomic::AtomicU64,
    pub preview: preview::PreviewState,
    pub rag: rag::RagState,
    pub net: net::NetState,
    occurrences: Mutex<HashMap<u64, u64>>,
}

impl SimState {
    pub fn new(config: SimConfig) -> Arc<Self> {
        Arc::new(SimState {
            config: std::sync::RwLock::new(config),
            truth: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            voices: Mutex::new(Vec::new()),
            traceparents: Mutex::new(Vec::new()),
            judges: Mutex::new(Vec::new()),
            embedded: std::sync::atomic::AtomicU64::new(0),
            preview: Default::default(),
            rag: Default::default(),
            net: Default::default(),
            occurrences: Mutex::new(HashMap::new()),
        })
    }

    /// A random stream for this request: seed, request identity and how many times an
    /// identical request was seen before (so repeats differ, deterministically). Also
    /// returns that count (1 for the first time), which the simulated cache uses.
    pub fn rng_for(&self, path: &str, body: &[u8]) -> (rng::SplitMix64, u64) {
        let key = rng::fnv1a(path.as_bytes()) ^ rng::fnv1a(body).rotate_left(17);
        let n = {
            let mut occ = self.occurrences.lock().unwrap_or_else(|e| e.into_inner());
            let e = occ.entry(key).or_insert(0);
            *e += 1;
            *e
        };
        let seed = self.config().seed ^ key ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (rng::SplitMix64::new(seed), n)
    }

    pub fn record(&self, mut r: TruthRecord) -> u64 {
        let mut t = self.truth.lock().unwrap_or_else(|e| e.into_inner());
        r.seq = t.len() as u64 + 1;
        let seq = r.seq;
        t.push(r);
        seq
    }

    /// The current configuration.
    pub fn config(&self) -> SimConfig {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Replaces the mapper's behaviour at runtime (`PUT /config/mapper`), e.g. to degrade it.
    pub fn set_mapper(&self, mapper: MapperConfig) {
        if let Ok(mut c) = self.config.write() {
            c.mapper = mapper;
        }
    }

    pub fn record_stream(&self, mut r: chat::StreamTruth) {
        let mut t = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        r.seq = t.len() as u64 + 1;
        t.push(r);
    }

    pub fn record_voice(&self, mut r: voice::VoiceTruth) {
        let mut t = self.voices.lock().unwrap_or_else(|e| e.into_inner());
        r.seq = t.len() as u64 + 1;
        t.push(r);
    }

    pub fn record_judge(&self, mut r: judge::JudgeTruth) {
        let mut t = self.judges.lock().unwrap_or_else(|e| e.into_inner());
        r.seq = t.len() as u64 + 1;
        t.push(r);
    }

    /// Judge calls answered so far.
    pub fn judges(&self) -> Vec<judge::JudgeTruth> {
        self.judges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn count_embeddings(&self, n: u64) {
        self.embedded
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Texts embedded so far.
    pub fn embedded(&self) -> u64 {
        self.embedded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets every ground-truth record (requests, streams and voice answers).
    pub fn clear_truth(&self) {
        self.judges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.embedded.store(0, std::sync::atomic::Ordering::Relaxed);
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.voices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.traceparents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The `traceparent` header of every request to an endpoint route, in arrival order.
    pub fn traceparents(&self) -> Vec<TraceparentRecord> {
        self.traceparents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn voices(&self) -> Vec<voice::VoiceTruth> {
        self.voices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn streams(&self) -> Vec<chat::StreamTruth> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn truth(&self) -> Vec<TruthRecord> {
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The W3C `traceparent` header a request arrived with (as sent, unparsed), so a test can
/// match canary's exported span with the request the target saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceparentRecord {
    pub method: String,
    pub path: String,
    pub traceparent: Option<String>,
    /// Wall-clock arrival (seconds since the Unix epoch).
    pub received_unix: f64,
}

#[derive(Serialize)]
struct TruthResponse {
    seed: u64,
    requests: Vec<TruthRecord>,
    streams: Vec<chat::StreamTruth>,
    voices: Vec<voice::VoiceTruth>,
    jobs: Vec<preview::JobTruth>,
    facts: Vec<rag::FactWrite>,
    traceparents: Vec<TraceparentRecord>,
    judges: Vec<judge::JudgeTruth>,
    embedded: u64,
}

async fn truth(State(state): State<Arc<SimState>>) -> Json<TruthResponse> {
    Json(TruthResponse {
        seed: state.config().seed,
        requests: state.truth(),
        streams: state.streams(),
        voices: state.voices(),
        jobs: state.preview.truth(),
        facts: rag::truth_records(&state),
        traceparents: state.traceparents(),
        judges: state.judges(),
        embedded: state.embedded(),
    })
}

async fn reset(State(state): State<Arc<SimState>>) -> &'static str {
    state.clear_truth();
    "cleared\n"
}

/// When the request reached the simulator, the time base of every ground-truth record: the
/// kernel's receive stamp of the request's last segment read so far (its head, at least), so
/// that the time the simulator took to wake up and parse it is on the record's clock, as it
/// is on the client's. Without kernel stamps, the instant the middleware ran.
#[derive(Debug, Clone, Copy)]
pub struct Received(pub std::time::Instant);

/// A connection's peer and the arrival stamps of what it sent.
///
/// The stamps come from the probes' own reader ([`crate::net::rxstamp`]): a bias there
/// would show twice in a comparison with the truth (late on the probe's side, early here),
/// never cancel.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub stamps: crate::net::rxstamp::RxStamps,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, StampingListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, StampingListener>) -> Peer {
        Peer {
            addr: *s.remote_addr(),
            stamps: s.io().stamps(),
        }
    }
}

/// A TCP listener whose connections stamp every read with its arrival, with no Nagle delay
/// (small stream writes leave at once, as a real streaming server sends them).
pub struct StampingListener(tokio::net::TcpListener);

impl axum::serve::Listener for StampingListener {
    type Io = crate::net::rxstamp::StampedTcp;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (crate::net::rxstamp::StampedTcp::new(tcp).0, addr);
                }
                // A connection that failed before it was accepted concerns only its client;
                // anything else (out of file descriptors) is waited out.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    tracing::warn!("simulator: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

async fn stamp_arrival(
    State(state): State<Arc<SimState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let now = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map_or_else(std::time::Instant::now, |c| c.0.stamps.last());
    req.extensions_mut().insert(Received(now));
    // Every request but the simulator's own ground-truth, health and metrics routes.
    let path = req.uri().path();
    if !(path.starts_with("/truth") || path == "/healthz" || path == "/metrics") {
        let r = TraceparentRecord {
            method: req.method().to_string(),
            path: path.to_string(),
            traceparent: req
                .headers()
                .get("traceparent")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            received_unix: unix_seconds(now),
        };
        let mut seen = state.traceparents.lock().unwrap_or_else(|e| e.into_inner());
        // A long-running simulator keeps the first 100,000 (`DELETE /truth` clears them).
        if seen.len() < 100_000 {
            seen.push(r);
        }
    }
    next.run(req).await
}

/// Wall-clock time (seconds since the Unix epoch) of a monotonic instant of this process, so
/// that ground truth can be compared with another process's stamps on the same machine.
pub fn unix_seconds(t: std::time::Instant) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs_f64() - t.elapsed().as_secs_f64()
}

/// The arrival stamp of a request (now, if the middleware did not run).
pub fn received(r: Option<axum::Extension<Received>>) -> std::time::Instant {
    r.map(|axum::Extension(Received(t))| t)
        .unwrap_or_else(std::time::Instant::now)
}

async fn put_mapper(
    State(state): State<Arc<SimState>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::from_slice::<MapperConfig>(&body) {
        Ok(m) => {
            state.set_mapper(m);
            "ok\n".into_response()
        }
        Err(e) => (
            axum::http::StatusCode::BAD_REQUEST,
            format!("invalid mapper config: {e}\n"),
        )
            .into_response(),
    }
}

/// The simulator's routes.
pub fn router(state: Arc<SimState>) -> Router {
    net::routes(chat::stream_routes(Router::new()))
        .route("/map", post(mapper::map))
        .route("/map/batch", post(mapper::map_batch))
        .route(
            chat::Api::OpenaiChat.path(),
            chat::route(chat::Api::OpenaiChat),
        )
        .route(
            chat::Api::OpenaiResponses.path(),
            chat::route(chat::Api::OpenaiResponses),
        )
        .route(
            chat::Api::AnthropicMessages.path(),
            chat::route(chat::Api::AnthropicMessages),
        )
        .route("/v1/embeddings", post(judge::embeddings))
        .route("/rag/ask", post(rag::ask))
        .route("/truth/facts/{key}", get(rag::truth))
        .route("/admin/facts/{key}", axum::routing::put(rag::write))
        .route("/preview", post(preview::submit))
        .route("/preview/{id}", get(preview::status))
        .route("/preview/{id}/events", get(preview::events))
        .route("/metrics", get(preview::metrics))
        .route("/v1/voice", get(voice::voice))
        .route("/v1/realtime", get(voice::realtime))
        .route("/v1/audio/speech", post(tts::speech))
        .route("/v1/tts/ws", get(tts::ws))
        .route("/truth", get(truth).delete(reset))
        .route("/config/mapper", axum::routing::put(put_mapper))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(fault::layer))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stamp_arrival,
        ))
        .with_state(state)
}

/// Serves on an already-bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<SimState>) -> std::io::Result<()> {
    // The peer of each request (one per connection): its address for the network routes,
    // its arrival stamps for the truth's time base.
    axum::serve(
        StampingListener(listener),
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .await
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_hits_its_median_and_p95() {
        let d = LatencyDist::ms(100, 300);
        assert!((d.sample(0.0).as_secs_f64() - 0.1).abs() < 1e-9);
        assert!((d.sample(1.644_853_626_951_472_2).as_secs_f64() - 0.3).abs() < 1e-6);
    }

    #[test]
    fn config_parses_durations_and_rejects_unknown_keys() {
        let c: SimConfig = serde_json::from_value(serde_json::json!({
            "seed": 3, "mapper": {"latency": {"median": "10ms", "p95": "20ms"}, "fallback_rate": 0.5}
        }))
        .unwrap();
        assert_eq!(c.mapper.latency.median, Duration::from_millis(10));
        assert_eq!(c.mapper.fallback_rate, 0.5);
        assert!(serde_json::from_value::<SimConfig>(serde_json::json!({"sed": 1})).is_err());
    }

    #[test]
    fn repeats_of_one_request_draw_differently_but_reproducibly() {
        let a = SimState::new(SimConfig {
            seed: 9,
            ..Default::default()
        });
        let b = SimState::new(SimConfig {
            seed: 9,
            ..Default::default()
        });
        let (mut a1, _) = a.rng_for("/map", b"x");
        let (mut a2, _) = a.rng_for("/map", b"x");
        let (mut b1, _) = b.rng_for("/map", b"x");
        let (x1, x2, y1) = (a1.next_u64(), a2.next_u64(), b1.next_u64());
        assert_ne!(x1, x2);
        assert_eq!(x1, y1);
    }
}
