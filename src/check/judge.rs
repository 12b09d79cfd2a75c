//! Judged quality, the pure part: the prompt a judge endpoint is asked, the strict verdict
//! shape it must answer (anything else is a `judge_error`, never a pass), the majority over
//! `samples`, self-agreement, the cache key of a judgment, and cosine similarity of
//! embeddings. The requests themselves are made by `schedule::judged`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::suite::JudgeSpec;

/// The instruction every judge gets (system message).
pub const SYSTEM: &str = "You are a strict grader of answers. Judge the answer inside <answer> to the question inside <question> against the rubric inside <rubric>, and against the reference answer inside <reference> when one is given. Reply with exactly one JSON object and nothing else: {\"verdict\": \"pass\" or \"fail\", \"score\": a number from 0 to 1, \"reason\": \"one short sentence\"}.";

/// Longest text of one field put in a judge prompt (characters); longer text is cut.
pub const MAX_FIELD_CHARS: usize = 16_000;

/// Longest verdict text read (bytes); a longer answer is a `judge_error`.
pub const MAX_VERDICT_BYTES: usize = 8 * 1024;

fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The user message of a judge request: question, answer, reference (when there is one) and
/// rubric, each in its own tag.
pub fn prompt(question: &str, answer: &str, reference: Option<&str>, rubric: &str) -> String {
    let mut p = format!(
        "<question>\n{}\n</question>\n<answer>\n{}\n</answer>\n",
        cut(question),
        cut(answer)
    );
    if let Some(r) = reference {
        p.push_str(&format!("<reference>\n{}\n</reference>\n", cut(r)));
    }
    p.push_str(&format!("<rubric>\n{}\n</rubric>", cut(rubric)));
    p
}

/// One verdict as a judge answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub score: Option<f64>,
    pub reason: String,
}

/// The strict shape of a verdict.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    verdict: String,
    score: Option<f64>,
    reason: String,
}

/// Reads a judge's answer: exactly one JSON object `{"verdict": "pass"|"fail", "score":
/// 0..1 (optional; required with a threshold), "reason": "..."}`, optionally inside one
/// Markdown code fence. With a threshold, the score decides; otherwise the verdict.
pub fn parse_verdict(text: &str, threshold: Option<f64>) -> Result<Verdict, String> {
    if text.len() > MAX_VERDICT_BYTES {
        return Err(format!(
            "the verdict is {} bytes, more than {MAX_VERDICT_BYTES}",
            text.len()
        ));
    }
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        t = rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    let w: Wire = serde_json::from_str(t).map_err(|e| {
        let head: String = text.chars().take(80).collect();
        format!("the verdict is not the JSON object asked for ({e}); it starts with {head:?}")
    })?;
    let said = match w.verdict.as_str() {
        "pass" => true,
        "fail" => false,
        other => return Err(format!("verdict `{other}` is neither `pass` nor `fail`")),
    };
    if let Some(s) = w.score {
        if !(0.0..=1.0).contains(&s) {
            return Err(format!("score {s} is not between 0 and 1"));
        }
    }
    let pass = match (threshold, w.score) {
        (Some(t), Some(s)) => s >= t,
        (Some(_), None) => {
            return Err("the verdict has no `score`, and the judge has a threshold".into())
        }
        (None, _) => said,
    };
    Ok(Verdict {
        pass,
        score: w.score,
        reason: w.reason.chars().take(300).collect(),
    })
}

/// What one judge decided about one answer, over its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// `Some(true)` pass, `Some(false)` fail, `None`: a judge error (no majority of valid
    /// verdicts).
    pub passed: Option<bool>,
    pub samples: u32,
    pub passes: u32,
    pub fails: u32,
    /// Samples whose verdict could not be read, or whose request failed.
    pub errors: u32,
    /// Share of valid samples that agree with the majority (1.0 with one sample).
    pub agreement: Option<f64>,
    /// Mean score of the valid samples that had one.
    pub score: Option<f64>,
    /// The reason of the first sample that agrees with the decision (or the first error).
    pub reason: String,
    /// Judge tokens spent (input, output) and their cost.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_dollars: Option<f64>,
}

