//! The target's own view: its Prometheus metrics fetched before and after a run, kept as
//! artifacts, and set next to what canary observed (the service's cache hit rate from its
//! counters against the hit rate canary saw; its latency histogram against canary's
//! measured latency). The gap between the two is what a dashboard of the service's own
//! metrics would not show.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::expfmt;
use super::expfmt::Sample;
use crate::net::http::{self, HttpRequest};
use crate::observation::Observation;
use crate::suite::{Endpoint, SeriesSelector, TargetSeries};
use crate::timeline::Recorder;

/// Longest wait for a metrics endpoint.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metrics page read.
pub const MAX_METRICS_BYTES: u64 = 16 * 1024 * 1024;

/// Fetches a page as text with a GET (no credentials: a metrics page or a source of truth is
/// another service, and the endpoint's keys are not for it).
pub async fn fetch(url: &str, accept: &'static str) -> Result<String, String> {
    let uri: ::http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let work = async {
        let mut rec = Recorder::start();
        let s = http::send(
            HttpRequest {
                method: ::http::Method::GET,
                uri: &uri,
                headers: &[],
                body: None,
                content_type: None,
                accept,
                tls: None,
                net: None,
            },
            &mut rec,
        )
        .await
        .map_err(|e| e.to_string())?;
        let resp = s
            .read_all(MAX_METRICS_BYTES, &mut rec)
            .await
            .map_err(|(e, _)| e.to_string())?;
        if !(200..300).contains(&resp.status) {
            return Err(format!("HTTP {}", resp.status));
        }
        Ok(String::from_utf8_lossy(&resp.body).into_owned())
    };
    match tokio::time::timeout(FETCH_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
    }
}

/// Snapshots of one endpoint's metrics around a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    pub before: Option<String>,
    pub after: Option<String>,
    pub errors: Vec<String>,
}

/// The target's figure next to canary's for one SLI.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub sli: &'static str,
    /// The target's value over the run (ratio, or seconds for `mean`/`p50`/`p95`).
    pub target: BTreeMap<&'static str, f64>,
    pub canary: BTreeMap<&'static str, f64>,
    /// What was compared.
    pub detail: String,
}

/// One endpoint's metrics section of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetReport {
    pub endpoint: String,
    pub url: String,
    /// Files written under `--artifacts`.
    pub artifacts: Vec<String>,
    pub errors: Vec<String>,
    pub comparisons: Vec<Comparison>,
}

fn matches(s: &Sample, sel: &SeriesSelector, name: &str) -> bool {
    s.name == name
        && sel
            .labels
            .iter()
            .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
}

/// The increase of every series `sel` matches between two pages (a counter reset counts
/// from zero).
fn increase(before: &[Sample], after: &[Sample], sel: &SeriesSelector, name: &str) -> f64 {
    let sum = |xs: &[Sample]| -> BTreeMap<Vec<(String, String)>, f64> {
        let mut m = BTreeMap::new();
        for s in xs.iter().filter(|s| matches(s, sel, name)) {
            *m.entry(s.labels.clone()).or_insert(0.0) += s.value;
        }
        m
    };
    let (b, a) = (sum(before), sum(after));
    a.iter()
        .map(|(k, v)| {
            let prev = b.get(k).copied().unwrap_or(0.0);
            if *v >= prev {
                v - prev
            } else {
                *v
            }
        })
        .sum()
}

/// Quantile `q` of a cumulative histogram (upper bound, count) by linear interpolation
/// inside the bucket, as `histogram_quantile` does.
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let span = c - prev.1;
            let frac = if span > 0.0 {
                (rank - prev.1) / span
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    Some(prev.0)
}

fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// Compares one endpoint's target series with the observations of its probes.
pub fn compare(
    endpoint: &Endpoint,
    snaps: &Snapshots,
    observations: &[Observation],
) -> Vec<Comparison> {
    let Some(tm) = &endpoint.metrics else {
        return Vec::new();
    };
    let (Some(before), Some(after)) = (&snaps.before, &snaps.after) else {
        return Vec::new();
    };
    let (before, after) = (expfmt::parse(before), expfmt::parse(after));
    let obs: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.endpoint == endpoint.name)
        .collect();
    let mut out = Vec::new();
    for (sli, series) in &tm.compare {
        let mut c = Comparison {
            sli: sli.name(),
            target: BTreeMap::new(),
            canary: BTreeMap::new(),
            detail: String::new(),
        };
        match series {
            TargetSeries::Ratio { good, total } => {
                let g = increase(&before, &after, good, &good.name);
                let t = increase(&before, &after, total, &total.name);
                if t > 0.0 {
                    c.target.insert("ratio", g / t);
                }
                c.target.insert("good", g);
                c.target.insert("total", t);
                let verdicts: Vec<bool> = obs.iter().filter_map(|o| o.ratio(*sli)).collect();
                let n = verdicts.len() as f64;
                let k = verdicts.iter().filter(|x| **x).count() as f64;
                if n > 0.0 {
                    c.canary.insert("ratio", k / n);
                }
                c.canary.insert("good", k);
                c.canary.insert("total", n);
                c.detail = format!(
                    "increase of {} over {} during the run, against the share of canary's runs with a good {}",
                    good.name,
                    total.name,
                    sli.name()
                );
            }
            TargetSeries::Histogram { name } => {
                let all = SeriesSelector {
                    name: name.clone(),
                    labels: vec![],
                };
                let mut les: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
                for s in after.iter().filter(|s| s.name == format!("{name}_bucket")) {
                    if let Some(le) = s.labels.iter().find(|(k, _)| k == "le") {
                        let v = if le.1 == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.1.parse().unwrap_or(f64::NAN)
                        };
                        if v.is_nan() {
                            continue;
                        }
                        let sel = SeriesSelector {
                            name: name.clone(),
                            labels: vec![("le".into(), le.1.clone())],
                        };
                        let inc = increase(&before, &after, &sel, &format!("{name}_bucket"));
                        les.insert(v.to_bits(), (v, inc));
                    }
                }
                let mut buckets: Vec<(f64, f64)> = les.into_values().collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let count = increase(&before, &after, &all, &format!("{name}_count"));
                let sum = increase(&before, &after, &all, &format!("{name}_sum"));
                if count > 0.0 {
                    c.target.insert("mean", sum / count);
                }
                c.target.insert("count", count);
                for (q, key) in [(0.5, "p50"), (0.95, "p95")] {
                    if let Some(v) = bucket_quantile(&buckets, q) {
                        c.target.insert(key, v);
                    }
                }
                let mut vals: Vec<f64> = obs.iter().filter_map(|o| o.latency_of(*sli)).collect();
                vals.sort_by(f64::total_cmp);
                c.canary.insert("count", vals.len() as f64);
                if !vals.is_empty() {
                    c.canary
                        .insert("mean", vals.iter().sum::<f64>() / vals.len() as f64);
                }
                for (q, key) in [(0.5, "p50"), (0.95, "p95")] {
                    if let Some(v) = nearest_rank(&vals, q) {
                        c.canary.insert(key, v);
                    }
                }
                c.detail = format!(
                    "{name} (quantiles interpolated in its buckets) during the run, against canary's {}",
                    sli.name()
                );
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = [(1.0, 2.0), (2.0, 6.0), (4.0, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(&b, 0.5), Some(1.75));
        assert_eq!(bucket_quantile(&b, 1.0), Some(4.0));
        assert_eq!(bucket_quantile(&[(1.0, 0.0)], 0.5), None);
    }

    #[test]
    fn increases_sum_matching_series_and_survive_resets() {
        let before = expfmt::parse(
            "c{status=\"hit\",w=\"a\"} 5\nc{status=\"hit\",w=\"b\"} 1\nc{status=\"miss\"} 10\n",
        );
        let after = expfmt::parse(
            "c{status=\"hit\",w=\"a\"} 8\nc{status=\"hit\",w=\"b\"} 0.5\nc{status=\"miss\"} 12\n",
        );
        let hit = SeriesSelector::parse("c{status=\"hit\"}").unwrap();
        // a: +3; b reset to 0.5: counts 0.5.
        assert_eq!(increase(&before, &after, &hit, "c"), 3.5);
        let all = SeriesSelector::parse("c").unwrap();
        assert_eq!(increase(&before, &after, &all, "c"), 5.5);
    }
}
