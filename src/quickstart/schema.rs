//! The editor schema of the suite format (`docs/suite.schema.json`, JSON Schema 2020-12):
//! generated here, from the protocol and SLI registries and a key table per object. A unit
//! test holds every object's keys equal to what the loader's raw structs accept (read from
//! serde's own "expected one of" list), and another that the committed file is this output:
//! `CANARY_WRITE_SCHEMA=1 cargo test --lib quickstart::schema` rewrites it.
//!
//! Values that `${VAR}` interpolation may fill (numbers, booleans) also accept strings: the
//! schema judges the file as written, the loader the values after interpolation.

use serde_json::{json, Map, Value};

fn s(desc: &str) -> Value {
    json!({ "type": "string", "description": desc })
}
fn dur(desc: &str) -> Value {
    json!({ "type": "string", "description": format!("{desc} A duration: 250ms, 1.5s, 10m, 30d.") })
}
fn pct(desc: &str) -> Value {
    json!({ "type": ["string", "number"], "description": format!("{desc} A percentage (99.5%) or a fraction (0.995).") })
}
fn int(desc: &str) -> Value {
    json!({ "type": ["integer", "string"], "description": desc })
}
fn num(desc: &str) -> Value {
    json!({ "type": ["number", "string"], "description": desc })
}
fn boolean(desc: &str) -> Value {
    json!({ "type": ["boolean", "string"], "description": desc })
}
fn any(desc: &str) -> Value {
    json!({ "description": desc })
}
fn strings(desc: &str) -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": desc })
}
fn one_or_many(desc: &str) -> Value {
    json!({ "description": desc, "oneOf": [
        { "type": "string" }, { "type": "array", "items": { "type": "string" } }
    ] })
}
fn r(def: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{def}") })
}

/// A closed object: these keys and no others.
fn obj(desc: &str, required: &[&str], props: Vec<(&str, Value)>) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert(k.to_string(), v);
    }
    json!({
        "type": "object",
        "description": desc,
        "additionalProperties": false,
        "required": required,
        "properties": p,
    })
}

