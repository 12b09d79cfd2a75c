//! Forward proxies: which proxy a request goes through (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY` and their lowercase forms, or the endpoint's `proxy:`), and the
//! HTTP CONNECT handshake that opens a tunnel through it.
//!
//! An `https`/`wss` target (and an h2c one) is reached through a CONNECT tunnel; a plain
//! `http` target is sent to the proxy in absolute form (`POST http://host/path`). Proxy
//! credentials come from the proxy URL's userinfo or from `username`/`password`; they are
//! registered as secrets and only ever sent in `Proxy-Authorization`. A proxy is named in
//! reports and errors as `host:port`, never with its credentials.

use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::timeline::{ErrorClass, ProbeError};

/// Largest CONNECT response head read before giving up (a proxy's error page is short).
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// One proxy: where it listens and the credentials to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Basic ...` for `Proxy-Authorization` (registered as a secret).
    pub authorization: Option<String>,
}

impl Proxy {
    /// Parses `http://[user:pass@]host[:port]` (the scheme may be left out; a proxy URL
    /// over TLS or SOCKS is not supported). Credentials in the URL are percent-decoded.
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "proxy scheme `{scheme}` is not supported; use an http:// proxy (CONNECT tunnels carry https)"
                ))
            }
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| format!("proxy address `{}` has no host", redact_userinfo(url)))?;
        let authorization = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some(basic(&percent_decode(user), &percent_decode(pass)))
            }
            None => None,
        };
        Ok(Proxy {
            host,
            port: port.unwrap_or(80),
            authorization,
        })
    }

    /// Sets credentials given apart from the URL (they replace the URL's).
    pub fn with_credentials(mut self, user: &str, pass: &str) -> Proxy {
        self.authorization = Some(basic(user, pass));
        self
    }

    /// `host:port`, as reports and errors name the proxy.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    if !pass.is_empty() {
        crate::secret::register(pass);
    }
    let v = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    crate::secret::register(&v);
    v
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with any `user:pass@` removed (for messages).
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            if h.is_empty() {
                return None;
            }
            Some((h.to_string(), Some(p.parse().ok()?)))
        }
        _ => Some((s.to_string(), None)),
    }
}

/// Where an endpoint's requests go (`proxy:` on the endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProxyChoice {
    /// From the environment: `HTTPS_PROXY` for https/wss, `HTTP_PROXY` for http/ws (either
    /// falling back to `ALL_PROXY`; lowercase forms first), unless `NO_PROXY` names the host.
    #[default]
    Env,
    /// Directly, whatever the environment says (`proxy: none`).
    Direct,
    /// Through this proxy, whatever the environment says (`NO_PROXY` included).
    Fixed(Arc<Proxy>),
}

