//! The SLO states `serve` reports (`/api/v1/slo`, the status page, breach notifications):
//! every SLO of every loaded suite evaluated from the history at a given time, overall and
//! per slice.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::ServeState;
use crate::slo::burn::{self, BurnState, Events};

/// The state of one SLO on one slice (or `*`).
#[derive(Debug, Clone, Serialize)]
pub struct SliceState {
    pub slice: String,
    #[serde(flatten)]
    pub state: BurnState,
}

/// One SLO with its slices.
#[derive(Debug, Clone, Serialize)]
pub struct SloState {
    pub suite: String,
    pub name: String,
    pub probe: String,
    pub endpoint: String,
    pub sli: String,
    pub objective: f64,
    pub threshold: Option<f64>,
    pub window: String,
    pub per_slice: bool,
    /// Schedule period of the probe (seconds): no alert window is shorter than two of them.
    pub period_seconds: f64,
    /// Any slice (or the aggregate) breached.
    pub breached: bool,
    /// The worst state of any slice (or the aggregate): `breached`, `budget_exhausted`,
    /// `burning`, `ok`, `no_data`.
    pub status: burn::Status,
    /// The window of `current_burn` (the long window of the fastest page pair).
    pub burn_window: String,
    pub slices: Vec<SliceState>,
}

/// Evaluates every SLO from the history at `now` (Unix seconds).
pub fn slo_states(state: &ServeState, now: f64) -> Vec<SloState> {
    let mut out = Vec::new();
    for suite in state.suites().iter() {
        for slo in &suite.slos {
            let since = now - slo.window.as_secs_f64();
            let rows = state
                .history
                .slo_events(&suite.name, &slo.name, since)
                .unwrap_or_else(|e| {
                    tracing::error!("cannot read the history: {e}");
                    Vec::new()
                });
            let all: Vec<Events> = rows.iter().map(|(_, e)| *e).collect();
            let step = Duration::from_secs(60);
            let period = crate::slo::rules::slo_period(suite, slo);
            let mut slices = vec![SliceState {
                slice: "*".into(),
                state: burn::evaluate(&all, now, slo.objective, slo.window, step, period),
            }];
            if slo.per_slice {
                let mut names: Vec<String> = rows.iter().map(|(s, _)| s.clone()).collect();
                if let Some(p) = suite.probe_of(slo) {
                    names.extend(p.cases.iter().map(|c| c.slice.clone()));
                }
                names.sort();
                names.dedup();
                for name in names {
                    let ev: Vec<Events> = rows
                        .iter()
                        .filter(|(s, _)| *s == name)
                        .map(|(_, e)| *e)
                        .collect();
                    slices.push(SliceState {
                        slice: name,
                        state: burn::evaluate(&ev, now, slo.objective, slo.window, step, period),
                    });
                }
            }
            let endpoint = suite
                .probe_of(slo)
                .map(|p| p.endpoint.clone())
                .unwrap_or_default();
            out.push(SloState {
                suite: suite.name.clone(),
                name: slo.name.clone(),
                probe: slo.probe.clone(),
                endpoint,
                sli: slo.sli.name().to_string(),
                objective: slo.objective,
                threshold: slo.threshold.map(|t| t.as_secs_f64()),
                window: burn::prom_duration(slo.window),
                per_slice: slo.per_slice,
                period_seconds: period.as_secs_f64(),
                breached: slices.iter().any(|s| s.state.breached),
                status: slices
                    .iter()
                    .map(|s| s.state.status)
                    .filter(|s| *s != burn::Status::NoData)
                    .min()
                    .unwrap_or(burn::Status::NoData),
                burn_window: burn::windows(slo.window, period, slo.objective)
                    .first()
                    .map(|w| burn::prom_duration(w.long))
                    .unwrap_or_default(),
                slices,
            });
        }
    }
    out
}

/// Now, in Unix seconds.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
