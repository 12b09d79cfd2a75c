//! Error budgets and multi-window, multi-burn-rate alerting (the SRE Workbook's scheme),
//! shared by the generated Prometheus rules and canary's own evaluator so the two cannot
//! drift apart: the same windows, factors and `for` durations produce the rules text and the
//! in-process verdicts.
//!
//! For a 30-day SLO: page when the error ratio exceeds 14.4x the budget over 1h and 5m, or
//! 6x over 6h and 30m; ticket when it exceeds 3x over 1d and 2h, or 1x over 3d and 6h.
//! For other SLO windows every alert window is scaled by window/30d; the factors stay (they
//! mean "this share of the whole budget burns in this long").
//!
//! A low objective cannot reach every factor: with 90% the budget is 10%, so an error ratio of
//! 100% is a burn of only 10x and the 14.4x pair could never fire. A factor above 90% of the
//! largest reachable burn (`1 / (1 - objective)`) is capped there (an error ratio over 90%),
//! so every pair can fire; [`unreachable`] names the pairs that were capped, for `validate`
//! and `rules` to warn about.

use std::time::Duration;

use serde::Serialize;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }

    /// How long a condition must hold before the alert fires, for a 30-day SLO.
    fn base_hold(self) -> Duration {
        match self {
            Severity::Page => Duration::from_secs(120),
            Severity::Ticket => Duration::from_secs(900),
        }
    }

    /// The hold for an SLO window: scaled like the alert windows (whole seconds).
    pub fn hold(self, slo_window: Duration) -> Duration {
        let scale = slo_window.as_secs_f64() / BASE as f64;
        Duration::from_secs((self.base_hold().as_secs_f64() * scale).round() as u64)
    }
}

/// One long/short window pair and its burn factor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BurnWindow {
    pub severity: Severity,
    #[serde(with = "secs")]
    pub long: Duration,
    #[serde(with = "secs")]
    pub short: Duration,
    pub factor: f64,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

const BASE: u64 = 30 * 86400;
const TABLE: &[(Severity, u64, u64, f64)] = &[
    (Severity::Page, 3600, 300, 14.4),
    (Severity::Page, 6 * 3600, 1800, 6.0),
    (Severity::Ticket, 86400, 2 * 3600, 3.0),
    (Severity::Ticket, 3 * 86400, 6 * 3600, 1.0),
];

/// The largest share of the budget a factor may ask for: above it, the pair would need an
/// error ratio over 90% (or over 100%: never), so it is capped to this.
const REACHABLE: f64 = 0.9;

/// The alert windows of an SLO window, scaled from the 30-day table (whole seconds), with each
/// factor capped so that the objective can reach it (see the module doc). No window
/// is shorter than 60 s or than two periods of the probe's schedule (`period`): a window that
/// can hold no run would make the alert flicker between runs.
pub fn windows(slo_window: Duration, period: Duration, objective: f64) -> Vec<BurnWindow> {
    let scale = slo_window.as_secs_f64() / BASE as f64;
    let floor = (period * 2).as_secs().max(60);
    let scaled = |s: u64| Duration::from_secs(((s as f64 * scale).round() as u64).max(floor));
    TABLE
        .iter()
        .map(|(sev, long, short, factor)| BurnWindow {
            severity: *sev,
            long: scaled(*long),
            short: scaled(*short),
            factor: reachable_factor(*factor, objective),
        })
        .collect()
}

/// `factor`, or the largest factor the objective can reach when it is beyond that.
fn reachable_factor(factor: f64, objective: f64) -> f64 {
    let budget = 1.0 - objective;
    if budget > 0.0 && factor * budget > REACHABLE {
        // Rounded down to 0.1 so rules and reports show a readable number.
        ((REACHABLE / budget) * 10.0).floor() / 10.0
    } else {
        factor
    }
}

/// A burn-rate pair the objective could not reach as the table writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unreachable {
    pub severity: Severity,
    /// The table's factor.
    pub factor: f64,
    /// The error ratio it would need (over 1 = never).
    pub needs_error_ratio: f64,
    /// The factor used instead.
    pub capped: f64,
}

