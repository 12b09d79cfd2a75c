//! Extractors and matchers: where a value is read from a response (`{json: PATH}` or
//! `{header: NAME}`) and when it counts as a hit (`equals`/`hit`, `regex`, or present).
//! Used for the answer text, the serving tier, fallback, escalation and cache signals.

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::timeline::Response;

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSONPath (RFC 9535) into the response body.
    Json { path: JsonPath, text: String },
    /// A response header (name lowercased).
    Header(String),
}

impl Source {
    /// Compiles a JSONPath; the error says what is wrong and what is valid.
    pub fn json(text: &str) -> Result<Source, String> {
        let path = compile_path(text)?;
        Ok(Source::Json {
            path,
            text: text.to_string(),
        })
    }

    pub fn header(name: &str) -> Result<Source, String> {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid HTTP header name"))?;
        Ok(Source::Header(name.to_ascii_lowercase()))
    }

    /// Every value found (several for a wildcard path), in document order.
    pub fn values(&self, response: &Response, json: Option<&Value>) -> Vec<Value> {
        match self {
            Source::Json { path, .. } => match json {
                Some(j) => path.query(j).all().into_iter().cloned().collect(),
                None => Vec::new(),
            },
            Source::Header(name) => response
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| Value::String(v.clone()))
                .collect(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Json { text, .. } => format!("json {text}"),
            Source::Header(h) => format!("header {h}"),
        }
    }
}

/// Compiles a JSONPath, accepting the common `$.a.b[0]` form.
pub fn compile_path(text: &str) -> Result<JsonPath, String> {
    JsonPath::parse(text).map_err(|e| {
        format!("invalid JSONPath `{text}`: {e}; expected RFC 9535 syntax such as $.answer or $.items[0].label")
    })
}

/// The text form of a JSON value: strings unquoted, everything else as compact JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// When a matcher's value counts as a hit.
#[derive(Debug, Clone)]
pub enum Cond {
    /// Equal to this value (a string also matches the text form of a number or bool).
    Equals(Value),
    Regex(Regex),
    /// Present and not `false`/`null`/empty.
    Truthy,
}

/// A signal read from a response: fallback, escalation, cache hit.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub source: Source,
    pub cond: Cond,
}

impl Matcher {
    /// True when any value found satisfies the condition.
    pub fn matches(&self, response: &Response, json: Option<&Value>) -> bool {
        self.source
            .values(response, json)
            .iter()
            .any(|v| cond_holds(&self.cond, v))
    }
}

fn cond_holds(cond: &Cond, v: &Value) -> bool {
    match cond {
        Cond::Equals(expected) => values_equal(expected, v),
        Cond::Regex(re) => re.is_match(&value_text(v)),
        Cond::Truthy => match v {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.trim().is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        },
    }
}

/// Equality that lets `equals: 1` match `"1"` in a header and `equals: fallback` match a string.
pub fn values_equal(expected: &Value, actual: &Value) -> bool {
    if expected == actual {
        return true;
    }
    match (expected, actual) {
        (Value::String(e), Value::String(a)) => e.trim() == a.trim(),
        (Value::String(e), other) | (other, Value::String(e)) => match other {
            Value::Number(_) | Value::Bool(_) => *e.trim() == *other.to_string(),
            _ => false,
        },
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// A value read for reporting (the answer, the tier).
#[derive(Debug, Clone)]
pub struct Extractor {
    pub source: Source,
}

impl Extractor {
    /// The first value found, as text.
    pub fn text(&self, response: &Response, json: Option<&Value>) -> Option<String> {
        let vals = self.source.values(response, json);
        match vals.len() {
            0 => None,
            1 => Some(value_text(&vals[0])),
            _ => Some(vals.iter().map(value_text).collect::<Vec<_>>().join("\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn json_matcher_equals_on_any_value() {
        let m = Matcher {
            source: Source::json("$.results[*].provenance").unwrap(),
            cond: Cond::Equals(json!("fallback")),
        };
        let body = json!({"results": [{"provenance": "model"}, {"provenance": "fallback"}]});
        assert!(m.matches(&resp(&[]), Some(&body)));
        let body = json!({"results": [{"provenance": "model"}]});
        assert!(!m.matches(&resp(&[]), Some(&body)));
        assert!(!m.matches(&resp(&[]), None));
    }

    #[test]
    fn header_matcher_and_loose_equality() {
        let m = Matcher {
            source: Source::header("X-Cache").unwrap(),
            cond: Cond::Equals(json!("HIT")),
        };
        assert!(m.matches(&resp(&[("x-cache", "HIT")]), None));
        assert!(!m.matches(&resp(&[("x-cache", "MISS")]), None));
        assert!(values_equal(&json!(1), &json!("1")));
        assert!(values_equal(&json!(1.0), &json!(1)));
        assert!(!values_equal(&json!("a"), &json!(["a"])));
    }

    #[test]
    fn regex_and_truthy() {
        let r = Matcher {
            source: Source::json("$.answer").unwrap(),
            cond: Cond::Regex(Regex::new("(?i)escalat").unwrap()),
        };
        assert!(r.matches(
            &resp(&[]),
            Some(&json!({"answer": "Escalating to a human"}))
        ));
        let t = Matcher {
            source: Source::json("$.escalated").unwrap(),
            cond: Cond::Truthy,
        };
        assert!(t.matches(&resp(&[]), Some(&json!({"escalated": true}))));
        assert!(!t.matches(&resp(&[]), Some(&json!({"escalated": false}))));
        assert!(!t.matches(&resp(&[]), Some(&json!({}))));
    }

    #[test]
    fn extractor_text_and_bad_paths() {
        let e = Extractor {
            source: Source::json("$.model").unwrap(),
        };
        assert_eq!(
            e.text(&resp(&[]), Some(&json!({"model": "small"}))),
            Some("small".into())
        );
        assert_eq!(e.text(&resp(&[]), Some(&json!({}))), None);
        assert!(Source::json("$.[").unwrap_err().contains("JSONPath"));
        assert!(Source::header("bad header").is_err());
    }
}
