//! Property tests: invariances and bounds of the correlations, and KRCC against an O(n²) tau-b.

use biqa_metrics::{krcc, plcc, srcc};
use proptest::prelude::*;

/// Vectors with many ties (values on a coarse grid) and at least two distinct values.
fn paired(max_len: usize) -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (2..max_len)
        .prop_flat_map(|n| {
            (
                prop::collection::vec((-200i32..200).prop_map(|v| f64::from(v) / 10.0), n),
                prop::collection::vec((-30i32..30).prop_map(f64::from), n),
            )
        })
        .prop_filter("non-constant", |(a, b)| {
            a.iter().any(|&v| v != a[0]) && b.iter().any(|&v| v != b[0])
        })
}

/// Kendall tau-b by definition, over all pairs.
fn tau_b_brute(x: &[f64], y: &[f64]) -> f64 {
    let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let sx = (x[i] - x[j]).signum() as i64 * i64::from(x[i] != x[j]);
            let sy = (y[i] - y[j]).signum() as i64 * i64::from(y[i] != y[j]);
            match (sx, sy) {
                (0, 0) => {}
                (0, _) => tx += 1,
                (_, 0) => ty += 1,
                _ if sx == sy => c += 1,
                _ => d += 1,
            }
        }
    }
    (c - d) as f64 / (((c + d + tx) as f64) * ((c + d + ty) as f64)).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn srcc_invariant_under_increasing_transforms((x, y) in paired(80)) {
        let base = srcc(&x, &y).unwrap();
        let transforms: [fn(f64) -> f64; 3] = [|v| 3.0 * v + 7.0, |v| v * v * v, |v| (v / 10.0).exp()];
        for f in transforms {
            let tx: Vec<f64> = x.iter().map(|&v| f(v)).collect();
            let ty: Vec<f64> = y.iter().map(|&v| f(v)).collect();
            prop_assert_eq!(srcc(&tx, &y).unwrap(), base);
            prop_assert_eq!(srcc(&x, &ty).unwrap(), base);
        }
        // A strictly decreasing transform flips the sign.
        let neg: Vec<f64> = x.iter().map(|&v| -v).collect();
        prop_assert!((srcc(&neg, &y).unwrap() + base).abs() < 1e-12);
    }

    #[test]
    fn symmetric_and_bounded((x, y) in paired(80)) {
        for f in [srcc, plcc, krcc] {
            let a = f(&x, &y).unwrap();
            let b = f(&y, &x).unwrap();
            prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b);
            prop_assert!((-1.0..=1.0).contains(&a));
        }
        prop_assert!((srcc(&x, &x).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn krcc_equals_pairwise_tau_b((x, y) in paired(120)) {
        let fast = krcc(&x, &y).unwrap();
        let slow = tau_b_brute(&x, &y);
        prop_assert!((fast - slow).abs() < 1e-12, "{} vs {}", fast, slow);
    }
}
