//! The `slos:` section: one SLO's keys turned into a [`Slo`]: its SLI (with the table's
//! short names recognized), its probe, objective (below 100%, with the warning for alert
//! windows that cannot be met), window, threshold (latency SLIs only), whether the probe's
//! protocol or quality signals produce the SLI and the endpoint keys it needs, and `exclude`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ctx::{k, p, Ctx};
use super::diag::{list, suggest};
use super::model::*;
use super::raw::*;
use super::yaml::Seg;
use crate::measure::sli::{Sli, SliKind};

#[allow(clippy::too_many_arguments)]
pub(super) fn build_slo(
    raw: RawSlo,
    probes: &[Probe],
    probe_names: &[&str],
    probe_endpoint: &BTreeMap<String, String>,
    endpoint_protocols: &BTreeMap<String, Protocol>,
    endpoints: &BTreeMap<String, Arc<Endpoint>>,
    path: &[Seg],
    ctx: &mut Ctx,
) -> Option<Slo> {
    let before = ctx.diags.len();
    let sli = Sli::parse(&raw.sli);
    if sli.is_none() {
        let names = Sli::names();
        // The table's short column names (`ttfvt`) are what users copy from `canary run`.
        let by_short = Sli::ALL
            .iter()
            .find(|s| crate::sink::table::short(**s) == raw.sli.trim() && s.name() != raw.sli);
        ctx.err(&p(path, &[k("sli")]), format!("unknown SLI `{}`", raw.sli))
            .hint = Some(match by_short {
            Some(s) => format!(
                "did you mean `{}`? `{}` is its column in the table; suites use the full name",
                s.name(),
                raw.sli.trim()
            ),
            None => suggest(&raw.sli, &names),
        });
    }
    if !probe_names.contains(&raw.probe.as_str()) {
        ctx.err(
            &p(path, &[k("probe")]),
            format!("unknown probe `{}`", raw.probe),
        )
        .hint = Some(suggest(&raw.probe, probe_names));
    }
    if raw.objective.0 >= 1.0 {
        ctx.err(
            &p(path, &[k("objective")]),
            "an objective of 100% leaves no error budget",
        )
        .hint = Some("every failure would page; use e.g. 99.9%".into());
    } else if let Some(w) = crate::slo::burn::unreachable_warning(raw.objective.0) {
        ctx.warn(&p(path, &[k("objective")]), w).hint = Some(
            "canary's alerts and `canary rules` use the capped factors so that every pair can fire"
                .into(),
        );
    }
    let window = raw.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
    if window < std::time::Duration::from_secs(3600) {
        ctx.err(&p(path, &[k("window")]), "window must be at least 1h")
            .hint =
            Some("SLO windows are long, e.g. 30d or 28d; alert windows are derived from it".into());
    }
    if let Some(sli) = sli {
        match (sli.kind(), raw.threshold) {
            (SliKind::Latency, None) => {
                ctx.err(path, format!("missing `threshold` for latency SLI `{sli}`"))
                    .hint =
                    Some("e.g. `threshold: 800ms` with `objective: 95%` means p95 <= 800ms".into());
            }
            (SliKind::Latency, Some(t)) if t.0.is_zero() => {
                ctx.err(
                    &p(path, &[k("threshold")]),
                    "threshold must be more than zero",
                );
            }
            (SliKind::Ratio, Some(_)) => {
                ctx.err(
                    &p(path, &[k("threshold")]),
                    format!("`{sli}` is a ratio SLI and takes no threshold"),
                )
                .hint =
                    Some("the objective is the share of good runs, e.g. `objective: 99.5%`".into());
            }
            _ => {}
        }
        let endpoint_name = probe_endpoint.get(&raw.probe);
        let the_probe = probes.iter().find(|p| p.name == raw.probe);
        // Freshness SLIs come from the probe's truth source or canary fact, not the protocol.
        let by_probe = match sli {
            Sli::Fresh | Sli::AnswerStaleness => Some((
                the_probe.is_some_and(|p| p.freshness.is_some()),
                "freshness: { truth: { url: ..., value: \"$.value\", updated_at: \"$.updated_at\" } }",
            )),
            Sli::FreshnessLag => Some((
                the_probe.is_some_and(|p| p.canary_fact.is_some()),
                "canary_fact: { write: { url: ..., body: { value: \"{{nonce}}\" } } }",
            )),
            _ => None,
        };
        if let Some((ok, example)) = by_probe {
            if !ok && the_probe.is_some() {
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("`{sli}` needs the probe `{}` to declare it", raw.probe),
                )
                .hint = Some(format!("e.g. `{example}`"));
            }
        } else if let Some(proto) = endpoint_name.and_then(|e| endpoint_protocols.get(e)) {
            if !Sli::produced_by(*proto).contains(&sli) {
                let produced: Vec<&str> =
                    Sli::produced_by(*proto).iter().map(|s| s.name()).collect();
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("protocol `{}` does not produce `{sli}`", proto.as_str()),
                )
                .hint = Some(format!("it produces {}", list(&produced)));
            }
        }
        if let Some(ep) = endpoint_name.and_then(|e| endpoints.get(e)) {
            let probe = probes.iter().find(|p| p.name == raw.probe);
            let any_case_schema =
                probe.is_some_and(|p| p.cases.iter().any(|c| c.expect.schema.is_some()));
            let need: Option<(&str, &str)> = match sli {
                Sli::SchemaValid if ep.schema.is_none() && !any_case_schema => {
                    Some(("schema", "schema: ../golden/x.schema.json"))
                }
                Sli::NotFallback if ep.fallback.is_none() => Some((
                    "fallback",
                    "fallback: { json: \"$.provenance\", equals: fallback }",
                )),
                Sli::CacheHit if ep.cache.is_none() => {
                    Some(("cache", "cache: { header: x-cache, hit: HIT }"))
                }
                Sli::NotEscalated
                    if ep.escalation.is_none() && ep.escalation_phrases.is_none() =>
                {
                    Some(("escalation", "escalation: { json: \"$.escalated\" } or { phrases: [\"transfer you to an agent\"] }"))
                }
                Sli::TierPrimary if ep.tier.as_ref().is_none_or(|t| t.primary.is_empty()) => {
                    Some((
                        "tier.primary",
                        "tier: { json: \"$.model\", primary: [big-model] }",
                    ))
                }
                _ => None,
            };
            if let Some((key, example)) = need {
                ctx.err(
                    &p(path, &[k("sli")]),
                    format!("`{sli}` needs `{key}` on endpoint `{}`", ep.name),
                )
                .hint = Some(format!("e.g. `{example}`"));
            }
        }
    }
    let mut exclude = Vec::new();
    for (i, name) in raw
        .exclude
        .map(|e| e.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match crate::timeline::ErrorClass::ALL
            .iter()
            .find(|c| c.as_str() == name)
        {
            Some(c) => exclude.push(*c),
            None => {
                let names: Vec<&str> = crate::timeline::ErrorClass::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect();
                ctx.err(
                    &p(path, &[k("exclude"), Seg::Index(i)]),
                    format!("unknown outcome `{name}`"),
                )
                .hint = Some(suggest(&name, &names));
            }
        }
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(Slo {
        exclude,
        name: raw.name,
        probe: raw.probe,
        sli: sli?,
        threshold: raw.threshold.map(|d| d.0),
        objective: raw.objective.0,
        window,
        per_slice: raw.per_slice,
        description: raw.description,
    })
}
