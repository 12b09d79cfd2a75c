//! Rotation of a probe's golden cases under a budget.
//!
//! A probe with `sample` or `budget` runs a subset of its cases each tick of its schedule.
//! The cases are laid out once in a rotation order, seeded per (seed, region, probe) so that
//! regions probe different subsets at the same moment, and stratified so that every window
//! of consecutive cases holds each slice in proportion to its size. Tick `t` runs the cases
//! from position `floor(t·r)` to `floor((t+1)·r)` of that order (wrapping), `r` being the
//! cases per tick the budget allows (fractional budgets alternate between ⌊r⌋ and ⌈r⌉).
//! Every case thus runs once every `n / r` ticks.

use crate::observation::input_tokens_estimate;
use crate::rng::{fnv1a, SplitMix64};
use crate::suite::{Endpoint, Probe, Rotation};

/// Estimated tokens of one run of a case (input + expected output).
pub fn case_tokens(probe: &Probe, endpoint: &Endpoint, case: usize) -> f64 {
    let Some(c) = probe.cases.get(case) else {
        return 0.0;
    };
    let judges: u64 = judge_estimates(probe, c)
        .iter()
        .map(|(_, i, o)| i + o)
        .sum();
    let llm = endpoint.protocol.info().counts_tokens() || endpoint.price.is_some();
    if !llm {
        return judges as f64;
    }
    let (input, out) = endpoint_tokens(probe, c);
    (input + out + judges) as f64
}

/// Estimated input and output tokens of one run of a case at its endpoint: a conversation
/// sends the conversation so far with every turn.
fn endpoint_tokens(probe: &Probe, c: &crate::suite::Case) -> (u64, u64) {
    let out = c
        .input
        .get("max_tokens")
        .and_then(serde_json::Value::as_u64)
        .map(|m| m.min(u64::from(probe.expected_output_tokens)))
        .unwrap_or(u64::from(probe.expected_output_tokens));
    if c.turns.is_empty() {
        return (input_tokens_estimate(&c.input), out);
    }
    let base = c
        .input
        .get("messages")
        .map(input_tokens_estimate)
        .unwrap_or(0);
    let (mut input, mut so_far) = (0, base);
    for t in &c.turns {
        so_far += input_tokens_estimate(&serde_json::Value::String(t.user.clone()));
        input += so_far;
        so_far += out;
    }
    (input, out * c.turns.len() as u64)
}

/// Output tokens assumed per judge verdict.
pub const JUDGE_VERDICT_TOKENS: u64 = 40;

/// Estimated judge calls of one run of a case: (price, input tokens, output tokens) per
/// judgment, all samples included (a cached judgment costs less).
fn judge_estimates(
    probe: &Probe,
    c: &crate::suite::Case,
) -> Vec<(Option<crate::suite::Price>, u64, u64)> {
    let answer = u64::from(probe.expected_output_tokens);
    let text = |s: &str| input_tokens_estimate(&serde_json::Value::String(s.to_string()));
    let system = text(crate::check::judge::SYSTEM);
    let mut out = Vec::new();
    let mut one = |e: &crate::suite::Expect, question: u64, answer: u64| {
        if let Some(j) = &e.judge {
            let n = u64::from(j.samples);
            let input = system
                + question
                + answer
                + text(&j.rubric)
                + e.reference.as_deref().map(text).unwrap_or(0);
            out.push((j.endpoint.price, n * input, n * JUDGE_VERDICT_TOKENS));
        }
    };
    if c.turns.is_empty() {
        one(&c.expect, input_tokens_estimate(&c.input), answer);
    } else {
        let mut all = 0;
        for t in &c.turns {
            let q = text(&t.user);
            one(&t.expect, q, answer);
            all += q + answer;
        }
        one(&c.expect, all, all);
    }
    out
}

/// Estimated dollars of one run of a case (its judges' included).
pub fn case_cost(probe: &Probe, endpoint: &Endpoint, case: usize) -> f64 {
    let Some(c) = probe.cases.get(case) else {
        return 0.0;
    };
    let judges: f64 = judge_estimates(probe, c)
        .iter()
        .filter_map(|(p, i, o)| p.map(|p| p.cost(*i, *o)))
        .sum();
    let Some(price) = endpoint.price else {
        return judges;
    };
    let (input, out) = endpoint_tokens(probe, c);
    price.cost(input, out) + judges
}

/// Whether any judge of the probe's cases has a price.
pub fn priced_judges(probe: &Probe) -> bool {
    probe.cases.iter().any(|c| {
        std::iter::once(&c.expect)
            .chain(c.turns.iter().map(|t| &t.expect))
            .any(|e| e.judge.as_ref().is_some_and(|j| j.endpoint.price.is_some()))
    })
}

