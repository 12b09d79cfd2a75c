//! `--remote-write URL`: Prometheus remote write 1.0 (protobuf, snappy block format) with
//! sample timestamps, so a short-lived job writes exact samples without being scraped.
//!
//! Counters of a CronJob run start at zero in every process. Each run therefore writes every
//! counter (and histogram bucket, sum and count) twice: 0 at the run's start and its value at
//! the run's end. Prometheus sees a reset at each run's start, so `increase()` and `rate()`
//! add up the runs exactly. Gauges are written once, at the end.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use prost::Message;

use super::http_out::{request, with_retries};
use super::metrics::{Kind, MetricsModel};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<PbSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The write request of one run (`start` and `end` are the run's wall-clock bounds).
pub fn build(model: &MetricsModel, start: SystemTime, end: SystemTime) -> WriteRequest {
    let (t0, mut t1) = (millis(start), millis(end));
    if t1 <= t0 {
        t1 = t0 + 1;
    }
    let mut timeseries = Vec::new();
    for s in model.samples() {
        let family = model.families.values().find(|f| match f.kind {
            Kind::Counter => s.name == format!("{}_total", f.name),
            Kind::Gauge => s.name == f.name,
            Kind::Histogram => s.name.starts_with(&f.name),
        });
        let cumulative = family.is_some_and(|f| f.kind != Kind::Gauge);
        let mut labels: Vec<Label> = s
            .labels
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .chain(std::iter::once(Label {
                name: "__name__".into(),
                value: s.name.clone(),
            }))
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let samples = if cumulative {
            vec![
                PbSample {
                    value: 0.0,
                    timestamp: t0,
                },
                PbSample {
                    value: s.value,
                    timestamp: t1,
                },
            ]
        } else {
            vec![PbSample {
                value: s.value,
                timestamp: t1,
            }]
        };
        timeseries.push(TimeSeries { labels, samples });
    }
    WriteRequest { timeseries }
}

/// Encodes a request as remote write sends it: protobuf, then snappy (block format).
pub fn encode(req: &WriteRequest) -> Result<Bytes, String> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map(Bytes::from)
        .map_err(|e| format!("snappy compression failed: {e}"))
}

/// Sends an encoded request, with retries.
pub async fn send(url: &str, body: Bytes) -> Result<(), super::http_out::Failure> {
    let headers = [
        (
            HeaderName::from_static("content-encoding"),
            HeaderValue::from_static("snappy"),
        ),
        (
            HeaderName::from_static("x-prometheus-remote-write-version"),
            HeaderValue::from_static("0.1.0"),
        ),
    ];
    with_retries(super::push::ATTEMPTS, || {
        request(
            Method::POST,
            url,
            &headers,
            Some(body.clone()),
            Some("application/x-protobuf"),
            Duration::from_secs(10),
        )
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_snappy_and_protobuf() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "x_total".into(),
                }],
                samples: vec![
                    PbSample {
                        value: 0.0,
                        timestamp: 1,
                    },
                    PbSample {
                        value: 3.0,
                        timestamp: 2,
                    },
                ],
            }],
        };
        let bytes = encode(&req).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&bytes).unwrap();
        assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), req);
    }
}
