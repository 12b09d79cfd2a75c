//! Outgoing HTTP for the sinks (Pushgateway, remote write), over the same connection code as
//! the probes, with a deadline and retries with backoff.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};

use crate::net::http::{self as dh, HttpRequest};
use crate::timeline::Recorder;

/// A response: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Largest reply body read from a sink (a Pushgateway's /metrics can be large).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// One request with a deadline. The error is a message fit for an operator.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<Bytes>,
    content_type: Option<&'static str>,
    timeout: Duration,
) -> Result<Reply, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let fut = async {
        let mut rec = Recorder::start();
        let req = HttpRequest {
            method,
            uri: &uri,
            headers,
            body,
            content_type,
            accept: "*/*",
            tls: None,
            net: None,
        };
        let s = dh::send(req, &mut rec).await.map_err(|e| e.to_string())?;
        let r = s
            .read_all(MAX_REPLY, &mut rec)
            .await
            .map_err(|(e, _)| e.to_string())?;
        Ok(Reply {
            status: r.status,
            body: r.body,
        })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:.1}s", timeout.as_secs_f64())),
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The receiver rejected the payload (a 4xx other than 429): sending it again will not help.
    Rejected(String),
    /// The receiver was unreachable or failing: worth keeping for later.
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rejected(m) => write!(f, "rejected: {m}"),
            Failure::Unavailable(m) => f.write_str(m),
        }
    }
}

/// Retries `f` with exponential backoff (200 ms, 400 ms, ...) up to `attempts` times.
/// A 4xx answer other than 429 is not retried: it will not get better.
pub async fn with_retries<F, Fut>(attempts: u32, mut f: F) -> Result<Reply, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Reply, String>>,
{
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match f().await {
            Ok(r) if (200..300).contains(&r.status) => return Ok(r),
            Ok(r) => {
                let text: String = String::from_utf8_lossy(&r.body).chars().take(300).collect();
                last = format!("HTTP {}: {}", r.status, text.trim());
                if (400..500).contains(&r.status) && r.status != 429 {
                    return Err(Failure::Rejected(last));
                }
            }
            Err(e) => last = e,
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(Failure::Unavailable(last))
}
