//! The CSV inputs of `biqa metrics` and `biqa instability`.
//!
//! Both need a header row; cells are trimmed. Every problem names the file, the line (the header is line 1) and
//! the column.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use biqa_metrics::{Answer, LevelParser};

use crate::error::{Error, Result};

/// Predictions and subjective scores read from a CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionTable {
    /// The predictions, in file order.
    pub pred: Vec<f64>,
    /// The subjective scores (MOS or DMOS), in file order.
    pub mos: Vec<f64>,
}

/// Repeated answers read from a `sample,session,answer` CSV, grouped for [`biqa_metrics::instability`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerTable {
    /// Session names, in order of first appearance.
    pub sessions: Vec<String>,
    /// `answers[s][i]`: the answers of the i-th sample of session s (samples in order of first appearance).
    pub answers: Vec<Vec<Vec<Answer>>>,
    /// `samples[s][i]`: the name of that sample.
    pub samples: Vec<Vec<String>>,
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input)
}

fn column(path: &Path, header: &csv::StringRecord, name: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| Error::MissingColumn {
            path: path.to_path_buf(),
            column: name.to_string(),
            header: header.iter().map(str::to_string).collect(),
        })
}

/// Reads the `pred_col` and `mos_col` columns of the CSV file at `path` as finite numbers.
///
/// # Errors
/// The file cannot be read, is not valid CSV, lacks a column, has no rows, or has a cell that is empty, not a
/// number, or not finite.
pub fn read_predictions(path: &Path, pred_col: &str, mos_col: &str) -> Result<PredictionTable> {
    read_predictions_from(open(path)?, path, pred_col, mos_col)
}

/// [`read_predictions`] from any reader; `path` only names the input in errors.
///
/// # Errors
/// As [`read_predictions`].
pub fn read_predictions_from(
    input: impl Read,
    path: &Path,
    pred_col: &str,
    mos_col: &str,
) -> Result<PredictionTable> {
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv_reader(input);
    let header = reader.headers().map_err(csv_err)?.clone();
    let (ip, im) = (
        column(path, &header, pred_col)?,
        column(path, &header, mos_col)?,
    );
    let mut table = PredictionTable {
        pred: Vec::new(),
        mos: Vec::new(),
    };
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let cell = |i: usize, name: &str| -> Result<f64> {
            let text = record.get(i).unwrap_or("");
            let bad = |problem: String| Error::BadCell {
                path: path.to_path_buf(),
                line,
                column: name.to_string(),
                problem,
            };
            if text.is_empty() {
                return Err(bad("empty cell".into()));
            }
            let v: f64 = text
                .parse()
                .map_err(|_| bad(format!("{text:?} is not a number")))?;
            if !v.is_finite() {
                return Err(bad(format!("{text:?} is not a finite number")));
            }
            Ok(v)
        };
        table.pred.push(cell(ip, pred_col)?);
        table.mos.push(cell(im, mos_col)?);
    }
    if table.pred.is_empty() {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(table)
}

/// Reads a `sample,session,answer` CSV (any column order, other columns ignored); each answer is free text or a
/// level word, read with `parser` (an answer naming no level is invalid).
///
/// # Errors
/// The file cannot be read, is not valid CSV, lacks a column, has no rows, or has an empty sample or session cell.
pub fn read_answers(path: &Path, parser: &LevelParser) -> Result<AnswerTable> {
    read_answers_from(open(path)?, path, parser)
}

