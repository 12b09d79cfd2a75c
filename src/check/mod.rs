//! Checks: pure functions of a finished timeline that judge the answer — the endpoint's
//! schema, fallback, escalation, cache and tier signals, and each case's `expect` keys.
//! Every failed check says why.

pub mod escalation;
pub mod extract;
pub mod freshness;
pub mod judge;
pub mod records;
pub mod signals;

use serde::Serialize;
use serde_json::Value;

use crate::suite::{Endpoint, Expect};
use crate::timeline::{ErrorClass, Timeline};
use extract::{value_text, values_equal};

/// Longest tier value kept as a label (longer values are cut).
pub const MAX_TIER_LEN: usize = 64;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl CheckResult {
    pub(crate) fn new(check: &'static str, passed: bool, detail: impl Into<String>) -> Self {
        CheckResult {
            check,
            passed,
            detail: crate::secret::redact(&detail.into()),
        }
    }
}

/// What the checks concluded about one response. `None` means "does not apply".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdicts {
    pub checks: Vec<CheckResult>,
    pub schema_valid: Option<bool>,
    pub fallback: Option<bool>,
    pub escalated: Option<bool>,
    /// The phrase that marked the answer as an escalation or refusal.
    pub escalation_phrase: Option<String>,
    pub cache_hit: Option<bool>,
    pub tier: Option<String>,
    pub tier_primary: Option<bool>,
    /// The answer text (what text checks read), kept short for reports.
    pub answer: Option<String>,
    /// Characters of the whole answer (answer-shape drift).
    pub answer_chars: Option<u64>,
}

impl Verdicts {
    /// All checks passed (vacuously true with no checks).
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// The answer of a response (the endpoint's `answer` extractor, the text a protocol driver
/// assembled, or the body) and its JSON, if it is JSON.
fn answer_from(
    endpoint: &Endpoint,
    timeline: &Timeline,
    resp: &crate::timeline::Response,
    json: Option<&Value>,
) -> (Option<String>, Option<Value>) {
    match &endpoint.answer {
        Some(ex) => {
            let vals = ex.source.values(resp, json);
            match vals.len() {
                0 => (None, None),
                1 => (Some(value_text(&vals[0])), Some(vals[0].clone())),
                _ => (
                    Some(vals.iter().map(value_text).collect::<Vec<_>>().join("\n")),
                    Some(Value::Array(vals)),
                ),
            }
        }
        None => match &timeline.answer_text {
            Some(text) => (Some(text.clone()), serde_json::from_str(text).ok()),
            None => (
                Some(String::from_utf8_lossy(&resp.body).into_owned()),
                json.cloned(),
            ),
        },
    }
}

/// The full answer text of a run that was answered (what text checks and freshness read).
pub fn answer_text(endpoint: &Endpoint, timeline: &Timeline) -> Option<String> {
    let resp = timeline.response.as_ref().filter(|r| answered(r.status))?;
    let parsed: Option<Value> = match &timeline.doc {
        Some(d) => Some(d.clone()),
        None => serde_json::from_slice(&resp.body).ok(),
    };
    answer_from(endpoint, timeline, resp, parsed.as_ref()).0
}

/// The names of the checks a case can produce (for counting series before a run).
pub fn check_names(endpoint: &Endpoint, expect: &Expect) -> Vec<&'static str> {
    let mut out = Vec::new();
    if endpoint.schema.is_some() {
        out.push("schema");
    }
    let text = [
        ("equals", expect.equals.is_some()),
        ("contains", !expect.contains.is_empty()),
        ("contains_any", !expect.contains_any.is_empty()),
        ("regex", expect.regex.is_some()),
        ("not_regex", expect.not_regex.is_some()),
        ("min_chars", expect.min_chars.is_some()),
        ("max_chars", expect.max_chars.is_some()),
    ];
    if text.iter().any(|(_, on)| *on) {
        out.push("answer");
    }
    out.extend(text.iter().filter(|(_, on)| *on).map(|(n, _)| *n));
    for (name, on) in [
        ("json", !expect.json.is_empty()),
        ("case_schema", expect.schema.is_some()),
        ("not_escalated", expect.not_escalated.is_some()),
        ("tier", !expect.tier.is_empty()),
        (
            "transcript_contains",
            !expect.transcript_contains.is_empty(),
        ),
        ("fresh", expect.fresh.is_some()),
        ("judge", expect.judge.is_some()),
        ("similar", expect.similar.is_some()),
    ] {
        if on {
            out.push(name);
        }
    }
    out
}

/// Whether a response status means the request was answered: 2xx, or 101 for a WebSocket
/// upgrade (voice protocols).
pub fn answered(status: u16) -> bool {
    (200..300).contains(&status) || status == 101
}

