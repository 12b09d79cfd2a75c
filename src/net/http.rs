//! HTTP/1.1 and HTTP/2 over a fresh connection per case run, with every phase stamped on
//! the timeline: resolve, connect, TLS, request sent, headers, each body piece, done.
//!
//! The HTTP version follows the endpoint's `http:` ([`super::transport::HttpVersion`]): ALPN
//! offers `h2` and `http/1.1` over TLS by default and the server chooses; `http: 2` over plain
//! `http://` speaks HTTP/2 with prior knowledge (h2c). Either way the connection's work runs
//! in the probe's task, under the stamped socket, so stamps are taken the same way.
//!
//! canary opens its own connection (tokio + rustls + hyper's client connection) instead of
//! using a pooled client so that the phases are known exactly and no probe reuses another's
//! warm connection. Body pieces are stamped with the arrival of the read that completed them
//! (the kernel's receive timestamp, [`super::rxstamp`]), before parsing.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::pool::{ConnFuture, ConnInfo, Idle, Pool, Sender, DRAIN_MAX_BYTES, DRAIN_MAX_TIME};
use super::proxy::Proxy;
use super::transport::{HttpVersion, Net};
use crate::timeline::{ErrorClass, Event, Phases, ProbeError, Recorder, RedirectHop, Response};

/// Bytes of a non-2xx body kept for the error message.
const ERROR_EXCERPT: usize = 200;

/// What to send.
pub struct HttpRequest<'a> {
    pub method: Method,
    pub uri: &'a Uri,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: Option<Bytes>,
    pub content_type: Option<&'static str>,
    pub accept: &'static str,
    /// The endpoint's own TLS settings (custom CA, client certificate); the default otherwise.
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
    /// The endpoint's network settings (HTTP version); the defaults when `None`.
    pub net: Option<&'a Net>,
}

/// A response whose head has arrived; the body is read by the caller.
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `None` only once the drop handed it to a background drain.
    body: Option<Incoming>,
    /// The connection, driven in the same task as the body: bytes read from the socket turn
    /// into body pieces in the same poll, with no hand-off between tasks to delay the stamp.
    /// Dropping it (end of exchange, deadline) closes the connection, unless it goes back
    /// to the endpoint's pool (`connection: reuse`, body read to its end).
    conn: ConnFuture,
    conn_done: bool,
    /// The request sender, kept while the body is read (the connection stays open).
    sender: Option<Sender>,
    /// Arrival of the latest bytes read: a piece is stamped with the arrival of the read
    /// that completed it (hyper reads no further until the piece is taken).
    stamps: super::rxstamp::RxStamps,
    /// Where the connection goes back when the body has been read to its end.
    pool: Option<(Arc<Pool>, String, ConnInfo)>,
    ended: bool,
    /// When the head arrived (for the caller that follows redirects).
    head_at: Instant,
}

// The roots and the client configuration are shared with the suite loader (an endpoint's
// `tls:` files): they live in `crate::net::tls`.
pub use crate::net::tls::{client_config, system_roots};

impl Drop for Streaming {
    /// Under `connection: reuse`, puts the connection back in the pool: at once when the
    /// body was read to its end or the connection is HTTP/2 (dropping the body resets only
    /// its stream); an HTTP/1.1 body left unread (a stream left at its terminator) is read
    /// to its end in the background first, within bounds, or the connection is closed.
    fn drop(&mut self) {
        if self.conn_done {
            return;
        }
        let (Some((pool, key, info)), Some(sender)) = (self.pool.take(), self.sender.take()) else {
            return;
        };
        let mut conn = std::mem::replace(&mut self.conn, Box::pin(async {}));
        let stamps = self.stamps.clone();
        if self.ended || matches!(sender, Sender::H2(_)) {
            pool.put(
                key,
                Idle {
                    sender,
                    conn,
                    stamps,
                    info,
                },
            );
            return;
        }
        let (Some(mut body), Ok(rt)) = (self.body.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        pool.draining(&key, 1);
        rt.spawn(async move {
            let deadline = tokio::time::sleep(DRAIN_MAX_TIME);
            tokio::pin!(deadline);
            let mut read = 0usize;
            let mut conn_done = false;
            let clean = loop {
                tokio::select! {
                    biased;
                    _ = &mut deadline => break false,
                    f = body.frame() => match f {
                        None => break true,
                        Some(Ok(f)) => {
                            read += f.data_ref().map(|d| d.len()).unwrap_or(0);
                            if read > DRAIN_MAX_BYTES {
                                break false;
                            }
                        }
                        Some(Err(_)) => break false,
                    },
                    _ = &mut conn, if !conn_done => conn_done = true,
                }
            };
            drop(body);
            if clean && !conn_done {
                pool.put(
                    key.clone(),
                    Idle {
                        sender,
                        conn,
                        stamps,
                        info,
                    },
                );
            }
            pool.draining(&key, -1);
        });
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // The ring provider supports the safe default versions (TLS 1.2 and 1.3); this
            // depends on the build, never on a target or a user.
            #[allow(clippy::expect_used)]
            client_config(system_roots(), None).expect("ring supports TLS 1.2 and 1.3")
        })
        .clone()
}

