//! The `endpoints:` section: one endpoint's keys turned into an [`Endpoint`] (name, URL and
//! scheme per protocol, method, headers and the clear-text credentials check, price and
//! `max_tokens`, TLS files, network settings, tier, answer, fallback, cache, escalation,
//! schema, timeout, `max_body`, stream and params), with the voice and job keys read by
//! `voice.rs` and `job.rs`.

use std::sync::Arc;

use serde_json::Value;

use super::ctx::{k, load_schema, matcher, p, source_of, Ctx};
use super::diag::list;
use super::model::*;
use super::protocol::Family;
use super::raw::*;
use super::yaml::Seg;
use crate::check::extract::Extractor;

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub(super) fn build_endpoint(
    name: &str,
    mut raw: RawEndpoint,
    defaults: &Defaults,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Endpoint> {
    let before = ctx.diags.len();
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || name.is_empty()
    {
        ctx.key_err(
            path,
            format!("endpoint name `{name}` has characters that are unsafe in a label"),
        )
        .hint = Some("use letters, digits, `_`, `-` and `.`".into());
    }
    let proto = raw.protocol;
    let url_path = p(path, &[k("url")]);
    let info = proto.info();
    let (schemes, needs_url) = (info.schemes, info.needs_url);
    let url = raw.url.clone().unwrap_or_default();
    if needs_url {
        match &raw.url {
            None => {
                ctx.err(
                    path,
                    format!(
                        "missing required key `url` for protocol `{}`",
                        proto.as_str()
                    ),
                )
                .hint = Some(format!(
                    "e.g. `url: \"{}://127.0.0.1:7070/...\"`",
                    schemes[0]
                ));
            }
            Some(u) => {
                // `{model}` in a described stream's URL is filled per case.
                if let Err(e) = check_url(&u.replace("{model}", "model"), schemes) {
                    ctx.err(&url_path, e).hint = Some(format!("scheme must be {}", list(schemes)));
                }
            }
        }
    }
    let method = match raw.method.as_deref() {
        None => http::Method::POST,
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            if HTTP_METHODS.contains(&upper.as_str()) {
                http::Method::from_bytes(upper.as_bytes()).unwrap_or(http::Method::POST)
            } else {
                ctx.err(
                    &p(path, &[k("method")]),
                    format!("unknown HTTP method `{m}`"),
                )
                .hint = Some(format!("valid: {}", list(HTTP_METHODS)));
                http::Method::POST
            }
        }
    };
    // Credentials over plain text to a host that is not this machine need an explicit opt-in.
    let sends_secret = raw
        .headers
        .keys()
        .any(|h| crate::secret::is_sensitive_header(h))
        || raw.auth.is_some();
    if sends_secret && !raw.allow_insecure.unwrap_or(false) {
        let target = match &raw.submit {
            Some(s) => s.url.clone(),
            None => raw.url.clone().unwrap_or_default(),
        };
        if let Ok(uri) = target.replace("{id}", "x").parse::<http::Uri>() {
            let plain = matches!(uri.scheme_str(), Some("http") | Some("ws"));
            let host = uri
                .host()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if plain && !loopback {
                ctx.err(
                    &url_path,
                    format!("credentials (`headers` or `auth`) would travel in clear text to `{host}`"),
                )
                .hint = Some("use https:// (or wss://), or set `allow_insecure: true` on the endpoint if the network is trusted".into());
            }
        }
    }
    let mut headers = Vec::new();
    for (hname, hval) in &raw.headers {
        let hpath = p(path, &[k("headers"), k(hname)]);
        let Ok(n) = http::HeaderName::from_bytes(hname.as_bytes()) else {
            ctx.key_err(&hpath, format!("`{hname}` is not a valid HTTP header name"));
            continue;
        };
        if crate::secret::is_sensitive_header(hname) {
            crate::secret::register(hval);
        }
        match http::HeaderValue::from_str(hval) {
            Ok(mut v) => {
                if crate::secret::is_sensitive_header(hname) {
                    v.set_sensitive(true);
                }
                headers.push((n, v))
            }
            Err(_) => {
                ctx.err(&hpath, "header value has characters HTTP does not allow (newline or control character)");
            }
        }
    }
    let (voice, problems) = super::voice::build(&raw);
    for pr in problems {
        let d = ctx.err(&p(path, &[k(pr.key)]), pr.message);
        d.hint = pr.hint;
    }
    let price = raw.price.take().and_then(|pr| {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !ok(pr.input_per_mtok) || !ok(pr.output_per_mtok) {
            ctx.err(
                &p(path, &[k("price")]),
                "prices must be zero or more dollars per million tokens",
            )
            .hint = Some("e.g. `price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }`".into());
            return None;
        }
        Some(Price {
            input_per_mtok: pr.input_per_mtok,
            output_per_mtok: pr.output_per_mtok,
        })
    });
    if raw.max_tokens.is_some() && !proto.info().keys.contains(&"max_tokens") {
        ctx.err(
            &p(path, &[k("max_tokens")]),
            format!(
                "`max_tokens` applies to chat protocols, not `{}`",
                proto.as_str()
            ),
        );
    }
    let tls = raw
        .tls
        .take()
        .and_then(|t| tls_config(t, &p(path, &[k("tls")]), ctx));
    let net = net_settings(&mut raw, proto, path, ctx);
    let job = super::job::build(&mut raw, path, ctx);
    let metrics = super::job::target_metrics(&mut raw, path, ctx);
    let labels = super::job::labels(&mut raw, path, ctx);
    let tier = raw.tier.and_then(|t| {
        let tpath = p(path, &[k("tier")]);
        let source = source_of(t.json.as_deref(), t.header.as_deref(), &tpath, ctx)?;
        Some(TierSpec {
            extractor: Extractor { source },
            primary: t.primary.map(|p| p.0).unwrap_or_default(),
        })
    });
    let answer = raw.answer.and_then(|a| {
        let apath = p(path, &[k("answer")]);
        if a.primary.is_some() {
            ctx.err(
                &p(&apath, &[k("primary")]),
                "`primary` belongs to `tier`, not `answer`",
            );
        }
        Some(Extractor {
            source: source_of(a.json.as_deref(), a.header.as_deref(), &apath, ctx)?,
        })
    });
    let fallback = raw
        .fallback
        .and_then(|m| matcher(m, &p(path, &[k("fallback")]), ctx));
    let cache = raw
        .cache
        .and_then(|m| matcher(m, &p(path, &[k("cache")]), ctx));
    let (escalation, escalation_phrases) = match raw.escalation {
        None => (
            None,
            // Text answers are searched for the usual hand-off and refusal phrases.
            proto.info().answers_text.then(|| EscalationPhrases {
                builtin: true,
                extra: Vec::new(),
            }),
        ),
        Some(e) => {
            let epath = p(path, &[k("escalation")]);
            let m = if e.json.is_some() || e.header.is_some() {
                matcher(
                    RawMatcher {
                        json: e.json,
                        header: e.header,
                        equals: e.equals,
                        hit: None,
                        regex: e.regex,
                    },
                    &epath,
                    ctx,
                )
            } else {
                if e.equals.is_some() || e.regex.is_some() {
                    ctx.err(&epath, "`equals` / `regex` need `json` or `header`");
                }
                None
            };
            let extra: Vec<String> = e
                .phrases
                .map(|p| p.0)
                .unwrap_or_default()
                .into_iter()
                .map(|p| crate::check::escalation::normalize(&p))
                .filter(|p| !p.is_empty())
                .collect();
            let builtin = e.builtin.unwrap_or(proto.info().answers_text);
            let phrases =
                (builtin || !extra.is_empty()).then_some(EscalationPhrases { builtin, extra });
            (m, phrases)
        }
    };
    let schema = raw.schema.as_deref().and_then(|s| {
        let dir = ctx.dir();
        match load_schema(&dir, s) {
            Ok(sc) => Some(sc),
            Err((msg, hint)) => {
                ctx.err(&p(path, &[k("schema")]), msg).hint = Some(hint);
                None
            }
        }
    });
    let timeout = raw.timeout.map(|d| d.0).unwrap_or(defaults.timeout);
    if timeout.is_zero() {
        ctx.err(&p(path, &[k("timeout")]), "timeout must be more than zero");
    }
    let max_body = raw.max_body.map(|b| b.0).unwrap_or(defaults.max_body);
    if max_body == 0 {
        ctx.err(
            &p(path, &[k("max_body")]),
            "max_body must be more than zero",
        );
    }
    let audio_events = proto.info().audio_events;
    let stream_spec = if proto.is_described()
        || (audio_events && (raw.stream.is_some() || proto == Protocol::WsJsonAudio))
    {
        super::stream::build(proto, raw.stream.as_ref(), path, ctx)
    } else {
        if proto.is_chat() && raw.stream.as_ref().is_some_and(|v| !v.is_boolean()) {
            ctx.err(
                &p(path, &[k("stream")]),
                format!(
                    "for protocol `{}`, `stream` is `true` or `false`",
                    proto.as_str()
                ),
            )
            .hint = Some(
                "a stream description needs `protocol: stream` (or a built-in such as `gemini`)"
                    .into(),
            );
        }
        None
    };
    if !proto.is_chat() {
        for (key, present) in [
            ("stream", raw.stream.is_some() && !audio_events),
            ("params", raw.params.is_some()),
        ] {
            if present {
                ctx.err(
                    &p(path, &[k(key)]),
                    format!(
                        "`{key}` applies to chat protocols, not `{}`",
                        proto.as_str()
                    ),
                );
            }
        }
    }
    if ctx.diags.len() > before {
        return None;
    }
    let chat = ChatSettings {
        stream: raw.stream.as_ref().and_then(Value::as_bool).unwrap_or(true),
        params: raw.params.unwrap_or_default(),
        max_tokens: raw.max_tokens,
    };
    // Each family's builder reported an error whenever it gave nothing, so a missing piece
    // here was already said (and the error count checked above).
    let url = match &job {
        Some(j) => j.submit_url.clone(),
        None => url,
    };
    let settings = match proto.info().family {
        Family::Json => Settings::Json,
        Family::Chat => match stream_spec {
            Some(d) if proto.is_described() => Settings::Described(chat, d),
            None if !proto.is_described() => Settings::Chat(chat),
            _ => return None,
        },
        Family::Voice => Settings::Voice(voice?, stream_spec),
        Family::Job => Settings::Job(Box::new(job?)),
    };
    Some(Endpoint {
        name: name.to_string(),
        protocol: proto,
        method,
        headers,
        model: raw.model,
        tier,
        fallback,
        cache,
        escalation,
        escalation_phrases,
        price,
        tls,
        net,
        schema,
        answer,
        timeout,
        max_body,
        metrics,
        labels,
        traceparent: raw.traceparent.unwrap_or(true),
        settings,
        url,
    })
}

