//! A compiled stream description and what it makes of each unit: the same [`Piece`]s the
//! chat protocols' event tables give (reasoning, visible text, tool scaffolding, model,
//! usage, finish reason, terminator), or a classified error (`stream_error`, `rate_limited`,
//! `protocol` for data that is not JSON). Loading and checking a description is
//! `suite::stream`'s job; this is the run-time half.

use serde_json::Value;
use serde_json_path::JsonPath;

use super::framing::{Framing, Unit, UnitKind};
use crate::drivers::chat_events::Piece;
use crate::timeline::{ErrorClass, ProbeError, TokenKind};

/// A compiled JSONPath with the text it was written as.
#[derive(Debug, Clone)]
pub struct Path {
    pub path: JsonPath,
    pub text: String,
}

impl Path {
    fn values<'a>(&self, j: &'a Value) -> Vec<&'a Value> {
        self.path.query(j).all()
    }
}

/// What a JSON condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// A value other than `null` is there (or, with `false`, is not).
    Exists(bool),
    /// Some value equals this (a string also matches a number's or a bool's text).
    Equals(Value),
    /// No value equals this (true when the path finds nothing).
    NotEquals(Value),
}

/// When a rule, the terminator or the error applies; every part given must hold.
#[derive(Debug, Clone, Default)]
pub struct Cond {
    /// The SSE event name or the event stream's `:event-type`.
    pub event: Option<String>,
    /// The unit's raw text, trimmed (e.g. `[DONE]`).
    pub data: Option<String>,
    pub json: Option<(Path, Test)>,
}

fn same(a: &Value, b: &Value) -> bool {
    a == b
        || match (a, b) {
            (Value::String(s), other) | (other, Value::String(s)) if !other.is_string() => {
                *s == *other.to_string()
            }
            _ => false,
        }
}

impl Cond {
    /// Whether the condition can be decided without the unit's JSON.
    fn raw_only(&self) -> bool {
        self.json.is_none()
    }

    fn holds(&self, unit: &Unit, json: Option<&Value>) -> bool {
        if let Some(e) = &self.event {
            if unit.event != *e {
                return false;
            }
        }
        if let Some(d) = &self.data {
            if unit.data.trim() != d {
                return false;
            }
        }
        if let Some((path, test)) = &self.json {
            let Some(j) = json else { return false };
            let vals = path.values(j);
            let ok = match test {
                Test::Exists(want) => vals.iter().any(|v| !v.is_null()) == *want,
                Test::Equals(x) => vals.iter().any(|v| same(v, x)),
                Test::NotEquals(x) => !vals.iter().any(|v| same(v, x)),
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

/// What one kind of event carries.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// `None`: every event.
    pub when: Option<Cond>,
    pub text: Vec<Path>,
    pub reasoning: Vec<Path>,
    pub tool: Vec<Path>,
    pub model: Vec<Path>,
    pub finish: Vec<Path>,
    pub input_tokens: Vec<Path>,
    pub output_tokens: Vec<Path>,
    pub reasoning_tokens: Vec<Path>,
    /// Base64 audio (`http-audio`, `ws-json-audio`).
    pub audio: Vec<Path>,
}

/// When an event is an error, and where its message and code are.
#[derive(Debug, Clone, Default)]
pub struct ErrorRule {
    pub when: Option<Cond>,
    pub message: Vec<Path>,
    pub code: Vec<Path>,
    /// Codes (or exception types) that mean the endpoint rate-limited the probe.
    pub rate_limited: Vec<String>,
}

/// The request a description sends unless the case gives `input.body`.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    pub method: Option<http::Method>,
    /// Sent unless the endpoint sets the same header (values are not secrets here: a
    /// description names no credentials).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A JSON template over the case (`{{text}}`, `{{model}}`, `{{max_tokens}}` and the
    /// usual `{{input.*}}`, `{{case.*}}`, `{{run}}`, `{{seed}}`).
    pub body: Option<Value>,
}

/// A compiled stream description.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    /// Where it came from: `built-in`, a file, or the suite.
    pub origin: String,
    pub framing: Framing,
    pub request: RequestSpec,
    pub rules: Vec<Rule>,
    /// `None`: a clean end of the body completes the stream.
    pub terminator: Option<Cond>,
    pub error: Option<ErrorRule>,
    /// What the terminator looks like, for messages.
    pub terminator_text: String,
}

fn strings(paths: &[Path], j: &Value, any_json: bool) -> String {
    let mut out = String::new();
    for p in paths {
        for v in p.values(j) {
            match v {
                Value::String(s) => out.push_str(s),
                Value::Null => {}
                other if any_json => out.push_str(&other.to_string()),
                _ => {}
            }
        }
    }
    out
}

fn first_string(paths: &[Path], j: &Value) -> Option<String> {
    paths.iter().find_map(|p| {
        p.values(j)
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_string))
    })
}

