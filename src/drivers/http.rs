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

use super::transport::{HttpVersion, Net};
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, Response};

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
    body: Incoming,
    /// The connection, driven in the same task as the body: bytes read from the socket turn
    /// into body pieces in the same poll, with no hand-off between tasks to delay the stamp.
    /// Dropping it (end of exchange, deadline) closes the connection.
    conn: ConnFuture,
    conn_done: bool,
    /// HTTP/2: the request sender, kept while the body is read (the connection stays open).
    _sender: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
    /// Arrival of the latest bytes read: a piece is stamped with the arrival of the read
    /// that completed it (hyper reads no further until the piece is taken).
    stamps: super::rxstamp::RxStamps,
}

type ConnFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

// The roots and the client configuration are shared with the suite loader (an endpoint's
// `tls:` files): they live in `crate::tls`.
pub use crate::tls::{client_config, system_roots};

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
}

/// Resolves, connects and (for `https` / `wss`) completes the TLS handshake, stamping each
/// phase on the timeline.
pub async fn open(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    rec: &mut Recorder,
) -> Result<Opened, ProbeError> {
    open_with(uri, tls, None, rec).await.map(|(o, _)| o)
}

/// [`open`], offering the ALPN protocols of `version` over TLS when given (else those of
/// the configuration); also returns the protocol the server chose.
async fn open_with(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: Option<HttpVersion>,
    rec: &mut Recorder,
) -> Result<(Opened, Option<Vec<u8>>), ProbeError> {
    let https = match uri.scheme_str() {
        Some("https") | Some("wss") => true,
        Some("http") | Some("ws") => false,
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

    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare_host, port))
        .await
        .map_err(|e| ProbeError::new(ErrorClass::Dns, format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ProbeError::new(
            ErrorClass::Dns,
            format!("{host} resolved to no address"),
        ));
    }
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
        ProbeError::new(
            ErrorClass::Connect,
            format!("cannot connect to {host}:{port}: {e}"),
        )
    })?;
    rec.mark(Event::Connected);
    let _ = tcp.set_nodelay(true);
    let (tcp, stamps) = super::rxstamp::StampedTcp::new(tcp);

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
    if !https {
        return Ok((
            Opened {
                io: Box::new(tcp),
                authority,
                stamps,
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
    rec.mark(Event::TlsEstablished);
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    Ok((
        Opened {
            io: Box::new(tls),
            authority,
            stamps,
        },
        alpn,
    ))
}

/// Opens a connection, sends the request and waits for the response head.
pub async fn send(req: HttpRequest<'_>, rec: &mut Recorder) -> Result<Streaming, ProbeError> {
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
    let (
        Opened {
            io,
            authority,
            stamps,
        },
        alpn,
    ) = open_with(uri, req.tls, Some(version), rec).await?;
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
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut builder = Request::builder().method(req.method);
    builder = if h2 {
        // HTTP/2 carries scheme and authority as pseudo-headers (never userinfo); no Host.
        builder
            .uri(format!(
                "{}://{authority}{path}",
                if https { "https" } else { "http" }
            ))
            .version(http::Version::HTTP_2)
    } else {
        builder.uri(path).header(http::header::HOST, authority)
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
    for (n, v) in req.headers {
        builder = builder.header(n, v);
    }
    let request = builder
        .body(Full::new(req.body.unwrap_or_default()))
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("cannot build request: {e}")))?;

    let io = TokioIo::new(io);
    let mut conn_done = false;
    let (pending, mut conn, sender2): (_, ConnFuture, _) = if h2 {
        let exec = super::transport::InTask::default();
        let (mut sender, c) = hyper::client::conn::http2::handshake(exec.clone(), io)
            .await
            .map_err(|e| ProbeError::new(hyper_class(&e), describe(&e)))?;
        let conn: ConnFuture = Box::pin(super::transport::Driver::new(
            Box::pin(async move {
                let _ = c.await;
            }),
            exec,
        ));
        rec.mark(Event::RequestSent);
        let pending: std::pin::Pin<
            Box<dyn std::future::Future<Output = hyper::Result<http::Response<Incoming>>> + Send>,
        > = Box::pin(sender.send_request(request));
        (pending, conn, Some(sender))
    } else {
        let (mut sender, c) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| ProbeError::new(hyper_class(&e), describe(&e)))?;
        let conn: ConnFuture = Box::pin(async move {
            let _ = c.await;
        });
        rec.mark(Event::RequestSent);
        let pending: std::pin::Pin<
            Box<dyn std::future::Future<Output = hyper::Result<http::Response<Incoming>>> + Send>,
        > = Box::pin(sender.send_request(request));
        (pending, conn, None)
    };
    let mut pending = pending;
    let resp = loop {
        tokio::select! {
            biased;
            r = &mut pending => break r,
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
    .map_err(|e| ProbeError::new(hyper_class(&e), format!("no response: {}", describe(&e))))?;
    rec.set_http_version(super::transport::version_name(resp.version(), https));
    let status = resp.status().as_u16();
    rec.mark_at(stamps.last(), Event::Headers { status });
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
    Ok(Streaming {
        status,
        headers,
        body: resp.into_body(),
        conn,
        conn_done,
        _sender: sender2,
        stamps,
    })
}

impl Streaming {
    /// The next body piece and the instant it arrived, or `None` at the end of the body.
    pub async fn next_chunk(&mut self) -> Option<Result<(Instant, Bytes), ProbeError>> {
        loop {
            let frame = loop {
                tokio::select! {
                    biased;
                    f = self.body.frame() => break f?,
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
                            headers: self.headers,
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
                        headers: self.headers,
                        body: buf.freeze(),
                    };
                    return Err((e, resp));
                }
            }
        }
        rec.mark(Event::Done);
        Ok(Response {
            status: self.status,
            headers: self.headers,
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
                "HTTP {} redirect{to}; canary does not follow redirects: set the endpoint's url to the address it redirects to",
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
