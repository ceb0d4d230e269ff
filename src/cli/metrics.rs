//! `biqa metrics`: SRCC, PLCC (raw and 4-parameter logistic), KRCC and RMSE of predictions against MOS.

use std::path::PathBuf;

use anyhow::Result;
use biqa::metrics::Summary;
use biqa::tables::read_predictions;

/// Arguments of `biqa metrics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV file with a header row.
    pub file: PathBuf,
    /// Column holding the predictions.
    #[arg(long, default_value = "pred")]
    pub pred: String,
    /// Column holding the subjective scores (MOS or DMOS).
    #[arg(long, default_value = "mos")]
    pub mos: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `v` with six decimals, or `n/a`.
fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.6}"))
}

/// Reads the two columns and prints their [`Summary`] (a table, or one JSON object).
///
/// # Errors
/// A bad CSV file (naming the cell), or undefined metrics (constant inputs, n < 2).
pub fn run(args: Args) -> Result<()> {
    let table = read_predictions(&args.file, &args.pred, &args.mos)?;
    let summary =
        Summary::compute(&table.pred, &table.mos).map_err(|source| biqa::Error::Metrics {
            path: args.file.clone(),
            source,
        })?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("n              {}", summary.n);
        println!("srcc           {:.6}", summary.srcc);
        println!("plcc           {:.6}", summary.plcc);
        println!("plcc_logistic  {}", fmt_opt(summary.plcc_logistic));
        println!("krcc           {:.6}", summary.krcc);
        println!("rmse_logistic  {}", fmt_opt(summary.rmse_logistic));
    }
    Ok(())
}
