//! Stream descriptions: the `stream:` key of an endpoint (`protocol: stream`, or overrides on
//! a built-in such as `protocol: gemini`), description files (`stream: { file: ... }`,
//! `extends:`), and the built-in descriptions shipped in `protocols/` (embedded, so the
//! binary works anywhere). Each layer is checked where it was written, so a mistake is
//! reported at its own file and line with the fix; layers merge key by key (a later layer's
//! `events`, `terminator`, `error` or `request.body` replaces the earlier one, request
//! headers add up).

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::ctx::{collect, k, p, Ctx};
use super::diag::{list, suggest, Diagnostic};
use super::units::OneOrMany;
use super::yaml::{self, Seg};
use super::Protocol;
use crate::check::extract::compile_path;
use crate::drivers::stream::spec::{Cond, ErrorRule, Path, RequestSpec, Rule, StreamSpec, Test};
use crate::drivers::stream::Framing;

/// The built-in descriptions: name, file in the repository, text.
pub const BUILTINS: &[(&str, &str, &str)] = &[
    (
        "gemini",
        "protocols/gemini.yaml",
        include_str!("../../protocols/gemini.yaml"),
    ),
    (
        "ollama",
        "protocols/ollama.yaml",
        include_str!("../../protocols/ollama.yaml"),
    ),
    (
        "tgi",
        "protocols/tgi.yaml",
        include_str!("../../protocols/tgi.yaml"),
    ),
    (
        "bedrock-converse",
        "protocols/bedrock-converse.yaml",
        include_str!("../../protocols/bedrock-converse.yaml"),
    ),
    (
        "openai-speech",
        "protocols/openai-speech.yaml",
        include_str!("../../protocols/openai-speech.yaml"),
    ),
];

const FRAMINGS: &[&str] = &["sse", "ndjson", "json-seq", "aws-eventstream"];

/// How deep `extends` and `file` may nest (a cycle stops here).
const MAX_DEPTH: usize = 8;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesc {
    name: Option<String>,
    /// Free text for the reader (`canary protocols --show`); not interpreted.
    #[allow(dead_code)]
    description: Option<String>,
    extends: Option<String>,
    file: Option<String>,
    framing: Option<String>,
    request: Option<RawRequest>,
    events: Option<Vec<RawRule>>,
    terminator: Option<Value>,
    error: Option<RawError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCond {
    event: Option<String>,
    data: Option<String>,
    json: Option<String>,
    equals: Option<Value>,
    not_equals: Option<Value>,
    exists: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    when: Option<RawCond>,
    text: Option<OneOrMany>,
    reasoning: Option<OneOrMany>,
    tool: Option<OneOrMany>,
    model: Option<OneOrMany>,
    finish: Option<OneOrMany>,
    usage: Option<RawUsage>,
    /// Base64 audio (`http-audio`, `ws-json-audio`).
    audio: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    input: Option<OneOrMany>,
    output: Option<OneOrMany>,
    reasoning: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawError {
    #[serde(rename = "match")]
    when: Option<RawCond>,
    message: Option<OneOrMany>,
    code: Option<OneOrMany>,
    rate_limited: Option<OneOrMany>,
}

/// One layer, compiled; `None` fields are inherited.
#[derive(Debug, Default)]
struct Layer {
    name: Option<String>,
    framing: Option<Framing>,
    method: Option<http::Method>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Option<Value>,
    rules: Option<Vec<Rule>>,
    terminator: Option<Option<(Cond, String)>>,
    error: Option<ErrorRule>,
}

impl Layer {
    fn over(mut self, top: Layer) -> Layer {
        self.name = top.name.or(self.name);
        self.framing = top.framing.or(self.framing);
        self.method = top.method.or(self.method);
        for (n, v) in top.headers {
            self.headers.retain(|(h, _)| *h != n);
            self.headers.push((n, v));
        }
        self.body = top.body.or(self.body);
        self.rules = top.rules.or(self.rules);
        self.terminator = top.terminator.or(self.terminator);
        self.error = top.error.or(self.error);
        self
    }
}

/// The built-in description of `name`, if there is one.
pub fn builtin(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, f, t)| (*f, *t))
}

