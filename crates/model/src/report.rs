//! Serialisable reports of the model's results, in the shape the `biqa` command line prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ScoreResult;

/// The Q-Align score of one image: one element of the `biqa score --json` array,
/// `{"image", "score", "score_1_5", "probs": {word: p}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredImage {
    /// The image, as it was named.
    pub image: String,
    /// The score in [0, 1] ([`ScoreResult::score`]).
    pub score: f64,
    /// The score on [1, 5] ([`ScoreResult::score_1_5`]).
    pub score_1_5: f64,
    /// The probability of each level word (softmax over the level words only), keyed by the word (in the
    /// alphabetical order of the keys).
    pub probs: BTreeMap<String, f64>,
}

impl ScoredImage {
    /// The report of `result`, the score of the image named `image`.
    pub fn new(image: impl Into<String>, result: &ScoreResult) -> Self {
        Self {
            image: image.into(),
            score: result.score,
            score_1_5: result.score_1_5,
            probs: result
                .words
                .iter()
                .cloned()
                .zip(result.probs.iter().copied())
                .collect(),
        }
    }
}

/// An image `biqa score` could not score: `{"image", "error"}` in place of its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedImage {
    /// The image, as it was named.
    pub image: String,
    /// Why it was not scored (the error's message, naming the file and the problem).
    pub error: String,
}

/// One element of the `biqa score --json` array: the scores of an image ([`ScoredImage`]) or, for an image that
/// could not be scored, the error ([`FailedImage`]). Serialised without a tag: the object has either `score` or
/// `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScoreRow {
    /// The image was scored.
    Scored(ScoredImage),
    /// The image was not scored.
    Failed(FailedImage),
}

impl ScoreRow {
    /// The row of the image named `image` from its result.
    pub fn new(image: impl Into<String>, result: &crate::Result<ScoreResult>) -> Self {
        match result {
            Ok(r) => Self::Scored(ScoredImage::new(image, r)),
            Err(e) => Self::Failed(FailedImage {
                image: image.into(),
                error: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() -> anyhow::Result<()> {
        let r = ScoreResult {
            score: 0.5,
            score_1_5: 3.0,
            words: vec!["good".into(), "average".into(), "poor".into()],
            probs: vec![0.25, 0.5, 0.25],
            level_logits: vec![0.0, 1.0, 0.0],
        };
        assert_eq!(
            serde_json::to_string(&ScoredImage::new("a.png", &r))?,
            r#"{"image":"a.png","score":0.5,"score_1_5":3.0,"probs":{"average":0.5,"good":0.25,"poor":0.25}}"#
        );
        // A row is the scores, or the error in their place; both read back as what they were.
        let ok = ScoreRow::new("a.png", &Ok(r));
        let failed = ScoreRow::new(
            "b.png",
            &Err(crate::ModelError::BatchFailed {
                reason: "boom".into(),
            }),
        );
        let json = serde_json::to_string(&[&ok, &failed])?;
        assert!(
            json.ends_with(r#"{"image":"b.png","error":"its batch failed: boom"}]"#),
            "{json}"
        );
        let back: Vec<ScoreRow> = serde_json::from_str(&json)?;
        assert_eq!(back, [ok, failed]);
        Ok(())
    }
}
