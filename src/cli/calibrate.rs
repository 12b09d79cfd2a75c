//! `canary calibrate`: runs a suite's judged cases only (the judgment cache beside `--state`)
//! and prints, per probe and slice, the judge's verdicts, its agreement with itself and, for
//! labelled cases, its accuracy and false pass / false fail rates (a table, or `--json`);
//! exit 3 when nothing was judged.

use crate::schedule::executor::RunOptions;
use crate::suite::ProcessEnv;

use super::shared::load;
use super::{CalibrateArgs, EXIT_NOTHING_MEASURED, EXIT_OK, EXIT_USAGE};

/// Runs `canary calibrate`; returns the exit code.
pub(super) async fn exec(a: CalibrateArgs) -> anyhow::Result<u8> {
    let CalibrateArgs {
        suite,
        runs,
        concurrency,
        state,
        json,
    } = a;
    let loaded = match load(std::slice::from_ref(&suite), &ProcessEnv::default()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let cache = state
        .as_deref()
        .map(crate::schedule::judged::cache_path_for);
    let ctx = match crate::schedule::RunContext::default().with_judgments(cache.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut all_rows = Vec::new();
    let mut judged = false;
    for s in &loaded {
        let only = crate::sink::calibrate::judged_only(s);
        if only.probes.is_empty() {
            continue;
        }
        let opts = RunOptions {
            runs,
            concurrency,
            ctx: ctx.clone(),
            ..Default::default()
        };
        let obs = crate::schedule::executor::execute(&only, &opts).await;
        judged |= crate::sink::calibrate::judged_any(&obs);
        let stats = crate::slo::aggregate::aggregate(&obs);
        all_rows.extend(crate::sink::calibrate::rows(&stats));
    }
    if let Err(e) = ctx.judgments.save() {
        eprintln!("warning: the judgment cache could not be saved: {e}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all_rows)?);
    } else {
        print!(
            "{}",
            crate::sink::calibrate::table(&all_rows, ctx.judgments.calls())
        );
    }
    if !judged {
        eprintln!("error: nothing was judged: the suite has no case with a judge (`judge` on a probe, or `expect.judge`), or no judged case got an answer");
        return Ok(EXIT_NOTHING_MEASURED);
    }
    Ok(EXIT_OK)
}
