//! `canary calibrate SUITE`: the judge as a measured instrument. Keeps the judged cases of a
//! suite, runs them, and prints per probe and slice the judge's verdicts, its agreement with
//! itself (`samples` > 1) and, for cases with a human label (`expect.label`), its accuracy,
//! error rate, false pass rate and false fail rate.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::observation::Observation;
use crate::slo::aggregate::{SliceKey, SliceStats};
use crate::suite::{Case, Suite};

/// Whether a case asks a judge (itself or in one of its turns).
pub fn is_judged(c: &Case) -> bool {
    c.expect.judge.is_some() || c.turns.iter().any(|t| t.expect.judge.is_some())
}

/// The suite with only its judged cases (probes without any are dropped, and so are SLOs).
pub fn judged_only(suite: &Suite) -> Suite {
    let mut s = suite.clone();
    for p in &mut s.probes {
        p.cases.retain(is_judged);
        p.sampling = None;
    }
    s.probes.retain(|p| !p.cases.is_empty());
    s.slos.clear();
    s
}

/// One row of the calibration table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub endpoint: String,
    pub probe: String,
    pub slice: String,
    #[serde(flatten)]
    pub judge: super::report::JudgeReport,
    /// `1 - accuracy`: the share of labelled answers the judge got wrong (judge errors
    /// included).
    pub error_rate: Option<f64>,
    /// The standard error of `error_rate` (binomial, over the labelled judgments).
    pub error_rate_stderr: Option<f64>,
}

/// The rows, per probe and slice, then the aggregate `*` of each probe.
pub fn rows(stats: &BTreeMap<SliceKey, SliceStats>) -> Vec<Row> {
    let mut out: Vec<Row> = stats
        .iter()
        .filter_map(|(k, s)| {
            let j = s.judge.as_ref()?;
            let error_rate = j.accuracy().map(|a| 1.0 - a);
            Some(Row {
                endpoint: k.endpoint.clone(),
                probe: k.probe.clone(),
                slice: k.slice.clone(),
                judge: super::report::JudgeReport::from_agg(j),
                error_rate,
                error_rate_stderr: error_rate
                    .map(|e| (e * (1.0 - e) / j.labelled.max(1) as f64).sqrt()),
            })
        })
        .collect();
    // The aggregate last within its probe.
    out.sort_by(|a, b| {
        (&a.endpoint, &a.probe, a.slice == "*", &a.slice).cmp(&(
            &b.endpoint,
            &b.probe,
            b.slice == "*",
            &b.slice,
        ))
    });
    out
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The table as text.
pub fn table(rows: &[Row], judge_calls: u64) -> String {
    let head = [
        "probe",
        "slice",
        "judged",
        "passed",
        "errors",
        "self-agree",
        "labelled",
        "accuracy",
        "error rate",
        "false pass",
        "false fail",
        "cached",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let j = &r.judge;
        let err = match (r.error_rate, r.error_rate_stderr) {
            (Some(e), Some(se)) => format!("{:.1}% ±{:.1}", e * 100.0, se * 100.0),
            _ => "-".into(),
        };
        cells.push(vec![
            r.probe.clone(),
            r.slice.clone(),
            j.judged.to_string(),
            pct((j.judged > 0).then(|| j.passed as f64 / j.judged as f64)),
            j.judge_errors.to_string(),
            pct(j.self_agreement),
            j.labelled.to_string(),
            pct(j.accuracy),
            err,
            pct(j.false_pass_rate),
            pct(j.false_fail_rate),
            j.cached.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let (tin, tout, cost) =
        rows.iter()
            .filter(|r| r.slice == "*")
            .fold((0, 0, None::<f64>), |(i, o, c), r| {
                (
                    i + r.judge.input_tokens,
                    o + r.judge.output_tokens,
                    match (c, r.judge.cost_dollars) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
                    },
                )
            });
    out.push_str(&format!(
        "judge calls: {judge_calls}, judge tokens: {tin} in, {tout} out{}\n",
        cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
    ));
    out
}

/// Whether the run judged anything at all.
pub fn judged_any(observations: &[Observation]) -> bool {
    observations.iter().any(|o| !o.judgments.is_empty())
}
