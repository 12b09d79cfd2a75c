//! Scheduling: which case runs happen when. `executor` runs a suite once (N runs of each
//! case) with a concurrency limit and a hard deadline per case run. Cron schedules are parsed
//! when the suite loads (`suite::cron`); the model carries them. [`RunContext`] is what a run
//! carries from case to case (region, facts, judgments, backoff).

pub mod backoff;
pub mod executor;
pub mod judged;
pub mod plan;
pub mod quality;
pub mod rotation;
pub mod state_file;

use std::path::Path;
use std::sync::Arc;

use backoff::Backoff;
use judged::JudgmentCache;
use quality::FactStore;
use state_file::StateError;

/// What a run carries besides the suite and its options: the vantage point's region, the
/// fact history of freshness probes and the judgment cache (each optionally kept in a file
/// across runs), and the endpoints' `Retry-After` table. One per invocation (`run`, `gate`,
/// `calibrate`, `serve`), handed down through `RunOptions` to every case run; nothing here
/// is process-wide, so two runs in one process (tests, a gate inside `serve`) keep their
/// own. Cloning shares the stores.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The region of this vantage point (`--region`, `{{region}}` in templates, part of
    /// every canary-fact nonce and of the rotation order).
    pub region: Arc<str>,
    pub facts: Arc<FactStore>,
    pub judgments: Arc<JudgmentCache>,
    pub backoff: Arc<Backoff>,
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext::new("local")
    }
}

impl RunContext {
    /// A context for `region` with empty stores kept in memory only.
    pub fn new(region: &str) -> RunContext {
        RunContext {
            region: Arc::from(region),
            facts: Arc::new(FactStore::default()),
            judgments: Arc::new(JudgmentCache::default()),
            backoff: Arc::new(Backoff::default()),
        }
    }

    /// The fact history loaded from `path` (a missing file starts empty) and saved to it.
    pub fn with_facts(mut self, path: Option<&Path>) -> Result<RunContext, StateError> {
        self.facts = Arc::new(FactStore::load(path)?);
        Ok(self)
    }

    /// The judgment cache loaded from `path` (a missing file starts empty) and saved to it.
    pub fn with_judgments(mut self, path: Option<&Path>) -> Result<RunContext, StateError> {
        self.judgments = Arc::new(JudgmentCache::load(path)?);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_keep_their_own_stores_and_clones_share_them() {
        let a = RunContext::new("eu-west-1");
        let b = RunContext::default();
        assert_eq!(&*a.region, "eu-west-1");
        assert_eq!(&*b.region, "local");
        assert!(!Arc::ptr_eq(&a.facts, &b.facts));
        assert!(!Arc::ptr_eq(&a.backoff, &b.backoff));
        let c = a.clone();
        assert!(Arc::ptr_eq(&a.judgments, &c.judgments));
    }
}
