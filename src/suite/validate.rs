//! Stage two of suite loading: typed deserialization item by item, collecting every error,
//! then the validation pass (references, protocol requirements, compiled paths, regexes and
//! schemas). Every error names file, line, column and field, and says what would be valid.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diag::{list, suggest, Diagnostic};
use super::golden;
use super::interp::{interpolate_tree, Env};
use super::model::*;
use super::raw::*;
use super::yaml::{self, path_string, Node, Seg};
use crate::check::extract::{compile_path, Cond, Extractor, Matcher, Source};
use crate::measure::sli::{Sli, SliKind};

/// Label names canary sets itself; a suite's constant labels must not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "region", "suite", "endpoint", "probe", "slice", "tier", "status", "check", "outcome", "slo",
    "good", "le", "job", "instance", "sli", "kind", "passed", "phrase",
];

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

/// Loading context: the file, its tree and the errors found so far.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub tree: &'a Node,
    pub diags: Vec<Diagnostic>,
    /// What loads but probably does not do what the user meant (printed by `validate` and
    /// `rules`, never failing the load).
    pub warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(crate) fn warn(&mut self, path: &[Seg], message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.tree.pos_at(path);
        self.warnings.push(Diagnostic::new(
            self.file,
            Some(pos),
            path_string(path),
            message,
        ));
        self.warnings.last_mut().expect("just pushed")
    }

    pub(crate) fn err(&mut self, path: &[Seg], message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.tree.pos_at(path);
        self.diags.push(Diagnostic::new(
            self.file,
            Some(pos),
            path_string(path),
            message,
        ));
        self.diags.last_mut().expect("just pushed")
    }

    pub(crate) fn key_err(&mut self, path: &[Seg], message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.tree.key_pos_at(path);
        self.diags.push(Diagnostic::new(
            self.file,
            Some(pos),
            path_string(path),
            message,
        ));
        self.diags.last_mut().expect("just pushed")
    }

    pub(crate) fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

pub(crate) fn p(prefix: &[Seg], more: &[Seg]) -> Vec<Seg> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(more);
    v
}

pub(crate) fn k(s: &str) -> Seg {
    Seg::Key(s.to_string())
}

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

/// Deserializes `value` as `T`, reporting every key that is unknown or of the wrong type
/// (each is removed and deserialization retried), then any missing required key.
pub(crate) fn collect<T: DeserializeOwned>(
    mut value: Value,
    prefix: &[Seg],
    ctx: &mut Ctx,
) -> Option<T> {
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    for _ in 0..64 {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            // Keys removed above were reported; the rest is still worth validating.
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut path: Vec<Seg> = prefix.to_vec();
        let mut rel: Vec<Seg> = Vec::new();
        for seg in err.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => rel.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => rel.push(Seg::Index(*index)),
                _ => {}
            }
        }
        let msg = err.inner().to_string();
        if let Some(field) = between(&msg, "unknown field `", "`") {
            if rel.last() != Some(&Seg::Key(field.clone())) {
                rel.push(Seg::Key(field.clone()));
            }
            path.extend(rel.iter().cloned());
            let expected = backticked_after(&msg, "expected");
            let names: Vec<&str> = expected.iter().map(String::as_str).collect();
            let hint = if names.is_empty() {
                "this map takes no keys".to_string()
            } else {
                suggest(&field, &names)
            };
            ctx.key_err(&path, format!("unknown key `{field}`")).hint = Some(hint);
        } else if let Some(field) = between(&msg, "missing field `", "`") {
            let mut full = p(&path, &rel);
            full.push(Seg::Key(field.clone()));
            if !removed.contains(&full) {
                path.extend(rel.iter().cloned());
                ctx.err(&path, format!("missing required key `{field}`"));
            }
            return None;
        } else if let Some(variant) = between(&msg, "unknown variant `", "`") {
            path.extend(rel.iter().cloned());
            let expected = backticked_after(&msg, "expected");
            let names: Vec<&str> = expected.iter().map(String::as_str).collect();
            let hint = match super::diag::nearest(&variant, names.iter().copied()) {
                Some(n) => format!("did you mean `{n}`? valid: {}", list(&names)),
                None => format!("valid: {}", list(&names)),
            };
            ctx.err(&path, format!("unknown value `{variant}`")).hint = Some(hint);
        } else {
            path.extend(rel.iter().cloned());
            ctx.err(&path, humanize(&msg));
        }
        if rel.is_empty() || !remove_at(&mut value, &rel) {
            return None;
        }
        removed.push(path);
    }
    None
}

fn humanize(msg: &str) -> String {
    msg.replace("invalid type: ", "wrong type: ")
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(s[i..j].to_string())
}