/// Sends an endpoint's token requests (`auth:`): its proxy, HTTP version and TLS settings,
/// a connection of its own and a clock of its own (none of its phases is the probe's).
struct TokenSender<'a> {
    net: Option<&'a Net>,
    tls: Option<&'a Arc<rustls::ClientConfig>>,
}

impl super::auth::TokenTransport for TokenSender<'_> {
    fn send(&self, r: super::auth::TokenRequest) -> super::auth::TokenFuture<'_> {
        use super::auth::{TokenSendError, MAX_TOKEN_BODY};
        Box::pin(async move {
            let token_net = self.net.map(Net::for_another_service).unwrap_or_default();
            let mut scratch = Recorder::start();
            let streaming = Box::pin(send(
                HttpRequest {
                    method: Method::POST,
                    uri: &r.url,
                    headers: &r.headers,
                    body: Some(r.body),
                    content_type: Some("application/x-www-form-urlencoded"),
                    accept: "application/json",
                    tls: self.tls,
                    net: Some(&token_net),
                },
                &mut scratch,
            ))
            .await
            .map_err(|e| TokenSendError::Request(e.message))?;
            let resp = streaming
                .read_all(MAX_TOKEN_BODY, &mut scratch)
                .await
                .map_err(|(e, _)| TokenSendError::Body(e.message))?;
            Ok((resp.status, resp.body))
        })
    }
}

/// The default configuration offering the ALPN protocols of `version` (cached: each is
/// built once, so TLS session resumption works across probes as before).
fn default_tls_for(version: HttpVersion) -> Arc<rustls::ClientConfig> {
    static CONFIGS: [OnceLock<Arc<rustls::ClientConfig>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match version {
        HttpVersion::Http1 => return tls_config(),
        HttpVersion::Auto => &CONFIGS[0],
        HttpVersion::Http2 => &CONFIGS[1],
    };
    slot.get_or_init(|| with_alpn(&tls_config(), version.alpn()))
        .clone()
}

/// `config` offering `alpn` (a copy when it offers something else).
fn with_alpn(config: &Arc<rustls::ClientConfig>, alpn: Vec<Vec<u8>>) -> Arc<rustls::ClientConfig> {
    if config.alpn_protocols == alpn {
        return config.clone();
    }
    let mut c = rustls::ClientConfig::clone(config);
    c.alpn_protocols = alpn;
    Arc::new(c)
}

/// Classifies an I/O error from reading or writing an open connection.
fn io_class(e: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => ErrorClass::Reset,
        TimedOut => ErrorClass::Timeout,
        _ => ErrorClass::Reset,
    }
}

/// Classifies a hyper error.
pub fn hyper_class(e: &hyper::Error) -> ErrorClass {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return ErrorClass::Protocol;
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return ErrorClass::Reset;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_class(io);
        }
        src = s.source();
    }
    ErrorClass::Protocol
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An open connection and the `Host` it was opened for (never with userinfo).
pub struct Opened {
    pub io: Box<dyn Io>,
    pub authority: String,
    /// When the data of the latest read arrived (kernel receive timestamps).
    pub stamps: super::rxstamp::RxStamps,
    /// A plain `http` target through a forward proxy: requests go to the proxy in absolute
    /// form, with its credentials.
    pub forward: Option<Arc<Proxy>>,
}

/// Resolves, connects (through the endpoint's proxy, if any) and (for `https` / `wss`)
/// completes the TLS handshake, stamping each phase on the timeline.
pub async fn open(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    net: Option<&Net>,
    rec: &mut Recorder,
) -> Result<Opened, ProbeError> {
    open_with(uri, tls, None, net, rec).await.map(|(o, _)| o)
}