/// Cases per tick (fractional) the probe's rotation allows; `None` without a rotation
/// (every case every tick).
pub fn cases_per_tick(probe: &Probe, endpoint: &Endpoint, ticks_per_day: u32) -> Option<f64> {
    let s = probe.sampling.as_ref()?;
    let n = probe.cases.len() as f64;
    if n == 0.0 {
        return Some(0.0);
    }
    let runs = f64::from(probe.runs.max(1));
    let ticks = f64::from(ticks_per_day.max(1));
    let mean = |f: &dyn Fn(usize) -> f64| (0..probe.cases.len()).map(f).sum::<f64>() / n;
    let rate = match s.rotation {
        Rotation::PerTick(k) => f64::from(k),
        Rotation::TokensPerDay(budget) => {
            let per_case = mean(&|i| case_tokens(probe, endpoint, i)) * runs;
            if per_case <= 0.0 {
                n
            } else {
                budget / ticks / per_case
            }
        }
        Rotation::DollarsPerDay(budget) => {
            let per_case = mean(&|i| case_cost(probe, endpoint, i)) * runs;
            if per_case <= 0.0 {
                n
            } else {
                budget / ticks / per_case
            }
        }
    };
    Some(rate.clamp(0.0, n))
}

/// The rotation order of a probe's cases: seeded, stratified by slice.
pub fn order(probe: &Probe, seed: u64, region: &str) -> Vec<usize> {
    let mut rng = SplitMix64::new(
        seed ^ fnv1a(region.as_bytes()).rotate_left(7) ^ fnv1a(probe.name.as_bytes()),
    );
    let mut slices: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, c) in probe.cases.iter().enumerate() {
        slices.entry(c.slice.as_str()).or_default().push(i);
    }
    // Each case gets a position in [0, 1): evenly spaced within its slice, the slice's grid
    // shifted by a seeded offset, so that any window holds every slice in proportion.
    let mut keyed: Vec<(f64, u64, usize)> = Vec::with_capacity(probe.cases.len());
    for cases in slices.values_mut() {
        crate::rng::shuffle_with(cases, &mut rng);
        let n = cases.len() as f64;
        let offset = rng.next_f64();
        for (rank, &i) in cases.iter().enumerate() {
            keyed.push((((rank as f64 + offset) / n) % 1.0, rng.next_u64(), i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// The cases that run at tick `tick` (indices into the probe's cases).
pub fn select(order: &[usize], rate: f64, tick: u64) -> Vec<usize> {
    let n = order.len() as u64;
    if n == 0 || rate <= 0.0 {
        return Vec::new();
    }
    if rate >= n as f64 {
        return order.to_vec();
    }
    let start = (tick as f64 * rate).floor() as u64;
    let end = (tick.saturating_add(1) as f64 * rate).floor() as u64;
    (start..end).map(|p| order[(p % n) as usize]).collect()
}

/// The tick of a schedule firing `ticks_per_day` times a day that `unix_seconds` falls in.
pub fn tick_at(unix_seconds: f64, ticks_per_day: u32) -> u64 {
    let len = 86_400.0 / f64::from(ticks_per_day.max(1));
    (unix_seconds / len).floor().max(0.0) as u64
}

/// How long it takes for every case to have run once (seconds), at `rate` cases per tick.
pub fn coverage_seconds(n: usize, rate: f64, ticks_per_day: u32) -> Option<f64> {
    if n == 0 {
        return Some(0.0);
    }
    if rate <= 0.0 {
        return None;
    }
    let ticks = (n as f64 / rate).ceil();
    Some(ticks * 86_400.0 / f64::from(ticks_per_day.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Case, Sampling};
    use serde_json::json;

    fn probe(slices: &[(&str, usize)], rotation: Rotation) -> Probe {
        let mut cases = Vec::new();
        for (s, n) in slices {
            for i in 0..*n {
                cases.push(Case {
                    id: format!("{s}-{i}"),
                    slice: s.to_string(),
                    input: json!({"text": "What is the capital of France? Answer briefly."}),
                    expect: Default::default(),
                    line: 1,
                    turns: Vec::new(),
                });
            }
        }
        Probe {
            name: "p".into(),
            endpoint: "e".into(),
            golden: "g".into(),
            cases,
            stall: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            runs: 1,
            schedule: crate::suite::cron::parse("*/5 * * * *").ok(),
            freshness: None,
            canary_fact: None,
            sampling: Some(Sampling {
                rotation,
                coverage: None,
            }),
            expected_output_tokens: 200,
            stop_after_first_visible: false,
        }
    }

    #[test]
    fn judges_and_conversations_are_in_the_estimates() {
        let suite = crate::suite::load_suite(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/chat.yaml"),
            &crate::suite::ProcessEnv::default(),
        )
        .unwrap();
        let ep = suite.endpoints["chat"].as_ref().clone();
        let judged = suite
            .probes
            .iter()
            .find(|p| p.name == "chat-judged")
            .unwrap();
        let mut plain = judged.clone();
        for c in &mut plain.cases {
            c.expect.judge = None;
            for t in &mut c.turns {
                t.expect.judge = None;
            }
        }
        // Case 0: one question, judged 3 times.
        let (with, without) = (case_tokens(judged, &ep, 0), case_tokens(&plain, &ep, 0));
        let samples = f64::from(judged.cases[0].expect.judge.as_ref().unwrap().samples);
        assert!(
            with - without >= samples * JUDGE_VERDICT_TOKENS as f64,
            "{with} vs {without}"
        );
        assert!(case_cost(judged, &ep, 0) > case_cost(&plain, &ep, 0));
        assert!(priced_judges(judged) && !priced_judges(&plain));
        // A conversation sends the conversation so far with each turn: more than its turns alone.
        let conv = judged
            .cases
            .iter()
            .position(|c| c.turns.len() == 3)
            .unwrap();
        let per_turn = u64::from(judged.expected_output_tokens);
        assert!(case_tokens(&plain, &ep, conv) > (3 * per_turn) as f64 + 3.0 * 5.0);
    }

    #[test]
    fn a_day_of_ticks_stays_within_the_token_budget_and_covers_every_case() {
        // 100 cases in 4 slices, 288 ticks a day, 500k tokens a day.
        let p = probe(
            &[("a", 40), ("b", 30), ("c", 20), ("d", 10)],
            Rotation::TokensPerDay(500_000.0),
        );
        let suite = crate::suite::load_suite(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/chat.yaml"),
            &crate::suite::ProcessEnv::default(),
        )
        .unwrap();
        let ep = suite.endpoints["chat"].as_ref().clone();
        let rate = cases_per_tick(&p, &ep, 288).unwrap();
        assert!(rate > 1.0 && rate < 100.0, "{rate}");
        let ord = order(&p, 7, "eu-west-1");
        let mut spent = 0.0;
        let mut last_seen = vec![None::<u64>; 100];
        let mut worst_gap = 0u64;
        let mut per_slice = std::collections::BTreeMap::<&str, u64>::new();
        for tick in 0..288u64 {
            for i in select(&ord, rate, tick) {
                spent += case_tokens(&p, &ep, i);
                if let Some(prev) = last_seen[i] {
                    worst_gap = worst_gap.max(tick - prev);
                }
                last_seen[i] = Some(tick);
                *per_slice.entry(p.cases[i].slice.as_str()).or_default() += 1;
            }
        }
        assert!(spent <= 500_000.0, "spent {spent}");
        assert!(spent >= 0.95 * 500_000.0, "the budget is used: {spent}");
        assert!(last_seen.iter().all(Option::is_some), "every case ran");
        let cover_ticks = (100.0 / rate).ceil() as u64;
        assert!(worst_gap <= cover_ticks, "gap {worst_gap} > {cover_ticks}");
        // Stratified: each slice's share of the day's runs matches its share of the cases.
        let total: u64 = per_slice.values().sum();
        for (s, n) in [("a", 40.0), ("b", 30.0), ("c", 20.0), ("d", 10.0)] {
            let share = per_slice[s] as f64 / total as f64;
            assert!((share - n / 100.0).abs() < 0.02, "{s}: {share}");
        }
    }

    #[test]
    fn windows_hold_slices_in_proportion_and_regions_differ() {
        let p = probe(&[("a", 30), ("b", 10)], Rotation::PerTick(4));
        let ord = order(&p, 7, "eu-west-1");
        for tick in 0..10 {
            let picked = select(&ord, 4.0, tick);
            let b = picked.iter().filter(|i| p.cases[**i].slice == "b").count();
            assert!(b <= 2, "tick {tick}: {b} of slice b in {picked:?}");
        }
        let other = order(&p, 7, "us-east-1");
        assert_ne!(ord, other);
        assert_eq!(ord, order(&p, 7, "eu-west-1"), "deterministic");
        let mut sorted = ord.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn fractional_rates_alternate_and_coverage_is_computed() {
        let ord: Vec<usize> = (0..10).collect();
        let counts: Vec<usize> = (0..4).map(|t| select(&ord, 2.5, t).len()).collect();
        assert_eq!(counts, vec![2, 3, 2, 3]);
        assert_eq!(coverage_seconds(10, 2.5, 288), Some(4.0 * 300.0));
        assert_eq!(tick_at(600.0, 288), 2);
    }
}
