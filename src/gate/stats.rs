//! The gate's statistics, as pure functions: a seeded bootstrap on the ratio of a latency
//! percentile (candidate / baseline), and a two-proportion interval on the drop of a good
//! share (baseline − candidate), each judged against a tolerance at a confidence, plus the
//! estimate of how many more runs an undecided comparison needs.

use serde::Serialize;

use crate::rng::SplitMix64;

/// What one comparison concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The best estimate is within the tolerance.
    Pass,
    /// Worse than the tolerance, with confidence.
    Regression,
    /// The best estimate is beyond the tolerance but not with confidence: more runs are needed.
    Inconclusive,
}

/// A one-sided interval on an effect and its decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Judged {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// The effect beyond which the candidate is worse.
    pub bound: f64,
    pub decision: Decision,
    /// For an inconclusive decision: roughly how many more runs per side would decide.
    pub more_runs: Option<u64>,
}

/// The quantile `q` of sorted values by nearest rank.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn decide(estimate: f64, low: f64, high: f64, bound: f64, n: usize) -> Judged {
    // The burden of proof is on the regression: a candidate whose best estimate is within the
    // tolerance passes; one that looks worse but not with confidence is undecided.
    // A small epsilon keeps "exactly at the tolerance" (100% -> 98% against 2 pts) a pass.
    let decision = if low > bound + 1e-9 {
        Decision::Regression
    } else if estimate <= bound + 1e-9 {
        Decision::Pass
    } else {
        Decision::Inconclusive
    };
    let more_runs = (decision == Decision::Inconclusive).then(|| {
        // The interval narrows like 1/sqrt(n): runs needed so that its half-width fits between
        // the estimate and the bound.
        let half = ((high - low) / 2.0).max(1e-12);
        let gap = (estimate - bound).abs();
        if gap < 1e-9 {
            n as u64 * 3
        } else {
            let needed = (n as f64 * (half / gap).powi(2)).ceil() as u64;
            needed.saturating_sub(n as u64).max(1)
        }
    });
    Judged {
        estimate,
        low,
        high,
        bound,
        decision,
        more_runs,
    }
}

