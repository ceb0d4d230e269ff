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
        Ok(())
    }
}