/// The schema document.
pub fn suite_schema() -> Value {
    let protocols: Vec<&str> = crate::suite::Protocol::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    let slis: Vec<&str> = crate::measure::sli::Sli::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    let latency: Vec<&str> = crate::measure::sli::Sli::ALL
        .iter()
        .filter(|s| s.kind() == crate::measure::sli::SliKind::Latency)
        .map(|s| s.name())
        .collect();
    let mut defs = Map::new();
    let mut def = |name: &str, v: Value| {
        defs.insert(name.to_string(), v);
    };
    def(
        "defaults",
        obj(
            "Defaults of every probe.",
            &[],
            vec![
                ("timeout", dur("Hard deadline per case run.")),
                ("runs", int("Runs of each case per `canary run`.")),
                ("concurrency", int("Case runs in flight at once.")),
                (
                    "schedule",
                    s("Cron (5 or 6 fields): when `canary serve` runs a probe."),
                ),
                (
                    "max_body",
                    json!({ "type": ["string", "integer"], "description": "Largest response body read: 16MiB or a number of bytes." }),
                ),
            ],
        ),
    );
    def(
        "gate",
        obj(
            "Settings of `canary gate`.",
            &[],
            vec![
                ("confidence", pct("Confidence of the gate's intervals.")),
                (
                    "latency_tolerance",
                    pct("How much slower the candidate may be."),
                ),
                ("ratio_tolerance", pct("How much lower a ratio SLI may be.")),
                ("quantile", pct("The latency quantile compared.")),
                ("min_runs", int("Fewest runs per side to decide.")),
                ("slis", one_or_many("The SLIs compared.")),
                (
                    "allowed_hosts",
                    json!({ "type": "array", "items": { "type": "string" }, "description": "Hosts a gate candidate or baseline may be: host, host:port, *.domain or an IP address; others are refused before any request." }),
                ),
            ],
        ),
    );
    def(
        "cardinality",
        obj(
            "Limits on the series a suite creates.",
            &[],
            vec![
                ("per_slice", one_or_many("SLIs exported per slice.")),
                ("max_series", int("Most series the suite may create.")),
            ],
        ),
    );
    def(
        "extractor",
        obj(
            "Where a value is read: a JSON path of the body or a header.",
            &[],
            vec![
                ("json", s("JSONPath into the body, e.g. $.model.")),
                ("header", s("Response header name.")),
                (
                    "primary",
                    one_or_many("Tier values that count as the primary tier."),
                ),
            ],
        ),
    );
    def(
        "matcher",
        obj(
            "Marks a response: a JSON path or header, compared with a value or regex.",
            &[],
            vec![
                ("json", s("JSONPath into the body.")),
                ("header", s("Response header name.")),
                ("equals", any("The value that marks it.")),
                ("hit", any("The value that marks a cache hit.")),
                ("regex", s("A regex the value must match.")),
            ],
        ),
    );
    def(
        "escalation",
        obj(
            "What marks an answer as an escalation or refusal.",
            &[],
            vec![
                ("json", s("JSONPath into the body.")),
                ("header", s("Response header name.")),
                ("equals", any("The value that marks an escalation.")),
                ("regex", s("A regex on the answer.")),
                ("phrases", one_or_many("Phrases that mark an escalation.")),
                ("builtin", boolean("Use the built-in phrases too.")),
            ],
        ),
    );
    def(
        "tls",
        obj(
            "Client TLS: custom CA, client certificate.",
            &[],
            vec![
                ("ca", s("PEM file of the CA to trust.")),
                ("cert", s("PEM client certificate.")),
                ("key", s("PEM client key.")),
            ],
        ),
    );
    def(
        "price",
        obj(
            "Dollars per million tokens.",
            &["input_per_mtok", "output_per_mtok"],
            vec![
                ("input_per_mtok", num("Input price.")),
                ("output_per_mtok", num("Output price.")),
            ],
        ),
    );
    def(
        "submit",
        obj(
            "An HTTP request: job submit or canary-fact write.",
            &["url"],
            vec![
                ("url", s("URL.")),
                ("method", s("HTTP method.")),
                (
                    "body",
                    any("JSON body; {{input.x}} and {{run}} are filled."),
                ),
                (
                    "headers",
                    strings("Request headers (values from the environment are secrets)."),
                ),
            ],
        ),
    );
    def(
        "poll",
        obj(
            "How a job is followed: poll a URL or read an event stream.",
            &[],
            vec![
                ("url", s("Status URL; {id} is the job id.")),
                ("every", dur("Poll interval.")),
                ("backoff", num("Interval multiplier per poll.")),
                ("max_every", dur("Longest poll interval.")),
                (
                    "stream",
                    s("Event-stream URL instead of polling; {id} is the job id."),
                ),
            ],
        ),
    );
    def(
        "failed",
        obj(
            "What marks a failed job.",
            &[],
            vec![
                ("json", s("JSONPath into the status.")),
                ("header", s("Header name.")),
                ("equals", any("The value that marks failure.")),
                ("regex", s("A regex the value must match.")),
                ("reason", s("JSONPath of the failure reason.")),
            ],
        ),
    );
    def(
        "compare",
        obj(
            "A target metric compared with canary's measure.",
            &[],
            vec![
                ("good", s("Counter of good events.")),
                ("total", s("Counter of all events.")),
                ("histogram", s("Histogram metric name.")),
            ],
        ),
    );
    def(
        "endpoint",
        obj(
            "An endpoint: protocol, URL, headers and what to read from answers.",
            &["protocol"],
            vec![
                (
                    "protocol",
                    json!({ "enum": protocols, "description": "The wire protocol." }),
                ),
                (
                    "url",
                    s("URL (http, https, ws, wss); ${VAR:-default} interpolates."),
                ),
                ("method", s("HTTP method (http-json).")),
                (
                    "headers",
                    strings("Request headers; values from the environment or files are secrets."),
                ),
                ("model", s("Model field of chat requests.")),
                ("tier", r("extractor")),
                ("fallback", r("matcher")),
                ("cache", r("matcher")),
                ("escalation", r("escalation")),
                (
                    "schema",
                    s("JSON Schema file every response body must satisfy (SLI schema_valid)."),
                ),
                ("answer", r("extractor")),
                (
                    "timeout",
                    dur("Hard deadline per case run on this endpoint."),
                ),
                (
                    "max_body",
                    json!({ "type": ["string", "integer"], "description": "Largest response body read." }),
                ),
                (
                    "http",
                    json!({ "description": "HTTP version: auto (ALPN h2 when the server offers it), 1.1, or 2 (h2 over TLS, h2c by prior knowledge over http://).", "type": ["string", "number"] }),
                ),
                (
                    "proxy",
                    json!({ "description": "Forward proxy: `env` (default: HTTPS_PROXY / HTTP_PROXY / NO_PROXY), `none`, an http:// proxy URL, or { url, username, password }. CONNECT for https and WebSocket targets, absolute-form forwarding for http.", "type": ["string", "object"], "properties": { "url": { "type": "string" }, "username": { "type": "string" }, "password": { "type": "string" } }, "additionalProperties": false }),
                ),
                (
                    "follow_redirects",
                    int("Redirects followed (0, the default: a redirect is an http_status error); credentials go to the first URL's origin only; a loop is a redirect_loop error."),
                ),
                (
                    "connection",
                    json!({ "description": "fresh (default: a new connection per case run, setup measured) or reuse (a keep-alive pool per endpoint).", "enum": ["fresh", "reuse"] }),
                ),
                (
                    "resolve",
                    strings("Host name -> IP address used instead of DNS (the Host header and TLS name stay the URL's)."),
                ),
                (
                    "auth",
                    json!({ "type": "object", "description": "A credential obtained per request: `type: aws-sigv4` (region, service, access_key_id, secret_access_key, session_token; else the AWS_* variables), `oauth2-client-credentials` (token_url, client_id, client_secret, scope, audience, client_auth), `google-service-account` (key_file, scope, audience, token_url).", "required": ["type"], "properties": { "type": { "enum": ["aws-sigv4", "oauth2-client-credentials", "google-service-account"] } } }),
                ),
                (
                    "stream",
                    json!({ "description": "Chat protocols: ask for a streamed answer (boolean). `protocol: stream` and the built-in described protocols: the stream description (framing, request body, event rules), inline or `{ file: PATH }`, optionally `extends: NAME`. `http-audio` (optional) and `ws-json-audio` (required): the events carrying base64 audio (`audio` paths), the transcript (`text` paths), `terminator` and `error`, e.g. `{ extends: openai-speech }`.", "type": ["boolean", "string", "object"] }),
                ),
                (
                    "params",
                    json!({ "type": "object", "description": "Extra request fields (chat)." }),
                ),
                (
                    "start",
                    any("ws-opus, ws-json-audio: the JSON message sent after connecting (a template over the case); ws-json-audio: also a list of messages sent in order."),
                ),
                ("transcript", any("Voice: where the spoken text arrives.")),
                (
                    "done",
                    any("Voice: the event that ends the answer; job: what marks it done."),
                ),
                (
                    "audio_format",
                    s("realtime: pcm16, pcmu, pcma. http-audio, ws-json-audio: pcm16, pcmu, pcma, wav, ogg-opus, mp3 (http-audio: default from the response's Content-Type; ws-json-audio: default pcm16)."),
                ),
                ("container", s("ws-opus container: raw or ogg.")),
                (
                    "sample_rate",
                    int("ws-opus: the Opus decoding rate. http-audio, ws-json-audio: the rate of headerless PCM16 or G.711 (default: the Content-Type's `rate`, else 24000 / 8000)."),
                ),
                ("api", s("Realtime API version.")),
                ("session", any("Realtime session settings.")),
                (
                    "audible_threshold",
                    num("dBFS above which audio counts as audible."),
                ),
                ("prebuffer", dur("Playback buffer of the underrun model.")),
                ("submit", r("submit")),
                ("id", r("extractor")),
                ("poll", r("poll")),
                ("failed", r("failed")),
                ("queue", r("extractor")),
                (
                    "metrics_url",
                    s("The target's Prometheus metrics, snapshotted before and after a run."),
                ),
                (
                    "metrics_compare",
                    json!({ "type": "object", "additionalProperties": r("compare"), "description": "SLI name -> target metric." }),
                ),
                ("labels", strings("Labels added to this endpoint's series.")),
                ("price", r("price")),
                ("max_tokens", int("Most tokens an answer may generate.")),
                (
                    "allow_insecure",
                    boolean("Allow plain http for credentials."),
                ),
                ("tls", r("tls")),
                (
                    "traceparent",
                    boolean(
                        "Send a W3C traceparent header with each probe request (default true).",
                    ),
                ),
            ],
        ),
    );
    def(
        "truth",
        obj(
            "The source of truth of a fact.",
            &["url", "value", "updated_at"],
            vec![
                ("url", s("Truth URL; {key} is the case's input.key.")),
                ("value", s("JSONPath of the current value.")),
                ("updated_at", s("JSONPath of when it changed.")),
            ],
        ),
    );
    def(
        "freshness",
        obj(
            "Judge every answer against a source of truth.",
            &["truth"],
            vec![("truth", r("truth"))],
        ),
    );
    def(
        "canary_fact",
        obj(
            "Write a nonce, then ask until the answer holds it.",
            &["write"],
            vec![
                ("write", r("submit")),
                ("read_every", dur("Ask interval.")),
                ("give_up_after", dur("Give up after.")),
            ],
        ),
    );
    def(
        "sample",
        obj(
            "A rotation of N cases per tick.",
            &["per_tick"],
            vec![("per_tick", int("Cases per tick."))],
        ),
    );
    def(
        "budget",
        obj(
            "A rotation within a daily budget.",
            &[],
            vec![
                ("tokens_per_day", num("Tokens per day.")),
                (
                    "dollars_per_day",
                    num("Dollars per day (needs the endpoint's price)."),
                ),
            ],
        ),
    );
    def(
        "judge",
        obj(
            "A judge endpoint grading every case's answer against a rubric (cases may override it or set `\"judge\": false`).",
            &[],
            vec![
                ("endpoint", s("Name of a chat endpoint of this suite: the judge.")),
                ("rubric", s("What a good answer does.")),
                ("rubric_file", s("The rubric in a text file, relative to the suite file.")),
                ("threshold", num("Pass when the verdict's score is at least this (0..1).")),
                ("samples", int("Ask the judge this many times; the majority decides.")),
                ("temperature", num("Temperature of the judge requests.")),
            ],
        ),
    );
    def(
        "similar",
        obj(
            "Cosine similarity of each answer to its case's `expect.reference`, through an embeddings endpoint.",
            &[],
            vec![
                ("endpoint", s("Name of an http-json endpoint of this suite (an OpenAI-compatible /v1/embeddings).")),
                ("threshold", num("Pass when the similarity is at least this (default 0.8).")),
            ],
        ),
    );
    def(
        "probe",
        obj(
            "A probe: an endpoint and a golden set.",
            &["name", "endpoint", "golden"],
            vec![
                ("name", s("Unique within the suite.")),
                ("endpoint", s("Name of an endpoint of this suite.")),
                ("golden", s("JSONL golden set, relative to the suite file.")),
                (
                    "stall",
                    dur("A gap between chunks longer than this is a stall."),
                ),
                ("freshness", r("freshness")),
                ("canary_fact", r("canary_fact")),
                ("sample", r("sample")),
                ("budget", r("budget")),
                (
                    "coverage",
                    dur("Every case of a rotation must run within this."),
                ),
                (
                    "expected_output_tokens",
                    int("Output tokens assumed per answer in budgets."),
                ),
                (
                    "stop_after",
                    json!({ "enum": ["first_visible"], "description": "Stop reading each stream at its first visible token." }),
                ),
                ("timeout", dur("Hard deadline per case run.")),
                ("runs", int("Runs of each case.")),
                ("schedule", s("Cron: when `canary serve` runs this probe.")),
                ("judge", r("judge")),
                ("similar", r("similar")),
            ],
        ),
    );
    def(
        "slo",
        obj(
            "An SLO on one probe's SLI.",
            &["name", "probe", "sli", "objective"],
            vec![
                ("name", s("Unique within the suite.")),
                ("probe", s("Name of a probe of this suite.")),
                (
                    "sli",
                    json!({ "enum": slis, "description": "The SLI judged." }),
                ),
                ("threshold", dur("Latency SLIs: good when <= threshold.")),
                ("objective", pct("Share of good runs.")),
                ("window", dur("Window of burn rates and generated rules.")),
                ("per_slice", boolean("Every slice must meet it.")),
                ("description", s("Shown in reports and alerts.")),
                (
                    "exclude",
                    one_or_many("Error classes not counted against the SLO."),
                ),
            ],
        ),
    );
    let mut root = obj(
        "A canary suite: endpoints, probes over golden sets, and SLOs (docs/suite-format.md).",
        &["suite", "endpoints"],
        vec![
            ("suite", s("Suite name (label value `suite`).")),
            ("labels", strings("Constant labels on every series.")),
            ("defaults", r("defaults")),
            (
                "endpoints",
                json!({ "type": "object", "additionalProperties": r("endpoint"), "description": "Endpoints by name." }),
            ),
            ("probes", json!({ "type": "array", "items": r("probe") })),
            ("slos", json!({ "type": "array", "items": r("slo") })),
            ("gate", r("gate")),
            (
                "buckets",
                json!({
                    "type": "object",
                    "description": "Histogram bucket bounds (seconds) per latency SLI.",
                    "propertyNames": { "enum": latency },
                    "additionalProperties": {
                        "type": "array",
                        "items": { "type": "number", "exclusiveMinimum": 0 },
                        "minItems": 1
                    },
                }),
            ),
            (
                "escalation_phrases",
                one_or_many("Phrases that mark an escalation, for every endpoint."),
            ),
            ("cardinality", r("cardinality")),
        ],
    );
    if let Some(o) = root.as_object_mut() {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert("$id".into(), json!("suite.schema.json"));
        o.insert("title".into(), json!("canary suite"));
        o.insert("$defs".into(), Value::Object(defs));
    }
    root
}

