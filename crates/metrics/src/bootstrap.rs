//! Percentile bootstrap confidence intervals for any metric.

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The metric on the full sample.
    pub estimate: f64,
    /// Lower bound of the interval.
    pub lo: f64,
    /// Upper bound of the interval.
    pub hi: f64,
    /// Number of resamples on which the metric was defined (others, e.g. constant resamples, are skipped).
    pub resamples: usize,
}

/// SplitMix64: a tiny, seedable generator, enough for drawing resample indices reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (Lemire's multiply-shift; the bias is below 2⁻³² for n < 2³²).
    fn index(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// Percentile bootstrap interval of `metric(pred, mos)` at level `confidence` (e.g. 0.95), from `resamples`
/// resamples with replacement drawn with `seed`.
///
/// # Errors
/// Whatever `metric` returns on the full sample; [`MetricsError::FitFailed`] if `confidence` is not in (0, 1)
/// or fewer than two resamples give a defined value.
pub fn bootstrap_ci(
    pred: &[f64],
    mos: &[f64],
    metric: impl Fn(&[f64], &[f64]) -> Result<f64>,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<Interval> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(MetricsError::FitFailed(format!(
            "confidence {confidence} is not in (0, 1)"
        )));
    }
    let estimate = metric(pred, mos)?;
    let n = pred.len();
    let mut rng = SplitMix64(seed);
    let (mut p, mut m) = (vec![0.0; n], vec![0.0; n]);
    let mut values = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.index(n);
            p[k] = pred[i];
            m[k] = mos[i];
        }
        if let Ok(v) = metric(&p, &m) {
            values.push(v);
        }
    }
    if values.len() < 2 {
        return Err(MetricsError::FitFailed(
            "fewer than two bootstrap resamples gave a defined value".into(),
        ));
    }
    values.sort_unstable_by(f64::total_cmp);
    let q = |f: f64| {
        // Linear interpolation between order statistics (NumPy's default percentile method).
        let pos = f * (values.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let j = (i + 1).min(values.len() - 1);
        values[i] + (values[j] - values[i]) * frac
    };
    let alpha = (1.0 - confidence) / 2.0;
    Ok(Interval {
        estimate,
        lo: q(alpha),
        hi: q(1.0 - alpha),
        resamples: values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_contains_estimate_and_is_reproducible() {
        let pred: Vec<f64> = (0..50)
            .map(|i| i as f64 + ((i * 7919) % 13) as f64)
            .collect();
        let mos: Vec<f64> = (0..50).map(|i| 2.0 * i as f64).collect();
        let a = bootstrap_ci(&pred, &mos, crate::srcc, 200, 0.95, 7).unwrap();
        let b = bootstrap_ci(&pred, &mos, crate::srcc, 200, 0.95, 7).unwrap();
        assert_eq!(a, b);
        assert!(a.lo <= a.estimate && a.estimate <= a.hi, "{a:?}");
        assert!(bootstrap_ci(&pred, &mos, crate::srcc, 200, 1.5, 7).is_err());
    }
}
