//! The gate's outputs: a Markdown summary for PR comments and `$GITHUB_STEP_SUMMARY`
//! (verdict first), JUnit XML (one test case per SLO and slice, and per comparison), and the
//! JSON report with both sides.

use std::fmt::Write;

use super::stats::Decision;
use super::{GateOutcome, Verdict};
use crate::slo::aggregate::ALL_SLICES;

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "INCONCLUSIVE",
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn value(kind: &str, v: f64) -> String {
    if kind == "latency" {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{:.1}%", v * 100.0)
    }
}

/// The Markdown summary.
pub fn markdown(o: &GateOutcome) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "## canary gate: {} ({})\n",
        verdict_word(o.verdict),
        md_escape(&o.suite)
    );
    let _ = writeln!(
        m,
        "Candidate {} vs baseline {} · {} runs per case, interleaved (seed {}) · {}% confidence\n",
        md_escape(&o.candidate_targets),
        md_escape(&o.baseline_targets),
        o.runs,
        o.seed,
        crate::slo::rules::num(o.confidence * 100.0)
    );
    if !o.reasons.is_empty() {
        let _ = writeln!(m, "**Why:**\n");
        for r in &o.reasons {
            let _ = writeln!(m, "- {}", md_escape(r));
        }
        m.push('\n');
    }
    let _ = writeln!(m, "| probe | slice | SLI | baseline | candidate | delta | verdict |\n|---|---|---|---:|---:|---:|---|");
    let mut rows: Vec<&super::Comparison> = o.comparisons.iter().collect();
    // Regressions first, then undecided, then the rest.
    rows.sort_by_key(|c| match c.decision {
        Decision::Regression => 0,
        Decision::Inconclusive => 1,
        Decision::Pass => 2,
    });
    for c in rows {
        let delta = if c.kind == "latency" {
            format!("{:+.1}%", (c.candidate / c.baseline - 1.0) * 100.0)
        } else {
            format!("{:+.1} pts", (c.candidate - c.baseline) * 100.0)
        };
        let verdict = match c.decision {
            Decision::Regression => "❌ regression",
            Decision::Inconclusive => "⚠️ undecided",
            Decision::Pass => "✅ ok",
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&c.probe),
            md_escape(if c.slice == ALL_SLICES {
                "all"
            } else {
                &c.slice
            }),
            c.sli,
            value(c.kind, c.baseline),
            value(c.kind, c.candidate),
            delta,
            verdict
        );
    }
    let _ = writeln!(m, "\n### Candidate SLOs\n\n| SLO | slice | good | objective | verdict |\n|---|---|---:|---:|---|");
    for v in &o.slos {
        let _ = writeln!(
            m,
            "| {} | {} | {}/{} | {}% | {} |",
            md_escape(&v.name),
            md_escape(if v.slice == ALL_SLICES {
                "all"
            } else {
                &v.slice
            }),
            v.good,
            v.total,
            crate::slo::rules::num(v.objective * 100.0),
            if v.met { "✅ met" } else { "❌ missed" }
        );
    }
    crate::secret::redact(&m)
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Seconds the case runs of `probe` (in `slice`, or every slice for `*`) took in `r`.
fn case_seconds(r: &crate::sink::report::Report, probe: &str, slice: &str) -> f64 {
    r.cases
        .iter()
        .filter(|c| c.probe == probe && (slice == "*" || c.slice == slice))
        .map(|c| c.elapsed_seconds)
        .sum()
}

/// JUnit XML: one test case per SLO and slice, one per comparison. A test case's `time` is
/// the seconds its case runs took (the candidate's for an SLO, both sides' for a
/// comparison); the suite's is every case run's.
pub fn junit(o: &GateOutcome) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for v in &o.slos {
        tests += 1;
        let name = format!("slo {} [{}]", v.name, v.slice);
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.slo\" name=\"{}\" time=\"{:.3}\">",
            xml(&o.suite),
            xml(&name),
            case_seconds(&o.candidate, &v.probe, &v.slice)
        );
        if !v.met {
            failures += 1;
            let msg = format!(
                "{}/{} good, objective {}%",
                v.good,
                v.total,
                crate::slo::rules::num(v.objective * 100.0)
            );
            let _ = write!(
                cases,
                "<failure type=\"slo_missed\" message=\"{}\"/>",
                xml(&msg)
            );
        }
        cases.push_str("</testcase>\n");
    }
    for c in &o.comparisons {
        tests += 1;
        let name = format!("compare {} {} [{}]", c.probe, c.sli, c.slice);
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.compare\" name=\"{}\" time=\"{:.3}\">",
            xml(&o.suite),
            xml(&name),
            case_seconds(&o.candidate, &c.probe, &c.slice)
                + case_seconds(&o.baseline, &c.probe, &c.slice)
        );
        match c.decision {
            Decision::Regression => {
                failures += 1;
                let _ = write!(
                    cases,
                    "<failure type=\"regression\" message=\"{}\"/>",
                    xml(&c.reason)
                );
            }
            Decision::Inconclusive => {
                skipped += 1;
                let _ = write!(cases, "<skipped message=\"{}\"/>", xml(&c.reason));
            }
            Decision::Pass => {}
        }
        cases.push_str("</testcase>\n");
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<testsuites name=\"canary gate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">");
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        xml(&o.suite),
        o.candidate
            .cases
            .iter()
            .chain(&o.baseline.cases)
            .map(|c| c.elapsed_seconds)
            .sum::<f64>()
    );
    x.push_str(&cases);
    x.push_str("  </testsuite>\n</testsuites>\n");
    crate::secret::redact(&x)
}

/// The JSON report with both sides.
pub fn json(o: &GateOutcome) -> String {
    crate::secret::redact(
        &serde_json::to_string_pretty(o).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
    )
}