/// [`read_answers`] from any reader; `path` only names the input in errors.
///
/// # Errors
/// As [`read_answers`].
pub fn read_answers_from(
    input: impl Read,
    path: &Path,
    parser: &LevelParser,
) -> Result<AnswerTable> {
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv_reader(input);
    let header = reader.headers().map_err(csv_err)?.clone();
    let (isample, isession, ianswer) = (
        column(path, &header, "sample")?,
        column(path, &header, "session")?,
        column(path, &header, "answer")?,
    );
    let mut table = AnswerTable {
        sessions: Vec::new(),
        answers: Vec::new(),
        samples: Vec::new(),
    };
    let mut session_index: HashMap<String, usize> = HashMap::new();
    let mut sample_index: Vec<HashMap<String, usize>> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let nonempty = |i: usize, name: &str| -> Result<String> {
            match record.get(i) {
                Some(t) if !t.is_empty() => Ok(t.to_string()),
                _ => Err(Error::BadCell {
                    path: PathBuf::from(path),
                    line,
                    column: name.to_string(),
                    problem: "empty cell".into(),
                }),
            }
        };
        let sample = nonempty(isample, "sample")?;
        let session = nonempty(isession, "session")?;
        let answer = Answer::parse(record.get(ianswer).unwrap_or(""), parser);
        let s = *session_index.entry(session.clone()).or_insert_with(|| {
            table.sessions.push(session);
            table.answers.push(Vec::new());
            table.samples.push(Vec::new());
            sample_index.push(HashMap::new());
            table.sessions.len() - 1
        });
        let i = *sample_index[s].entry(sample.clone()).or_insert_with(|| {
            table.answers[s].push(Vec::new());
            table.samples[s].push(sample);
            table.answers[s].len() - 1
        });
        table.answers[s][i].push(answer);
    }
    if table.sessions.is_empty() {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use biqa_metrics::Level;

    #[test]
    fn predictions_and_bad_cells() {
        let p = Path::new("x.csv");
        let t = read_predictions_from(
            "name,pred,mos\na,0.5,3\nb, 0.7 ,4.5\n".as_bytes(),
            p,
            "pred",
            "mos",
        )
        .unwrap();
        assert_eq!(t.pred, vec![0.5, 0.7]);
        assert_eq!(t.mos, vec![3.0, 4.5]);
        let e = read_predictions_from("pred,mos\n1,2\n3,abc\n".as_bytes(), p, "pred", "mos")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.csv: line 3, column \"mos\": \"abc\" is not a number"
        );
        let e = read_predictions_from("pred,mos\n1,\n".as_bytes(), p, "pred", "mos").unwrap_err();
        assert!(matches!(e, Error::BadCell { line: 2, .. }), "{e}");
        let e =
            read_predictions_from("pred,mos\nnan,1\n".as_bytes(), p, "pred", "mos").unwrap_err();
        assert!(e.to_string().contains("not a finite number"), "{e}");
        let e = read_predictions_from("p,mos\n1,2\n".as_bytes(), p, "pred", "mos").unwrap_err();
        assert!(matches!(e, Error::MissingColumn { .. }), "{e}");
        let e = read_predictions_from("pred,mos\n".as_bytes(), p, "pred", "mos").unwrap_err();
        assert!(matches!(e, Error::NoRows { .. }), "{e}");
        let e =
            read_predictions_from("pred,mos\n1,2,3\n".as_bytes(), p, "pred", "mos").unwrap_err();
        assert!(matches!(e, Error::Csv { .. }), "{e}");
    }

    #[test]
    fn answers_grouped_by_session_and_sample() {
        let csv = "sample,session,answer\n\
                   a,1,The quality of the image is good.\n\
                   b,1,poor\n\
                   a,1,good\n\
                   a,2,\"Blurry, so the quality is bad.\"\n\
                   b,1,no idea\n";
        let t =
            read_answers_from(csv.as_bytes(), Path::new("a.csv"), &LevelParser::default()).unwrap();
        assert_eq!(t.sessions, vec!["1", "2"]);
        assert_eq!(t.samples, vec![vec!["a", "b"], vec!["a"]]);
        assert_eq!(
            t.answers,
            vec![
                vec![
                    vec![Answer::Level(Level::Good), Answer::Level(Level::Good)],
                    vec![Answer::Level(Level::Poor), Answer::Invalid]
                ],
                vec![vec![Answer::Level(Level::Bad)]],
            ]
        );
    }
}
