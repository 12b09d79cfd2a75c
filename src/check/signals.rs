//! The results of the quality signals that take more than one request (answer freshness
//! against a source of truth, the write-then-read canary fact): plain data. They are
//! measured by `schedule::quality` and carried by the observation, which depends on this
//! module and not on the scheduler.

use serde::Serialize;

use super::freshness::Freshness;

/// The write-then-read canary's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactLag {
    /// The unique value written (per run and region).
    pub nonce: String,
    /// Write acknowledged to the first answer holding the nonce (seconds).
    pub lag_seconds: Option<f64>,
    /// Questions asked.
    pub reads: u32,
    pub gave_up: bool,
    /// The interval between questions: the lag is measured to within it.
    pub read_every: f64,
}

/// What the quality signals add to a run.
#[derive(Debug, Clone, Default)]
pub struct Quality {
    pub freshness: Option<Freshness>,
    pub fact: Option<FactLag>,
    /// Why a quality signal could not be measured (truth source down, ...).
    pub errors: Vec<String>,
}
