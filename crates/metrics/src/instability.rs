//! The instability ratio of repeated stochastic answers (paper §4: "22.00% → 12.39%").
//!
//! Input: for each of S sessions, for each of N samples, K sampled answers, each a [`Level`] or invalid
//! (unparseable, or not a level). Definitions (`docs/iqa-conventions.md` §2):
//! - **sample-level** (primary): the share of samples whose K answers are *not* all the same valid level;
//! - **answer-level**: `Σᵢ (Kᵢ − maxcountᵢ) / Σᵢ Kᵢ`, where `maxcountᵢ` is the count of sample i's most frequent
//!   *valid* level (an invalid answer is never modal);
//! - **invalid rate**: the share of invalid answers.
//!
//! Each is computed per session, then reported as mean ± std over sessions (std with ddof = 1, absent for a
//! single session).

use serde::{Deserialize, Serialize};

use crate::correlation::std_sample;
use crate::error::{MetricsError, Result};
use crate::levels::{Level, LevelParser};

/// One sampled answer: a quality level, or invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// The answer names this level.
    Level(Level),
    /// The answer names no level (unparseable or an uncommon word).
    Invalid,
}

impl Answer {
    /// Parses a free-text answer with `parser`.
    pub fn parse(text: &str, parser: &LevelParser) -> Self {
        parser.parse(text).map_or(Answer::Invalid, Answer::Level)
    }
}

impl From<Option<Level>> for Answer {
    fn from(level: Option<Level>) -> Self {
        level.map_or(Answer::Invalid, Answer::Level)
    }
}

/// The instability figures of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInstability {
    /// Number of samples.
    pub samples: usize,
    /// Number of answers (Σ Kᵢ).
    pub answers: usize,
    /// Share of samples whose answers are not all the same valid level.
    pub sample_level: f64,
    /// Share of answers that differ from their sample's modal valid level.
    pub answer_level: f64,
    /// Share of invalid answers.
    pub invalid_rate: f64,
}

/// Instability over several sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstabilityReport {
    /// Mean sample-level instability over sessions (the primary "instability ratio").
    pub sample_level_mean: f64,
    /// Its standard deviation over sessions (ddof = 1); `None` with a single session.
    pub sample_level_std: Option<f64>,
    /// Mean answer-level instability over sessions.
    pub answer_level_mean: f64,
    /// Its standard deviation over sessions (ddof = 1); `None` with a single session.
    pub answer_level_std: Option<f64>,
    /// Mean invalid-answer rate over sessions.
    pub invalid_rate: f64,
    /// The per-session figures, in input order.
    pub sessions: Vec<SessionInstability>,
}

/// Computes the figures of one session: `answers[i]` holds the K answers of sample i.
///
/// # Errors
/// No samples, or a sample with no answers.
pub fn session_instability(answers: &[Vec<Answer>]) -> Result<SessionInstability> {
    if answers.is_empty() {
        return Err(MetricsError::EmptySession { session: None });
    }
    let (mut unstable, mut off_mode, mut invalid, mut total) = (0usize, 0usize, 0usize, 0usize);
    for (i, sample) in answers.iter().enumerate() {
        if sample.is_empty() {
            return Err(MetricsError::NoAnswers {
                session: None,
                sample: i,
            });
        }
        let mut counts = [0usize; 5];
        for a in sample {
            match a {
                Answer::Level(l) => counts[*l as usize] += 1,
                Answer::Invalid => invalid += 1,
            }
        }
        let maxcount = counts.iter().copied().max().unwrap_or(0);
        if maxcount != sample.len() {
            unstable += 1;
        }
        off_mode += sample.len() - maxcount;
        total += sample.len();
    }
    Ok(SessionInstability {
        samples: answers.len(),
        answers: total,
        sample_level: unstable as f64 / answers.len() as f64,
        answer_level: off_mode as f64 / total as f64,
        invalid_rate: invalid as f64 / total as f64,
    })
}

/// Computes the instability over sessions: `sessions[s][i]` holds the answers of sample i in session s.
///
/// # Errors
/// No sessions, an empty session, or a sample with no answers.
pub fn instability(sessions: &[Vec<Vec<Answer>>]) -> Result<InstabilityReport> {
    if sessions.is_empty() {
        return Err(MetricsError::NoSessions);
    }
    let per: Vec<SessionInstability> = sessions
        .iter()
        .enumerate()
        .map(|(k, s)| session_instability(s).map_err(|e| e.in_session(k)))
        .collect::<Result<_>>()?;
    let sample: Vec<f64> = per.iter().map(|s| s.sample_level).collect();
    let answer: Vec<f64> = per.iter().map(|s| s.answer_level).collect();
    let invalid: Vec<f64> = per.iter().map(|s| s.invalid_rate).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(InstabilityReport {
        sample_level_mean: mean(&sample),
        sample_level_std: std_sample(&sample),
        answer_level_mean: mean(&answer),
        answer_level_std: std_sample(&answer),
        invalid_rate: mean(&invalid),
        sessions: per,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Answer::Invalid;

    fn l(level: Level) -> Answer {
        Answer::Level(level)
    }

    #[test]
    fn hand_computed_session() {
        let s = vec![
            vec![l(Level::Good); 5], // stable
            vec![
                l(Level::Good),
                l(Level::Good),
                l(Level::Poor),
                l(Level::Good),
                l(Level::Good),
            ], // 1 off
            vec![Invalid; 5],        // all invalid
            vec![
                l(Level::Fair),
                Invalid,
                l(Level::Fair),
                l(Level::Fair),
                l(Level::Fair),
            ], // 1 off
        ];
        let r = session_instability(&s).unwrap();
        assert_eq!(r.sample_level, 3.0 / 4.0);
        assert_eq!(r.answer_level, 7.0 / 20.0);
        assert_eq!(r.invalid_rate, 6.0 / 20.0);
    }

    #[test]
    fn over_sessions() {
        let a = vec![
            vec![l(Level::Good); 3],
            vec![l(Level::Bad), l(Level::Poor), l(Level::Bad)],
        ];
        let b = vec![vec![l(Level::Good); 3], vec![l(Level::Bad); 3]];
        let r = instability(&[a, b]).unwrap();
        assert_eq!(r.sample_level_mean, 0.25);
        assert!((r.sample_level_std.unwrap() - (0.125f64).sqrt()).abs() < 1e-15);
        assert_eq!(r.sessions.len(), 2);
        let single = instability(&[vec![vec![l(Level::Good)]]]).unwrap();
        assert_eq!(single.sample_level_std, None);
        assert!(instability(&[]).is_err());
        assert!(instability(&[vec![vec![]]]).is_err());
    }

    #[test]
    fn errors_locate_the_session_and_sample() {
        assert_eq!(instability(&[]), Err(MetricsError::NoSessions));
        let good = vec![vec![l(Level::Good)]];
        assert_eq!(
            instability(&[good.clone(), vec![]]),
            Err(MetricsError::EmptySession { session: Some(1) })
        );
        let e = instability(&[good.clone(), good, vec![vec![l(Level::Bad)], vec![]]]).unwrap_err();
        assert_eq!(
            e,
            MetricsError::NoAnswers {
                session: Some(2),
                sample: 1
            }
        );
        assert!(e.to_string().contains("sample 1 of session 2"), "{e}");
        assert_eq!(
            session_instability(&[]),
            Err(MetricsError::EmptySession { session: None })
        );
    }
}
