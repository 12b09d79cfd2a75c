//! Measures: pure functions from a timeline to latency SLI values (seconds).
//!
//! Each definition lives here once and is unit-tested on hand-built timelines. Values are
//! computed for every run; aggregation uses them only for runs without an error.

pub mod sli;

use std::collections::BTreeMap;

use crate::timeline::{Event, Timeline};
use sli::Sli;

/// Request start to the response headers.
pub fn time_to_first_byte(t: &Timeline) -> Option<f64> {
    t.first(|e| matches!(e, Event::Headers { .. }))
        .map(|d| d.as_secs_f64())
}

/// Request start to the end of the response. Absent when the response never completed.
pub fn time_to_completion(t: &Timeline) -> Option<f64> {
    t.first(|e| matches!(e, Event::Done))
        .map(|d| d.as_secs_f64())
}

/// Connection setup (resolve + TCP + TLS), for reports; not an SLI.
pub fn connect_time(t: &Timeline) -> Option<f64> {
    t.last(|e| matches!(e, Event::Connected | Event::TlsEstablished))
        .map(|d| d.as_secs_f64())
}

/// Every latency SLI this timeline yields.
pub fn latencies(t: &Timeline) -> BTreeMap<Sli, f64> {
    let mut out = BTreeMap::new();
    if let Some(v) = time_to_first_byte(t) {
        out.insert(Sli::TimeToFirstByte, v);
    }
    if let Some(v) = time_to_completion(t) {
        out.insert(Sli::TimeToCompletion, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Stamped;
    use std::time::{Duration, SystemTime};

    fn tl(events: &[(u64, Event)]) -> Timeline {
        Timeline {
            started_at: SystemTime::now(),
            events: events
                .iter()
                .map(|(ms, e)| Stamped {
                    at: Duration::from_millis(*ms),
                    event: e.clone(),
                })
                .collect(),
            response: None,
            error: None,
            answer_text: None,
            doc: None,
            usage: None,
        }
    }

    #[test]
    fn ttfb_is_the_headers_event_not_the_connect() {
        let t = tl(&[
            (1, Event::Resolved),
            (3, Event::Connected),
            (4, Event::RequestSent),
            (120, Event::Headers { status: 200 }),
            (121, Event::Body { bytes: 10 }),
            (180, Event::Body { bytes: 10 }),
            (181, Event::Done),
        ]);
        assert_eq!(time_to_first_byte(&t), Some(0.120));
        assert_eq!(time_to_completion(&t), Some(0.181));
        assert_eq!(connect_time(&t), Some(0.003));
        let l = latencies(&t);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn an_incomplete_response_has_no_completion_time() {
        let t = tl(&[
            (5, Event::Headers { status: 200 }),
            (9, Event::Body { bytes: 3 }),
        ]);
        assert_eq!(time_to_first_byte(&t), Some(0.005));
        assert_eq!(time_to_completion(&t), None);
        assert!(!latencies(&t).contains_key(&Sli::TimeToCompletion));
    }

    #[test]
    fn nothing_arrived_means_no_latency_at_all() {
        let t = tl(&[(1, Event::Resolved)]);
        assert!(latencies(&t).is_empty());
    }
}
