//! The job keys of an endpoint (`submit`, `id`, `poll`, `done`, `failed`, `queue`), the
//! target-metrics keys (`metrics_url`, `metrics_compare`) and endpoint `labels`, validated
//! into the model with every problem reported at its line.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ctx::{collect, k, matcher, p, source_of, Ctx, RESERVED_LABELS};
use super::model::{
    JobFollow, JobSpec, Protocol, SeriesSelector, TargetMetrics, TargetSeries, DEFAULT_POLL_EVERY,
};
use super::raw::{RawCompare, RawEndpoint, RawMatcher};
use super::yaml::Seg;
use crate::check::extract::{Extractor, Source};
use crate::measure::sli::{Sli, SliKind};

const JOB_KEYS: &[&str] = &["submit", "id", "poll", "failed", "queue"];

/// Builds the job spec of a `job` endpoint; reports job keys on other protocols.
pub(crate) fn build(raw: &mut RawEndpoint, path: &[Seg], ctx: &mut Ctx) -> Option<JobSpec> {
    if raw.protocol != Protocol::Job {
        for (key, present) in [
            ("submit", raw.submit.is_some()),
            ("id", raw.id.is_some()),
            ("poll", raw.poll.is_some()),
            ("failed", raw.failed.is_some()),
            ("queue", raw.queue.is_some()),
        ] {
            if present {
                ctx.err(
                    &p(path, &[k(key)]),
                    format!(
                        "`{key}` applies to protocol `job`, not `{}`",
                        raw.protocol.as_str()
                    ),
                );
            }
        }
        if raw.done.is_some() && raw.protocol != Protocol::WsOpus {
            ctx.err(
                &p(path, &[k("done")]),
                format!(
                    "`done` applies to `job` and `ws-opus`, not `{}`",
                    raw.protocol.as_str()
                ),
            );
        }
        return None;
    }
    debug_assert!(JOB_KEYS.contains(&"submit"));
    let before = ctx.diags.len();
    let Some(submit) = raw.submit.take() else {
        ctx.err(path, "missing required key `submit` for protocol `job`")
            .hint = Some("e.g. `submit: { method: POST, url: \"${PREVIEW_URL}/preview\" }`".into());
        return None;
    };
    let spath = p(path, &[k("submit")]);
    if !submit.headers.is_empty() {
        ctx.err(
            &p(&spath, &[k("headers")]),
            "a job's requests carry the endpoint's `headers`; put them there",
        );
    }
    if let Err(e) = check_http_url(&submit.url) {
        ctx.err(&p(&spath, &[k("url")]), e).hint = Some("scheme must be http or https".into());
    }
    let method = match submit.method.as_deref() {
        None => http::Method::POST,
        Some(m) => match m.to_ascii_uppercase().as_str() {
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            "GET" => http::Method::GET,
            _ => {
                ctx.err(
                    &p(&spath, &[k("method")]),
                    format!("unknown or unsuitable method `{m}` to submit a job"),
                )
                .hint = Some("valid: POST, PUT, PATCH, GET".into());
                http::Method::POST
            }
        },
    };
    let id = raw.id.take().and_then(|x| {
        let ipath = p(path, &[k("id")]);
        Some(Extractor {
            source: source_of(x.json.as_deref(), x.header.as_deref(), &ipath, ctx)?,
        })
    });
    let follow = match raw.poll.take() {
        None => JobFollow::Poll {
            url: None,
            every: DEFAULT_POLL_EVERY,
            backoff: 1.0,
            max_every: DEFAULT_POLL_EVERY,
        },
        Some(poll) => {
            let ppath = p(path, &[k("poll")]);
            if poll.url.is_some() && poll.stream.is_some() {
                ctx.err(
                    &ppath,
                    "give either `url` (polling) or `stream` (SSE), not both",
                );
            }
            match (poll.url, poll.stream) {
                (None, Some(stream)) => {
                    if poll.every.is_some() || poll.backoff.is_some() || poll.max_every.is_some() {
                        ctx.err(
                            &ppath,
                            "`every`, `backoff` and `max_every` apply to polling, not to `stream`",
                        );
                    }
                    if let Err(e) = check_http_url(&stream) {
                        ctx.err(&p(&ppath, &[k("stream")]), e);
                    }
                    JobFollow::Stream { url: stream }
                }
                (url, _) => {
                    if let Some(u) = &url {
                        if let Err(e) = check_http_url(u) {
                            ctx.err(&p(&ppath, &[k("url")]), e);
                        }
                    }
                    let every = poll.every.map(|d| d.0).unwrap_or(DEFAULT_POLL_EVERY);
                    if every < Duration::from_millis(1) {
                        ctx.err(
                            &p(&ppath, &[k("every")]),
                            "poll interval must be at least 1ms",
                        )
                        .hint = Some("e.g. `every: 100ms`".into());
                    }
                    let backoff = poll.backoff.unwrap_or(1.0);
                    if !(1.0..=10.0).contains(&backoff) {
                        ctx.err(
                            &p(&ppath, &[k("backoff")]),
                            format!("backoff {backoff} is outside 1..10"),
                        )
                        .hint = Some(
                            "the factor the interval grows by after each poll, e.g. 1.5".into(),
                        );
                    }
                    let max_every = poll.max_every.map(|d| d.0).unwrap_or(if backoff > 1.0 {
                        every * 20
                    } else {
                        every
                    });
                    if max_every < every {
                        ctx.err(
                            &p(&ppath, &[k("max_every")]),
                            "max_every is shorter than every",
                        );
                    }
                    JobFollow::Poll {
                        url,
                        every,
                        backoff,
                        max_every,
                    }
                }
            }
        }
    };
    let url_needs_id = match &follow {
        JobFollow::Poll { url: Some(u), .. } => u.contains("{id}"),
        JobFollow::Stream { url } => url.contains("{id}"),
        _ => false,
    };
    if url_needs_id && id.is_none() {
        ctx.err(
            path,
            "the status URL has `{id}` but the endpoint has no `id` extractor",
        )
        .hint = Some("e.g. `id: { json: \"$.id\" }`".into());
    }
    if matches!(follow, JobFollow::Poll { url: None, .. }) && id.is_some() {
        ctx.err(path, "with an `id` extractor, `poll` needs a `url` with `{id}` (or `stream`)")
            .hint = Some("e.g. `poll: { url: \"${PREVIEW_URL}/preview/{id}\", every: 100ms }`; without `id`, canary polls the `Location` of the submit response".into());
    }
    let done = match raw.done.take() {
        None => {
            ctx.err(path, "missing required key `done` for protocol `job`")
                .hint = Some("e.g. `done: { json: \"$.status\", equals: ready }`".into());
            None
        }
        Some(v) => {
            let dpath = p(path, &[k("done")]);
            collect::<RawMatcher>(v, &dpath, ctx).and_then(|m| matcher(m, &dpath, ctx))
        }
    };
    let (failed, reason) = match raw.failed.take() {
        None => (None, None),
        Some(f) => {
            let fpath = p(path, &[k("failed")]);
            let reason = f.reason.as_deref().and_then(|r| match Source::json(r) {
                Ok(source) => Some(Extractor { source }),
                Err(e) => {
                    ctx.err(&p(&fpath, &[k("reason")]), e);
                    None
                }
            });
            let m = matcher(
                RawMatcher {
                    json: f.json,
                    header: f.header,
                    equals: f.equals,
                    hit: None,
                    regex: f.regex,
                },
                &fpath,
                ctx,
            );
            (m, reason)
        }
    };
    let queue = raw.queue.take().and_then(|q| {
        let qpath = p(path, &[k("queue")]);
        Some(Extractor {
            source: source_of(q.json.as_deref(), q.header.as_deref(), &qpath, ctx)?,
        })
    });
    if ctx.diags.len() > before {
        return None;
    }
    Some(JobSpec {
        submit_method: method,
        submit_url: submit.url,
        submit_body: submit.body,
        id,
        follow,
        done: done?,
        failed,
        reason,
        queue,
    })
}

