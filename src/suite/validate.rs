//! Stage two of suite loading: typed deserialization item by item, collecting every error,
//! then the validation pass (references, protocol requirements, compiled paths, regexes and
//! schemas). Every error names file, line, column and field, and says what would be valid.
//!
//! This module is the entry: it reads the file (size-capped YAML, `${...}` interpolation,
//! duplicate keys), checks the top-level keys and builds the [`Suite`] section by section,
//! each in a module of its own: `settings.rs` (`defaults`, `gate`, `buckets`, `cardinality`,
//! `escalation_phrases`), `endpoints.rs`, `probes.rs` (with `quality.rs` and `golden.rs`) and
//! `slos.rs`; the helpers they share are in `ctx.rs`. It also gives the resolved, redacted
//! configuration (`canary validate --dump-config`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::ctx::{collect, k, p, Ctx, RESERVED_LABELS};
use super::diag::{list, suggest, Diagnostic};
use super::endpoints::build_endpoint;
use super::interp::{interpolate_tree, Env};
use super::model::*;
use super::probes::build_probe;
use super::raw::*;
use super::settings::{
    build_buckets, build_cardinality, build_defaults, build_gate, check_series_budget,
    suite_escalation_phrases,
};
use super::slos::build_slo;
use super::yaml::{self, path_string, Node, Seg};

/// The keys a suite file may have at its top level.
pub(crate) const TOP_KEYS: &[&str] = &[
    "suite",
    "labels",
    "defaults",
    "endpoints",
    "probes",
    "slos",
    "gate",
    "buckets",
    "escalation_phrases",
    "cardinality",
];

/// The configuration a suite resolves to (environment and files interpolated), with every
/// secret redacted and every credential-bearing header value replaced: what
/// `canary validate --dump-config` prints.
pub fn resolved(file: &Path, env: &dyn Env) -> Result<Value, Vec<Diagnostic>> {
    // Loading registers every secret the suite uses (headers, `${file:...}`, credential
    // variables) before anything is printed.
    load_suite(file, env)?;
    let (tree, _) = read_tree(file, env)?;
    let mut v = tree.to_json();
    redact_value(&mut v, false);
    Ok(v)
}

fn redact_value(v: &mut Value, sensitive: bool) {
    match v {
        Value::String(s) => {
            *s = if sensitive {
                "***".to_string()
            } else {
                crate::secret::redact(s)
            };
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, sensitive)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                redact_value(x, sensitive || crate::secret::is_sensitive_header(k));
            }
        }
        _ => {}
    }
}

/// Reads and parses a suite file and interpolates `${...}` (relative to the file's folder).
fn read_tree(
    file: &Path,
    env: &dyn Env,
) -> Result<(Node, Vec<super::interp::InterpError>), Vec<Diagnostic>> {
    let src = yaml::read_capped(file, yaml::MAX_FILE_BYTES).map_err(|e| {
        vec![Diagnostic::new(
            file,
            None,
            "(file)",
            format!("cannot read suite: {e}"),
        )]
    })?;
    let mut tree = yaml::parse(&src).map_err(|e| {
        vec![Diagnostic::new(
            file,
            Some(e.pos),
            "(syntax)",
            format!("invalid YAML: {}", e.message),
        )
        .maybe_hint(e.hint.or_else(|| indent_hint(&src, e.pos.line)))]
    })?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let errors = interpolate_tree(&mut tree, env, &base);
    Ok((tree, errors))
}

/// For a YAML syntax error at `line` (1-based): when that line, or the one before it, is
/// indented by a tab or to a column no line above it uses, say so (the usual cause of
/// "did not find expected key" and "mapping values are not allowed here").
fn indent_hint(src: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let meaningful = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    for n in [line, line.saturating_sub(1)] {
        let Some(text) = n.checked_sub(1).and_then(|i| lines.get(i)) else {
            continue;
        };
        if text.trim_start_matches(' ').starts_with('\t') {
            return Some(format!(
                "line {n} is indented with a tab; YAML indents with spaces only"
            ));
        }
        if !meaningful(text) {
            continue;
        }
        let here = indent(text);
        let mut above: Vec<usize> = lines[..n - 1]
            .iter()
            .filter(|l| meaningful(l))
            .map(|l| indent(l))
            .collect();
        above.sort_unstable();
        above.dedup();
        if !above.is_empty() && !above.contains(&here) {
            let levels: Vec<String> = above.iter().map(usize::to_string).collect();
            return Some(format!(
                "line {n} is indented {here} spaces, but the lines above use {}: YAML nests by indentation, so `{}` must line up with its siblings",
                levels.join(", "),
                text.trim().chars().take(40).collect::<String>()
            ));
        }
    }
    None
}

