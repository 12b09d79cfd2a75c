//! The observation: the one record of a case run that every later stage consumes
//! (aggregation, SLO verdicts, reports, metrics). Built from a timeline by the measures and
//! the checks; labelled with endpoint, probe, case, slice and tier.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::check::{self, Verdicts};
use crate::measure::{self, sli::Sli};
use crate::suite::{Case, Endpoint};
use crate::timeline::{ErrorClass, ProbeError, Timeline};

/// How a case run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    CheckFailed,
    Error(ErrorClass),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::CheckFailed => "check_failed",
            Outcome::Error(c) => c.as_str(),
        }
    }

    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// One case run, measured and judged.
#[derive(Debug, Clone)]
pub struct Observation {
    pub endpoint: String,
    pub probe: String,
    pub case_id: String,
    pub slice: String,
    /// 1-based run number of this case within the invocation.
    pub run: u32,
    pub started_at: SystemTime,
    pub outcome: Outcome,
    pub error: Option<ProbeError>,
    pub status: Option<u16>,
    /// Latency SLI values in seconds (all that the timeline yields, errors included).
    pub latency: BTreeMap<Sli, f64>,
    pub verdicts: Verdicts,
    /// Whether the checks ran (a 2xx response arrived).
    pub judged: bool,
}

impl Observation {
    /// Measures and judges a finished timeline.
    pub fn from_timeline(
        endpoint: &Endpoint,
        probe: &str,
        case: &Case,
        run: u32,
        timeline: &Timeline,
    ) -> Self {
        let verdicts = check::evaluate(endpoint, &case.expect, timeline);
        let judged = timeline
            .response
            .as_ref()
            .is_some_and(|r| (200..300).contains(&r.status))
            && timeline
                .error
                .as_ref()
                .is_none_or(|e| e.class == ErrorClass::InvalidJson);
        let outcome = match &timeline.error {
            Some(e) => Outcome::Error(e.class),
            None if !verdicts.checks_passed() => Outcome::CheckFailed,
            None => Outcome::Ok,
        };
        Observation {
            endpoint: endpoint.name.clone(),
            probe: probe.to_string(),
            case_id: case.id.clone(),
            slice: case.slice.clone(),
            run,
            started_at: timeline.started_at,
            outcome,
            error: timeline.error.clone(),
            status: timeline.response.as_ref().map(|r| r.status),
            latency: measure::latencies(timeline),
            verdicts,
            judged,
        }
    }

    /// A latency value that counts for aggregation: present and the run did not error.
    pub fn latency_of(&self, sli: Sli) -> Option<f64> {
        if self.outcome.is_error() {
            return None;
        }
        self.latency.get(&sli).copied()
    }

    /// Good (`true`) or bad (`false`) for a ratio SLI; `None` when it does not apply to this run.
    pub fn ratio(&self, sli: Sli) -> Option<bool> {
        let v = &self.verdicts;
        match sli {
            Sli::Success => Some(!self.outcome.is_error()),
            Sli::ChecksPassed => self.judged.then(|| v.checks_passed()),
            Sli::SchemaValid => v.schema_valid,
            Sli::NotFallback => v.fallback.map(|f| !f),
            Sli::NotEscalated => v.escalated.map(|e| !e),
            Sli::CacheHit => v.cache_hit,
            Sli::TierPrimary => v.tier_primary,
            _ => None,
        }
    }
}
