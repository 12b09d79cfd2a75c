//! The driver of described streams: builds the request from the description's template and
//! the case, sends it, and reads the body through the description's framer and event table
//! into the chat drivers' measuring loop ([`crate::drivers::chat::read_pieces`]), so first
//! token, first visible token, completion, gaps, stalls, reasoning time, tokens, cost and
//! every check come out exactly as for the chat protocols.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::framing::{Framer, Unit};
use super::spec::StreamSpec;
use crate::drivers::chat::{messages, read_pieces, PieceSource};
use crate::drivers::chat_events::Piece;
use crate::drivers::RunVars;
use crate::net::http::{self, HttpRequest};
use crate::suite::{Case, ChatSettings, Endpoint};
use crate::timeline::{ErrorClass, ProbeError, Recorder};

/// Performs one case run, recording everything on `rec`.
pub async fn run(
    endpoint: &Endpoint,
    chat: &ChatSettings,
    spec: &Arc<StreamSpec>,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) {
    if let Err(e) = exchange(endpoint, chat, spec, case, vars, rec).await {
        rec.fail(e);
    }
}

/// The prompt text of a case: `input.text`, `input.prompt`, or the last user message.
pub fn prompt_text(input: &Value) -> Option<String> {
    if let Some(t) = input
        .get("text")
        .or_else(|| input.get("prompt"))
        .and_then(Value::as_str)
    {
        return Some(t.to_string());
    }
    let msgs = messages(input)?;
    msgs.as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

/// Replaces the description's own placeholders (`{{text}}`, `{{model}}`, `{{max_tokens}}`) in
/// one pass, so that text put in (a prompt about `{{templates}}`) is never read again.
fn fill(template: &Value, own: &[(&str, Option<Value>)]) -> Result<Value, ProbeError> {
    let lookup = |name: &str| -> Option<Result<Value, ProbeError>> {
        own.iter()
            .find(|(n, _)| *n == name)
            .map(|(n, v)| v.clone().ok_or_else(|| missing(n)))
    };
    Ok(match template {
        Value::String(s) => {
            let t = s.trim();
            if let Some(name) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
                if !name.contains("{{") {
                    if let Some(v) = lookup(name.trim()) {
                        return v;
                    }
                }
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find("{{") {
                let Some(j) = rest[i + 2..].find("}}") else {
                    break;
                };
                let name = rest[i + 2..i + 2 + j].trim();
                out.push_str(&rest[..i]);
                match lookup(name) {
                    Some(v) => match v? {
                        Value::String(t) => out.push_str(&t),
                        other => out.push_str(&other.to_string()),
                    },
                    None => out.push_str(&rest[i..i + 4 + j]),
                }
                rest = &rest[i + 4 + j..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, own)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, own)?)))
                .collect::<Result<_, ProbeError>>()?,
        ),
        other => other.clone(),
    })
}

fn missing(name: &str) -> ProbeError {
    let hint = match name {
        "text" => "the case has no `input.text`, `input.prompt` or user message",
        "model" => "neither the case (`input.model`) nor the endpoint (`model`) names a model",
        _ => "neither the case (`input.max_tokens`) nor the endpoint (`max_tokens`) sets it",
    };
    ProbeError::new(
        ErrorClass::Request,
        format!("the request template uses `{{{{{name}}}}}` but {hint}"),
    )
}

fn model_of(endpoint: &Endpoint, case: &Case) -> Option<String> {
    case.input
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| endpoint.model.clone())
}

/// The request body: the case's `input.body` as given, else the description's template
/// filled from the case, with the endpoint's `params` and the case's `input.params` merged in.
pub fn request_body(
    spec: &StreamSpec,
    endpoint: &Endpoint,
    chat: &ChatSettings,
    case: &Case,
    vars: RunVars,
) -> Result<Option<Value>, ProbeError> {
    let input = &case.input;
    if let Some(b) = input.get("body") {
        return vars.render(b, case).map(Some);
    }
    let Some(template) = &spec.request.body else {
        return Ok(None);
    };
    let own = [
        ("text", prompt_text(input).map(Value::String)),
        ("model", model_of(endpoint, case).map(Value::String)),
        (
            "max_tokens",
            input
                .get("max_tokens")
                .and_then(Value::as_u64)
                .or(chat.max_tokens.map(u64::from))
                .map(Value::from),
        ),
    ];
    // The suite's own names first (`{{input.*}}`, `{{run}}`, ...; ours are left as written),
    // then ours, so that nothing put into the body is expanded again.
    let rendered = vars.render(template, case)?;
    let mut body = fill(&rendered, &own)?;
    if let Value::Object(b) = &mut body {
        for (k, v) in &chat.params {
            b.insert(k.clone(), v.clone());
        }
        if let Some(Value::Object(p)) = input.get("params") {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Some(body))
}

/// The URL with `{model}` filled in (path-safe characters only).
pub fn url_for(endpoint: &Endpoint, case: &Case) -> Result<::http::Uri, ProbeError> {
    let mut url = endpoint.url.clone();
    if url.contains("{model}") {
        let model = model_of(endpoint, case).ok_or_else(|| missing("model"))?;
        let safe: String = model
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        url = url.replace("{model}", &safe);
    }
    url.parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))
}