/// The schema as committed: pretty JSON and a final newline.
pub fn suite_schema_text() -> String {
    let mut t = serde_json::to_string_pretty(&suite_schema()).unwrap_or_default();
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::raw::*;
    use serde::de::DeserializeOwned;
    use std::collections::BTreeSet;

    /// The keys a raw struct accepts, from serde's "unknown field, expected one of" message.
    fn accepted<T: DeserializeOwned>() -> BTreeSet<String> {
        let err = match serde_json::from_value::<T>(json!({ "\u{1}": 0 })) {
            Ok(_) => panic!("a struct accepted an unknown key"),
            Err(e) => e.to_string(),
        };
        let list = err
            .split_once("expected")
            .map(|(_, l)| l.to_string())
            .unwrap_or_default();
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    }

    fn props(schema: &Value, def: Option<&str>) -> BTreeSet<String> {
        let o = match def {
            Some(d) => &schema["$defs"][d],
            None => schema,
        };
        assert_eq!(o["additionalProperties"], false, "{def:?} is not closed");
        o["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_object_has_the_keys_the_loader_accepts() {
        let sc = suite_schema();
        let pairs: Vec<(Option<&str>, BTreeSet<String>)> = vec![
            // Top-level keys outside the raw struct (`buckets`) are read from the tree.
            (
                None,
                crate::suite::validate::TOP_KEYS
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
            ),
            (Some("defaults"), accepted::<RawDefaults>()),
            (Some("gate"), accepted::<RawGate>()),
            (Some("cardinality"), accepted::<RawCardinality>()),
            (Some("extractor"), accepted::<RawExtractor>()),
            (Some("matcher"), accepted::<RawMatcher>()),
            (Some("escalation"), accepted::<RawEscalation>()),
            (Some("tls"), accepted::<RawTls>()),
            (Some("price"), accepted::<RawPrice>()),
            (Some("submit"), accepted::<RawSubmit>()),
            (Some("poll"), accepted::<RawPoll>()),
            (Some("failed"), accepted::<RawFailed>()),
            (Some("compare"), accepted::<RawCompare>()),
            (Some("endpoint"), accepted::<RawEndpoint>()),
            (Some("truth"), accepted::<RawTruth>()),
            (Some("freshness"), accepted::<RawFreshness>()),
            (Some("canary_fact"), accepted::<RawCanaryFact>()),
            (Some("sample"), accepted::<RawSample>()),
            (Some("budget"), accepted::<RawBudget>()),
            (Some("judge"), accepted::<RawJudge>()),
            (Some("similar"), accepted::<RawSimilar>()),
            (Some("probe"), accepted::<RawProbe>()),
            (Some("slo"), accepted::<RawSlo>()),
        ];
        for (def, keys) in pairs {
            assert!(!keys.is_empty(), "{def:?}: no keys read from serde");
            assert_eq!(
                props(&sc, def),
                keys,
                "{def:?}: the schema and the loader disagree"
            );
        }
        // Every closed object of the schema is checked above.
        let defs = sc["$defs"].as_object().unwrap();
        assert_eq!(defs.len(), 22);
        // The raw struct's keys are a subset of the top-level keys.
        let top = props(&sc, None);
        assert!(accepted::<RawSuite>().is_subset(&top));
    }

    #[test]
    fn the_committed_schema_is_this_output() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/suite.schema.json");
        let text = suite_schema_text();
        if std::env::var_os("CANARY_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/suite.schema.json is out of date: CANARY_WRITE_SCHEMA=1 cargo test --lib quickstart::schema"
        );
    }
}