/// The address an endpoint's `resolve:` gives `host`, if any.
fn resolve_override(net: Option<&Net>, host: &str) -> Option<std::net::IpAddr> {
    net?.resolve
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(host))
        .map(|(_, a)| *a)
}

/// [`open`], offering the ALPN protocols of `version` over TLS when given (else those of
/// the configuration); also returns the protocol the server chose.
async fn open_with(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: Option<HttpVersion>,
    net: Option<&Net>,
    rec: &mut Recorder,
) -> Result<(Opened, Option<Vec<u8>>), ProbeError> {
    let scheme = uri.scheme_str().unwrap_or("");
    let https = match scheme {
        "https" | "wss" => true,
        "http" | "ws" => false,
        other => {
            return Err(ProbeError::new(
                ErrorClass::Request,
                format!("unsupported URL scheme {other:?}; use http, https, ws or wss"),
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| ProbeError::new(ErrorClass::Request, "URL has no host"))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');

    let t0 = Instant::now();
    let proxy = match net {
        Some(n) => n.proxy.for_target(scheme, bare_host, port)?,
        None => None,
    };
    if let Some(p) = &proxy {
        rec.net_mut().proxy = Some(p.display());
    }
    // The endpoint's `resolve:` replaces the target's DNS answer (the Host header and the
    // TLS server name stay the URL's); through a proxy, the tunnel goes to that address.
    let pinned = resolve_override(net, bare_host);
    let (dial_host, dial_port) = match (&proxy, pinned) {
        (Some(p), _) => (p.host.clone(), p.port),
        (None, _) => (bare_host.to_string(), port),
    };
    let what = |e: &str| match &proxy {
        Some(p) => format!("proxy {}{e}", p.display()),
        None => format!("{host}{e}"),
    };
    let fail_class = |c: ErrorClass| {
        if proxy.is_some() {
            ErrorClass::Proxy
        } else {
            c
        }
    };
    let addrs: Vec<std::net::SocketAddr> = match (pinned, &proxy) {
        (Some(ip), None) => vec![std::net::SocketAddr::new(ip, port)],
        _ => tokio::net::lookup_host((dial_host.as_str(), dial_port))
            .await
            .map_err(|e| {
                ProbeError::new(
                    fail_class(ErrorClass::Dns),
                    format!("cannot resolve {}: {e}", what("")),
                )
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ProbeError::new(
            fail_class(ErrorClass::Dns),
            format!("{} resolved to no address", what("")),
        ));
    }
    let t_resolved = Instant::now();
    let dns = (pinned.is_none() || proxy.is_some()).then(|| (t_resolved - t0).as_secs_f64());
    rec.mark(Event::Resolved);

    let mut last_err = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        let e = last_err.map(|e| e.to_string()).unwrap_or_default();
        let to = match &proxy {
            Some(p) => format!("proxy {}", p.display()),
            None => format!("{host}:{port}"),
        };
        ProbeError::new(
            fail_class(ErrorClass::Connect),
            format!("cannot connect to {to}: {e}"),
        )
    })?;
    let t_connected = Instant::now();
    rec.mark(Event::Connected);
    let _ = tcp.set_nodelay(true);
    let (mut tcp, stamps) = super::rxstamp::StampedTcp::new(tcp);

    // The Host header never carries userinfo (`user:pass@`), whatever the URL held.
    let authority = uri
        .authority()
        .map(|a| {
            a.as_str()
                .rsplit('@')
                .next()
                .unwrap_or(a.as_str())
                .to_string()
        })
        .unwrap_or_else(|| host.to_string());
    let mut phases = Phases {
        dns,
        ..Phases::default()
    };
    let mut forward = None;
    let mut t_ready = t_connected;
    match &proxy {
        None => phases.tcp = Some((t_connected - t_resolved).as_secs_f64()),
        Some(p) => {
            // A tunnel for TLS, WebSocket and h2c; absolute-form forwarding for plain http.
            let tunnel = https || scheme == "ws" || version == Some(HttpVersion::Http2);
            if tunnel {
                let target = match pinned {
                    Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
                    None => format!("{host}:{port}"),
                };
                super::proxy::connect_tunnel(&mut tcp, p, &target).await?;
                t_ready = Instant::now();
            } else {
                forward = Some(p.clone());
            }
            phases.proxy = Some((t_ready - t_resolved).as_secs_f64());
        }
    }
    if !https {
        rec.set_phases(phases);
        return Ok((
            Opened {
                io: Box::new(tcp),
                authority,
                stamps,
                forward,
            },
            None,
        ));
    }
    let server_name =
        rustls::pki_types::ServerName::try_from(bare_host.to_string()).map_err(|e| {
            ProbeError::new(
                ErrorClass::Tls,
                format!("invalid TLS server name {host}: {e}"),
            )
        })?;
    let config = match (tls, version) {
        (Some(c), Some(v)) => with_alpn(c, v.alpn()),
        (Some(c), None) => c.clone(),
        (None, Some(v)) => default_tls_for(v),
        (None, None) => tls_config(),
    };
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| {
            let no_h2 = version == Some(HttpVersion::Http2)
                && e.get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::AlertReceived(
                                rustls::AlertDescription::NoApplicationProtocol
                            )
                        )
                    });
            if no_h2 {
                return ProbeError::new(
                    ErrorClass::Protocol,
                    format!("{host} did not agree to HTTP/2 (it refused ALPN h2 in the TLS handshake); remove `http: 2` or set `http: auto`"),
                );
            }
            ProbeError::new(
                ErrorClass::Tls,
                format!("TLS handshake with {host} failed: {}", describe(&e)),
            )
        })?;
    phases.tls = Some(t_ready.elapsed().as_secs_f64());
    rec.set_phases(phases);
    rec.mark(Event::TlsEstablished);
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    Ok((
        Opened {
            io: Box::new(tls),
            authority,
            stamps,
            forward: None,
        },
        alpn,
    ))
}