/// Loads and validates one suite file.
pub fn load_suite(file: &Path, env: &dyn Env) -> Result<Suite, Vec<Diagnostic>> {
    let (tree, interp_errors) = read_tree(file, env)?;
    let mut ctx = Ctx {
        file,
        tree: &tree,
        diags: Vec::new(),
        warnings: Vec::new(),
    };
    let mut dups = Vec::new();
    tree.duplicate_keys(&mut Vec::new(), &mut dups);
    for (path, pos) in dups {
        ctx.diags.push(
            Diagnostic::new(file, Some(pos), path_string(&path), "duplicate key")
                .hint("each key may appear once; the later value would silently win"),
        );
    }
    let suite = build(&mut ctx).map(|mut s| {
        s.warnings = std::mem::take(&mut ctx.warnings);
        s
    });
    let mut diags = ctx.diags;
    // A value that failed to interpolate is reported once, not again as a bad URL or duration.
    let failed: HashSet<String> = interp_errors.iter().map(|e| e.field.clone()).collect();
    diags.retain(|d| !failed.contains(&d.field));
    for e in interp_errors {
        diags.push(Diagnostic::new(file, Some(e.pos), e.field, e.message).maybe_hint(e.hint));
    }
    diags.sort_by_key(|d| (d.file.clone(), d.pos.map(|p| (p.line, p.col))));
    match suite {
        Some(s) if diags.is_empty() => Ok(s),
        _ => Err(diags),
    }
}