/// Compiles a description text on its own (a built-in or a file), for `canary protocols` and
/// tests; errors carry `file`'s lines.
pub fn compile_text(file: &FsPath, text: &str) -> Result<StreamSpec, Vec<Diagnostic>> {
    let tree = parse_tree(file, text)?;
    let mut ctx = Ctx {
        file,
        tree: &tree,
        diags: Vec::new(),
        warnings: Vec::new(),
    };
    let layer = layer_of(tree.to_json(), &[], &mut ctx, 0);
    let origin = file.display().to_string();
    let spec = layer.and_then(|l| finish(l, origin, Want::Any, &[], &mut ctx));
    match spec {
        Some(s) if ctx.diags.is_empty() => Ok(s),
        _ => Err(ctx.diags),
    }
}

/// The compiled built-in `name` (a bug in canary if it does not compile).
pub fn builtin_spec(name: &str) -> Option<Result<StreamSpec, Vec<Diagnostic>>> {
    let (file, text) = builtin(name)?;
    Some(compile_text(FsPath::new(file), text).map(|mut s| {
        s.origin = format!("built-in ({file})");
        s
    }))
}

fn parse_tree(file: &FsPath, text: &str) -> Result<yaml::Node, Vec<Diagnostic>> {
    yaml::parse(text).map_err(|e| {
        vec![Diagnostic::new(
            file,
            Some(e.pos),
            "(syntax)",
            format!("invalid YAML: {}", e.message),
        )]
    })
}

