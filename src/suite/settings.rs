//! The suite-wide sections: `defaults` (timeout, runs, concurrency, cron `schedule`,
//! `max_body`), `gate` (confidence, tolerances, quantile, `min_runs`, `allowed_hosts`, SLIs),
//! `buckets` (latency SLIs only), `cardinality` and the series budget it sets (with every
//! rotation's `coverage` checked against `schedule::plan`), and `escalation_phrases`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cron::{self, CronError, CronSchedule};
use super::ctx::{collect, k, p, Ctx};
use super::diag::suggest;
use super::model::*;
use super::raw::*;
use super::yaml::Seg;
use crate::measure::sli::{Sli, SliKind};

/// `defaults:`, and the result of parsing its `schedule` (each probe without a schedule of
/// its own reads it: a rotation over an invalid default is reported on the probe too).
pub(super) fn build_defaults(
    v: Option<&Value>,
    ctx: &mut Ctx,
) -> (Defaults, Option<Result<CronSchedule, CronError>>) {
    let path = [k("defaults")];
    let raw = v
        .and_then(|v| collect::<RawDefaults>(v.clone(), &path, ctx))
        .unwrap_or_default();
    let mut d = Defaults {
        timeout: raw.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
        runs: raw.runs.unwrap_or(1),
        concurrency: raw
            .concurrency
            .map(|c| c as usize)
            .unwrap_or(DEFAULT_CONCURRENCY),
        schedule: None,
        max_body: raw.max_body.map(|b| b.0).unwrap_or(DEFAULT_MAX_BODY),
    };
    if d.timeout.is_zero() {
        ctx.err(&p(&path, &[k("timeout")]), "timeout must be more than zero")
            .hint = Some("e.g. 30s".into());
        d.timeout = DEFAULT_TIMEOUT;
    }
    if d.runs == 0 {
        ctx.err(&p(&path, &[k("runs")]), "runs must be at least 1");
    }
    if d.concurrency == 0 {
        ctx.err(
            &p(&path, &[k("concurrency")]),
            "concurrency must be at least 1",
        );
    }
    if d.max_body == 0 {
        ctx.err(
            &p(&path, &[k("max_body")]),
            "max_body must be more than zero",
        )
        .hint = Some("e.g. 16MiB".into());
    }
    let schedule = raw.schedule.as_deref().map(cron::parse);
    match &schedule {
        Some(Ok(s)) => d.schedule = Some(s.clone()),
        Some(Err(e)) => {
            ctx.err(&p(&path, &[k("schedule")]), e.to_string()).hint =
                Some("5 or 6 fields, e.g. \"*/5 * * * *\" (every 5 minutes)".into());
        }
        None => {}
    }
    (d, schedule)
}

/// The suite's `escalation_phrases` (a string or a list).
pub(super) fn suite_escalation_phrases(v: Option<&Value>, ctx: &mut Ctx) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    match collect::<super::units::OneOrMany>(v.clone(), &[k("escalation_phrases")], ctx) {
        Some(list) => list
            .0
            .iter()
            .map(|p| crate::check::escalation::normalize(p))
            .filter(|p| !p.is_empty())
            .collect(),
        None => Vec::new(),
    }
}

/// `cardinality: { per_slice: [SLI...], max_series: N }`.
pub(super) fn build_cardinality(v: Option<&Value>, ctx: &mut Ctx) -> Cardinality {
    let mut c = Cardinality::default();
    let Some(raw) = v.and_then(|v| collect::<RawCardinality>(v.clone(), &[k("cardinality")], ctx))
    else {
        return c;
    };
    if let Some(list) = raw.per_slice {
        let mut slis = Vec::new();
        for (i, name) in list.0.iter().enumerate() {
            match Sli::parse(name).filter(|s| s.kind() == SliKind::Latency) {
                Some(s) => slis.push(s),
                None => {
                    let names: Vec<&str> = Sli::ALL
                        .iter()
                        .filter(|s| s.kind() == SliKind::Latency)
                        .map(|s| s.name())
                        .collect();
                    ctx.err(
                        &[k("cardinality"), k("per_slice"), Seg::Index(i)],
                        format!("`{name}` is not a latency SLI (only histograms are kept per slice or not)"),
                    )
                    .hint = Some(suggest(name, &names));
                }
            }
        }
        c.per_slice = Some(slis);
    }
    c.max_series = raw.max_series;
    c
}

