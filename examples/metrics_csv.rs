//! Reads a predictions CSV and prints every metric with a bootstrap 95% confidence interval.
//!
//! ```text
//! cargo run --release --example metrics_csv -- [FILE.csv] [--pred COL] [--mos COL] [--resamples N] [--seed S]
//! ```
//! Without a file it reads `examples/data/predictions.csv` (200 predictions against a noisy logistic MOS).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::metrics::{Result as MetricResult, bootstrap_ci, krcc, plcc, plcc_logistic, rmse, srcc};
use biqa::tables::read_predictions;

/// A metric as the bootstrap takes it.
type Metric = fn(&[f64], &[f64]) -> MetricResult<f64>;

fn fitted_plcc(p: &[f64], m: &[f64]) -> MetricResult<f64> {
    plcc_logistic(p, m).map(|f| f.plcc)
}

fn fitted_rmse(p: &[f64], m: &[f64]) -> MetricResult<f64> {
    plcc_logistic(p, m).map(|f| f.rmse)
}

fn main() -> Result<()> {
    let mut file = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/predictions.csv"
    ));
    let (mut pred_col, mut mos_col) = ("pred".to_string(), "mos".to_string());
    let (mut resamples, mut seed) = (1000usize, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--pred" => pred_col = value("--pred")?,
            "--mos" => mos_col = value("--mos")?,
            "--resamples" => resamples = value("--resamples")?.parse().context("--resamples")?,
            "--seed" => seed = value("--seed")?.parse().context("--seed")?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => file = PathBuf::from(s),
        }
    }
    let table = read_predictions(&file, &pred_col, &mos_col)?;
    let (p, m) = (&table.pred, &table.mos);
    println!(
        "{}: n = {}, {resamples} bootstrap resamples, seed {seed}",
        file.display(),
        p.len()
    );
    println!(
        "{:<14} {:>9}   {:>21}",
        "metric", "value", "95% CI (percentile)"
    );
    let metrics: [(&str, Metric); 6] = [
        ("srcc", srcc),
        ("plcc", plcc),
        ("plcc_logistic", fitted_plcc),
        ("krcc", krcc),
        ("rmse_logistic", fitted_rmse),
        ("rmse_raw", rmse),
    ];
    for (name, f) in metrics {
        match bootstrap_ci(p, m, f, resamples, 0.95, seed) {
            Ok(ci) => println!(
                "{name:<14} {:>9.4}   [{:>8.4}, {:>8.4}]",
                ci.estimate, ci.lo, ci.hi
            ),
            Err(e) => println!("{name:<14} {:>9}   ({e})", "n/a"),
        }
    }
    Ok(())
}
