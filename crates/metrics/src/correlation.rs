//! Rank and linear correlations (SRCC, PLCC, KRCC) and RMSE, as SciPy computes them.
//!
//! Every function takes the model's predictions first and the subjective scores (MOS, or DMOS) second, like
//! `scipy.stats.spearmanr(pred, mos)`. SRCC, PLCC and KRCC are symmetric in their arguments.

use crate::error::{Result, check_not_constant, check_pair};

/// Spearman's rank correlation coefficient (`scipy.stats.spearmanr(pred, mos).statistic`).
///
/// Ties get the average of the ranks they cover (`rankdata(method="average")`); the coefficient is the Pearson
/// correlation of those ranks. O(n log n).
///
/// # Errors
/// Length mismatch, fewer than 2 samples, non-finite values, or a constant input.
pub fn srcc(pred: &[f64], mos: &[f64]) -> Result<f64> {
    check_pair("SRCC", pred, mos, 2)?;
    check_not_constant("SRCC", "pred", pred)?;
    check_not_constant("SRCC", "mos", mos)?;
    let rp = average_ranks(pred);
    let rm = average_ranks(mos);
    Ok(pearson_unchecked(&rp, &rm))
}

/// Pearson's linear correlation coefficient (`scipy.stats.pearsonr(pred, mos).statistic`), with no fit ("raw PLCC").
///
/// # Errors
/// Length mismatch, fewer than 2 samples, non-finite values, or a constant input.
pub fn plcc(pred: &[f64], mos: &[f64]) -> Result<f64> {
    check_pair("PLCC", pred, mos, 2)?;
    check_not_constant("PLCC", "pred", pred)?;
    check_not_constant("PLCC", "mos", mos)?;
    if pred.len() == 2 {
        // SciPy's special case: with two distinct points the correlation is exactly ±1.
        let s = (pred[1] - pred[0]).signum() * (mos[1] - mos[0]).signum();
        return Ok(s);
    }
    Ok(pearson_unchecked(pred, mos))
}

/// Kendall's tau-b (`scipy.stats.kendalltau(pred, mos).statistic`, SciPy's default variant), with tie correction:
/// `(C − D) / sqrt((n0 − n1)(n0 − n2))`.
///
/// O(n log n): the discordant pairs are counted as the inversions of a merge sort, as SciPy does.
///
/// # Errors
/// Length mismatch, fewer than 2 samples, non-finite values, or a constant input.
pub fn krcc(pred: &[f64], mos: &[f64]) -> Result<f64> {
    check_pair("KRCC", pred, mos, 2)?;
    check_not_constant("KRCC", "pred", pred)?;
    check_not_constant("KRCC", "mos", mos)?;
    let n = pred.len();
    // Sort the pairs by (pred, mos): within runs of tied predictions the MOS are ascending, so the inversions of
    // the MOS sequence are exactly the discordant pairs.
    let mut pairs: Vec<(u64, u64)> = pred
        .iter()
        .zip(mos)
        .map(|(&p, &m)| (sort_key(p), sort_key(m)))
        .collect();
    pairs.sort_unstable();
    let x_ties = tie_pairs(pairs.iter().map(|p| p.0));
    let joint_ties = tie_pairs(pairs.iter().copied());
    let mut ys: Vec<u64> = pairs.iter().map(|p| p.1).collect();
    drop(pairs);
    let discordant = count_inversions(&mut ys);
    let y_ties = tie_pairs(ys.iter().copied()); // `ys` is sorted now
    let total = (n as u64) * (n as u64 - 1) / 2;
    let con_minus_dis =
        total as f64 - x_ties as f64 - y_ties as f64 + joint_ties as f64 - 2.0 * discordant as f64;
    let tau = con_minus_dis / ((total - x_ties) as f64).sqrt() / ((total - y_ties) as f64).sqrt();
    Ok(tau.clamp(-1.0, 1.0))
}

/// Root-mean-square error `sqrt(mean((pred − mos)²))`, without any mapping (meaningful only on a common scale).
///
/// pyiqa adds 1e-8 under the root; this function does not (the difference is below 1e-8 / (2·RMSE)).
///
/// # Errors
/// Length mismatch, no samples, or non-finite values.
pub fn rmse(pred: &[f64], mos: &[f64]) -> Result<f64> {
    check_pair("RMSE", pred, mos, 1)?;
    let sum: f64 = pred.iter().zip(mos).map(|(p, m)| (p - m) * (p - m)).sum();
    Ok((sum / pred.len() as f64).sqrt())
}

/// Ranks (1-based) with ties given the average of the ranks they cover, like `scipy.stats.rankdata(x)`.
///
/// The input is assumed finite; `-0.0` and `0.0` tie.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<(u64, u32)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (sort_key(v), i as u32))
        .collect();
    order.sort_unstable();
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && order[end].0 == order[start].0 {
            end += 1;
        }
        // Positions start..end (0-based) cover ranks start+1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &(_, i) in &order[start..end] {
            ranks[i as usize] = rank;
        }
        start = end;
    }
    ranks
}

/// A key whose unsigned order is the numeric order of finite `f64`s (`-0.0` and `0.0` map to the same key).
pub(crate) fn sort_key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Number of tied pairs, `Σ t(t−1)/2` over the runs of equal consecutive items of a sorted sequence.
fn tie_pairs<T: PartialEq>(sorted: impl Iterator<Item = T>) -> u64 {
    let mut total = 0u64;
    let mut run = 0u64;
    let mut prev: Option<T> = None;
    for item in sorted {
        if prev.as_ref() == Some(&item) {
            run += 1;
        } else {
            total += run * (run.saturating_sub(1)) / 2;
            run = 1;
        }
        prev = Some(item);
    }
    total + run * (run.saturating_sub(1)) / 2
}

