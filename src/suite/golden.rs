//! Golden sets: JSONL files with one case per line. Errors name the file, the line and,
//! where it can be found, the column of the offending key.

use std::path::Path;

use serde_json::Value;

use super::diag::{list, Diagnostic};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::ctx::{compile_expect_path, compile_regex, load_schema, remove_at};
use super::model::{Case, Endpoint, Expect, JudgeSpec, Protocol, SimilarSpec, Turn};
use super::raw::{RawCase, RawCaseJudge, RawCaseSimilar, RawExpect, RawJudge, RawSimilar, RawTurn};
use super::yaml::{path_string, Pos, Seg};

/// Default slice of a case that names none.
pub const DEFAULT_SLICE: &str = "default";

/// Longest slice name kept (it is a label value).
pub const MAX_SLICE_LEN: usize = 64;

const CASE_KEYS: &[&str] = &["id", "slice", "input", "expect", "description"];

/// Reads a golden file. Returns the cases that parsed (with line number and text) and the
/// errors of the lines that did not; `Err` when the file cannot be read at all.
#[allow(clippy::type_complexity)]
pub fn load(path: &Path) -> Result<(Vec<(usize, RawCase, String)>, Vec<Diagnostic>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read golden set `{}`: {e}", path.display()))?;
    let mut cases = Vec::new();
    let mut diags = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        path,
                        Some(Pos {
                            line: lineno,
                            col: e.column().max(1),
                        }),
                        "case",
                        format!("invalid JSON: {e}"),
                    )
                    .hint("each line must be one complete JSON object"),
                );
                continue;
            }
        };
        if !value.is_object() {
            diags.push(
                Diagnostic::new(
                    path,
                    Some(Pos {
                        line: lineno,
                        col: 1,
                    }),
                    "case",
                    "a case must be a JSON object",
                )
                .hint("{\"id\": \"...\", \"slice\": \"...\", \"input\": {...}, \"expect\": {...}}"),
            );
            continue;
        }
        let mut value = value;
        // Report every bad key of the line: remove each offending key and try again.
        for _ in 0..16 {
            let e = match serde_path_to_error::deserialize::<_, RawCase>(value.clone()) {
                Ok(c) => {
                    cases.push((lineno, c, line.to_string()));
                    break;
                }
                Err(e) => e,
            };
            let segs: Vec<Seg> = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    _ => None,
                })
                .collect();
            let field = path_string(&segs);
            let msg = e.inner().to_string();
            let mut remove: Vec<Seg> = segs.clone();
            let (message, key, hint) = if let Some(unknown) = between(&msg, "unknown field `", "`")
            {
                let expected = expected_names(&msg);
                let names: Vec<&str> = expected.iter().map(String::as_str).collect();
                let names = if names.is_empty() {
                    CASE_KEYS.to_vec()
                } else {
                    names
                };
                if remove.last() != Some(&Seg::Key(unknown.clone())) {
                    remove.push(Seg::Key(unknown.clone()));
                }
                (
                    format!("unknown key `{unknown}`"),
                    unknown.clone(),
                    Some(super::diag::suggest(&unknown, &names)),
                )
            } else if let Some(missing) = between(&msg, "missing field `", "`") {
                remove.clear();
                (
                    format!("missing required key `{missing}`"),
                    String::new(),
                    Some("every case needs a unique `id`".to_string()),
                )
            } else {
                let key = match segs.last() {
                    Some(Seg::Key(k)) => k.clone(),
                    _ => String::new(),
                };
                (msg.replace("invalid type: ", "wrong type: "), key, None)
            };
            let shown = match remove.as_slice() {
                [] if field == "(top level)" => "case".to_string(),
                [] => format!("case.{field}"),
                r => format!("case.{}", path_string(r)),
            };
            diags.push(
                Diagnostic::new(path, Some(col_of(line, lineno, &key)), shown, message)
                    .maybe_hint(hint),
            );
            if remove.is_empty() || !remove_at(&mut value, &remove) {
                break;
            }
        }
    }
    Ok((cases, diags))
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(s[i..j].to_string())
}