fn backticked_after(s: &str, marker: &str) -> Vec<String> {
    let Some(i) = s.find(marker) else {
        return vec![];
    };
    s[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

pub(crate) fn remove_at(value: &mut Value, path: &[Seg]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parent {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
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
    let defaults = build_defaults(top.get("defaults"), ctx);

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
                    if let Some(pr) =
                        build_probe(raw, &defaults, &endpoints, &endpoint_names, &path, ctx)
                    {
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

/// `cardinality: { per_slice: [SLI...], max_series: N }`.
fn build_cardinality(v: Option<&Value>, ctx: &mut Ctx) -> Cardinality {
    let mut c = Cardinality::default();
    let Some(raw) = v.and_then(|v| collect::<RawCardinality>(v.clone(), &[k("cardinality")], ctx))
    else {
        return c;
    };
    if let Some(list) = raw.per_slice {
        let mut slis = Vec::new();
        for (i, name) in list.0.iter().enumerate() {
            match Sli::parse(name).filter(|s| s.kind() == SliKind::Latency) {
                Some(s) => slis.push(s),
                None => {
                    let names: Vec<&str> = Sli::ALL
                        .iter()
                        .filter(|s| s.kind() == SliKind::Latency)
                        .map(|s| s.name())
                        .collect();
                    ctx.err(
                        &[k("cardinality"), k("per_slice"), Seg::Index(i)],
                        format!("`{name}` is not a latency SLI (only histograms are kept per slice or not)"),
                    )
                    .hint = Some(suggest(name, &names));
                }
            }
        }
        c.per_slice = Some(slis);
    }
    c.max_series = raw.max_series;
    c
}

/// Checks the suite's series against `cardinality.max_series`, and that every rotation
/// covers its cases within its `coverage`.
fn check_series_budget(s: Suite, ctx: &mut Ctx) -> Option<Suite> {
    if s.probes
        .iter()
        .any(|p| p.sampling.as_ref().is_some_and(|x| x.coverage.is_some()))
    {
        let plan = crate::schedule::plan::plan(&s);
        for (i, pp) in plan
            .probes
            .iter()
            .enumerate()
            .filter(|(_, pp)| !pp.coverage_ok)
        {
            let need = pp
                .coverage_seconds
                .map(|c| format!("{:.0}s", c))
                .unwrap_or_else(|| "never (the budget runs no case)".into());
            ctx.err(
                &[k("probes"), Seg::Index(i), k("coverage")],
                format!(
                    "probe `{}` runs {:.2} of its {} cases per tick: every case runs only every {need}, longer than its coverage of {:.0}s",
                    pp.probe,
                    pp.cases_per_tick,
                    pp.cases,
                    pp.coverage_required.unwrap_or(0.0)
                ),
            )
            .hint = Some("raise the budget or `per_tick`, lengthen `coverage`, or run the schedule more often; `canary plan` shows the numbers".into());
        }
    }
    if let Some(max) = s.cardinality.max_series {
        let count = crate::sink::metrics::series_count(&s);
        if count.max() > max {
            ctx.err(
                &[k("cardinality"), k("max_series")],
                format!(
                    "the suite can create {} series ({} always, up to {} more from response values), over max_series {max}",
                    count.max(),
                    count.fixed,
                    count.dynamic_max
                ),
            )
            .hint = Some("keep fewer SLIs per slice (`cardinality.per_slice`), fewer slices, or raise max_series; `canary plan` shows where the series come from".into());
        }
    }
    Some(s)
}

/// `buckets: { SLI: [upper bounds in seconds] }` for latency SLIs.
fn build_buckets(v: Option<&Value>, ctx: &mut Ctx) -> BTreeMap<Sli, Vec<f64>> {
    let mut out = BTreeMap::new();
    let Some(v) = v else {
        return out;
    };
    let Some(map) = v.as_object() else {
        ctx.err(
            &[k("buckets")],
            "`buckets` must map SLI names to lists of seconds",
        )
        .hint = Some("e.g. `buckets: { time_to_completion: [0.1, 0.5, 1, 2, 4, 8, 16] }`".into());
        return out;
    };
    for (name, list) in map {
        let path = [k("buckets"), k(name)];
        let Some(sli) = Sli::parse(name).filter(|s| s.kind() == SliKind::Latency) else {
            let names: Vec<&str> = Sli::ALL
                .iter()
                .filter(|s| s.kind() == SliKind::Latency)
                .map(|s| s.name())
                .collect();
            ctx.key_err(&path, format!("`{name}` is not a latency SLI"))
                .hint = Some(suggest(name, &names));
            continue;
        };
        let values: Option<Vec<f64>> = list
            .as_array()
            .map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .unwrap_or(None);
        match values {
            Some(mut b) if !b.is_empty() && b.iter().all(|x| x.is_finite() && *x > 0.0) => {
                b.sort_by(f64::total_cmp);
                b.dedup();
                out.insert(sli, b);
            }
            _ => {
                ctx.err(&path, "buckets must be a non-empty list of positive numbers of seconds (`+Inf` is implied)")
                    .hint = Some("e.g. [0.1, 0.5, 1, 2, 4, 8, 16]".into());
            }
        }
    }
    out
}

fn build_gate(v: Option<&Value>, ctx: &mut Ctx) -> GateSettings {
    let mut g = GateSettings::default();
    let Some(raw) = v.and_then(|v| collect::<RawGate>(v.clone(), &[k("gate")], ctx)) else {
        return g;
    };
    if let Some(c) = raw.confidence {
        if c.0 < 0.5 || c.0 >= 1.0 {
            ctx.err(
                &[k("gate"), k("confidence")],
                "confidence must be at least 50% and below 100%",
            )
            .hint = Some("e.g. 95%".into());
        }
        g.confidence = c.0;
    }
    if let Some(t) = raw.latency_tolerance {
        g.latency_tolerance = t.0;
    }
    if let Some(t) = raw.ratio_tolerance {
        g.ratio_tolerance = t.0;
    }
    if let Some(q) = raw.quantile {
        g.quantile = q.0;
    }
    if let Some(m) = raw.min_runs {
        if m < 2 {
            ctx.err(&[k("gate"), k("min_runs")], "min_runs must be at least 2");
        }
        g.min_runs = m;
    }
    if let Some(list) = raw.allowed_hosts.map(|l| l.0) {
        g.allowed_hosts = Some(allowed_hosts(&list, ctx));
    }
    for (i, name) in raw
        .slis
        .map(|s| s.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match Sli::parse(&name) {
            Some(s) => g.slis.push(s),
            None => {
                let names = Sli::names();
                ctx.err(
                    &[k("gate"), k("slis"), Seg::Index(i)],
                    format!("unknown SLI `{name}`"),
                )
                .hint = Some(suggest(&name, &names));
            }
        }
    }
    g
}

/// `gate.allowed_hosts`: every entry a host pattern, at least one.
fn allowed_hosts(list: &[String], ctx: &mut Ctx) -> Vec<super::hosts::HostPattern> {
    if list.is_empty() {
        ctx.err(
            &[k("gate"), k("allowed_hosts")],
            "allowed_hosts is empty: no gate could target anything",
        )
        .hint = Some(
            "list the hosts candidates run on, e.g. [canary.example.com, \"*.staging.example.com:8443\"], or remove the key".into(),
        );
    }
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match super::hosts::HostPattern::parse(entry) {
            Ok(p) => out.push(p),
            Err(e) => {
                ctx.err(&[k("gate"), k("allowed_hosts"), Seg::Index(i)], e)
                    .hint =
                    Some("host, host:port, *.domain or [IPv6]:port; no scheme or path".into());
            }
        }
    }
    out
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn build_defaults(v: Option<&Value>, ctx: &mut Ctx) -> Defaults {
    let path = [k("defaults")];
    let raw = v
        .and_then(|v| collect::<RawDefaults>(v.clone(), &path, ctx))
        .unwrap_or_default();
    let mut d = Defaults {
        timeout: raw.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
        runs: raw.runs.unwrap_or(1),
        concurrency: raw
            .concurrency
            .map(|c| c as usize)
            .unwrap_or(DEFAULT_CONCURRENCY),
        schedule: raw.schedule.clone(),
        max_body: raw.max_body.map(|b| b.0).unwrap_or(DEFAULT_MAX_BODY),
    };
    if d.timeout.is_zero() {
        ctx.err(&p(&path, &[k("timeout")]), "timeout must be more than zero")
            .hint = Some("e.g. 30s".into());
        d.timeout = DEFAULT_TIMEOUT;
    }
    if d.runs == 0 {
        ctx.err(&p(&path, &[k("runs")]), "runs must be at least 1");
    }
    if d.concurrency == 0 {
        ctx.err(
            &p(&path, &[k("concurrency")]),
            "concurrency must be at least 1",
        );
    }
    if d.max_body == 0 {
        ctx.err(
            &p(&path, &[k("max_body")]),
            "max_body must be more than zero",
        )
        .hint = Some("e.g. 16MiB".into());
    }
    if let Some(s) = &raw.schedule {
        if let Err(e) = check_cron(s) {
            ctx.err(&p(&path, &[k("schedule")]), e).hint =
                Some("5 or 6 fields, e.g. \"*/5 * * * *\" (every 5 minutes)".into());
        }
    }
    d
}

/// An endpoint's network keys (`http:`), each problem named by key.
fn net_settings(
    raw: &mut RawEndpoint,
    proto: Protocol,
    path: &[Seg],
    ctx: &mut Ctx,
) -> crate::drivers::transport::Net {
    use crate::drivers::transport::{HttpVersion, Net};
    let mut net = Net::default();
    if let Some(v) = raw.http.take() {
        match HttpVersion::parse(&v) {
            Some(_) if proto.is_websocket() => {
                ctx.err(
                    &p(path, &[k("http")]),
                    format!(
                        "`http` applies to protocols over HTTP, not the WebSocket protocol `{}`",
                        proto.as_str()
                    ),
                );
            }
            Some(h) => net.http = h,
            None => {
                ctx.err(&p(path, &[k("http")]), format!("unknown HTTP version {v}"))
                    .hint = Some("`auto` (HTTP/2 when the server offers it), `1.1` or `2`".into());
            }
        }
    }
    super::net::build(&mut net, raw, proto, path, ctx);
    net
}

/// Builds an endpoint's TLS client configuration from PEM files (paths relative to the
/// suite): a CA added to the system roots, and a client certificate chain with its key.
fn tls_config(t: RawTls, path: &[Seg], ctx: &mut Ctx) -> Option<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let dir = ctx.dir();
    let mut roots = crate::tls::system_roots();
    let mut ok = true;
    if let Some(ca) = &t.ca {
        let file = dir.join(ca);
        match CertificateDer::pem_file_iter(&file).map(|i| i.collect::<Result<Vec<_>, _>>()) {
            Ok(Ok(certs)) if !certs.is_empty() => {
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    ctx.err(
                        &p(path, &[k("ca")]),
                        format!("{}: no usable CA certificate", file.display()),
                    );
                    ok = false;
                }
            }
            _ => {
                ctx.err(
                    &p(path, &[k("ca")]),
                    format!("{}: not a readable PEM certificate file", file.display()),
                )
                .hint = Some("a PEM file with one or more `BEGIN CERTIFICATE` blocks".into());
                ok = false;
            }
        }
    }
    let client = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(c), Some(kf)) => {
            let cfile = dir.join(c);
            let kfile = dir.join(kf);
            let chain =
                CertificateDer::pem_file_iter(&cfile).map(|i| i.collect::<Result<Vec<_>, _>>());
            let key = PrivateKeyDer::from_pem_file(&kfile);
            match (chain, key) {
                (Ok(Ok(chain)), Ok(key)) if !chain.is_empty() => Some((chain, key)),
                (chain, key) => {
                    if !matches!(chain, Ok(Ok(ref c)) if !c.is_empty()) {
                        ctx.err(
                            &p(path, &[k("cert")]),
                            format!("{}: not a readable PEM certificate chain", cfile.display()),
                        );
                    }
                    if key.is_err() {
                        ctx.err(
                            &p(path, &[k("key")]),
                            format!("{}: not a readable PEM private key", kfile.display()),
                        );
                    }
                    ok = false;
                    None
                }
            }
        }
        _ => {
            ctx.err(path, "a client certificate needs both `cert` and `key`");
            ok = false;
            None
        }
    };
    if !ok {
        return None;
    }
    match crate::tls::client_config(roots, client) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.err(path, e);
            None
        }
    }
}