async fn exchange(
    endpoint: &Endpoint,
    chat: &ChatSettings,
    spec: &Arc<StreamSpec>,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let spec = Arc::clone(spec);
    let uri = url_for(endpoint, case)?;
    let body = request_body(&spec, endpoint, chat, case, vars.clone())?;
    let bytes = match &body {
        Some(b) => Some(Bytes::from(serde_json::to_vec(b).map_err(|e| {
            ProbeError::new(
                ErrorClass::Request,
                format!("cannot encode the request: {e}"),
            )
        })?)),
        None => None,
    };
    let mut headers = endpoint.headers.clone();
    for (n, v) in &spec.request.headers {
        if !headers.iter().any(|(h, _)| h == n) {
            headers.push((n.clone(), v.clone()));
        }
    }
    let method = spec
        .request
        .method
        .clone()
        .filter(|_| endpoint.method == ::http::Method::POST)
        .unwrap_or_else(|| endpoint.method.clone());
    let req = HttpRequest {
        method,
        uri: &uri,
        headers: &headers,
        content_type: bytes.as_ref().map(|_| "application/json"),
        body: bytes,
        accept: spec.framing.accept(),
        tls: endpoint.tls.as_ref(),
        net: Some(&endpoint.net),
    };
    let streaming = http::send(req, rec).await?;
    if !(200..300).contains(&streaming.status) {
        let resp = match streaming.read_all(endpoint.max_body, rec).await {
            Ok(r) | Err((_, r)) => r,
        };
        let e = http::status_error(&resp);
        rec.set_response(resp);
        return Err(e);
    }
    let mut source = SpecSource::new(spec, endpoint.max_body);
    read_pieces(endpoint, streaming, vars.stop_early, rec, &mut source).await
}

/// A described stream as a source of pieces.
pub struct SpecSource {
    spec: Arc<StreamSpec>,
    framer: Framer,
    units: Vec<Unit>,
    pieces: Vec<Piece>,
    n: usize,
}

impl SpecSource {
    pub fn new(spec: Arc<StreamSpec>, max_body: u64) -> SpecSource {
        let framer = Framer::new(
            spec.framing,
            usize::try_from(max_body).unwrap_or(usize::MAX),
        );
        SpecSource {
            spec,
            framer,
            units: Vec::new(),
            pieces: Vec::new(),
            n: 0,
        }
    }

    fn drain(&mut self, out: &mut Vec<(Instant, Piece)>) -> Result<(), ProbeError> {
        for u in self.units.drain(..) {
            self.n += 1;
            self.spec.interpret(&u, &mut self.pieces)?;
            out.extend(self.pieces.drain(..).map(|p| (u.at, p)));
        }
        Ok(())
    }
}

impl PieceSource for SpecSource {
    fn feed(
        &mut self,
        at: Instant,
        data: &[u8],
        out: &mut Vec<(Instant, Piece)>,
    ) -> Result<(), ProbeError> {
        let framed = self.framer.feed(at, data, &mut self.units);
        self.drain(out)?;
        framed
    }

    fn finish(&mut self, out: &mut Vec<(Instant, Piece)>) -> Result<(), ProbeError> {
        let framed = self.framer.finish(&mut self.units);
        self.drain(out)?;
        framed
    }

    fn units(&self) -> usize {
        self.n
    }

    fn has_partial(&self) -> bool {
        self.framer.has_partial()
    }

    fn terminator(&self) -> Option<String> {
        self.spec
            .terminator
            .as_ref()
            .map(|_| self.spec.terminator_text.clone())
    }
}

/// Replays a whole recorded body through a description: the pieces in order (for tests and
/// `canary protocols`' checks). Errors come back as the run would classify them.
pub fn replay(
    spec: Arc<StreamSpec>,
    body: &[u8],
    cuts: &[usize],
) -> (Vec<Piece>, Result<(), ProbeError>) {
    let mut src = SpecSource::new(spec, 16 << 20);
    let mut out = Vec::new();
    let now = Instant::now();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&body.len())) {
        let c = c.clamp(start, body.len());
        if let Err(e) = src.feed(now, &body[start..c], &mut out) {
            return (out.into_iter().map(|p| p.1).collect(), Err(e));
        }
        start = c;
    }
    let r = src.finish(&mut out);
    let terminated = out.iter().any(|p| p.1 == Piece::Terminator);
    let r = r.and_then(|_| {
        if terminated || (src.terminator().is_none() && !src.has_partial()) {
            Ok(())
        } else {
            Err(ProbeError::new(
                ErrorClass::Truncated,
                "the stream ended without its terminator",
            ))
        }
    });
    (out.into_iter().map(|p| p.1).collect(), r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_placeholders_are_filled_once_and_keep_their_type() {
        let own = [
            ("text", Some(json!("say {{model}} and {{run}}"))),
            ("model", Some(json!("m1"))),
            ("max_tokens", Some(json!(64))),
        ];
        let t = json!({"p": "{{text}}", "m": "model={{model}}", "n": "{{max_tokens}}", "x": "{{other}}"});
        let got = fill(&t, &own).unwrap();
        assert_eq!(
            got,
            json!({"p": "say {{model}} and {{run}}", "m": "model=m1", "n": 64, "x": "{{other}}"})
        );
        let none = [("model", None)];
        let e = fill(&json!({"m": "{{model}}"}), &none).unwrap_err();
        assert_eq!(e.class, ErrorClass::Request);
    }
}
