//! The `biqa` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use biqa::device::{DeviceKind, cpu_has_avx512};
use biqa::metrics::{LevelParser, Summary, instability};
use biqa::tables::{read_answers, read_predictions};
use clap::{Parser, Subcommand};
use serde::Serialize;

/// Blind image quality assessment with vision-language models.
#[derive(Debug, Parser)]
#[command(name = "biqa", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SRCC, PLCC (raw and 4-parameter logistic), KRCC and RMSE of predictions against MOS in a CSV file.
    Metrics {
        /// CSV file with a header row.
        file: PathBuf,
        /// Column holding the predictions.
        #[arg(long, default_value = "pred")]
        pred: String,
        /// Column holding the subjective scores (MOS or DMOS).
        #[arg(long, default_value = "mos")]
        mos: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Instability ratios of repeated answers in a `sample,session,answer` CSV file.
    Instability {
        /// CSV file with the columns sample, session and answer (free text or a level word).
        file: PathBuf,
        /// Accept only the five level words (no synonyms such as "average").
        #[arg(long)]
        strict: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Version, compiled backends and the default device.
    Info,
}

/// `biqa instability --json` output.
#[derive(Debug, Serialize)]
struct InstabilityOutput {
    sample_level_mean: f64,
    sample_level_std: Option<f64>,
    answer_level_mean: f64,
    answer_level_std: Option<f64>,
    invalid_rate: f64,
    sessions: Vec<SessionOutput>,
}

#[derive(Debug, Serialize)]
struct SessionOutput {
    session: String,
    samples: usize,
    answers: usize,
    sample_level: f64,
    answer_level: f64,
    invalid_rate: f64,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.6}"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Metrics {
            file,
            pred,
            mos,
            json,
        } => {
            let table = read_predictions(&file, &pred, &mos)?;
            let summary = Summary::compute(&table.pred, &table.mos).map_err(|source| {
                biqa::Error::Metrics {
                    path: file.clone(),
                    source,
                }
            })?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("n              {}", summary.n);
                println!("srcc           {:.6}", summary.srcc);
                println!("plcc           {:.6}", summary.plcc);
                println!("plcc_logistic  {}", fmt_opt(summary.plcc_logistic));
                println!("krcc           {:.6}", summary.krcc);
                println!("rmse_logistic  {}", fmt_opt(summary.rmse_logistic));
            }
        }
        Command::Instability { file, strict, json } => {
            let parser = if strict {
                LevelParser::strict()
            } else {
                LevelParser::default()
            };
            let table = read_answers(&file, &parser)?;
            let report = instability(&table.answers).map_err(|source| biqa::Error::Metrics {
                path: file.clone(),
                source,
            })?;
            let out = InstabilityOutput {
                sample_level_mean: report.sample_level_mean,
                sample_level_std: report.sample_level_std,
                answer_level_mean: report.answer_level_mean,
                answer_level_std: report.answer_level_std,
                invalid_rate: report.invalid_rate,
                sessions: report
                    .sessions
                    .iter()
                    .zip(&table.sessions)
                    .map(|(s, name)| SessionOutput {
                        session: name.clone(),
                        samples: s.samples,
                        answers: s.answers,
                        sample_level: s.sample_level,
                        answer_level: s.answer_level,
                        invalid_rate: s.invalid_rate,
                    })
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "{:<12} {:>8} {:>8} {:>13} {:>13} {:>13}",
                    "session", "samples", "answers", "sample-level", "answer-level", "invalid"
                );
                for s in &out.sessions {
                    println!(
                        "{:<12} {:>8} {:>8} {:>12.2}% {:>12.2}% {:>12.2}%",
                        s.session,
                        s.samples,
                        s.answers,
                        100.0 * s.sample_level,
                        100.0 * s.answer_level,
                        100.0 * s.invalid_rate
                    );
                }
                let pm = |m: f64, s: Option<f64>| match s {
                    Some(s) => format!("{:.2}% ± {:.2}%", 100.0 * m, 100.0 * s),
                    None => format!("{:.2}%", 100.0 * m),
                };
                println!(
                    "sample-level instability (primary): {}",
                    pm(out.sample_level_mean, out.sample_level_std)
                );
                println!(
                    "answer-level instability:           {}",
                    pm(out.answer_level_mean, out.answer_level_std)
                );
                println!(
                    "invalid answers:                    {:.2}%",
                    100.0 * out.invalid_rate
                );
                println!("(std over sessions with ddof = 1)");
            }
        }
        Command::Info => {
            let kind = DeviceKind::from_env()?;
            println!("biqa {}", env!("CARGO_PKG_VERSION"));
            println!(
                "backends       {}",
                DeviceKind::compiled_backends().join(", ")
            );
            println!("device         {kind}  (set BIQA_DEVICE to change)");
            println!(
                "avx512         {}",
                if cpu_has_avx512() {
                    "yes (flex uses AVX-512 matmul kernels)"
                } else {
                    "no"
                }
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