fn build(ctx: &mut Ctx) -> Option<Suite> {
    let root = ctx.tree.to_json();
    let Value::Object(top) = root else {
        ctx.err(&[], "a suite must be a YAML map").hint =
            Some("start with `suite: NAME`, then `endpoints:`, `probes:` and `slos:`".into());
        return None;
    };
    for key in top.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            ctx.key_err(&[k(key)], format!("unknown key `{key}`")).hint =
                Some(suggest(key, TOP_KEYS));
        }
    }
    let name = match top.get("suite") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            ctx.err(&[k("suite")], "`suite` must be a non-empty string")
                .hint = Some("e.g. `suite: assistant`; it becomes the `suite` label".into());
            None
        }
        None => {
            ctx.err(&[], "missing required key `suite`").hint =
                Some("e.g. `suite: assistant`; it becomes the `suite` label".into());
            None
        }
    };
    let labels = top
        .get("labels")
        .and_then(|v| collect::<BTreeMap<String, String>>(v.clone(), &[k("labels")], ctx))
        .unwrap_or_default();
    for lname in labels.keys() {
        let path = [k("labels"), k(lname)];
        if !is_label_name(lname) {
            ctx.key_err(
                &path,
                format!("`{lname}` is not a valid Prometheus label name"),
            )
            .hint = Some("use letters, digits and _, not starting with a digit".into());
        } else if RESERVED_LABELS.contains(&lname.as_str()) {
            ctx.key_err(&path, format!("label `{lname}` is set by canary itself"))
                .hint = Some(format!("reserved: {}", list(RESERVED_LABELS)));
        }
    }
    let (defaults, default_schedule) = build_defaults(top.get("defaults"), ctx);

    let mut endpoints = BTreeMap::new();
    // Names of endpoints that exist even if invalid, so references to them do not also fail.
    let mut endpoint_names: Vec<String> = Vec::new();
    let mut endpoint_protocols: BTreeMap<String, Protocol> = BTreeMap::new();
    match top.get("endpoints") {
        Some(Value::Object(map)) => {
            if map.is_empty() {
                ctx.err(&[k("endpoints")], "no endpoints defined").hint =
                    Some("define at least one, e.g. `endpoints: { mapper: { protocol: http-json, url: ... } }`".into());
            }
            let suite_phrases = suite_escalation_phrases(top.get("escalation_phrases"), ctx);
            for (ename, v) in map {
                endpoint_names.push(ename.clone());
                let path = [k("endpoints"), k(ename)];
                if let Some(raw) = collect::<RawEndpoint>(v.clone(), &path, ctx) {
                    endpoint_protocols.insert(ename.clone(), raw.protocol);
                    if let Some(mut ep) = build_endpoint(ename, raw, &defaults, &path, ctx) {
                        if !suite_phrases.is_empty() {
                            let ph = ep.escalation_phrases.get_or_insert(EscalationPhrases {
                                builtin: false,
                                extra: Vec::new(),
                            });
                            ph.extra.extend(suite_phrases.iter().cloned());
                        }
                        endpoints.insert(ename.clone(), Arc::new(ep));
                    }
                }
            }
        }
        Some(_) => {
            ctx.err(
                &[k("endpoints")],
                "`endpoints` must be a map of name -> endpoint",
            );
        }
        None => {
            ctx.err(&[], "missing required key `endpoints`").hint =
                Some("e.g. `endpoints: { mapper: { protocol: http-json, url: ... } }`".into());
        }
    }

    let mut probes = Vec::new();
    let mut probe_names: Vec<String> = Vec::new();
    let mut probe_endpoint: BTreeMap<String, String> = BTreeMap::new();
    match top.get("probes") {
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                let path = [k("probes"), Seg::Index(i)];
                if let Some(n) = v.get("name").and_then(Value::as_str) {
                    if probe_names.iter().any(|x| x == n) {
                        ctx.err(
                            &p(&path, &[k("name")]),
                            format!("duplicate probe name `{n}`"),
                        )
                        .hint = Some("probe names must be unique within a suite".into());
                    }
                    probe_names.push(n.to_string());
                    if let Some(e) = v.get("endpoint").and_then(Value::as_str) {
                        probe_endpoint.insert(n.to_string(), e.to_string());
                    }
                }
                if let Some(raw) = collect::<RawProbe>(v.clone(), &path, ctx) {
                    if let Some(pr) = build_probe(
                        raw,
                        &defaults,
                        default_schedule.as_ref(),
                        &endpoints,
                        &endpoint_names,
                        &path,
                        ctx,
                    ) {
                        probes.push(pr);
                    }
                }
            }
        }
        Some(_) => {
            ctx.err(&[k("probes")], "`probes` must be a list").hint = Some(
                "e.g. `probes: [{ name: map, endpoint: mapper, golden: ../golden/x.jsonl }]`"
                    .into(),
            );
        }
        None => {}
    }
    if probe_names.is_empty() && ctx.diags.is_empty() {
        ctx.err(&[], "no probes defined").hint =
            Some("add `probes:` with at least one `{name, endpoint, golden}`".into());
    }

    let mut slos = Vec::new();
    let mut slo_names = HashSet::new();
    match top.get("slos") {
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                let path = [k("slos"), Seg::Index(i)];
                if let Some(raw) = collect::<RawSlo>(v.clone(), &path, ctx) {
                    if !slo_names.insert(raw.name.clone()) {
                        ctx.err(
                            &p(&path, &[k("name")]),
                            format!("duplicate SLO name `{}`", raw.name),
                        );
                    }
                    let names: Vec<&str> = probe_names.iter().map(String::as_str).collect();
                    if let Some(slo) = build_slo(
                        raw,
                        &probes,
                        &names,
                        &probe_endpoint,
                        &endpoint_protocols,
                        &endpoints,
                        &path,
                        ctx,
                    ) {
                        slos.push(slo);
                    }
                }
            }
        }
        Some(_) => {
            ctx.err(&[k("slos")], "`slos` must be a list");
        }
        None => {}
    }

    let gate = build_gate(top.get("gate"), ctx);
    let buckets = build_buckets(top.get("buckets"), ctx);
    let cardinality = build_cardinality(top.get("cardinality"), ctx);

    Some(Suite {
        name: name?,
        file: ctx.file.to_path_buf(),
        labels,
        defaults,
        endpoints,
        probes,
        slos,
        gate,
        buckets,
        cardinality,
        warnings: Vec::new(),
    })
    .and_then(|s| check_series_budget(s, ctx))
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::sli::Sli;
    use crate::suite::ProcessEnv;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn errors_of(rel: &str) -> Vec<String> {
        let diags =
            load_suite(&fixture(rel), &ProcessEnv::default()).expect_err("fixture must fail");
        diags
            .iter()
            .map(|d| {
                let mut s = d.to_string();
                // Relative to the fixture folder, so the assertions read like the CLI output.
                s = s.replace(&format!("{}/", env!("CARGO_MANIFEST_DIR")), "");
                s
            })
            .collect()
    }

    fn has(errors: &[String], needle: &str) {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error contains {needle:?}:\n{}",
            errors.join("\n")
        );
    }

    #[test]
    fn job_voice_and_bucket_mistakes_are_each_named() {
        let e = errors_of("tests/fixtures/bad/job-and-voice.yaml");
        for needle in [
            "buckets.time_to_completion: buckets must be a non-empty list of positive numbers",
            "buckets.success: `success` is not a latency SLI",
            "endpoints.preview.submit.methd: unknown key `methd` (did you mean `method`?)",
            "endpoints.preview.submit.url: `ftp://x/preview` must be an http:// or https:// URL",
            "endpoints.preview.poll.every: poll interval must be at least 1ms",
            "endpoints.preview.poll.backoff: backoff 20 is outside 1..10",
            "endpoints.preview.poll: give either `url` (polling) or `stream` (SSE), not both",
            "endpoints.preview.failed.reason",
            "endpoints.preview.metrics_compare: `metrics_compare` needs `metrics_url`",
            "endpoints.preview.labels.suite: `suite` is a label canary sets itself",
            "endpoints.preview.labels.9bad: `9bad` is not a valid label name",
            "endpoints.nodone: missing required key `done` for protocol `job`",
            "endpoints.nodone.metrics_compare.cache_hit: `cache_hit` is a ratio",
            "endpoints.nodone.metrics_compare.time_to_completion: `time_to_completion` is a latency",
            "endpoints.nodone.metrics_compare.latency_of_doom: unknown SLI",
            "endpoints.chat.done: `done` applies to `job` and `ws-opus`, not `openai-chat`",
            "endpoints.chat.submit: `submit` applies to protocol `job`",
            "endpoints.chat.container: `container` applies to ws-opus",
        ] {
            has(&e, needle);
        }
    }

    #[test]
    fn the_example_suites_load() {
        let s = load_suite(&fixture("probes/llama-mapper.yaml"), &ProcessEnv::default()).unwrap();
        assert_eq!(s.name, "llama-mapper");
        assert_eq!(s.probes.len(), 2);
        assert_eq!(s.probes[0].cases.len(), 15);
        assert_eq!(s.slos.len(), 6);
        let lat = &s.slos[0];
        assert_eq!(lat.sli, Sli::TimeToCompletion);
        assert_eq!(lat.threshold, Some(std::time::Duration::from_millis(250)));
        assert!((lat.objective - 0.95).abs() < 1e-12);
        assert!(lat.per_slice);
        assert!(s.endpoints["mapper"].schema.is_some());
    }

    #[test]
    fn every_mistake_is_reported_with_file_line_column_and_fix() {
        let e = errors_of("tests/fixtures/bad/many-mistakes.yaml");
        let f = "tests/fixtures/bad/many-mistakes.yaml";
        has(
            &e,
            &format!("{f}:2:11: labels.region: label `region` is set by canary itself"),
        );
        has(
            &e,
            &format!(
                "{f}:2:23: labels.bad-label: `bad-label` is not a valid Prometheus label name"
            ),
        );
        has(
            &e,
            &format!("{f}:4:12: defaults.timeout: unknown unit `minutes`"),
        );
        has(&e, "e.g. 250ms, 1.5s, 10m, 30d");
        has(&e, &format!("{f}:5:3: defaults.concurency: unknown key `concurency` (did you mean `concurrency`?)"));
        has(&e, &format!("{f}:8:15: endpoints.mapper.protocol: unknown value `http-jsn` (did you mean `http-json`?"));
        has(
            &e,
            &format!("{f}:12:10: endpoints.chat.url: `ftp://example.com/v1` has scheme `ftp`"),
        );
        has(
            &e,
            &format!(
                "{f}:13:5: endpoints.chat.methd: unknown key `methd` (did you mean `method`?)"
            ),
        );
        has(
            &e,
            &format!("{f}:14:23: endpoints.chat.fallback.json: invalid JSONPath"),
        );
        has(
            &e,
            &format!(
                "{f}:17:5: probes[0].endpont: unknown key `endpont` (did you mean `endpoint`?)"
            ),
        );
        has(
            &e,
            &format!(
                "{f}:20:15: probes[1].endpoint: unknown endpoint `chatt` (did you mean `chat`?)"
            ),
        );
        has(
            &e,
            &format!("{f}:21:13: probes[1].golden: cannot read golden set"),
        );
        has(
            &e,
            &format!("{f}:24:12: slos[0].probe: unknown probe `mapp` (did you mean `map`?)"),
        );
        has(&e, &format!("{f}:25:10: slos[0].sli: unknown SLI `time_to_first_visible_tokn` (did you mean `time_to_first_visible_token`?)"));
        has(
            &e,
            &format!("{f}:32:16: slos[1].objective: percentage `150%` is out of range"),
        );
        assert_eq!(e.len(), 15, "{}", e.join("\n"));
    }

    #[test]
    fn golden_errors_name_the_jsonl_line_and_requirements_name_the_missing_key() {
        let e = errors_of("tests/fixtures/bad/golden-errors.yaml");
        let g = "tests/fixtures/golden-bad.jsonl";
        has(
            &e,
            &format!("{g}:2:56: case: invalid JSON: EOF while parsing an object (each line"),
        );
        has(
            &e,
            &format!("{g}:3:16: case.slce: unknown key `slce` (did you mean `slice`?)"),
        );
        has(&e, &format!("{g}:4:2: id: duplicate case id `ok-1`"));
        has(&e, &format!("{g}:4:41: case.expect.regex: invalid regex: regex parse error: (unclosed error: unclosed group"));
        has(
            &e,
            &format!("{g}:4:63: case.expect.max_chars: wrong type: string \"ten\""),
        );
        has(
            &e,
            "slos[0].sli: `not_fallback` needs `fallback` on endpoint `mapper`",
        );
        has(
            &e,
            "slos[1].sli: protocol `http-json` does not produce `time_to_first_visible_token`",
        );
        has(
            &e,
            "slos[2].threshold: `success` is a ratio SLI and takes no threshold",
        );
        assert_eq!(e.len(), 8, "{}", e.join("\n"));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOLDEN: &str = "{\"id\": \"a\", \"slice\": \"s\", \"input\": {\"body\": {}}}\n";

    #[test]
    fn judged_keys_are_checked_where_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let suite = "suite: x\nendpoints:\n  c: { protocol: openai-chat, url: \"http://127.0.0.1:1/v1/chat/completions\" }\n  h: { protocol: http-json, url: \"http://127.0.0.1:1/x\" }\n  j: { protocol: openai-chat, url: \"http://127.0.0.1:1/v1/chat/completions\", stream: false }\nprobes:\n  - { name: ok, endpoint: c, golden: ok.jsonl, judge: { endpoint: j, rubric: \"be right\", samples: 3 }, similar: { endpoint: h } }\n  - { name: bad, endpoint: c, golden: bad.jsonl, judge: { endpoint: nope, rubric: r } }\n  - { name: cases, endpoint: c, golden: cases.jsonl }\n  - { name: plain, endpoint: h, golden: plain.jsonl }\n";
        write(
            dir.path(),
            "ok.jsonl",
            concat!(
                "{\"id\": \"a\", \"input\": {\"text\": \"q\"}, \"expect\": {\"reference\": \"r\", \"label\": \"pass\"}}\n",
                "{\"id\": \"b\", \"input\": {\"text\": \"q\"}, \"expect\": {\"judge\": {\"samples\": 5, \"threshold\": 0.7}}}\n",
                "{\"id\": \"c\", \"input\": {\"turns\": [{\"user\": \"hi\"}, {\"user\": \"and?\", \"expect\": {\"judge\": true}}]}}\n",
                "{\"id\": \"d\", \"input\": {\"text\": \"q\"}, \"expect\": {\"judge\": false}}\n",
            ),
        );
        write(
            dir.path(),
            "bad.jsonl",
            "{\"id\": \"a\", \"input\": {\"text\": \"q\"}}\n",
        );
        write(
            dir.path(),
            "cases.jsonl",
            concat!(
                "{\"id\": \"l\", \"input\": {\"text\": \"q\"}, \"expect\": {\"label\": \"pass\"}}\n",
                "{\"id\": \"m\", \"input\": {\"text\": \"q\"}, \"expect\": {\"label\": \"maybe\", \"judge\": {\"endpoint\": \"j\", \"rubric\": \"r\"}}}\n",
                "{\"id\": \"n\", \"input\": {\"text\": \"q\"}, \"expect\": {\"similar\": true, \"judge\": {\"endpoint\": \"h\", \"rubric\": \"r\"}}}\n",
                "{\"id\": \"o\", \"input\": {\"text\": \"q\"}, \"expect\": {\"judge\": {\"endpoint\": \"j\", \"rubric\": \"r\", \"samples\": 0, \"threshold\": 2}}}\n",
                "{\"id\": \"p\", \"input\": {\"text\": \"q\"}, \"expect\": {\"judge\": {\"endpoint\": \"j\"}}}\n",
                "{\"id\": \"q\", \"input\": {\"turns\": []}}\n",
                "{\"id\": \"r\", \"input\": {\"turns\": [{\"usr\": \"x\"}]}}\n",
                "{\"id\": \"s\", \"input\": {\"text\": \"q\"}, \"expect\": {\"reference\": \"r\", \"similar\": {\"endpoint\": \"c\"}}}\n",
            ),
        );
        write(
            dir.path(),
            "plain.jsonl",
            "{\"id\": \"t\", \"input\": {\"turns\": [{\"user\": \"hi\"}]}}\n",
        );
        let p = write(dir.path(), "s.yaml", suite);
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        for needle in [
            "probes[1].judge.endpoint: unknown judge endpoint `nope`",
            "cases.jsonl:1:48: case.expect.label: `label` grades the judge, and this case has no judge",
            "cases.jsonl:2:48: case.expect.label: label `maybe` is neither `pass` nor `fail`",
            "cases.jsonl:3:48: case.expect.similar: `similar` compares the answer with `expect.reference`",
            "case.expect.judge: the judge endpoint `h` is `http-json`; a judge is asked through a chat protocol",
            "case.expect.judge: judge threshold 2 is not between 0 and 1",
            "cases.jsonl:5:48: case.expect.judge: the judge has no rubric",
            "cases.jsonl:6:23: case.input.turns: `turns` must be a list of 1 to 32 turns",
            "case.input.turns[0]: unknown field `usr`",
            "case.expect.similar: the embeddings endpoint `c` is `openai-chat`; embeddings are asked with `http-json`",
            "plain.jsonl:1:23: case.input.turns: a conversation needs a chat protocol; endpoint `h` is `http-json`",
        ] {
            has(&text, needle);
        }
        assert!(
            !text.iter().any(|t| t.contains("ok.jsonl")),
            "{}",
            text.join("\n")
        );
        // A broken `turns` is one error, not also a missing `messages`.
        assert!(
            !text.iter().any(|t| t.contains("needs `input.messages`")),
            "{}",
            text.join("\n")
        );
        // The valid probe compiles: the probe's judge and similar, a case's override, a turn's
        // own judge, and `false`.
        write(
            dir.path(),
            "bad.jsonl",
            "{\"id\": \"a\", \"input\": {\"text\": \"q\"}}\n",
        );
        let ok = write(
            dir.path(),
            "ok.yaml",
            &suite
                .lines()
                .filter(|l| {
                    !l.contains("name: bad")
                        && !l.contains("name: cases")
                        && !l.contains("name: plain")
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let s = load_suite(&ok, &ProcessEnv::default()).unwrap();
        let cases = &s.probes[0].cases;
        let a = &cases[0].expect;
        assert_eq!(a.judge.as_ref().unwrap().samples, 3);
        assert_eq!(a.label, Some(true));
        assert!(
            a.similar.is_some(),
            "a reference brings the probe's similar"
        );
        let b = cases[1].expect.judge.as_ref().unwrap();
        assert_eq!((b.samples, b.threshold), (5, Some(0.7)));
        assert!(
            cases[1].expect.similar.is_none(),
            "no reference, no similar"
        );
        assert_eq!(cases[2].turns.len(), 2);
        assert!(
            cases[2].turns[0].expect.judge.is_none(),
            "turns judge only when asked"
        );
        assert!(cases[2].turns[1].expect.judge.is_some());
        assert!(
            cases[2].expect.judge.is_some(),
            "the probe's judge grades the conversation"
        );
        assert!(cases[3].expect.judge.is_none());
    }

    #[test]
    fn missing_env_var_duplicate_key_and_syntax_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "g.jsonl", GOLDEN);
        let p = write(
            dir.path(),
            "s.yaml",
            "suite: x\nendpoints:\n  e: { protocol: http-json, url: \"${CANARY_TEST_UNSET_VAR}/x\" }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl }\n  - { name: p, endpoint: e, golden: g.jsonl }\nsuite: y\n",
        );
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        has(
            &text,
            "s.yaml:3:34: endpoints.e.url: environment variable `CANARY_TEST_UNSET_VAR` is not set",
        );
        has(
            &text,
            "s.yaml:6:13: probes[1].name: duplicate probe name `p`",
        );
        has(&text, "s.yaml:7:1: suite: duplicate key");
        assert_eq!(text.len(), 3, "{}", text.join("\n"));
        let p = write(dir.path(), "bad.yaml", "suite: x\nendpoints: {\n");
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        assert_eq!(d.len(), 1);
        assert!(
            d[0].to_string()
                .contains("bad.yaml:3:1: (syntax): invalid YAML"),
            "{}",
            d[0]
        );
        // A key indented one space short of its siblings: the hint names the line and the
        // indentation the lines above use.
        let p = write(
            dir.path(),
            "indent.yaml",
            "suite: t\nendpoints:\n  chat:\n    protocol: openai-chat\n   url: http://x\n",
        );
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text = d[0].to_string();
        assert!(
            text.contains("line 5 is indented 3 spaces, but the lines above use 0, 2, 4"),
            "{text}"
        );
        let p = write(dir.path(), "tab.yaml", "suite: t\nendpoints:\n\tchat: {}\n");
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        assert!(d[0].to_string().contains("tab"), "{}", d[0]);
    }

    #[test]
    fn secrets_from_env_and_files_are_registered_and_not_in_the_model_debug() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "g.jsonl", GOLDEN);
        write(dir.path(), "token", "file-token-abcdef\n");
        let p = write(
            dir.path(),
            "s.yaml",
            "suite: x\nendpoints:\n  e:\n    protocol: http-json\n    url: \"http://127.0.0.1:1/x\"\n    headers: { authorization: \"Bearer ${file:token}\", x-other: \"${CANARY_TEST_HDR:-hdr-value-123}\" }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl }\n",
        );
        let s = load_suite(&p, &ProcessEnv::default()).unwrap();
        let debug = format!("{:?}", s.endpoints["e"]);
        assert!(!debug.contains("file-token-abcdef"), "{debug}");
        assert_eq!(
            crate::secret::redact("x file-token-abcdef hdr-value-123"),
            "x *** ***"
        );
    }

    #[test]
    fn protocol_requirements_and_matcher_shapes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "g.jsonl", GOLDEN);
        let p = write(
            dir.path(),
            "s.yaml",
            "suite: x\nendpoints:\n  e:\n    protocol: http-json\n    method: FETCH\n    tier: { json: \"$.m\", header: x }\n    cache: { header: x-cache, hit: HIT, regex: H }\n  v: { protocol: ws-opus, url: \"http://x/\" }\n  j: { protocol: job }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl, stall: 0s }\n",
        );
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        has(
            &text,
            "endpoints.e: missing required key `url` for protocol `http-json`",
        );
        has(&text, "endpoints.e.method: unknown HTTP method `FETCH`");
        has(
            &text,
            "endpoints.e.tier: give either `json` or `header`, not both",
        );
        has(
            &text,
            "endpoints.e.cache: give at most one of `equals`, `hit` and `regex`",
        );
        has(
            &text,
            "endpoints.v.url: `http://x/` has scheme `http` (scheme must be `ws`, `wss`)",
        );
        has(
            &text,
            "endpoints.j: missing required key `submit` for protocol `job`",
        );
        has(&text, "probes[0].stall: stall must be more than zero");
    }

    #[test]
    fn schedules_are_parsed_once_at_load_and_their_errors_located() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "g.jsonl", GOLDEN);
        let ep = "endpoints:\n  e: { protocol: http-json, url: \"http://127.0.0.1:1/x\" }\n";
        // The model carries the parsed schedule: the probe's own, else the default.
        let p = write(
            dir.path(),
            "ok.yaml",
            &format!("suite: x\ndefaults: {{ schedule: \"@hourly\" }}\n{ep}probes:\n  - {{ name: p, endpoint: e, golden: g.jsonl, sample: {{ per_tick: 1 }} }}\n  - {{ name: q, endpoint: e, golden: g.jsonl, schedule: \"*/5 * * * *\" }}\n"),
        );
        let s = load_suite(&p, &ProcessEnv::default()).unwrap();
        let at = |i: usize| s.probes[i].schedule.as_ref().unwrap();
        assert_eq!(at(0).expr, "@hourly");
        assert_eq!(at(0).ticks_per_day().unwrap(), 24);
        assert_eq!(at(1).expr, "*/5 * * * *");
        assert_eq!(at(1).period(), std::time::Duration::from_secs(300));
        assert_eq!(s.defaults.schedule.as_ref().unwrap().expr, "@hourly");
        // An invalid default is reported where it is written, and again on a rotation that
        // would tick over it; an invalid schedule of a rotating probe twice, as before the
        // model held parsed schedules.
        let p = write(
            dir.path(),
            "bad.yaml",
            &format!("suite: x\ndefaults: {{ schedule: \"bad\" }}\n{ep}probes:\n  - {{ name: p, endpoint: e, golden: g.jsonl, sample: {{ per_tick: 1 }} }}\n  - {{ name: q, endpoint: e, golden: g.jsonl, schedule: \"0 9 * * 8\", sample: {{ per_tick: 1 }} }}\n  - {{ name: r, endpoint: e, golden: g.jsonl, schedule: \"*/5 9-17 * * *\", sample: {{ per_tick: 1 }} }}\n"),
        );
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text: Vec<String> = d
            .iter()
            .map(|d| {
                d.to_string()
                    .replace(&format!("{}/", dir.path().display()), "")
            })
            .collect();
        let fields =
            "has 1 fields; expected 5 (minute hour day month weekday) or 6 (seconds first)";
        let range = "weekday 8 is out of range; expected 0-7 (Sunday = 0 or 7) or MON-SUN";
        assert_eq!(
            text,
            [
                format!("bad.yaml:2:23: defaults.schedule: schedule `bad` {fields} (5 or 6 fields, e.g. \"*/5 * * * *\" (every 5 minutes))"),
                format!("bad.yaml:6:5: probes[0].schedule: schedule `bad` {fields}"),
                format!("bad.yaml:7:56: probes[1].schedule: {range}"),
                format!("bad.yaml:7:56: probes[1].schedule: {range}"),
                "bad.yaml:8:56: probes[2].schedule: `*/5 9-17 * * *` fires at uneven intervals; a rotation needs evenly spaced ticks (e.g. `*/5 * * * *`)".to_string(),
            ]
        );
    }

    #[test]
    fn stall_on_a_json_endpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "g.jsonl", GOLDEN);
        let p = write(
            dir.path(),
            "s.yaml",
            "suite: x\nendpoints:\n  e: { protocol: http-json, url: \"http://127.0.0.1:1/x\" }\nprobes:\n  - { name: p, endpoint: e, golden: g.jsonl, stall: 2s }\n",
        );
        let d = load_suite(&p, &ProcessEnv::default()).unwrap_err();
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        has(
            &text,
            "probes[0].stall: `stall` applies to streamed answers (chat, voice), not `http-json`",
        );
    }
}