/// Sorts `values` ascending with a bottom-up merge sort and returns the number of strict inversions
/// (pairs `i < j` with `values[i] > values[j]`).
fn count_inversions(values: &mut Vec<u64>) -> u64 {
    let n = values.len();
    let mut dst = vec![0u64; n];
    let mut inversions = 0u64;
    // Sort small runs by insertion first (counting inversions), then merge.
    const RUN: usize = 32;
    for chunk in values.chunks_mut(RUN) {
        for i in 1..chunk.len() {
            let v = chunk[i];
            let mut j = i;
            while j > 0 && chunk[j - 1] > v {
                chunk[j] = chunk[j - 1];
                j -= 1;
            }
            inversions += (i - j) as u64;
            chunk[j] = v;
        }
    }
    let mut width = RUN;
    let mut src = std::mem::take(values);
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (left, right) = (&src[start..mid], &src[mid..end]);
            let out = &mut dst[start..end];
            let (mut i, mut j, mut k) = (0, 0, 0);
            while i < left.len() && j < right.len() {
                if right[j] < left[i] {
                    out[k] = right[j];
                    inversions += (left.len() - i) as u64;
                    j += 1;
                } else {
                    out[k] = left[i];
                    i += 1;
                }
                k += 1;
            }
            out[k..k + left.len() - i].copy_from_slice(&left[i..]);
            k += left.len() - i;
            out[k..].copy_from_slice(&right[j..]);
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        width *= 2;
    }
    *values = src;
    inversions
}

/// Pearson correlation of two finite, non-constant vectors of equal length, computed as SciPy does: centre,
/// scale by the largest magnitude, normalise, then take the dot product; the result is clipped to [−1, 1].
pub(crate) fn pearson_unchecked(x: &[f64], y: &[f64]) -> f64 {
    // Scaled by a power of two (exact, so ordinary inputs give the same bits) so that sums and differences of values
    // near f64::MAX cannot overflow; the correlation does not depend on the scale.
    let (sx, sy) = (pow2_scale(x), pow2_scale(y));
    let x: Vec<f64> = x.iter().map(|v| v * sx).collect();
    let y: Vec<f64> = y.iter().map(|v| v * sy).collect();
    let (x, y) = (x.as_slice(), y.as_slice());
    let xm = mean(x);
    let ym = mean(y);
    let xmax = x.iter().fold(0.0f64, |a, &v| a.max((v - xm).abs()));
    let ymax = y.iter().fold(0.0f64, |a, &v| a.max((v - ym).abs()));
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let dx = (a - xm) / xmax;
        let dy = (b - ym) / ymax;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// A power of two that brings the largest magnitude of `values` into [0.5, 1) (1 for all-zero or non-finite input):
/// multiplying by it is exact for normal values.
pub(crate) fn pow2_scale(values: &[f64]) -> f64 {
    let m = values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if m == 0.0 || !m.is_finite() {
        return 1.0;
    }
    let e = m.log2().floor() as i32 + 1;
    // Two steps, so that neither factor leaves the normal range for exponents near ±1024.
    2f64.powi(-e / 2) * 2f64.powi(-(e - e / 2))
}

/// Mean with Neumaier-compensated summation (as accurate as NumPy's pairwise sum, or better).
pub(crate) fn mean(values: &[f64]) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
    }
    (sum + comp) / values.len() as f64
}

/// Population standard deviation (ddof = 0), like `np.std`.
pub(crate) fn std_population(values: &[f64]) -> f64 {
    let m = mean(values);
    let dev: Vec<f64> = values.iter().map(|v| (v - m) * (v - m)).collect();
    mean(&dev).sqrt()
}

/// Sample standard deviation (ddof = 1); `None` for fewer than two values.
pub(crate) fn std_sample(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values);
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MetricsError;

    fn brute_inversions(v: &[u64]) -> u64 {
        let mut c = 0;
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                if v[i] > v[j] {
                    c += 1;
                }
            }
        }
        c
    }

    #[test]
    fn inversions_match_brute_force() {
        let mut state = 12345u64;
        for n in [0usize, 1, 2, 31, 32, 33, 64, 100, 257, 1000] {
            let v: Vec<u64> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) % 17
                })
                .collect();
            let expected = brute_inversions(&v);
            let mut w = v.clone();
            assert_eq!(count_inversions(&mut w), expected, "n = {n}");
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert_eq!(w, sorted);
        }
    }

    #[test]
    fn sort_key_orders_numbers() {
        let xs = [-1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 3.0, 1e300];
        for w in xs.windows(2) {
            assert!(sort_key(w[0]) <= sort_key(w[1]));
        }
        assert_eq!(sort_key(-0.0), sort_key(0.0));
    }

    #[test]
    fn average_ranks_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 5.0]),
            vec![2.0, 3.5, 3.5, 1.0]
        );
    }

    #[test]
    fn errors_not_panics() {
        assert!(matches!(
            srcc(&[1.0], &[1.0]),
            Err(MetricsError::TooFewSamples { .. })
        ));
        assert!(matches!(
            plcc(&[1.0, 2.0], &[1.0]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            krcc(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            krcc(&[1.0, 2.0], &[3.0, 3.0]),
            Err(MetricsError::ConstantInput { input: "mos", .. })
        ));
        assert!(matches!(
            rmse(&[], &[]),
            Err(MetricsError::TooFewSamples { .. })
        ));
    }
}
