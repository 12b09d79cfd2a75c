//! An endpoint's network keys beyond `http:` (`proxy`, `follow_redirects`, `connection`,
//! `resolve`, `auth`), validated into [`crate::drivers::transport::Net`] with every problem
//! reported at its line.

use std::sync::Arc;

use serde_json::Value;

use super::model::Protocol;
use super::raw::RawEndpoint;
use super::validate::{k, p, Ctx};
use super::yaml::Seg;
use crate::drivers::proxy::{Proxy, ProxyChoice};
use crate::drivers::transport::Net;

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
    if let Some(v) = raw.proxy.take() {
        if let Some(c) = proxy(&v, &p(path, &[k("proxy")]), ctx) {
            net.proxy = c;
        }
    }
    if let Some(v) = raw.follow_redirects.take() {
        let at = p(path, &[k("follow_redirects")]);
        match v.as_u64() {
            _ if proto.is_voice() => {
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
            Some("reuse") if proto.is_voice() => {
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
