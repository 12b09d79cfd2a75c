//! The `job` driver: submit an asynchronous job, then poll its status (or read a stream of
//! status events) until the `done` matcher holds or the `failed` matcher says it failed.
//!
//! The clock's origin is the submit request. `time_to_first_byte` is the submit response's
//! head; `time_to_completion` is the arrival of the first status that says done. Polling
//! cannot see the moment a job finished, only a status before and after it: the window
//! between the last not-done status request and the done answer is reported with the run
//! (`completion_error_seconds`) as the bound of the measurement error. Each status request
//! uses its own connection, whose phases are kept off the timeline (only the answer's arrival
//! is stamped, as `Poll`), so connect time and first byte stay those of the submit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::sse::{SseEvent, SseParser};
use super::RunVars;
use crate::check::extract::{value_text, Source};
use crate::net::http::{self, HttpRequest};
use crate::suite::template::render_lenient;
use crate::suite::{Case, Endpoint, JobFollow, JobSpec};
use crate::timeline::{ErrorClass, Event, JobSummary, ProbeError, Recorder, Response};

pub async fn run(
    endpoint: &Endpoint,
    spec: &JobSpec,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, spec, case, vars, rec).await {
        rec.fail(e);
    }
}

fn request_err(m: impl AsRef<str>) -> ProbeError {
    ProbeError::new(ErrorClass::Request, m)
}

/// The submit body: the `submit.body` template, else the case's `input.body`, else `input`.
pub fn submit_body(spec: &JobSpec, case: &Case, vars: RunVars) -> Result<Option<Value>, String> {
    let v = vars.template(case);
    let raw = match (&spec.submit_body, case.input.get("body")) {
        (Some(t), _) => t.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) if case.input.as_object().is_some_and(|o| !o.is_empty()) => case.input.clone(),
        _ => return Ok(None),
    };
    render_lenient(&raw, &v).map(Some)
}

fn parse_json(resp: &Response, what: &str) -> Result<Value, ProbeError> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        let head = String::from_utf8_lossy(&resp.body[..resp.body.len().min(80)]).into_owned();
        ProbeError::new(
            ErrorClass::InvalidJson,
            format!("{what} is not JSON ({e}); starts with {head:?}"),
        )
    })
}

/// Replaces `{id}` with the job id (percent-encoded for a URL path).
fn with_id(url: &str, id: &str) -> String {
    let enc: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    url.replace("{id}", &enc)
}

/// Resolves a `Location` value against the submit URL.
fn resolve(base: &::http::Uri, location: &str) -> Result<String, ProbeError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    Ok(format!("{scheme}://{authority}{dir}{location}"))
}

/// A GET of `url` (the job's `what`: status or stream URL) with the endpoint's headers, on a
/// connection of its own whose phases go to `scratch`, not to the probe's timeline.
async fn open_get(
    endpoint: &Endpoint,
    url: &str,
    what: &str,
    accept: &'static str,
    scratch: &mut Recorder,
) -> Result<http::Streaming, ProbeError> {
    let uri: ::http::Uri = url
        .parse()
        .map_err(|e| request_err(format!("invalid {what} URL: {e}")))?;
    http::send(
        HttpRequest {
            method: ::http::Method::GET,
            uri: &uri,
            headers: &endpoint.headers,
            body: None,
            content_type: None,
            accept,
            tls: endpoint.tls.as_ref(),
            net: Some(&endpoint.net),
        },
        scratch,
    )
    .await
}

/// One GET on its own connection, stamped on `rec`'s clock only as a `Poll` event.
async fn get(
    endpoint: &Endpoint,
    url: &str,
    accept: &'static str,
    rec: &mut Recorder,
) -> Result<(Instant, Instant, Response), ProbeError> {
    let mut scratch = Recorder::start();
    let sent = Instant::now();
    let streaming = open_get(endpoint, url, "status", accept, &mut scratch).await?;
    let resp = streaming
        .read_all(endpoint.max_body, &mut scratch)
        .await
        .map_err(|(e, _)| e)?;
    let at = scratch
        .last_at(|e| matches!(e, Event::Done))
        .map(|d| scratch.instant_of(d))
        .unwrap_or_else(Instant::now);
    rec.mark_at(
        at,
        Event::Poll {
            status: resp.status,
        },
    );
    Ok((sent, at, resp))
}

