//! `canary bench`: the flags parsed into `crate::bench::Options` (sections, stream levels,
//! the canary binary to start), the benchmarks run, `bench.md` printed and the paths of
//! `bench.json` and `bench.md` named.

use anyhow::Context;

use super::shared::print_out;
use super::{BenchArgs, EXIT_OK};

/// Runs `canary bench`; returns the exit code.
pub(super) async fn exec(a: BenchArgs) -> anyhow::Result<u8> {
    let BenchArgs {
        out,
        levels,
        quick,
        peer,
        seed,
        only,
    } = a;
    let only = match only {
        Some(s) => crate::bench::parse_sections(&s).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let opts = crate::bench::Options {
        only,
        out,
        levels: crate::bench::parse_levels(&levels).map_err(anyhow::Error::msg)?,
        quick,
        peers: crate::bench::peer::parse_peers(&peer).map_err(anyhow::Error::msg)?,
        exe: std::env::current_exe().context("cannot find the canary binary")?,
        seed,
    };
    let report = crate::bench::run(&opts).await?;
    print_out(&crate::bench::markdown(&report))?;
    println!(
        "report: {} and {}",
        opts.out.join("bench.json").display(),
        opts.out.join("bench.md").display()
    );
    Ok(EXIT_OK)
}