/// Candidate/baseline ratio of the `q` quantile by a seeded bootstrap (`resamples` draws);
/// a regression when the ratio exceeds `1 + tolerance` with `confidence`.
pub fn latency_ratio(
    baseline: &[f64],
    candidate: &[f64],
    q: f64,
    tolerance: f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> Option<Judged> {
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    let mut b = baseline.to_vec();
    let mut c = candidate.to_vec();
    b.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    let base_q = quantile_sorted(&b, q);
    if base_q.is_nan() || base_q <= 0.0 {
        return None;
    }
    let estimate = quantile_sorted(&c, q) / base_q;
    let mut rng = SplitMix64::new(seed);
    let mut ratios = Vec::with_capacity(resamples);
    let mut rb = vec![0.0; b.len()];
    let mut rc = vec![0.0; c.len()];
    for _ in 0..resamples.max(10) {
        for x in rb.iter_mut() {
            *x = b[(rng.next_u64() % b.len() as u64) as usize];
        }
        for x in rc.iter_mut() {
            *x = c[(rng.next_u64() % c.len() as u64) as usize];
        }
        rb.sort_by(f64::total_cmp);
        rc.sort_by(f64::total_cmp);
        let den = quantile_sorted(&rb, q);
        if den > 0.0 {
            ratios.push(quantile_sorted(&rc, q) / den);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let low = quantile_sorted(&ratios, 1.0 - confidence);
    let high = quantile_sorted(&ratios, confidence);
    Some(decide(
        estimate,
        low,
        high,
        1.0 + tolerance,
        b.len().min(c.len()),
    ))
}

/// The drop of a good share from baseline to candidate (Agresti-Caffo interval: one success and
/// one failure added to each side); a regression when it exceeds `tolerance` with `confidence`.
pub fn share_drop(
    base_good: u64,
    base_total: u64,
    cand_good: u64,
    cand_total: u64,
    tolerance: f64,
    confidence: f64,
) -> Option<Judged> {
    if base_total == 0 || cand_total == 0 {
        return None;
    }
    let pb = base_good as f64 / base_total as f64;
    let pc = cand_good as f64 / cand_total as f64;
    let estimate = pb - pc;
    let (ab, ac) = (
        (base_good + 1) as f64 / (base_total + 2) as f64,
        (cand_good + 1) as f64 / (cand_total + 2) as f64,
    );
    let se = (ab * (1.0 - ab) / (base_total + 2) as f64
        + ac * (1.0 - ac) / (cand_total + 2) as f64)
        .sqrt();
    let z = normal_quantile(confidence);
    let adj = ab - ac;
    Some(decide(
        estimate,
        adj - z * se,
        adj + z * se,
        tolerance,
        base_total.min(cand_total) as usize,
    ))
}

/// The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
#[allow(clippy::excessive_precision)]
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lognormal(n: usize, median: f64, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| median * (0.3 * r.next_normal()).exp())
            .collect()
    }

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.95) - 1.644_853_6).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.01) + 2.326_347_9).abs() < 1e-6);
    }

    #[test]
    fn identical_latency_passes_and_a_30_percent_regression_fails_with_enough_runs() {
        let base = lognormal(200, 0.1, 1);
        let same = lognormal(200, 0.1, 2);
        let slow: Vec<f64> = lognormal(200, 0.1, 3).iter().map(|v| v * 1.3).collect();
        let a = latency_ratio(&base, &same, 0.95, 0.10, 0.95, 1000, 7).unwrap();
        assert_eq!(a.decision, Decision::Pass, "{a:?}");
        let b = latency_ratio(&base, &slow, 0.95, 0.10, 0.95, 1000, 7).unwrap();
        assert_eq!(b.decision, Decision::Regression, "{b:?}");
        // With too few runs the same regression cannot be told from noise.
        let few: Vec<f64> = vec![0.08, 0.10, 0.12, 0.14, 0.16];
        let few_slow: Vec<f64> = few.iter().map(|v| v * 1.3).collect();
        let c = latency_ratio(&few, &few_slow, 0.95, 0.10, 0.95, 1000, 7).unwrap();
        assert_eq!(c.decision, Decision::Inconclusive, "{c:?}");
        assert!(c.more_runs.unwrap() >= 1);
    }

    #[test]
    fn share_drops() {
        // Same share: pass, with many runs or few.
        assert_eq!(
            share_drop(200, 200, 199, 200, 0.02, 0.95).unwrap().decision,
            Decision::Pass
        );
        assert_eq!(
            share_drop(6, 6, 6, 6, 0.02, 0.95).unwrap().decision,
            Decision::Pass
        );
        // A collapsed slice fails even with few runs.
        let j = share_drop(10, 10, 0, 10, 0.02, 0.95).unwrap();
        assert_eq!(j.decision, Decision::Regression);
        assert!((j.estimate - 1.0).abs() < 1e-12);
        // A small difference on few runs is undecided.
        let u = share_drop(10, 10, 9, 10, 0.02, 0.95).unwrap();
        assert_eq!(u.decision, Decision::Inconclusive);
        assert!(share_drop(0, 0, 1, 1, 0.02, 0.95).is_none());
    }

    #[test]
    fn bootstrap_is_seeded() {
        let base = lognormal(50, 0.1, 1);
        let cand = lognormal(50, 0.11, 2);
        let a = latency_ratio(&base, &cand, 0.95, 0.1, 0.95, 500, 3).unwrap();
        assert_eq!(
            Some(a),
            latency_ratio(&base, &cand, 0.95, 0.1, 0.95, 500, 3)
        );
        // Another seed resamples differently: the interval moves.
        let b = latency_ratio(&base, &cand, 0.95, 0.1, 0.95, 500, 4).unwrap();
        assert!((a.low, a.high) != (b.low, b.high), "{a:?} {b:?}");
    }
}