/// Whether two URLs share an origin (scheme, host and port).
pub fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| {
        u.port_u16().unwrap_or(match u.scheme_str() {
            Some("https") | Some("wss") => 443,
            _ => 80,
        })
    };
    a.scheme_str().map(str::to_ascii_lowercase) == b.scheme_str().map(str::to_ascii_lowercase)
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && port(a) == port(b)
}

/// A `Location` resolved against the URL that answered with it.
pub fn resolve_location(base: &Uri, loc: &str) -> Result<Uri, String> {
    let loc = loc.trim();
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let joined = if loc.contains("://") {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else if let Some(q) = loc.strip_prefix('?') {
        format!("{scheme}://{authority}{}?{q}", base.path())
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{scheme}://{authority}{dir}{loc}")
    };
    let uri: Uri = joined
        .parse()
        .map_err(|e| format!("`{}` is not a URL: {e}", crate::secret::redact(loc)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "`{}` is not an http(s) URL",
            crate::secret::redact(loc)
        )),
    }
}

/// A header that carries a credential: a name that always does (`Authorization`,
/// `Cookie`, `*api-key*`, `*token*`, `*secret*`) or a value holding a registered secret.
pub fn is_credential(name: &HeaderName, value: &HeaderValue) -> bool {
    crate::secret::is_sensitive_header(name.as_str())
        || value
            .to_str()
            .map(|v| crate::secret::redact(v) != v)
            .unwrap_or(true)
}

/// A redirect target as the case record shows it: without userinfo or query string.
fn hop_location(u: &Uri) -> String {
    let authority = u
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_string())
        .unwrap_or_default();
    crate::secret::redact(&format!(
        "{}://{authority}{}",
        u.scheme_str().unwrap_or("http"),
        u.path()
    ))
}