/// What a status says.
enum Status {
    Done,
    Failed(String),
    Pending,
}

fn status_of(spec: &JobSpec, resp: &Response, doc: &Value) -> Status {
    if let Some(f) = &spec.failed {
        if f.matches(resp, Some(doc)) {
            let reason = spec
                .reason
                .as_ref()
                .and_then(|r| r.source.values(resp, Some(doc)).first().map(value_text))
                .unwrap_or_else(|| "no reason given".into());
            return Status::Failed(reason);
        }
    }
    if spec.done.matches(resp, Some(doc)) {
        Status::Done
    } else {
        Status::Pending
    }
}

fn queue_seconds(spec: &JobSpec, resp: &Response, doc: &Value) -> Option<f64> {
    let v = spec.queue.as_ref()?.source.values(resp, Some(doc));
    match v.first()? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            crate::suite::units::parse_duration(s)
                .ok()
                .map(|d| d.as_secs_f64())
        }),
        _ => None,
    }
    .filter(|x| x.is_finite() && *x >= 0.0)
}

async fn exchange(
    endpoint: &Endpoint,
    spec: &JobSpec,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let body = submit_body(spec, case, vars).map_err(request_err)?;
    let body = match body {
        Some(b) => Some(Bytes::from(serde_json::to_vec(&b).map_err(|e| {
            request_err(format!("cannot encode the submit body: {e}"))
        })?)),
        None => None,
    };
    let submit_uri: ::http::Uri = spec
        .submit_url
        .parse()
        .map_err(|e| request_err(format!("invalid submit URL: {e}")))?;
    let streaming = http::send(
        HttpRequest {
            method: spec.submit_method.clone(),
            uri: &submit_uri,
            headers: &endpoint.headers,
            content_type: body.as_ref().map(|_| "application/json"),
            body,
            accept: "application/json",
            tls: endpoint.tls.as_ref(),
            net: Some(&endpoint.net),
        },
        rec,
    )
    .await?;
    let submitted = match streaming.read_all(endpoint.max_body, rec).await {
        Ok(r) => r,
        Err((e, partial)) => {
            rec.set_response(partial);
            return Err(e);
        }
    };
    let origin = rec
        .last_at(|e| matches!(e, Event::RequestSent))
        .unwrap_or_default();
    let submit_done = rec
        .last_at(|e| matches!(e, Event::Done))
        .unwrap_or_default();
    let mut summary = JobSummary {
        mode: match spec.follow {
            JobFollow::Poll { .. } => "poll",
            JobFollow::Stream { .. } => "stream",
        },
        submit_seconds: Some(submit_done.saturating_sub(origin).as_secs_f64()),
        ..Default::default()
    };
    if !(200..300).contains(&submitted.status) {
        let e = http::status_error(&submitted);
        rec.set_response(submitted);
        return Err(e);
    }
    let submit_doc: Option<Value> = serde_json::from_slice(&submitted.body).ok();
    let id = match &spec.id {
        Some(x) => {
            let found = match &x.source {
                Source::Header(_) => x.text(&submitted, None),
                Source::Json { .. } => match &submit_doc {
                    Some(d) => x.text(&submitted, Some(d)),
                    None => {
                        return Err(parse_json(&submitted, "the submit response")
                            .err()
                            .unwrap_or_else(|| request_err("unreadable submit response")))
                    }
                },
            };
            Some(found.ok_or_else(|| {
                ProbeError::new(
                    ErrorClass::Protocol,
                    format!(
                        "the submit response has no job id at {}",
                        x.source.describe()
                    ),
                )
            })?)
        }
        None => None,
    };
    summary.id = id.clone();
    rec.set_job(summary.clone());
    let status_url = match (&spec.follow, &id) {
        (JobFollow::Poll { url: Some(u), .. }, Some(id)) => with_id(u, id),
        (JobFollow::Poll { url: Some(u), .. }, None) => u.clone(),
        (JobFollow::Stream { url }, Some(id)) => with_id(url, id),
        (JobFollow::Stream { url }, None) => url.clone(),
        (JobFollow::Poll { url: None, .. }, _) => {
            let loc = submitted.header("location").ok_or_else(|| {
                ProbeError::new(
                    ErrorClass::Protocol,
                    "the submit response has no `Location` header to poll (set `id` and `poll.url`)",
                )
            })?;
            let url = resolve(&submit_uri, loc)?;
            // The endpoint's credentials go only where the suite sent them.
            let same_origin = url.parse::<::http::Uri>().is_ok_and(|u| {
                u.scheme_str() == submit_uri.scheme_str() && u.authority() == submit_uri.authority()
            });
            let has_credentials = endpoint
                .headers
                .iter()
                .any(|(n, _)| crate::secret::is_sensitive_header(n.as_str()));
            if !same_origin && has_credentials {
                return Err(ProbeError::new(
                    ErrorClass::Protocol,
                    format!(
                        "the submit's `Location` points at another origin ({}); canary does not send the endpoint's credentials there (set `poll.url`)",
                        crate::secret::redact(&url)
                    ),
                ));
            }
            // The status URL names the job in reports.
            summary.id = Some(loc.to_string());
            rec.set_job(summary.clone());
            url
        }
    };
    // A job that is done when submitted (a synchronous answer or a cache hit).
    if let Some(doc) = &submit_doc {
        match status_of(spec, &submitted, doc) {
            Status::Done => {
                let at = rec.instant_of(submit_done);
                rec.mark_at(at, Event::Terminator);
                summary.completion_error_seconds = Some(0.0);
                rec.set_job(summary);
                let doc = doc.clone();
                rec.set_response(submitted);
                rec.set_answer(None, Some(doc), None);
                return Ok(());
            }
            Status::Failed(reason) => {
                rec.set_response(submitted);
                return Err(ProbeError::new(
                    ErrorClass::JobFailed,
                    format!("job failed: {reason}"),
                ));
            }
            Status::Pending => {}
        }
    }
    let (final_resp, doc) = match &spec.follow {
        JobFollow::Poll {
            every,
            backoff,
            max_every,
            ..
        } => {
            poll(
                endpoint,
                spec,
                &status_url,
                (*every, *backoff, *max_every),
                rec.instant_of(submit_done),
                &mut summary,
                rec,
            )
            .await?
        }
        JobFollow::Stream { .. } => stream(endpoint, spec, &status_url, &mut summary, rec).await?,
    };
    summary.queue_seconds = queue_seconds(spec, &final_resp, &doc);
    rec.set_job(summary);
    // Signals (cache, tier) may be on the submit response or the final status: both heads
    // are kept, the final status first.
    let mut headers = final_resp.headers.clone();
    headers.extend(submitted.headers.iter().cloned());
    rec.set_response(Response {
        status: final_resp.status,
        headers,
        body: final_resp.body.clone(),
    });
    rec.set_answer(None, Some(doc), None);
    Ok(())
}

