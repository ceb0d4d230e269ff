//! Values at the edge of f64: PLCC stays finite and equal to the PLCC of the same data at ordinary scale (issue #16:
//! a PLCC of NaN near 1e308), and a failed optional logistic fit keeps SRCC / PLCC / KRCC in the summary.

use anyhow::{Result, ensure};
use biqa_metrics::{Summary, plcc};

#[test]
fn plcc_near_f64_max_is_finite_and_scale_free() -> Result<()> {
    let base = [0.3, -0.9, 0.55, 0.1, -0.2, 0.95, -0.7, 0.05];
    let mos = [2.0, 1.0, 3.5, 2.2, 1.9, 4.8, 1.2, 2.5];
    let want = plcc(&base, &mos)?;
    for scale in [1e308, -1e308, 1e-300, 1.0] {
        let x: Vec<f64> = base.iter().map(|v| v * scale).collect();
        let got = plcc(&x, &mos)?;
        ensure!(got.is_finite(), "PLCC {got} at scale {scale}");
        ensure!(
            (got - want.copysign(scale)).abs() <= 1e-12,
            "{got} vs {want} at {scale}"
        );
    }
    Ok(())
}

#[test]
fn a_failed_logistic_fit_keeps_the_other_metrics() -> Result<()> {
    // A step-shaped relation with values near f64::MAX: the correlations are defined, the logistic fit is not.
    let pred = [1e308, -1e308, 1e308, -1e308, 1e308, -1e308];
    let mos = [5.0, 1.0, 4.0, 2.0, 4.5, 1.5];
    let s = Summary::compute(&pred, &mos)?;
    ensure!(
        s.srcc.is_finite() && s.plcc.is_finite() && s.krcc.is_finite(),
        "{s:?}"
    );
    ensure!(
        s.plcc_logistic.is_none() && s.logistic_unavailable.is_some(),
        "{s:?}"
    );
    Ok(())
}
