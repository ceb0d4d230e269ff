//! The 4-parameter VQEG logistic mapping, fitted as pyiqa does it, and the PLCC / RMSE after the mapping.
//!
//! `f(x) = (β1 − β2) / (1 + exp(−(x − β3) / β4)) + β2`, with the initial values
//! `[max(mos), min(mos), mean(pred), std(pred) / 4]` (population std), fitted by Levenberg–Marquardt
//! ([`crate::minpack::lmdif`], the MINPACK code behind `scipy.optimize.curve_fit`) with SciPy's tolerances.

use serde::{Deserialize, Serialize};

use crate::correlation::{mean, pearson_unchecked, std_population};
use crate::error::{MetricsError, Result, check_not_constant, check_pair};
use crate::minpack::{LmOptions, LmStatus, lmdif};

/// The 4-parameter logistic function `(b1 − b2) / (1 + exp(−(x − b3) / b4)) + b2`.
pub fn logistic4(x: f64, betas: &[f64; 4]) -> f64 {
    let [b1, b2, b3, b4] = *betas;
    (b1 - b2) / (1.0 + (-(x - b3) / b4).exp()) + b2
}

/// Options of [`plcc_logistic_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LogisticOptions {
    /// Levenberg–Marquardt settings; the defaults are SciPy's (`ftol = xtol = 1.49012e-8`, `gtol = 0`,
    /// `epsfcn` = machine epsilon) with `maxfev = 10 000`.
    pub lm: LmOptions,
    /// Return an error (instead of the last iterate) when the fit stops without converging, as `curve_fit` does.
    pub require_convergence: bool,
}

/// Result of the logistic fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticFit {
    /// Initial parameters `[max(mos), min(mos), mean(pred), std(pred) / 4]`.
    pub initial: [f64; 4],
    /// Fitted parameters `[β1, β2, β3, β4]`.
    pub betas: [f64; 4],
    /// Pearson correlation between `f(pred)` and `mos` (the "fitted PLCC").
    pub plcc: f64,
    /// `sqrt(mean((f(pred) − mos)²))`.
    pub rmse: f64,
    /// Why Levenberg–Marquardt stopped.
    pub status: LmStatus,
    /// Number of evaluations of the residuals.
    pub evaluations: usize,
}

impl LogisticFit {
    /// Applies the fitted mapping to predictions.
    pub fn map(&self, pred: &[f64]) -> Vec<f64> {
        pred.iter().map(|&x| logistic4(x, &self.betas)).collect()
    }
}

/// Fits the 4-parameter logistic from `pred` to `mos` with the default options and returns the fitted
/// parameters, the fitted PLCC and RMSE.
///
/// # Errors
/// Length mismatch, fewer than 4 samples, non-finite values, constant predictions or MOS, or a fit that ends
/// in non-finite values.
pub fn plcc_logistic(pred: &[f64], mos: &[f64]) -> Result<LogisticFit> {
    plcc_logistic_with(pred, mos, &LogisticOptions::default())
}

/// [`plcc_logistic`] with explicit options.
///
/// # Errors
/// As [`plcc_logistic`]; also a non-converged fit when `options.require_convergence` is set.
pub fn plcc_logistic_with(
    pred: &[f64],
    mos: &[f64],
    options: &LogisticOptions,
) -> Result<LogisticFit> {
    const METRIC: &str = "the 4-parameter logistic fit";
    check_pair(METRIC, pred, mos, 4)?;
    check_not_constant(METRIC, "pred", pred)?;
    check_not_constant(METRIC, "mos", mos)?;
    let max = mos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = mos.iter().copied().fold(f64::INFINITY, f64::min);
    let initial = [max, min, mean(pred), std_population(pred) / 4.0];
    let fit = lmdif(pred.len(), &initial, &options.lm, |b, out| {
        let betas = [b[0], b[1], b[2], b[3]];
        for ((o, &x), &y) in out.iter_mut().zip(pred).zip(mos) {
            *o = logistic4(x, &betas) - y;
        }
    });
    if options.require_convergence && !fit.status.converged() {
        return Err(MetricsError::FitNotConverged {
            status: fit.status,
            evaluations: fit.nfev,
        });
    }
    let betas = [fit.x[0], fit.x[1], fit.x[2], fit.x[3]];
    if betas.iter().any(|b| !b.is_finite()) {
        return Err(MetricsError::NonFiniteParameters { betas });
    }
    let yhat: Vec<f64> = pred.iter().map(|&x| logistic4(x, &betas)).collect();
    if let Some(index) = yhat.iter().position(|v| !v.is_finite()) {
        return Err(MetricsError::NonFiniteCurve {
            betas,
            index,
            pred: pred[index],
        });
    }
    let rmse = (yhat
        .iter()
        .zip(mos)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / mos.len() as f64)
        .sqrt();
    let plcc = if yhat.iter().all(|&v| v == yhat[0]) {
        return Err(MetricsError::ConstantCurve {
            betas,
            value: yhat[0],
        });
    } else {
        pearson_unchecked(&yhat, mos)
    };
    Ok(LogisticFit {
        initial,
        betas,
        plcc,
        rmse,
        status: fit.status,
        evaluations: fit.nfev,
    })
}