/// Sends the request and waits for the response head, following redirects when the
/// endpoint allows (`follow_redirects: N`): the headers that carry credentials and the
/// endpoint's `auth` are sent to the first URL's origin only; a URL visited twice in one
/// chain is a `redirect_loop`. The response head stamped is the final one's.
pub async fn send(req: HttpRequest<'_>, rec: &mut Recorder) -> Result<Streaming, ProbeError> {
    let follow = req.net.map(|n| n.follow_redirects).unwrap_or(0);
    let first = req.uri.clone();
    let mut uri = first.clone();
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    let mut content_type = req.content_type;
    let mut visited = vec![uri.to_string()];
    loop {
        let same = same_origin(&first, &uri);
        let headers: Vec<(HeaderName, HeaderValue)> = req
            .headers
            .iter()
            .filter(|(n, v)| same || !is_credential(n, v))
            .cloned()
            .collect();
        let s = send_once(
            Once {
                method: method.clone(),
                uri: &uri,
                headers,
                body: body.clone(),
                content_type,
                accept: req.accept,
                tls: req.tls,
                net: req.net,
                credentials: same,
            },
            rec,
        )
        .await?;
        let location = s
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone());
        let (true, Some(location)) = (
            follow > 0 && matches!(s.status, 301 | 302 | 303 | 307 | 308),
            location,
        ) else {
            rec.mark_at(s.head_at, Event::Headers { status: s.status });
            return Ok(s);
        };
        let next = resolve_location(&uri, &location).map_err(|e| {
            ProbeError::new(
                ErrorClass::Protocol,
                format!("HTTP {} redirect to {e}", s.status),
            )
        })?;
        let hops = rec.net_mut().redirects.len();
        if visited.iter().any(|v| *v == next.to_string()) {
            let chain: Vec<String> = visited
                .iter()
                .filter_map(|v| v.parse::<Uri>().ok())
                .map(|u| hop_location(&u))
                .collect();
            return Err(ProbeError::new(
                ErrorClass::RedirectLoop,
                format!(
                    "redirect loop after {} redirect(s): {} -> {}",
                    hops + 1,
                    chain.join(" -> "),
                    hop_location(&next)
                ),
            ));
        }
        if hops >= follow as usize {
            rec.mark_at(s.head_at, Event::Headers { status: s.status });
            return Err(ProbeError::new(
                ErrorClass::HttpStatus,
                format!(
                    "HTTP {} redirect to {}: more redirects than follow_redirects ({follow}) allows",
                    s.status,
                    hop_location(&next)
                ),
            ));
        }
        let at = s.head_at;
        let status = s.status;
        drop(s);
        let at_seconds = rec.elapsed_at(at).as_secs_f64();
        rec.net_mut().redirects.push(RedirectHop {
            status,
            location: hop_location(&next),
            cross_origin: !same_origin(&first, &next),
            at_seconds,
        });
        // 303, and 301/302 after a POST, continue with a GET without a body (as browsers
        // and HTTP clients do); 307 and 308 repeat the request as it was.
        if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
            if method != Method::HEAD {
                method = Method::GET;
            }
            body = None;
            content_type = None;
        }
        visited.push(next.to_string());
        uri = next;
    }
}

/// One request of a chain.
struct Once<'a> {
    method: Method,
    uri: &'a Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    content_type: Option<&'static str>,
    accept: &'static str,
    tls: Option<&'a Arc<rustls::ClientConfig>>,
    net: Option<&'a Net>,
    /// The first URL's origin: the endpoint's `auth` applies.
    credentials: bool,
}

