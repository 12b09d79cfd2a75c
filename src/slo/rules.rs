//! SLOs as code: generated Prometheus recording and alerting rules (plain or as a
//! PrometheusRule), Pyrra `ServiceLevelObjective`s, a Sloth `prometheus/v1` spec and OpenSLO v1
//! documents, all from the suite's SLO declarations and all over `canary_slo_events_total`,
//! whose events were judged at probe time (so no rule depends on histogram buckets).
//! Windows, factors and `for` durations come from [`super::burn`], which canary's own
//! evaluator uses too.

use std::time::Duration;

use serde_json::{json, Value};

use super::burn::{self, prom_duration, Severity};
use crate::suite::{Slo, Suite};

/// The output formats of `canary rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Prometheus,
    PrometheusOperator,
    Pyrra,
    Sloth,
    Openslo,
}

/// Settings of the generated documents.
#[derive(Debug, Clone)]
pub struct RulesOptions {
    /// Where the runbook lives; alerts link `<runbook>#<slo>`. None: alerts carry no
    /// `runbook_url` (a relative path would resolve nowhere from an alert).
    pub runbook: Option<String>,
    /// Namespace of Kubernetes objects (PrometheusRule, Pyrra).
    pub namespace: String,
}

impl Default for RulesOptions {
    fn default() -> Self {
        RulesOptions {
            runbook: None,
            namespace: "monitoring".into(),
        }
    }
}

/// `<runbook>#<anchor>`, or null without `--runbook-url` ([`drop_nulls`] removes it).
fn runbook_url(opts: &RulesOptions, anchor: &str) -> Value {
    match &opts.runbook {
        Some(r) => Value::String(format!("{r}#{anchor}")),
        None => Value::Null,
    }
}

/// Removes `null` members everywhere (an absent runbook leaves no `runbook_url: null`).
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The default staleness period when a suite declares no schedule.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