/// Judges the response of one case run. Runs only when a response body arrived with a 2xx
/// status (an invalid-JSON body is judged too: its schema and JSON checks fail).
pub fn evaluate(endpoint: &Endpoint, expect: &Expect, timeline: &Timeline) -> Verdicts {
    let mut v = Verdicts::default();
    // A stream left at its first visible token (a latency-only probe) has no whole answer
    // to judge: no schema, no checks, no answer shape.
    if timeline.stopped_early {
        return v;
    }
    let Some(resp) = &timeline.response else {
        return v;
    };
    if !answered(resp.status) {
        return v;
    }
    let invalid_json = timeline
        .error
        .as_ref()
        .is_some_and(|e| e.class == ErrorClass::InvalidJson);
    if timeline.error.is_some() && !invalid_json {
        return v;
    }
    // The document paths read: what the driver assembled (a chat summary or body), else the body.
    let parsed: Option<Value> = if invalid_json {
        None
    } else if let Some(doc) = &timeline.doc {
        Some(doc.clone())
    } else {
        serde_json::from_slice(&resp.body).ok()
    };
    let json = parsed.as_ref();

    // What schemas and `expect.json` judge: a chat answer is the JSON the model wrote (its
    // answer text parsed); any other response is its body.
    let judged_json: Option<Value> = match &timeline.answer_text {
        Some(text) => serde_json::from_str(text).ok(),
        None => json.cloned(),
    };
    if let Some(schema) = &endpoint.schema {
        let (ok, detail) = schema_check(&schema.validator, judged_json.as_ref());
        v.schema_valid = Some(ok);
        v.checks.push(CheckResult::new("schema", ok, detail));
    }
    // A JSON-path signal does not apply to a body that is not JSON.
    let applies =
        |m: &extract::Matcher| json.is_some() || matches!(m.source, extract::Source::Header(_));
    if let Some(m) = endpoint.fallback.as_ref().filter(|m| applies(m)) {
        v.fallback = Some(m.matches(resp, json));
    }
    if let Some(m) = endpoint.escalation.as_ref().filter(|m| applies(m)) {
        v.escalated = Some(m.matches(resp, json));
    }
    if let Some(m) = endpoint.cache.as_ref().filter(|m| applies(m)) {
        v.cache_hit = Some(m.matches(resp, json));
    }
    if let Some(t) = &endpoint.tier {
        v.tier = t.extractor.text(resp, json).map(|s| clean_label(&s));
        if !t.primary.is_empty() {
            v.tier_primary = Some(v.tier.as_ref().is_some_and(|x| t.primary.contains(x)));
        }
    }

    // The answer: the endpoint's `answer` extractor, or the whole body.
    let (answer_text, answer_json) = answer_from(endpoint, timeline, resp, json);
    v.answer_chars = answer_text.as_ref().map(|a| a.chars().count() as u64);
    v.answer = answer_text
        .as_ref()
        .map(|a| truncate(&crate::secret::redact(a), 500));
    // Phrases in the answer: a hand-off or refusal that no signal field reported.
    if let (Some(ph), Some(text)) = (&endpoint.escalation_phrases, &answer_text) {
        let found = escalation::detect(text, ph.builtin, &ph.extra);
        if found.is_some() {
            v.escalated = Some(true);
        } else if v.escalated.is_none() {
            v.escalated = Some(false);
        }
        v.escalation_phrase = found;
    }
    let text_checks_needed = expect.equals.is_some()
        || !expect.contains.is_empty()
        || !expect.contains_any.is_empty()
        || expect.regex.is_some()
        || expect.not_regex.is_some()
        || expect.min_chars.is_some()
        || expect.max_chars.is_some();
    if text_checks_needed && answer_text.is_none() {
        let from = endpoint
            .answer
            .as_ref()
            .map(|a| a.source.describe())
            .unwrap_or_else(|| "body".into());
        v.checks.push(CheckResult::new(
            "answer",
            false,
            format!("no answer found at {from}"),
        ));
    } else if let Some(text) = &answer_text {
        text_checks(expect, text, answer_json.as_ref(), &mut v.checks);
    }

    if !expect.transcript_contains.is_empty() {
        let transcript = timeline.answer_text.as_deref().unwrap_or("");
        let norm = transcript.to_lowercase();
        let missing: Vec<&str> = expect
            .transcript_contains
            .iter()
            .filter(|c| !norm.contains(&c.to_lowercase()))
            .map(String::as_str)
            .collect();
        let detail = if missing.is_empty() {
            "all present".to_string()
        } else {
            format!("missing {missing:?} in transcript {}", quote(transcript))
        };
        v.checks.push(CheckResult::new(
            "transcript_contains",
            missing.is_empty(),
            detail,
        ));
    }
    for (path_text, path, expected) in &expect.json {
        let found: Vec<&Value> = judged_json
            .as_ref()
            .map(|j| path.query(j).all())
            .unwrap_or_default();
        let (ok, detail) = match found.len() {
            0 => (false, format!("{path_text} matched nothing")),
            1 => (
                values_equal(expected, found[0]),
                format!(
                    "{path_text} = {}, expected {}",
                    short(found[0]),
                    short(expected)
                ),
            ),
            _ => {
                let arr = Value::Array(found.into_iter().cloned().collect());
                (
                    values_equal(expected, &arr),
                    format!(
                        "{path_text} = {}, expected {}",
                        short(&arr),
                        short(expected)
                    ),
                )
            }
        };
        v.checks.push(CheckResult::new("json", ok, detail));
    }
    if let Some(schema) = &expect.schema {
        let (ok, detail) = schema_check(&schema.validator, judged_json.as_ref());
        if endpoint.schema.is_none() {
            v.schema_valid = Some(ok);
        }
        v.checks.push(CheckResult::new("case_schema", ok, detail));
    }
    if let Some(want) = expect.not_escalated {
        let escalated = v.escalated.unwrap_or(false);
        let ok = escalated != want;
        v.checks.push(CheckResult::new(
            "not_escalated",
            ok,
            if escalated {
                "the answer was an escalation"
            } else {
                "the answer was not an escalation"
            },
        ));
    }
    if !expect.tier.is_empty() {
        let ok = v.tier.as_ref().is_some_and(|t| expect.tier.contains(t));
        v.checks.push(CheckResult::new(
            "tier",
            ok,
            format!(
                "tier {:?}, expected one of {:?}",
                v.tier.as_deref().unwrap_or("(none)"),
                expect.tier
            ),
        ));
    }
    v
}