/// Opens a connection (or takes one from the endpoint's pool), sends one request and waits
/// for the response head (not stamped here: the caller stamps the final one).
async fn send_once(req: Once<'_>, rec: &mut Recorder) -> Result<Streaming, ProbeError> {
    let uri = req.uri;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(ProbeError::new(
            ErrorClass::Request,
            format!(
                "unsupported URL scheme {:?}; use http or https",
                uri.scheme_str()
            ),
        ));
    }
    let version = req.net.map(|n| n.http).unwrap_or_default();
    let https = uri.scheme_str() == Some("https");
    let pool = req.net.and_then(|n| n.pool.clone());
    if req.net.is_some() {
        rec.net_mut().connection = Some(if pool.is_some() { "reuse" } else { "fresh" });
    }
    let key = format!(
        "{}://{}:{}|{version:?}",
        uri.scheme_str().unwrap_or(""),
        uri.host().unwrap_or("").to_ascii_lowercase(),
        uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
    );
    // The credential for this request (a cached token, or one fetched now: its time is
    // recorded apart and is in no latency and no connection phase).
    let auth_headers = match (req.credentials, req.net.and_then(|n| n.auth.as_ref())) {
        (true, Some(a)) => {
            let transport = TokenSender {
                net: req.net,
                tls: req.tls,
            };
            Some(a.prepare(&transport, rec).await?)
        }
        _ => None,
    };
    let mut idle = match &pool {
        Some(p) => p.checkout(&key).await,
        None => None,
    };
    if pool.is_some() && rec.net_mut().reused.is_none() {
        rec.net_mut().reused = Some(idle.is_some());
    }
    let mut reused = idle.is_some();
    loop {
        let (sender, conn, stamps, info) = match idle.take() {
            Some(i) => (i.sender, i.conn, i.stamps, i.info),
            None => {
                let (
                    Opened {
                        io,
                        authority,
                        stamps,
                        forward,
                    },
                    alpn,
                ) = open_with(uri, req.tls, Some(version), req.net, rec).await?;
                let h2 = if https {
                    alpn.as_deref() == Some(b"h2")
                } else {
                    version == HttpVersion::Http2
                };
                if https && version == HttpVersion::Http2 && !h2 {
                    let chose = alpn
                        .map(|a| String::from_utf8_lossy(&a).into_owned())
                        .unwrap_or_else(|| "no protocol".into());
                    return Err(ProbeError::new(
                        ErrorClass::Protocol,
                        format!(
                            "the server did not agree to HTTP/2 (ALPN offered h2, it chose {chose}); remove `http: 2` or set `http: auto`"
                        ),
                    ));
                }
                let io = TokioIo::new(io);
                let (sender, conn): (Sender, ConnFuture) = if h2 {
                    let exec = super::transport::InTask::default();
                    let (sender, c) = hyper::client::conn::http2::handshake(exec.clone(), io)
                        .await
                        .map_err(|e| ProbeError::new(hyper_class(&e), describe(&e)))?;
                    let conn: ConnFuture = Box::pin(super::transport::Driver::new(
                        Box::pin(async move {
                            let _ = c.await;
                        }),
                        exec,
                    ));
                    (Sender::H2(sender), conn)
                } else {
                    let (sender, c) = hyper::client::conn::http1::handshake(io)
                        .await
                        .map_err(|e| ProbeError::new(hyper_class(&e), describe(&e)))?;
                    let conn: ConnFuture = Box::pin(async move {
                        let _ = c.await;
                    });
                    (Sender::H1(sender), conn)
                };
                let info = ConnInfo {
                    https,
                    h2,
                    authority,
                    forward,
                };
                (sender, conn, stamps, info)
            }
        };
        let request = build_request(&req, &info, auth_headers.as_ref())?;
        let mut conn = conn;
        let mut sender = sender;
        let mut conn_done = false;
        rec.mark(Event::RequestSent);
        let mut pending: std::pin::Pin<
            Box<dyn std::future::Future<Output = hyper::Result<http::Response<Incoming>>> + Send>,
        > = match &mut sender {
            Sender::H1(s) => Box::pin(s.send_request(request)),
            Sender::H2(s) => Box::pin(s.send_request(request)),
        };
        let resp = loop {
            tokio::select! {
                biased;
                r = &mut pending => break r,
                _ = &mut conn, if !conn_done => conn_done = true,
            }
        };
        let resp = match resp {
            Ok(r) => r,
            // A pooled connection the server closed while it was idle: once more on a new one.
            Err(e) if reused && hyper_class(&e) == ErrorClass::Reset => {
                reused = false;
                continue;
            }
            Err(e) => {
                return Err(ProbeError::new(
                    hyper_class(&e),
                    format!("no response: {}", describe(&e)),
                ))
            }
        };
        let head_at = stamps.last();
        rec.set_http_version(super::transport::version_name(resp.version(), https));
        let status = resp.status().as_u16();
        if let (Some(p), 407) = (&info.forward, status) {
            return Err(ProbeError::new(
                ErrorClass::Proxy,
                format!(
                    "proxy {} requires authentication (HTTP 407); give credentials in the proxy URL (http://user:pass@host:port) or `proxy: {{ url, username, password }}`",
                    p.display()
                ),
            ));
        }
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        return Ok(Streaming {
            status,
            headers,
            body: Some(resp.into_body()),
            conn,
            conn_done,
            sender: Some(sender),
            stamps,
            pool: pool.map(|p| (p, key, info)),
            ended: false,
            head_at,
        });
    }
}

/// The request as it goes on `info`'s connection: origin form with `Host` (HTTP/1.1),
/// absolute form with the proxy's credentials (plain http through a forward proxy), or
/// pseudo-headers (HTTP/2); then the endpoint's headers and the credential.
fn build_request(
    req: &Once<'_>,
    info: &ConnInfo,
    auth: Option<&super::auth::Prepared>,
) -> Result<Request<Full<Bytes>>, ProbeError> {
    let uri = req.uri;
    let authority = &info.authority;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = if info.https { "https" } else { "http" };
    let mut builder = Request::builder().method(req.method.clone());
    builder = if info.h2 {
        // HTTP/2 carries scheme and authority as pseudo-headers (never userinfo); no Host.
        builder
            .uri(format!("{scheme}://{authority}{path}"))
            .version(http::Version::HTTP_2)
    } else if let Some(p) = &info.forward {
        let b = builder
            .uri(format!("{scheme}://{authority}{path}"))
            .header(http::header::HOST, authority.as_str());
        match &p.authorization {
            Some(a) => b.header(http::header::PROXY_AUTHORIZATION, a.as_str()),
            None => b,
        }
    } else {
        builder
            .uri(path)
            .header(http::header::HOST, authority.as_str())
    };
    builder = builder
        .header(
            http::header::USER_AGENT,
            concat!("canary/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::ACCEPT, req.accept);
    if let Some(ct) = req.content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(tp) = crate::timeline::trace::request_traceparent()
        .filter(|_| !req.headers.iter().any(|(n, _)| n == "traceparent"))
    {
        builder = builder.header("traceparent", tp);
    }
    for (n, v) in &req.headers {
        builder = builder.header(n, v);
    }
    if let Some(a) = auth {
        let body = req.body.as_deref().unwrap_or(&[]);
        for (n, v) in a.headers(&req.method, uri, authority, req.content_type, body)? {
            builder = builder.header(n, v);
        }
    }
    builder
        .body(Full::new(req.body.clone().unwrap_or_default()))
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("cannot build request: {e}")))
}