/// Builds the stream description of an endpoint: the built-in of its protocol (if any) with
/// the endpoint's `stream:` on top. Reports every problem at its file and line.
pub(crate) fn build(
    protocol: Protocol,
    stream: Option<&Value>,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Arc<StreamSpec>> {
    let spath = p(path, &[k("stream")]);
    let mut base = Layer::default();
    let mut origin = "suite".to_string();
    if protocol.is_described() && protocol != Protocol::Stream {
        let (file, text) = builtin(protocol.as_str())?;
        base = load_file(FsPath::new(file), text, ctx, 0)?;
        origin = format!("built-in ({file})");
    }
    let top = match stream {
        None if protocol == Protocol::Stream => {
            ctx.err(path, "missing required key `stream` for protocol `stream`")
                .hint = Some("describe the stream, e.g. `stream: { framing: ndjson, events: [{ text: $.delta }], terminator: { json: $.done, equals: true } }`, or `stream: { file: ./my-protocol.yaml }`".into());
            return None;
        }
        None if protocol == Protocol::WsJsonAudio => {
            ctx.err(path, "missing required key `stream` for protocol `ws-json-audio`")
                .hint = Some("say where the audio is, e.g. `stream: { events: [{ audio: $.audio, text: $.text }], terminator: { json: $.isFinal, equals: true }, error: { match: { json: $.error }, message: $.error } }`".into());
            return None;
        }
        None => Layer::default(),
        Some(v @ Value::Object(_)) => {
            if let Some(f) = v.get("file").and_then(Value::as_str) {
                origin = f.to_string();
            } else if protocol == Protocol::Stream {
                if let Some(e) = v.get("extends").and_then(Value::as_str) {
                    origin = format!("suite (extends {e})");
                }
            }
            layer_of(v.clone(), &spath, ctx, 0)?
        }
        Some(_) => {
            ctx.err(&spath, "`stream` must be a stream description (a map)")
                .hint = Some("e.g. `stream: { framing: ndjson, events: [{ text: $.delta }] }`; `stream: true/false` applies to the chat protocols".into());
            return None;
        }
    };
    let merged = base.over(top);
    let want = match protocol {
        Protocol::HttpAudio => Want::Audio { framing: true },
        Protocol::WsJsonAudio => Want::Audio { framing: false },
        _ => Want::Text,
    };
    finish(merged, origin, want, &spath, ctx).map(Arc::new)
}

fn load_file(file: &FsPath, text: &str, ctx: &mut Ctx, depth: usize) -> Option<Layer> {
    let tree = match parse_tree(file, text) {
        Ok(t) => t,
        Err(d) => {
            ctx.diags.extend(d);
            return None;
        }
    };
    let mut sub = Ctx {
        file,
        tree: &tree,
        diags: Vec::new(),
        warnings: Vec::new(),
    };
    let layer = layer_of(tree.to_json(), &[], &mut sub, depth + 1);
    let failed = !sub.diags.is_empty();
    ctx.diags.extend(sub.diags);
    ctx.warnings.extend(sub.warnings);
    if failed {
        None
    } else {
        layer
    }
}

/// The layers a description stands on (`extends`, `file`), then its own keys on top.
fn layer_of(v: Value, path: &[Seg], ctx: &mut Ctx, depth: usize) -> Option<Layer> {
    let before = ctx.diags.len();
    let raw: RawDesc = collect(v, path, ctx)?;
    let mut base = Layer::default();
    if raw.file.is_some() && raw.extends.is_some() {
        ctx.err(path, "give either `file` or `extends`, not both")
            .hint =
            Some("`file` loads a description; `extends` starts from one and changes keys".into());
    }
    for (key, target) in [("extends", &raw.extends), ("file", &raw.file)] {
        let Some(target) = target else { continue };
        let kpath = p(path, &[k(key)]);
        if depth >= MAX_DEPTH {
            ctx.err(
                &kpath,
                format!("descriptions nest more than {MAX_DEPTH} deep (a cycle?)"),
            );
            return None;
        }
        if let Some((file, text)) = builtin(target) {
            base = load_file(FsPath::new(file), text, ctx, depth)?;
            continue;
        }
        if key == "extends" && !looks_like_file(target) {
            let names: Vec<&str> = BUILTINS.iter().map(|b| b.0).collect();
            ctx.err(&kpath, format!("unknown protocol `{target}` to extend"))
                .hint = Some(format!(
                "{}; or a description file such as `./my-protocol.yaml`",
                suggest(target, &names)
            ));
            return None;
        }
        let file: PathBuf = ctx.dir().join(target);
        match read_description(&file) {
            Ok(text) => base = load_file(&file, &text, ctx, depth)?,
            Err(e) => {
                ctx.err(&kpath, format!("cannot read `{}`: {e}", file.display()))
                    .hint = Some("paths are relative to the file that names them".into());
                return None;
            }
        }
    }
    let own = own_layer(raw, path, ctx);
    if ctx.diags.len() > before {
        return None;
    }
    Some(base.over(own))
}

/// The most a description file may hold.
const MAX_FILE: u64 = 1 << 20;

/// Reads a description file: a regular file of at most 1 MiB (not a device or a FIFO).
fn read_description(file: &FsPath) -> std::io::Result<String> {
    let meta = std::fs::metadata(file)?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "not a regular file of at most {MAX_FILE} bytes"
        )));
    }
    std::fs::read_to_string(file)
}

fn looks_like_file(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json")
}

fn paths(v: Option<OneOrMany>, path: &[Seg], ctx: &mut Ctx) -> Vec<Path> {
    let mut out = Vec::new();
    for text in v.map(|o| o.0).unwrap_or_default() {
        match compile(&text) {
            Ok(pth) => out.push(pth),
            Err(e) => {
                ctx.err(path, e);
            }
        }
    }
    out
}

/// Compiles a JSONPath; `a.b` is accepted for `$.a.b`.
fn compile(text: &str) -> Result<Path, String> {
    let full = if text.starts_with('$') {
        text.to_string()
    } else {
        format!("$.{text}")
    };
    Ok(Path {
        path: compile_path(&full)?,
        text: text.to_string(),
    })
}

