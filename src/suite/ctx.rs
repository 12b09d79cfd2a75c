//! The loader's shared helpers, used by every section of a suite and by the golden, job,
//! network and stream loaders: the loading context [`Ctx`] (file, tree, errors, warnings),
//! path building ([`p`], [`k`]), [`collect`] (deserialize with remove-and-retry, one
//! diagnostic per unknown key, wrong type or unknown value), matchers and value sources,
//! regexes, JSONPaths and JSON Schema files, lexical path normalization and the label names
//! canary reserves. It imports no section of the loader, so none of them calls another back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diag::{list, suggest, Diagnostic};
use super::model::Schema;
use super::raw::RawMatcher;
use super::yaml::{path_string, Node, Seg};
use crate::check::extract::{compile_path, Cond, Matcher, Source};

/// Label names canary sets itself; a suite's constant labels must not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "region", "suite", "endpoint", "probe", "slice", "tier", "status", "check", "outcome", "slo",
    "good", "le", "job", "instance", "sli", "kind", "passed", "phrase",
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

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("probes/../golden/x.jsonl")),
            PathBuf::from("golden/x.jsonl")
        );
        assert_eq!(normalize(Path::new("../a/./b")), PathBuf::from("../a/b"));
    }
}
