//! The whole `config.json` of an mPLUG-Owl2 checkpoint ([`HfOwl2Config`]: the LLaMA fields at the top level,
//! `visual_config`, `image_aspect_ratio`), parsed once per load, and the validated runtime config ([`Owl2Config`])
//! that every part of the network is built from. A plain `LlamaForCausalLM` config is the same file without
//! `visual_config`.

use std::path::Path;

use biqa_decoder::{HfLlamaConfig, LlamaConfig};
use biqa_vision::{AbstractorConfig, HfVisualConfig, ResizeMode, VisionConfig};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The text of a configuration file of a checkpoint directory (`config.json`, `biqa_prompts.json`), read up to
/// [`biqa_core::CONFIG_LIMIT`].
///
/// # Errors
/// [`ModelError::Io`] naming the file: unreadable, not UTF-8, or longer than the limit.
pub(crate) fn read_config_text(path: &Path) -> Result<String> {
    biqa_core::read_text(path, biqa_core::CONFIG_LIMIT).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// How the released code brings an image to the tower's square input (`config.json`'s `image_aspect_ratio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAspectRatio {
    /// `pad`: expand to a square with the mean colour, then resize (Q-Align / OneAlign).
    Pad,
    /// Anything else (`resize`, absent): resize to the square directly (the mPLUG-Owl2 demo).
    #[serde(other)]
    Resize,
}

/// A serde mirror of mPLUG-Owl2's `config.json` (`MPLUGOwl2Config`), as written: the LLaMA fields at the top level,
/// the vision half under `visual_config`. Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfOwl2Config {
    /// The LLaMA fields (`LlamaConfig`).
    #[serde(flatten)]
    pub llama: HfLlamaConfig,
    /// `visual_config` (`visual_model` + `visual_abstractor`); absent for a plain LLaMA.
    #[serde(default)]
    pub visual_config: Option<HfVisualConfig>,
    /// `image_aspect_ratio`.
    #[serde(default)]
    pub image_aspect_ratio: Option<ImageAspectRatio>,
}

/// The vision half of the runtime config.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualConfig {
    /// The ViT.
    pub tower: VisionConfig,
    /// The visual abstractor (its output width is the LLM's).
    pub abstractor: AbstractorConfig,
}

/// The validated runtime config of the composed network.
#[derive(Debug, Clone, PartialEq)]
pub struct Owl2Config {
    /// The decoder.
    pub llm: LlamaConfig,
    /// The vision half (`None` for a plain LLaMA).
    pub vision: Option<VisualConfig>,
    /// The released preprocessing (from `image_aspect_ratio`).
    pub resize_mode: ResizeMode,
}

impl HfOwl2Config {
    /// Reads and parses `config.json` once.
    ///
    /// # Errors
    /// [`ModelError::Io`] for an unreadable file, [`ModelError::ConfigParse`] for invalid JSON or a missing /
    /// mistyped key (located by line and column).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_json(&read_config_text(path)?, path)
    }

    /// Parses the text of a `config.json` (`path` names it in errors).
    ///
    /// # Errors
    /// As [`HfOwl2Config::from_file`].
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let parse = |e: serde_json::Error| ModelError::ConfigParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        match serde_json::from_str::<Self>(text) {
            Ok(c) => Ok(c),
            // `flatten` buffers the top level, so serde reports a mistyped LLaMA key at the end of the object;
            // the LLaMA mirror alone (read only on this error path) locates it at the key.
            Err(e) => Err(parse(
                serde_json::from_str::<HfLlamaConfig>(text)
                    .err()
                    .filter(|_| !e.to_string().contains("visual_config"))
                    .unwrap_or(e),
            )),
        }
    }

    /// The validated runtime config.
    ///
    /// # Errors
    /// Unsupported or inconsistent settings (decoder or vision errors, naming the key).
    pub fn to_config(&self) -> Result<Owl2Config> {
        let llm = self.llama.to_config()?;
        let vision = match &self.visual_config {
            Some(v) => {
                let tower = v.visual_model.to_config()?;
                let abstractor = v
                    .visual_abstractor
                    .to_config(tower.grid(), llm.hidden_size)?;
                Some(VisualConfig { tower, abstractor })
            }
            None => None,
        };
        Ok(Owl2Config {
            llm,
            vision,
            resize_mode: match self.image_aspect_ratio {
                Some(ImageAspectRatio::Pad) => ResizeMode::Pad,
                _ => ResizeMode::Resize,
            },
        })
    }
}

impl Owl2Config {
    /// Reads `config.json` once and validates it.
    ///
    /// # Errors
    /// As [`HfOwl2Config::from_file`] and [`HfOwl2Config::to_config`].
    pub fn from_file(path: &Path) -> Result<Self> {
        HfOwl2Config::from_file(path)?.to_config()
    }

    /// Whether the decoder is modality-adaptive (an mPLUG-Owl2 with a vision half).
    pub fn multiway(&self) -> bool {
        self.vision.is_some()
    }

    /// The number of image tokens per image (`Q + 1`), or `None` without a vision half.
    pub fn image_tokens(&self) -> Option<usize> {
        self.vision.as_ref().map(|v| v.abstractor.num_queries + 1)
    }
}