fn cond(raw: RawCond, path: &[Seg], ctx: &mut Ctx) -> Option<Cond> {
    let mut c = Cond {
        event: raw.event,
        data: raw.data,
        json: None,
    };
    let tests = [
        raw.equals.is_some(),
        raw.not_equals.is_some(),
        raw.exists.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if tests > 1 {
        ctx.err(path, "give one of `equals`, `not_equals` or `exists`");
    }
    match raw.json {
        Some(j) => match compile(&j) {
            Ok(pth) => {
                let test = if let Some(v) = raw.equals {
                    Test::Equals(v)
                } else if let Some(v) = raw.not_equals {
                    Test::NotEquals(v)
                } else {
                    Test::Exists(raw.exists.unwrap_or(true))
                };
                c.json = Some((pth, test));
            }
            Err(e) => {
                ctx.err(&p(path, &[k("json")]), e);
            }
        },
        None => {
            if tests > 0 {
                ctx.err(
                    path,
                    "`equals`, `not_equals` and `exists` test a `json` path",
                )
                .hint = Some("e.g. `{ json: $.done, equals: true }`".into());
            }
        }
    }
    if c.event.is_none() && c.data.is_none() && c.json.is_none() {
        ctx.err(path, "a condition needs `event`, `data` or `json`").hint = Some(
            "e.g. `{ event: message_stop }`, `{ data: \"[DONE]\" }` or `{ json: $.done, equals: true }`".into(),
        );
        return None;
    }
    Some(c)
}

fn describe(c: &Cond) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &c.event {
        parts.push(format!("event {e}"));
    }
    if let Some(d) = &c.data {
        parts.push(format!("data {d}"));
    }
    if let Some((pth, t)) = &c.json {
        parts.push(match t {
            Test::Exists(true) => pth.text.clone(),
            Test::Exists(false) => format!("no {}", pth.text),
            Test::Equals(v) => format!("{} == {v}", pth.text),
            Test::NotEquals(v) => format!("{} != {v}", pth.text),
        });
    }
    parts.join(" and ")
}