fn check_http_url(u: &str) -> Result<(), String> {
    let uri: http::Uri = u
        .replace("{id}", "x")
        .parse()
        .map_err(|e| format!("`{}` is not a valid URL: {e}", crate::secret::redact(u)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(format!(
            "`{}` must be an http:// or https:// URL with a host",
            crate::secret::redact(u)
        )),
    }
}

/// Builds `metrics_url` + `metrics_compare`.
pub(crate) fn target_metrics(
    raw: &mut RawEndpoint,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<TargetMetrics> {
    let compare_raw = raw.metrics_compare.take();
    let Some(url) = raw.metrics_url.take() else {
        if compare_raw.is_some() {
            ctx.err(
                &p(path, &[k("metrics_compare")]),
                "`metrics_compare` needs `metrics_url`",
            );
        }
        return None;
    };
    if let Err(e) = check_http_url(&url) {
        ctx.err(&p(path, &[k("metrics_url")]), e);
    }
    let mut compare = Vec::new();
    for (name, c) in compare_raw.unwrap_or_default() {
        let cpath = p(path, &[k("metrics_compare"), k(&name)]);
        let Some(sli) = Sli::parse(&name) else {
            let names = Sli::names();
            ctx.key_err(&cpath, format!("unknown SLI `{name}`")).hint =
                Some(crate::suite::diag::suggest(&name, &names));
            continue;
        };
        if let Some(series) = compare_one(sli, c, &cpath, ctx) {
            compare.push((sli, series));
        }
    }
    Some(TargetMetrics { url, compare })
}

fn compare_one(sli: Sli, c: RawCompare, path: &[Seg], ctx: &mut Ctx) -> Option<TargetSeries> {
    match (sli.kind(), c.good, c.total, c.histogram) {
        (SliKind::Ratio, Some(g), Some(t), None) => {
            let good = SeriesSelector::parse(&g)
                .map_err(|e| ctx.err(&p(path, &[k("good")]), e).message.clone())
                .ok();
            let total = SeriesSelector::parse(&t)
                .map_err(|e| ctx.err(&p(path, &[k("total")]), e).message.clone())
                .ok();
            Some(TargetSeries::Ratio {
                good: good?,
                total: total?,
            })
        }
        (SliKind::Latency, None, None, Some(h)) => {
            let name = h.trim_end_matches("_bucket").to_string();
            match SeriesSelector::parse(&name) {
                Ok(s) if s.labels.is_empty() => Some(TargetSeries::Histogram { name }),
                _ => {
                    ctx.err(
                        &p(path, &[k("histogram")]),
                        format!("`{h}` is not a histogram name"),
                    );
                    None
                }
            }
        }
        (SliKind::Ratio, ..) => {
            ctx.err(path, format!("`{}` is a ratio: give `good` and `total` series", sli.name()))
                .hint = Some("e.g. `cache_hit: { good: 'montage_proxy_cache_request_total{status=\"hit\"}', total: montage_proxy_cache_request_total }`".into());
            None
        }
        (SliKind::Latency, ..) => {
            ctx.err(
                path,
                format!("`{}` is a latency: give `histogram`", sli.name()),
            )
            .hint = Some(
                "e.g. `time_to_completion: { histogram: montage_time_to_preview_seconds }`".into(),
            );
            None
        }
    }
}

/// Checks endpoint `labels`: valid names, not canary's own label names.
pub(crate) fn labels(
    raw: &mut RawEndpoint,
    path: &[Seg],
    ctx: &mut Ctx,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in raw.labels.take().unwrap_or_default() {
        let lpath = p(path, &[k("labels"), k(&name)]);
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__");
        if !valid {
            ctx.key_err(&lpath, format!("`{name}` is not a valid label name"));
        } else if RESERVED_LABELS.contains(&name.as_str()) {
            ctx.key_err(&lpath, format!("`{name}` is a label canary sets itself"));
        } else {
            out.insert(name, value);
        }
    }
    out
}
