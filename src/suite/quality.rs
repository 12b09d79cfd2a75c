//! A probe's quality signals as written in the suite: `freshness` (the truth source's URL and
//! the JSONPaths of its value and update time) turned into a [`FreshnessSpec`], and
//! `canary_fact` (the write with `{{nonce}}`, its method and headers, `read_every` and
//! `give_up_after`) into a [`CanaryFactSpec`]. The SLOs that need them are checked in `slos.rs`.

use super::ctx::{k, p, Ctx};
use super::endpoints::check_url;
use super::model::{CanaryFactSpec, FreshnessSpec};
use super::raw::{RawCanaryFact, RawFreshness};
use super::yaml::Seg;
use crate::check::extract::{Extractor, Source};

/// `freshness: { truth: { url, value, updated_at } }` of the probe at `path`.
pub(super) fn freshness(f: RawFreshness, path: &[Seg], ctx: &mut Ctx) -> Option<FreshnessSpec> {
    let tpath = p(path, &[k("freshness"), k("truth")]);
    if let Err(e) = check_url(&f.truth.url.replace(['{', '}'], ""), &["http", "https"]) {
        ctx.err(&p(&tpath, &[k("url")]), e);
    }
    let value = Source::json(&f.truth.value)
        .map_err(|e| ctx.err(&p(&tpath, &[k("value")]), e).message.clone())
        .ok();
    let updated_at = Source::json(&f.truth.updated_at)
        .map_err(|e| ctx.err(&p(&tpath, &[k("updated_at")]), e).message.clone())
        .ok();
    Some(FreshnessSpec {
        url: f.truth.url,
        value: Extractor { source: value? },
        updated_at: Extractor {
            source: updated_at?,
        },
    })
}

/// `canary_fact: { write: { method, url, headers, body }, read_every, give_up_after }` of the
/// probe at `path`.
pub(super) fn canary_fact(c: RawCanaryFact, path: &[Seg], ctx: &mut Ctx) -> Option<CanaryFactSpec> {
    let cpath = p(path, &[k("canary_fact")]);
    if let Err(e) = check_url(&c.write.url.replace(['{', '}'], ""), &["http", "https"]) {
        ctx.err(&p(&cpath, &[k("write"), k("url")]), e);
    }
    let method = match c.write.method.as_deref() {
        None => http::Method::PUT,
        Some(m) => match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                ctx.err(
                    &p(&cpath, &[k("write"), k("method")]),
                    format!("unknown HTTP method `{m}`"),
                );
                return None;
            }
        },
    };
    let read_every = c
        .read_every
        .map(|d| d.0)
        .unwrap_or(std::time::Duration::from_millis(500));
    let give_up_after = c
        .give_up_after
        .map(|d| d.0)
        .unwrap_or(std::time::Duration::from_secs(300));
    if read_every.is_zero() || read_every > give_up_after {
        ctx.err(
            &p(&cpath, &[k("read_every")]),
            "read_every must be more than zero and at most give_up_after",
        )
        .hint = Some("e.g. `read_every: 500ms, give_up_after: 5m`".into());
    }
    let body = c.write.body;
    let has_nonce = body
        .as_ref()
        .is_some_and(|b| b.to_string().contains("{{nonce}}"))
        || c.write.url.contains("{{nonce}}");
    if !has_nonce {
        ctx.err(
            &p(&cpath, &[k("write")]),
            "the write never sends `{{nonce}}`: the answer could not be told apart from an old one",
        )
        .hint = Some("e.g. `body: { value: \"{{nonce}}\" }`".into());
    }
    let mut headers = Vec::new();
    for (n, v) in &c.write.headers {
        let hpath = p(&cpath, &[k("write"), k("headers"), k(n)]);
        if crate::secret::is_sensitive_header(n) {
            crate::secret::register(v);
        }
        match (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(crate::secret::is_sensitive_header(n.as_str()));
                headers.push((n, v));
            }
            _ => {
                ctx.err(&hpath, "not a valid HTTP header");
            }
        }
    }
    Some(CanaryFactSpec {
        method,
        headers,
        url: c.write.url,
        body,
        read_every,
        give_up_after,
    })
}
