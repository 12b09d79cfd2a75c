//! Scheduling: which case runs happen when. `executor` runs a suite once (N runs of each
//! case) with a concurrency limit and a hard deadline per case run; `cron` parses schedules.

pub mod backoff;
pub mod cron;
pub mod executor;
pub mod judged;
pub mod plan;
pub mod quality;
pub mod rotation;
