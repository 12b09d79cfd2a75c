//! Suites: loading YAML suites and JSONL golden sets into a validated [`Suite`].
//!
//! Two stages, as in ripgrep's flags: `raw` (serde structs that deny unknown keys) and
//! `validate` (meaning, references, compiled paths and schemas), collecting every error
//! with its file, line, column and field ([`Diagnostic`]).

pub mod cron;
pub mod ctx;
pub mod diag;
mod endpoints;
pub mod golden;
pub mod hosts;
pub mod interp;
pub mod job;
pub mod model;
pub mod net;
mod probes;
pub mod protocol;
mod quality;
pub mod raw;
mod settings;
mod slos;
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

use std::path::PathBuf;

/// The suite files `paths` name: a file as given, a folder as its `*.yaml` / `*.yml` files
/// (sorted, not recursive). A folder that cannot be read or holds no suite is an error.
pub fn suite_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                diags.push(Diagnostic::new(
                    p,
                    None,
                    "folder",
                    format!("cannot read the folder: {e}"),
                ));
                continue;
            }
        };
        files.retain(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"));
        files.sort();
        if files.is_empty() {
            diags.push(
                Diagnostic::new(p, None, "folder", "the folder holds no suite")
                    .hint("a folder of suites holds `*.yaml` or `*.yml` files"),
            );
        }
        out.extend(files);
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Loads several suites (files, or folders of `*.yaml` suites), collecting the errors of all
/// of them.
pub fn load_all(paths: &[PathBuf], env: &dyn Env) -> Result<Vec<Suite>, Vec<Diagnostic>> {
    let paths = suite_files(paths)?;
    let mut suites = Vec::new();
    let mut diags = Vec::new();
    for p in &paths {
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

/// A suite of one endpoint `e` (`protocol`, `url` and the YAML lines `extra`) and one probe
/// over a one-case golden set whose input has both `text` and `body` (unit tests).
#[cfg(test)]
pub(crate) fn load_one(protocol: &str, url: &str, extra: &str) -> Result<Suite, Vec<Diagnostic>> {
    let dir = tempfile::tempdir().map_err(|_| Vec::new())?;
    let golden = "{\"id\": \"a\", \"input\": {\"text\": \"hi\", \"body\": {\"input\": \"hi\"}}}\n";
    let path = dir.path().join("s.yaml");
    let suite = format!("suite: s\nendpoints:\n  e:\n    protocol: {protocol}\n    url: \"{url}\"\n{extra}probes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\n");
    if std::fs::write(dir.path().join("g.jsonl"), golden).is_err()
        || std::fs::write(&path, suite).is_err()
    {
        return Err(Vec::new());
    }
    load_suite(&path, &ProcessEnv::default())
}
