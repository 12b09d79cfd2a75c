//! One case run with the quality signals that need more than one request: answer freshness
//! against a source of truth (read before and after the question), and the write-then-read
//! canary fact (write a nonce, ask until the answer holds it). Plain probes go straight to
//! the driver. The values of each fact seen are remembered across runs (`--state FILE`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::state_file::{read_state, write_state, StateError};
use super::RunContext;
use crate::check::freshness::{self, History, TruthRead};
use crate::drivers::{self, RunVars};
use crate::net::http;
use crate::suite::{Case, Endpoint, Probe};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, Stamped, Timeline};

// The results are plain data, owned by the check layer so the observation can carry them
// without depending on the scheduler.
pub use crate::check::signals::{FactLag, Quality};

/// The values of each fact seen by freshness probes, across runs when it has a file
/// (`--state FILE`, or beside `serve`'s database).
#[derive(Debug, Default)]
pub struct FactStore {
    history: Mutex<History>,
    path: Option<PathBuf>,
    /// Canary-fact nonces made so far (each one distinct within the run).
    nonces: AtomicU64,
}

impl FactStore {
    /// The history in `path` (a missing file starts empty), saved there by [`Self::save`].
    pub fn load(path: Option<&Path>) -> Result<FactStore, StateError> {
        let mut history = History::default();
        if let Some(p) = path {
            if let Some(text) = read_state(p)? {
                history = serde_json::from_str(&text).map_err(|source| StateError::Malformed {
                    path: p.to_path_buf(),
                    what: "state file",
                    source,
                })?;
            }
        }
        Ok(FactStore {
            history: Mutex::new(history),
            path: path.map(Path::to_path_buf),
            nonces: AtomicU64::new(0),
        })
    }

    /// Writes the history to its file, if it has one, atomically.
    pub fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = {
            let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_string(&*h).map_err(|source| StateError::Encode {
                what: "fact history",
                source,
            })?
        };
        write_state(path, &text)
    }
}

/// `{field}` in a URL replaced by the case's input field (percent-encoded).
pub fn fill_url(url: &str, case: &Case) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = url;
    while let Some(i) = rest.find('{') {
        // `{{nonce}}` and other double braces are templates, not fields.
        if rest[i..].starts_with("{{") {
            let end = rest[i..]
                .find("}}")
                .map(|j| i + j + 2)
                .unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 1..i + j];
        let v = case.input.get(name).ok_or_else(|| {
            format!("the URL needs `{{{name}}}` but the case has no `input.{name}`")
        })?;
        out.push_str(&rest[..i]);
        let text = crate::check::extract::value_text(v);
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn read_truth(spec: &crate::suite::FreshnessSpec, url: &str) -> Result<TruthRead, String> {
    let span = crate::timeline::trace::child("canary.freshness.read");
    let r = read_truth_inner(spec, url).await;
    span.end(r.as_ref().map(|_| ()).map_err(String::as_str));
    r
}

async fn read_truth_inner(
    spec: &crate::suite::FreshnessSpec,
    url: &str,
) -> Result<TruthRead, String> {
    let text = crate::sink::target::fetch(url, "application/json").await?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("truth is not JSON: {e}"))?;
    let resp = crate::timeline::Response::default();
    let value = spec
        .value
        .source
        .values(&resp, Some(&doc))
        .first()
        .map(crate::check::extract::value_text)
        .ok_or_else(|| format!("no value at {} in the truth", spec.value.source.describe()))?;
    let updated_at = spec
        .updated_at
        .source
        .values(&resp, Some(&doc))
        .first()
        .and_then(freshness::parse_time)
        .ok_or_else(|| {
            format!(
                "no time (RFC 3339 or Unix seconds) at {} in the truth",
                spec.updated_at.source.describe()
            )
        })?;
    Ok(TruthRead { value, updated_at })
}