/// The pairs whose factor `objective` makes unreachable (or reachable only above a 90% error
/// ratio), with the factor canary uses instead.
pub fn unreachable(objective: f64) -> Vec<Unreachable> {
    TABLE
        .iter()
        .filter_map(|(sev, _, _, factor)| {
            let capped = reachable_factor(*factor, objective);
            (capped != *factor).then_some(Unreachable {
                severity: *sev,
                factor: *factor,
                needs_error_ratio: factor * (1.0 - objective),
                capped,
            })
        })
        .collect()
}

/// The warning `validate` and `rules` print for an SLO whose objective caps some pairs.
pub fn unreachable_warning(objective: f64) -> Option<String> {
    let u = unreachable(objective);
    if u.is_empty() {
        return None;
    }
    let pairs: Vec<String> = u
        .iter()
        .map(|u| {
            format!(
                "the {}x {} pair (it needs an error ratio of {:.0}%) is {}x",
                u.factor,
                u.severity.as_str(),
                u.needs_error_ratio * 100.0,
                u.capped
            )
        })
        .collect();
    Some(
        format!(
        "objective {:.4}% leaves a budget of {:.4}%, so a burn rate above {:.1}x cannot happen: {}",
        objective * 100.0,
        (1.0 - objective) * 100.0,
        1.0 / (1.0 - objective),
        pairs.join("; ")
    )
        .replace(".0000%", "%"),
    )
}

/// Every distinct window the rules need (the alert windows and the SLO window), shortest first.
pub fn all_windows(slo_window: Duration, period: Duration) -> Vec<Duration> {
    let mut w: Vec<Duration> = windows(slo_window, period, 0.0)
        .iter()
        .flat_map(|b| [b.long, b.short])
        .collect();
    w.push(slo_window);
    w.sort();
    w.dedup();
    w
}

/// A duration as Prometheus writes it (`5m`, `1h`, `3d`, `70s`).
pub fn prom_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= n && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// Good and total events that happened at one time (seconds on any clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Events {
    pub at: f64,
    pub good: u64,
    pub total: u64,
}

/// The error ratio over `(now - window, now]`; `None` with no events.
pub fn error_ratio(events: &[Events], now: f64, window: Duration) -> Option<f64> {
    let from = now - window.as_secs_f64();
    let (mut bad, mut total) = (0u64, 0u64);
    for e in events.iter().filter(|e| e.at > from && e.at <= now) {
        bad += e.total.saturating_sub(e.good);
        total += e.total;
    }
    (total > 0).then(|| bad as f64 / total as f64)
}

/// Events sorted by time with running sums, so that any window's error ratio is two binary
/// searches (the history of a busy SLO holds hundreds of thousands of events).
pub struct Series {
    at: Vec<f64>,
    bad: Vec<u64>,
    total: Vec<u64>,
}

impl Series {
    pub fn new(events: &[Events]) -> Series {
        let mut ev = events.to_vec();
        ev.sort_by(|a, b| a.at.total_cmp(&b.at));
        let (mut at, mut bad, mut total) = (Vec::with_capacity(ev.len()), vec![0], vec![0]);
        for e in &ev {
            at.push(e.at);
            bad.push(bad.last().copied().unwrap_or(0) + e.total.saturating_sub(e.good));
            total.push(total.last().copied().unwrap_or(0) + e.total);
        }
        Series { at, bad, total }
    }

    /// Bad and total events in `(from, to]`.
    pub fn sums(&self, from: f64, to: f64) -> (u64, u64) {
        let i = self.at.partition_point(|t| *t <= from);
        let j = self.at.partition_point(|t| *t <= to);
        if j <= i {
            return (0, 0);
        }
        (self.bad[j] - self.bad[i], self.total[j] - self.total[i])
    }

    /// The error ratio over `(now - window, now]`; `None` with no events.
    pub fn error_ratio(&self, now: f64, window: Duration) -> Option<f64> {
        let (bad, total) = self.sums(now - window.as_secs_f64(), now);
        (total > 0).then(|| bad as f64 / total as f64)
    }

    /// Whether a window pair's condition holds at `now`.
    pub fn condition(&self, now: f64, w: &BurnWindow, objective: f64) -> bool {
        let limit = w.factor * (1.0 - objective);
        let over = |d| self.error_ratio(now, d).is_some_and(|r| r > limit);
        over(w.long) && over(w.short)
    }
}

