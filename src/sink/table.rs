//! The terminal table of `canary run` and `canary demo`: one block per probe with a row per
//! slice (p50/p95/p99 of each latency SLI, each ratio), then the SLO verdicts.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::measure::sli::Sli;
use crate::slo::aggregate::{SliceKey, SliceStats, ALL_SLICES};
use crate::slo::SloVerdict;

/// A short column name for a latency SLI.
pub fn short(sli: Sli) -> &'static str {
    match sli {
        Sli::TimeToFirstByte => "ttfb",
        Sli::TimeToFirstToken => "ttft",
        Sli::TimeToFirstVisibleToken => "ttfvt",
        Sli::TimeToFirstAudio => "ttfa",
        Sli::TimeToCompletion => "ttc",
        Sli::InterChunkGap => "gap",
        Sli::FreshnessLag => "fresh_lag",
        Sli::AnswerStaleness => "staleness",
        other => other.name(),
    }
}

fn ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{:.1}s", v)
    } else {
        format!("{:.1}", v * 1000.0)
    }
}

fn pct(v: f64) -> String {
    if (0.9995..1.0).contains(&v) {
        format!("{:.2}%", v * 100.0)
    } else {
        format!("{:.1}%", v * 100.0)
    }
}

/// Renders the per-slice table and the SLO verdicts.
pub fn render(
    suite: &str,
    region: &str,
    elapsed: f64,
    stats: &BTreeMap<SliceKey, SliceStats>,
    slos: &[SloVerdict],
) -> String {
    let mut out = String::new();
    let total_runs: u64 = stats
        .iter()
        .filter(|(k, _)| k.slice == ALL_SLICES)
        .map(|(_, s)| s.runs)
        .sum();
    let _ = writeln!(
        out,
        "suite {suite}  region {region}  {total_runs} case runs in {elapsed:.2}s"
    );
    let mut probes: Vec<(&str, &str)> = stats
        .keys()
        .map(|k| (k.endpoint.as_str(), k.probe.as_str()))
        .collect();
    probes.dedup();
    for (endpoint, probe) in probes {
        let rows: Vec<(&SliceKey, &SliceStats)> = stats
            .iter()
            .filter(|(k, _)| k.endpoint == endpoint && k.probe == probe)
            .collect();
        let lat: Vec<Sli> = Sli::ALL
            .iter()
            .copied()
            .filter(|s| rows.iter().any(|(_, st)| st.latency.contains_key(s)))
            .collect();
        let rat: Vec<Sli> = Sli::ALL
            .iter()
            .copied()
            .filter(|s| {
                rows.iter()
                    .any(|(_, st)| st.ratios.get(s).is_some_and(|r| r.total > 0))
            })
            .collect();
        let mut header = vec!["slice".to_string(), "runs".into(), "errors".into()];
        for s in &lat {
            header.push(format!("{} p50/p95/p99 ms", short(*s)));
        }
        for s in &rat {
            header.push(s.name().to_string());
        }
        header.push("tiers".into());
        // The aggregate first, then the slices.
        let mut ordered = rows.clone();
        ordered.sort_by_key(|(k, _)| (k.slice != ALL_SLICES, k.slice.clone()));
        let mut table = vec![header];
        for (k, st) in ordered {
            let mut row = vec![
                if k.slice == ALL_SLICES {
                    "* (all)".to_string()
                } else {
                    k.slice.clone()
                },
                st.runs.to_string(),
                st.errors.to_string(),
            ];
            for s in &lat {
                row.push(match st.latency.get(s) {
                    Some(l) if l.count() > 0 => {
                        let x = l.summary();
                        format!("{}/{}/{}", ms(x.p50), ms(x.p95), ms(x.p99))
                    }
                    _ => "-".into(),
                });
            }
            for s in &rat {
                row.push(
                    st.ratios
                        .get(s)
                        .and_then(|r| r.value())
                        .map(pct)
                        .unwrap_or_else(|| "-".into()),
                );
            }
            let tiers = st
                .tiers
                .iter()
                .map(|(t, n)| format!("{t}:{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            row.push(if tiers.is_empty() { "-".into() } else { tiers });
            table.push(row);
        }
        let _ = writeln!(out, "\n{endpoint} / {probe}");
        write_aligned(&mut out, &table);
    }
    if !slos.is_empty() {
        let _ = writeln!(out, "\nSLOs");
        let mut table = vec![vec![
            "verdict".to_string(),
            "slo".into(),
            "slice".into(),
            "target".into(),
            "good".into(),
            "objective".into(),
        ]];
        for v in slos {
            let target = match v.threshold {
                Some(t) => format!("{} <= {}ms", v.sli, trim_float(t * 1000.0)),
                None => v.sli.name().to_string(),
            };
            let good = match v.ratio {
                Some(r) => format!("{} ({}/{})", pct(r), v.good, v.total),
                None => "no data".to_string(),
            };
            table.push(vec![
                if v.met {
                    "MET".into()
                } else if v.hidden {
                    "MISSED*".into()
                } else {
                    "MISSED".into()
                },
                v.name.clone(),
                if v.slice == ALL_SLICES {
                    "* (all)".into()
                } else {
                    v.slice.clone()
                },
                target,
                good,
                format!(">= {}", pct(v.objective)),
            ]);
        }
        write_aligned(&mut out, &table);
        for v in slos.iter().filter(|v| v.hidden) {
            let _ = writeln!(
                out,
                "* hidden regression: slice `{}` misses `{}` ({}) while the aggregate meets it",
                v.slice,
                v.name,
                v.ratio.map(pct).unwrap_or_else(|| "no data".into())
            );
        }
        let missed = slos.iter().filter(|v| !v.met).count();
        let _ = writeln!(
            out,
            "\n{} of {} SLO verdicts met{}",
            slos.len() - missed,
            slos.len(),
            if missed > 0 {
                format!(", {missed} missed")
            } else {
                String::new()
            }
        );
    }
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The width of the terminal on stdout: `COLUMNS` when set, else the terminal's own size;
/// `None` when stdout is not a terminal (a file or a pipe gets full rows).
pub fn terminal_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c >= 20)
    {
        return Some(c);
    }
    // SAFETY: isatty and ioctl(TIOCGWINSZ) only read the descriptor's state into `ws`.
    unsafe {
        if libc::isatty(1) != 1 {
            return None;
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col >= 20)
            .then_some(ws.ws_col as usize)
    }
}

/// One line per missed SLO verdict: what `canary run -q` still prints, so that a CronJob's
/// log says why it exited 1.
pub fn missed_lines(suite: &str, slos: &[SloVerdict]) -> Vec<String> {
    slos.iter()
        .filter(|v| !v.met)
        .map(|v| {
            let target = match v.threshold {
                Some(t) => format!("{} <= {}ms", v.sli, trim_float(t * 1000.0)),
                None => v.sli.name().to_string(),
            };
            format!(
                "MISSED{} {suite} / {} slice {}: {target} {} good, objective >= {}",
                if v.hidden { "*" } else { "" },
                v.name,
                if v.slice == ALL_SLICES {
                    "* (all)"
                } else {
                    &v.slice
                },
                match v.ratio {
                    Some(r) => format!("{} ({}/{})", pct(r), v.good, v.total),
                    None => "no data".to_string(),
                },
                pct(v.objective)
            )
        })
        .collect()
}

/// Writes rows as aligned columns; rows wider than the terminal are wrapped into several
/// blocks of columns, each repeating the first column (the row's name).
fn write_aligned(out: &mut String, rows: &[Vec<String>]) {
    write_aligned_within(out, rows, terminal_width());
}

fn write_aligned_within(out: &mut String, rows: &[Vec<String>], width: Option<usize>) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let total: usize = 2 + widths.iter().map(|w| w + 2).sum::<usize>();
    match width {
        Some(max) if cols > 2 && total > max => {
            // Blocks of columns 1.., each led by column 0, that fit in `max`.
            let lead = 2 + widths[0] + 2;
            let mut start = 1;
            while start < cols {
                let mut end = start;
                let mut used = lead;
                while end < cols && (end == start || used + widths[end] + 2 <= max) {
                    used += widths[end] + 2;
                    end += 1;
                }
                let block: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        let mut b = vec![r.first().cloned().unwrap_or_default()];
                        b.extend((start..end).map(|c| r.get(c).cloned().unwrap_or_default()));
                        b
                    })
                    .collect();
                if start > 1 {
                    out.push('\n');
                }
                write_aligned_within(out, &block, None);
                start = end;
            }
            return;
        }
        _ => {}
    }
    aligned_rows(out, rows, &widths);
}

