//! The recipes: Q-Align's direct answer (image + question → "The quality of the image is WORD."), one-stage
//! (image + question → description and conclusion, the Q-Instruct baseline) and the paper's
//! two-stage tuning (stage 1: image → description; stage 2: text-only description → conclusion), and the rule
//! that splits a Q-Pathway-style answer into its description and its conclusion.

use biqa_core::prompts::DIRECT_PROMPT;
use biqa_data::{
    ConversationRecord, IMAGE_TOKEN, STAGE1_PROMPT, STAGE2_PROMPT, STAGE2_QUESTION, Turn,
};
use biqa_metrics::Level;
use serde::{Deserialize, Serialize};

use crate::error::{AnswerProblem, RecordProblem, Result, TrainError};

/// A training recipe with its step budget (optimiser steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipe {
    /// Q-Align: image + question → "The quality of the image is WORD." and nothing else (the training path of
    /// the `direct` pipeline). Records come from `data.direct`, or are derived from `data.one_stage` by
    /// [`direct_records`].
    Direct {
        /// Optimiser steps.
        steps: usize,
    },
    /// Image + question → full answer (description + conclusion). The paper's baseline: 9,000 steps.
    OneStage {
        /// Optimiser steps.
        steps: usize,
    },
    /// Stage 1 on image → description, then stage 2, from the stage-1 weights, on the text-only description →
    /// conclusion. The paper: 6,000 + 3,000 steps. Each stage has its own optimiser state and schedule.
    TwoStage {
        /// Stage-1 optimiser steps.
        stage1_steps: usize,
        /// Stage-2 optimiser steps.
        stage2_steps: usize,
    },
}

/// One stage of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Q-Align's direct answer.
    Direct,
    /// The one-stage baseline.
    OneStage,
    /// Stage 1: image → description.
    Stage1,
    /// Stage 2: description (text) → conclusion.
    Stage2,
}

impl StageKind {
    /// A short name for logs and file names.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Direct => "direct",
            StageKind::OneStage => "one_stage",
            StageKind::Stage1 => "stage1",
            StageKind::Stage2 => "stage2",
        }
    }
}

impl Recipe {
    /// The stages in order with their step budgets.
    pub fn stages(self) -> Vec<(StageKind, usize)> {
        match self {
            Recipe::Direct { steps } => vec![(StageKind::Direct, steps)],
            Recipe::OneStage { steps } => vec![(StageKind::OneStage, steps)],
            Recipe::TwoStage {
                stage1_steps,
                stage2_steps,
            } => vec![
                (StageKind::Stage1, stage1_steps),
                (StageKind::Stage2, stage2_steps),
            ],
        }
    }

    /// All optimiser steps.
    pub fn total_steps(self) -> usize {
        self.stages().iter().map(|s| s.1).sum()
    }
}

/// Splits a Q-Pathway-style answer into `(description, conclusion, level)` by [`biqa_metrics::split_conclusion`]'s
/// rule (the conclusion is the last sentence that states a quality level; the description is every other
/// sentence, in order).
///
/// # Errors
/// [`TrainError::UnsplittableAnswer`] when no sentence states a level, or nothing is left for the description.
pub fn split_answer(answer: &str) -> Result<(String, String, Level)> {
    split(answer).map_err(|problem| TrainError::UnsplittableAnswer {
        answer: answer.to_owned(),
        problem,
    })
}

fn split(answer: &str) -> std::result::Result<(String, String, Level), AnswerProblem> {
    let (description, conclusion, level) =
        biqa_metrics::split_conclusion(answer).ok_or(AnswerProblem::NoLevelStated)?;
    if description.is_empty() {
        return Err(AnswerProblem::OnlyConclusion);
    }
    Ok((description, conclusion, level))
}

/// The first answer of image record `r` (number `i`), split into `(description, conclusion, level)`; with
/// `only_conclusion_ok`, an answer that is only a conclusion is accepted (its description is empty).
fn record_answer(
    i: usize,
    r: &ConversationRecord,
    only_conclusion_ok: bool,
) -> Result<(String, String, Level)> {
    let bad = |problem| TrainError::Record {
        index: Some(i),
        id: r.id.clone(),
        problem,
    };
    let answer = r
        .conversations
        .iter()
        .find(|t| t.from == "gpt")
        .ok_or_else(|| bad(RecordProblem::NoAnswer))?;
    if r.image.is_none() {
        return Err(bad(RecordProblem::NoImage));
    }
    let parts = if only_conclusion_ok {
        biqa_metrics::split_conclusion(&answer.value).ok_or(AnswerProblem::NoLevelStated)
    } else {
        split(&answer.value)
    };
    parts.map_err(|problem| {
        bad(RecordProblem::Answer {
            answer: answer.value.clone(),
            problem,
        })
    })
}

/// The answer of a Q-Align record stating `level`.
pub fn direct_answer(level: Level) -> String {
    format!("The quality of the image is {}.", level.word())
}

