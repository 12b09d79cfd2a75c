//! Host patterns of `gate.allowed_hosts` (the hosts a gate candidate or baseline URL may
//! point at) and the host and port a URL connects to, read exactly as the drivers read it.
//!
//! A pattern is a host name or IP address (`canary.example.com`, `10.0.0.5`, `[fd00::5]`),
//! optionally with a port (`canary.example.com:8443`: that port only; without one: any
//! port), or a suffix pattern `*.example.com` (any host below `example.com`, not
//! `example.com` itself). Names compare case-insensitively, without a trailing dot.

use std::fmt;

/// One entry of `gate.allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case, no trailing dot; IPv6 in brackets. For a suffix pattern: the part after `*.`.
    host: String,
    suffix: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `host`, `host:port`, `*.domain`, `*.domain:port`, `[v6]`, `[v6]:port`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("an empty host".into());
        }
        if t.contains("://") || t.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{t}` is not a host: give the host (and port) only, e.g. `canary.example.com:8080`"
            ));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let Some((addr, after)) = rest.split_once(']') else {
                return Err(format!("`{t}`: an IPv6 address needs its closing `]`"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{t}`: `{addr}` is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{t}`: expected `:PORT` after `]`"))?,
                ),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            match t.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(format!(
                        "`{t}`: write an IPv6 address in brackets, e.g. `[fd00::5]:8080`"
                    ))
                }
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (t.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("`{t}`: `{p}` is not a port (1 to 65535)")),
            },
        };
        let (host, suffix) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (host, false),
        };
        let host = host.trim_end_matches('.').to_string();
        let name_ok = !host.is_empty()
            && (host.starts_with('[')
                || host.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                }));
        if !name_ok {
            return Err(format!(
                "`{t}` is not a host name or address (a `*` may only start a suffix pattern, `*.example.com`)"
            ));
        }
        if suffix && host.starts_with('[') {
            return Err(format!(
                "`{t}`: a suffix pattern is for names, not addresses"
            ));
        }
        Ok(HostPattern { host, suffix, port })
    }

    /// Whether a URL whose host is `host` (as [`url_host_port`] gives it) and port is `port`
    /// may be targeted.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = normalize(host);
        let host_ok = if self.suffix {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host[..host.len() - self.host.len()].ends_with('.')
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suffix {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host (lower case, IPv6 in brackets) and port a URL connects to, as the drivers
/// connect: `http::Uri`'s host, its port or the scheme's (80 for http/ws, 443 for https/wss).
pub fn url_host_port(url: &str) -> Result<(String, u16), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL `{}`: {e}", crate::secret::redact(url)))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("URL `{}` has no host", crate::secret::redact(url)))?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("https" | "wss")) => 443,
        (None, Some("http" | "ws")) => 80,
        (None, other) => {
            return Err(format!(
                "URL `{}`: unsupported scheme {other:?}; use http, https, ws or wss",
                crate::secret::redact(url)
            ))
        }
    };
    Ok((normalize(host), port))
}

/// `host:port` as a URL writes it.
pub fn authority(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str, url: &str) -> bool {
        let (h, port) = url_host_port(url).unwrap();
        HostPattern::parse(p).unwrap().matches(&h, port)
    }

    #[test]
    fn exact_hosts_ports_and_suffixes() {
        assert!(ok("canary.example.com", "https://Canary.Example.com./v1"));
        assert!(ok("canary.example.com", "http://canary.example.com:9000/"));
        assert!(ok("canary.example.com:443", "https://canary.example.com/"));
        assert!(!ok("canary.example.com:443", "http://canary.example.com/"));
        assert!(!ok("canary.example.com", "http://evil-canary.example.com/"));
        assert!(!ok(
            "canary.example.com",
            "http://canary.example.com.evil.net/"
        ));
        assert!(ok("*.example.com", "http://a.b.example.com/"));
        assert!(!ok("*.example.com", "http://example.com/"));
        assert!(!ok("*.example.com", "http://badexample.com/"));
        assert!(ok(
            "*.svc.cluster.local:8080",
            "ws://x.ns.svc.cluster.local:8080/"
        ));
        assert!(ok("10.0.0.5", "http://10.0.0.5:1/"));
        assert!(ok("[FD00::5]:8080", "http://[fd00::5]:8080/"));
        assert!(!ok("[fd00::5]:8080", "http://[fd00::6]:8080/"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "",
            "http://h",
            "h/path",
            "user@h",
            "*",
            "a.*.com",
            "h:0",
            "h:http",
            "fd00::5",
            "[nope]",
            "*.[fd00::5]",
            "a..b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HostPattern::parse("*.Example.com.:8080")
                .unwrap()
                .to_string(),
            "*.example.com:8080"
        );
    }

    #[test]
    fn urls_give_the_host_and_port_the_drivers_connect_to() {
        assert_eq!(
            url_host_port("http://127.0.0.1/x").unwrap(),
            ("127.0.0.1".into(), 80)
        );
        assert_eq!(
            url_host_port("wss://h.example:9/").unwrap(),
            ("h.example".into(), 9)
        );
        assert!(url_host_port("ftp://h/").is_err());
        assert!(url_host_port("not a url").is_err());
    }
}
