//! `canary gate`: loads the one suite, refuses endpoints this build cannot run, parses
//! `--candidate` / `--baseline`, runs `crate::gate::run`, prints the Markdown summary and
//! writes `--markdown`, `--junit` and `--report`; the exit code comes from the verdict
//! (`--inconclusive` decides an undecided one) or from the gate's error variant.

use anyhow::Context;

use crate::gate::{GateError, Verdict};
use crate::suite::ProcessEnv;

use super::shared::{load, plural, print_out, unrunnable};
use super::{
    GateArgs, InconclusiveAs, EXIT_INCONCLUSIVE, EXIT_NOTHING_MEASURED, EXIT_OK, EXIT_SLO_MISSED,
    EXIT_USAGE,
};

/// Runs `canary gate`; returns the exit code.
pub(super) async fn exec(a: GateArgs) -> anyhow::Result<u8> {
    let GateArgs {
        suite,
        candidate,
        baseline,
        runs,
        seed,
        concurrency,
        markdown,
        junit,
        report,
        inconclusive,
    } = a;
    let loaded = match load(std::slice::from_ref(&suite), &ProcessEnv::default()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let [s] = loaded.as_slice() else {
        eprintln!(
            "error: {}: the gate judges one suite, and this holds {}; name the suite file",
            suite.display(),
            plural(loaded.len(), "suite")
        );
        return Ok(EXIT_USAGE);
    };
    let blocked = unrunnable(s);
    if !blocked.is_empty() {
        for b in &blocked {
            eprintln!("{b}");
        }
        return Ok(EXIT_USAGE);
    }
    let opts = crate::gate::GateOptions {
        candidate: crate::gate::Targets::parse(&candidate)
            .map_err(|e| anyhow::anyhow!("--candidate: {e}"))?,
        baseline: crate::gate::Targets::parse(&baseline)
            .map_err(|e| anyhow::anyhow!("--baseline: {e}"))?,
        runs,
        seed,
        concurrency,
        permits: None,
        ctx: crate::schedule::RunContext::default(),
    };
    let outcome = match crate::gate::run(s, &opts).await {
        Ok(o) => o,
        Err(e) => {
            return match exit_code(&e) {
                // Not a usage error: said as the gate says it, without `error:`.
                EXIT_NOTHING_MEASURED => {
                    eprintln!("{}", crate::secret::redact(&e.to_string()));
                    Ok(EXIT_NOTHING_MEASURED)
                }
                // `main` prints `error: …` and exits 2.
                _ => Err(e.into()),
            };
        }
    };
    let md = crate::gate::output::markdown(&outcome);
    print_out(&format!("{md}\n"))?;
    for (path, text) in [
        (markdown, md.clone()),
        (junit, crate::gate::output::junit(&outcome)),
        (report, crate::gate::output::json(&outcome)),
    ] {
        if let Some(p) = path {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    Ok(match (outcome.verdict, inconclusive) {
        (Verdict::Pass, _) => EXIT_OK,
        (Verdict::Fail, _) => EXIT_SLO_MISSED,
        (Verdict::Inconclusive, Some(InconclusiveAs::Pass)) => EXIT_OK,
        (Verdict::Inconclusive, Some(InconclusiveAs::Fail)) => EXIT_SLO_MISSED,
        (Verdict::Inconclusive, None) => EXIT_INCONCLUSIVE,
    })
}

/// The exit code of a gate that could not decide: 3 when nothing could be measured, else 2
/// (a target or host the suite refuses, or a comparison that did not finish).
fn exit_code(e: &GateError) -> u8 {
    match e {
        GateError::NothingMeasured => EXIT_NOTHING_MEASURED,
        GateError::HostNotAllowed(_) | GateError::Target(_) | GateError::Comparison(_) => {
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_the_variant_not_the_message() {
        assert_eq!(
            exit_code(&GateError::NothingMeasured),
            EXIT_NOTHING_MEASURED
        );
        // A message that happens to start like the other one does not change the code.
        let lookalike = GateError::Target("nothing could be measured: unknown endpoint".into());
        assert_eq!(exit_code(&lookalike), EXIT_USAGE);
        assert_eq!(
            exit_code(&GateError::HostNotAllowed("`x:1` is not allowed".into())),
            EXIT_USAGE
        );
        assert_eq!(
            GateError::NothingMeasured.to_string(),
            "nothing could be measured: every case run failed on both sides"
        );
    }
}
