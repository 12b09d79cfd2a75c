//! Breach notifications: when an SLO (or one of its slices) turns breached or clears,
//! `serve` POSTs the change to its receivers, so a router's circuit breaker or a scheduler can
//! act without polling `/api/v1/slo`. Two payloads: Alertmanager's webhook format (version 4,
//! one alert `CanarySLOErrorBudgetBurn` with `severity="page"`, the alert of the generated rules
//! whose firing is `breached`) and a plain JSON document. Every notification goes to the spool
//! first and is removed once delivered; each receiver gets its notifications in order, a
//! receiver that is down holds its queue (later ones wait behind it) and is retried every
//! `--notify-every`, across restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::Method;
use serde_json::{json, Value};

use super::shard::{fnv1a64, Shard};
use super::slo_state::SloState;
use crate::sink::http_out::{self, Failure};
use crate::sink::spool::{self, Entry};

/// The payload a receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Alertmanager's webhook payload (`version: "4"`), as Alertmanager sends it.
    Alertmanager,
    /// canary's own JSON document (`kind: canary.slo_state_change`).
    Json,
}

/// One configured receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub format: Format,
    pub url: String,
}

/// What identifies a breach: suite, SLO, slice (`*` for the aggregate).
type Key = (String, String, String);

/// The notifier of one monitor.
pub struct Notifier {
    pub receivers: Vec<Receiver>,
    pub spool: PathBuf,
    pub region: String,
    pub shard: Shard,
    /// Where the monitor can be reached (`externalURL`, `generatorURL`).
    pub external_url: String,
    /// The last state seen of each SLO and slice: breached or not.
    last: Mutex<BTreeMap<Key, bool>>,
    /// One delivery pass at a time (order per receiver).
    delivering: tokio::sync::Mutex<()>,
}

/// The attempts of one delivery pass before a notification waits for the next pass.
const ATTEMPTS: u32 = 3;
/// The shortest time between two evaluations woken by probe runs.
const MIN_GAP: Duration = Duration::from_secs(1);
/// The deadline of one POST.
const TIMEOUT: Duration = Duration::from_secs(10);

fn rfc3339(t: SystemTime) -> String {
    crate::sink::report::rfc3339(t)
}

/// A receiver's URL as logs show it: scheme, host and port only (a webhook URL often carries
/// its own secret in the path or the query).
pub fn shown(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => format!(
            "{}://{}",
            u.scheme_str().unwrap_or("http"),
            u.authority().map(|a| a.as_str()).unwrap_or("?")
        ),
        Err(_) => "(invalid URL)".into(),
    }
}

impl Notifier {
    pub fn new(
        receivers: Vec<Receiver>,
        spool: PathBuf,
        region: &str,
        shard: Shard,
        external_url: String,
    ) -> Notifier {
        Notifier {
            receivers,
            spool,
            region: region.to_string(),
            shard,
            external_url,
            last: Mutex::new(BTreeMap::new()),
            delivering: tokio::sync::Mutex::new(()),
        }
    }