/// Runs one case with the probe's quality signals.
pub async fn run_case(
    endpoint: &Endpoint,
    probe: &Probe,
    case: &Case,
    vars: RunVars,
    deadline: Duration,
    ctx: &RunContext,
) -> (Timeline, Quality) {
    let mut q = Quality::default();
    if let Some(fact) = &probe.canary_fact {
        let (t, lag) = canary_fact(endpoint, fact, case, vars, deadline, &ctx.facts).await;
        q.fact = Some(lag);
        return (t, q);
    }
    let Some(spec) = &probe.freshness else {
        return (drivers::run_case(endpoint, case, vars, deadline).await, q);
    };
    // A case without the fields the truth URL names asks about no fact: it is not judged
    // for freshness (a question meant to be escalated, say).
    let Ok(url) = fill_url(&spec.url.replace("{{region}}", &vars.region), case) else {
        return (drivers::run_case(endpoint, case, vars, deadline).await, q);
    };
    let before = read_truth(spec, &url).await;
    let t = drivers::run_case(endpoint, case, vars, deadline).await;
    let after = read_truth(spec, &url).await;
    let fact_key = url.clone();
    match (before, after) {
        (Ok(b), Ok(a)) => {
            let mut history = ctx.facts.history.lock().unwrap_or_else(|e| e.into_inner());
            history.note(&fact_key, &b);
            history.note(&fact_key, &a);
            if t.error.is_none() {
                if let Some(answer) = crate::check::answer_text(endpoint, &t) {
                    q.freshness = Some(freshness::judge(
                        &fact_key,
                        &answer,
                        &b,
                        &a,
                        &history,
                        now_unix(),
                    ));
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => q.errors.push(format!(
            "freshness: the truth could not be read: {}",
            crate::secret::redact(&e)
        )),
    }
    (t, q)
}

/// A nonce unique per run and region: fleets in several regions never write the same one.
/// `n` tells apart the nonces of one store made in the same millisecond, and the salt's
/// random hash keys those of two stores (two runs in one process).
fn nonce(region: &str, run: u32, n: u64) -> String {
    use std::hash::BuildHasher;
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let salt = std::collections::hash_map::RandomState::new().hash_one((
        region,
        ms,
        run,
        n,
        std::process::id(),
    ));
    let region: String = region
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("canary-{region}-{ms}-{:06x}", salt & 0xff_ffff)
}

fn with_nonce(v: &Value, nonce: &str, region: &str) -> Value {
    match v {
        Value::String(s) => {
            Value::String(s.replace("{{nonce}}", nonce).replace("{{region}}", region))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| with_nonce(x, nonce, region)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), with_nonce(x, nonce, region)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A timeline that failed before any question was asked.
fn failed(e: ProbeError) -> Timeline {
    let mut rec = Recorder::start();
    rec.fail(e);
    rec.finish()
}

async fn write_fact(
    endpoint: &Endpoint,
    fact: &crate::suite::CanaryFactSpec,
    case: &Case,
    nonce: &str,
    region: &str,
) -> Result<(), ProbeError> {
    let url = fill_url(&fact.url, case)
        .map_err(|m| ProbeError::new(ErrorClass::Request, m))?
        .replace("{{nonce}}", nonce)
        .replace("{{region}}", region);
    let uri: ::http::Uri = url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid write URL: {e}")))?;
    let body = fact
        .body
        .as_ref()
        .map(|b| Bytes::from(with_nonce(b, nonce, region).to_string().into_bytes()));
    let mut scratch = Recorder::start();
    // Another service: the endpoint's proxy and HTTP version, never its credential or pool.
    let net = endpoint.net.for_another_service();
    let s = http::send(
        http::HttpRequest {
            method: fact.method.clone(),
            uri: &uri,
            headers: &fact.headers,
            content_type: body.as_ref().map(|_| "application/json"),
            body,
            accept: "application/json",
            // The knowledge source usually sits behind the same private CA as the endpoint.
            tls: endpoint.tls.as_ref(),
            net: Some(&net),
        },
        &mut scratch,
    )
    .await?;
    let resp = s
        .read_all(1 << 20, &mut scratch)
        .await
        .map_err(|(e, _)| e)?;
    if !(200..300).contains(&resp.status) {
        let e = http::status_error(&resp);
        return Err(ProbeError::new(
            e.class,
            format!("writing the canary fact failed: {}", e.message),
        ));
    }
    Ok(())
}

async fn canary_fact(
    endpoint: &Endpoint,
    fact: &crate::suite::CanaryFactSpec,
    case: &Case,
    vars: RunVars,
    deadline: Duration,
    facts: &FactStore,
) -> (Timeline, FactLag) {
    let region = vars.region.clone();
    let nonce = nonce(
        &region,
        vars.run,
        facts.nonces.fetch_add(1, Ordering::Relaxed),
    );
    let mut lag = FactLag {
        nonce: nonce.clone(),
        lag_seconds: None,
        reads: 0,
        gave_up: false,
        read_every: fact.read_every.as_secs_f64(),
    };
    let span = crate::timeline::trace::child("canary.fact.write");
    let write =
        tokio::time::timeout(deadline, write_fact(endpoint, fact, case, &nonce, &region)).await;
    span.end(match &write {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message.as_str()),
        Err(_) => Err("timeout"),
    });
    match write {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return (failed(e), lag),
        Err(_) => {
            return (
                failed(ProbeError::new(
                    ErrorClass::Timeout,
                    "writing the canary fact did not finish within the deadline",
                )),
                lag,
            )
        }
    }
    let written = Instant::now();
    loop {
        let asked = Instant::now();
        let mut span = crate::timeline::trace::child("canary.fact.question");
        let mut t = drivers::run_case(endpoint, case, vars.clone(), deadline).await;
        lag.reads += 1;
        let holds = t.error.is_none()
            && crate::check::answer_text(endpoint, &t).is_some_and(|a| a.contains(&nonce));
        span.attribute("canary.fact.holds", holds.to_string());
        span.end(match &t.error {
            Some(e) => Err(e.message.as_str()),
            None => Ok(()),
        });
        if holds {
            let end = t
                .first(|e| matches!(e, Event::Terminator))
                .or_else(|| t.first(|e| matches!(e, Event::Done)))
                .unwrap_or_default();
            let at = (asked + end).saturating_duration_since(written);
            lag.lag_seconds = Some(at.as_secs_f64());
            return (t, lag);
        }
        let waited = written.elapsed();
        if waited + fact.read_every > fact.give_up_after {
            lag.gave_up = true;
            {
                let at = t.events.last().map(|e| e.at).unwrap_or_default();
                // Giving up is the run's outcome, whatever the last question met.
                t.error = Some(ProbeError::new(
                    ErrorClass::Timeout,
                    format!(
                        "the answer never held the canary fact within {:.1}s ({} questions, one every {:.1}s)",
                        fact.give_up_after.as_secs_f64(),
                        lag.reads,
                        fact.read_every.as_secs_f64()
                    ),
                ));
                t.events.push(Stamped {
                    at,
                    event: Event::Abort,
                });
            }
            return (t, lag);
        }
        tokio::time::sleep(fact.read_every.saturating_sub(asked.elapsed())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(input: Value) -> Case {
        Case {
            id: "c".into(),
            slice: "s".into(),
            input,
            expect: Default::default(),
            line: 1,
            turns: Vec::new(),
        }
    }

    #[test]
    fn urls_take_case_fields_and_keep_templates() {
        let c = case(json!({"key": "plan basic/price", "n": 3}));
        assert_eq!(
            fill_url("http://h/truth/{key}?n={n}&x={{nonce}}", &c).unwrap(),
            "http://h/truth/plan%20basic%2Fprice?n=3&x={{nonce}}"
        );
        assert!(fill_url("http://h/{missing}", &c).is_err());
    }

    #[test]
    fn nonces_differ_by_region_and_call() {
        let a = nonce("eu-west-1", 1, 0);
        let b = nonce("us-east-1", 1, 0);
        assert!(a.starts_with("canary-eu-west-1-"));
        assert_ne!(a, b);
        assert_ne!(nonce("eu-west-1", 1, 0), nonce("eu-west-1", 1, 1));
        assert_eq!(
            with_nonce(
                &json!({"value": "{{nonce}}", "n": ["x {{nonce}} {{region}}"]}),
                "N",
                "eu"
            ),
            json!({"value": "N", "n": ["x N eu"]})
        );
    }
}
