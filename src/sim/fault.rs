//! Fault injection for the simulator, chosen per request by the `x-sim-fault` header:
//! `status=CODE`, `hang`, `invalid-json`, `huge=BYTES`, `truncate`, `drip=MS` (one byte every MS).
//! Unknown values are ignored so that a probe's own headers never break the simulator.
//!
//! `/map` acts out every fault itself (and records it in its truth); every other route gets
//! `status=CODE` and `truncate` from [`layer`], so that any protocol's driver can be shown a
//! refusal and a connection cut in its own response (the driver contract test does).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A fault requested for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status and a JSON error body.
    Status(u16),
    /// Never answer (sleeps an hour).
    Hang,
    /// A 200 whose body is not JSON.
    InvalidJson,
    /// A 200 whose body is this many bytes of padding (streamed, never held in memory).
    Huge(u64),
    /// Start a chunked body, then break the connection.
    Truncate,
    /// Send the real body one byte every interval.
    Drip(Duration),
    /// A 401 whose body echoes the request's credentials (as careless servers do), placed so
    /// that a 200-byte excerpt would cut through them.
    EchoAuth,
}

impl Fault {
    pub fn parse(v: &str) -> Option<Fault> {
        let v = v.trim();
        if let Some(code) = v.strip_prefix("status=") {
            return code
                .parse()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(Fault::Status);
        }
        if let Some(n) = v.strip_prefix("huge=") {
            return n.parse().ok().map(Fault::Huge);
        }
        if let Some(ms) = v.strip_prefix("drip=") {
            return ms
                .parse()
                .ok()
                .map(|m| Fault::Drip(Duration::from_millis(m)));
        }
        match v {
            "hang" => Some(Fault::Hang),
            "invalid-json" => Some(Fault::InvalidJson),
            "truncate" => Some(Fault::Truncate),
            "echo-auth" => Some(Fault::EchoAuth),
            _ => None,
        }
    }

    pub fn from_headers(h: &http::HeaderMap) -> Option<Fault> {
        h.get("x-sim-fault")
            .and_then(|v| v.to_str().ok())
            .and_then(Fault::parse)
    }

    pub fn name(&self) -> String {
        match self {
            Fault::Status(c) => format!("status={c}"),
            Fault::Hang => "hang".into(),
            Fault::InvalidJson => "invalid-json".into(),
            Fault::Huge(n) => format!("huge={n}"),
            Fault::Truncate => "truncate".into(),
            Fault::Drip(d) => format!("drip={}", d.as_millis()),
            Fault::EchoAuth => "echo-auth".into(),
        }
    }
}

/// A body of `remaining` bytes of padding, produced in 64 KiB pieces.
pub struct HugeBody {
    pub remaining: u64,
}

impl Body for HugeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        const PIECE: usize = 64 * 1024;
        static PAD: [u8; PIECE] = [b' '; PIECE];
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(PIECE as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PAD[..n])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A body that sends `head` and then fails, so the server aborts the connection mid-body.
/// The failure waits [`FLUSH`] after the head, so that the response head and `head` are on
/// the wire before the connection breaks (failing at once, the server would drop them
/// unsent and the client would see no response at all).
pub struct BrokenBody {
    head: Option<Bytes>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long a broken body waits between its last bytes and breaking the connection.
pub const FLUSH: Duration = Duration::from_millis(50);

impl BrokenBody {
    pub fn new(head: Bytes) -> Self {
        BrokenBody {
            head: Some(head),
            pause: None,
        }
    }
}

impl Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        let pause = self
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH)));
        match pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                Poll::Ready(Some(Err(std::io::Error::other("simulated truncation"))))
            }
        }
    }
}

/// A body that sends `data` one byte per `every`.
pub struct DripBody {
    pub data: Bytes,
    pub every: Duration,
    pub sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for DripBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let every = self.every;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.sleep = None;
                let byte = self.data.split_to(1);
                Poll::Ready(Some(Ok(Frame::data(byte))))
            }
        }
    }
}

use std::future::Future;

/// The faults every route but `/map` honours: `status=CODE` answers at once with that status
/// and a JSON error body (a WebSocket upgrade is refused with it); `truncate` sends the first
/// half of the route's first body frame (at least a byte), then breaks the connection.
pub async fn layer(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().path().starts_with("/map") {
        return next.run(req).await;
    }
    match Fault::from_headers(req.headers()) {
        Some(Fault::Status(code)) => {
            let status =
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({"error": {"message": format!("simulated status {code}"), "code": code}});
            (status, axum::Json(body)).into_response()
        }
        Some(Fault::Truncate) => {
            let (mut parts, body) = next.run(req).await.into_parts();
            parts.headers.remove(http::header::CONTENT_LENGTH);
            axum::response::Response::from_parts(
                parts,
                axum::body::Body::new(CutBody {
                    inner: body,
                    broken: None,
                }),
            )
        }
        _ => next.run(req).await,
    }
}

/// A route's body cut inside its first data frame: half of it goes out, then the connection
/// breaks (as [`BrokenBody`] does).
struct CutBody {
    inner: axum::body::Body,
    broken: Option<BrokenBody>,
}

impl Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if let Some(b) = self.broken.as_mut() {
                return Pin::new(b).poll_frame(cx);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers or an empty frame: read on to data worth cutting.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            let half = (data.len() / 2).max(1);
                            self.broken = Some(BrokenBody::new(data.slice(..half)));
                        }
                    }
                }
                // The route's body ended or failed before any data: break with nothing.
                Poll::Ready(_) => self.broken = Some(BrokenBody::new(Bytes::new())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_faults_and_ignores_others() {
        assert_eq!(Fault::parse("status=503"), Some(Fault::Status(503)));
        assert_eq!(Fault::parse("status=999"), None);
        assert_eq!(Fault::parse("hang"), Some(Fault::Hang));
        assert_eq!(Fault::parse("huge=1048576"), Some(Fault::Huge(1_048_576)));
        assert_eq!(
            Fault::parse("drip=50"),
            Some(Fault::Drip(Duration::from_millis(50)))
        );
        assert_eq!(Fault::parse("nonsense"), None);
        assert_eq!(Fault::Huge(5).name(), "huge=5");
    }
}
