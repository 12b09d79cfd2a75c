//! The status page at `/`: one server-rendered HTML page, no scripts, no external assets,
//! refreshed by the browser every minute. The banner is the worst state of any SLO (breached,
//! budget spent, burning, holding) and names the SLOs that are not holding. Per SLO and slice:
//! state, good share, a budget bar and the current burn; per probe and slice: small latency
//! charts (inline SVG, with a time axis) of the user-felt SLIs beside first byte over the last
//! 24 hours; the last failures with their reason (the error, or the checks that failed).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::slo_state::{slo_states, SloState};
use super::ServeState;
use crate::slo::burn::Status;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2433;background:#f7f8fa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#667} table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:middle}
th{font-weight:600;color:#445;background:#eef0f4}
.state{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.ok{background:#d9f2e0;color:#1b6b34} .ticket{background:#fff0c2;color:#7a5a00} .breached{background:#fbd5d5;color:#9b1c1c} .nodata{background:#e8e8ee;color:#556}
.budget{width:160px;height:10px;background:#e3e6eb;border-radius:5px;overflow:hidden;display:inline-block;vertical-align:middle}
.budget>div{height:100%} .good{background:#2f9e55} .low{background:#d9a400} .spent{background:#d33}
.charts{display:flex;flex-wrap:wrap;gap:16px} .chart{background:#fff;border:1px solid #e3e6eb;padding:8px;border-radius:6px}
.legend span{margin-right:12px;font-size:12px} .err{color:#9b1c1c;font-family:ui-monospace,monospace;font-size:12px}
";

/// Series drawn per probe: the user-felt SLIs beside first byte.
const CHART_SLIS: &[(&str, &str, &str)] = &[
    ("time_to_first_byte", "first byte", "#8a93a6"),
    (
        "time_to_first_visible_token",
        "first visible token",
        "#2563eb",
    ),
    ("time_to_first_audio", "first audible audio", "#9333ea"),
    ("time_to_completion", "completion", "#16a34a"),
];

/// The badge class and text of a state.
fn badge(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::NoData => ("nodata", "NO DATA"),
        Status::Breached => ("breached", "BREACHED"),
        Status::BudgetExhausted => ("breached", "BUDGET SPENT"),
        Status::Burning => ("ticket", "BURNING"),
        Status::Ok => ("ok", "OK"),
    }
}

/// The banner: the worst state of any SLO, in words.
fn banner(slos: &[SloState]) -> (&'static str, &'static str) {
    let worst = slos
        .iter()
        .flat_map(|s| s.slices.iter().map(|sl| sl.state.status))
        .filter(|s| *s != Status::NoData)
        .min();
    match worst {
        Some(Status::Breached) => ("breached", "SLO BREACHED"),
        Some(Status::BudgetExhausted) => ("breached", "ERROR BUDGET SPENT"),
        Some(Status::Burning) => ("ticket", "BURNING ERROR BUDGET"),
        Some(_) => ("ok", "ALL SLOS HOLD"),
        None => ("nodata", "NO DATA YET"),
    }
}

/// One line per SLO slice that does not hold, worst first, for under the banner.
fn not_holding(slos: &[SloState]) -> Vec<String> {
    let mut rows: Vec<(Status, String)> = Vec::new();
    for s in slos {
        for sl in &s.slices {
            let st = &sl.state;
            if matches!(st.status, Status::Ok | Status::NoData) {
                continue;
            }
            let slice = if sl.slice == "*" {
                String::new()
            } else {
                format!(" (slice {})", sl.slice)
            };
            rows.push((
                st.status,
                format!(
                    "{}{slice}: {} good against {}%, error budget {}, burning {} over {}",
                    s.name,
                    st.sli
                        .map(|v| format!("{:.1}%", v * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    crate::slo::rules::num(s.objective * 100.0),
                    st.budget_remaining
                        .map(|b| format!("{:.0}%", b * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    st.current_burn
                        .map(|r| format!("{r:.1}×"))
                        .unwrap_or_else(|| "-".into()),
                    s.burn_window
                ),
            ));
        }
    }
    rows.sort_by_key(|(st, _)| *st);
    rows.into_iter().map(|(_, t)| t).collect()
}

/// One latency chart: a line per SLI, a value scale and a time axis (UTC hours).
fn chart(points: &BTreeMap<&str, Vec<(f64, f64)>>, from: f64, to: f64) -> String {
    let (w, h) = (560.0, 136.0);
    let bottom = h - 30.0;
    let max = points
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(0.001);
    let x = |t: f64| 40.0 + (t - from) / (to - from).max(1.0) * (w - 50.0);
    let y = |v: f64| bottom - v / max * (bottom - 12.0);
    let mut svg = format!("<svg class=\"latency-chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">");
    let _ = write!(
        svg,
        "<line x1=\"40\" y1=\"{bottom}\" x2=\"{0}\" y2=\"{bottom}\" stroke=\"#ccd\"/><line x1=\"40\" y1=\"12\" x2=\"40\" y2=\"{bottom}\" stroke=\"#ccd\"/>",
        w - 10.0
    );
    let _ = write!(
        svg,
        "<text x=\"2\" y=\"16\" font-size=\"10\" fill=\"#667\">{:.0} ms</text><text x=\"2\" y=\"{bottom}\" font-size=\"10\" fill=\"#667\">0</text>",
        max * 1000.0
    );
    // Time axis: a tick at each whole hour step that gives at most 7 labels.
    let span = (to - from).max(60.0);
    let step = [
        300.0,
        900.0,
        3600.0,
        2.0 * 3600.0,
        4.0 * 3600.0,
        6.0 * 3600.0,
    ]
    .into_iter()
    .find(|s| span / s <= 7.0)
    .unwrap_or(6.0 * 3600.0);
    let mut t = (from / step).ceil() * step;
    while t <= to {
        let secs = t.rem_euclid(86400.0) as u64;
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{bottom}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#ccd\"/><text class=\"time-tick\" x=\"{0:.1}\" y=\"{2}\" font-size=\"10\" fill=\"#667\" text-anchor=\"middle\">{3:02}:{4:02}</text>",
            x(t),
            bottom + 4.0,
            bottom + 16.0,
            secs / 3600,
            secs % 3600 / 60
        );
        t += step;
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#667\" text-anchor=\"end\">UTC</text>",
        w - 10.0,
        h - 2.0
    );
    for (name, _, color) in CHART_SLIS {
        if let Some(p) = points.get(name).filter(|p| !p.is_empty()) {
            let pts: Vec<String> = p
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let _ = write!(svg, "<polyline data-sli=\"{name}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>", pts.join(" "));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The reason a failed run failed: its error, or for `check_failed` the checks that failed
/// with their detail (from the stored case record).
fn failure_reason(error: Option<&str>, record: &str) -> String {
    if let Some(e) = error.filter(|e| !e.is_empty()) {
        return e.to_string();
    }
    let rec: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
    let failed: Vec<String> = rec["checks"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            let detail = c["detail"].as_str().unwrap_or("");
            let detail: String = detail.chars().take(200).collect();
            format!("{}: {detail}", c["check"].as_str().unwrap_or("check"))
        })
        .collect();
    failed.join("; ")
}

/// At most `n` points: the median of each time bucket.
fn downsample(mut pts: Vec<(f64, f64)>, n: usize) -> Vec<(f64, f64)> {
    if pts.len() <= n {
        return pts;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let per = pts.len().div_ceil(n);
    pts.chunks(per)
        .map(|c| {
            let mut v: Vec<f64> = c.iter().map(|p| p.1).collect();
            v.sort_by(f64::total_cmp);
            (c[c.len() / 2].0, v[v.len() / 2])
        })
        .collect()
}

/// Renders the page at `now` (Unix seconds).
pub fn render(state: &ServeState, now: f64) -> String {
    let slos = slo_states(state, now);
    let (overall_class, overall) = banner(&slos);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"60\"><title>canary status</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>canary status <span id=\"overall\" class=\"state {overall_class}\">{overall}</span></h1><div class=\"meta\">region {}{} · generated {} · refreshes every minute · independent synthetic probes, not a vendor status page</div>",
        esc(&state.region),
        // A replica of a sharded fleet shows its own probes only: say so.
        if state.shard.count > 1 {
            format!(" · shard {} (this replica's probes)", state.shard)
        } else {
            String::new()
        },
        esc(&crate::sink::report::rfc3339(std::time::SystemTime::now()))
    );
    let lines = not_holding(&slos);
    if !lines.is_empty() {
        h.push_str("<ul id=\"not-holding\">");
        for l in &lines {
            let _ = write!(h, "<li>{}</li>", esc(l));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>SLOs</h2><table id=\"slos\"><tr><th>state</th><th>suite / endpoint</th><th>SLO</th><th>slice</th><th>target</th><th>good over window</th><th>error budget left</th><th>burn now</th></tr>");
    for s in &slos {
        for sl in &s.slices {
            let (class, label) = badge(sl.state.status);
            let target = match s.threshold {
                Some(t) => format!(
                    "{} ≤ {:.0} ms, {}%",
                    s.sli,
                    t * 1000.0,
                    crate::slo::rules::num(s.objective * 100.0)
                ),
                None => format!(
                    "{} ≥ {}%",
                    s.sli,
                    crate::slo::rules::num(s.objective * 100.0)
                ),
            };
            let good = match sl.state.sli {
                Some(v) => format!("{:.2}% ({}/{})", v * 100.0, sl.state.good, sl.state.total),
                None => "no data".into(),
            };
            let (bar_class, width, left) = match sl.state.budget_remaining {
                Some(b) if b <= 0.0 => ("spent", 100.0, format!("{:.0}%", b * 100.0)),
                Some(b) if b < 0.25 => ("low", b * 100.0, format!("{:.0}%", b * 100.0)),
                Some(b) => ("good", b.min(1.0) * 100.0, format!("{:.0}%", b * 100.0)),
                None => ("good", 0.0, "-".into()),
            };
            let burn = sl
                .state
                .current_burn
                .map(|r| format!("{r:.1}× over {}", s.burn_window))
                .unwrap_or_else(|| "-".into());
            let _ = write!(
                h,
                "<tr class=\"slo-row\" data-slo=\"{}\" data-slice=\"{}\"><td><span class=\"state {class}\">{label}</span></td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{good}</td><td><span class=\"budget\"><div class=\"{bar_class}\" style=\"width:{width:.1}%\"></div></span> {left}</td><td>{}</td></tr>",
                esc(&s.name),
                esc(&sl.slice),
                esc(&s.suite),
                esc(&s.endpoint),
                esc(&s.name),
                esc(if sl.slice == "*" { "all slices" } else { &sl.slice }),
                esc(&target),
                esc(&burn)
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Latency over the last 24 hours</h2><div class=\"legend\">");
    for (_, label, color) in CHART_SLIS {
        let _ = write!(h, "<span style=\"color:{color}\">■ {label}</span>");
    }
    h.push_str("</div><div class=\"charts\">");
    let from = now - 86400.0;
    for suite in state.suites().iter() {
        for p in &suite.probes {
            // Only the latency column: the full case records stay in the database.
            let runs = state
                .history
                .latencies_since(&suite.name, &p.name, from)
                .unwrap_or_default();
            // One chart per slice: a slice's latency is its own (the slices of a golden set
            // ask different questions), and mixing them hides the slow one.
            let mut by_slice: BTreeMap<&str, Vec<&(f64, String, String, String)>> = BTreeMap::new();
            for r in &runs {
                by_slice.entry(r.1.as_str()).or_default().push(r);
            }
            for (slice, runs) in by_slice {
                let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
                for (ts, _, outcome, latency) in runs.iter().copied() {
                    let lat: BTreeMap<String, f64> =
                        serde_json::from_str(latency).unwrap_or_default();
                    for (name, _, _) in CHART_SLIS {
                        if let Some(v) = lat.get(*name).filter(|_| outcome != "timeout") {
                            series.entry(name).or_default().push((*ts, *v));
                        }
                    }
                }
                let series: BTreeMap<&str, Vec<(f64, f64)>> = series
                    .into_iter()
                    .map(|(k, v)| (k, downsample(v, 240)))
                    .collect();
                let first = runs.first().map(|r| r.0).unwrap_or(from);
                let _ = write!(
                    h,
                    "<div class=\"chart\" data-probe=\"{}\" data-slice=\"{}\"><div><b>{}</b> · slice {} · {} · {} runs</div>{}</div>",
                    esc(&p.name),
                    esc(slice),
                    esc(&p.name),
                    esc(slice),
                    esc(&p.endpoint),
                    runs.len(),
                    chart(&series, first.min(now - 60.0), now)
                );
            }
        }
    }
    h.push_str("</div>");

    h.push_str("<h2>Last failures</h2><table id=\"failures\"><tr><th>when</th><th>suite / probe / case</th><th>slice</th><th>outcome</th><th>reason</th></tr>");
    let failures = state.history.recent_failures(20).unwrap_or_default();
    if failures.is_empty() {
        h.push_str("<tr><td colspan=\"5\">no failures recorded</td></tr>");
    }
    for r in failures {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(r.ts.max(0.0));
        let _ = write!(
            h,
            "<tr class=\"failure\"><td>{}</td><td><a href=\"/api/v1/runs/{}\">{} / {} / {}</a></td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
            esc(&crate::sink::report::rfc3339(when)),
            r.id,
            esc(&r.suite),
            esc(&r.probe),
            esc(&r.case_id),
            esc(&r.slice),
            esc(&r.outcome),
            esc(&crate::secret::redact(&failure_reason(
                r.error.as_deref(),
                &r.record
            )))
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_downsamples() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 10) as f64)).collect();
        let d = downsample(pts, 100);
        assert!(d.len() <= 100);
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_failed_check_is_its_own_reason() {
        let rec = r#"{"checks":[{"check":"contains","passed":true,"detail":"ok"},{"check":"json","passed":false,"detail":"$.taxonomy[0] is \"PII\", expected \"PII.Contact.Email\""}]}"#;
        assert_eq!(
            failure_reason(None, rec),
            "json: $.taxonomy[0] is \"PII\", expected \"PII.Contact.Email\""
        );
        assert_eq!(
            failure_reason(Some("timeout after 5s"), rec),
            "timeout after 5s"
        );
        assert_eq!(failure_reason(None, "not json"), "");
    }

    fn slo(
        name: &str,
        objective: f64,
        status: Status,
        sli: f64,
        budget: f64,
        burn: f64,
    ) -> SloState {
        let state = crate::slo::burn::BurnState {
            sli: Some(sli),
            good: 13,
            total: 25,
            budget_remaining: Some(budget),
            burn_rates: Vec::new(),
            firing: Vec::new(),
            breached: status == Status::Breached,
            budget_exhausted: budget < 0.0,
            current_burn: Some(burn),
            status,
        };
        SloState {
            suite: "s".into(),
            name: name.into(),
            probe: "p".into(),
            endpoint: "e".into(),
            sli: "success".into(),
            objective,
            threshold: None,
            window: "30d".into(),
            per_slice: false,
            period_seconds: 60.0,
            breached: status == Status::Breached,
            status,
            burn_window: "1h".into(),
            slices: vec![super::super::slo_state::SliceState {
                slice: "*".into(),
                state,
            }],
        }
    }

    /// The reported case: 52% good against 90%, budget -379%, burning 4.8x, no page firing.
    #[test]
    fn a_spent_budget_is_not_all_slos_hold() {
        let holding = slo("fine", 0.99, Status::Ok, 0.999, 0.9, 0.1);
        assert_eq!(banner(std::slice::from_ref(&holding)).1, "ALL SLOS HOLD");
        assert!(not_holding(std::slice::from_ref(&holding)).is_empty());
        let spent = slo(
            "mapper-fallback",
            0.9,
            Status::BudgetExhausted,
            0.52,
            -3.79,
            4.8,
        );
        let all = [holding.clone(), spent];
        assert_eq!(banner(&all), ("breached", "ERROR BUDGET SPENT"));
        assert_eq!(
            not_holding(&all),
            vec![
                "mapper-fallback: 52.0% good against 90%, error budget -379%, burning 4.8× over 1h"
            ]
        );
        let burning = slo("slow", 0.99, Status::Burning, 0.97, 0.2, 3.5);
        assert_eq!(
            banner(&[holding.clone(), burning]).1,
            "BURNING ERROR BUDGET"
        );
        let paged = slo("down", 0.99, Status::Breached, 0.5, -10.0, 50.0);
        assert_eq!(banner(&[paged, holding]).1, "SLO BREACHED");
        assert_eq!(banner(&[]).1, "NO DATA YET");
    }

    #[test]
    fn the_chart_has_a_time_axis() {
        let mut pts = BTreeMap::new();
        pts.insert("time_to_first_byte", vec![(0.0, 0.1), (7200.0, 0.2)]);
        let svg = chart(&pts, 0.0, 7200.0);
        assert!(svg.contains(">00:00</text>"), "{svg}");
        assert!(svg.contains(">02:00</text>"), "{svg}");
        assert!(svg.contains(">UTC</text>"), "{svg}");
    }
}
