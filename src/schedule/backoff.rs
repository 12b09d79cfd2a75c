//! Honouring `Retry-After`: when an endpoint answers 429 with `Retry-After: N` (seconds), the
//! next case runs to that endpoint wait until then (at most [`MAX_WAIT`]) instead of adding to
//! the storm. Kept per run context (one per `run`, `gate` or `serve`), keyed by URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::timeline::Timeline;

/// The longest wait honoured, whatever the server asks.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// Until when each endpoint URL asked to be left alone.
#[derive(Debug, Default)]
pub struct Backoff {
    until: Mutex<HashMap<String, Instant>>,
}

/// The `Retry-After` of a 429 answer, in seconds (HTTP dates are not honoured).
pub fn retry_after(t: &Timeline) -> Option<Duration> {
    let r = t.response.as_ref().filter(|r| r.status == 429)?;
    let secs: u64 = r.header("retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_WAIT))
}

impl Backoff {
    /// Records a timeline's `Retry-After` for its endpoint URL.
    pub fn note(&self, url: &str, t: &Timeline) {
        if let Some(wait) = retry_after(t) {
            let until = Instant::now() + wait;
            if let Ok(mut m) = self.until.lock() {
                let e = m.entry(url.to_string()).or_insert(until);
                if *e < until {
                    *e = until;
                }
            }
        }
    }

    /// How long a new case run to `url` should wait, if at all.
    pub fn wait_for(&self, url: &str) -> Option<Duration> {
        let m = self.until.lock().ok()?;
        let until = *m.get(url)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Response;

    fn tl(status: u16, retry: Option<&str>) -> Timeline {
        let mut headers = vec![];
        if let Some(r) = retry {
            headers.push(("retry-after".to_string(), r.to_string()));
        }
        Timeline {
            started_at: std::time::SystemTime::now(),
            events: vec![],
            response: Some(Response {
                status,
                headers,
                body: Default::default(),
            }),
            error: None,
            answer_text: None,
            doc: None,
            usage: None,
            job: None,
            stopped_early: false,
            audio: None,
            net: Default::default(),
        }
    }

    #[test]
    fn only_429_with_seconds_is_honoured_and_capped() {
        assert_eq!(
            retry_after(&tl(429, Some("2"))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after(&tl(429, Some("99999"))), Some(MAX_WAIT));
        assert_eq!(retry_after(&tl(503, Some("2"))), None);
        assert_eq!(
            retry_after(&tl(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"))),
            None
        );
        assert_eq!(retry_after(&tl(429, None)), None);
    }

    #[test]
    fn a_429_makes_the_next_run_wait() {
        let url = "http://backoff-test.invalid/x";
        let b = Backoff::default();
        assert_eq!(b.wait_for(url), None);
        b.note(url, &tl(429, Some("5")));
        let w = b.wait_for(url).unwrap();
        assert!(
            w > Duration::from_secs(4) && w <= Duration::from_secs(5),
            "{w:?}"
        );
        assert_eq!(b.wait_for("http://other.invalid/"), None);
    }
}
