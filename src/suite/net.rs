//! An endpoint's network keys beyond `http:` (`proxy`, `follow_redirects`, `connection`,
//! `resolve`, `auth`), validated into [`crate::net::transport::Net`] with every problem
//! reported at its line.

use std::sync::Arc;

use serde_json::Value;

use super::ctx::{k, p, Ctx};
use super::model::Protocol;
use super::raw::RawEndpoint;
use super::yaml::Seg;
use crate::net::auth::Auth;
use crate::net::proxy::{Proxy, ProxyChoice};
use crate::net::transport::Net;

/// Most redirects a chain may follow.
pub const MAX_FOLLOW_REDIRECTS: u64 = 20;

/// Fills `net` from the endpoint's keys.
pub(crate) fn build(
    net: &mut Net,
    raw: &mut RawEndpoint,
    proto: Protocol,
    path: &[Seg],
    ctx: &mut Ctx,
) {
    if let Some(v) = raw.auth.take() {
        let headers: Vec<String> = raw.headers.keys().cloned().collect();
        net.auth = auth(&v, proto, &headers, &p(path, &[k("auth")]), ctx).map(Arc::new);
    }
    if let Some(v) = raw.proxy.take() {
        if let Some(c) = proxy(&v, &p(path, &[k("proxy")]), ctx) {
            net.proxy = c;
        }
    }
    if let Some(v) = raw.follow_redirects.take() {
        let at = p(path, &[k("follow_redirects")]);
        match v.as_u64() {
            _ if proto.is_websocket() => {
                ctx.err(
                    &at,
                    format!(
                        "`follow_redirects` applies to protocols over HTTP, not the WebSocket protocol `{}`",
                        proto.as_str()
                    ),
                );
            }
            Some(n) if n <= MAX_FOLLOW_REDIRECTS => net.follow_redirects = n as u32,
            _ if v == Value::Bool(false) => net.follow_redirects = 0,
            _ => {
                ctx.err(
                    &at,
                    format!("`follow_redirects` must be a whole number from 0 to {MAX_FOLLOW_REDIRECTS}, not {v}"),
                )
                .hint = Some("e.g. `follow_redirects: 3` (0, the default, treats a redirect as an http_status error)".into());
            }
        }
    }
    if let Some(v) = raw.connection.take() {
        let at = p(path, &[k("connection")]);
        match v.as_str().map(str::trim) {
            Some("fresh") => net.pool = None,
            Some("reuse") if proto.is_websocket() => {
                ctx.err(
                    &at,
                    format!(
                        "`connection: reuse` applies to protocols over HTTP, not the WebSocket protocol `{}`",
                        proto.as_str()
                    ),
                );
            }
            Some("reuse") => net.pool = Some(Arc::default()),
            _ => {
                ctx.err(&at, format!("unknown connection mode {v}")).hint = Some(
                    "`fresh` (default: a new connection per case run, setup measured) or `reuse` (a keep-alive pool, as a long-lived client)".into(),
                );
            }
        }
    }
    if let Some(v) = raw.resolve.take() {
        let at = p(path, &[k("resolve")]);
        match v {
            Value::Object(m) => {
                for (host, addr) in m {
                    let hat = p(&at, &[k(&host)]);
                    let parsed = addr.as_str().and_then(|a| {
                        a.trim()
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<std::net::IpAddr>()
                            .ok()
                    });
                    match parsed {
                        Some(ip) if !host.trim().is_empty() => net.resolve.push((
                            host.trim().trim_matches(['[', ']']).to_ascii_lowercase(),
                            ip,
                        )),
                        _ => {
                            ctx.err(&hat, format!("`resolve` maps a host name to an IP address; {addr} is not one"))
                                .hint = Some("e.g. `resolve: { api.example.com: 10.0.3.17 }` (IPv6: \"::1\")".into());
                        }
                    }
                }
            }
            other => {
                ctx.err(
                    &at,
                    format!("`resolve` is a mapping of host name to IP address, not {other}"),
                )
                .hint = Some("e.g. `resolve: { api.example.com: 10.0.3.17 }`".into());
            }
        }
    }
}

/// The keys each `auth` type takes (besides `type`).
const AUTH_KEYS: &[(&str, &[&str])] = &[
    (
        "aws-sigv4",
        &[
            "region",
            "service",
            "access_key_id",
            "secret_access_key",
            "session_token",
        ],
    ),
    (
        "oauth2-client-credentials",
        &[
            "token_url",
            "client_id",
            "client_secret",
            "scope",
            "audience",
            "client_auth",
        ],
    ),
    (
        "google-service-account",
        &["key_file", "scope", "audience", "token_url"],
    ),
];

