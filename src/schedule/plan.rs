//! `canary plan`: what a suite will cost before anything runs. Per probe: cases per tick
//! (all, or the rotation's share under its budget), runs, tokens and dollars per day from
//! estimates (input text + expected output tokens), how long the rotation takes to cover
//! every case, and the series the suite creates (counted through the real metrics model).

use serde::Serialize;

use super::rotation;
use crate::sink::metrics::{series_count, SeriesCount};
use crate::suite::Suite;

/// One probe's plan.
#[derive(Debug, Clone, Serialize)]
pub struct ProbePlan {
    pub probe: String,
    pub endpoint: String,
    pub cases: usize,
    pub slices: usize,
    pub schedule: Option<String>,
    pub ticks_per_day: Option<u32>,
    /// Cases run each tick (fractional under a budget: ticks alternate).
    pub cases_per_tick: f64,
    pub runs_per_tick: f64,
    pub runs_per_day: Option<f64>,
    pub tokens_per_run: f64,
    pub tokens_per_day: Option<f64>,
    pub dollars_per_day: Option<f64>,
    /// How long until every case has run (seconds).
    pub coverage_seconds: Option<f64>,
    /// The probe's declared coverage period (seconds).
    pub coverage_required: Option<f64>,
    pub coverage_ok: bool,
}

/// A suite's plan.
#[derive(Debug, Clone, Serialize)]
pub struct SuitePlan {
    pub suite: String,
    pub probes: Vec<ProbePlan>,
    pub runs_per_day: Option<f64>,
    pub tokens_per_day: Option<f64>,
    pub dollars_per_day: Option<f64>,
    pub series: SeriesCount,
    pub max_series: Option<u64>,
}

impl SuitePlan {
    /// The suite exceeds its series budget or a rotation cannot cover its cases in time.
    pub fn over_budget(&self) -> bool {
        self.max_series.is_some_and(|m| self.series.max() > m)
            || self.probes.iter().any(|p| !p.coverage_ok)
    }
}

pub fn plan(suite: &Suite) -> SuitePlan {
    let mut probes = Vec::new();
    for p in &suite.probes {
        let Some(ep) = suite.endpoints.get(&p.endpoint) else {
            continue;
        };
        let n = p.cases.len();
        let ticks = p.schedule.as_ref().and_then(|s| s.ticks_per_day().ok());
        let per_tick = ticks
            .and_then(|t| rotation::cases_per_tick(p, ep, t))
            .unwrap_or(n as f64);
        let runs = f64::from(p.runs.max(1));
        let mean_tokens = if n == 0 {
            0.0
        } else {
            (0..n).map(|i| rotation::case_tokens(p, ep, i)).sum::<f64>() / n as f64
        };
        let mean_cost = if n == 0 {
            0.0
        } else {
            (0..n).map(|i| rotation::case_cost(p, ep, i)).sum::<f64>() / n as f64
        };
        let runs_per_day = ticks.map(|t| f64::from(t) * per_tick * runs);
        let coverage_seconds = match (&p.sampling, ticks) {
            (Some(_), Some(t)) => rotation::coverage_seconds(n, per_tick, t),
            (None, Some(t)) => Some(86_400.0 / f64::from(t)),
            _ => None,
        };
        let coverage_required = p
            .sampling
            .as_ref()
            .and_then(|s| s.coverage)
            .map(|d| d.as_secs_f64());
        let coverage_ok = match (coverage_required, coverage_seconds) {
            (Some(req), Some(got)) => got <= req + 1e-9,
            (Some(_), None) => false,
            _ => true,
        };
        probes.push(ProbePlan {
            probe: p.name.clone(),
            endpoint: ep.name.clone(),
            cases: n,
            slices: p
                .cases
                .iter()
                .map(|c| c.slice.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            schedule: p.schedule.as_ref().map(|s| s.expr.clone()),
            ticks_per_day: ticks,
            cases_per_tick: per_tick,
            runs_per_tick: per_tick * runs,
            runs_per_day,
            tokens_per_run: mean_tokens,
            tokens_per_day: runs_per_day.map(|r| r * mean_tokens),
            dollars_per_day: (ep.price.is_some() || rotation::priced_judges(p))
                .then(|| runs_per_day.map(|r| r * mean_cost))
                .flatten(),
            coverage_seconds,
            coverage_required,
            coverage_ok,
        });
    }
    let sum = |f: &dyn Fn(&ProbePlan) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = probes.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    SuitePlan {
        suite: suite.name.clone(),
        runs_per_day: sum(&|p| p.runs_per_day),
        tokens_per_day: sum(&|p| p.tokens_per_day),
        dollars_per_day: sum(&|p| p.dollars_per_day),
        probes,
        series: series_count(suite),
        max_series: suite.cardinality.max_series,
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x >= 1e6 => format!("{:.2}M", x / 1e6),
        Some(x) if x >= 1e4 => format!("{:.1}k", x / 1e3),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn dur(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        Some(s) if s >= 3600.0 => format!("{:.1}h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{s:.0}s"),
    }
}

/// The plan as a table.
pub fn render(p: &SuitePlan) -> String {
    let mut rows = vec![vec![
        "probe".to_string(),
        "cases".into(),
        "slices".into(),
        "ticks/day".into(),
        "runs/tick".into(),
        "runs/day".into(),
        "tokens/run".into(),
        "tokens/day".into(),
        "$/day".into(),
        "covers all in".into(),
    ]];
    for pr in &p.probes {
        let cover = match (pr.coverage_required, pr.coverage_ok) {
            (Some(req), false) => {
                format!("{} (NEEDS {})", dur(pr.coverage_seconds), dur(Some(req)))
            }
            (Some(req), true) => format!("{} (<= {})", dur(pr.coverage_seconds), dur(Some(req))),
            _ => dur(pr.coverage_seconds),
        };
        rows.push(vec![
            pr.probe.clone(),
            pr.cases.to_string(),
            pr.slices.to_string(),
            pr.ticks_per_day
                .map(|t| t.to_string())
                .unwrap_or("-".into()),
            num(Some(pr.runs_per_tick)),
            num(pr.runs_per_day),
            num(Some(pr.tokens_per_run)),
            num(pr.tokens_per_day),
            pr.dollars_per_day
                .map(|d| format!("{d:.2}"))
                .unwrap_or("-".into()),
            cover,
        ]);
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        num(p.runs_per_day),
        String::new(),
        num(p.tokens_per_day),
        p.dollars_per_day
            .map(|d| format!("{d:.2}"))
            .unwrap_or("-".into()),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("suite {}\n", p.suite);
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out += &format!("  {}\n", line.join("  ").trim_end());
    }
    out += &format!(
        "  series: {} per region ({} from every healthy run, up to {} more from failed checks and response values){}\n\n",
        p.series.max(),
        p.series.fixed,
        p.series.dynamic_max,
        match p.max_series {
            Some(m) if p.series.max() > m => format!(" - OVER max_series {m}"),
            Some(m) => format!(" (max_series {m})"),
            None => String::new(),
        }
    );
    out
}