fn own_layer(raw: RawDesc, path: &[Seg], ctx: &mut Ctx) -> Layer {
    let mut l = Layer {
        name: raw.name,
        ..Default::default()
    };
    if let Some(f) = raw.framing {
        match Framing::parse(&f) {
            Some(fr) => l.framing = Some(fr),
            None => {
                ctx.err(&p(path, &[k("framing")]), format!("unknown framing `{f}`"))
                    .hint = Some(format!(
                    "{} valid: {}",
                    suggest(&f, FRAMINGS),
                    list(FRAMINGS)
                ));
            }
        }
    }
    if let Some(r) = raw.request {
        let rpath = p(path, &[k("request")]);
        if let Some(m) = r.method {
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(meth) if ["GET", "POST", "PUT", "PATCH"].contains(&meth.as_str()) => {
                    l.method = Some(meth)
                }
                _ => {
                    ctx.err(
                        &p(&rpath, &[k("method")]),
                        format!("unknown or unsuitable method `{m}`"),
                    )
                    .hint = Some("valid: GET, POST, PUT, PATCH".into());
                }
            }
        }
        for (n, v) in r.headers {
            let hpath = p(&rpath, &[k("headers"), k(&n)]);
            match (
                http::HeaderName::from_bytes(n.as_bytes()),
                http::HeaderValue::from_str(&v),
            ) {
                (Ok(hn), Ok(hv)) => {
                    if crate::secret::is_sensitive_header(&n) {
                        ctx.err(&hpath, "a description names no credentials")
                            .hint = Some("put credential headers on the endpoint (`headers:`), from ${ENV} or ${file:...}".into());
                    } else {
                        l.headers.push((hn, hv));
                    }
                }
                _ => {
                    ctx.err(&hpath, format!("`{n}: {v}` is not a valid HTTP header"));
                }
            }
        }
        if let Some(b) = r.body {
            if !b.is_object() {
                ctx.err(
                    &p(&rpath, &[k("body")]),
                    "`body` must be a JSON object template",
                )
                .hint = Some("e.g. `body: { prompt: \"{{text}}\", stream: true }`".into());
            }
            l.body = Some(b);
        }
    }
    if let Some(rules) = raw.events {
        let mut out = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let rp = p(path, &[k("events"), Seg::Index(i)]);
            let when = r.when.and_then(|c| cond(c, &p(&rp, &[k("match")]), ctx));
            let (input, output, reasoning) = match r.usage {
                Some(u) => {
                    let up = p(&rp, &[k("usage")]);
                    (
                        paths(u.input, &p(&up, &[k("input")]), ctx),
                        paths(u.output, &p(&up, &[k("output")]), ctx),
                        paths(u.reasoning, &p(&up, &[k("reasoning")]), ctx),
                    )
                }
                None => Default::default(),
            };
            out.push(Rule {
                when,
                text: paths(r.text, &p(&rp, &[k("text")]), ctx),
                reasoning: paths(r.reasoning, &p(&rp, &[k("reasoning")]), ctx),
                tool: paths(r.tool, &p(&rp, &[k("tool")]), ctx),
                model: paths(r.model, &p(&rp, &[k("model")]), ctx),
                finish: paths(r.finish, &p(&rp, &[k("finish")]), ctx),
                input_tokens: input,
                output_tokens: output,
                reasoning_tokens: reasoning,
                audio: paths(r.audio, &p(&rp, &[k("audio")]), ctx),
            });
        }
        l.rules = Some(out);
    }
    if let Some(t) = raw.terminator {
        let tp = p(path, &[k("terminator")]);
        l.terminator = match t {
            Value::String(s) if s == "end_of_body" => Some(None),
            Value::Object(_) => collect::<RawCond>(t, &tp, ctx)
                .and_then(|c| cond(c, &tp, ctx))
                .map(|c| {
                    let d = describe(&c);
                    Some((c, d))
                }),
            _ => {
                ctx.err(&tp, "`terminator` must be a condition or `end_of_body`")
                    .hint = Some("e.g. `terminator: { json: $.done, equals: true }`; `end_of_body` when a clean end of the body completes the stream".into());
                None
            }
        };
    }
    if let Some(e) = raw.error {
        let ep = p(path, &[k("error")]);
        // Without `match`, only exception frames (event stream) are errors.
        let when = e.when.and_then(|c| cond(c, &p(&ep, &[k("match")]), ctx));
        l.error = Some(ErrorRule {
            when,
            message: paths(e.message, &p(&ep, &[k("message")]), ctx),
            code: paths(e.code, &p(&ep, &[k("code")]), ctx),
            rate_limited: e.rate_limited.map(|o| o.0).unwrap_or_default(),
        });
    }
    l
}

/// What a description must say for the protocol reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A file on its own (`canary protocols`, built-ins): text or audio.
    Any,
    /// A text stream: some rule has a `text` path.
    Text,
    /// An audio stream: some rule has an `audio` path; `framing` needed (HTTP) or not (each
    /// WebSocket text message is one unit).
    Audio { framing: bool },
}