/// `auth: { type: ..., ... }`.
fn auth(v: &Value, proto: Protocol, headers: &[String], at: &[Seg], ctx: &mut Ctx) -> Option<Auth> {
    use crate::net::auth::{AwsKeys, SigV4, TokenKind, TokenSource};
    let types = "`aws-sigv4`, `oauth2-client-credentials` or `google-service-account`";
    let Value::Object(m) = v else {
        ctx.err(at, format!("`auth` is a mapping with `type: ` {types}"));
        return None;
    };
    if proto.is_websocket() {
        ctx.err(
            at,
            format!(
                "`auth` applies to protocols over HTTP, not the WebSocket protocol `{}`",
                proto.as_str()
            ),
        );
        return None;
    }
    if headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("authorization"))
    {
        ctx.err(
            at,
            "both `auth` and an `Authorization` header: `auth` writes that header",
        )
        .hint = Some("remove the header, or `auth`".into());
    }
    let Some(kind) = m.get("type").and_then(Value::as_str) else {
        ctx.err(at, format!("`auth` needs `type`: {types}"));
        return None;
    };
    let Some((_, keys)) = AUTH_KEYS.iter().find(|(t, _)| *t == kind) else {
        ctx.err(&p(at, &[k("type")]), format!("unknown auth type `{kind}`"))
            .hint = Some(types.into());
        return None;
    };
    let mut ok = true;
    for key in m.keys().filter(|k| k.as_str() != "type") {
        if !keys.contains(&key.as_str()) {
            ctx.err(
                &p(at, &[k(key)]),
                format!("`{key}` is not a key of auth type `{kind}`"),
            )
            .hint = Some(format!(
                "`{kind}` takes {}",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            ok = false;
        }
    }
    let text = |key: &str| -> Option<String> {
        m.get(key)
            .and_then(|v| match v {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    // A scope may be written as a list; the token request joins it with spaces.
    let scope = match m.get("scope") {
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => text("scope"),
    };
    let mut need = |key: &str, ctx: &mut Ctx| -> Option<String> {
        let v = text(key);
        if v.is_none() {
            ctx.err(at, format!("auth type `{kind}` needs `{key}`"));
            ok = false;
        }
        v
    };
    let token_url = |key: &str, u: &str, ctx: &mut Ctx| -> Option<http::Uri> {
        match u.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
            {
                Some(uri)
            }
            _ => {
                ctx.err(
                    &p(at, &[k(key)]),
                    format!(
                        "`{key}` must be an http:// or https:// URL, not `{}`",
                        crate::secret::redact(u)
                    ),
                );
                None
            }
        }
    };
    match kind {
        "aws-sigv4" => {
            let region = text("region")
                .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
                .or_else(|| {
                    std::env::var("AWS_DEFAULT_REGION")
                        .ok()
                        .filter(|r| !r.is_empty())
                });
            let service = text("service")
                .or_else(|| (proto == Protocol::BedrockConverse).then(|| "bedrock".to_string()));
            if region.is_none() {
                ctx.err(
                    at,
                    "auth type `aws-sigv4` needs `region` (or AWS_REGION in the environment)",
                )
                .hint = Some("e.g. `region: us-east-1`".into());
            }
            if service.is_none() {
                ctx.err(at, "auth type `aws-sigv4` needs `service` (the signing name, e.g. `bedrock`, `execute-api`, `sagemaker`)");
            }
            let (id, secret) = (text("access_key_id"), text("secret_access_key"));
            let keys = match (id, secret) {
                (Some(id), Some(secret)) => {
                    let token = text("session_token");
                    for s in [Some(&id), Some(&secret), token.as_ref()]
                        .into_iter()
                        .flatten()
                    {
                        crate::secret::register(s);
                    }
                    AwsKeys::Given {
                        access_key_id: id,
                        secret_access_key: secret,
                        session_token: token,
                    }
                }
                (None, None) if m.get("session_token").is_none() => AwsKeys::Env,
                _ => {
                    ctx.err(at, "give `access_key_id` and `secret_access_key` together (and `session_token` only with them), or none to read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN")
                        .hint = Some("e.g. `secret_access_key: \"${file:aws-secret}\"`".into());
                    return None;
                }
            };
            Some(Auth::SigV4(SigV4 {
                region: region?,
                service: service?,
                keys,
            }))
        }
        "oauth2-client-credentials" => {
            let url = need("token_url", ctx);
            let id = need("client_id", ctx);
            let secret = need("client_secret", ctx);
            let in_body = match text("client_auth").as_deref() {
                None | Some("basic") => false,
                Some("body") => true,
                Some(other) => {
                    ctx.err(&p(at, &[k("client_auth")]), format!("unknown client_auth `{other}`"))
                        .hint = Some("`basic` (default: HTTP Basic) or `body` (client_id and client_secret in the form)".into());
                    false
                }
            };
            let (url, id, secret) = (url?, id?, secret?);
            crate::secret::register(&secret);
            let uri = token_url("token_url", &url, ctx)?;
            ok.then(|| {
                Auth::Token(TokenSource::new(
                    TokenKind::ClientCredentials {
                        client_id: id,
                        client_secret: secret,
                        scope,
                        audience: text("audience"),
                        in_body,
                    },
                    uri,
                ))
            })
        }
        _ => {
            let file = need("key_file", ctx)?;
            let full = ctx.dir().join(&file);
            let kpath = p(at, &[k("key_file")]);
            let text_of = match super::yaml::read_capped(&full, 64 * 1024) {
                Ok(t) => t,
                Err(e) => {
                    ctx.err(&kpath, format!("cannot read the service account key file `{file}`: {e}"))
                        .hint = Some("the JSON key downloaded for the service account; paths are relative to the suite".into());
                    return None;
                }
            };
            let doc: Value = match serde_json::from_str(&text_of) {
                Ok(d) => d,
                Err(_) => {
                    ctx.err(
                        &kpath,
                        format!("`{file}` is not a service account key (not JSON)"),
                    );
                    return None;
                }
            };
            let (Some(email), Some(pem)) =
                (doc["client_email"].as_str(), doc["private_key"].as_str())
            else {
                ctx.err(&kpath, format!("`{file}` has no `client_email` and `private_key`: not a service account key"));
                return None;
            };
            crate::secret::register(pem);
            let key = match jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(key) => key,
                Err(_) => {
                    ctx.err(
                        &kpath,
                        format!("the private_key in `{file}` is not an RSA key in PEM"),
                    );
                    return None;
                }
            };
            let url = text("token_url")
                .or_else(|| doc["token_uri"].as_str().map(str::to_string))
                .unwrap_or_else(|| crate::net::auth::GOOGLE_TOKEN_URL.to_string());
            let uri = token_url("token_url", &url, ctx)?;
            let audience = text("audience");
            let scope = match (&scope, &audience) {
                (None, None) => Some("https://www.googleapis.com/auth/cloud-platform".to_string()),
                _ => scope,
            };
            ok.then(|| {
                Auth::Token(TokenSource::new(
                    TokenKind::ServiceAccount {
                        email: email.to_string(),
                        key_id: doc["private_key_id"].as_str().map(str::to_string),
                        key: Arc::new(key),
                        scope,
                        audience,
                    },
                    uri,
                ))
            })
        }
    }
}

/// `proxy: none | env | URL | { url, username, password }`.
fn proxy(v: &Value, at: &[Seg], ctx: &mut Ctx) -> Option<ProxyChoice> {
    let hint = "`none` (direct, whatever HTTPS_PROXY says), `env` (the default), `http://host:port` or `{ url: http://host:port, username: u, password: \"${file:proxy-password}\" }`";
    let (url, user, pass) = match v {
        Value::String(s) if s.trim().eq_ignore_ascii_case("none") => {
            return Some(ProxyChoice::Direct)
        }
        Value::String(s) if s.trim().eq_ignore_ascii_case("env") => return Some(ProxyChoice::Env),
        Value::String(s) => (s.clone(), None, None),
        Value::Object(m) => {
            for key in m.keys() {
                if !matches!(key.as_str(), "url" | "username" | "password") {
                    ctx.err(&p(at, &[k(key)]), format!("unknown proxy key `{key}`"))
                        .hint = Some("`url`, `username`, `password`".into());
                }
            }
            let s = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_string);
            let Some(url) = s("url") else {
                ctx.err(at, "`proxy` needs `url`").hint = Some(hint.into());
                return None;
            };
            if s("username").is_some() != s("password").is_some() {
                ctx.err(at, "give both `username` and `password`, or neither");
            }
            (url, s("username"), s("password"))
        }
        _ => {
            ctx.err(at, format!("`proxy` is {hint}")).hint = None;
            return None;
        }
    };
    match Proxy::parse(&url) {
        Ok(mut px) => {
            if let (Some(u), Some(pw)) = (user, pass) {
                px = px.with_credentials(&u, &pw);
            }
            Some(ProxyChoice::Fixed(Arc::new(px)))
        }
        Err(e) => {
            ctx.err(at, crate::secret::redact(&e)).hint = Some(hint.into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    /// Load errors of a one-endpoint suite.
    fn errors(protocol: &str, url: &str, extra: &str) -> Vec<String> {
        match super::super::load_one(protocol, url, extra) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn http_keys_belong_to_every_protocol_over_http_and_to_no_websocket() {
        let keys = "    follow_redirects: 2\n    connection: reuse\n    auth: { type: aws-sigv4, service: polly, region: eu-west-1 }\n";
        // Speech over HTTP takes them.
        assert_eq!(
            errors("http-audio", "http://127.0.0.1:1/v1/audio/speech", keys),
            Vec::<String>::new()
        );
        // A WebSocket protocol refuses each, naming it.
        let e = errors("ws-opus", "ws://127.0.0.1:1/v", keys);
        for key in ["follow_redirects", "connection: reuse", "auth"] {
            assert!(
                e.iter().any(|d| d.contains(&format!(
                    "`{key}` applies to protocols over HTTP, not the WebSocket protocol `ws-opus`"
                ))),
                "{key}: {e:?}"
            );
        }
    }
}