/// Derives Q-Align records from one-stage records: the same image, the question
/// [`biqa_core::prompts::DIRECT_PROMPT`], and as the only answer "The quality of the image is WORD." with the level
/// the record's answer concludes with (the last sentence stating one). Multi-turn records keep their first
/// exchange.
///
/// # Errors
/// [`TrainError::Record`] for a record without an image or answer, or whose answer states no level.
pub fn direct_records(records: &[ConversationRecord]) -> Result<Vec<ConversationRecord>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (_, _, level) = record_answer(i, r, true)?;
            Ok(ConversationRecord {
                id: r.id.clone(),
                image: r.image.clone(),
                conversations: vec![
                    Turn {
                        from: "human".into(),
                        value: format!("{IMAGE_TOKEN}\n{DIRECT_PROMPT}"),
                    },
                    Turn {
                        from: "gpt".into(),
                        value: direct_answer(level),
                    },
                ],
                gt_score: r.gt_score,
            })
        })
        .collect()
}

/// Derives the two stages' records from one-stage records (image + question → description + conclusion):
/// stage 1 asks for the description of the image, stage 2 gives the description as text and asks for the
/// quality (the prompts of [`biqa_data`]'s synthetic set). Multi-turn records keep only their first exchange.
///
/// # Errors
/// [`TrainError::Record`] for a record without an image or answer, or whose answer [`split_answer`] cannot split.
pub fn two_stage_records(
    records: &[ConversationRecord],
) -> Result<(Vec<ConversationRecord>, Vec<ConversationRecord>)> {
    let mut s1 = Vec::with_capacity(records.len());
    let mut s2 = Vec::with_capacity(records.len());
    let turn = |from: &str, value: String| Turn {
        from: from.to_owned(),
        value,
    };
    for (i, r) in records.iter().enumerate() {
        let (description, conclusion, _) = record_answer(i, r, false)?;
        s1.push(ConversationRecord {
            id: r.id.clone(),
            image: r.image.clone(),
            conversations: vec![
                turn("human", format!("{IMAGE_TOKEN}\n{STAGE1_PROMPT}")),
                turn("gpt", description.clone()),
            ],
            gt_score: r.gt_score,
        });
        s2.push(ConversationRecord {
            id: format!("{}#stage2", r.id),
            image: None,
            conversations: vec![
                turn(
                    "human",
                    format!("{STAGE2_PROMPT}\n{description}\n{STAGE2_QUESTION}"),
                ),
                turn("gpt", conclusion),
            ],
            gt_score: r.gt_score,
        });
    }
    Ok((s1, s2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conclusion_is_the_last_sentence_stating_a_level() -> Result<()> {
        let (d, c, l) = split_answer(
            "The image is slightly blurry. Noise is faint. Therefore, the quality of the image is poor.",
        )?;
        assert_eq!(d, "The image is slightly blurry. Noise is faint.");
        assert_eq!(c, "Therefore, the quality of the image is poor.");
        assert_eq!(l, Level::Poor);
        // A level word earlier ("good exposure") does not make the conclusion; a trailing remark stays in the
        // description; a negated level is no conclusion; decimals do not end sentences.
        let (d, c, l) = split_answer(
            "Exposure is good. Sharpness is 2.5 px off, overall the quality is fair! It is not bad at all",
        )?;
        assert_eq!(c, "Sharpness is 2.5 px off, overall the quality is fair!");
        assert_eq!(d, "Exposure is good. It is not bad at all");
        assert_eq!(l, Level::Fair);
        assert!(matches!(
            split_answer("Sharp and clean, nothing more."),
            Err(TrainError::UnsplittableAnswer {
                problem: AnswerProblem::NoLevelStated,
                ..
            })
        ));
        assert!(matches!(
            split_answer("The quality is excellent."),
            Err(TrainError::UnsplittableAnswer {
                problem: AnswerProblem::OnlyConclusion,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn two_stage_records_from_one_stage() -> Result<()> {
        let r = ConversationRecord {
            id: "a.png->3".into(),
            image: Some("a.png".into()),
            conversations: vec![
                Turn {
                    from: "human".into(),
                    value: "<|image|>\nq".into(),
                },
                Turn {
                    from: "gpt".into(),
                    value: "Blurry edges. Therefore, the quality of the image is bad.".into(),
                },
            ],
            gt_score: Some(3.0),
        };
        let (s1, s2) = two_stage_records(std::slice::from_ref(&r))?;
        assert_eq!(s1[0].conversations[1].value, "Blurry edges.");
        assert!(s1[0].conversations[0].value.starts_with(IMAGE_TOKEN));
        assert_eq!(s2[0].image, None);
        assert!(s2[0].conversations[0].value.contains("Blurry edges."));
        assert_eq!(
            s2[0].conversations[1].value,
            "Therefore, the quality of the image is bad."
        );
        // A record that cannot be split is named by its index and id, with the typed problem.
        let mut text_only = r.clone();
        text_only.image = None;
        let e = two_stage_records(&[r, text_only]).err();
        assert!(
            matches!(
                &e,
                Some(TrainError::Record {
                    index: Some(1),
                    problem: RecordProblem::NoImage,
                    ..
                })
            ),
            "{e:?}"
        );
        let shown = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            shown.contains("record 1") && shown.contains("a.png->3"),
            "{shown}"
        );
        Ok(())
    }
}
