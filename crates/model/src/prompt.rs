//! Prompt templates as types: mPLUG-Owl2's conversation, Vicuna v1 (training), and the scoring prompts.

use biqa_vision::ResizeMode;
use serde::{Deserialize, Serialize};

/// The image placeholder of mPLUG-Owl2 prompts ([`biqa_core::IMAGE_TOKEN`]).
pub use biqa_core::IMAGE_TOKEN as IMAGE_PLACEHOLDER;

/// The system prompt of Vicuna v1 (`conv_vicuna_v1`), which the released training scripts use (`--version v1`).
pub const VICUNA_SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. The assistant \
                                 gives helpful, detailed, and polite answers to the user's questions.";

/// A conversation template (`conversation.py`): roles `USER` / `ASSISTANT`, separators `" "` and `"</s>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversation {
    /// `conv_mplug_owl2` (`TWO_NO_SYS`): no system prompt — inference.
    MplugOwl2,
    /// `conv_vicuna_v1` (`TWO`): the Vicuna system prompt then the turns — training.
    VicunaV1,
}

impl Conversation {
    /// The system prompt (empty for mPLUG-Owl2).
    pub fn system(self) -> &'static str {
        match self {
            Conversation::MplugOwl2 => "",
            Conversation::VicunaV1 => VICUNA_SYSTEM,
        }
    }

    /// Renders turns `(user, Some(assistant))`; a final `(user, None)` ends with `"ASSISTANT:"`, ready for
    /// generation. Finished assistant turns are followed by `</s>`.
    pub fn render(self, turns: &[(&str, Option<&str>)]) -> String {
        let mut out = String::new();
        if !self.system().is_empty() {
            out.push_str(self.system());
            out.push(' ');
        }
        for (user, assistant) in turns {
            out.push_str("USER: ");
            out.push_str(user);
            out.push_str(" ASSISTANT:");
            if let Some(a) = assistant {
                out.push(' ');
                out.push_str(a);
                out.push_str("</s>");
            }
        }
        out
    }
}

/// The prompt and answer words of a scoring method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoringPrompt {
    /// Q-Align's `scorer.py`: the next word after "The quality of the image is", over excellent / good / fair /
    /// poor / bad with weights 1, 0.75, 0.5, 0.25, 0.
    #[default]
    Qalign,
    /// The Q-Instruct scorer (`boost_qa/model.py`): the image first, over good / average / poor with weights 1,
    /// 0.5, 0.
    Qinstruct,
}

impl ScoringPrompt {
    /// The full prompt, with one image placeholder.
    pub fn text(self) -> &'static str {
        match self {
            ScoringPrompt::Qalign => {
                "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The quality of the image is"
            }
            ScoringPrompt::Qinstruct => {
                "USER: <|image|>Rate the quality of the image.\nASSISTANT: "
            }
        }
    }

    /// The preprocessing of the scorer's released code when it differs from the checkpoint's own: Q-Instruct's
    /// scorer (`CLIPImageProcessor`) resizes the shortest edge and center-crops; Q-Align keeps the checkpoint's
    /// (`image_aspect_ratio`, `None`). [`crate::Owl2::score_paths`] applies it.
    pub fn resize_mode(self) -> Option<ResizeMode> {
        match self {
            ScoringPrompt::Qalign => None,
            ScoringPrompt::Qinstruct => Some(ResizeMode::ShortestEdgeCenterCrop),
        }
    }

    /// The default answer words, best first.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            ScoringPrompt::Qalign => &["excellent", "good", "fair", "poor", "bad"],
            ScoringPrompt::Qinstruct => &["good", "average", "poor"],
        }
    }
}

impl std::str::FromStr for ScoringPrompt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "qalign" | "q-align" => Ok(ScoringPrompt::Qalign),
            "qinstruct" | "q-instruct" => Ok(ScoringPrompt::Qinstruct),
            other => Err(format!(
                "unknown scoring prompt {other:?} (qalign, qinstruct)"
            )),
        }
    }
}

/// The quality-description prompt: `USER: <|image|>Describe the quality of this image. ASSISTANT:`.
pub fn describe_prompt() -> String {
    Conversation::MplugOwl2.render(&[("<|image|>Describe the quality of this image.", None)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            describe_prompt(),
            "USER: <|image|>Describe the quality of this image. ASSISTANT:"
        );
        assert_eq!(
            Conversation::MplugOwl2.render(&[("hi", Some("The quality is good.")), ("and?", None)]),
            "USER: hi ASSISTANT: The quality is good.</s>USER: and? ASSISTANT:"
        );
        assert!(
            Conversation::VicunaV1
                .render(&[("q", None)])
                .starts_with("A chat between")
        );
        assert_eq!(
            "qinstruct".parse::<ScoringPrompt>().unwrap(),
            ScoringPrompt::Qinstruct
        );
    }
}
