//! Float comparisons with tolerances. A NaN is never close to anything, and the messages name the offending
//! element with both values.

use anyhow::{Result, ensure};

/// The index and size of the largest `|a − b|`, a NaN difference counting as the largest.
fn worst(a: &[f32], b: &[f32]) -> Option<(usize, f32)> {
    let mut worst: Option<(usize, f32)> = None;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        match worst {
            Some((_, w)) if w.is_nan() || (!d.is_nan() && d <= w) => {}
            _ => worst = Some((i, d)),
        }
    }
    worst
}

/// The largest `|a − b|` over the elements (NaN if any difference is NaN; 0 for empty slices).
///
/// # Panics
/// If the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    worst(a, b).map_or(0.0, |(_, d)| d)
}

/// Asserts `max |got − want| ≤ tol` (absolute tolerance).
///
/// # Panics
/// If the lengths differ, or with `what`, the largest difference, its index and both values.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some((i, d)) = worst(got, want) {
        assert!(
            d <= tol,
            "{what}: max |diff| = {d} > {tol} at [{i}] (got {}, want {})",
            got[i],
            want[i]
        );
    }
}

/// Asserts `|got − want| ≤ abs + rel·|want|` for every element, computed in `f64`.
///
/// # Panics
/// If the lengths differ, or with `what`, the first offending index, both values and the tolerance there.
#[track_caller]
pub fn assert_all_close<G, W>(what: &str, got: &[G], want: &[W], abs: f64, rel: f64)
where
    G: Copy + Into<f64>,
    W: Copy + Into<f64>,
{
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        let tol = abs + rel * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (|diff| {} > tol {tol})",
            (g - w).abs()
        );
    }
}

/// Asserts `|got − want| ≤ tol` for one value.
///
/// # Panics
/// With `what`, both values and the tolerance.
#[track_caller]
pub fn assert_close_f64(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what} = {got}, want {want} (|diff| {} > tolerance {tol})",
        (got - want).abs()
    );
}

/// `|got − want| ≤ rel·|want|`, as an error for tests returning `Result`.
///
/// # Errors
/// When the values are not that close (or one is NaN), naming `what`.
pub fn ensure_rel_close(what: &str, got: f64, want: f64, rel: f64) -> Result<()> {
    ensure!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: got {got}, want {want} (relative tolerance {rel})"
    );
    Ok(())
}

/// The number of differing bytes and the largest difference.
///
/// # Panics
/// If the lengths differ.
pub fn u8_diff(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold((0, 0), |(n, m), (x, y)| {
        let d = x.abs_diff(*y);
        (n + usize::from(d != 0), m.max(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences() {
        assert_eq!(max_abs_diff(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0]), 1.0);
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 0.0]).is_nan());
        assert!(max_abs_diff(&[f32::NAN, 1.0], &[0.0, 5.0]).is_nan());
        assert_eq!(max_abs_diff(&[], &[]), 0.0);
        assert_eq!(u8_diff(&[1, 2, 3], &[1, 5, 2]), (2, 3));
        assert_close("ok", &[1.0, 2.0], &[1.05, 2.0], 0.1);
        assert_all_close("ok", &[1.0f32, 100.0], &[1.0f64, 100.5], 1e-6, 1e-2);
        assert_close_f64("ok", 1.0, 1.0 + 1e-12, 1e-9);
        assert!(ensure_rel_close("ok", 1.0, 1.0, 1e-9).is_ok());
        assert!(ensure_rel_close("nan", f64::NAN, 1.0, 1e-9).is_err());
    }

    #[test]
    #[should_panic(expected = "logits: max |diff| = 0.5 > 0.1 at [1] (got 2, want 2.5)")]
    fn assert_close_names_the_worst_element() {
        assert_close("logits", &[1.0, 2.0, 3.0], &[1.0, 2.5, 3.2], 0.1);
    }

    #[test]
    #[should_panic(expected = "x: max |diff| = NaN")]
    fn nan_is_never_close() {
        assert_close("x", &[1.0, f32::NAN], &[1.0, 1.0], 1.0);
    }

    #[test]
    #[should_panic(expected = "probs[1]: got 0.5, want 0.25")]
    fn assert_all_close_names_the_first_offender() {
        assert_all_close("probs", &[0.5f32, 0.5], &[0.5f64, 0.25], 1e-6, 1e-6);
    }
}
