//! Suites: loading YAML suites and JSONL golden sets into a validated [`Suite`].
//!
//! Two stages, as in ripgrep's flags: `raw` (serde structs that deny unknown keys) and
//! `validate` (meaning, references, compiled paths and schemas), collecting every error
//! with its file, line, column and field ([`Diagnostic`]).

pub mod diag;
pub mod golden;
pub mod interp;
pub mod job;
pub mod model;
pub mod raw;
pub mod stream;
pub mod template;
pub mod units;
pub mod validate;
pub mod voice;
pub mod yaml;

pub use diag::Diagnostic;
pub use interp::{Env, ProcessEnv};
pub use model::*;
pub use validate::load_suite;

/// Loads several suites, collecting the errors of all of them.
pub fn load_all(
    paths: &[std::path::PathBuf],
    env: &dyn Env,
) -> Result<Vec<Suite>, Vec<Diagnostic>> {
    let mut suites = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        match load_suite(p, env) {
            Ok(s) => suites.push(s),
            Err(d) => diags.extend(d),
        }
    }
    let mut names = std::collections::HashMap::new();
    for s in &suites {
        if let Some(prev) = names.insert(s.name.clone(), s.file.clone()) {
            diags.push(
                Diagnostic::new(
                    &s.file,
                    None,
                    "suite",
                    format!("suite name `{}` is also used by {}", s.name, prev.display()),
                )
                .hint("suite names are label values and must be unique per run"),
            );
        }
    }
    if diags.is_empty() {
        Ok(suites)
    } else {
        Err(diags)
    }
}
