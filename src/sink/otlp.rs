//! OpenTelemetry export over OTLP/HTTP with protobuf bodies (`--otlp`, `--otlp-traces`, the
//! standard `OTEL_EXPORTER_OTLP_*` variables), built on the official message definitions of
//! the `opentelemetry-proto` crate (its prost types; no gRPC).
//!
//! Metrics come from the same [`MetricsModel`] as every Prometheus output: the same families,
//! histogram buckets (`explicit_bounds`), SLO event counters and ratio counters, with
//! cumulative temporality. Counts are cumulative across `canary run` invocations when a state
//! file keeps them (`--state FILE`: `FILE` with the extension `otlp.json`), with the start
//! time of the first run; without one every run starts at zero with its own start time (a
//! reset, as a restarted process reports). Region and suite are resource attributes beside
//! `service.name`; GenAI semantic-convention attributes are added where they apply.
//!
//! Traces: one span per case run with its events, its outcome as the status and the child
//! spans recorded during the run (`timeline::trace`). What the collector does not take is
//! spooled (`--spool`) and delivered first by the next run, like a push.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::http_out::{request, with_retries, Failure};
use super::metrics::{Kind, Labels, MetricsModel, Value};
use crate::observation::Observation;
use crate::suite::{Protocol, Suite};
use crate::timeline::trace::AttrValue;

/// Which signal a URL takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Metrics,
    Traces,
}

impl Signal {
    fn env(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS",
            Signal::Traces => "TRACES",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "v1/metrics",
            Signal::Traces => "v1/traces",
        }
    }
}

/// Where one signal goes: the full URL and the headers sent with it (values are secrets).
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &crate::secret::redact(&self.url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The OTLP outputs of a run, resolved from the flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub metrics: Option<Target>,
    pub traces: Option<Target>,
    /// `service.name` (`OTEL_SERVICE_NAME`, default `canary`) and `OTEL_RESOURCE_ATTRIBUTES`.
    pub service_name: String,
    pub resource: Vec<(String, String)>,
    /// Where cumulative counts are kept across runs (`--state FILE` → `FILE.otlp.json`).
    pub state: Option<PathBuf>,
}

impl Config {
    pub fn enabled(&self) -> bool {
        self.metrics.is_some() || self.traces.is_some()
    }

    /// Resolves the flags (full URLs) and the standard variables: the per-signal
    /// `OTEL_EXPORTER_OTLP_{METRICS,TRACES}_ENDPOINT` (full URLs), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` as a base (`/v1/metrics`, `/v1/traces` appended);
    /// `OTEL_EXPORTER_OTLP_HEADERS` and the per-signal `..._HEADERS` (`k=v,k2=v2`,
    /// percent-encoded values; registered as secrets); `..._TIMEOUT` (ms);
    /// `..._PROTOCOL` must be `http/protobuf` when set; `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`. The error names the variable and the fix.
    pub fn resolve(
        metrics_flag: Option<&str>,
        traces_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let target = |signal: Signal, flag: Option<&str>| -> Result<Option<Target>, String> {
            let specific = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env());
            let url = match (flag, get(&specific), get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
                (Some(f), ..) => f.to_string(),
                (None, Some(u), _) => u,
                (None, None, Some(base)) => {
                    if base.ends_with('/') {
                        format!("{base}{}", signal.path())
                    } else {
                        format!("{base}/{}", signal.path())
                    }
                }
                (None, None, None) => return Ok(None),
            };
            let what = match flag {
                Some(_) if signal == Signal::Metrics => "--otlp".to_string(),
                Some(_) => "--otlp-traces".to_string(),
                None => specific.clone(),
            };
            let uri: http::Uri = url
                .parse()
                .map_err(|e| format!("{what}: {url:?} is not a URL: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(format!(
                    "{what}: {url:?} is not an http(s) URL; give the collector's OTLP/HTTP address, e.g. http://collector:4318/{}",
                    signal.path()
                ));
            }
            for k in [
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env()),
            ] {
                if let Some(p) = get(&k).filter(|p| p.trim() != "http/protobuf") {
                    return Err(format!(
                        "{k}={p}: canary exports OTLP over HTTP with protobuf bodies only; set it to http/protobuf (or unset it) and point the endpoint at the collector's HTTP port (4318)"
                    ));
                }
            }
            let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
            for k in [
                "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
                format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.env()),
            ] {
                if let Some(text) = env(&k) {
                    for (n, v) in parse_headers(&k, &text)? {
                        headers.retain(|(h, _)| *h != n);
                        headers.push((n, v));
                    }
                }
            }
            let mut timeout = Duration::from_secs(10);
            for k in [
                "OTEL_EXPORTER_OTLP_TIMEOUT".to_string(),
                format!("OTEL_EXPORTER_OTLP_{}_TIMEOUT", signal.env()),
            ] {
                if let Some(ms) = get(&k) {
                    let n: u64 = ms.trim().parse().map_err(|_| {
                        format!("{k}={ms}: not a number of milliseconds (e.g. 10000)")
                    })?;
                    timeout = Duration::from_millis(n.max(1));
                }
            }
            Ok(Some(Target {
                url,
                headers,
                timeout,
            }))
        };
        let mut resource = Vec::new();
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for part in attrs.split(',').filter(|p| !p.trim().is_empty()) {
                let Some((k, v)) = part.split_once('=') else {
                    return Err(format!(
                        "OTEL_RESOURCE_ATTRIBUTES: {part:?} is not key=value; write e.g. deployment.environment=prod,team=platform"
                    ));
                };
                resource.push((k.trim().to_string(), percent_decode(v.trim())));
            }
        }
        Ok(Config {
            metrics: target(Signal::Metrics, metrics_flag)?,
            traces: target(Signal::Traces, traces_flag)?,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "canary".to_string()),
            resource,
            state: None,
        })
    }
}

