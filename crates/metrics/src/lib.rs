//! IQA evaluation metrics as the field computes them (SciPy / pyiqa conventions).
//!
//! - [`srcc`], [`plcc`], [`krcc`], [`rmse`]: the correlations of `scipy.stats` (average ranks for ties, tau-b);
//! - [`plcc_logistic`]: the 4-parameter VQEG logistic fit of pyiqa, by a port of MINPACK's Levenberg–Marquardt;
//! - [`Summary`]: all of the above at once, the table every IQA paper reports;
//! - [`instability()`]: sample- and answer-level instability of repeated sampled answers, with [`LevelParser`] to read
//!   free-text answers;
//! - [`Level`], [`MosBinning`], [`accuracy`]: quality levels, MOS → level binning and level accuracy;
//! - [`bootstrap_ci`]: percentile bootstrap confidence intervals of any of the metrics.
//!
//! No function panics on user input: every problem is a [`MetricsError`].
//!
//! ```
//! let pred = [0.1, 0.4, 0.35, 0.8, 0.9];
//! let mos = [12.0, 40.0, 38.0, 70.0, 85.0];
//! let s = biqa_metrics::Summary::compute(&pred, &mos).unwrap();
//! assert!((s.srcc - 1.0).abs() < 1e-12);
//! ```

mod bootstrap;
mod correlation;
mod error;
mod instability;
mod levels;
mod logistic;
pub mod minpack;
pub mod report;

pub use bootstrap::{Interval, bootstrap_ci};
pub use correlation::{average_ranks, krcc, plcc, rmse, srcc};
pub use error::{MetricsError, Result};
pub use instability::{
    Answer, InstabilityReport, SessionInstability, instability, session_instability,
};
pub use levels::{DEFAULT_SYNONYMS, Level, LevelParser, MosBinning, accuracy, split_conclusion};
pub use logistic::{LogisticFit, LogisticOptions, logistic4, plcc_logistic, plcc_logistic_with};
pub use report::{NamedInstability, NamedSession};

use serde::{Deserialize, Serialize};

/// The standard IQA report for one set of predictions: what `biqa metrics` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Spearman rank correlation.
    pub srcc: f64,
    /// Pearson correlation, no mapping.
    pub plcc: f64,
    /// Pearson correlation after the 4-parameter logistic mapping; `None` when n < 4 (the fit is impossible).
    pub plcc_logistic: Option<f64>,
    /// Kendall tau-b.
    pub krcc: f64,
    /// RMSE after the 4-parameter logistic mapping, on the MOS scale; `None` when n < 4.
    pub rmse_logistic: Option<f64>,
    /// Why the logistic fit is unavailable when it failed (the other metrics are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic_unavailable: Option<String>,
}

impl Summary {
    /// Computes every metric of the summary.
    ///
    /// # Errors
    /// As the correlations (length mismatch, n < 2, non-finite or constant inputs). A failed logistic fit is not
    /// an error: its fields are `None` and [`Summary::logistic_unavailable`] says why.
    pub fn compute(pred: &[f64], mos: &[f64]) -> Result<Self> {
        let srcc = srcc(pred, mos)?;
        let plcc = plcc(pred, mos)?;
        let krcc = krcc(pred, mos)?;
        let (fit, logistic_unavailable) = if pred.len() >= 4 {
            match plcc_logistic(pred, mos) {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        Ok(Self {
            n: pred.len(),
            srcc,
            plcc,
            plcc_logistic: fit.as_ref().map(|f| f.plcc),
            krcc,
            rmse_logistic: fit.as_ref().map(|f| f.rmse),
            logistic_unavailable,
        })
    }
}