/// Checks a URL: no credentials in it, one of `schemes`, a host.
pub(super) fn check_url(u: &str, schemes: &[&str]) -> Result<(), String> {
    // Credentials in a URL (`user:pass@host`) are secrets: register them before any message.
    if let Some(rest) = u.split_once("://").map(|(_, r)| r) {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            crate::secret::register(userinfo);
            for part in userinfo.split(':') {
                crate::secret::register(part);
            }
            return Err(format!(
                "`{}` carries credentials; put them in `headers` from ${{ENV}} or ${{file:...}} instead",
                crate::secret::redact(u)
            ));
        }
    }
    let shown = crate::secret::redact(u);
    let uri: http::Uri = u
        .parse()
        .map_err(|e| format!("`{shown}` is not a valid URL: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if !schemes.contains(&scheme) {
        return Err(if scheme.is_empty() {
            format!("`{shown}` has no scheme")
        } else {
            format!("`{shown}` has scheme `{scheme}`")
        });
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` has no host"));
    }
    Ok(())
}

/// An endpoint's network keys (`http:`), each problem named by key.
fn net_settings(
    raw: &mut RawEndpoint,
    proto: Protocol,
    path: &[Seg],
    ctx: &mut Ctx,
) -> crate::net::transport::Net {
    use crate::net::transport::{HttpVersion, Net};
    let mut net = Net::default();
    if let Some(v) = raw.http.take() {
        match HttpVersion::parse(&v) {
            Some(_) if proto.is_websocket() => {
                ctx.err(
                    &p(path, &[k("http")]),
                    format!(
                        "`http` applies to protocols over HTTP, not the WebSocket protocol `{}`",
                        proto.as_str()
                    ),
                );
            }
            Some(h) => net.http = h,
            None => {
                ctx.err(&p(path, &[k("http")]), format!("unknown HTTP version {v}"))
                    .hint = Some("`auto` (HTTP/2 when the server offers it), `1.1` or `2`".into());
            }
        }
    }
    super::net::build(&mut net, raw, proto, path, ctx);
    net
}

/// Builds an endpoint's TLS client configuration from PEM files (paths relative to the
/// suite): a CA added to the system roots, and a client certificate chain with its key.
fn tls_config(t: RawTls, path: &[Seg], ctx: &mut Ctx) -> Option<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let dir = ctx.dir();
    let mut roots = crate::net::tls::system_roots();
    let mut ok = true;
    if let Some(ca) = &t.ca {
        let file = dir.join(ca);
        match CertificateDer::pem_file_iter(&file).map(|i| i.collect::<Result<Vec<_>, _>>()) {
            Ok(Ok(certs)) if !certs.is_empty() => {
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    ctx.err(
                        &p(path, &[k("ca")]),
                        format!("{}: no usable CA certificate", file.display()),
                    );
                    ok = false;
                }
            }
            _ => {
                ctx.err(
                    &p(path, &[k("ca")]),
                    format!("{}: not a readable PEM certificate file", file.display()),
                )
                .hint = Some("a PEM file with one or more `BEGIN CERTIFICATE` blocks".into());
                ok = false;
            }
        }
    }
    let client = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(c), Some(kf)) => {
            let cfile = dir.join(c);
            let kfile = dir.join(kf);
            let chain =
                CertificateDer::pem_file_iter(&cfile).map(|i| i.collect::<Result<Vec<_>, _>>());
            let key = PrivateKeyDer::from_pem_file(&kfile);
            match (chain, key) {
                (Ok(Ok(chain)), Ok(key)) if !chain.is_empty() => Some((chain, key)),
                (chain, key) => {
                    if !matches!(chain, Ok(Ok(ref c)) if !c.is_empty()) {
                        ctx.err(
                            &p(path, &[k("cert")]),
                            format!("{}: not a readable PEM certificate chain", cfile.display()),
                        );
                    }
                    if key.is_err() {
                        ctx.err(
                            &p(path, &[k("key")]),
                            format!("{}: not a readable PEM private key", kfile.display()),
                        );
                    }
                    ok = false;
                    None
                }
            }
        }
        _ => {
            ctx.err(path, "a client certificate needs both `cert` and `key`");
            ok = false;
            None
        }
    };
    if !ok {
        return None;
    }
    match crate::net::tls::client_config(roots, client) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.err(path, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_url_names_the_scheme_the_host_and_credentials() {
        assert!(check_url("https://api.example.com/v1", &["http", "https"]).is_ok());
        assert_eq!(
            check_url("ftp://x/y", &["http", "https"]).unwrap_err(),
            "`ftp://x/y` has scheme `ftp`"
        );
        assert_eq!(
            check_url("/v1/chat", &["http", "https"]).unwrap_err(),
            "`/v1/chat` has no scheme"
        );
        let e = check_url("https://user:hunter2-secret@example.com/", &["https"]).unwrap_err();
        assert!(e.contains("carries credentials"), "{e}");
        assert!(
            !e.contains("hunter2-secret"),
            "the password is redacted: {e}"
        );
    }
}