fn expected_names(msg: &str) -> Vec<String> {
    let Some(i) = msg.find("expected") else {
        return vec![];
    };
    msg[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The position of `"key"` on a JSONL line (column 1 when it is not found).
pub fn col_of(line: &str, lineno: usize, key: &str) -> Pos {
    let col = if key.is_empty() {
        1
    } else {
        line.find(&format!("\"{key}\"")).map(|c| c + 1).unwrap_or(1)
    };
    Pos { line: lineno, col }
}

/// What a case's `expect` may rely on.
#[derive(Default)]
pub struct ProbeContext<'a> {
    pub endpoint: Option<&'a Endpoint>,
    /// The probe reads a source of truth (`expect.fresh` applies).
    pub freshness: bool,
    /// The suite's endpoints (judges and embeddings are endpoints of the suite).
    pub endpoints: Option<&'a BTreeMap<String, Arc<Endpoint>>>,
    /// The probe's `judge` (checked by the probe; cases inherit it).
    pub judge: Option<&'a RawJudge>,
    /// The probe's `similar`.
    pub similar: Option<&'a RawSimilar>,
    /// The suite file's folder (a probe's `rubric_file` is relative to it).
    pub suite_dir: Option<&'a Path>,
    /// The probe writes a canary fact (conversations cannot).
    pub canary_fact: bool,
}

/// Most samples a judge may be asked for one answer.
pub const MAX_JUDGE_SAMPLES: u32 = 15;

/// Default similarity threshold (cosine).
pub const DEFAULT_SIMILAR_THRESHOLD: f64 = 0.8;

/// Most user turns of one conversation case.
pub const MAX_TURNS: usize = 32;

/// Validates and compiles one case; pushes its errors to `diags`.
pub fn compile_case(
    raw: RawCase,
    line: usize,
    text: &str,
    file: &Path,
    cx: &ProbeContext,
    diags: &mut Vec<Diagnostic>,
) -> Option<Case> {
    let before = diags.len();
    let mut local: Vec<Diagnostic> = Vec::new();
    let mut err = |key: &str, field: &str, message: String, hint: Option<String>| {
        local.push(
            Diagnostic::new(
                file,
                Some(col_of(text, line, key)),
                field.to_string(),
                message,
            )
            .maybe_hint(hint),
        );
    };
    if raw.id.trim().is_empty() {
        err("id", "case.id", "case id must not be empty".into(), None);
    }
    let slice = raw.slice.unwrap_or_else(|| DEFAULT_SLICE.to_string());
    if slice.trim().is_empty()
        || slice.chars().count() > MAX_SLICE_LEN
        || slice.chars().any(char::is_control)
    {
        err(
            "slice",
            "case.slice",
            format!("slice must be 1 to {MAX_SLICE_LEN} printable characters"),
            Some("slices are label values, e.g. `detector=presidio` or `multi-step`".into()),
        );
    }
    if slice == "*" {
        err(
            "slice",
            "case.slice",
            "`*` is reserved for the aggregate over all slices".into(),
            None,
        );
    }
    if !(raw.input.is_object() || raw.input.is_null()) {
        err(
            "input",
            "case.input",
            "`input` must be a JSON object".into(),
            Some("e.g. {\"body\": {...}} for http-json".into()),
        );
    }
    let mut input = raw.input;
    let expect = compile_expect(raw.expect, "case.expect", line, text, file, cx, true, diags);
    let turns = compile_turns(&mut input, line, text, file, cx, diags);
    if let Some(ep) = cx.endpoint {
        let get_audio = ep.protocol == Protocol::HttpAudio && ep.method == http::Method::GET;
        if let Some(voice) = ep.voice().filter(|_| !get_audio) {
            for problem in voice_input(ep.protocol, voice, &mut input, file) {
                err("input", "case.input", problem.0, Some(problem.1));
            }
        }
        if !turns.is_empty() && !ep.protocol.is_chat() {
            err(
                "turns",
                "case.input.turns",
                format!(
                    "a conversation needs a chat protocol; endpoint `{}` is `{}`",
                    ep.name,
                    ep.protocol.as_str()
                ),
                Some(
                    "openai-chat, openai-responses, anthropic-messages or a described stream"
                        .into(),
                ),
            );
        }
        if ep.protocol.is_chat() && input.get("turns").is_none() {
            let i = &input;
            let ok = i
                .get("messages")
                .is_some_and(|m| m.as_array().is_some_and(|a| !a.is_empty()))
                || i.get("text").is_some_and(|t| t.is_string())
                || i.get("prompt").is_some_and(|t| t.is_string())
                || i.get("body").is_some_and(|b| b.is_object());
            if !ok {
                err(
                    "input",
                    "case.input",
                    format!("a `{}` case needs `input.messages`, `input.text`, `input.prompt` or `input.body`", ep.protocol.as_str()),
                    Some("e.g. {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} or {\"text\": \"...\"}".into()),
                );
            }
        }
        if expect.not_escalated.is_some()
            && ep.escalation.is_none()
            && ep.escalation_phrases.is_none()
        {
            err(
                "not_escalated",
                "case.expect.not_escalated",
                format!("`not_escalated` needs `escalation` on endpoint `{}`", ep.name),
                Some("e.g. `escalation: { json: \"$.escalated\" }` or `{ json: \"$.answer\", regex: \"(?i)human agent\" }`".into()),
            );
        }
        if !expect.tier.is_empty() && ep.tier.is_none() {
            err(
                "tier",
                "case.expect.tier",
                format!("`tier` needs `tier` on endpoint `{}`", ep.name),
                Some("e.g. `tier: { json: \"$.model\" }`".into()),
            );
        }
        if !expect.transcript_contains.is_empty() && !ep.protocol.is_voice() {
            err(
                "transcript_contains",
                "case.expect.transcript_contains",
                format!(
                    "`transcript_contains` needs a voice protocol; endpoint `{}` is `{}`",
                    ep.name,
                    ep.protocol.as_str()
                ),
                Some(format!(
                    "voice protocols: {}",
                    list(&["ws-opus", "realtime", "http-audio", "ws-json-audio"])
                )),
            );
        }
    }
    if !turns.is_empty() && (cx.freshness || cx.canary_fact) {
        err(
            "turns",
            "case.input.turns",
            "a conversation is not judged for freshness; the probe reads a source of truth".into(),
            Some("put conversations in a probe without `freshness` or `canary_fact`".into()),
        );
    }
    if expect.fresh.is_some() && !cx.freshness {
        err(
            "fresh",
            "case.expect.fresh",
            "`fresh` needs the probe to declare `freshness: { truth: ... }`".into(),
            Some("freshness: { truth: { url: \"${RAG_URL}/truth/facts/{key}\", value: \"$.value\", updated_at: \"$.updated_at\" } }".into()),
        );
    }
    diags.extend(local);
    if diags.len() > before {
        return None;
    }
    Some(Case {
        id: raw.id,
        slice,
        input: if input.is_null() {
            Value::Object(Default::default())
        } else {
            input
        },
        expect,
        line,
        turns,
    })
}

/// Compiles an `expect` object (a case's or a turn's); `field` names it in errors. With
/// `inherit`, the probe's `judge` and `similar` apply without the case asking.
#[allow(clippy::too_many_arguments)]
fn compile_expect(
    e: RawExpect,
    field: &str,
    line: usize,
    text: &str,
    file: &Path,
    cx: &ProbeContext,
    inherit: bool,
    diags: &mut Vec<Diagnostic>,
) -> Expect {
    let mut err = |key: &str, message: String, hint: Option<String>| {
        diags.push(
            Diagnostic::new(
                file,
                Some(col_of(text, line, key)),
                format!("{field}.{key}"),
                message,
            )
            .maybe_hint(hint),
        );
    };
    let mut expect = Expect {
        equals: e.equals,
        contains: e.contains.map(|c| c.0).unwrap_or_default(),
        contains_any: e.contains_any.map(|c| c.0).unwrap_or_default(),
        min_chars: e.min_chars,
        max_chars: e.max_chars,
        not_escalated: e.not_escalated,
        fresh: e.fresh,
        transcript_contains: e.transcript_contains.map(|c| c.0).unwrap_or_default(),
        tier: e.tier.map(|c| c.0).unwrap_or_default(),
        reference: e.reference,
        ..Expect::default()
    };
    for (key, src, slot) in [
        ("regex", e.regex, &mut expect.regex),
        ("not_regex", e.not_regex, &mut expect.not_regex),
    ] {
        if let Some(r) = src {
            match compile_regex(&r) {
                Ok(re) => *slot = Some(re),
                Err(m) => err(key, m, None),
            }
        }
    }
    for (path, value) in e.json.unwrap_or_default() {
        match compile_expect_path(&path) {
            Ok(jp) => expect.json.push((path, jp, value)),
            Err(m) => err("json", m, None),
        }
    }
    if let Some(s) = e.schema {
        let dir = file.parent().unwrap_or(Path::new("."));
        match load_schema(dir, &s) {
            Ok(sc) => expect.schema = Some(sc),
            Err((m, h)) => err("schema", m, Some(h)),
        }
    }
    if let (Some(min), Some(max)) = (expect.min_chars, expect.max_chars) {
        if min > max {
            err(
                "min_chars",
                format!("min_chars {min} is more than max_chars {max}"),
                None,
            );
        }
    }
    // The judge: the probe's, with the case's settings over it; `false` turns it off.
    let case_judge = match e.judge {
        None => Some(RawJudge::default()).filter(|_| inherit && cx.judge.is_some()),
        Some(RawCaseJudge::On(false)) => None,
        Some(RawCaseJudge::On(true)) => Some(RawJudge::default()),
        Some(RawCaseJudge::Rubric(r)) => Some(RawJudge {
            rubric: Some(r),
            ..RawJudge::default()
        }),
        Some(RawCaseJudge::Settings(j)) => Some(j),
    };
    if let Some(j) = case_judge {
        let golden_dir = file.parent().unwrap_or(Path::new("."));
        match resolve_judge(&j, cx, golden_dir) {
            Ok(spec) => expect.judge = Some(Arc::new(spec)),
            Err((m, h)) => err("judge", m, Some(h)),
        }
    }
    let case_similar = match e.similar {
        None => cx
            .similar
            .filter(|_| inherit && expect.reference.is_some())
            .map(|_| RawSimilar::default()),
        Some(RawCaseSimilar::On(false)) => None,
        Some(RawCaseSimilar::On(true)) => Some(RawSimilar::default()),
        Some(RawCaseSimilar::Threshold(t)) => Some(RawSimilar {
            threshold: Some(t),
            ..RawSimilar::default()
        }),
        Some(RawCaseSimilar::Settings(s)) => Some(s),
    };
    if let Some(sim) = case_similar {
        if expect.reference.is_none() {
            err(
                "similar",
                "`similar` compares the answer with `expect.reference`, and the case has none"
                    .into(),
                Some("add e.g. \"reference\": \"Paris is the capital of France.\"".into()),
            );
        } else {
            match resolve_similar(&sim, cx) {
                Ok(spec) => expect.similar = Some(spec),
                Err((m, h)) => err("similar", m, Some(h)),
            }
        }
    }
    match e.label.as_deref() {
        None => {}
        Some("pass") => expect.label = Some(true),
        Some("fail") => expect.label = Some(false),
        Some(other) => err(
            "label",
            format!("label `{other}` is neither `pass` nor `fail`"),
            Some("a human's verdict on the answer: `pass` or `fail`".into()),
        ),
    }
    if expect.label.is_some() && expect.judge.is_none() {
        err(
            "label",
            "`label` grades the judge, and this case has no judge".into(),
            Some("add `judge` to the probe or `\"judge\": true` to the case".into()),
        );
    }
    expect
}

/// A judge's settings resolved against the probe's: the endpoint (a chat endpoint of the
/// suite), the rubric (inline or a file), threshold, samples and temperature.
fn resolve_judge(
    j: &RawJudge,
    cx: &ProbeContext,
    golden_dir: &Path,
) -> Result<JudgeSpec, (String, String)> {
    let probe = cx.judge.cloned().unwrap_or_default();
    let name = j.endpoint.clone().or(probe.endpoint.clone()).ok_or_else(|| {
        (
            "the judge names no endpoint".to_string(),
            "set `judge: { endpoint: NAME, rubric: ... }` on the probe, or `endpoint` in the case's `judge`".to_string(),
        )
    })?;
    let endpoints = cx.endpoints.ok_or_else(|| {
        (
            format!("unknown judge endpoint `{name}`"),
            "the judge is an endpoint of the suite".to_string(),
        )
    })?;
    let endpoint = endpoints.get(&name).cloned().ok_or_else(|| {
        let names: Vec<&str> = endpoints.keys().map(String::as_str).collect();
        (
            format!("unknown judge endpoint `{name}`"),
            super::diag::suggest(&name, &names),
        )
    })?;
    if !endpoint.protocol.is_chat() {
        return Err((
            format!(
                "the judge endpoint `{name}` is `{}`; a judge is asked through a chat protocol",
                endpoint.protocol.as_str()
            ),
            "openai-chat, openai-responses, anthropic-messages or a described stream".into(),
        ));
    }
    let rubric = match (&j.rubric, &j.rubric_file, &probe.rubric, &probe.rubric_file) {
        (Some(r), _, _, _) => r.clone(),
        (None, Some(f), _, _) => read_rubric(&golden_dir.join(f))?,
        (None, None, Some(r), _) => r.clone(),
        (None, None, None, Some(f)) => {
            read_rubric(&cx.suite_dir.unwrap_or(Path::new(".")).join(f))?
        }
        (None, None, None, None) => return Err((
            "the judge has no rubric".into(),
            "set `rubric: \"...\"` or `rubric_file: PATH` on the probe's `judge` or in the case"
                .into(),
        )),
    };
    if rubric.trim().is_empty() {
        return Err((
            "the judge's rubric is empty".into(),
            "say what a good answer does".into(),
        ));
    }
    let threshold = j.threshold.or(probe.threshold);
    if let Some(t) = threshold.filter(|t| !(0.0..=1.0).contains(t) || t.is_nan()) {
        return Err((
            format!("judge threshold {t} is not between 0 and 1"),
            "a verdict's score is in 0..1; e.g. `threshold: 0.7`".into(),
        ));
    }
    let samples = j.samples.or(probe.samples).unwrap_or(1);
    if samples == 0 || samples > MAX_JUDGE_SAMPLES {
        return Err((
            format!("judge samples {samples} is not 1 to {MAX_JUDGE_SAMPLES}"),
            "an odd number avoids ties, e.g. `samples: 3`".into(),
        ));
    }
    let temperature = j.temperature.or(probe.temperature);
    if let Some(t) = temperature.filter(|t| !(0.0..=2.0).contains(t) || t.is_nan()) {
        return Err((
            format!("judge temperature {t} is not between 0 and 2"),
            "e.g. `temperature: 0`".into(),
        ));
    }
    Ok(JudgeSpec {
        endpoint,
        rubric,
        threshold,
        samples,
        temperature,
    })
}

/// Longest rubric file read.
const MAX_RUBRIC_BYTES: u64 = 64 * 1024;

fn read_rubric(path: &Path) -> Result<String, (String, String)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        (
            format!("cannot read rubric file `{}`: {e}", path.display()),
            "paths are relative to the file that names them".to_string(),
        )
    })?;
    if !meta.is_file() || meta.len() > MAX_RUBRIC_BYTES {
        return Err((
            format!(
                "rubric file `{}` is not a text file of at most 64 KiB",
                path.display()
            ),
            "a rubric is a few sentences of plain text".into(),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| {
        (
            format!("cannot read rubric file `{}`: {e}", path.display()),
            "a UTF-8 text file".to_string(),
        )
    })
}

fn resolve_similar(s: &RawSimilar, cx: &ProbeContext) -> Result<SimilarSpec, (String, String)> {
    let probe = cx.similar.cloned().unwrap_or_default();
    let name = s.endpoint.clone().or(probe.endpoint.clone()).ok_or_else(|| {
        (
            "`similar` names no embeddings endpoint".to_string(),
            "set `similar: { endpoint: NAME }` on the probe, or `endpoint` in the case's `similar`".to_string(),
        )
    })?;
    let endpoints = cx.endpoints.ok_or_else(|| {
        (
            format!("unknown embeddings endpoint `{name}`"),
            "the embeddings endpoint is an endpoint of the suite".to_string(),
        )
    })?;
    let endpoint = endpoints.get(&name).cloned().ok_or_else(|| {
        let names: Vec<&str> = endpoints.keys().map(String::as_str).collect();
        (
            format!("unknown embeddings endpoint `{name}`"),
            super::diag::suggest(&name, &names),
        )
    })?;
    if endpoint.protocol != Protocol::HttpJson {
        return Err((
            format!(
                "the embeddings endpoint `{name}` is `{}`; embeddings are asked with `http-json`",
                endpoint.protocol.as_str()
            ),
            "protocol: http-json, method: POST, url: .../v1/embeddings".into(),
        ));
    }
    let threshold = s
        .threshold
        .or(probe.threshold)
        .unwrap_or(DEFAULT_SIMILAR_THRESHOLD);
    if !(-1.0..=1.0).contains(&threshold) || threshold.is_nan() {
        return Err((
            format!("similarity threshold {threshold} is not between -1 and 1"),
            "a cosine similarity; e.g. `threshold: 0.8`".into(),
        ));
    }
    Ok(SimilarSpec {
        endpoint,
        threshold,
    })
}

/// Reads `input.turns` (a conversation): each turn's user text, `expect` and canned tool
/// results; the case's `input.tool_results` answer tool calls no turn answers.
fn compile_turns(
    input: &mut Value,
    line: usize,
    text: &str,
    file: &Path,
    cx: &ProbeContext,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Turn> {
    let Some(raw) = input.get("turns").cloned() else {
        return Vec::new();
    };
    let err =
        |field: String, message: String, hint: Option<String>, diags: &mut Vec<Diagnostic>| {
            diags.push(
                Diagnostic::new(file, Some(col_of(text, line, "turns")), field, message)
                    .maybe_hint(hint),
            );
        };
    let shared: serde_json::Map<String, Value> = match input.get("tool_results") {
        None => Default::default(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            err(
                "case.input.tool_results".into(),
                "`tool_results` must be an object: tool name -> result".into(),
                Some("e.g. {\"get_weather\": {\"temp_c\": 21}}".into()),
                diags,
            );
            Default::default()
        }
    };
    let Some(list) = raw
        .as_array()
        .filter(|l| !l.is_empty() && l.len() <= MAX_TURNS)
    else {
        err(
            "case.input.turns".into(),
            format!("`turns` must be a list of 1 to {MAX_TURNS} turns"),
            Some("e.g. [{\"user\": \"What is the capital of France?\"}, {\"user\": \"And its population?\"}]".into()),
            diags,
        );
        return Vec::new();
    };
    let mut turns = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let field = format!("case.input.turns[{i}]");
        let rt: RawTurn = match serde_json::from_value(t.clone()) {
            Ok(rt) => rt,
            Err(e) => {
                err(
                    field,
                    e.to_string(),
                    Some(
                        "a turn is {\"user\": \"...\", \"expect\": {...}, \"tool_results\": {...}}"
                            .into(),
                    ),
                    diags,
                );
                continue;
            }
        };
        if rt.user.trim().is_empty() {
            err(
                format!("{field}.user"),
                "a turn's `user` text is empty".into(),
                None,
                diags,
            );
        }
        // The probe's judge and similarity grade the whole conversation; a turn is judged
        // when its own `expect` asks.
        let expect = compile_expect(
            rt.expect,
            &format!("{field}.expect"),
            line,
            text,
            file,
            cx,
            false,
            diags,
        );
        let mut tool_results = shared.clone();
        for (k, v) in rt.tool_results.unwrap_or_default() {
            tool_results.insert(k, v);
        }
        turns.push(Turn {
            user: rt.user,
            expect,
            tool_results,
        });
    }
    turns
}

/// Checks a voice case's input against its endpoint: the fields the `start` template names
/// (ws-opus), text or a readable WAV file at the session's rate (realtime). A WAV path is
/// made absolute (relative to the golden file). Returns (message, hint) pairs.
fn voice_input(
    protocol: Protocol,
    voice: &crate::suite::VoiceSpec,
    input: &mut Value,
    file: &Path,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match protocol {
        Protocol::HttpAudio if !input.get("body").is_some_and(Value::is_object) => {
            out.push((
                "an `http-audio` case needs `input.body` (the JSON request, as for `http-json`)".into(),
                "e.g. {\"body\": {\"model\": \"tts-1\", \"input\": \"Hello\", \"voice\": \"alloy\"}}".into(),
            ));
        }
        Protocol::WsOpus | Protocol::WsJsonAudio => {
            for field in crate::suite::template::input_fields(&voice.start) {
                let path = field.trim_start_matches("input.");
                let mut v = Some(&*input);
                for seg in path.split('.') {
                    v = v.and_then(|x| x.get(seg));
                }
                if v.is_none() {
                    out.push((
                        format!("the endpoint's `start` uses `{{{{{field}}}}}` but the case has no `{field}`"),
                        format!("add `\"{path}\"` to the case's input"),
                    ));
                }
            }
        }
        Protocol::Realtime => {
            let has_text = input.get("text").is_some_and(Value::is_string)
                || input.get("prompt").is_some_and(Value::is_string);
            match input.get("audio") {
                Some(Value::String(p)) => {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    let full = dir.join(p);
                    match crate::audio::input::read_input(
                        &full.to_string_lossy(),
                        voice.audio_format,
                    ) {
                        Ok(_) => {
                            if let Some(o) = input.as_object_mut() {
                                o.insert(
                                    "audio".into(),
                                    Value::String(full.to_string_lossy().into_owned()),
                                );
                            }
                        }
                        Err(e) => out.push((
                            e.to_string(),
                            format!(
                                "a mono 16-bit WAV at {} Hz, relative to the golden file",
                                voice.audio_format.rate()
                            ),
                        )),
                    }
                }
                Some(_) => out.push((
                    "`input.audio` must be a WAV file path".into(),
                    "e.g. \"audio\": \"audio/hello.wav\"".into(),
                )),
                None if !has_text => out.push((
                    "a realtime case needs `input.text` or `input.audio`".into(),
                    "e.g. {\"text\": \"What time is it?\"}".into(),
                )),
                None => {}
            }
        }
        _ => {}
    }
    out
}