/// The text checks of `expect` (`equals`, `contains`, `regex`, lengths, ...) on a text that is
/// not one response's answer (a whole conversation's answers).
pub fn text_checks_on(expect: &Expect, text: &str) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let json: Option<Value> = serde_json::from_str(text).ok();
    text_checks(expect, text, json.as_ref(), &mut out);
    out
}

fn text_checks(
    expect: &Expect,
    text: &str,
    answer_json: Option<&Value>,
    out: &mut Vec<CheckResult>,
) {
    if let Some(expected) = &expect.equals {
        let ok = match expected {
            Value::String(s) => s.trim() == text.trim(),
            other => answer_json.is_some_and(|a| values_equal(other, a)),
        };
        out.push(CheckResult::new(
            "equals",
            ok,
            format!("answer {}, expected {}", quote(text), short(expected)),
        ));
    }
    if !expect.contains.is_empty() {
        let missing: Vec<&str> = expect
            .contains
            .iter()
            .filter(|c| !text.contains(c.as_str()))
            .map(String::as_str)
            .collect();
        let detail = if missing.is_empty() {
            "all present".to_string()
        } else {
            format!("missing {missing:?} in answer {}", quote(text))
        };
        out.push(CheckResult::new("contains", missing.is_empty(), detail));
    }
    if !expect.contains_any.is_empty() {
        let hit = expect
            .contains_any
            .iter()
            .find(|c| text.contains(c.as_str()));
        let detail = match hit {
            Some(h) => format!("found {h:?}"),
            None => format!(
                "none of {:?} in answer {}",
                expect.contains_any,
                quote(text)
            ),
        };
        out.push(CheckResult::new("contains_any", hit.is_some(), detail));
    }
    if let Some(re) = &expect.regex {
        let ok = re.is_match(text);
        out.push(CheckResult::new(
            "regex",
            ok,
            if ok {
                format!("/{re}/ matched")
            } else {
                format!("/{re}/ did not match answer {}", quote(text))
            },
        ));
    }
    if let Some(re) = &expect.not_regex {
        let found = re.find(text).map(|m| m.as_str().to_string());
        out.push(CheckResult::new(
            "not_regex",
            found.is_none(),
            match found {
                Some(m) => format!("/{re}/ matched {m:?}"),
                None => format!("/{re}/ did not match"),
            },
        ));
    }
    let chars = text.chars().count();
    if let Some(min) = expect.min_chars {
        out.push(CheckResult::new(
            "min_chars",
            chars >= min,
            format!("{chars} chars, minimum {min}"),
        ));
    }
    if let Some(max) = expect.max_chars {
        out.push(CheckResult::new(
            "max_chars",
            chars <= max,
            format!("{chars} chars, maximum {max}"),
        ));
    }
}

fn schema_check(validator: &jsonschema::Validator, json: Option<&Value>) -> (bool, String) {
    match json {
        None => (false, "body is not valid JSON".into()),
        Some(j) => {
            let errors: Vec<String> = validator
                .iter_errors(j)
                .take(3)
                .map(|e| {
                    let at = e.instance_path.to_string();
                    format!(
                        "{} at {}",
                        truncate(&e.to_string(), 120),
                        if at.is_empty() { "/".into() } else { at }
                    )
                })
                .collect();
            if errors.is_empty() {
                (true, "valid".into())
            } else {
                (false, errors.join("; "))
            }
        }
    }
}

/// Makes a response-derived value safe as a label: printable, trimmed, bounded length.
pub fn clean_label(s: &str) -> String {
    let cleaned: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TIER_LEN)
        .collect();
    if cleaned.is_empty() {
        "unknown".into()
    } else {
        cleaned
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

// Redact before cutting: a cut secret would no longer match.
fn quote(s: &str) -> String {
    format!("{:?}", truncate(&crate::secret::redact(s), 160))
}

fn short(v: &Value) -> String {
    truncate(&crate::secret::redact(&v.to_string()), 160)
}

#[cfg(test)]
mod tests;