/// The sum of every number the paths find (`None` when they find none).
fn sum(paths: &[Path], j: &Value) -> Option<u64> {
    let mut total: Option<u64> = None;
    for p in paths {
        for v in p.values(j) {
            if let Some(n) = v.as_u64() {
                total = Some(total.unwrap_or(0).saturating_add(n));
            }
        }
    }
    total
}

impl StreamSpec {
    /// What one unit means. Data that is not JSON is `protocol` unless the terminator or the
    /// error names it by its raw text.
    pub fn interpret(&self, unit: &Unit, out: &mut Vec<Piece>) -> Result<(), ProbeError> {
        if let UnitKind::Exception(code) = &unit.kind {
            let json: Option<Value> = serde_json::from_str(&unit.data).ok();
            let message = json
                .as_ref()
                .and_then(|j| {
                    ["message", "Message"]
                        .iter()
                        .find_map(|k| j.get(*k).and_then(Value::as_str))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| unit.data.chars().take(200).collect());
            return Err(self.error(code, &message));
        }
        let data = unit.data.trim();
        // A terminator named by its raw text (`[DONE]`) or its event name needs no JSON.
        let raw_end = self
            .terminator
            .as_ref()
            .is_some_and(|t| t.raw_only() && t.holds(unit, None));
        if data.is_empty() {
            if raw_end {
                out.push(Piece::Terminator);
            }
            return Ok(());
        }
        let json: Value = match serde_json::from_str(data) {
            Ok(j) => j,
            Err(_) if raw_end => {
                out.push(Piece::Terminator);
                return Ok(());
            }
            Err(e) => {
                let head: String = data.chars().take(80).collect();
                return Err(ProbeError::new(
                    ErrorClass::Protocol,
                    format!("a `{}` event is not JSON ({e}): {head:?}", self.name),
                ));
            }
        };
        if let Some(er) = &self.error {
            if er.when.as_ref().is_some_and(|c| c.holds(unit, Some(&json))) {
                let code = first_string(&er.code, &json)
                    .or_else(|| {
                        er.code.iter().find_map(|p| {
                            p.values(&json)
                                .into_iter()
                                .find(|v| v.is_number())
                                .map(|v| v.to_string())
                        })
                    })
                    .unwrap_or_default();
                let message = first_string(&er.message, &json)
                    .unwrap_or_else(|| json.to_string().chars().take(300).collect());
                return Err(self.error(&code, &message));
            }
        }
        for rule in &self.rules {
            if rule
                .when
                .as_ref()
                .is_some_and(|c| !c.holds(unit, Some(&json)))
            {
                continue;
            }
            if let Some(m) = first_string(&rule.model, &json) {
                out.push(Piece::Model(m));
            }
            for p in &rule.audio {
                for v in p.values(&json) {
                    if let Value::String(s) = v {
                        if !s.is_empty() {
                            out.push(Piece::Audio(s.clone()));
                        }
                    }
                }
            }
            for (kind, paths, any) in [
                (TokenKind::Reasoning, &rule.reasoning, false),
                (TokenKind::Tool, &rule.tool, true),
                (TokenKind::Visible, &rule.text, false),
            ] {
                let t = strings(paths, &json, any);
                if !t.is_empty() {
                    out.push(Piece::Text {
                        kind,
                        text: t,
                        tokens: None,
                    });
                }
            }
            let usage = (
                sum(&rule.input_tokens, &json),
                sum(&rule.output_tokens, &json),
                sum(&rule.reasoning_tokens, &json),
            );
            if usage != (None, None, None) {
                out.push(Piece::Usage {
                    input: usage.0,
                    output: usage.1,
                    reasoning: usage.2,
                });
            }
            if let Some(f) = first_string(&rule.finish, &json) {
                out.push(Piece::Finish(f));
            }
        }
        if let Some(t) = &self.terminator {
            if t.holds(unit, Some(&json)) {
                out.push(Piece::Terminator);
            }
        }
        Ok(())
    }

    fn error(&self, code: &str, message: &str) -> ProbeError {
        let limited = self.error.as_ref().is_some_and(|e| {
            e.rate_limited
                .iter()
                .any(|c| !code.is_empty() && c.eq_ignore_ascii_case(code))
        });
        let message: String = crate::secret::redact(message).chars().take(300).collect();
        let text = if code.is_empty() {
            message
        } else {
            format!("{code}: {message}")
        };
        let class = if limited {
            ErrorClass::RateLimited
        } else {
            ErrorClass::StreamError
        };
        ProbeError::new(class, text)
    }
}
