//! Answer freshness: does the answer reflect the current value of the source of truth, and
//! if not, for how long has what it says been out of date?
//!
//! Pure functions over the truth read before and after the question and the values of the
//! same fact seen earlier ([`History`], kept across runs in a state file so that a CronJob,
//! a new process each time, still remembers). When the answer holds an older value that
//! canary has seen, staleness is measured from the moment that value was superseded;
//! otherwise from the moment the current value became true (a lower bound).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::escalation::normalize;

/// One read of the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthRead {
    pub value: String,
    /// Unix seconds at which `value` became true.
    pub updated_at: f64,
}

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    pub fact: String,
    pub fresh: bool,
    /// The current value of the truth.
    pub current: String,
    /// How long the answer has been out of date (seconds; zero when fresh).
    pub staleness_seconds: f64,
    /// The staleness is only a lower bound (the answer's value is not one canary has seen).
    pub lower_bound: bool,
    /// The superseded value the answer holds, when canary has seen it.
    pub stale_value: Option<String>,
}

/// Values of each fact seen so far, oldest first, with when each became true.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub facts: BTreeMap<String, Vec<TruthRead>>,
}

/// Values remembered per fact.
pub const MAX_VALUES: usize = 16;
/// Facts remembered.
pub const MAX_FACTS: usize = 10_000;

impl History {
    /// Records a read of the truth (a new value is appended when it differs from the last).
    pub fn note(&mut self, fact: &str, read: &TruthRead) {
        if !self.facts.contains_key(fact) && self.facts.len() >= MAX_FACTS {
            return;
        }
        let values = self.facts.entry(fact.to_string()).or_default();
        match values.last() {
            Some(last) if last.value == read.value => {}
            _ => {
                values.push(read.clone());
                if values.len() > MAX_VALUES {
                    values.remove(0);
                }
            }
        }
    }
}

fn contains(answer: &str, value: &str) -> bool {
    let v = normalize(value);
    !v.is_empty() && normalize(answer).contains(&v)
}

/// Judges `answer` against the truth read before and after the question, at `now`
/// (Unix seconds). A value that changed while the question was in flight makes either
/// value fresh.
pub fn judge(
    fact: &str,
    answer: &str,
    before: &TruthRead,
    after: &TruthRead,
    history: &History,
    now: f64,
) -> Freshness {
    let fresh = contains(answer, &after.value) || contains(answer, &before.value);
    let mut f = Freshness {
        fact: fact.to_string(),
        fresh,
        current: after.value.clone(),
        staleness_seconds: 0.0,
        lower_bound: false,
        stale_value: None,
    };
    if fresh {
        return f;
    }
    // An older value the answer still holds: stale since the value after it became true.
    let seen = history.facts.get(fact).map(Vec::as_slice).unwrap_or(&[]);
    for (i, old) in seen.iter().enumerate().rev() {
        if old.value == after.value || !contains(answer, &old.value) {
            continue;
        }
        let superseded_at = seen
            .get(i + 1)
            .map(|n| n.updated_at)
            .unwrap_or(after.updated_at);
        f.stale_value = Some(old.value.clone());
        f.staleness_seconds = (now - superseded_at).max(0.0);
        return f;
    }
    f.lower_bound = true;
    f.staleness_seconds = (now - after.updated_at).max(0.0);
    f
}

/// Parses `updated_at`: Unix seconds (number or numeric string) or RFC 3339.
pub fn parse_time(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.timestamp_micros() as f64 / 1e6)
        }),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: &str, at: f64) -> TruthRead {
        TruthRead {
            value: v.into(),
            updated_at: at,
        }
    }

    #[test]
    fn a_fresh_answer_and_a_change_in_flight() {
        let h = History::default();
        let f = judge(
            "price",
            "It costs 12 EUR.",
            &read("12 EUR", 100.0),
            &read("12 EUR", 100.0),
            &h,
            200.0,
        );
        assert!(f.fresh);
        assert_eq!(f.staleness_seconds, 0.0);
        // The truth changed while the question was in flight: the old value is not stale yet.
        let f = judge(
            "price",
            "It costs 12 EUR.",
            &read("12 EUR", 100.0),
            &read("14 EUR", 199.0),
            &h,
            200.0,
        );
        assert!(f.fresh);
    }

    #[test]
    fn a_stale_answer_without_history_is_a_lower_bound() {
        let f = judge(
            "price",
            "It costs 10 EUR.",
            &read("14 EUR", 190.0),
            &read("14 EUR", 190.0),
            &History::default(),
            200.0,
        );
        assert!(!f.fresh);
        assert!(f.lower_bound);
        assert_eq!(f.staleness_seconds, 10.0);
        assert_eq!(f.stale_value, None);
    }

    #[test]
    fn a_value_seen_before_is_named_with_when_it_was_superseded() {
        let mut h = History::default();
        h.note("price", &read("10 EUR", 50.0));
        h.note("price", &read("10 EUR", 50.0));
        h.note("price", &read("12 EUR", 100.0));
        h.note("price", &read("14 EUR", 190.0));
        assert_eq!(h.facts["price"].len(), 3);
        // The answer holds 10 EUR, superseded at 100 by 12 EUR: stale for 100 s at 200.
        let now = read("14 EUR", 190.0);
        let f = judge("price", "The price is 10 eur", &now, &now, &h, 200.0);
        assert_eq!(f.stale_value.as_deref(), Some("10 EUR"));
        assert_eq!(f.staleness_seconds, 100.0);
        assert!(!f.lower_bound);
        // The previous value: superseded when the current one became true.
        let f = judge("price", "12 EUR", &now, &now, &h, 200.0);
        assert_eq!(f.staleness_seconds, 10.0);
    }

    #[test]
    fn history_is_bounded() {
        let mut h = History::default();
        for i in 0..40 {
            h.note("f", &read(&i.to_string(), f64::from(i)));
        }
        assert_eq!(h.facts["f"].len(), MAX_VALUES);
        assert_eq!(h.facts["f"][0].value, "24");
    }

    #[test]
    fn times_parse_from_numbers_and_rfc3339() {
        use serde_json::json;
        assert_eq!(parse_time(&json!(1700000000.5)), Some(1_700_000_000.5));
        assert_eq!(parse_time(&json!("1700000000")), Some(1_700_000_000.0));
        assert_eq!(
            parse_time(&json!("2023-11-14T22:13:20Z")),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            parse_time(&json!("2023-11-14T22:13:20.250Z")),
            Some(1_700_000_000.25)
        );
        assert_eq!(
            parse_time(&json!("2023-11-15T00:13:20+02:00")),
            Some(1_700_000_000.0)
        );
        assert_eq!(parse_time(&json!("yesterday")), None);
    }
}
