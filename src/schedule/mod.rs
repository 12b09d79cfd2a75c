//! Scheduling: which case runs happen when. `executor` runs a suite once (N runs of each
//! case) with a concurrency limit and a hard deadline per case run. Cron schedules are parsed
//! when the suite loads (`suite::cron`); the model carries them.

pub mod backoff;
pub mod executor;
pub mod judged;
pub mod plan;
pub mod quality;
pub mod rotation;