/// The decision over samples: pass when more than half of all samples pass, fail when at
/// least half fail, otherwise a judge error (too many samples could not be read).
pub fn decide(verdicts: &[Result<Verdict, String>]) -> Judgment {
    let samples = verdicts.len() as u32;
    let passes = verdicts
        .iter()
        .filter(|v| v.as_ref().is_ok_and(|v| v.pass))
        .count() as u32;
    let fails = verdicts
        .iter()
        .filter(|v| v.as_ref().is_ok_and(|v| !v.pass))
        .count() as u32;
    let errors = samples - passes - fails;
    let passed = if samples == 0 {
        None
    } else if passes * 2 > samples {
        Some(true)
    } else if fails * 2 >= samples && fails > 0 {
        Some(false)
    } else {
        None
    };
    let valid = passes + fails;
    let agreement = (valid > 0).then(|| f64::from(passes.max(fails)) / f64::from(valid));
    let scores: Vec<f64> = verdicts
        .iter()
        .filter_map(|v| v.as_ref().ok().and_then(|v| v.score))
        .collect();
    let score = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    let reason = match passed {
        Some(p) => verdicts.iter().find_map(|v| {
            v.as_ref()
                .ok()
                .filter(|v| v.pass == p)
                .map(|v| v.reason.clone())
        }),
        None => verdicts.iter().find_map(|v| v.as_ref().err().cloned()),
    }
    .unwrap_or_default();
    Judgment {
        passed,
        samples,
        passes,
        fails,
        errors,
        agreement,
        score,
        reason,
        input_tokens: 0,
        output_tokens: 0,
        cost_dollars: None,
    }
}

/// Writes `parts` length-prefixed, so that no two lists of fields hash the same text.
fn framed(parts: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(&(p.len() as u64).to_le_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b
}

/// The cache key of a judgment: the answer, the rubric and the judge (its endpoint's name,
/// URL and model, threshold, samples and temperature), and what else the prompt holds (the
/// question and the reference). 128 bits of two FNV-1a hashes, in hex.
pub fn cache_key(
    spec: &JudgeSpec,
    question: &str,
    answer: &str,
    reference: Option<&str>,
) -> String {
    let e = &spec.endpoint;
    let threshold = spec.threshold.map(|t| t.to_string()).unwrap_or_default();
    let temperature = spec.temperature.map(|t| t.to_string()).unwrap_or_default();
    let samples = spec.samples.to_string();
    let bytes = framed(&[
        "judge-v1",
        &e.name,
        &e.url,
        e.model.as_deref().unwrap_or(""),
        &threshold,
        &samples,
        &temperature,
        &spec.rubric,
        question,
        answer,
        reference.unwrap_or("\u{0}none"),
    ]);
    let a = crate::rng::fnv1a(&bytes);
    let mut salted = b"canary".to_vec();
    salted.extend_from_slice(&bytes);
    let b = crate::rng::fnv1a(&salted).rotate_left(29) ^ a.rotate_right(7);
    format!("{a:016x}{b:016x}")
}

/// Cosine similarity of two vectors (`None` when they differ in length or one is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 || !dot.is_finite() {
        return None;
    }
    Some((dot / (na * nb)).clamp(-1.0, 1.0))
}