fn finish(l: Layer, origin: String, want: Want, path: &[Seg], ctx: &mut Ctx) -> Option<StreamSpec> {
    let framing = match (l.framing, want) {
        (Some(f), _) => f,
        // A WebSocket's text messages are the units; the framing is not used.
        (None, Want::Audio { framing: false }) => Framing::Ndjson,
        (None, _) => {
            ctx.err(path, "the stream description has no `framing`")
                .hint = Some(format!("valid: {}", list(FRAMINGS)));
            return None;
        }
    };
    let rules = l.rules.unwrap_or_default();
    let text = rules.iter().any(|r| !r.text.is_empty());
    let audio = rules.iter().any(|r| !r.audio.is_empty());
    match want {
        Want::Text if !text => {
            ctx.err(
                path,
                "no event rule has a `text` path: nothing would count as the answer",
            )
            .hint =
                Some("e.g. `events: [{ text: $.delta }]` (JSONPath, `$.` may be left out)".into());
            return None;
        }
        // Over a WebSocket the audio may come in binary messages: then the events need only
        // say where the answer ends.
        Want::Audio { framing: false }
            if !audio && l.terminator.as_ref().is_none_or(|t| t.is_none()) =>
        {
            ctx.err(
                path,
                "no event rule has an `audio` path and there is no `terminator`: no event would carry audio, and binary audio would have no end",
            )
            .hint = Some(
                "e.g. `events: [{ audio: $.audio }]`, or for binary audio messages `terminator: { json: $.type, equals: Flushed }`"
                    .into(),
            );
            return None;
        }
        Want::Audio { framing: true } if !audio => {
            ctx.err(
                path,
                "no event rule has an `audio` path: no event would carry audio",
            )
            .hint = Some(
                "e.g. `events: [{ match: { json: $.type, equals: speech.audio.delta }, audio: $.audio }]` (base64 audio; `text` paths are the transcript)"
                    .into(),
            );
            return None;
        }
        Want::Any if !text && !audio => {
            ctx.err(path, "no event rule has a `text` or an `audio` path")
                .hint = Some("e.g. `events: [{ text: $.delta }]`".into());
            return None;
        }
        _ => {}
    }
    let (terminator, terminator_text) = match l.terminator.flatten() {
        Some((c, d)) => (Some(c), d),
        None => (None, "end of body".to_string()),
    };
    Some(StreamSpec {
        name: l.name.unwrap_or_else(|| "stream".into()),
        origin,
        framing,
        request: RequestSpec {
            method: l.method,
            headers: l.headers,
            body: l.body,
        },
        rules,
        terminator,
        error: l.error,
        terminator_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles() {
        for (name, _, _) in BUILTINS {
            let s = builtin_spec(name).unwrap().unwrap_or_else(|d| {
                panic!(
                    "{name}: {}",
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
            assert_eq!(s.name, *name);
        }
    }

    #[test]
    fn audio_paths_carry_base64_audio_and_the_speech_terminator_ends_it() {
        use crate::drivers::chat_events::Piece;
        use crate::drivers::stream::{Unit, UnitKind};
        let spec = builtin_spec("openai-speech").unwrap().unwrap();
        let unit = |data: &str| Unit {
            at: std::time::Instant::now(),
            event: String::new(),
            kind: UnitKind::Event,
            data: data.into(),
        };
        let mut out = Vec::new();
        spec.interpret(
            &unit(r#"{"type":"speech.audio.delta","audio":"AAEC"}"#),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![Piece::Audio("AAEC".into())]);
        out.clear();
        spec.interpret(
            &unit(r#"{"type":"speech.audio.done","usage":{"input_tokens":3,"output_tokens":9}}"#),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.last(), Some(&Piece::Terminator));
        let e = spec
            .interpret(
                &unit(r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.class, crate::timeline::ErrorClass::RateLimited);
    }

    #[test]
    fn bad_descriptions_name_the_line_and_the_fix() {
        let text =
            "name: x\nframing: ndjsn\nevents:\n  - text: \"$[?\"\n    usage: { inputs: a }\n";
        let d = compile_text(FsPath::new("p.yaml"), text).unwrap_err();
        let all: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        let has = |s: &str| assert!(all.iter().any(|d| d.contains(s)), "{s} not in {all:#?}");
        has("p.yaml:2:10: framing: unknown framing `ndjsn` (did you mean `ndjson`?");
        has("p.yaml:4:11: events[0].text: invalid JSONPath `$[?`");
        has("p.yaml:5:14: events[0].usage.inputs: unknown key `inputs` (did you mean `input`?");
        let d = compile_text(
            FsPath::new("q.yaml"),
            "framing: sse\nevents: [{ model: $.m }]\n",
        )
        .unwrap_err();
        assert!(
            d[0].to_string()
                .contains("no event rule has a `text` or an `audio` path"),
            "{d:?}"
        );
    }
}
