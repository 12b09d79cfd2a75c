//! `canary plan`: what the suites will cost before anything runs (probes, tokens and dollars
//! per day, rotation coverage, series), as tables or `--json`; exit 2 when a suite is over
//! its budget or does not load.

use crate::suite::ProcessEnv;

use super::shared::load;
use super::{PlanArgs, EXIT_OK, EXIT_USAGE};

/// Runs `canary plan`; returns the exit code.
pub(super) fn exec(a: &PlanArgs) -> anyhow::Result<u8> {
    let loaded = match load(&a.suites, &ProcessEnv::default()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // The plan does not depend on the region (a rotation's order does, per tick).
    let plans: Vec<crate::schedule::plan::SuitePlan> =
        loaded.iter().map(crate::schedule::plan::plan).collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else {
        for p in &plans {
            print!("{}", crate::schedule::plan::render(p));
        }
    }
    let over = plans.iter().any(|p| p.over_budget());
    Ok(if over { EXIT_USAGE } else { EXIT_OK })
}