/// The suite's `escalation_phrases` (a string or a list).
fn suite_escalation_phrases(v: Option<&Value>, ctx: &mut Ctx) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    match collect::<super::units::OneOrMany>(v.clone(), &[k("escalation_phrases")], ctx) {
        Some(list) => list
            .0
            .iter()
            .map(|p| crate::check::escalation::normalize(p))
            .filter(|p| !p.is_empty())
            .collect(),
        None => Vec::new(),
    }
}

/// Checks a cron schedule with the real parser.
fn check_cron(s: &str) -> Result<(), String> {
    crate::schedule::cron::parse(s).map(|_| ())
}

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn build_endpoint(
    name: &str,
    mut raw: RawEndpoint,
    defaults: &Defaults,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Endpoint> {
    let before = ctx.diags.len();
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || name.is_empty()
    {
        ctx.key_err(
            path,
            format!("endpoint name `{name}` has characters that are unsafe in a label"),
        )
        .hint = Some("use letters, digits, `_`, `-` and `.`".into());
    }
    let proto = raw.protocol;
    let url_path = p(path, &[k("url")]);
    let (schemes, needs_url): (&[&str], bool) = match proto {
        Protocol::HttpJson
        | Protocol::OpenaiChat
        | Protocol::OpenaiResponses
        | Protocol::AnthropicMessages => (&["http", "https"], true),
        Protocol::Stream
        | Protocol::Gemini
        | Protocol::Ollama
        | Protocol::Tgi
        | Protocol::BedrockConverse => (&["http", "https"], true),
        Protocol::WsOpus | Protocol::Realtime | Protocol::WsJsonAudio => (&["ws", "wss"], true),
        Protocol::HttpAudio => (&["http", "https"], true),
        Protocol::Job => (&["http", "https"], false),
    };
    let url = raw.url.clone().unwrap_or_default();
    if needs_url {
        match &raw.url {
            None => {
                ctx.err(
                    path,
                    format!(
                        "missing required key `url` for protocol `{}`",
                        proto.as_str()
                    ),
                )
                .hint = Some(format!(
                    "e.g. `url: \"{}://127.0.0.1:7070/...\"`",
                    schemes[0]
                ));
            }
            Some(u) => {
                // `{model}` in a described stream's URL is filled per case.
                if let Err(e) = check_url(&u.replace("{model}", "model"), schemes) {
                    ctx.err(&url_path, e).hint = Some(format!("scheme must be {}", list(schemes)));
                }
            }
        }
    }
    let method = match raw.method.as_deref() {
        None => http::Method::POST,
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            if HTTP_METHODS.contains(&upper.as_str()) {
                http::Method::from_bytes(upper.as_bytes()).unwrap_or(http::Method::POST)
            } else {
                ctx.err(
                    &p(path, &[k("method")]),
                    format!("unknown HTTP method `{m}`"),
                )
                .hint = Some(format!("valid: {}", list(HTTP_METHODS)));
                http::Method::POST
            }
        }
    };
    // Credentials over plain text to a host that is not this machine need an explicit opt-in.
    let sends_secret = raw
        .headers
        .keys()
        .any(|h| crate::secret::is_sensitive_header(h))
        || raw.auth.is_some();
    if sends_secret && !raw.allow_insecure.unwrap_or(false) {
        let target = match &raw.submit {
            Some(s) => s.url.clone(),
            None => raw.url.clone().unwrap_or_default(),
        };
        if let Ok(uri) = target.replace("{id}", "x").parse::<http::Uri>() {
            let plain = matches!(uri.scheme_str(), Some("http") | Some("ws"));
            let host = uri
                .host()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if plain && !loopback {
                ctx.err(
                    &url_path,
                    format!("credentials (`headers` or `auth`) would travel in clear text to `{host}`"),
                )
                .hint = Some("use https:// (or wss://), or set `allow_insecure: true` on the endpoint if the network is trusted".into());
            }
        }
    }
    let mut headers = Vec::new();
    for (hname, hval) in &raw.headers {
        let hpath = p(path, &[k("headers"), k(hname)]);
        let Ok(n) = http::HeaderName::from_bytes(hname.as_bytes()) else {
            ctx.key_err(&hpath, format!("`{hname}` is not a valid HTTP header name"));
            continue;
        };
        if crate::secret::is_sensitive_header(hname) {
            crate::secret::register(hval);
        }
        match http::HeaderValue::from_str(hval) {
            Ok(mut v) => {
                if crate::secret::is_sensitive_header(hname) {
                    v.set_sensitive(true);
                }
                headers.push((n, v))
            }
            Err(_) => {
                ctx.err(&hpath, "header value has characters HTTP does not allow (newline or control character)");
            }
        }
    }
    let (voice, problems) = super::voice::build(&raw);
    for pr in problems {
        let d = ctx.err(&p(path, &[k(pr.key)]), pr.message);
        d.hint = pr.hint;
    }
    let price = raw.price.take().and_then(|pr| {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !ok(pr.input_per_mtok) || !ok(pr.output_per_mtok) {
            ctx.err(
                &p(path, &[k("price")]),
                "prices must be zero or more dollars per million tokens",
            )
            .hint = Some("e.g. `price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }`".into());
            return None;
        }
        Some(Price {
            input_per_mtok: pr.input_per_mtok,
            output_per_mtok: pr.output_per_mtok,
        })
    });
    if raw.max_tokens.is_some() && !proto.is_chat() {
        ctx.err(
            &p(path, &[k("max_tokens")]),
            format!(
                "`max_tokens` applies to chat protocols, not `{}`",
                proto.as_str()
            ),
        );
    }
    let tls = raw
        .tls
        .take()
        .and_then(|t| tls_config(t, &p(path, &[k("tls")]), ctx));
    let net = net_settings(&mut raw, proto, path, ctx);
    let job = super::job::build(&mut raw, path, ctx);
    let metrics = super::job::target_metrics(&mut raw, path, ctx);
    let labels = super::job::labels(&mut raw, path, ctx);
    let tier = raw.tier.and_then(|t| {
        let tpath = p(path, &[k("tier")]);
        let source = source_of(t.json.as_deref(), t.header.as_deref(), &tpath, ctx)?;
        Some(TierSpec {
            extractor: Extractor { source },
            primary: t.primary.map(|p| p.0).unwrap_or_default(),
        })
    });
    let answer = raw.answer.and_then(|a| {
        let apath = p(path, &[k("answer")]);
        if a.primary.is_some() {
            ctx.err(
                &p(&apath, &[k("primary")]),
                "`primary` belongs to `tier`, not `answer`",
            );
        }
        Some(Extractor {
            source: source_of(a.json.as_deref(), a.header.as_deref(), &apath, ctx)?,
        })
    });
    let fallback = raw
        .fallback
        .and_then(|m| matcher(m, &p(path, &[k("fallback")]), ctx));
    let cache = raw
        .cache
        .and_then(|m| matcher(m, &p(path, &[k("cache")]), ctx));
    let (escalation, escalation_phrases) = match raw.escalation {
        None => (
            None,
            // Text answers are searched for the usual hand-off and refusal phrases.
            (proto.is_chat() || proto.is_voice()).then(|| EscalationPhrases {
                builtin: true,
                extra: Vec::new(),
            }),
        ),
        Some(e) => {
            let epath = p(path, &[k("escalation")]);
            let m = if e.json.is_some() || e.header.is_some() {
                matcher(
                    RawMatcher {
                        json: e.json,
                        header: e.header,
                        equals: e.equals,
                        hit: None,
                        regex: e.regex,
                    },
                    &epath,
                    ctx,
                )
            } else {
                if e.equals.is_some() || e.regex.is_some() {
                    ctx.err(&epath, "`equals` / `regex` need `json` or `header`");
                }
                None
            };
            let extra: Vec<String> = e
                .phrases
                .map(|p| p.0)
                .unwrap_or_default()
                .into_iter()
                .map(|p| crate::check::escalation::normalize(&p))
                .filter(|p| !p.is_empty())
                .collect();
            let builtin = e.builtin.unwrap_or(proto.is_chat() || proto.is_voice());
            let phrases =
                (builtin || !extra.is_empty()).then_some(EscalationPhrases { builtin, extra });
            (m, phrases)
        }
    };
    let schema = raw.schema.as_deref().and_then(|s| {
        let dir = ctx.dir();
        match load_schema(&dir, s) {
            Ok(sc) => Some(sc),
            Err((msg, hint)) => {
                ctx.err(&p(path, &[k("schema")]), msg).hint = Some(hint);
                None
            }
        }
    });
    let timeout = raw.timeout.map(|d| d.0).unwrap_or(defaults.timeout);
    if timeout.is_zero() {
        ctx.err(&p(path, &[k("timeout")]), "timeout must be more than zero");
    }
    let max_body = raw.max_body.map(|b| b.0).unwrap_or(defaults.max_body);
    if max_body == 0 {
        ctx.err(
            &p(path, &[k("max_body")]),
            "max_body must be more than zero",
        );
    }
    let audio_events = matches!(proto, Protocol::HttpAudio | Protocol::WsJsonAudio);
    let stream_spec = if proto.is_described()
        || (audio_events && (raw.stream.is_some() || proto == Protocol::WsJsonAudio))
    {
        super::stream::build(proto, raw.stream.as_ref(), path, ctx)
    } else {
        if proto.is_chat() && raw.stream.as_ref().is_some_and(|v| !v.is_boolean()) {
            ctx.err(
                &p(path, &[k("stream")]),
                format!(
                    "for protocol `{}`, `stream` is `true` or `false`",
                    proto.as_str()
                ),
            )
            .hint = Some(
                "a stream description needs `protocol: stream` (or a built-in such as `gemini`)"
                    .into(),
            );
        }
        None
    };
    if !proto.is_chat() {
        for (key, present) in [
            ("stream", raw.stream.is_some() && !audio_events),
            ("params", raw.params.is_some()),
        ] {
            if present {
                ctx.err(
                    &p(path, &[k(key)]),
                    format!(
                        "`{key}` applies to chat protocols, not `{}`",
                        proto.as_str()
                    ),
                );
            }
        }
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(Endpoint {
        name: name.to_string(),
        protocol: proto,
        method,
        headers,
        model: raw.model,
        tier,
        fallback,
        cache,
        escalation,
        escalation_phrases,
        price,
        max_tokens: raw.max_tokens,
        tls,
        net,
        schema,
        answer,
        timeout,
        max_body,
        stream: raw.stream.as_ref().and_then(Value::as_bool).unwrap_or(true),
        stream_spec,
        params: raw.params.unwrap_or_default(),
        voice,
        url: match &job {
            Some(j) => j.submit_url.clone(),
            None => url,
        },
        job,
        metrics,
        labels,
        traceparent: raw.traceparent.unwrap_or(true),
    })
}

fn check_url(u: &str, schemes: &[&str]) -> Result<(), String> {
    // Credentials in a URL (`user:pass@host`) are secrets: register them before any message.
    if let Some(rest) = u.split_once("://").map(|(_, r)| r) {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            crate::secret::register(userinfo);
            for part in userinfo.split(':') {
                crate::secret::register(part);
            }
            return Err(format!(
                "`{}` carries credentials; put them in `headers` from ${{ENV}} or ${{file:...}} instead",
                crate::secret::redact(u)
            ));
        }
    }
    let shown = crate::secret::redact(u);
    let uri: http::Uri = u
        .parse()
        .map_err(|e| format!("`{shown}` is not a valid URL: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if !schemes.contains(&scheme) {
        return Err(if scheme.is_empty() {
            format!("`{shown}` has no scheme")
        } else {
            format!("`{shown}` has scheme `{scheme}`")
        });
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` has no host"));
    }
    Ok(())
}

pub(crate) fn source_of(
    json: Option<&str>,
    header: Option<&str>,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Source> {
    match (json, header) {
        (Some(j), None) => match Source::json(j) {
            Ok(s) => Some(s),
            Err(e) => {
                ctx.err(&p(path, &[k("json")]), e);
                None
            }
        },
        (None, Some(h)) => match Source::header(h) {
            Ok(s) => Some(s),
            Err(e) => {
                ctx.err(&p(path, &[k("header")]), e);
                None
            }
        },
        (Some(_), Some(_)) => {
            ctx.err(path, "give either `json` or `header`, not both");
            None
        }
        (None, None) => {
            ctx.err(path, "missing where to read the value").hint =
                Some("add `json: \"$.path\"` or `header: name`".into());
            None
        }
    }
}

