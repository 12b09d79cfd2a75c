//! Unit tests for every check, on hand-built responses.

use super::*;
use crate::check::extract::{Cond, Extractor, Matcher, Source};
use crate::suite::{Protocol, Schema, TierSpec};
use crate::timeline::{ProbeError, Response};
use regex::Regex;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn endpoint() -> Endpoint {
    Endpoint {
        name: "mapper".into(),
        protocol: Protocol::HttpJson,
        url: "http://127.0.0.1:1/map".into(),
        method: http::Method::POST,
        headers: vec![],
        model: None,
        tier: None,
        fallback: None,
        cache: None,
        escalation: None,
        schema: None,
        answer: None,
        timeout: Duration::from_secs(1),
        max_body: 1 << 20,
        metrics: None,
        labels: Default::default(),
        escalation_phrases: None,
        price: None,
        tls: None,
        net: Default::default(),
        traceparent: true,
        settings: crate::suite::Settings::Json,
    }
}

fn timeline(status: u16, body: &str, headers: &[(&str, &str)]) -> Timeline {
    Timeline {
        started_at: SystemTime::now(),
        events: vec![],
        response: Some(Response {
            status,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: bytes::Bytes::from(body.to_string()),
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

fn schema(v: serde_json::Value) -> Schema {
    Schema {
        path: "inline".into(),
        validator: Arc::new(jsonschema::validator_for(&v).unwrap()),
    }
}

fn only(v: &Verdicts, name: &str) -> CheckResult {
    let found: Vec<_> = v.checks.iter().filter(|c| c.check == name).collect();
    assert_eq!(found.len(), 1, "{name} in {:?}", v.checks);
    found[0].clone()
}

#[test]
fn equals_string_compares_trimmed_answer() {
    let mut ep = endpoint();
    ep.answer = Some(Extractor {
        source: Source::json("$.answer").unwrap(),
    });
    let e = Expect {
        equals: Some(json!("Paris")),
        ..Default::default()
    };
    assert!(
        only(
            &evaluate(&ep, &e, &timeline(200, r#"{"answer":" Paris\n"}"#, &[])),
            "equals"
        )
        .passed
    );
    let r = only(
        &evaluate(&ep, &e, &timeline(200, r#"{"answer":"Lyon"}"#, &[])),
        "equals",
    );
    assert!(!r.passed);
    assert!(r.detail.contains("Lyon"), "{}", r.detail);
}

#[test]
fn equals_json_compares_structure() {
    let e = Expect {
        equals: Some(json!({"a": [1, 2]})),
        ..Default::default()
    };
    assert!(
        only(
            &evaluate(&endpoint(), &e, &timeline(200, r#"{"a":[1,2]}"#, &[])),
            "equals"
        )
        .passed
    );
    assert!(
        !only(
            &evaluate(&endpoint(), &e, &timeline(200, r#"{"a":[2,1]}"#, &[])),
            "equals"
        )
        .passed
    );
}

#[test]
fn contains_requires_all_and_names_the_missing() {
    let e = Expect {
        contains: vec!["Paris".into(), "France".into()],
        ..Default::default()
    };
    assert!(
        only(
            &evaluate(&endpoint(), &e, &timeline(200, r#""Paris, France""#, &[])),
            "contains"
        )
        .passed
    );
    let r = only(
        &evaluate(&endpoint(), &e, &timeline(200, r#""Paris""#, &[])),
        "contains",
    );
    assert!(!r.passed);
    assert!(r.detail.contains("France"));
}

#[test]
fn contains_any_requires_one() {
    let e = Expect {
        contains_any: vec!["yes".into(), "sure".into()],
        ..Default::default()
    };
    assert!(
        only(
            &evaluate(&endpoint(), &e, &timeline(200, r#""sure thing""#, &[])),
            "contains_any"
        )
        .passed
    );
    assert!(
        !only(
            &evaluate(&endpoint(), &e, &timeline(200, r#""no""#, &[])),
            "contains_any"
        )
        .passed
    );
}

#[test]
fn regex_and_not_regex() {
    let e = Expect {
        regex: Some(Regex::new(r"^\{").unwrap()),
        not_regex: Some(Regex::new("(?i)error").unwrap()),
        ..Default::default()
    };
    let v = evaluate(&endpoint(), &e, &timeline(200, r#"{"ok":true}"#, &[]));
    assert!(only(&v, "regex").passed && only(&v, "not_regex").passed);
    let v = evaluate(
        &endpoint(),
        &e,
        &timeline(200, r#"{"msg":"Error here"}"#, &[]),
    );
    let nr = only(&v, "not_regex");
    assert!(!nr.passed);
    assert!(nr.detail.contains("Error"));
}

#[test]
fn json_paths_compare_single_and_multiple_nodes() {
    let e = Expect {
        json: vec![
            (
                "$.taxonomy[0]".into(),
                crate::check::extract::compile_path("$.taxonomy[0]").unwrap(),
                json!("PII.Contact.Email"),
            ),
            (
                "$.r[*].x".into(),
                crate::check::extract::compile_path("$.r[*].x").unwrap(),
                json!([1, 2]),
            ),
            (
                "$.missing".into(),
                crate::check::extract::compile_path("$.missing").unwrap(),
                json!(1),
            ),
        ],
        ..Default::default()
    };
    let v = evaluate(
        &endpoint(),
        &e,
        &timeline(
            200,
            r#"{"taxonomy":["PII.Contact.Email"],"r":[{"x":1},{"x":2}]}"#,
            &[],
        ),
    );
    let results: Vec<bool> = v.checks.iter().map(|c| c.passed).collect();
    assert_eq!(results, vec![true, true, false]);
    assert!(v.checks[2].detail.contains("matched nothing"));
}

#[test]
fn min_and_max_chars_count_characters_not_bytes() {
    let e = Expect {
        min_chars: Some(3),
        max_chars: Some(3),
        ..Default::default()
    };
    let v = evaluate(&endpoint(), &e, &timeline(200, "\"é\"", &[]));
    // The body is `"é"`: three characters, four bytes.
    assert!(only(&v, "min_chars").passed && only(&v, "max_chars").passed);
    let v = evaluate(&endpoint(), &e, &timeline(200, "\"abcd\"", &[]));
    assert!(!only(&v, "max_chars").passed);
}

#[test]
fn schema_validity_and_reason() {
    let mut ep = endpoint();
    ep.schema = Some(schema(
        json!({"type": "object", "required": ["taxonomy"], "properties": {"taxonomy": {"type": "array"}}}),
    ));
    let v = evaluate(
        &ep,
        &Expect::default(),
        &timeline(200, r#"{"taxonomy":[]}"#, &[]),
    );
    assert_eq!(v.schema_valid, Some(true));
    let v = evaluate(
        &ep,
        &Expect::default(),
        &timeline(200, r#"{"taxonomy":"x"}"#, &[]),
    );
    assert_eq!(v.schema_valid, Some(false));
    assert!(
        only(&v, "schema").detail.contains("/taxonomy"),
        "{:?}",
        v.checks
    );
}

#[test]
fn invalid_json_body_is_schema_invalid() {
    let mut ep = endpoint();
    ep.schema = Some(schema(json!({"type": "object"})));
    let mut t = timeline(200, "{not json", &[]);
    t.error = Some(ProbeError::new(ErrorClass::InvalidJson, "bad"));
    let v = evaluate(&ep, &Expect::default(), &t);
    assert_eq!(v.schema_valid, Some(false));
}

#[test]
fn non_2xx_and_transport_errors_are_not_judged() {
    let mut ep = endpoint();
    ep.schema = Some(schema(json!({"type": "object"})));
    let v = evaluate(&ep, &Expect::default(), &timeline(503, "{}", &[]));
    assert_eq!(v.schema_valid, None);
    let mut t = timeline(200, "{}", &[]);
    t.error = Some(ProbeError::new(ErrorClass::Reset, "x"));
    assert_eq!(evaluate(&ep, &Expect::default(), &t).schema_valid, None);
}

#[test]
fn fallback_tier_cache_and_escalation_signals() {
    let mut ep = endpoint();
    ep.fallback = Some(Matcher {
        source: Source::json("$.provenance").unwrap(),
        cond: Cond::Equals(json!("fallback")),
    });
    ep.cache = Some(Matcher {
        source: Source::header("x-cache").unwrap(),
        cond: Cond::Equals(json!("HIT")),
    });
    ep.escalation = Some(Matcher {
        source: Source::json("$.escalated").unwrap(),
        cond: Cond::Truthy,
    });
    ep.tier = Some(TierSpec {
        extractor: Extractor {
            source: Source::json("$.model").unwrap(),
        },
        primary: vec!["big".into()],
    });
    let e = Expect {
        tier: vec!["big".into()],
        not_escalated: Some(true),
        ..Default::default()
    };
    let v = evaluate(
        &ep,
        &e,
        &timeline(
            200,
            r#"{"provenance":"fallback","model":"small","escalated":false}"#,
            &[("x-cache", "HIT")],
        ),
    );
    assert_eq!(v.fallback, Some(true));
    assert_eq!(v.cache_hit, Some(true));
    assert_eq!(v.escalated, Some(false));
    assert_eq!(v.tier.as_deref(), Some("small"));
    assert_eq!(v.tier_primary, Some(false));
    assert!(!only(&v, "tier").passed);
    assert!(only(&v, "not_escalated").passed);
    assert!(!v.checks_passed());
}

#[test]
fn missing_answer_fails_text_checks_with_a_reason() {
    let mut ep = endpoint();
    ep.answer = Some(Extractor {
        source: Source::json("$.answer").unwrap(),
    });
    let e = Expect {
        contains: vec!["x".into()],
        ..Default::default()
    };
    let r = only(&evaluate(&ep, &e, &timeline(200, "{}", &[])), "answer");
    assert!(!r.passed);
    assert!(r.detail.contains("$.answer"));
}

#[test]
fn tier_labels_are_bounded() {
    assert_eq!(clean_label(&"x".repeat(500)).len(), MAX_TIER_LEN);
    assert_eq!(clean_label(" \n"), "unknown");
    assert_eq!(clean_label("a\u{0}b"), "ab");
}
