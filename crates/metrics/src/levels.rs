//! The five quality levels, free-text answer parsing, MOS → level binning and level accuracy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// A quality level of the ITU five-level absolute category rating, as the Q-Align / Q-Instruct family words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The worst level ("bad"), score 1.
    Bad,
    /// "poor", score 2.
    Poor,
    /// "fair", score 3.
    Fair,
    /// "good", score 4.
    Good,
    /// The best level ("excellent"), score 5.
    Excellent,
}

impl Level {
    /// All levels from best to worst, the order of Q-Align's scoring words.
    pub const BEST_FIRST: [Level; 5] = [
        Level::Excellent,
        Level::Good,
        Level::Fair,
        Level::Poor,
        Level::Bad,
    ];

    /// The canonical word ("excellent", "good", "fair", "poor", "bad").
    pub fn word(self) -> &'static str {
        match self {
            Level::Excellent => "excellent",
            Level::Good => "good",
            Level::Fair => "fair",
            Level::Poor => "poor",
            Level::Bad => "bad",
        }
    }

    /// The score on the 1–5 scale (bad = 1 … excellent = 5).
    pub fn score(self) -> u8 {
        self as u8 + 1
    }

    /// The level with index `i` from worst (0 = bad) to best (4 = excellent).
    pub fn from_index(i: usize) -> Option<Level> {
        [
            Level::Bad,
            Level::Poor,
            Level::Fair,
            Level::Good,
            Level::Excellent,
        ]
        .get(i)
        .copied()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for Level {
    type Err = MetricsError;

    /// Parses a canonical level word (case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self> {
        let w = s.trim().to_ascii_lowercase();
        Level::BEST_FIRST
            .into_iter()
            .find(|l| l.word() == w)
            .ok_or_else(|| MetricsError::UnknownLevel {
                word: s.to_string(),
            })
    }
}

/// The default synonym table of [`LevelParser`]: each word on the left is read as the level on the right.
///
/// Only words that, in a quality answer, name the overall quality are listed. Words such as "high", "low",
/// "great" or "clear" are deliberately absent: they usually describe an attribute ("low noise", "high contrast")
/// rather than the verdict.
pub const DEFAULT_SYNONYMS: &[(&str, Level)] = &[
    ("excellent", Level::Excellent),
    ("exceptional", Level::Excellent),
    ("outstanding", Level::Excellent),
    ("superb", Level::Excellent),
    ("perfect", Level::Excellent),
    ("good", Level::Good),
    ("decent", Level::Good),
    ("fair", Level::Fair),
    ("average", Level::Fair),
    ("acceptable", Level::Fair),
    ("mediocre", Level::Fair),
    ("moderate", Level::Fair),
    ("poor", Level::Poor),
    ("bad", Level::Bad),
    ("terrible", Level::Bad),
    ("awful", Level::Bad),
    ("horrible", Level::Bad),
];

/// Maps free-text answers to levels: the **last** level word of the answer wins (answers end with their
/// conclusion: "The image is sharp but noisy, so the quality is poor.").
///
/// Words are the maximal runs of ASCII letters and apostrophes, compared in lower case. A level word directly
/// preceded by a negation ("not", "never", or a word ending in "n't") is skipped, so "not bad" is not read as
/// *bad*. An answer with no level word is `None` (an invalid answer for the instability ratio).
#[derive(Debug, Clone)]
pub struct LevelParser {
    synonyms: Vec<(String, Level)>,
}

impl Default for LevelParser {
    fn default() -> Self {
        Self::with_synonyms(DEFAULT_SYNONYMS.iter().map(|&(w, l)| (w.to_string(), l)))
    }
}

impl LevelParser {
    /// A parser that only accepts the five canonical words.
    pub fn strict() -> Self {
        Self::with_synonyms(
            Level::BEST_FIRST
                .into_iter()
                .map(|l| (l.word().to_string(), l)),
        )
    }