    /// Compares the states with the last ones seen and spools one notification per receiver
    /// for each change. A slice seen for the first time counts as a change only when it is
    /// breached (after a restart, a breach is announced again; receivers deduplicate by the
    /// fingerprint, as with Alertmanager). Returns the changes.
    pub fn observe(&self, states: &[SloState], now: SystemTime) -> Vec<Value> {
        let mut changes = Vec::new();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            for s in states {
                for slice in &s.slices {
                    let key = (s.suite.clone(), s.name.clone(), slice.slice.clone());
                    let now_breached = slice.state.breached;
                    let before = last.insert(key, now_breached);
                    if before == Some(now_breached) || (before.is_none() && !now_breached) {
                        continue;
                    }
                    changes.push((s.clone(), slice.slice.clone(), before, now_breached));
                }
            }
        }
        let mut out = Vec::new();
        for (s, slice, before, breached) in changes {
            let generic = self.generic(&s, &slice, before, breached, now);
            for r in &self.receivers {
                let body = match r.format {
                    Format::Json => generic.clone(),
                    Format::Alertmanager => self.alertmanager(&s, &slice, breached, now),
                };
                let entry = Entry::Notify {
                    url: r.url.clone(),
                    body: body.to_string(),
                };
                if let Err(e) = spool::save(&self.spool, &entry) {
                    tracing::error!(
                        "a notification for {} could not be kept: {e}",
                        shown(&r.url)
                    );
                }
            }
            out.push(generic);
        }
        out
    }

    fn labels(&self, s: &SloState, slice: &str) -> Value {
        json!({
            "alertname": "CanarySLOErrorBudgetBurn",
            "severity": "page",
            "region": self.region,
            "suite": s.suite,
            "slo": s.name,
            "slice": slice,
            "probe": s.probe,
            "endpoint": s.endpoint,
            "sli": s.sli,
        })
    }

    /// Alertmanager's webhook payload for one alert.
    pub fn alertmanager(
        &self,
        s: &SloState,
        slice: &str,
        breached: bool,
        now: SystemTime,
    ) -> Value {
        let labels = self.labels(s, slice);
        let status = if breached { "firing" } else { "resolved" };
        let fingerprint = format!(
            "{:016x}",
            fnv1a64(format!("{}\0{}\0{}\0{}", self.region, s.suite, s.name, slice).as_bytes())
        );
        let where_ = if slice == "*" {
            String::new()
        } else {
            format!(" in slice {slice}")
        };
        let annotations = json!({
            "summary": format!("SLO {} of suite {} is burning its error budget fast{where_} (region {})", s.name, s.suite, self.region),
            "description": format!("canary serve: SLO {} ({} of probe {}, objective {}%) is {}.", s.name, s.sli, s.probe, crate::slo::rules::num(s.objective * 100.0), if breached { "breached" } else { "no longer breached" }),
        });
        let group_labels = json!({ "alertname": "CanarySLOErrorBudgetBurn", "suite": s.suite, "slo": s.name, "region": self.region });
        json!({
            "version": "4",
            "groupKey": format!("{{}}:{{alertname=\"CanarySLOErrorBudgetBurn\", region={:?}, slo={:?}, suite={:?}}}", self.region, s.name, s.suite),
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "canary",
            "groupLabels": group_labels,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": self.external_url,
            "alerts": [{
                "status": status,
                "labels": labels,
                "annotations": annotations,
                // The change was seen now; the burn started earlier (its windows say when).
                "startsAt": if breached { rfc3339(now) } else { "0001-01-01T00:00:00Z".to_string() },
                "endsAt": if breached { "0001-01-01T00:00:00Z".to_string() } else { rfc3339(now) },
                "generatorURL": format!("{}/api/v1/slo", self.external_url.trim_end_matches('/')),
                "fingerprint": fingerprint,
            }],
        })
    }

    /// canary's own JSON document for one change.
    pub fn generic(
        &self,
        s: &SloState,
        slice: &str,
        before: Option<bool>,
        breached: bool,
        now: SystemTime,
    ) -> Value {
        let word = |b: bool| if b { "breached" } else { "ok" };
        let state = s.slices.iter().find(|x| x.slice == slice).map(|x| &x.state);
        json!({
            "kind": "canary.slo_state_change",
            "version": 1,
            "at": rfc3339(now),
            "region": self.region,
            "shard": self.shard.to_string(),
            "suite": s.suite,
            "slo": s.name,
            "slice": slice,
            "probe": s.probe,
            "endpoint": s.endpoint,
            "sli": s.sli,
            "objective": s.objective,
            "window": s.window,
            "from": before.map(word),
            "to": word(breached),
            "breached": breached,
            "status": state.map(|x| x.status),
            "current_burn": state.and_then(|x| x.current_burn),
            "budget_remaining": state.and_then(|x| x.budget_remaining),
            "source": format!("{}/api/v1/slo", self.external_url.trim_end_matches('/')),
        })
    }

    /// Delivers what the spool holds for the configured receivers, oldest first per receiver. A receiver that stays down
    /// through the attempts keeps its queue for the next pass; a rejected notification (a 4xx
    /// other than 429) would be rejected again and is dropped with an error in the log.
    pub async fn deliver(&self) {
        let _one = self.delivering.lock().await;
        let pending: Vec<(PathBuf, String, String)> = spool::load(&self.spool)
            .into_iter()
            .filter_map(|(p, e)| match e {
                // Only to receivers still configured: a removed one's leftovers stay put.
                Entry::Notify { url, body } if self.receivers.iter().any(|r| r.url == url) => {
                    Some((p, url, body))
                }
                _ => None,
            })
            .collect();
        let mut blocked: Vec<String> = Vec::new();
        for (path, url, body) in pending {
            if blocked.contains(&url) {
                continue;
            }
            let bytes = bytes::Bytes::from(body);
            let result = http_out::with_retries(ATTEMPTS, || {
                http_out::request(
                    Method::POST,
                    &url,
                    &[],
                    Some(bytes.clone()),
                    Some("application/json"),
                    TIMEOUT,
                )
            })
            .await;
            match result {
                Ok(_) => spool::remove(&path),
                Err(Failure::Rejected(e)) => {
                    tracing::error!(
                        "{} rejected a notification, which is dropped: {e}",
                        shown(&url)
                    );
                    spool::remove(&path);
                }
                Err(Failure::Unavailable(e)) => {
                    tracing::warn!(
                        "{} is unreachable ({e}); its notifications wait in {}",
                        shown(&url),
                        self.spool.display()
                    );
                    blocked.push(url);
                }
            }
        }
    }
}

