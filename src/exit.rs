//! The exit codes every command uses, and what each means to a script or a CI step.
//! `crate::cli` re-exports them; modules below the command line (quickstart, serve) take
//! them from here, so none of them depends on the command line.

/// Everything ran and every SLO held (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// An SLO was missed (`run`), or the gate failed.
pub const EXIT_SLO_MISSED: u8 = 1;
/// Bad usage or configuration: nothing was sent.
pub const EXIT_USAGE: u8 = 2;
/// Nothing could be measured: every case run failed.
pub const EXIT_NOTHING_MEASURED: u8 = 3;
/// The gate could not decide (too few runs, too much noise).
pub const EXIT_INCONCLUSIVE: u8 = 4;