pub(crate) fn matcher(m: RawMatcher, path: &[Seg], ctx: &mut Ctx) -> Option<Matcher> {
    let source = source_of(m.json.as_deref(), m.header.as_deref(), path, ctx);
    let conds = [m.equals.is_some(), m.hit.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if conds > 1 {
        ctx.err(path, "give at most one of `equals`, `hit` and `regex`");
        return None;
    }
    let cond = if let Some(v) = m.equals.or(m.hit) {
        Cond::Equals(v)
    } else if let Some(r) = m.regex {
        match Regex::new(&r) {
            Ok(re) => Cond::Regex(re),
            Err(e) => {
                ctx.err(&p(path, &[k("regex")]), format!("invalid regex: {e}"));
                return None;
            }
        }
    } else {
        Cond::Truthy
    };
    Some(Matcher {
        source: source?,
        cond,
    })
}

/// Reads and compiles a JSON schema file relative to `dir`.
pub(crate) fn load_schema(dir: &Path, rel: &str) -> Result<Schema, (String, String)> {
    let path = normalize(&dir.join(rel));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        (
            format!("cannot read schema `{}`: {e}", path.display()),
            "paths are relative to the file that names them".into(),
        )
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        (
            format!("schema `{}` is not valid JSON: {e}", path.display()),
            "a JSON Schema document (draft 4, 6, 7, 2019-09 or 2020-12)".into(),
        )
    })?;
    let validator = jsonschema::validator_for(&json).map_err(|e| {
        (
            format!(
                "schema `{}` is not a valid JSON Schema: {e}",
                path.display()
            ),
            "a JSON Schema document (draft 4, 6, 7, 2019-09 or 2020-12)".into(),
        )
    })?;
    Ok(Schema {
        path,
        validator: Arc::new(validator),
    })
}