fn aligned_rows(out: &mut String, rows: &[Vec<String>], widths: &[usize]) {
    for r in rows {
        let mut line = String::from("  ");
        for (i, cell) in r.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// One line per probe that used tokens: totals, how many runs were estimated, and cost.
pub fn token_lines(stats: &BTreeMap<SliceKey, SliceStats>) -> String {
    let mut out = String::new();
    for (k, s) in stats
        .iter()
        .filter(|(k, s)| k.slice == ALL_SLICES && s.tokens.runs > 0)
    {
        let t = &s.tokens;
        let est = if t.estimated_runs > 0 {
            format!(" ({} of {} runs estimated)", t.estimated_runs, t.runs)
        } else {
            String::new()
        };
        let cost = t
            .cost_dollars
            .map(|c| format!(", ${c:.4}"))
            .unwrap_or_default();
        out += &format!(
            "\ntokens {} / {}: {} in, {} out ({} reasoning){est}{cost}\n",
            k.endpoint, k.probe, t.input, t.output, t.reasoning
        );
    }
    out
}

/// One line per judged probe: the judgments, judge errors, the judge's agreement with itself
/// and with human labels, cache hits and what the judge calls cost (per slice: the report and
/// `canary calibrate`).
pub fn judge_lines(stats: &BTreeMap<SliceKey, SliceStats>) -> String {
    let pct = |v: Option<f64>| v.map(|x| format!("{:.1}%", x * 100.0));
    let mut out = String::new();
    for (k, j) in stats
        .iter()
        .filter(|(k, _)| k.slice == ALL_SLICES)
        .filter_map(|(k, s)| s.judge.as_ref().map(|j| (k, j)))
    {
        let mut parts = vec![format!(
            "{} judged, {} passed, {} judge errors",
            j.judged, j.passed, j.errors
        )];
        if let Some(a) = pct(j.self_agreement()) {
            parts.push(format!("self-agreement {a}"));
        }
        if let Some(a) = pct(j.accuracy()) {
            parts.push(format!(
                "accuracy {a} over {} labels (false pass {}, false fail {})",
                j.labelled,
                pct(j.false_pass_rate()).unwrap_or_else(|| "-".into()),
                pct(j.false_fail_rate()).unwrap_or_else(|| "-".into())
            ));
        }
        parts.push(format!("{} cached", j.cached));
        parts.push(format!(
            "judge tokens {} in, {} out{}",
            j.input_tokens,
            j.output_tokens,
            j.cost_dollars
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default()
        ));
        out += &format!("judge {} / {}: {}\n", k.endpoint, k.probe, parts.join("; "));
    }
    out
}

/// One line per job probe: status requests per run and the bound of the completion
/// measurement (the window in which each job may have finished before it was seen done).
pub fn job_lines(observations: &[crate::observation::Observation]) -> String {
    let mut by: std::collections::BTreeMap<(&str, &str), Vec<&crate::timeline::JobSummary>> =
        Default::default();
    for o in observations {
        if let Some(j) = &o.job {
            by.entry((o.endpoint.as_str(), o.probe.as_str()))
                .or_default()
                .push(j);
        }
    }
    let mut out = String::new();
    for ((endpoint, probe), jobs) in by {
        let polls: u32 = jobs.iter().map(|j| j.polls).sum();
        let errors: Vec<f64> = jobs
            .iter()
            .filter_map(|j| j.completion_error_seconds)
            .collect();
        let bound = match errors.iter().copied().reduce(f64::max) {
            Some(w) => format!(
                "completion measured within {:.1} ms of the moment the job was done (worst run)",
                w * 1e3
            ),
            None => "no job completed".to_string(),
        };
        let queue: Vec<f64> = jobs.iter().filter_map(|j| j.queue_seconds).collect();
        let queue = if queue.is_empty() {
            String::new()
        } else {
            format!(
                "; server queue time mean {:.3}s",
                queue.iter().sum::<f64>() / queue.len() as f64
            )
        };
        out += &format!(
            "\njob {endpoint} / {probe}: {} runs, {:.1} status reads per run; {bound}{queue}\n",
            jobs.len(),
            f64::from(polls) / jobs.len().max(1) as f64,
        );
    }
    out
}

/// The target-metrics lines under a suite's table: the service's own figures next to canary's.
pub fn target_lines(t: &super::target::TargetReport) -> String {
    let mut out = format!(
        "\ntarget metrics: {} ({})\n",
        t.endpoint,
        crate::secret::redact(&t.url)
    );
    let fmt = |m: &std::collections::BTreeMap<&'static str, f64>| -> String {
        let mut parts = Vec::new();
        if let Some(r) = m.get("ratio") {
            parts.push(format!(
                "{:.1}% ({}/{})",
                r * 100.0,
                m.get("good").copied().unwrap_or(0.0),
                m.get("total").copied().unwrap_or(0.0)
            ));
        }
        for k in ["p50", "p95", "mean"] {
            if let Some(v) = m.get(k) {
                parts.push(format!("{k} {:.3}s", v));
            }
        }
        if parts.is_empty() {
            "no data".into()
        } else {
            parts.join(" ")
        }
    };
    for c in &t.comparisons {
        out += &format!(
            "  {:<22} target {:<32} canary {}\n",
            c.sli,
            fmt(&c.target),
            fmt(&c.canary)
        );
    }
    for e in &t.errors {
        out += &format!("  ! {e}\n");
    }
    for a in &t.artifacts {
        out += &format!("  snapshot: {a}\n");
    }
    out
}

/// `1 probe`, `2 probes`.
pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ms(0.2504), "250.4");
        assert_eq!(pct(0.995), "99.5%");
        assert_eq!(pct(0.9996), "99.96%");
        assert_eq!(trim_float(250.0), "250");
        assert_eq!(trim_float(0.5), "0.5");
    }

    #[test]
    fn columns_are_aligned() {
        let mut out = String::new();
        write_aligned(
            &mut out,
            &[
                vec!["a".into(), "bb".into()],
                vec!["ccc".into(), "d".into()],
            ],
        );
        assert_eq!(out, "  a    bb\n  ccc  d\n");
    }

    #[test]
    fn wide_rows_wrap_into_blocks_that_repeat_the_name() {
        let rows: Vec<Vec<String>> = vec![
            (0..8).map(|i| format!("head{i}")).collect(),
            (0..8).map(|i| format!("cell{i}")).collect(),
        ];
        let mut out = String::new();
        write_aligned_within(&mut out, &rows, Some(40));
        assert!(out.lines().all(|l| l.chars().count() <= 40), "{out}");
        // Every block starts with the first column.
        let heads = out.lines().filter(|l| l.starts_with("  head0")).count();
        assert!(heads >= 2, "{out}");
        for i in 1..8 {
            assert!(out.contains(&format!("cell{i}")), "{out}");
        }
        // Without a terminal, one block.
        let mut full = String::new();
        write_aligned_within(&mut full, &rows, None);
        assert_eq!(full.lines().count(), 2);
    }

    #[test]
    fn missed_lines_name_the_slo_and_slice() {
        let v = SloVerdict {
            name: "lat".into(),
            probe: "p".into(),
            endpoint: "e".into(),
            sli: Sli::TimeToFirstVisibleToken,
            slice: "pricing".into(),
            good: 13,
            total: 25,
            ratio: Some(0.52),
            objective: 0.9,
            threshold: Some(0.8),
            met: false,
            hidden: true,
        };
        let met = SloVerdict {
            met: true,
            ..v.clone()
        };
        let lines = missed_lines("chat", &[v, met]);
        assert_eq!(
            lines,
            vec!["MISSED* chat / lat slice pricing: time_to_first_visible_token <= 800ms 52.0% (13/25) good, objective >= 90.0%"]
        );
    }
}
