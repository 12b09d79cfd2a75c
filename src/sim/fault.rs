//! Fault injection for the simulator, chosen per request by the `x-sim-fault` header:
//! `status=CODE`, `hang`, `invalid-json`, `huge=BYTES`, `truncate`, `drip=MS` (one byte every MS).
//! Unknown values are ignored so that a probe's own headers never break the simulator.

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
pub struct BrokenBody {
    pub head: Option<Bytes>,
}

impl Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.head.take() {
            Some(h) => Poll::Ready(Some(Ok(Frame::data(h)))),
            None => Poll::Ready(Some(Err(std::io::Error::other("simulated truncation")))),
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
