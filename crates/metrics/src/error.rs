//! The one error type of `biqa-metrics`.

/// Everything that can go wrong when computing a metric.
///
/// No function of this crate panics on user input: empty, mismatched, constant or non-finite inputs all come back
/// as one of these variants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// The two inputs (e.g. predictions and MOS) have different lengths.
    #[error("length mismatch: {left_name} has {left} values but {right_name} has {right}")]
    LengthMismatch {
        /// Name of the first input.
        left_name: &'static str,
        /// Length of the first input.
        left: usize,
        /// Name of the second input.
        right_name: &'static str,
        /// Length of the second input.
        right: usize,
    },
    /// Too few samples for the metric (correlations need 2, the 4-parameter logistic fit needs 4).
    #[error("{metric} needs at least {needed} samples, got {got}")]
    TooFewSamples {
        /// The metric that was asked for.
        metric: &'static str,
        /// The minimum number of samples.
        needed: usize,
        /// The number of samples given.
        got: usize,
    },
    /// An input is constant, so the correlation (or the logistic fit) is undefined.
    #[error("{input} is constant: {metric} is undefined")]
    ConstantInput {
        /// The metric that was asked for.
        metric: &'static str,
        /// Which input is constant.
        input: &'static str,
    },
    /// An input holds NaN or an infinity.
    #[error("{input}[{index}] is not finite ({value})")]
    NonFinite {
        /// Which input.
        input: &'static str,
        /// Position of the first offending value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The Levenberg–Marquardt fit did not produce finite parameters.
    #[error("logistic fit failed: {0}")]
    FitFailed(String),
    /// Predicted and reference level sequences are empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// MOS-binning thresholds are not finite and strictly increasing.
    #[error("invalid level thresholds {0:?}: they must be finite and strictly increasing")]
    InvalidThresholds(Vec<f64>),
    /// A word that is not one of the five level words.
    #[error("{0:?} is not a level word (excellent, good, fair, poor, bad)")]
    UnknownLevel(String),
    /// An instability input is malformed (no sessions, or a sample with no answers).
    #[error("invalid instability input: {0}")]
    InvalidInstabilityInput(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Checks that `pred` and `mos` have the same length, at least `needed` values, and only finite values.
pub(crate) fn check_pair(
    metric: &'static str,
    pred: &[f64],
    mos: &[f64],
    needed: usize,
) -> Result<()> {
    if pred.len() != mos.len() {
        return Err(MetricsError::LengthMismatch {
            left_name: "pred",
            left: pred.len(),
            right_name: "mos",
            right: mos.len(),
        });
    }
    if pred.len() < needed {
        return Err(MetricsError::TooFewSamples {
            metric,
            needed,
            got: pred.len(),
        });
    }
    check_finite("pred", pred)?;
    check_finite("mos", mos)
}

/// Checks that every value of `values` is finite.
pub(crate) fn check_finite(input: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite {
            input,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Fails with [`MetricsError::ConstantInput`] when every value of `values` is the same.
pub(crate) fn check_not_constant(
    metric: &'static str,
    input: &'static str,
    values: &[f64],
) -> Result<()> {
    let first = values.first().copied().unwrap_or(0.0);
    if values.iter().all(|&v| v == first) {
        Err(MetricsError::ConstantInput { metric, input })
    } else {
        Ok(())
    }
}