/// Checks the suite's series against `cardinality.max_series`, and that every rotation
/// covers its cases within its `coverage`.
pub(super) fn check_series_budget(s: Suite, ctx: &mut Ctx) -> Option<Suite> {
    if s.probes
        .iter()
        .any(|p| p.sampling.as_ref().is_some_and(|x| x.coverage.is_some()))
    {
        let plan = crate::schedule::plan::plan(&s);
        for (i, pp) in plan
            .probes
            .iter()
            .enumerate()
            .filter(|(_, pp)| !pp.coverage_ok)
        {
            let need = pp
                .coverage_seconds
                .map(|c| format!("{:.0}s", c))
                .unwrap_or_else(|| "never (the budget runs no case)".into());
            ctx.err(
                &[k("probes"), Seg::Index(i), k("coverage")],
                format!(
                    "probe `{}` runs {:.2} of its {} cases per tick: every case runs only every {need}, longer than its coverage of {:.0}s",
                    pp.probe,
                    pp.cases_per_tick,
                    pp.cases,
                    pp.coverage_required.unwrap_or(0.0)
                ),
            )
            .hint = Some("raise the budget or `per_tick`, lengthen `coverage`, or run the schedule more often; `canary plan` shows the numbers".into());
        }
    }
    if let Some(max) = s.cardinality.max_series {
        let count = crate::sink::metrics::series_count(&s);
        if count.max() > max {
            ctx.err(
                &[k("cardinality"), k("max_series")],
                format!(
                    "the suite can create {} series ({} always, up to {} more from response values), over max_series {max}",
                    count.max(),
                    count.fixed,
                    count.dynamic_max
                ),
            )
            .hint = Some("keep fewer SLIs per slice (`cardinality.per_slice`), fewer slices, or raise max_series; `canary plan` shows where the series come from".into());
        }
    }
    Some(s)
}

/// `buckets: { SLI: [upper bounds in seconds] }` for latency SLIs.
pub(super) fn build_buckets(v: Option<&Value>, ctx: &mut Ctx) -> BTreeMap<Sli, Vec<f64>> {
    let mut out = BTreeMap::new();
    let Some(v) = v else {
        return out;
    };
    let Some(map) = v.as_object() else {
        ctx.err(
            &[k("buckets")],
            "`buckets` must map SLI names to lists of seconds",
        )
        .hint = Some("e.g. `buckets: { time_to_completion: [0.1, 0.5, 1, 2, 4, 8, 16] }`".into());
        return out;
    };
    for (name, list) in map {
        let path = [k("buckets"), k(name)];
        let Some(sli) = Sli::parse(name).filter(|s| s.kind() == SliKind::Latency) else {
            let names: Vec<&str> = Sli::ALL
                .iter()
                .filter(|s| s.kind() == SliKind::Latency)
                .map(|s| s.name())
                .collect();
            ctx.key_err(&path, format!("`{name}` is not a latency SLI"))
                .hint = Some(suggest(name, &names));
            continue;
        };
        let values: Option<Vec<f64>> = list
            .as_array()
            .map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .unwrap_or(None);
        match values {
            Some(mut b) if !b.is_empty() && b.iter().all(|x| x.is_finite() && *x > 0.0) => {
                b.sort_by(f64::total_cmp);
                b.dedup();
                out.insert(sli, b);
            }
            _ => {
                ctx.err(&path, "buckets must be a non-empty list of positive numbers of seconds (`+Inf` is implied)")
                    .hint = Some("e.g. [0.1, 0.5, 1, 2, 4, 8, 16]".into());
            }
        }
    }
    out
}

pub(super) fn build_gate(v: Option<&Value>, ctx: &mut Ctx) -> GateSettings {
    let mut g = GateSettings::default();
    let Some(raw) = v.and_then(|v| collect::<RawGate>(v.clone(), &[k("gate")], ctx)) else {
        return g;
    };
    if let Some(c) = raw.confidence {
        if c.0 < 0.5 || c.0 >= 1.0 {
            ctx.err(
                &[k("gate"), k("confidence")],
                "confidence must be at least 50% and below 100%",
            )
            .hint = Some("e.g. 95%".into());
        }
        g.confidence = c.0;
    }
    if let Some(t) = raw.latency_tolerance {
        g.latency_tolerance = t.0;
    }
    if let Some(t) = raw.ratio_tolerance {
        g.ratio_tolerance = t.0;
    }
    if let Some(q) = raw.quantile {
        g.quantile = q.0;
    }
    if let Some(m) = raw.min_runs {
        if m < 2 {
            ctx.err(&[k("gate"), k("min_runs")], "min_runs must be at least 2");
        }
        g.min_runs = m;
    }
    if let Some(list) = raw.allowed_hosts.map(|l| l.0) {
        g.allowed_hosts = Some(allowed_hosts(&list, ctx));
    }
    for (i, name) in raw
        .slis
        .map(|s| s.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match Sli::parse(&name) {
            Some(s) => g.slis.push(s),
            None => {
                let names = Sli::names();
                ctx.err(
                    &[k("gate"), k("slis"), Seg::Index(i)],
                    format!("unknown SLI `{name}`"),
                )
                .hint = Some(suggest(&name, &names));
            }
        }
    }
    g
}

/// `gate.allowed_hosts`: every entry a host pattern, at least one.
fn allowed_hosts(list: &[String], ctx: &mut Ctx) -> Vec<super::hosts::HostPattern> {
    if list.is_empty() {
        ctx.err(
            &[k("gate"), k("allowed_hosts")],
            "allowed_hosts is empty: no gate could target anything",
        )
        .hint = Some(
            "list the hosts candidates run on, e.g. [canary.example.com, \"*.staging.example.com:8443\"], or remove the key".into(),
        );
    }
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match super::hosts::HostPattern::parse(entry) {
            Ok(p) => out.push(p),
            Err(e) => {
                ctx.err(&[k("gate"), k("allowed_hosts"), Seg::Index(i)], e)
                    .hint =
                    Some("host, host:port, *.domain or [IPv6]:port; no scheme or path".into());
            }
        }
    }
    out
}
