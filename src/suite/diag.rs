//! Diagnostics: one config mistake with its file, line, column, field and the fix.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Pos;

/// One error found while loading a suite or a golden set.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The field in user notation, e.g. `slos[1].probe`, or `case` for a golden line.
    pub field: String,
    pub message: String,
    /// What would be valid, e.g. `did you mean "chat-golden"?`.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: &Path,
        pos: Option<Pos>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            pos,
            field: field.into(),
            message: one_line(&message.into()),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        write!(f, ": {}: {}", self.field, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Collapses a multi-line message (regex errors) and drops serde's own `at line 1 column N`,
/// which would contradict the location we print.
fn one_line(msg: &str) -> String {
    let joined = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "^")
        .collect::<Vec<_>>()
        .join(" ");
    match joined.find(" at line ") {
        Some(i) if joined[i..].contains(" column ") => joined[..i].to_string(),
        _ => joined,
    }
}

/// The closest candidate to `input`, when it is close enough to be a likely typo.
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&input.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.filter(|(_, s)| *s >= 0.75).map(|(c, _)| c)
}

/// "did you mean `x`?" or the full list of valid values.
pub fn suggest(input: &str, candidates: &[&str]) -> String {
    match nearest(input, candidates.iter().copied()) {
        Some(n) => format!("did you mean `{n}`?"),
        None => format!("valid: {}", list(candidates)),
    }
}

/// `a`, `b`, `c` for messages.
pub fn list(items: &[&str]) -> String {
    if items.is_empty() {
        return "none defined".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_column_field_and_hint() {
        let d = Diagnostic::new(
            Path::new("s.yaml"),
            Some(Pos { line: 3, col: 7 }),
            "slos[0].probe",
            "unknown probe `x`",
        )
        .hint("did you mean `y`?");
        assert_eq!(
            d.to_string(),
            "s.yaml:3:7: slos[0].probe: unknown probe `x` (did you mean `y`?)"
        );
    }

    #[test]
    fn nearest_finds_typos_but_not_unrelated_words() {
        assert_eq!(
            nearest("endpont", ["endpoint", "probe", "golden"]),
            Some("endpoint")
        );
        assert_eq!(nearest("zzz", ["endpoint", "probe"]), None);
        assert_eq!(suggest("zzz", &["a", "b"]), "valid: `a`, `b`");
    }
}