    /// A parser with a custom word → level table (words are lower-cased).
    pub fn with_synonyms(table: impl IntoIterator<Item = (String, Level)>) -> Self {
        Self {
            synonyms: table
                .into_iter()
                .map(|(w, l)| (w.to_ascii_lowercase(), l))
                .collect(),
        }
    }

    /// The level named by `answer`, or `None` when it names none.
    pub fn parse(&self, answer: &str) -> Option<Level> {
        let lower = answer.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !(c.is_ascii_alphabetic() || c == '\''))
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate().rev() {
            let w = w.trim_matches('\'');
            if let Some(&(_, level)) = self.synonyms.iter().find(|(s, _)| s == w) {
                let negated = i > 0 && {
                    let prev = words[i - 1];
                    prev == "not" || prev == "never" || prev.ends_with("n't")
                };
                if !negated {
                    return Some(level);
                }
            }
        }
        None
    }
}

/// Splits a Q-Pathway-style answer into `(description, conclusion, level)`.
///
/// The rule: the text is cut into sentences (ending in `.`, `!` or `?` followed by white space or the end); the
/// **conclusion is the last sentence that states a quality level** (one of excellent / good / fair / poor / bad,
/// not negated, read by [`LevelParser::strict`]); the description is every other sentence, in order. Returns the
/// level too.
///
/// `None` when no sentence states a level; the description is empty when the answer is only a conclusion.
pub fn split_conclusion(answer: &str) -> Option<(String, String, Level)> {
    let sentences = sentences(answer);
    let parser = LevelParser::strict();
    let (idx, level) = sentences
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, s)| parser.parse(s).map(|l| (i, l)))?;
    let description: Vec<&str> = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .map(|(_, s)| s.as_str())
        .collect();
    Some((description.join(" "), sentences[idx].clone(), level))
}

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        cur.push(c);
        let end =
            matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if end {
            let s = cur.trim();
            if !s.is_empty() {
                out.push(s.to_owned());
            }
            cur.clear();
        }
    }
    let s = cur.trim();
    if !s.is_empty() {
        out.push(s.to_owned());
    }
    out
}

/// Binning of a continuous MOS into the five levels by four thresholds: `mos < t[0]` is *bad*,
/// `t[0] ≤ mos < t[1]` is *poor*, …, `mos ≥ t[3]` is *excellent* (a value on a threshold goes up, as Q-Align's
/// `int(rescaled score)` does). For lower-is-better scales (DMOS) the order is reversed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MosBinning {
    /// The four ascending thresholds on the MOS scale.
    pub thresholds: [f64; 4],
    /// True when a higher MOS means better quality; false for DMOS-like scales.
    pub higher_is_better: bool,
}

impl MosBinning {
    /// Explicit thresholds (finite, strictly increasing) for a higher-is-better scale.
    ///
    /// # Errors
    /// [`MetricsError::InvalidThresholds`] when they are not finite and strictly increasing.
    pub fn from_thresholds(thresholds: [f64; 4]) -> Result<Self> {
        if thresholds.iter().any(|t| !t.is_finite()) || thresholds.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(MetricsError::InvalidThresholds(thresholds.to_vec()));
        }
        Ok(Self {
            thresholds,
            higher_is_better: true,
        })
    }

    /// Five equal-width bins over `[lo, hi]` (Q-Align: rescale the MOS range and split it into 5 bins).
    ///
    /// # Errors
    /// [`MetricsError::InvalidThresholds`] unless `lo < hi`, both finite.
    pub fn equal_width(lo: f64, hi: f64) -> Result<Self> {
        let step = (hi - lo) / 5.0;
        Self::from_thresholds([lo + step, lo + 2.0 * step, lo + 3.0 * step, lo + 4.0 * step])
    }

    /// KonIQ-10k on its `MOS_zscore` scale (≈0–100): the thresholds that reproduce Q-Align's released labels.
    pub fn koniq() -> Self {
        Self {
            thresholds: [22.41, 38.14, 53.888, 69.62],
            higher_is_better: true,
        }
    }

    /// SPAQ on its 0–100 MOS scale: equal steps of 94/5 from 0, reproducing Q-Align's released labels.
    pub fn spaq() -> Self {
        Self {
            thresholds: [18.8, 37.6, 56.4, 75.2],
            higher_is_better: true,
        }
    }

    /// The same binning for a lower-is-better scale (DMOS): `mos ≤ t[0]` is *excellent*, …, `mos > t[3]` *bad*.
    pub fn lower_is_better(mut self) -> Self {
        self.higher_is_better = false;
        self
    }

    /// The level of one score.
    pub fn level(&self, mos: f64) -> Level {
        if self.higher_is_better {
            let above = self.thresholds.iter().filter(|&&t| mos >= t).count();
            Level::from_index(above).unwrap_or(Level::Excellent)
        } else {
            let above = self.thresholds.iter().filter(|&&t| mos > t).count();
            Level::from_index(4 - above).unwrap_or(Level::Bad)
        }
    }

    /// The levels of many scores.
    ///
    /// # Errors
    /// [`MetricsError::NonFinite`] when a score is NaN or infinite.
    pub fn levels(&self, mos: &[f64]) -> Result<Vec<Level>> {
        crate::error::check_finite("mos", mos)?;
        Ok(mos.iter().map(|&m| self.level(m)).collect())
    }
}