fn build_probe(
    raw: RawProbe,
    defaults: &Defaults,
    endpoints: &BTreeMap<String, Arc<Endpoint>>,
    endpoint_names: &[String],
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Probe> {
    let before = ctx.diags.len();
    if raw.name.trim().is_empty() {
        ctx.err(&p(path, &[k("name")]), "probe name must not be empty");
    }
    let endpoint = endpoints.get(&raw.endpoint).cloned();
    if !endpoint_names.contains(&raw.endpoint) {
        let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
        ctx.err(
            &p(path, &[k("endpoint")]),
            format!("unknown endpoint `{}`", raw.endpoint),
        )
        .hint = Some(suggest(&raw.endpoint, &names));
    }
    let stall = raw.stall.map(|d| d.0).unwrap_or(DEFAULT_STALL);
    if stall.is_zero() {
        ctx.err(&p(path, &[k("stall")]), "stall must be more than zero")
            .hint = Some("e.g. 1s".into());
    }
    if let Some(e) = endpoint
        .as_ref()
        .filter(|e| raw.stall.is_some() && e.protocol == Protocol::HttpJson)
    {
        ctx.err(
            &p(path, &[k("stall")]),
            format!(
                "`stall` applies to streamed answers (chat, voice), not `{}`: one JSON body has no gaps between chunks",
                e.protocol.as_str()
            ),
        )
        .hint = Some("remove `stall`, or probe a streaming endpoint".into());
    }
    let timeout = raw
        .timeout
        .map(|d| d.0)
        .or(endpoint.as_ref().map(|e| e.timeout))
        .unwrap_or(defaults.timeout);
    if timeout.is_zero() {
        ctx.err(&p(path, &[k("timeout")]), "timeout must be more than zero");
    }
    let runs = raw.runs.unwrap_or(defaults.runs);
    if runs == 0 {
        ctx.err(&p(path, &[k("runs")]), "runs must be at least 1");
    }
    if let Some(s) = &raw.schedule {
        if let Err(e) = check_cron(s) {
            ctx.err(&p(path, &[k("schedule")]), e);
        }
    }
    let freshness = raw.freshness.and_then(|f| {
        let tpath = p(path, &[k("freshness"), k("truth")]);
        if let Err(e) = check_url(&f.truth.url.replace(['{', '}'], ""), &["http", "https"]) {
            ctx.err(&p(&tpath, &[k("url")]), e);
        }
        let value = Source::json(&f.truth.value)
            .map_err(|e| ctx.err(&p(&tpath, &[k("value")]), e).message.clone())
            .ok();
        let updated_at = Source::json(&f.truth.updated_at)
            .map_err(|e| ctx.err(&p(&tpath, &[k("updated_at")]), e).message.clone())
            .ok();
        Some(FreshnessSpec {
            url: f.truth.url,
            value: Extractor { source: value? },
            updated_at: Extractor {
                source: updated_at?,
            },
        })
    });
    if freshness.is_some() && raw.canary_fact.is_some() {
        ctx.err(
            &p(path, &[k("canary_fact")]),
            "a probe checks `freshness` or runs a `canary_fact`, not both",
        )
        .hint = Some("make two probes over the same endpoint".into());
    }
    let canary_fact = raw.canary_fact.and_then(|c| {
        let cpath = p(path, &[k("canary_fact")]);
        if let Err(e) = check_url(&c.write.url.replace(['{', '}'], ""), &["http", "https"]) {
            ctx.err(&p(&cpath, &[k("write"), k("url")]), e);
        }
        let method = match c.write.method.as_deref() {
            None => http::Method::PUT,
            Some(m) => match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    ctx.err(
                        &p(&cpath, &[k("write"), k("method")]),
                        format!("unknown HTTP method `{m}`"),
                    );
                    return None;
                }
            },
        };
        let read_every = c.read_every.map(|d| d.0).unwrap_or(std::time::Duration::from_millis(500));
        let give_up_after = c.give_up_after.map(|d| d.0).unwrap_or(std::time::Duration::from_secs(300));
        if read_every.is_zero() || read_every > give_up_after {
            ctx.err(&p(&cpath, &[k("read_every")]), "read_every must be more than zero and at most give_up_after")
                .hint = Some("e.g. `read_every: 500ms, give_up_after: 5m`".into());
        }
        let body = c.write.body;
        let has_nonce = body.as_ref().is_some_and(|b| b.to_string().contains("{{nonce}}"))
            || c.write.url.contains("{{nonce}}");
        if !has_nonce {
            ctx.err(&p(&cpath, &[k("write")]), "the write never sends `{{nonce}}`: the answer could not be told apart from an old one")
                .hint = Some("e.g. `body: { value: \"{{nonce}}\" }`".into());
        }
        let mut headers = Vec::new();
        for (n, v) in &c.write.headers {
            let hpath = p(&cpath, &[k("write"), k("headers"), k(n)]);
            if crate::secret::is_sensitive_header(n) {
                crate::secret::register(v);
            }
            match (http::HeaderName::from_bytes(n.as_bytes()), http::HeaderValue::from_str(v)) {
                (Ok(n), Ok(mut v)) => {
                    v.set_sensitive(crate::secret::is_sensitive_header(n.as_str()));
                    headers.push((n, v));
                }
                _ => {
                    ctx.err(&hpath, "not a valid HTTP header");
                }
            }
        }
        Some(CanaryFactSpec {
            method,
            headers,
            url: c.write.url,
            body,
            read_every,
            give_up_after,
        })
    });
    let schedule = raw.schedule.clone().or_else(|| defaults.schedule.clone());
    let stop_after_first_visible = match raw.stop_after.as_deref() {
        None => false,
        Some("first_visible") => {
            if endpoint.as_ref().is_some_and(|e| !e.protocol.is_chat()) {
                ctx.err(
                    &p(path, &[k("stop_after")]),
                    "`stop_after: first_visible` applies to chat protocols",
                );
            }
            true
        }
        Some(other) => {
            ctx.err(
                &p(path, &[k("stop_after")]),
                format!("unknown stop_after `{other}`"),
            )
            .hint = Some("valid: first_visible".into());
            false
        }
    };
    let expected_output_tokens = raw
        .expected_output_tokens
        .or(endpoint.as_ref().and_then(|e| e.max_tokens))
        .unwrap_or(DEFAULT_EXPECTED_OUTPUT_TOKENS);
    let rotation = match (raw.sample, raw.budget) {
        (Some(_), Some(_)) => {
            ctx.err(path, "give either `sample` or `budget`, not both");
            None
        }
        (Some(s), None) => {
            if s.per_tick == 0 {
                ctx.err(
                    &p(path, &[k("sample"), k("per_tick")]),
                    "per_tick must be at least 1",
                );
            }
            Some(Rotation::PerTick(s.per_tick.max(1)))
        }
        (None, Some(b)) => match (b.tokens_per_day, b.dollars_per_day) {
            (Some(t), None) if t > 0.0 => {
                if endpoint.as_ref().is_some_and(|e| {
                    !(e.protocol.is_chat() || e.protocol.is_voice() || e.price.is_some())
                }) {
                    ctx.err(
                        &p(path, &[k("budget"), k("tokens_per_day")]),
                        "this endpoint's runs use no tokens canary can count (not a chat or voice protocol, no `price`)",
                    )
                    .hint = Some("use `sample: { per_tick: N }`, or declare `price` on the endpoint".into());
                }
                Some(Rotation::TokensPerDay(t))
            }
            (None, Some(d)) if d > 0.0 => {
                if endpoint.as_ref().is_some_and(|e| e.price.is_none()) {
                    ctx.err(
                        &p(path, &[k("budget"), k("dollars_per_day")]),
                        "a dollar budget needs `price` on the endpoint",
                    )
                    .hint = Some(
                        "e.g. `price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }`".into(),
                    );
                }
                Some(Rotation::DollarsPerDay(d))
            }
            _ => {
                ctx.err(
                    &p(path, &[k("budget")]),
                    "give one positive `tokens_per_day` or `dollars_per_day`",
                );
                None
            }
        },
        (None, None) => None,
    };
    if rotation.is_some() && canary_fact.is_some() {
        ctx.err(
            path,
            "a canary-fact probe asks until its fact shows (up to give_up_after / read_every questions a run); it cannot be budgeted per case",
        )
        .hint = Some("bound it with `read_every` and `give_up_after`, and its schedule".into());
    }
    if raw.coverage.is_some() && rotation.is_none() {
        ctx.err(
            &p(path, &[k("coverage")]),
            "`coverage` applies to a rotation (`sample` or `budget`)",
        );
    }
    if rotation.is_some() {
        match schedule
            .as_deref()
            .map(crate::schedule::cron::ticks_per_day)
        {
            None => {
                ctx.err(path, "a rotation (`sample` / `budget`) needs a `schedule`: ticks are what it rotates over")
                    .hint = Some("e.g. `schedule: \"*/5 * * * *\"` on the probe or in `defaults`".into());
            }
            Some(Err(e)) => {
                ctx.err(&p(path, &[k("schedule")]), e);
            }
            Some(Ok(_)) => {}
        }
    }
    let sampling = rotation.map(|rotation| Sampling {
        rotation,
        coverage: raw.coverage.map(|d| d.0),
    });
    let suite_dir = ctx.dir();
    let probe_judge = raw.judge.filter(|j| {
        let Some(name) = &j.endpoint else { return true };
        let jpath = p(path, &[k("judge"), k("endpoint")]);
        match endpoints.get(name) {
            // An endpoint that did not compile has its own errors.
            None if endpoint_names.contains(name) => false,
            None => {
                let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
                ctx.err(&jpath, format!("unknown judge endpoint `{name}`")).hint =
                    Some(suggest(name, &names));
                false
            }
            Some(e) if !e.protocol.is_chat() => {
                ctx.err(&jpath, format!("the judge endpoint `{name}` is `{}`; a judge is asked through a chat protocol", e.protocol.as_str())).hint =
                    Some("openai-chat, openai-responses, anthropic-messages or a described stream".into());
                false
            }
            Some(_) => true,
        }
    });
    let probe_similar = raw.similar.filter(|s| {
        let Some(name) = &s.endpoint else { return true };
        let spath = p(path, &[k("similar"), k("endpoint")]);
        match endpoints.get(name) {
            // An endpoint that did not compile has its own errors.
            None if endpoint_names.contains(name) => false,
            None => {
                let names: Vec<&str> = endpoint_names.iter().map(String::as_str).collect();
                ctx.err(&spath, format!("unknown embeddings endpoint `{name}`")).hint =
                    Some(suggest(name, &names));
                false
            }
            Some(e) if e.protocol != Protocol::HttpJson => {
                ctx.err(&spath, format!("the embeddings endpoint `{name}` is `{}`; embeddings are asked with `http-json`", e.protocol.as_str())).hint =
                    Some("protocol: http-json, method: POST, url: .../v1/embeddings".into());
                false
            }
            Some(_) => true,
        }
    });
    let golden_path = normalize(&ctx.dir().join(&raw.golden));
    let cases = match golden::load(&golden_path) {
        Ok((raws, line_diags)) => {
            ctx.diags.extend(line_diags);
            let mut cases = Vec::new();
            let mut ids = HashSet::new();
            for (line, rc, line_text) in raws {
                if !ids.insert(rc.id.clone()) {
                    ctx.diags.push(
                        Diagnostic::new(
                            &golden_path,
                            Some(golden::col_of(&line_text, line, "id")),
                            "id",
                            format!("duplicate case id `{}`", rc.id),
                        )
                        .hint("case ids must be unique within a golden set"),
                    );
                }
                let needs = golden::ProbeContext {
                    endpoint: endpoint.as_deref(),
                    freshness: freshness.is_some(),
                    endpoints: Some(endpoints),
                    judge: probe_judge.as_ref(),
                    similar: probe_similar.as_ref(),
                    suite_dir: Some(&suite_dir),
                    canary_fact: canary_fact.is_some(),
                };
                if let Some(c) =
                    golden::compile_case(rc, line, &line_text, &golden_path, &needs, &mut ctx.diags)
                {
                    cases.push(c);
                }
            }
            if cases.is_empty() && ctx.diags.len() == before {
                ctx.err(&p(path, &[k("golden")]), format!("golden set `{}` has no cases", golden_path.display())).hint =
                    Some("one JSON object per line: {\"id\": ..., \"slice\": ..., \"input\": ..., \"expect\": ...}".into());
            }
            cases
        }
        Err(message) => {
            ctx.err(&p(path, &[k("golden")]), message).hint =
                Some("paths are relative to the suite file".into());
            Vec::new()
        }
    };
    if ctx.diags.len() > before {
        return None;
    }
    Some(Probe {
        name: raw.name,
        endpoint: raw.endpoint,
        golden: golden_path,
        cases,
        stall,
        timeout,
        runs,
        schedule: schedule.clone(),
        freshness,
        canary_fact,
        sampling,
        expected_output_tokens,
        stop_after_first_visible,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_slo(
    raw: RawSlo,
    probes: &[Probe],
    probe_names: &[&str],
    probe_endpoint: &BTreeMap<String, String>,
    endpoint_protocols: &BTreeMap<String, Protocol>,
    endpoints: &BTreeMap<String, Arc<Endpoint>>,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Slo> {
    let before = ctx.diags.len();
    let sli = Sli::parse(&raw.sli);
    if sli.is_none() {
        let names = Sli::names();
        // The table's short column names (`ttfvt`) are what users copy from `canary run`.
        let by_short = Sli::ALL
            .iter()
            .find(|s| crate::sink::table::short(**s) == raw.sli.trim() && s.name() != raw.sli);
        ctx.err(&p(path, &[k("sli")]), format!("unknown SLI `{}`", raw.sli))
            .hint = Some(match by_short {
            Some(s) => format!(
                "did you mean `{}`? `{}` is its column in the table; suites use the full name",
                s.name(),
                raw.sli.trim()
            ),
            None => suggest(&raw.sli, &names),
        });
    }
    if !probe_names.contains(&raw.probe.as_str()) {
        ctx.err(
            &p(path, &[k("probe")]),
            format!("unknown probe `{}`", raw.probe),
        )
        .hint = Some(suggest(&raw.probe, probe_names));
    }
    if raw.objective.0 >= 1.0 {
        ctx.err(
            &p(path, &[k("objective")]),
            "an objective of 100% leaves no error budget",
        )
        .hint = Some("every failure would page; use e.g. 99.9%".into());
    } else if let Some(w) = crate::slo::burn::unreachable_warning(raw.objective.0) {
        ctx.warn(&p(path, &[k("objective")]), w).hint = Some(
            "canary's alerts and `canary rules` use the capped factors so that every pair can fire"
                .into(),
        );
    }
    let window = raw.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
    if window < std::time::Duration::from_secs(3600) {
        ctx.err(&p(path, &[k("window")]), "window must be at least 1h")
            .hint =
            Some("SLO windows are long, e.g. 30d or 28d; alert windows are derived from it".into());
    }
    if let Some(sli) = sli {
        match (sli.kind(), raw.threshold) {
            (SliKind::Latency, None) => {
                ctx.err(path, format!("missing `threshold` for latency SLI `{sli}`"))
                    .hint =
                    Some("e.g. `threshold: 800ms` with `objective: 95%` means p95 <= 800ms".into());
            }
            (SliKind::Latency, Some(t)) if t.0.is_zero() => {
                ctx.err(
                    &p(path, &[k("threshold")]),
                    "threshold must be more than zero",
                );
            }
            (SliKind::Ratio, Some(_)) => {
                ctx.err(
                    &p(path, &[k("threshold")]),
                    format!("`{sli}` is a ratio SLI and takes no threshold"),
                )
                .hint =
                    Some("the objective is the share of good runs, e.g. `objective: 99.5%`".into());
            }
            _ => {}
        }
        let endpoint_name = probe_endpoint.get(&raw.probe);
        let the_probe = probes.iter().find(|p| p.name == raw.probe);
        // Freshness SLIs come from the probe's truth source or canary fact, not the protocol.
        let by_probe = match sli {
            Sli::Fresh | Sli::AnswerStaleness => Some((
                the_probe.is_some_and(|p| p.freshness.is_some()),
                "freshness: { truth: { url: ..., value: \"$.value\", updated_at: \"$.updated_at\" } }",
            )),
            Sli::FreshnessLag => Some((
                the_probe.is_some_and(|p| p.canary_fact.is_some()),
                "canary_fact: { write: { url: ..., body: { value: \"{{nonce}}\" } } }",
            )),
            _ => None,
        };
        if let Some((ok, example)) = by_probe {
            if !ok && the_probe.is_some() {
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("`{sli}` needs the probe `{}` to declare it", raw.probe),
                )
                .hint = Some(format!("e.g. `{example}`"));
            }
        } else if let Some(proto) = endpoint_name.and_then(|e| endpoint_protocols.get(e)) {
            if !Sli::produced_by(*proto).contains(&sli) {
                let produced: Vec<&str> =
                    Sli::produced_by(*proto).iter().map(|s| s.name()).collect();
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("protocol `{}` does not produce `{sli}`", proto.as_str()),
                )
                .hint = Some(format!("it produces {}", list(&produced)));
            }
        }
        if let Some(ep) = endpoint_name.and_then(|e| endpoints.get(e)) {
            let probe = probes.iter().find(|p| p.name == raw.probe);
            let any_case_schema =
                probe.is_some_and(|p| p.cases.iter().any(|c| c.expect.schema.is_some()));
            let need: Option<(&str, &str)> = match sli {
                Sli::SchemaValid if ep.schema.is_none() && !any_case_schema => {
                    Some(("schema", "schema: ../golden/x.schema.json"))
                }
                Sli::NotFallback if ep.fallback.is_none() => Some((
                    "fallback",
                    "fallback: { json: \"$.provenance\", equals: fallback }",
                )),
                Sli::CacheHit if ep.cache.is_none() => {
                    Some(("cache", "cache: { header: x-cache, hit: HIT }"))
                }
                Sli::NotEscalated
                    if ep.escalation.is_none() && ep.escalation_phrases.is_none() =>
                {
                    Some(("escalation", "escalation: { json: \"$.escalated\" } or { phrases: [\"transfer you to an agent\"] }"))
                }
                Sli::TierPrimary if ep.tier.as_ref().is_none_or(|t| t.primary.is_empty()) => {
                    Some((
                        "tier.primary",
                        "tier: { json: \"$.model\", primary: [big-model] }",
                    ))
                }
                _ => None,
            };
            if let Some((key, example)) = need {
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("`{sli}` needs `{key}` on endpoint `{}`", ep.name),
                )
                .hint = Some(format!("e.g. `{example}`"));
            }
        }
    }
    let mut exclude = Vec::new();
    for (i, name) in raw
        .exclude
        .map(|e| e.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match crate::timeline::ErrorClass::ALL
            .iter()
            .find(|c| c.as_str() == name)
        {
            Some(c) => exclude.push(*c),
            None => {
                let names: Vec<&str> = crate::timeline::ErrorClass::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect();
                ctx.err(
                    &p(path, &[k("exclude"), Seg::Index(i)]),
                    format!("unknown outcome `{name}`"),
                )
                .hint = Some(suggest(&name, &names));
            }
        }
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(Slo {
        exclude,
        name: raw.name,
        probe: raw.probe,
        sli: sli?,
        threshold: raw.threshold.map(|d| d.0),
        objective: raw.objective.0,
        window,
        per_slice: raw.per_slice,
        description: raw.description,
    })
}

/// Compiles a regex for a golden `expect` key.
pub(crate) fn compile_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("invalid regex: {e}"))
}

/// Compiles a golden `expect.json` path.
pub(crate) fn compile_expect_path(s: &str) -> Result<serde_json_path::JsonPath, String> {
    compile_path(s)
}

/// Removes `x/..` and `.` components lexically, so messages show `golden/x.jsonl`
/// rather than `probes/../golden/x.jsonl`.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::ProcessEnv;

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

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("probes/../golden/x.jsonl")),
            PathBuf::from("golden/x.jsonl")
        );
        assert_eq!(normalize(Path::new("../a/./b")), PathBuf::from("../a/b"));
    }
}
