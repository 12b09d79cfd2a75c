//! `${NAME}`, `${NAME:-default}` and `${file:PATH}` interpolation in suite strings.
//!
//! Runs on the marked YAML tree before typed deserialization, so every failure has a position.
//! `$${` writes a literal `${`. Values that are credentials are registered with
//! [`crate::secret`] so they never reach a log, a label or a report. A `${file:...}` is read as
//! text (never parsed as YAML or JSON), at most [`MAX_FILE_VALUE`] bytes, once per tree; what
//! interpolation adds to a whole tree is capped at [`MAX_INTERPOLATED`] (the tree is already
//! capped in nodes by the YAML loader, so a value used by many aliases cannot multiply).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::yaml::{path_string, Node, Pos, Seg};

/// Where `${NAME}` values come from (the process environment, or overrides for the demo).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment, with optional overrides taking precedence.
#[derive(Default, Clone)]
pub struct ProcessEnv {
    pub overrides: std::collections::HashMap<String, String>,
}

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// One interpolation failure.
#[derive(Debug, Clone, PartialEq)]
pub struct InterpError {
    pub pos: Pos,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Largest file a `${file:PATH}` reads (a key, a token, a certificate bundle).
pub const MAX_FILE_VALUE: u64 = 1 << 20;
/// Most bytes interpolation may add to one suite's strings, all of them together.
pub const MAX_INTERPOLATED: usize = 16 << 20;

/// Files read by `${file:...}` in one tree, by full path.
pub type FileCache = HashMap<PathBuf, String>;

/// Interpolates every string in the tree. `base` resolves `${file:...}` paths.
pub fn interpolate_tree(root: &mut Node, env: &dyn Env, base: &Path) -> Vec<InterpError> {
    let mut errors = Vec::new();
    let mut files = FileCache::new();
    let mut added = 0usize;
    let mut over = false;
    root.for_each_string_mut(&mut Vec::new(), &mut |path, pos, s| {
        if over || !s.contains('$') {
            return;
        }
        let in_headers = secret_path(path);
        match interpolate_with(s, env, base, in_headers, &mut files) {
            Ok(v) => {
                added += v.len().saturating_sub(s.len());
                if added > MAX_INTERPOLATED {
                    over = true;
                    errors.push(InterpError {
                        pos,
                        field: path_string(path),
                        message: format!(
                            "interpolation adds more than {} MiB to the suite",
                            MAX_INTERPOLATED >> 20
                        ),
                        hint: Some(
                            "a value used in many places is copied into each; keep ${...} values small"
                                .into(),
                        ),
                    });
                    return;
                }
                *s = v;
            }
            Err((message, hint)) => errors.push(InterpError {
                pos,
                field: path_string(path),
                message,
                hint,
            }),
        }
    });
    errors
}

/// Whether a value at `path` is a credential wherever it came from: request headers, a
/// proxy (its URL may hold a password), and the secret fields of `auth`.
fn secret_path(path: &[Seg]) -> bool {
    let key = |seg: &Seg, names: &[&str]| matches!(seg, Seg::Key(k) if names.contains(&k.as_str()));
    path.iter().any(|seg| key(seg, &["headers", "proxy"]))
        || (path.iter().any(|seg| key(seg, &["auth"]))
            && path.last().is_some_and(|seg| {
                key(
                    seg,
                    &[
                        "client_secret",
                        "secret_access_key",
                        "session_token",
                        "access_key_id",
                        "password",
                    ],
                )
            }))
}

/// Interpolates one string. `secret_context` marks every substituted value as a secret.
pub fn interpolate(
    s: &str,
    env: &dyn Env,
    base: &Path,
    secret_context: bool,
) -> Result<String, (String, Option<String>)> {
    interpolate_with(s, env, base, secret_context, &mut FileCache::new())
}

/// [`interpolate`] with the files already read for this tree.
fn interpolate_with(
    s: &str,
    env: &dyn Env,
    base: &Path,
    secret_context: bool,
    files: &mut FileCache,
) -> Result<String, (String, Option<String>)> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx..];
        if let Some(r) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err((
                format!("unclosed `${{` in `{}`", crate::secret::redact(s)),
                Some(
                    "write ${NAME}, ${NAME:-default} or ${file:PATH}; $${ for a literal ${".into(),
                ),
            ));
        };
        let expr = &body_start[..end];
        rest = &body_start[end + 1..];
        // `${env:NAME}` is `${NAME}` spelled out.
        let expr = expr.strip_prefix("env:").unwrap_or(expr);
        if let Some(path) = expr.strip_prefix("file:") {
            let full = base.join(path.trim());
            if !files.contains_key(&full) {
                let content = super::yaml::read_capped(&full, MAX_FILE_VALUE).map_err(|e| {
                    (
                        format!("cannot read `${{file:{path}}}` ({}): {e}", full.display()),
                        Some(format!(
                            "paths are relative to the suite file; a file value is text of at most {} KiB",
                            MAX_FILE_VALUE >> 10
                        )),
                    )
                })?;
                let value = content.trim_end_matches(['\n', '\r']).to_string();
                crate::secret::register(&value);
                files.insert(full.clone(), value);
            }
            if let Some(value) = files.get(&full) {
                out.push_str(value);
            }
            continue;
        }
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (expr.trim(), None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((
                format!("invalid variable name `{name}` in `${{{expr}}}`"),
                Some("names use letters, digits and _, e.g. ${OPENAI_API_KEY}".into()),
            ));
        }
        let value = match (env.get(name), default) {
            (Some(v), _) if !v.is_empty() || default.is_none() => v,
            (_, Some(d)) => d.to_string(),
            (None, None) => {
                return Err((
                    format!("environment variable `{name}` is not set"),
                    Some(format!("export {name}=... or write ${{{name}:-default}}")),
                ))
            }
            (Some(v), None) => v,
        };
        if secret_context || crate::secret::is_secret_name(name) {
            crate::secret::register(&value);
        }
        out.push_str(&value);
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn env() -> MapEnv {
        MapEnv(HashMap::from([("URL", "http://h:1"), ("EMPTY", "")]))
    }

    #[test]
    fn variables_defaults_and_escapes() {
        let b = Path::new(".");
        assert_eq!(
            interpolate("${URL}/map", &env(), b, false).unwrap(),
            "http://h:1/map"
        );
        assert_eq!(interpolate("${NOPE:-x}", &env(), b, false).unwrap(), "x");
        assert_eq!(interpolate("${EMPTY:-d}", &env(), b, false).unwrap(), "d");
        assert_eq!(
            interpolate("$${URL} $5", &env(), b, false).unwrap(),
            "${URL} $5"
        );
    }

    #[test]
    fn env_prefix_and_secret_paths() {
        let b = Path::new(".");
        assert_eq!(
            interpolate("${env:URL}/x", &env(), b, false).unwrap(),
            "http://h:1/x"
        );
        let key = |s: &str| Seg::Key(s.to_string());
        assert!(secret_path(&[key("endpoints"), key("e"), key("proxy")]));
        assert!(secret_path(&[key("e"), key("auth"), key("client_secret")]));
        assert!(!secret_path(&[key("e"), key("auth"), key("region")]));
        assert!(!secret_path(&[key("e"), key("url")]));
    }

    #[test]
    fn missing_variable_is_an_error_with_a_fix() {
        let (msg, hint) = interpolate("${MISSING}", &env(), Path::new("."), false).unwrap_err();
        assert!(msg.contains("MISSING"));
        assert!(hint.unwrap().contains("MISSING:-"));
        assert!(interpolate("${oops", &env(), Path::new("."), false).is_err());
        assert!(interpolate("${a b}", &env(), Path::new("."), false).is_err());
    }

    #[test]
    fn file_values_are_read_trimmed_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "file-secret-value-42\n").unwrap();
        let v = interpolate("Bearer ${file:key}", &env(), dir.path(), false).unwrap();
        assert_eq!(v, "Bearer file-secret-value-42");
        assert_eq!(crate::secret::redact("x file-secret-value-42 y"), "x *** y");
        assert!(interpolate("${file:absent}", &env(), dir.path(), false).is_err());
    }

    #[test]
    fn file_values_are_capped_and_never_read_without_end() {
        let (msg, _) = interpolate("${file:/dev/zero}", &env(), Path::new("."), false).unwrap_err();
        assert!(msg.contains("larger than"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b'a'; MAX_FILE_VALUE as usize + 1];
        std::fs::write(dir.path().join("big"), big).unwrap();
        assert!(interpolate("${file:big}", &env(), dir.path(), false).is_err());
    }

    #[test]
    fn what_interpolation_adds_to_a_tree_is_capped() {
        // 200 aliases of a string holding a 100 KiB file: 20 MB once interpolated.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v"), vec![b'v'; 100 << 10]).unwrap();
        let mut yaml = String::from("a: &a \"${file:v}\"\nb:\n");
        for _ in 0..200 {
            yaml.push_str("  - *a\n");
        }
        let mut root = super::super::yaml::parse(&yaml).unwrap();
        let errs = interpolate_tree(&mut root, &env(), dir.path());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("MiB"), "{errs:?}");
        assert!(errs[0].field.starts_with("b["), "{errs:?}");
    }

    #[test]
    fn tree_errors_carry_field_and_position() {
        let mut root = super::super::yaml::parse("a:\n  b: \"${NOT_SET_ANYWHERE}\"\n").unwrap();
        let errs = interpolate_tree(&mut root, &env(), Path::new("."));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "a.b");
        assert_eq!(errs[0].pos.line, 2);
    }
}
