//! `--push URL`: the Pushgateway, grouping key {job="canary", region, suite}.
//!
//! A CronJob run is a new process whose counters start at zero, and a push replaces the
//! group: pushed as they are, every run would look like the same small counter and
//! `increase()` would see nothing. So each run first reads the group's current values back
//! (`GET /metrics` on the Pushgateway), adds its own on top (carry forward), and pushes the
//! sum: the group's counters only ever grow, exactly as if one process had run all along.
//! Limits: two runs of the same group at the same time race (one run's counts can be lost;
//! run the CronJob with `concurrencyPolicy: Forbid`); a Pushgateway restart without
//! persistence resets the counters, which Prometheus handles as a counter reset.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Method;

use super::http_out::{request, with_retries, Failure};
use super::metrics::{MetricsModel, Sample};

/// Attempts per HTTP call before giving up (then the run's counts are spooled).
pub const ATTEMPTS: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The group's URL path; label values are base64url-encoded so any value is safe.
pub fn group_path(region: &str, suite: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s.as_bytes());
    format!(
        "/metrics/job/canary/region@base64/{}/suite@base64/{}",
        b64(region),
        b64(suite)
    )
}

/// The samples of one group as the Pushgateway exposes them, without its own labels.
pub fn group_samples(all: &[Sample], region: &str, suite: &str) -> Vec<Sample> {
    all.iter()
        .filter(|s| {
            let has = |k: &str, v: &str| s.labels.iter().any(|(a, b)| a == k && b == v);
            has("job", "canary") && has("region", region) && has("suite", suite)
        })
        .map(|s| Sample {
            name: s.name.clone(),
            labels: s
                .labels
                .iter()
                .filter(|(k, _)| k != "job" && k != "instance")
                .cloned()
                .collect(),
            value: s.value,
        })
        .collect()
}

/// Reads the group back, carries it forward into `model`, and pushes the sum.
pub async fn push(base: &str, model: &mut MetricsModel) -> Result<(), Failure> {
    let base = base.trim_end_matches('/');
    let metrics_url = format!("{base}/metrics");
    let current = with_retries(ATTEMPTS, || {
        request(Method::GET, &metrics_url, &[], None, None, TIMEOUT)
    })
    .await
    .map_err(|e| match e {
        Failure::Rejected(m) => {
            Failure::Rejected(format!("cannot read the Pushgateway's current values: {m}"))
        }
        Failure::Unavailable(m) => {
            Failure::Unavailable(format!("cannot read the Pushgateway's current values: {m}"))
        }
    })?;
    let text = String::from_utf8_lossy(&current.body);
    let previous = group_samples(&super::expfmt::parse(&text), &model.region, &model.suite);
    model.carry_forward(&previous);
    let body = Bytes::from(model.encode_text());
    let url = format!("{base}{}", group_path(&model.region, &model.suite));
    with_retries(ATTEMPTS, || {
        request(
            Method::PUT,
            &url,
            &[],
            Some(body.clone()),
            Some("text/plain; version=0.0.4"),
            TIMEOUT,
        )
    })
    .await
    .map(|_| ())
    .map_err(|e| match e {
        Failure::Rejected(m) => {
            Failure::Rejected(format!("the Pushgateway rejected the push: {m}"))
        }
        Failure::Unavailable(m) => {
            Failure::Unavailable(format!("push to the Pushgateway failed: {m}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_path_encodes_any_value() {
        assert_eq!(
            group_path("eu-west-1", "a/b"),
            "/metrics/job/canary/region@base64/ZXUtd2VzdC0x/suite@base64/YS9i"
        );
    }

    #[test]
    fn only_our_group_is_carried_and_pushgateway_labels_are_dropped() {
        let s = |labels: &[(&str, &str)]| Sample {
            name: "canary_probe_runs_total".into(),
            labels: labels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            value: 1.0,
        };
        let all = vec![
            s(&[
                ("instance", ""),
                ("job", "canary"),
                ("region", "eu"),
                ("suite", "s"),
                ("probe", "p"),
            ]),
            s(&[
                ("instance", ""),
                ("job", "canary"),
                ("region", "us"),
                ("suite", "s"),
                ("probe", "p"),
            ]),
            s(&[("job", "other"), ("region", "eu"), ("suite", "s")]),
        ];
        let g = group_samples(&all, "eu", "s");
        assert_eq!(g.len(), 1);
        assert_eq!(
            g[0].labels,
            vec![
                ("region".to_string(), "eu".to_string()),
                ("suite".into(), "s".into()),
                ("probe".into(), "p".into())
            ]
        );
    }
}
