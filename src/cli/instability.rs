//! `biqa instability`: instability ratios of repeated answers.

use std::path::PathBuf;

use anyhow::Result;
use biqa::metrics::report::NamedInstability;
use biqa::metrics::{LevelParser, instability};
use biqa::tables::read_answers;

/// Arguments of `biqa instability`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV file with the columns sample, session and answer (free text or a level word).
    pub file: PathBuf,
    /// Accept only the five level words (no synonyms such as "average").
    #[arg(long)]
    pub strict: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads the answers and prints their [`NamedInstability`] (a table, or one JSON object).
///
/// # Errors
/// A bad CSV file (naming the cell), or no answers to compare.
pub fn run(args: Args) -> Result<()> {
    let parser = if args.strict {
        LevelParser::strict()
    } else {
        LevelParser::default()
    };
    let metrics_error = |source| biqa::Error::Metrics {
        path: args.file.clone(),
        source,
    };
    let table = read_answers(&args.file, &parser)?;
    let report = instability(&table.answers).map_err(metrics_error)?;
    let out = NamedInstability::new(report, table.sessions).map_err(metrics_error)?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "{:<12} {:>8} {:>8} {:>13} {:>13} {:>13}",
        "session", "samples", "answers", "sample-level", "answer-level", "invalid"
    );
    for s in out.sessions() {
        println!(
            "{:<12} {:>8} {:>8} {:>12.2}% {:>12.2}% {:>12.2}%",
            s.session,
            s.figures.samples,
            s.figures.answers,
            100.0 * s.figures.sample_level,
            100.0 * s.figures.answer_level,
            100.0 * s.figures.invalid_rate
        );
    }
    let pm = |m: f64, s: Option<f64>| match s {
        Some(s) => format!("{:.2}% ± {:.2}%", 100.0 * m, 100.0 * s),
        None => format!("{:.2}%", 100.0 * m),
    };
    let r = &out.report;
    println!(
        "sample-level instability (primary): {}",
        pm(r.sample_level_mean, r.sample_level_std)
    );
    println!(
        "answer-level instability:           {}",
        pm(r.answer_level_mean, r.answer_level_std)
    );
    println!(
        "invalid answers:                    {:.2}%",
        100.0 * r.invalid_rate
    );
    println!("(std over sessions with ddof = 1)");
    Ok(())
}