impl Streaming {
    /// The next body piece and the instant it arrived, or `None` at the end of the body.
    pub async fn next_chunk(&mut self) -> Option<Result<(Instant, Bytes), ProbeError>> {
        loop {
            let frame = loop {
                tokio::select! {
                    biased;
                    f = async {
                        match self.body.as_mut() {
                            Some(b) => b.frame().await,
                            None => None,
                        }
                    } => match f {
                        Some(f) => break f,
                        None => {
                            self.ended = true;
                            return None;
                        }
                    },
                    _ = &mut self.conn, if !self.conn_done => self.conn_done = true,
                }
            };
            let at = self.stamps.last();
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        if !data.is_empty() {
                            return Some(Ok((at, data)));
                        }
                    }
                }
                Err(e) => {
                    return Some(Err(ProbeError::new(
                        hyper_class(&e),
                        format!("response body broken: {}", describe(&e)),
                    )))
                }
            }
        }
    }

    /// Reads the whole body up to `max` bytes, stamping each piece; marks `Done` at the end.
    pub async fn read_all(
        mut self,
        max: u64,
        rec: &mut Recorder,
    ) -> Result<Response, (ProbeError, Response)> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            match chunk {
                Ok((at, data)) => {
                    rec.mark_at(at, Event::Body { bytes: data.len() });
                    if buf.len() as u64 + data.len() as u64 > max {
                        let read = buf.len() + data.len();
                        let resp = Response {
                            status: self.status,
                            headers: std::mem::take(&mut self.headers),
                            body: Bytes::new(),
                        };
                        return Err((
                            ProbeError::new(
                                ErrorClass::BodyTooLarge,
                                format!(
                                    "body exceeded the {max}-byte cap (stopped after {read} bytes)"
                                ),
                            ),
                            resp,
                        ));
                    }
                    buf.extend_from_slice(&data);
                }
                Err(e) => {
                    let resp = Response {
                        status: self.status,
                        headers: std::mem::take(&mut self.headers),
                        body: buf.freeze(),
                    };
                    return Err((e, resp));
                }
            }
        }
        rec.mark(Event::Done);
        Ok(Response {
            status: self.status,
            headers: std::mem::take(&mut self.headers),
            body: buf.freeze(),
        })
    }
}

/// A body whose pieces carry their arrival instants. When the kernel stamps the connection's
/// data, the probe's own task reads and parses in turn (a stamp depends on when the read
/// happens only if it finds several pieces waiting, see [`super::rxstamp`]). Otherwise a reader task of its own takes each piece the moment it arrives,
/// so that parsing earlier pieces never delays a stamp.
pub struct StampedBody {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    source: Source,
}

enum Source {
    Inline(Box<Streaming>),
    Task {
        rx: tokio::sync::mpsc::Receiver<Result<(Instant, Bytes), ProbeError>>,
        reader: tokio::task::JoinHandle<()>,
    },
}

impl Drop for StampedBody {
    fn drop(&mut self) {
        // Dropping the reader drops the connection guard, which closes the connection.
        if let Source::Task { reader, .. } = &self.source {
            reader.abort();
        }
    }
}

/// Pieces buffered between the reader and the parser (backpressure beyond this).
const STAMPED_QUEUE: usize = 1024;

impl Streaming {
    /// The body, read inline when the kernel stamps arrivals, else by a reader task.
    pub fn stamped(mut self) -> StampedBody {
        let status = self.status;
        let headers = std::mem::take(&mut self.headers);
        if self.stamps.by_kernel() {
            return StampedBody {
                status,
                headers,
                source: Source::Inline(Box::new(self)),
            };
        }
        let (tx, rx) = tokio::sync::mpsc::channel(STAMPED_QUEUE);
        let reader = tokio::spawn(async move {
            while let Some(piece) = self.next_chunk().await {
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    break;
                }
            }
        });
        StampedBody {
            status,
            headers,
            source: Source::Task { rx, reader },
        }
    }
}