/// Reads the vectors of an OpenAI-compatible embeddings answer (`data[].embedding`, in
/// `index` order).
pub fn embeddings(doc: &Value) -> Result<Vec<Vec<f64>>, String> {
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the embeddings answer has no `data` list")?;
    let mut out: Vec<(u64, Vec<f64>)> = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let index = d.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let v = d
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("`data[{i}].embedding` is not a list of numbers"))?;
        let v: Option<Vec<f64>> = v.iter().map(Value::as_f64).collect();
        out.push((
            index,
            v.ok_or_else(|| format!("`data[{i}].embedding` holds something that is not a number"))?,
        ));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_verdict_parses_and_anything_else_is_an_error() {
        let v = parse_verdict(
            r#"{"verdict": "pass", "score": 0.9, "reason": "right"}"#,
            None,
        )
        .unwrap();
        assert!(v.pass);
        assert_eq!(v.score, Some(0.9));
        let fenced = "```json\n{\"verdict\": \"fail\", \"reason\": \"wrong city\"}\n```";
        assert!(!parse_verdict(fenced, None).unwrap().pass);
        for bad in [
            "PASS",
            "",
            "{\"verdict\": \"pass\"}",
            "{\"verdict\": \"yes\", \"reason\": \"x\"}",
            "{\"verdict\": \"pass\", \"reason\": \"x\", \"extra\": 1}",
            "{\"verdict\": \"pass\", \"score\": 2, \"reason\": \"x\"}",
            "The answer passes. {\"verdict\": \"pass\", \"reason\": \"x\"}",
            "[\"pass\"]",
        ] {
            assert!(
                parse_verdict(bad, None).is_err(),
                "{bad:?} must be a judge error"
            );
        }
        let huge = format!(
            "{{\"verdict\": \"pass\", \"reason\": \"{}\"}}",
            "x".repeat(MAX_VERDICT_BYTES)
        );
        assert!(parse_verdict(&huge, None).is_err());
    }

    #[test]
    fn a_threshold_decides_by_score_and_needs_one() {
        let low = r#"{"verdict": "pass", "score": 0.4, "reason": "meh"}"#;
        assert!(!parse_verdict(low, Some(0.5)).unwrap().pass);
        assert!(parse_verdict(low, Some(0.4)).unwrap().pass);
        assert!(parse_verdict(r#"{"verdict": "pass", "reason": "x"}"#, Some(0.5)).is_err());
    }

    fn v(pass: bool) -> Result<Verdict, String> {
        Ok(Verdict {
            pass,
            score: None,
            reason: if pass { "good" } else { "bad" }.into(),
        })
    }

    #[test]
    fn the_majority_decides_and_unreadable_samples_never_pass() {
        let j = decide(&[v(true), v(true), v(false)]);
        assert_eq!(j.passed, Some(true));
        assert_eq!(j.agreement, Some(2.0 / 3.0));
        assert_eq!(j.reason, "good");
        assert_eq!(decide(&[v(true), v(false)]).passed, Some(false));
        let e: Result<Verdict, String> = Err("garbage".into());
        let j = decide(std::slice::from_ref(&e));
        assert_eq!(j.passed, None);
        assert_eq!(j.errors, 1);
        assert_eq!(j.reason, "garbage");
        // One pass of three is no majority; one fail and two errors is a judge error too.
        assert_eq!(decide(&[v(true), e.clone(), e.clone()]).passed, None);
        assert_eq!(decide(&[v(false), e.clone(), e]).passed, None);
        assert_eq!(decide(&[]).passed, None);
    }

    #[test]
    fn cosine_and_embeddings() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).unwrap().abs() < 1e-12);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), None);
        let doc = serde_json::json!({"data": [
            {"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]});
        assert_eq!(
            embeddings(&doc).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        assert!(embeddings(&serde_json::json!({"data": [{"embedding": ["x"]}]})).is_err());
        assert!(embeddings(&serde_json::json!({})).is_err());
    }

    #[test]
    fn prompts_hold_every_field_in_its_tag() {
        let p = prompt("Q?", "A.", Some("R."), "Be right.");
        for part in [
            "<question>\nQ?\n",
            "<answer>\nA.\n",
            "<reference>\nR.\n",
            "<rubric>\nBe right.\n",
        ] {
            assert!(p.contains(part), "{p}");
        }
        assert!(!prompt("Q?", "A.", None, "r").contains("<reference>"));
    }
}