/// Share of predicted levels that equal the reference levels.
///
/// # Errors
/// Length mismatch or empty inputs.
pub fn accuracy(pred: &[Level], truth: &[Level]) -> Result<f64> {
    if pred.len() != truth.len() {
        return Err(MetricsError::LengthMismatch {
            left_name: "pred",
            left: pred.len(),
            right_name: "truth",
            right: truth.len(),
        });
    }
    if pred.is_empty() {
        return Err(MetricsError::Empty("pred"));
    }
    let hits = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    Ok(hits as f64 / pred.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_level_word_wins() {
        let p = LevelParser::default();
        assert_eq!(
            p.parse("The quality of the image is good."),
            Some(Level::Good)
        );
        assert_eq!(
            p.parse("Sharp and well exposed, but noisy. Therefore, the quality is POOR."),
            Some(Level::Poor)
        );
        assert_eq!(p.parse("good at first, then bad"), Some(Level::Bad));
        assert_eq!(p.parse("The quality is average"), Some(Level::Fair));
        assert_eq!(
            p.parse("The image is not bad, it is good"),
            Some(Level::Good)
        );
        assert_eq!(p.parse("It's not bad"), None);
        assert_eq!(p.parse("isn't good"), None);
        assert_eq!(p.parse("I cannot tell."), None);
        assert_eq!(p.parse("goodness"), None);
        assert_eq!(LevelParser::strict().parse("quality is average"), None);
    }

    #[test]
    fn binning() {
        let b = MosBinning::equal_width(0.0, 5.0).unwrap();
        assert_eq!(b.level(0.0), Level::Bad);
        assert_eq!(b.level(0.999), Level::Bad);
        assert_eq!(b.level(1.0), Level::Poor);
        assert_eq!(b.level(4.0), Level::Excellent);
        assert_eq!(b.level(5.0), Level::Excellent);
        assert_eq!(b.level(99.0), Level::Excellent);
        let d = MosBinning::equal_width(0.0, 1.0).unwrap().lower_is_better();
        assert_eq!(d.level(0.05), Level::Excellent);
        assert_eq!(d.level(0.95), Level::Bad);
        assert!(MosBinning::from_thresholds([1.0, 1.0, 2.0, 3.0]).is_err());
        assert!(MosBinning::equal_width(1.0, f64::NAN).is_err());
        assert_eq!(MosBinning::koniq().level(77.3836), Level::Excellent);
        assert_eq!(MosBinning::spaq().level(56.4), Level::Good);
    }

    #[test]
    fn level_words_roundtrip() {
        for l in Level::BEST_FIRST {
            assert_eq!(l.word().parse::<Level>().unwrap(), l);
        }
        assert_eq!(Level::Excellent.score(), 5);
        assert_eq!(Level::Bad.score(), 1);
    }
}