/// Escapes a PromQL label value.
pub fn q(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A number for PromQL without binary noise (0.072, not 0.07200000000000001).
pub fn num(v: f64) -> String {
    let r = (v * 1e12).round() / 1e12;
    format!("{r}")
}

fn events(suite: &str, slo: &str, extra: &str) -> String {
    format!(
        "canary_slo_events_total{{suite=\"{}\",slo=\"{}\"{extra}}}",
        q(suite),
        q(slo)
    )
}

/// The error-ratio expression over `window`, grouped by `by`.
pub fn error_ratio_expr(suite: &str, slo: &str, window: Duration, by: &str) -> String {
    let w = prom_duration(window);
    format!(
        "sum by ({by}) (rate({}[{w}])) / sum by ({by}) (rate({}[{w}]))",
        events(suite, slo, ",good=\"false\""),
        events(suite, slo, "")
    )
}

/// Recording rule names.
pub fn record_name(per_slice: bool, window: Duration) -> String {
    let level = if per_slice {
        "canary_slo_slice"
    } else {
        "canary_slo"
    };
    format!("{level}:error_ratio:rate{}", prom_duration(window))
}

/// The anchor GitHub gives a heading: lower case, spaces to `-`, other punctuation dropped
/// (`-` and `_` kept).
fn anchor(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() => Some(c.to_lowercase().next().unwrap_or(c)),
            '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// The schedule period of an SLO's probe (its own schedule, else the suite's, else 5 minutes):
/// the floor of its alert windows.
pub fn slo_period(suite: &Suite, slo: &Slo) -> Duration {
    suite
        .probe_of(slo)
        .and_then(|p| p.schedule.as_ref().or(suite.defaults.schedule.as_ref()))
        .map(|c| c.period())
        .unwrap_or(DEFAULT_PERIOD)
}

/// The staleness period of a suite: the longest period among its probes' schedules (a
/// probe's own, else the suite's default; 5 minutes when none is declared).
pub fn period(suite: &Suite) -> Duration {
    suite
        .probes
        .iter()
        .map(|p| {
            p.schedule
                .as_ref()
                .or(suite.defaults.schedule.as_ref())
                .map(|c| c.period())
                .unwrap_or(DEFAULT_PERIOD)
        })
        .max()
        .unwrap_or(DEFAULT_PERIOD)
}

fn slo_group(suite: &Suite, slo: &Slo, opts: &RulesOptions) -> Value {
    let budget = 1.0 - slo.objective;
    let mut rules = Vec::new();
    let levels: Vec<bool> = if slo.per_slice {
        vec![false, true]
    } else {
        vec![false]
    };
    for &per_slice in &levels {
        let by = if per_slice {
            "region, suite, slo, slice"
        } else {
            "region, suite, slo"
        };
        for w in burn::all_windows(slo.window, slo_period(suite, slo)) {
            // The static `slo` label repeats the series' own; it keeps each SLO's rules distinct
            // for promtool's duplicate check.
            rules.push(json!({
                "record": record_name(per_slice, w),
                "expr": error_ratio_expr(&suite.name, &slo.name, w, by),
                "labels": { "slo": slo.name },
            }));
        }
        let sel = format!("{{suite=\"{}\",slo=\"{}\"}}", q(&suite.name), q(&slo.name));
        rules.push(json!({
            "record": if per_slice { "canary_slo_slice:error_budget_remaining" } else { "canary_slo:error_budget_remaining" },
            "expr": format!("1 - {}{sel} / {}", record_name(per_slice, slo.window), num(budget)),
            "labels": { "slo": slo.name },
        }));
    }
    for &per_slice in &levels {
        let sel = format!("{{suite=\"{}\",slo=\"{}\"}}", q(&suite.name), q(&slo.name));
        for sev in [Severity::Page, Severity::Ticket] {
            let conds: Vec<String> =
                burn::windows(slo.window, slo_period(suite, slo), slo.objective)
                    .into_iter()
                    .filter(|w| w.severity == sev)
                    .map(|w| {
                        let limit = num(w.factor * budget);
                        format!(
                            "({long}{sel} > {limit} and {short}{sel} > {limit})",
                            long = record_name(per_slice, w.long),
                            short = record_name(per_slice, w.short)
                        )
                    })
                    .collect();
            let mut labels = json!({ "severity": sev.as_str(), "slo": slo.name });
            if !per_slice {
                labels["slice"] = json!("*");
            }
            let what = if per_slice {
                "slice {{ $labels.slice }} of "
            } else {
                ""
            };
            let where_ = if per_slice {
                "in slice {{ $labels.slice }}, "
            } else {
                ""
            };
            let speed = if sev == Severity::Page {
                "fast"
            } else {
                "steadily"
            };
            rules.push(json!({
                "alert": "CanarySLOErrorBudgetBurn",
                "expr": conds.join(" or "),
                "for": prom_duration(sev.hold(slo.window)),
                "labels": labels,
                "annotations": {
                    "summary": format!("SLO {} of suite {} is burning its error budget {speed} ({where_}region {{{{ $labels.region }}}})", slo.name, suite.name),
                    "description": format!(
                        "{what}SLO {} ({} of {}, objective {}%) has an error ratio of {{{{ $value | humanizePercentage }}}} over the long window: at this rate the {} error budget does not last.",
                        slo.name, slo.sli, slo.probe, num(slo.objective * 100.0), prom_duration(slo.window)
                    ),
                    "runbook_url": runbook_url(opts, &anchor(&slo.name)),
                },
            }));
        }
    }
    json!({ "name": format!("canary-{}-{}", suite.name, slo.name), "rules": rules })
}

fn staleness_group(suite: &Suite, opts: &RulesOptions) -> Value {
    let p = period(suite);
    let twice = prom_duration(p * 2);
    let s = q(&suite.name);
    json!({
        "name": format!("canary-{}-staleness", suite.name),
        "rules": [
            {
                "alert": "CanaryProbeStale",
                "expr": format!("time() - max by (region, suite, endpoint, probe) (canary_last_success_timestamp_seconds{{suite=\"{s}\"}}) > {}", (p * 2).as_secs()),
                "labels": { "severity": "ticket", "suite": suite.name },
                "annotations": {
                    "summary": format!("canary probe {{{{ $labels.probe }}}} of suite {} got no answer for 2 schedule periods ({twice}) in {{{{ $labels.region }}}}", suite.name),
                    "description": "Either the endpoint fails every case or canary itself stopped running; its SLO metrics are stale.",
                    "runbook_url": runbook_url(opts, "stale-probes"),
                },
            },
            {
                "alert": "CanaryMetricsAbsent",
                // A Pushgateway keeps the last value forever: "absent" alone would never fire there.
                "expr": format!(
                    "(time() - max by (suite) (canary_last_run_timestamp_seconds{{suite=\"{s}\"}}) > {secs}) or absent(canary_last_run_timestamp_seconds{{suite=\"{s}\"}})",
                    secs = (p * 2).as_secs()
                ),
                "labels": { "severity": "ticket", "suite": suite.name },
                "annotations": {
                    "summary": format!("no canary run of suite {} reported for {twice}", suite.name),
                    "description": "The CronJob, the Pushgateway or the scrape is broken: no SLO of this suite is being measured.",
                    "runbook_url": runbook_url(opts, "stale-probes"),
                },
            }
        ]
    })
}

/// The rule groups of suites (a Prometheus rules file).
pub fn prometheus_rules(suites: &[Suite], opts: &RulesOptions) -> Value {
    let mut groups = Vec::new();
    for s in suites {
        for slo in &s.slos {
            groups.push(slo_group(s, slo, opts));
        }
        groups.push(staleness_group(s, opts));
    }
    json!({ "groups": groups })
}

/// A Kubernetes object name: lower-case DNS-1123, at most 63 characters.
pub fn k8s_name(parts: &[&str]) -> String {
    let raw = parts.join("-").to_ascii_lowercase();
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    let mut cut: String = s.chars().take(63).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    if cut.is_empty() {
        "canary".into()
    } else {
        cut
    }
}

fn pyrra(suites: &[Suite], opts: &RulesOptions) -> Vec<Value> {
    let mut docs = Vec::new();
    for s in suites {
        for slo in &s.slos {
            let mut ratio = json!({
                "errors": { "metric": events(&s.name, &slo.name, ",good=\"false\"") },
                "total": { "metric": events(&s.name, &slo.name, "") },
            });
            if slo.per_slice {
                ratio["grouping"] = json!(["region", "slice"]);
            } else {
                ratio["grouping"] = json!(["region"]);
            }
            docs.push(json!({
                "apiVersion": "pyrra.dev/v1alpha1",
                "kind": "ServiceLevelObjective",
                "metadata": {
                    "name": k8s_name(&[&s.name, &slo.name]),
                    "namespace": opts.namespace,
                    "labels": { "app.kubernetes.io/part-of": "canary", "canary.dev/suite": k8s_name(&[&s.name]) },
                },
                "spec": {
                    "target": num(slo.objective * 100.0),
                    "window": prom_duration(slo.window),
                    "description": slo.description.clone().unwrap_or_else(|| format!("{} of probe {} ({})", slo.sli, slo.probe, s.name)),
                    "indicator": { "ratio": ratio },
                },
            }));
        }
    }
    docs
}

/// Slices of an SLO's probe (for formats without grouping, one SLO per slice).
fn slices(suite: &Suite, slo: &Slo) -> Vec<String> {
    let mut v: Vec<String> = suite
        .probe_of(slo)
        .into_iter()
        .flat_map(|p| p.cases.iter().map(|c| c.slice.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn sloth(suites: &[Suite], opts: &RulesOptions) -> Vec<Value> {
    let mut docs = Vec::new();
    for s in suites {
        let mut slos = Vec::new();
        for slo in &s.slos {
            let mut variants = vec![(String::new(), String::new())];
            if slo.per_slice {
                for sl in slices(s, slo) {
                    variants.push((format!(",slice=\"{}\"", q(&sl)), sl));
                }
            }
            for (extra, slice) in variants {
                let name = if slice.is_empty() {
                    k8s_name(&[&slo.name])
                } else {
                    k8s_name(&[&slo.name, &slice])
                };
                let sel_bad = events(&s.name, &slo.name, &format!("{extra},good=\"false\""));
                let sel_all = events(&s.name, &slo.name, &extra);
                slos.push(json!({
                    "name": name,
                    "objective": slo.objective * 100.0,
                    "description": slo.description.clone().unwrap_or_else(|| format!("{} of probe {}", slo.sli, slo.probe)),
                    "labels": { "slice": if slice.is_empty() { "*".to_string() } else { slice.clone() } },
                    "sli": { "events": {
                        "error_query": format!("sum(rate({sel_bad}[{{{{.window}}}}]))"),
                        "total_query": format!("sum(rate({sel_all}[{{{{.window}}}}]))"),
                    }},
                    "alerting": {
                        "name": "CanarySLOErrorBudgetBurn",
                        "labels": { "slo": slo.name },
                        "annotations": { "runbook_url": runbook_url(opts, &anchor(&slo.name)) },
                        "page_alert": { "labels": { "severity": "page" } },
                        "ticket_alert": { "labels": { "severity": "ticket" } },
                    },
                }));
            }
        }
        docs.push(json!({
            "version": "prometheus/v1",
            "service": s.name,
            "labels": { "owner": "canary" },
            "slos": slos,
        }));
    }
    docs
}

fn openslo(suites: &[Suite]) -> Vec<Value> {
    let mut docs = Vec::new();
    for s in suites {
        for slo in &s.slos {
            let mut variants = vec![(String::new(), String::new())];
            if slo.per_slice {
                for sl in slices(s, slo) {
                    variants.push((format!(",slice=\"{}\"", q(&sl)), sl));
                }
            }
            for (extra, slice) in variants {
                let base = if slice.is_empty() {
                    k8s_name(&[&s.name, &slo.name])
                } else {
                    k8s_name(&[&s.name, &slo.name, &slice])
                };
                let good = events(&s.name, &slo.name, &format!("{extra},good=\"true\""));
                let total = events(&s.name, &slo.name, &extra);
                docs.push(json!({
                    "apiVersion": "openslo/v1",
                    "kind": "SLI",
                    "metadata": { "name": format!("{base}-sli"), "displayName": format!("{} ({})", slo.sli, if slice.is_empty() { "all slices" } else { &slice }) },
                    "spec": { "ratioMetric": {
                        "counter": true,
                        "good": { "metricSource": { "type": "Prometheus", "spec": { "query": format!("sum({good})") } } },
                        "total": { "metricSource": { "type": "Prometheus", "spec": { "query": format!("sum({total})") } } },
                    }},
                }));
                docs.push(json!({
                    "apiVersion": "openslo/v1",
                    "kind": "SLO",
                    "metadata": { "name": base, "displayName": slo.name },
                    "spec": {
                        "description": slo.description.clone().unwrap_or_default(),
                        "service": s.name,
                        "indicatorRef": format!("{base}-sli"),
                        "timeWindow": [{ "duration": prom_duration(slo.window), "isRolling": true }],
                        "budgetingMethod": "Occurrences",
                        "objectives": [{ "displayName": slo.name, "target": slo.objective }],
                    },
                }));
            }
        }
    }
    docs
}

/// The generated text of a format.
pub fn generate(suites: &[Suite], format: Format, opts: &RulesOptions) -> String {
    use crate::sink::yaml_out::{to_yaml, to_yaml_docs};
    let clean = |mut v: Value| {
        drop_nulls(&mut v);
        v
    };
    let docs = |v: Vec<Value>| to_yaml_docs(&v.into_iter().map(clean).collect::<Vec<_>>());
    match format {
        Format::Prometheus => to_yaml(&clean(prometheus_rules(suites, opts))),
        Format::PrometheusOperator => {
            let names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
            to_yaml(&clean(json!({
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {
                    "name": k8s_name(&["canary", &names.join("-"), "slos"]),
                    "namespace": opts.namespace,
                    "labels": { "app.kubernetes.io/part-of": "canary", "role": "alert-rules" },
                },
                "spec": prometheus_rules(suites, opts),
            })))
        }
        Format::Pyrra => docs(pyrra(suites, opts)),
        Format::Sloth => docs(sloth(suites, opts)),
        Format::Openslo => docs(openslo(suites)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            k8s_name(&["Llama Mapper", "p95 <= 250ms"]),
            "llama-mapper-p95-250ms"
        );
        assert_eq!(num(14.4 * (1.0 - 0.995)), "0.072");
        assert_eq!(anchor("mapper-latency-p95"), "mapper-latency-p95");
        assert_eq!(anchor("Fast_path v2.1"), "fast_path-v21");
        assert_eq!(q("a\"b"), "a\\\"b");
        assert_eq!(
            error_ratio_expr("s", "n", Duration::from_secs(300), "slo"),
            "sum by (slo) (rate(canary_slo_events_total{suite=\"s\",slo=\"n\",good=\"false\"}[5m])) / sum by (slo) (rate(canary_slo_events_total{suite=\"s\",slo=\"n\"}[5m]))"
        );
    }
}