/// The notifier's loop: evaluates every SLO when poked (after a probe run) or every `every`
/// (the windows slide without runs), spools the changes and delivers.
pub async fn run(
    state: Arc<super::ServeState>,
    notifier: Arc<Notifier>,
    poke: Arc<tokio::sync::Notify>,
    every: Duration,
) {
    loop {
        let st = state.clone();
        let n = notifier.clone();
        let evaluated = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            let states = super::slo_state::slo_states(&st, super::slo_state::now_unix());
            n.observe(&states, now)
        })
        .await;
        if let Err(e) = evaluated {
            tracing::error!("SLO evaluation for notifications failed: {e}");
        }
        notifier.deliver().await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = poke.notified() => {
                // Runs that finish together are evaluated once: at most one pass a second
                // (or per `every`, when shorter) however many probes run.
                tokio::time::sleep(every.min(MIN_GAP)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::slo_state::SliceState;
    use crate::slo::burn::{BurnState, Status};

    fn state(breached: bool) -> SloState {
        let b = BurnState {
            sli: Some(0.5),
            good: 1,
            total: 2,
            budget_remaining: Some(-1.0),
            burn_rates: vec![],
            firing: vec![],
            breached,
            budget_exhausted: true,
            current_burn: Some(100.0),
            status: if breached {
                Status::Breached
            } else {
                Status::Ok
            },
        };
        SloState {
            suite: "monitor".into(),
            name: "schema".into(),
            probe: "map".into(),
            endpoint: "mapper".into(),
            sli: "schema_valid".into(),
            objective: 0.995,
            threshold: None,
            window: "1h".into(),
            per_slice: false,
            period_seconds: 1.0,
            breached,
            status: b.status,
            burn_window: "5m".into(),
            slices: vec![SliceState {
                slice: "*".into(),
                state: b,
            }],
        }
    }

    #[test]
    fn one_notification_per_change_and_none_for_a_healthy_start() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::new(
            vec![
                Receiver {
                    format: Format::Json,
                    url: "http://127.0.0.1:9/json".into(),
                },
                Receiver {
                    format: Format::Alertmanager,
                    url: "http://127.0.0.1:9/am".into(),
                },
            ],
            dir.path().to_path_buf(),
            "eu",
            Shard::default(),
            "http://canary:9464".into(),
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(n.observe(&[state(false)], t).is_empty());
        assert!(n.observe(&[state(false)], t).is_empty());
        let c = n.observe(&[state(true)], t);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["from"], "ok");
        assert_eq!(c[0]["to"], "breached");
        assert!(n.observe(&[state(true)], t).is_empty());
        let c = n.observe(&[state(false)], t);
        assert_eq!(
            (c[0]["from"].as_str(), c[0]["to"].as_str()),
            (Some("breached"), Some("ok"))
        );
        // Two changes, two receivers: four spooled, in order.
        let bodies: Vec<(String, Value)> = spool::load(dir.path())
            .into_iter()
            .map(|(_, e)| match e {
                Entry::Notify { url, body } => (url, serde_json::from_str(&body).unwrap()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bodies.len(), 4);
        assert_eq!(bodies[1].0, "http://127.0.0.1:9/am");
        assert_eq!(bodies[1].1["status"], "firing");
        assert_eq!(bodies[3].1["status"], "resolved");
        assert_eq!(
            bodies[3].1["alerts"][0]["labels"]["alertname"],
            "CanarySLOErrorBudgetBurn"
        );
        assert_eq!(
            bodies[1].1["alerts"][0]["fingerprint"],
            bodies[3].1["alerts"][0]["fingerprint"]
        );
        // A monitor that starts breached says so once.
        let fresh = Notifier::new(
            vec![],
            dir.path().join("x"),
            "eu",
            Shard::default(),
            String::new(),
        );
        assert_eq!(fresh.observe(&[state(true)], t)[0]["from"], Value::Null);
    }

    #[test]
    fn the_alertmanager_payload_has_the_webhook_fields() {
        let n = Notifier::new(
            vec![],
            PathBuf::from("/nonexistent"),
            "eu",
            Shard::default(),
            "http://c:1".into(),
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let v = n.alertmanager(&state(true), "*", true, t);
        for k in [
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["version"], "4");
        let a = &v["alerts"][0];
        for k in [
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        ] {
            assert!(a.get(k).is_some(), "{k}");
        }
        assert_eq!(a["startsAt"], "2027-01-15T08:00:00.000Z");
        assert_eq!(a["labels"]["severity"], "page");
    }

    #[tokio::test]
    async fn a_removed_receivers_leftovers_stay_in_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let old = Entry::Notify {
            url: "http://127.0.0.1:9/gone".into(),
            body: "{}".into(),
        };
        spool::save(dir.path(), &old).unwrap();
        let n = Notifier::new(
            vec![],
            dir.path().to_path_buf(),
            "eu",
            Shard::default(),
            String::new(),
        );
        n.deliver().await;
        assert_eq!(spool::load(dir.path()).len(), 1);
    }

    #[test]
    fn logs_show_a_receiver_without_its_path_or_query() {
        assert_eq!(
            shown("https://hooks.example/T0/B1/secret?k=v"),
            "https://hooks.example"
        );
        assert_eq!(shown("http://127.0.0.1:9/x"), "http://127.0.0.1:9");
    }
}
