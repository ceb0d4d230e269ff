//! Serialisable reports of the metrics, in the shape the `biqa` command line prints them.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::error::{MetricsError, Result};
use crate::instability::{InstabilityReport, SessionInstability};

/// An [`InstabilityReport`] whose sessions carry their names: what `biqa instability --json` prints,
/// `{"sample_level_mean", "sample_level_std", "answer_level_mean", "answer_level_std", "invalid_rate",
/// "sessions": [{"session", "samples", "answers", "sample_level", "answer_level", "invalid_rate"}]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedInstability {
    /// The figures.
    pub report: InstabilityReport,
    /// The name of each of `report.sessions`, in the same order.
    pub names: Vec<String>,
}

/// One session's figures under its name (an element of [`NamedInstability`]'s `sessions`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NamedSession<'a> {
    /// The session's name.
    pub session: &'a str,
    /// Its figures.
    #[serde(flatten)]
    pub figures: &'a SessionInstability,
}

impl NamedInstability {
    /// Names the sessions of `report`.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`]: not one name per session.
    pub fn new(report: InstabilityReport, names: Vec<String>) -> Result<Self> {
        if names.len() != report.sessions.len() {
            return Err(MetricsError::LengthMismatch {
                left_name: "sessions",
                left: report.sessions.len(),
                right_name: "session names",
                right: names.len(),
            });
        }
        Ok(Self { report, names })
    }

    /// The sessions with their names, in order.
    pub fn sessions(&self) -> impl Iterator<Item = NamedSession<'_>> {
        self.names
            .iter()
            .zip(&self.report.sessions)
            .map(|(name, figures)| NamedSession {
                session: name,
                figures,
            })
    }
}

impl Serialize for NamedInstability {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let r = &self.report;
        let sessions: Vec<NamedSession<'_>> = self.sessions().collect();
        let mut s = serializer.serialize_struct("NamedInstability", 6)?;
        s.serialize_field("sample_level_mean", &r.sample_level_mean)?;
        s.serialize_field("sample_level_std", &r.sample_level_std)?;
        s.serialize_field("answer_level_mean", &r.answer_level_mean)?;
        s.serialize_field("answer_level_std", &r.answer_level_std)?;
        s.serialize_field("invalid_rate", &r.invalid_rate)?;
        s.serialize_field("sessions", &sessions)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() -> anyhow::Result<()> {
        let figures = SessionInstability {
            samples: 2,
            answers: 6,
            sample_level: 0.5,
            answer_level: 0.25,
            invalid_rate: 0.0,
        };
        let report = InstabilityReport {
            sample_level_mean: 0.5,
            sample_level_std: None,
            answer_level_mean: 0.25,
            answer_level_std: None,
            invalid_rate: 0.0,
            sessions: vec![figures],
        };
        assert!(NamedInstability::new(report.clone(), Vec::new()).is_err());
        let named = NamedInstability::new(report, vec!["s1".into()])?;
        assert_eq!(
            serde_json::to_string(&named)?,
            concat!(
                r#"{"sample_level_mean":0.5,"sample_level_std":null,"answer_level_mean":0.25,"#,
                r#""answer_level_std":null,"invalid_rate":0.0,"sessions":[{"session":"s1","samples":2,"#,
                r#""answers":6,"sample_level":0.5,"answer_level":0.25,"invalid_rate":0.0}]}"#
            )
        );
        Ok(())
    }
}
