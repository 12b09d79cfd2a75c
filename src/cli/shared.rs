//! What several commands share: loading suites with the loader's diagnostics printed (exit 2
//! when one does not load), a suite's warnings, the endpoints this build cannot run, stdout
//! that survives a closed pipe, and `plural`.

use std::io::Write;
use std::path::PathBuf;

use crate::suite::{self, Diagnostic, ProcessEnv, Suite};

use super::EXIT_USAGE;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(super) fn print_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

pub(super) fn print_diags(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{}", crate::secret::redact(&d.to_string()));
    }
    let _ = writeln!(
        err,
        "{} error{}",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}

/// The suites, or the exit code (2) after their diagnostics are printed.
pub(super) fn load(paths: &[PathBuf], env: &ProcessEnv) -> Result<Vec<Suite>, u8> {
    match suite::load_all(paths, env) {
        Ok(s) => Ok(s),
        Err(d) => {
            print_diags(&d);
            Err(EXIT_USAGE)
        }
    }
}

pub use crate::sink::table::plural;

/// A suite's warnings (things that load but probably do not do what was meant), on stderr.
pub(super) fn print_warnings(s: &Suite) {
    let mut err = std::io::stderr().lock();
    for w in &s.warnings {
        let _ = writeln!(err, "warning: {}", crate::secret::redact(&w.to_string()));
    }
}

/// Endpoints whose protocol has no driver in this build (probed ones only).
pub(super) fn unrunnable(s: &Suite) -> Vec<String> {
    s.probes
        .iter()
        .filter_map(|p| s.endpoints.get(&p.endpoint))
        .filter(|e| !e.protocol.implemented())
        .map(|e| {
            format!(
                "{}: endpoint `{}` uses protocol `{}`, which this build cannot run yet",
                s.file.display(),
                e.name,
                e.protocol.as_str()
            )
        })
        .collect()
}
