//! Distributions of benchmark figures: nearest-rank percentiles of a sample, in the unit the
//! caller chose (the report states it).

use serde::Serialize;

/// Summary of a sample: count, median, 99th percentile, maximum and mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    /// Summarises `values` (NaNs are dropped); `None` for an empty sample.
    pub fn of(values: &[f64]) -> Option<Dist> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(Dist {
            n,
            p50: rank(&v, 0.50),
            p99: rank(&v, 0.99),
            max: v[n - 1],
            mean: v.iter().sum::<f64>() / n as f64,
        })
    }

    /// Every figure multiplied by `k` (seconds to milliseconds: 1e3).
    pub fn scaled(self, k: f64) -> Dist {
        Dist {
            n: self.n,
            p50: self.p50 * k,
            p99: self.p99 * k,
            max: self.max * k,
            mean: self.mean * k,
        }
    }
}

/// Nearest-rank percentile of a sorted, non-empty sample.
fn rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let k = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[k - 1]
}

/// Absolute values of a sample of signed errors.
pub fn abs(values: &[f64]) -> Vec<f64> {
    values.iter().map(|x| x.abs()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Dist::of(&v).unwrap();
        assert_eq!((d.n, d.p50, d.p99, d.max), (100, 50.0, 99.0, 100.0));
        assert!((d.mean - 50.5).abs() < 1e-12);
        let one = Dist::of(&[3.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (3.0, 3.0, 3.0));
        // Ten values: p99 is the largest, p50 the fifth.
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let d = Dist::of(&ten).unwrap();
        assert_eq!((d.p50, d.p99), (5.0, 10.0));
    }

    #[test]
    fn empty_and_nan_samples() {
        assert!(Dist::of(&[]).is_none());
        assert!(Dist::of(&[f64::NAN]).is_none());
        assert_eq!(Dist::of(&[f64::NAN, 2.0]).unwrap().n, 1);
        assert_eq!(abs(&[-1.5, 2.0]), vec![1.5, 2.0]);
        assert_eq!(Dist::of(&[0.002]).unwrap().scaled(1e3).max, 2.0);
    }
}
