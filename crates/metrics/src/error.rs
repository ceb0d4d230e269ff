//! The one error type of `biqa-metrics`.

use crate::minpack::LmStatus;

/// Everything that can go wrong when computing a metric.
///
/// No function of this crate panics on user input: empty, mismatched, constant or non-finite inputs all come back
/// as one of these variants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
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
    /// The Levenberg–Marquardt fit did not converge (only when convergence is required).
    #[error(
        "logistic fit failed: Levenberg–Marquardt stopped with {status:?} after {evaluations} evaluations"
    )]
    FitNotConverged {
        /// Why MINPACK stopped.
        status: LmStatus,
        /// Function evaluations used.
        evaluations: usize,
    },
    /// The Levenberg–Marquardt fit produced non-finite parameters.
    #[error("logistic fit failed: non-finite parameters {betas:?}")]
    NonFiniteParameters {
        /// The fitted β1..β4.
        betas: [f64; 4],
    },
    /// The fitted curve is not finite at some prediction.
    #[error(
        "logistic fit failed: the fitted curve (parameters {betas:?}) is not finite at prediction {index} ({pred})"
    )]
    NonFiniteCurve {
        /// The fitted β1..β4.
        betas: [f64; 4],
        /// Position of the first prediction where it is not finite.
        index: usize,
        /// That prediction.
        pred: f64,
    },
    /// The fitted curve takes one value at every prediction, so its PLCC is undefined.
    #[error(
        "logistic fit failed: the fitted curve (parameters {betas:?}) is constant ({value}) over the predictions"
    )]
    ConstantCurve {
        /// The fitted β1..β4.
        betas: [f64; 4],
        /// The curve's value.
        value: f64,
    },
    /// A bootstrap confidence level outside (0, 1).
    #[error("bootstrap confidence {confidence} is not in (0, 1)")]
    InvalidConfidence {
        /// The level given.
        confidence: f64,
    },
    /// Fewer than two bootstrap resamples gave a defined value of the metric.
    #[error("fewer than two bootstrap resamples gave a defined value ({defined} of {resamples})")]
    TooFewDefinedResamples {
        /// Resamples with a defined value.
        defined: usize,
        /// Resamples drawn.
        resamples: usize,
    },
    /// Predicted and reference level sequences are empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// MOS-binning thresholds are not finite and strictly increasing.
    #[error("invalid level thresholds {0:?}: they must be finite and strictly increasing")]
    InvalidThresholds(Vec<f64>),
    /// A word that is not one of the five level words.
    #[error("{word:?} is not a level word (excellent, good, fair, poor, bad)")]
    UnknownLevel {
        /// The word given.
        word: String,
    },
    /// No session was given to the instability computation.
    #[error("invalid instability input: no sessions")]
    NoSessions,
    /// A session with no samples.
    #[error("invalid instability input: {} has no samples", SessionLabel(*session))]
    EmptySession {
        /// The session's index in the input (`None` when one session was computed alone).
        session: Option<usize>,
    },
    /// A sample with no answers.
    #[error("invalid instability input: sample {sample} of {} has no answers", SessionLabel(*session))]
    NoAnswers {
        /// The session's index in the input (`None` when one session was computed alone).
        session: Option<usize>,
        /// The sample's index in its session.
        sample: usize,
    },
}

impl MetricsError {
    /// The same error, located in session `index` of a multi-session input (instability errors only).
    pub(crate) fn in_session(self, index: usize) -> Self {
        match self {
            Self::EmptySession { session: None } => Self::EmptySession {
                session: Some(index),
            },
            Self::NoAnswers {
                session: None,
                sample,
            } => Self::NoAnswers {
                session: Some(index),
                sample,
            },
            other => other,
        }
    }
}

/// Displays a session index as `session k`, or `the session` when there is none.
struct SessionLabel(Option<usize>);

impl std::fmt::Display for SessionLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(k) => write!(f, "session {k}"),
            None => f.write_str("the session"),
        }
    }
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