/// `k=v,k2=v2` with percent-encoded values (the OTLP exporter convention). Every value is
/// registered as a secret, so it is redacted wherever it might be printed.
fn parse_headers(var: &str, text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!(
                "{var}: an entry is not name=value; write e.g. authorization=Bearer%20TOKEN,x-scope-orgid=team"
            ));
        };
        let value = percent_decode(v.trim());
        crate::secret::register(&value);
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| format!("{var}: {:?} is not a valid header name", k.trim()))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{var}: the value of {name} is not a valid header value"))?;
        value.set_sensitive(true);
        out.push((name, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kv(key: &str, value: AttrValue) -> KeyValue {
    let v = match value {
        AttrValue::Str(s) => any_value::Value::StringValue(s),
        AttrValue::Int(i) => any_value::Value::IntValue(i),
        AttrValue::Float(f) => any_value::Value::DoubleValue(f),
        AttrValue::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, AttrValue::Str(value.to_string()))
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The GenAI semantic conventions' `gen_ai.system` of a protocol, where it names one.
pub fn gen_ai_system(p: Protocol) -> Option<&'static str> {
    p.info().gen_ai_system
}

/// The resource of one suite's export: `service.name`, `service.version`, `region`,
/// `suite`, then `OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource(cfg: &Config, region: &str, suite: &str) -> Resource {
    let mut attributes = vec![
        s("service.name", &cfg.service_name),
        s("service.version", env!("CARGO_PKG_VERSION")),
        s("region", region),
        s("suite", suite),
    ];
    for (k, v) in &cfg.resource {
        if !attributes.iter().any(|a| &a.key == k) {
            attributes.push(s(k, v));
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "canary".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// A series' data point attributes: its labels less `region` and `suite` (on the resource),
/// `kind` of the token counter as `gen_ai.token.type`, and the endpoint's `gen_ai.system`
/// and `gen_ai.request.model` where the suite says them.
fn point_attributes(family: &str, labels: &Labels, suite: &Suite) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(labels.len() + 2);
    for (k, v) in labels {
        match k.as_str() {
            "region" | "suite" => {}
            "kind" if family == super::metrics::TOKENS => out.push(s("gen_ai.token.type", v)),
            _ => out.push(s(k, v)),
        }
    }
    let endpoint = labels
        .iter()
        .find(|(k, _)| k == "endpoint")
        .and_then(|(_, e)| suite.endpoints.get(e));
    if let Some(e) = endpoint {
        if let Some(sys) = gen_ai_system(e.protocol) {
            out.push(s("gen_ai.system", sys));
        }
        if let Some(m) = &e.model {
            out.push(s("gen_ai.request.model", m));
        }
    }
    out
}

/// The OTLP metrics of a model: every family with series, cumulative from `start`.
pub fn metrics_request(
    model: &MetricsModel,
    suite: &Suite,
    cfg: &Config,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (t0, t1) = (nanos(start), nanos(now).max(nanos(start)));
    let cumulative = pm::AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::new();
    for f in model.families.values().filter(|f| !f.series.is_empty()) {
        let unit = match f.unit {
            Some("seconds") => "s",
            _ => "",
        };
        let data = match f.kind {
            Kind::Counter | Kind::Gauge => {
                let points = f
                    .series
                    .iter()
                    .filter_map(|(labels, v)| {
                        let x = match v {
                            Value::Counter(x) | Value::Gauge(x) => *x,
                            Value::Histogram { .. } => return None,
                        };
                        Some(pm::NumberDataPoint {
                            attributes: point_attributes(&f.name, labels, suite),
                            start_time_unix_nano: if f.kind == Kind::Counter { t0 } else { 0 },
                            time_unix_nano: t1,
                            value: Some(pm::number_data_point::Value::AsDouble(x)),
                            ..Default::default()
                        })
                    })
                    .collect();
                if f.kind == Kind::Counter {
                    pm::metric::Data::Sum(pm::Sum {
                        data_points: points,
                        aggregation_temporality: cumulative,
                        is_monotonic: true,
                    })
                } else {
                    pm::metric::Data::Gauge(pm::Gauge {
                        data_points: points,
                    })
                }
            }
            Kind::Histogram => {
                let points = f
                    .series
                    .iter()
                    .filter_map(|(labels, v)| {
                        let Value::Histogram { counts, sum } = v else {
                            return None;
                        };
                        let exemplars = model
                            .exemplars
                            .get(&(f.name.clone(), labels.clone()))
                            .map(|m| {
                                m.values()
                                    .map(|e| pm::Exemplar {
                                        time_unix_nano: (e.unix * 1e9) as u64,
                                        trace_id: unhex(&e.trace_id),
                                        span_id: unhex(&e.span_id),
                                        value: Some(pm::exemplar::Value::AsDouble(e.value)),
                                        ..Default::default()
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        Some(pm::HistogramDataPoint {
                            attributes: point_attributes(&f.name, labels, suite),
                            start_time_unix_nano: t0,
                            time_unix_nano: t1,
                            count: counts.iter().sum(),
                            sum: Some(*sum),
                            bucket_counts: counts.clone(),
                            explicit_bounds: f.buckets.clone(),
                            exemplars,
                            ..Default::default()
                        })
                    })
                    .collect();
                pm::metric::Data::Histogram(pm::Histogram {
                    data_points: points,
                    aggregation_temporality: cumulative,
                })
            }
        };
        metrics.push(pm::Metric {
            name: f.name.clone(),
            description: f.help.clone(),
            unit: unit.to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![pm::ResourceMetrics {
            resource: Some(resource(cfg, &model.region, &suite.name)),
            scope_metrics: vec![pm::ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The spans of a run's traced observations: one per case run (kind client), its events,
/// its outcome as the status, and its child spans.
pub fn trace_request(
    observations: &[Observation],
    suite: &Suite,
    region: &str,
    cfg: &Config,
) -> ExportTraceServiceRequest {
    let mut spans = Vec::new();
    for o in observations {
        let Some(t) = &o.trace else { continue };
        let endpoint = suite.endpoints.get(&o.endpoint);
        let mut attributes = vec![
            s("canary.endpoint", &o.endpoint),
            s("canary.probe", &o.probe),
            s("canary.case", &o.case_id),
            s("canary.slice", &o.slice),
            kv("canary.run", AttrValue::Int(i64::from(o.run))),
            s("canary.outcome", o.outcome.as_str()),
            kv("canary.traceparent_sent", AttrValue::Bool(t.propagated)),
        ];
        if let Some(e) = endpoint {
            attributes.push(s("canary.protocol", e.protocol.as_str()));
            attributes.push(s("url.full", &crate::secret::redact(&e.url)));
            if let Some(sys) = gen_ai_system(e.protocol) {
                attributes.push(s("gen_ai.system", sys));
            }
            if let Some(m) = &e.model {
                attributes.push(s("gen_ai.request.model", m));
            }
        }
        if let Some(m) = &t.response_model {
            attributes.push(s("gen_ai.response.model", m));
        }
        if let Some(status) = o.status {
            attributes.push(kv(
                "http.response.status_code",
                AttrValue::Int(i64::from(status)),
            ));
        }
        if let Some(tk) = &o.tokens {
            attributes.push(kv(
                "gen_ai.usage.input_tokens",
                AttrValue::Int(i64::try_from(tk.input).unwrap_or(i64::MAX)),
            ));
            attributes.push(kv(
                "gen_ai.usage.output_tokens",
                AttrValue::Int(i64::try_from(tk.output).unwrap_or(i64::MAX)),
            ));
            attributes.push(kv("canary.usage.estimated", AttrValue::Bool(tk.estimated)));
        }
        for (sli, v) in &o.latency {
            attributes.push(kv(
                &format!("canary.{}_seconds", sli.name()),
                AttrValue::Float(*v),
            ));
        }
        let status = match (&o.outcome, &o.error) {
            (crate::observation::Outcome::Ok, _) => pt::Status {
                code: pt::status::StatusCode::Ok as i32,
                message: String::new(),
            },
            (out, err) => pt::Status {
                code: pt::status::StatusCode::Error as i32,
                message: match err {
                    Some(e) => format!("{}: {}", out.as_str(), e.message),
                    None => out.as_str().to_string(),
                },
            },
        };
        let events = t
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: nanos(e.at),
                name: e.name.to_string(),
                attributes: e.attributes.iter().map(|(k, v)| kv(k, v.clone())).collect(),
                ..Default::default()
            })
            .collect();
        spans.push(pt::Span {
            trace_id: t.ctx.trace_id.to_vec(),
            span_id: t.ctx.span_id.to_vec(),
            flags: 0x100 | 1,
            name: format!("canary {}", o.probe),
            kind: pt::span::SpanKind::Client as i32,
            start_time_unix_nano: nanos(t.start),
            end_time_unix_nano: nanos(t.end),
            attributes,
            events,
            status: Some(status),
            ..Default::default()
        });
        for c in &t.children {
            spans.push(pt::Span {
                trace_id: t.ctx.trace_id.to_vec(),
                span_id: c.span_id.to_vec(),
                parent_span_id: t.ctx.span_id.to_vec(),
                flags: 0x100 | 1,
                name: c.name.clone(),
                kind: pt::span::SpanKind::Client as i32,
                start_time_unix_nano: nanos(c.start),
                end_time_unix_nano: nanos(c.end),
                attributes: c.attributes.iter().map(|(k, v)| s(k, v)).collect(),
                status: Some(match &c.error {
                    None => pt::Status {
                        code: pt::status::StatusCode::Ok as i32,
                        message: String::new(),
                    },
                    Some(m) => pt::Status {
                        code: pt::status::StatusCode::Error as i32,
                        message: m.clone(),
                    },
                }),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(resource(cfg, region, &suite.name)),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends one encoded export, with retries. A 2xx answer may still report a partial success
/// (points or spans the collector dropped): that comes back as a warning.
pub async fn send(target: &Target, signal: Signal, body: Bytes) -> Result<Option<String>, Failure> {
    let reply = with_retries(super::push::ATTEMPTS, || {
        request(
            Method::POST,
            &target.url,
            &target.headers,
            Some(body.clone()),
            Some("application/x-protobuf"),
            target.timeout,
        )
    })
    .await?;
    let partial = match signal {
        Signal::Metrics => ExportMetricsServiceResponse::decode(reply.body.as_ref())
            .ok()
            .and_then(|r| r.partial_success)
            .filter(|p| p.rejected_data_points > 0 || !p.error_message.is_empty())
            .map(|p| {
                format!(
                    "the collector at {} rejected {} data points: {}",
                    target.url, p.rejected_data_points, p.error_message
                )
            }),
        Signal::Traces => ExportTraceServiceResponse::decode(reply.body.as_ref())
            .ok()
            .and_then(|r| r.partial_success)
            .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())
            .map(|p| {
                format!(
                    "the collector at {} rejected {} spans: {}",
                    target.url, p.rejected_spans, p.error_message
                )
            }),
    };
    Ok(partial)
}

/// Cumulative OTLP counts of one region and suite across runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesState {
    /// Start of the first run counted (Unix nanoseconds): the points' start time.
    pub start_unix_nano: u64,
    /// The counts so far, in the Prometheus text format (read back with `carry_forward`).
    pub text: String,
}

/// The state file: cumulative counts per `region/suite`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub series: BTreeMap<String, SeriesState>,
}

/// `FILE` with the extension `otlp.json`, beside the fact history of `--state FILE`.
pub fn state_path(state: &Path) -> PathBuf {
    state.with_extension("otlp.json")
}

pub fn load_state(path: &Path) -> Result<State, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not canary's OTLP state ({e}); move it away to start the counts again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            version: 1,
            ..Default::default()
        }),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn save_state(path: &Path, state: &State) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("otlp.json.tmp");
    let text = serde_json::to_string(state).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The cumulative model to export: this run's counts plus those kept in the state (when
/// there is one), and the start time of the counts. The state is updated in place.
pub fn cumulative(
    model: &MetricsModel,
    suite: &str,
    run_start: SystemTime,
    state: Option<&mut State>,
) -> (MetricsModel, SystemTime) {
    let Some(state) = state else {
        return (model.clone(), run_start);
    };
    let key = format!("{}/{suite}", model.region);
    let mut m = model.clone();
    let start = match state.series.get(&key) {
        Some(prev) => {
            m.carry_forward(&super::expfmt::parse(&prev.text));
            SystemTime::UNIX_EPOCH + Duration::from_nanos(prev.start_unix_nano)
        }
        None => run_start,
    };
    state.version = 1;
    state.series.insert(
        key,
        SeriesState {
            start_unix_nano: nanos(start),
            text: m.encode_text(),
        },
    );
    (m, start)
}

/// The series of one suite in a model that holds several (serve's).
pub fn suite_part(model: &MetricsModel, suite: &str) -> MetricsModel {
    let mine = |l: &Labels| l.iter().any(|(k, v)| k == "suite" && v == suite);
    let mut m = model.clone();
    for f in m.families.values_mut() {
        f.series.retain(|l, _| mine(l));
    }
    m.exemplars.retain(|(_, l), _| mine(l));
    m
}

/// `canary serve`'s export after a probe run: the suite's series (cumulative since the model
/// was built, at start-up or the last reload) and the run's spans. No spool: a failed metrics
/// export is made good by the next one; failed spans are lost, with a warning in the log.
pub async fn export_serve(
    cfg: Config,
    model: MetricsModel,
    suite: std::sync::Arc<Suite>,
    observations: Vec<Observation>,
    now: SystemTime,
) {
    let warn = |what: &str, e: String| {
        tracing::warn!(
            suite = %suite.name,
            "OTLP {what} export failed: {}",
            crate::secret::redact(&e)
        )
    };
    if let Some(t) = &cfg.metrics {
        let part = suite_part(&model, &suite.name);
        let body =
            Bytes::from(metrics_request(&part, &suite, &cfg, model.since, now).encode_to_vec());
        match send(t, Signal::Metrics, body).await {
            Ok(Some(w)) => warn("metrics", w),
            Ok(None) => {}
            Err(e) => warn("metrics", e.to_string()),
        }
    }
    if let Some(t) = &cfg.traces {
        for body in trace_bodies(&observations, &suite, &model.region, &cfg) {
            match send(t, Signal::Traces, body).await {
                Ok(Some(w)) => warn("traces", w),
                Ok(None) => {}
                Err(e) => warn("traces", e.to_string()),
            }
        }
    }
}

/// Spans per export request (a large run is sent in several).
pub const SPANS_PER_REQUEST: usize = 2000;

/// Encodes the trace export of a run in requests of at most [`SPANS_PER_REQUEST`] case runs.
pub fn trace_bodies(
    observations: &[Observation],
    suite: &Suite,
    region: &str,
    cfg: &Config,
) -> Vec<Bytes> {
    let traced: Vec<Observation> = observations
        .iter()
        .filter(|o| o.trace.is_some())
        .cloned()
        .collect();
    traced
        .chunks(SPANS_PER_REQUEST)
        .map(|c| Bytes::from(trace_request(c, suite, region, cfg).encode_to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn endpoints_follow_the_otel_variables() {
        let c = Config::resolve(None, None, &env(&[])).unwrap();
        assert!(!c.enabled());
        let c = Config::resolve(
            None,
            None,
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        )
        .unwrap();
        assert_eq!(c.metrics.unwrap().url, "http://collector:4318/v1/metrics");
        assert_eq!(c.traces.unwrap().url, "http://collector:4318/v1/traces");
        let c = Config::resolve(
            Some("http://a:1/x"),
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:2/custom"),
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:3/ignored"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20s3cr3t-otlp,x-a=1",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_SERVICE_NAME", "probe-eu"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "team=ml,deployment.environment=prod",
                ),
            ]),
        )
        .unwrap();
        let m = c.metrics.clone().unwrap();
        let t = c.traces.clone().unwrap();
        assert_eq!(m.url, "http://a:1/x");
        assert_eq!(t.url, "http://t:2/custom");
        assert_eq!(m.timeout, Duration::from_millis(2500));
        assert_eq!(m.headers[0].1, "Bearer s3cr3t-otlp");
        assert_eq!(
            t.headers
                .iter()
                .filter(|(n, _)| n == "x-a")
                .map(|(_, v)| v.to_str().unwrap())
                .collect::<Vec<_>>(),
            vec!["2"]
        );
        // Header values are secrets: redacted in messages and in Debug output.
        assert!(!crate::secret::redact("sent Bearer s3cr3t-otlp").contains("s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.service_name, "probe-eu");
        assert_eq!(c.resource.len(), 2);
    }

    #[test]
    fn bad_settings_name_the_variable_and_the_fix() {
        for (vars, want) in [
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "http/protobuf",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")],
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
                ],
                "name=value",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
                ],
                "milliseconds",
            ),
        ] {
            let e = Config::resolve(None, None, &env(&vars)).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b%2Cc"), "a b,c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