async fn poll(
    endpoint: &Endpoint,
    spec: &JobSpec,
    url: &str,
    (every, backoff, max_every): (Duration, f64, Duration),
    submitted_at: Instant,
    summary: &mut JobSummary,
    rec: &mut Recorder,
) -> Result<(Response, Value), ProbeError> {
    let mut interval = every;
    // The job may have finished any time after the last answer that said it had not.
    let mut not_done_since = submitted_at;
    let mut last_sent: Option<Instant> = None;
    loop {
        tokio::time::sleep(interval).await;
        let (sent, at, resp) = get(endpoint, url, "application/json", rec).await?;
        summary.polls += 1;
        if let Some(prev) = last_sent {
            let gap = sent.saturating_duration_since(prev).as_secs_f64();
            summary.max_poll_interval = Some(summary.max_poll_interval.unwrap_or(0.0).max(gap));
        }
        last_sent = Some(sent);
        if resp.status == 429 {
            // Rate-limited status requests wait as the server asks, then go on.
            let wait = resp
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(interval);
            interval = wait.min(Duration::from_secs(60)).max(interval);
            rec.set_job(summary.clone());
            continue;
        }
        if !(200..300).contains(&resp.status) {
            let e = http::status_error(&resp);
            rec.set_response(resp);
            return Err(e);
        }
        let doc = parse_json(&resp, "a job status")?;
        match status_of(spec, &resp, &doc) {
            Status::Done => {
                rec.mark_at(at, Event::Terminator);
                summary.completion_error_seconds =
                    Some(at.saturating_duration_since(not_done_since).as_secs_f64());
                return Ok((resp, doc));
            }
            Status::Failed(reason) => {
                rec.set_response(resp);
                return Err(ProbeError::new(
                    ErrorClass::JobFailed,
                    format!("job failed: {reason}"),
                ));
            }
            Status::Pending => {
                not_done_since = sent;
                rec.set_job(summary.clone());
                if backoff > 1.0 {
                    interval = interval.mul_f64(backoff).min(max_every);
                }
            }
        }
    }
}