/// Whether a window pair's condition holds at `now`.
pub fn condition(events: &[Events], now: f64, w: &BurnWindow, objective: f64) -> bool {
    Series::new(events).condition(now, w, objective)
}

/// The state of one SLO (one slice, or the aggregate) at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnState {
    /// Good share over the SLO window.
    pub sli: Option<f64>,
    pub good: u64,
    pub total: u64,
    /// Share of the error budget left over the SLO window (1 = untouched, < 0 = overspent).
    pub budget_remaining: Option<f64>,
    /// Burn rate (error ratio / budget) over each distinct alert window.
    pub burn_rates: Vec<BurnRate>,
    /// Alerts firing (their condition has held for their `for` duration).
    pub firing: Vec<Severity>,
    /// Breached: a page-severity burn fires now (the budget is going fast). This is the state
    /// a router or scheduler acts on, and it clears when the fast burn stops.
    pub breached: bool,
    /// The budget over the whole SLO window is spent (a slower, longer-lasting signal).
    pub budget_exhausted: bool,
    /// The burn rate now: over the long window of the fastest page pair (1h for 30 days).
    pub current_burn: Option<f64>,
    /// One word for the state, worst first: see [`Status`].
    pub status: Status,
}

/// The state of an SLO in one word, as the status page and `/api/v1/slo` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A page-severity alert fires.
    Breached,
    /// The error budget of the SLO window is spent (the SLI is below the objective) while no
    /// page fires: the SLO is missed, even if slowly.
    BudgetExhausted,
    /// A ticket-severity alert fires.
    Burning,
    /// Meeting the objective with no alert firing.
    Ok,
    /// No events in the SLO window.
    NoData,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Breached => "breached",
            Status::BudgetExhausted => "budget_exhausted",
            Status::Burning => "burning",
            Status::Ok => "ok",
            Status::NoData => "no_data",
        }
    }
}

/// The burn rate over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRate {
    pub window: String,
    pub rate: Option<f64>,
}

/// Evaluates the SLO at `now` on events; `step` is the evaluation interval used to check that a
/// condition held for an alert's whole `for` duration (as Prometheus evaluates rules).
/// `period` is the schedule period of the SLO's probe (see [`windows`]).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    events: &[Events],
    now: f64,
    objective: f64,
    slo_window: Duration,
    step: Duration,
    period: Duration,
) -> BurnState {
    let budget = 1.0 - objective;
    let series = Series::new(events);
    let (bad, total) = series.sums(now - slo_window.as_secs_f64(), now);
    let good = total - bad;
    let sli = (total > 0).then(|| good as f64 / total as f64);
    let budget_remaining = sli.map(|s| 1.0 - (1.0 - s) / budget);
    let burn_rates = all_windows(slo_window, period)
        .into_iter()
        .map(|w| BurnRate {
            window: prom_duration(w),
            rate: series.error_ratio(now, w).map(|r| r / budget),
        })
        .collect();
    let mut firing = Vec::new();
    for sev in [Severity::Page, Severity::Ticket] {
        let pairs: Vec<BurnWindow> = windows(slo_window, period, objective)
            .into_iter()
            .filter(|w| w.severity == sev)
            .collect();
        let holds_at = |t: f64| pairs.iter().any(|w| series.condition(t, w, objective));
        // Held at every evaluation from now - for to now.
        let steps =
            (sev.hold(slo_window).as_secs_f64() / step.as_secs_f64().max(1.0)).floor() as u64;
        if (0..=steps).all(|i| holds_at(now - i as f64 * step.as_secs_f64())) {
            firing.push(sev);
        }
    }
    let breached = firing.contains(&Severity::Page);
    let budget_exhausted = budget_remaining.is_some_and(|b| b < 0.0);
    let current_burn = windows(slo_window, period, objective)
        .first()
        .and_then(|w| series.error_ratio(now, w.long))
        .map(|r| r / budget);
    let status = if total == 0 {
        Status::NoData
    } else if breached {
        Status::Breached
    } else if budget_exhausted {
        Status::BudgetExhausted
    } else if !firing.is_empty() {
        Status::Burning
    } else {
        Status::Ok
    };
    BurnState {
        sli,
        good,
        total,
        budget_remaining,
        burn_rates,
        breached,
        budget_exhausted,
        current_burn,
        status,
        firing,
    }
}

#[cfg(test)]
mod tests;
