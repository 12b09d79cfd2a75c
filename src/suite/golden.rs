//! Golden sets: JSONL files with one case per line. Errors name the file, the line and,
//! where it can be found, the column of the offending key.

use std::path::Path;

use serde_json::Value;

use super::diag::{list, Diagnostic};
use super::model::{Case, Endpoint, Expect, Protocol};
use super::raw::RawCase;
use super::validate::{compile_expect_path, compile_regex, load_schema};
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
            if remove.is_empty() || !super::validate::remove_at(&mut value, &remove) {
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
pub struct ProbeContext<'a> {
    pub endpoint: Option<&'a Endpoint>,
    /// The probe reads a source of truth (`expect.fresh` applies).
    pub freshness: bool,
}

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
    let mut err = |key: &str, field: &str, message: String, hint: Option<String>| {
        diags.push(
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
    let e = raw.expect;
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
        ..Expect::default()
    };
    for (key, src, slot) in [
        ("regex", e.regex, &mut expect.regex),
        ("not_regex", e.not_regex, &mut expect.not_regex),
    ] {
        if let Some(r) = src {
            match compile_regex(&r) {
                Ok(re) => *slot = Some(re),
                Err(m) => err(key, &format!("case.expect.{key}"), m, None),
            }
        }
    }
    for (path, value) in e.json.unwrap_or_default() {
        match compile_expect_path(&path) {
            Ok(jp) => expect.json.push((path, jp, value)),
            Err(m) => err("json", "case.expect.json", m, None),
        }
    }
    if let Some(s) = e.schema {
        let dir = file.parent().unwrap_or(Path::new("."));
        match load_schema(dir, &s) {
            Ok(sc) => expect.schema = Some(sc),
            Err((m, h)) => err("schema", "case.expect.schema", m, Some(h)),
        }
    }
    if let (Some(min), Some(max)) = (expect.min_chars, expect.max_chars) {
        if min > max {
            err(
                "min_chars",
                "case.expect.min_chars",
                format!("min_chars {min} is more than max_chars {max}"),
                None,
            );
        }
    }
    let mut input = raw.input;
    if let Some(ep) = cx.endpoint {
        let get_audio = ep.protocol == Protocol::HttpAudio && ep.method == http::Method::GET;
        if let Some(voice) = ep.voice.as_ref().filter(|_| !get_audio) {
            for problem in voice_input(ep.protocol, voice, &mut input, file) {
                err("input", "case.input", problem.0, Some(problem.1));
            }
        }
        if ep.protocol.is_chat() {
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
    if expect.fresh.is_some() && !cx.freshness {
        err(
            "fresh",
            "case.expect.fresh",
            "`fresh` needs the probe to declare `freshness: { truth: ... }`".into(),
            Some("freshness: { truth: { url: \"${RAG_URL}/truth/facts/{key}\", value: \"$.value\", updated_at: \"$.updated_at\" } }".into()),
        );
    }
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
    })
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