impl StampedBody {
    /// The next piece and its arrival instant, or `None` at the end of the body.
    pub async fn next_chunk(&mut self) -> Option<Result<(Instant, Bytes), ProbeError>> {
        match &mut self.source {
            Source::Inline(s) => s.next_chunk().await,
            Source::Task { rx, .. } => rx.recv().await,
        }
    }
}

/// The error for a non-2xx status, with a short excerpt of the body.
pub fn status_error(resp: &Response) -> ProbeError {
    let class = if resp.status == 429 {
        ErrorClass::RateLimited
    } else {
        ErrorClass::HttpStatus
    };
    // Redact the body before cutting it, so no part of an echoed credential survives.
    let head = &resp.body[..resp.body.len().min(64 * 1024)];
    let excerpt: String = crate::secret::redact(&String::from_utf8_lossy(head))
        .chars()
        .filter(|c| !c.is_control())
        .take(ERROR_EXCERPT)
        .collect();
    let retry = resp
        .header("retry-after")
        .map(|r| format!(" (retry-after {r})"))
        .unwrap_or_default();
    if (300..400).contains(&resp.status) {
        // A redirect is an answer canary does not follow: say where it pointed, so the fix
        // (the endpoint's final URL) is in the message.
        let to = resp
            .header("location")
            .map(|l| {
                let l: String = crate::secret::redact(l)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                format!(" to {l}")
            })
            .unwrap_or_else(|| " with no Location header".into());
        return ProbeError::new(
            class,
            format!(
                "HTTP {} redirect{to}; canary does not follow redirects unless asked: set the endpoint's url to the address it redirects to, or `follow_redirects: N`",
                resp.status
            ),
        );
    }
    ProbeError::new(class, format!("HTTP {}{retry}: {excerpt}", resp.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_url_that_answered_and_origins_compare_whole() {
        let base: Uri = "https://api.example.com/v1/chat?x=1".parse().unwrap();
        let r = |l: &str| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(r("/v2/chat").unwrap(), "https://api.example.com/v2/chat");
        assert_eq!(r("next").unwrap(), "https://api.example.com/v1/next");
        assert_eq!(
            r("?page=2").unwrap(),
            "https://api.example.com/v1/chat?page=2"
        );
        assert_eq!(
            r("//cdn.example.com/a").unwrap(),
            "https://cdn.example.com/a"
        );
        assert_eq!(r("http://other:8080/b").unwrap(), "http://other:8080/b");
        assert!(r("ftp://files/x").is_err());
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(
            &u("https://A.example.com/x"),
            &u("https://a.example.com:443/y")
        ));
        assert!(!same_origin(
            &u("https://a.example.com/"),
            &u("http://a.example.com/")
        ));
        assert!(!same_origin(
            &u("https://a.example.com/"),
            &u("https://a.example.com:8443/")
        ));
        assert!(!same_origin(
            &u("https://a.example.com/"),
            &u("https://b.example.com/")
        ));
        crate::secret::register("plain-looking-secret-value-31");
        let h = |n: &str, v: &str| {
            (
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        };
        let (n, v) = h("authorization", "Bearer x");
        assert!(is_credential(&n, &v));
        let (n, v) = h("x-custom", "plain-looking-secret-value-31");
        assert!(is_credential(&n, &v));
        let (n, v) = h("x-trace", "abc");
        assert!(!is_credential(&n, &v));
        assert_eq!(
            hop_location(&u("https://u:p@a.example.com/x?token=t")),
            "https://a.example.com/x"
        );
    }

    #[test]
    fn a_redirect_names_its_location_and_that_it_is_not_followed() {
        let resp = Response {
            status: 301,
            headers: vec![("location".into(), "https://api.example.com/v2/chat".into())],
            body: Bytes::from_static(b"moved"),
        };
        let e = status_error(&resp);
        assert_eq!(e.class, ErrorClass::HttpStatus);
        assert!(
            e.message
                .contains("HTTP 301 redirect to https://api.example.com/v2/chat"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("does not follow redirects"),
            "{}",
            e.message
        );
        let bare = Response {
            status: 302,
            headers: vec![],
            body: Bytes::new(),
        };
        assert!(status_error(&bare).message.contains("no Location header"));
    }
}
