//! Training reports: the loss-curve PNG of a run (from its step logs), shared by `biqa train` and the
//! main job (`examples/reproduce.rs`).

use std::path::Path;

use biqa_probes::figures::{Series, line_chart};
use biqa_train::StepLog;

/// Draws one loss curve per labelled run (x = global optimiser step, y = loss) into a PNG.
///
/// # Errors
/// No finite loss, or drawing / I/O errors.
pub fn loss_curve(
    path: &Path,
    title: &str,
    runs: &[(&str, &[StepLog])],
) -> Result<(), biqa_probes::ProbeError> {
    let series: Vec<Series> = runs
        .iter()
        .map(|(label, steps)| Series {
            label: (*label).to_owned(),
            points: steps
                .iter()
                .map(|s| (s.global_step as f64, s.loss))
                .collect(),
        })
        .collect();
    line_chart(path, title, "optimiser step", "training loss", &series)
}
