//! `canary rules`: SLO rules generated from the suites (Prometheus rules, PrometheusRule,
//! Pyrra, Sloth, OpenSLO) to stdout or `--out`, with `--runbook-url` checked as an absolute
//! http(s) URL.

use anyhow::Context;

use crate::suite::ProcessEnv;

use super::shared::{load, print_out, print_warnings};
use super::{RulesArgs, EXIT_OK, EXIT_USAGE};

/// Runs `canary rules`; returns the exit code.
pub(super) fn exec(a: RulesArgs) -> anyhow::Result<u8> {
    let RulesArgs {
        suites,
        format,
        out,
        runbook_url,
        namespace,
    } = a;
    let loaded = match load(&suites, &ProcessEnv::default()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut opts = crate::slo::rules::RulesOptions {
        namespace,
        ..Default::default()
    };
    match runbook_url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => opts.runbook = Some(u),
        Some(u) => {
            eprintln!(
                "error: --runbook-url {u}: an alert links it from wherever it is shown, so it must be an absolute http(s) URL, e.g. https://git.example.com/platform/canary/blob/main/docs/slo.md"
            );
            return Ok(EXIT_USAGE);
        }
        None => eprintln!(
            "note: the alerts carry no runbook_url; pass --runbook-url URL (where your runbook page is served) to link one"
        ),
    }
    loaded.iter().for_each(print_warnings);
    let text = crate::slo::rules::generate(&loaded, format, &opts);
    match out {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print_out(&text)?,
    }
    Ok(EXIT_OK)
}