async fn stream(
    endpoint: &Endpoint,
    spec: &JobSpec,
    url: &str,
    summary: &mut JobSummary,
    rec: &mut Recorder,
) -> Result<(Response, Value), ProbeError> {
    let mut scratch = Recorder::start();
    let streaming = open_get(endpoint, url, "stream", "text/event-stream", &mut scratch).await?;
    let status = streaming.status;
    let headers = streaming.headers.clone();
    if !(200..300).contains(&status) {
        let resp = streaming
            .read_all(64 * 1024, &mut scratch)
            .await
            .unwrap_or_else(|(_, r)| r);
        return Err(http::status_error(&resp));
    }
    let mut body = streaming.stamped();
    let mut parser = SseParser::new(usize::try_from(endpoint.max_body).unwrap_or(usize::MAX));
    let mut events: Vec<SseEvent> = Vec::new();
    while let Some(piece) = body.next_chunk().await {
        let (at, data) = piece?;
        parser.feed(at, &data, &mut events)?;
        for ev in events.drain(..) {
            if ev.data.trim().is_empty() {
                continue;
            }
            summary.polls += 1;
            rec.mark_at(ev.at, Event::Poll { status });
            let doc: Value = serde_json::from_str(&ev.data).map_err(|e| {
                ProbeError::new(
                    ErrorClass::InvalidJson,
                    format!("a status event is not JSON ({e})"),
                )
            })?;
            let resp = Response {
                status,
                headers: headers.clone(),
                body: Bytes::from(ev.data.clone().into_bytes()),
            };
            match status_of(spec, &resp, &doc) {
                Status::Done => {
                    rec.mark_at(ev.at, Event::Terminator);
                    summary.completion_error_seconds = Some(0.0);
                    return Ok((resp, doc));
                }
                Status::Failed(reason) => {
                    return Err(ProbeError::new(
                        ErrorClass::JobFailed,
                        format!("job failed: {reason}"),
                    ));
                }
                Status::Pending => rec.set_job(summary.clone()),
            }
        }
    }
    Err(ProbeError::new(
        ErrorClass::Truncated,
        format!(
            "the status stream ended before the job was done ({} events)",
            summary.polls
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_and_locations_resolved() {
        assert_eq!(with_id("http://h/p/{id}", "a b/c"), "http://h/p/a%20b%2Fc");
        let base: ::http::Uri = "http://h:1/api/preview".parse().unwrap();
        assert_eq!(resolve(&base, "/jobs/7").unwrap(), "http://h:1/jobs/7");
        assert_eq!(resolve(&base, "jobs/7").unwrap(), "http://h:1/api/jobs/7");
        assert_eq!(resolve(&base, "https://x/y").unwrap(), "https://x/y");
    }
}
