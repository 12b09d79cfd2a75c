//! The WebSocket client of the voice drivers.
//!
//! canary opens the connection itself (resolve, TCP, TLS stamped on the timeline, as for
//! HTTP), then performs the upgrade with tokio-tungstenite. Every message is stamped with
//! the arrival of the socket read that completed it (the kernel's receive timestamp, see
//! [`crate::net::rxstamp`]), before the message is parsed or its audio decoded.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{
    self, error::ProtocolError, handshake::client::generate_key, protocol::WebSocketConfig, Message,
};
use tokio_tungstenite::WebSocketStream;

use crate::net::http::{self, Io, Opened};
use crate::net::rxstamp::RxStamps;
use crate::suite::Endpoint;
use crate::timeline::{ErrorClass, Event, ProbeError, Recorder, Response};

/// An open WebSocket session.
pub struct Ws {
    stream: WebSocketStream<Box<dyn Io>>,
    stamps: RxStamps,
}

/// Connects and upgrades; records the upgrade response (status 101) on the timeline.
pub async fn connect(endpoint: &Endpoint, rec: &mut Recorder) -> Result<Ws, ProbeError> {
    let uri: ::http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("ws") | Some("wss")) {
        return Err(ProbeError::new(
            ErrorClass::Request,
            "a voice endpoint's URL must be ws:// or wss://",
        ));
    }
    let Opened {
        io,
        authority,
        stamps,
        ..
    } = http::open(&uri, endpoint.tls.as_ref(), Some(&endpoint.net), rec).await?;
    let mut builder = ::http::Request::builder()
        .method(::http::Method::GET)
        .uri(uri.clone())
        .header("Host", authority)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header(
            ::http::header::USER_AGENT,
            concat!("canary/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(tp) = crate::timeline::trace::request_traceparent()
        .filter(|_| !endpoint.headers.iter().any(|(n, _)| n == "traceparent"))
    {
        builder = builder.header("traceparent", tp);
    }
    for (n, v) in &endpoint.headers {
        builder = builder.header(n, v);
    }
    let request = builder
        .body(())
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("cannot build request: {e}")))?;
    let cap = usize::try_from(endpoint.max_body).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap));
    let (stream, resp) =
        match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
            Ok(x) => x,
            Err(e) => {
                // A refused upgrade keeps the server's status and body, as an HTTP answer does.
                if let tungstenite::Error::Http(r) = &e {
                    let body = r.body().as_deref().unwrap_or_default();
                    let keep = body.len().min(cap);
                    rec.set_response(head(r, bytes::Bytes::copy_from_slice(&body[..keep])));
                }
                return Err(classify(e, "upgrade"));
            }
        };
    rec.mark_at(stamps.last(), Event::Upgraded);
    rec.set_response(head(&resp, bytes::Bytes::new()));
    Ok(Ws { stream, stamps })
}

/// The upgrade answer's status and headers, with `body`.
fn head<B>(resp: &::http::Response<B>, body: bytes::Bytes) -> Response {
    Response {
        status: resp.status().as_u16(),
        headers: resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

impl Ws {
    /// The next data message and the instant the read that completed it returned; `None`
    /// when the peer closed (with a close frame or by ending the connection cleanly).
    pub async fn next(&mut self) -> Option<Result<(Instant, Message), ProbeError>> {
        loop {
            let msg = match self.stream.next().await? {
                Ok(m) => m,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(e) => return Some(Err(classify(e, "receive"))),
            };
            let at = self.stamps.last();
            match msg {
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                m => return Some(Ok((at, m))),
            }
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ProbeError> {
        self.stream
            .send(Message::text(text))
            .await
            .map_err(|e| classify(e, "send"))
    }

    /// Closes politely, waiting briefly for the peer (the measurement is already done).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.stream.close(None)).await;
    }
}

/// Classifies a WebSocket error.
pub fn classify(e: tungstenite::Error, during: &str) -> ProbeError {
    use tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            let class = if status == 429 {
                ErrorClass::RateLimited
            } else {
                ErrorClass::HttpStatus
            };
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(|r| format!(" (retry-after {r})"))
                .unwrap_or_default();
            ProbeError::new(
                class,
                format!("the WebSocket upgrade was refused: HTTP {status}{retry}: {body}"),
            )
        }
        E::Io(io) => {
            let class = match io.kind() {
                std::io::ErrorKind::UnexpectedEof if during == "receive" => ErrorClass::Truncated,
                std::io::ErrorKind::TimedOut => ErrorClass::Timeout,
                _ => ErrorClass::Reset,
            };
            ProbeError::new(class, format!("WebSocket {during}: {io}"))
        }
        E::Capacity(c) => ProbeError::new(
            ErrorClass::BodyTooLarge,
            format!("WebSocket message over the endpoint's max_body: {c}"),
        ),
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ProbeError::new(
            ErrorClass::Truncated,
            "the connection closed without a WebSocket close (mid-utterance)",
        ),
        E::Protocol(p) => ProbeError::new(ErrorClass::Protocol, format!("WebSocket {during}: {p}")),
        E::Utf8(u) => ProbeError::new(
            ErrorClass::Protocol,
            format!("a text message is not UTF-8: {u}"),
        ),
        other => ProbeError::new(ErrorClass::Protocol, format!("WebSocket {during}: {other}")),
    }
}