impl ProxyChoice {
    /// The proxy for a request to `scheme://host:port`, if any. A proxy variable that does
    /// not parse is an error naming the variable (never its value).
    pub fn for_target(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Option<Arc<Proxy>>, ProbeError> {
        match self {
            ProxyChoice::Direct => Ok(None),
            ProxyChoice::Fixed(p) => Ok(Some(p.clone())),
            ProxyChoice::Env => from_env(&|n| std::env::var(n).ok(), scheme, host, port),
        }
    }
}

fn var(get: &dyn Fn(&str) -> Option<String>, upper: &str) -> Option<(String, String)> {
    let lower = upper.to_ascii_lowercase();
    [lower, upper.to_string()]
        .into_iter()
        .find_map(|n| get(&n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
}

/// The proxy the environment gives a target.
pub fn from_env(
    get: &dyn Fn(&str) -> Option<String>,
    scheme: &str,
    host: &str,
    port: u16,
) -> Result<Option<Arc<Proxy>>, ProbeError> {
    let tls = matches!(scheme, "https" | "wss");
    let first = if tls { "HTTPS_PROXY" } else { "HTTP_PROXY" };
    let Some((name, value)) = var(get, first).or_else(|| var(get, "ALL_PROXY")) else {
        return Ok(None);
    };
    if let Some((_, no)) = var(get, "NO_PROXY") {
        if no_proxy_matches(&no, host, port) {
            return Ok(None);
        }
    }
    let p = Proxy::parse(&value).map_err(|e| {
        ProbeError::new(
            ErrorClass::Proxy,
            format!("${name} is not a usable proxy: {e}"),
        )
    })?;
    Ok(Some(Arc::new(p)))
}

/// Whether a `NO_PROXY` list names `host` (port `port`): `*` for every host; a name
/// matches itself and its subdomains (a leading `.` or `*.` is the same); an entry with
/// `:port` matches that port only; an IP address matches itself, a CIDR block its
/// addresses.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    for entry in list
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if entry == "*" {
            return true;
        }
        let entry = entry.to_ascii_lowercase();
        if let Some((net, bits)) = entry.split_once('/') {
            if let (Some(ip), Ok(net), Ok(bits)) =
                (ip, net.parse::<std::net::IpAddr>(), bits.parse::<u8>())
            {
                if in_cidr(ip, net, bits) {
                    return true;
                }
            }
            continue;
        }
        let (name, eport) = match split_host_port(&entry) {
            Some((h, p)) => (h, p),
            None => continue,
        };
        if eport.is_some_and(|p| p != port) {
            continue;
        }
        if let (Some(ip), Ok(eip)) = (ip, name.parse::<std::net::IpAddr>()) {
            if ip == eip {
                return true;
            }
            continue;
        }
        let name = name.trim_start_matches("*.").trim_start_matches('.');
        if host == name || host.ends_with(&format!(".{name}")) {
            return true;
        }
    }
    false
}

fn in_cidr(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    use std::net::IpAddr::*;
    match (ip, net) {
        (V4(a), V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (V6(a), V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Asks the proxy on `io` for a tunnel to `authority` (`host:port`) and reads its answer.
/// A non-2xx answer, a closed connection or a malformed head is a `proxy` error.
pub async fn connect_tunnel<S>(io: &mut S, proxy: &Proxy, authority: &str) -> Result<(), ProbeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = proxy.display();
    let mut head = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: canary/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(a) = &proxy.authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(a);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await.map_err(|e| {
        ProbeError::new(
            ErrorClass::Proxy,
            format!("cannot send CONNECT to proxy {name}: {e}"),
        )
    })?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = find_head_end(&buf) {
            break i;
        }
        if buf.len() > MAX_CONNECT_HEAD {
            return Err(ProbeError::new(
                ErrorClass::Proxy,
                format!("proxy {name} answered CONNECT with a head over {MAX_CONNECT_HEAD} bytes"),
            ));
        }
        let n = io.read(&mut chunk).await.map_err(|e| {
            ProbeError::new(
                ErrorClass::Proxy,
                format!("proxy {name} broke the connection during CONNECT: {e}"),
            )
        })?;
        if n == 0 {
            return Err(ProbeError::new(
                ErrorClass::Proxy,
                format!("proxy {name} closed the connection without answering CONNECT {authority}"),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let status_line = text.lines().next().unwrap_or("");
    let status: Option<u16> = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|c| c.parse().ok());
    let line: String = status_line
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    match status {
        Some(s) if (200..300).contains(&s) => {
            if buf.len() > end + 4 {
                return Err(ProbeError::new(
                    ErrorClass::Proxy,
                    format!("proxy {name} sent data after its CONNECT answer, before the tunnel was used"),
                ));
            }
            Ok(())
        }
        Some(407) => Err(ProbeError::new(
            ErrorClass::Proxy,
            format!(
                "proxy {name} requires authentication ({line}); give credentials in the proxy URL (http://user:pass@host:port) or `proxy: {{ url, username, password }}`"
            ),
        )),
        Some(_) => Err(ProbeError::new(
            ErrorClass::Proxy,
            format!("proxy {name} refused CONNECT {authority}: {line}"),
        )),
        None => Err(ProbeError::new(
            ErrorClass::Proxy,
            format!("proxy {name} answered CONNECT with something that is not HTTP: {line:?}"),
        )),
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxy_urls_parse_with_and_without_credentials() {
        let p = Proxy::parse("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization),
            ("proxy.corp", 3128, None)
        );
        let p = Proxy::parse("proxy.corp").unwrap();
        assert_eq!(p.port, 80);
        let p = Proxy::parse("http://us%40er:p%3Ass-proxy-9@[::1]:8080/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert_eq!(p.display(), "[::1]:8080");
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("us@er:p:ss-proxy-9")
        );
        assert_eq!(p.authorization.as_deref(), Some(want.as_str()));
        // The password is a secret from now on, and so is the header value.
        assert_eq!(crate::secret::redact("x p:ss-proxy-9 y"), "x *** y");
        assert!(!crate::secret::redact(&want).contains("Basic "));
        assert!(Proxy::parse("socks5://h:1")
            .unwrap_err()
            .contains("not supported"));
        assert!(Proxy::parse("https://h:1").is_err());
        assert!(Proxy::parse("http://:1").is_err());
        assert_eq!(redact_userinfo("http://u:secret@h:1/x"), "http://h:1/x");
    }

    #[test]
    fn the_environment_picks_by_scheme_and_no_proxy_bypasses() {
        let e = env(&[
            ("HTTPS_PROXY", "http://sec:3128"),
            ("http_proxy", "http://plain:3128"),
            ("HTTP_PROXY", "http://upper-loses:1"),
            (
                "NO_PROXY",
                "internal.example, .corp, 10.0.0.0/8, 127.0.0.1, api.x:8443",
            ),
        ]);
        let host = |s, h, p| from_env(&e, s, h, p).unwrap().map(|p| p.host.clone());
        assert_eq!(host("https", "api.openai.com", 443).as_deref(), Some("sec"));
        assert_eq!(host("wss", "api.openai.com", 443).as_deref(), Some("sec"));
        assert_eq!(host("http", "api.openai.com", 80).as_deref(), Some("plain"));
        assert_eq!(host("https", "internal.example", 443), None);
        assert_eq!(host("https", "a.internal.example", 443), None);
        assert_eq!(
            host("https", "notinternal.example", 443).as_deref(),
            Some("sec")
        );
        assert_eq!(host("https", "x.corp", 443), None);
        assert_eq!(host("https", "10.1.2.3", 443), None);
        assert_eq!(host("https", "11.1.2.3", 443).as_deref(), Some("sec"));
        assert_eq!(host("http", "127.0.0.1", 8080), None);
        assert_eq!(host("https", "api.x", 8443), None);
        assert_eq!(host("https", "api.x", 443).as_deref(), Some("sec"));
        let none = env(&[]);
        assert_eq!(from_env(&none, "https", "h", 443).unwrap(), None);
        let all = env(&[("ALL_PROXY", "http://all:1"), ("no_proxy", "*")]);
        assert_eq!(from_env(&all, "https", "h", 443).unwrap(), None);
        let all = env(&[("all_proxy", "http://all:1")]);
        assert_eq!(
            from_env(&all, "http", "h", 80).unwrap().map(|p| p.port),
            Some(1)
        );
        let bad = env(&[("HTTPS_PROXY", "socks5://u:hunter2-bad@h:1")]);
        let err = from_env(&bad, "https", "h", 443).unwrap_err();
        assert_eq!(err.class, ErrorClass::Proxy);
        assert!(err.message.contains("$HTTPS_PROXY"), "{}", err.message);
        assert!(!err.message.contains("hunter2-bad"), "{}", err.message);
        assert!(no_proxy_matches("::1", "[::1]", 1));
        assert!(no_proxy_matches("fd00::/8", "fd12::1", 1));
    }

    #[tokio::test]
    async fn connect_reads_the_answer_and_classifies_refusals() {
        let p = Proxy::parse("http://u:pw-connect-test@127.0.0.1:1").unwrap();
        for (answer, ok, needle) in [
            (
                &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
                true,
                "",
            ),
            (
                b"HTTP/1.0 403 Filtered\r\nContent-Length: 0\r\n\r\n",
                false,
                "refused CONNECT",
            ),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                false,
                "requires authentication",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", false, "not HTTP"),
            (b"", false, "closed the connection"),
        ] {
            let (mut client, mut server) = tokio::io::duplex(4096);
            let answer = answer.to_vec();
            let srv = tokio::spawn(async move {
                let mut got = vec![0u8; 1024];
                let n = server.read(&mut got).await.unwrap();
                server.write_all(&answer).await.unwrap();
                drop(server);
                String::from_utf8_lossy(&got[..n]).into_owned()
            });
            let r = connect_tunnel(&mut client, &p, "api.example.com:443").await;
            let sent = srv.await.unwrap();
            assert!(
                sent.starts_with("CONNECT api.example.com:443 HTTP/1.1\r\n"),
                "{sent}"
            );
            assert!(sent.contains("Proxy-Authorization: Basic "), "{sent}");
            match r {
                Ok(()) => assert!(ok),
                Err(e) => {
                    assert!(!ok, "{e}");
                    assert_eq!(e.class, ErrorClass::Proxy);
                    assert!(e.message.contains(needle), "{}", e.message);
                    assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
                }
            }
        }
    }
}
