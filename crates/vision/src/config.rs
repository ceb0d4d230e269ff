//! The vision half's configuration: serde mirrors of `visual_config` in an mPLUG-Owl2 `config.json`
//! ([`HfVisualConfig`] with [`HfVisionConfig`] and [`HfAbstractorConfig`], as written) and the validated runtime
//! configs built from them ([`VisionConfig`], [`AbstractorConfig`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VisionError};

/// Config section of the vision tower, as named in errors.
const VISUAL_MODEL: &str = "visual_config.visual_model";
/// Config section of the abstractor, as named in errors.
const VISUAL_ABSTRACTOR: &str = "visual_config.visual_abstractor";

/// `visual_config` of an mPLUG-Owl2 `config.json`, as written (unknown keys ignored).
///
/// Deserialisable from a [`serde_json::Value`] or as a field of a larger serde struct (e.g.
/// `visual_config: Option<HfVisualConfig>` of a whole-config mirror); [`HfVisualConfig::from_json`] parses it
/// naming the section at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfVisualConfig {
    /// `visual_config.visual_model`: the vision tower.
    pub visual_model: HfVisionConfig,
    /// `visual_config.visual_abstractor`: the visual abstractor.
    pub visual_abstractor: HfAbstractorConfig,
}

/// `visual_config.visual_model` of an mPLUG-Owl2 `config.json`, as written (unknown keys ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfVisionConfig {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Number of heads.
    pub num_attention_heads: usize,
    /// Input resolution (square).
    pub image_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// LayerNorm epsilon (pre-LN, blocks, post-LN).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation (`quick_gelu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Input channels.
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    /// Whether a CLS token is prepended (true in every released checkpoint).
    #[serde(default = "yes")]
    pub use_cls_token: bool,
    /// Whether the post-LayerNorm is applied (true in every released checkpoint).
    #[serde(default = "yes")]
    pub use_post_layernorm: bool,
}

/// `visual_config.visual_abstractor` of an mPLUG-Owl2 `config.json`, as written (unknown keys ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfAbstractorConfig {
    /// Width of the query stream.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Number of heads.
    pub num_attention_heads: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Learned queries.
    pub num_learnable_queries: usize,
    /// Width of the ViT features (must equal `hidden_size`).
    pub encoder_hidden_size: usize,
    /// eps of `ffn_ln`.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// ViT patches per side (for the 2-D position table).
    #[serde(default)]
    pub grid_size: Option<usize>,
    /// Whether the extra value-to-text position parameters exist (false in every released checkpoint).
    #[serde(default)]
    pub add_v2t_pos_emb: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_channels() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// The typed vision-tower configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// Input resolution.
    pub image_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Input channels.
    pub num_channels: usize,
}

/// The typed abstractor configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbstractorConfig {
    /// Width of the query stream (= the ViT width).
    pub hidden_size: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Number of heads.
    pub num_heads: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Learned queries.
    pub num_queries: usize,
    /// ViT patches per side.
    pub grid_size: usize,
    /// eps of `ffn_ln`.
    pub layer_norm_eps: f64,
    /// Output width (the LLM's hidden size): `visual_fc` and `vit_eos`.
    pub output_size: usize,
}

impl HfVisualConfig {
    /// Parses the `visual_config` object of the `config.json` at `path` (used in errors only), naming the
    /// section at fault.
    ///
    /// # Errors
    /// [`VisionError::MissingConfigSection`] for a missing `visual_model` / `visual_abstractor`,
    /// [`VisionError::ConfigParse`] for a missing or mistyped field (named with its section).
    pub fn from_json(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let section = |key: &'static str, full: &'static str| {
            value
                .get(key)
                .ok_or_else(|| VisionError::MissingConfigSection {
                    path: path.to_path_buf(),
                    key: full,
                })
        };
        let parse = |full: &'static str, e: serde_json::Error| VisionError::ConfigParse {
            path: path.to_path_buf(),
            reason: format!("{full}: {e}"),
        };
        let vm = section("visual_model", VISUAL_MODEL)?;
        let va = section("visual_abstractor", VISUAL_ABSTRACTOR)?;
        Ok(Self {
            visual_model: serde_json::from_value(vm.clone()).map_err(|e| parse(VISUAL_MODEL, e))?,
            visual_abstractor: serde_json::from_value(va.clone())
                .map_err(|e| parse(VISUAL_ABSTRACTOR, e))?,
        })
    }

    /// Both typed configs: the tower's, then the abstractor's writing into an LLM of width `llm_hidden`.
    ///
    /// # Errors
    /// As [`HfVisionConfig::to_config`] and [`HfAbstractorConfig::to_config`].
    pub fn to_configs(&self, llm_hidden: usize) -> Result<(VisionConfig, AbstractorConfig)> {
        let vision = self.visual_model.to_config()?;
        let abstractor = self
            .visual_abstractor
            .to_config(vision.grid(), llm_hidden)?;
        Ok((vision, abstractor))
    }
}

impl HfVisionConfig {
    /// The typed config.
    ///
    /// # Errors
    /// Unsupported options ([`VisionError::UnsupportedConfig`]) or inconsistent sizes
    /// ([`VisionError::NotMultiple`]).
    pub fn to_config(&self) -> Result<VisionConfig> {
        if self.hidden_act != "quick_gelu" {
            return Err(VisionError::UnsupportedConfig {
                section: VISUAL_MODEL,
                key: "hidden_act",
                value: format!("{:?}", self.hidden_act),
                supported: "quick_gelu",
            });
        }
        for (key, on) in [
            ("use_cls_token", self.use_cls_token),
            ("use_post_layernorm", self.use_post_layernorm),
        ] {
            if !on {
                return Err(VisionError::UnsupportedConfig {
                    section: VISUAL_MODEL,
                    key,
                    value: "false".into(),
                    supported: "true; the Qwen variant without CLS token and post-LayerNorm is not",
                });
            }
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(VisionError::NotMultiple {
                section: VISUAL_MODEL,
                key: "hidden_size",
                value: self.hidden_size,
                divisor_key: "num_attention_heads",
                divisor: self.num_attention_heads,
            });
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(VisionError::NotMultiple {
                section: VISUAL_MODEL,
                key: "image_size",
                value: self.image_size,
                divisor_key: "patch_size",
                divisor: self.patch_size,
            });
        }
        Ok(VisionConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            image_size: self.image_size,
            patch_size: self.patch_size,
            layer_norm_eps: self.layer_norm_eps,
            num_channels: self.num_channels,
        })
    }
}

impl HfAbstractorConfig {
    /// The typed config; `grid_size` falls back to the ViT's, `output_size` is the LLM's hidden size.
    ///
    /// # Errors
    /// Inconsistent sizes ([`VisionError::ConfigMismatch`], [`VisionError::NotMultiple`]) or unsupported options
    /// ([`VisionError::UnsupportedConfig`]).
    pub fn to_config(&self, vit_grid: usize, llm_hidden: usize) -> Result<AbstractorConfig> {
        if self.encoder_hidden_size != self.hidden_size {
            return Err(VisionError::ConfigMismatch {
                section: VISUAL_ABSTRACTOR,
                key: "encoder_hidden_size",
                found: self.encoder_hidden_size,
                expected_key: "hidden_size",
                expected: self.hidden_size,
            });
        }
        if self.add_v2t_pos_emb {
            return Err(VisionError::UnsupportedConfig {
                section: VISUAL_ABSTRACTOR,
                key: "add_v2t_pos_emb",
                value: "true".into(),
                supported: "false",
            });
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(VisionError::NotMultiple {
                section: VISUAL_ABSTRACTOR,
                key: "hidden_size",
                value: self.hidden_size,
                divisor_key: "num_attention_heads",
                divisor: self.num_attention_heads,
            });
        }
        if !self.hidden_size.is_multiple_of(4) {
            return Err(VisionError::NotMultiple {
                section: VISUAL_ABSTRACTOR,
                key: "hidden_size",
                value: self.hidden_size,
                divisor_key: "the 2-D sin-cos position table's",
                divisor: 4,
            });
        }
        let grid_size = self.grid_size.unwrap_or(vit_grid);
        if grid_size != vit_grid {
            return Err(VisionError::ConfigMismatch {
                section: VISUAL_ABSTRACTOR,
                key: "grid_size",
                found: grid_size,
                expected_key: "the ViT's patches per side",
                expected: vit_grid,
            });
        }
        Ok(AbstractorConfig {
            hidden_size: self.hidden_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            num_queries: self.num_learnable_queries,
            grid_size,
            layer_norm_eps: self.layer_norm_eps,
            output_size: llm_hidden,
        })
    }
}

impl VisionConfig {
    /// ViT-L/14 at 448 px, as in `mplug-owl2-llama2-7b`: 1024 wide, 24 layers, 16 heads, MLP 4096, eps 1e-6.
    pub fn vit_l14_448() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_layers: 24,
            num_heads: 16,
            image_size: 448,
            patch_size: 14,
            layer_norm_eps: 1e-6,
            num_channels: 3,
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: 1 (CLS) + grid².
    pub fn seq_len(&self) -> usize {
        1 + self.grid() * self.grid()
    }
}

impl AbstractorConfig {
    /// The released abstractor: 1024 wide, 6 layers, 16 heads, SwiGLU 2816, 64 queries, grid 32, into 4096.
    pub fn owl2_7b() -> Self {
        Self {
            hidden_size: 1024,
            num_layers: 6,
            num_heads: 16,
            intermediate_size: 2816,
            num_queries: 64,
            grid_size: 32,
            layer_norm_eps: 1e-6,
            output_size: 4096,
        }
    }
}

/// Reads `visual_config.visual_model` and `visual_config.visual_abstractor` of an mPLUG-Owl2 `config.json`.
///
/// # Errors
/// Unreadable file ([`VisionError::Io`]), invalid JSON ([`VisionError::ConfigParse`]), a missing `visual_config`
/// or section ([`VisionError::MissingConfigSection`]), or a missing or mistyped field (named, as
/// [`HfVisualConfig::from_json`]).
pub fn read_visual_config(path: &Path) -> Result<(HfVisionConfig, HfAbstractorConfig)> {
    let text =
        biqa_core::read_text(path, biqa_core::CONFIG_LIMIT).map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| VisionError::ConfigParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let vc = json
        .get("visual_config")
        .ok_or_else(|| VisionError::MissingConfigSection {
            path: path.to_path_buf(),
            key: "visual_config",
        })?;
    let visual = HfVisualConfig::from_json(vc, path)?;
    Ok((visual.visual_model, visual.visual_abstractor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visual_json() -> serde_json::Value {
        serde_json::json!({
            "visual_model": {
                "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "image_size": 28, "patch_size": 14
            },
            "visual_abstractor": {
                "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                "intermediate_size": 48, "num_learnable_queries": 4, "encoder_hidden_size": 32
            }
        })
    }

    #[test]
    fn visual_config_is_a_serde_field() {
        #[derive(Deserialize)]
        struct Whole {
            #[serde(default)]
            visual_config: Option<HfVisualConfig>,
        }
        let whole: Whole =
            serde_json::from_value(serde_json::json!({ "visual_config": visual_json() })).unwrap();
        let visual = whole.visual_config.unwrap();
        assert_eq!(
            visual,
            HfVisualConfig::from_json(&visual_json(), Path::new("config.json")).unwrap()
        );
        let (v, a) = visual.to_configs(96).unwrap();
        assert_eq!((v.grid(), a.grid_size, a.output_size), (2, 2, 96));
        let round: HfVisualConfig =
            serde_json::from_value(serde_json::to_value(&visual).unwrap()).unwrap();
        assert_eq!(round, visual);
        let none: Whole = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(none.visual_config.is_none());
    }

    #[test]
    fn errors_name_the_section_and_key() {
        let mut json = visual_json();
        json["visual_model"]
            .as_object_mut()
            .unwrap()
            .remove("patch_size");
        let e = HfVisualConfig::from_json(&json, Path::new("config.json")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("config.json")
                && msg.contains("visual_config.visual_model")
                && msg.contains("patch_size"),
            "{msg}"
        );
        let e = HfVisualConfig::from_json(&serde_json::json!({}), Path::new("config.json"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                VisionError::MissingConfigSection {
                    key: "visual_config.visual_model",
                    ..
                }
            ),
            "{e:?}"
        );
        let mut visual =
            HfVisualConfig::from_json(&visual_json(), Path::new("config.json")).unwrap();
        visual.visual_model.patch_size = 5;
        let e = visual.to_configs(96).unwrap_err();
        assert!(
            matches!(
                e,
                VisionError::NotMultiple {
                    key: "image_size",
                    value: 28,
                    divisor: 5,
                    ..
                }
            ),
            "{e:?}"
        );
        visual.visual_model.patch_size = 14;
        visual.visual_abstractor.grid_size = Some(3);
        let e = visual.to_configs(96).unwrap_err();
        assert!(e.to_string().contains("grid_size 3"), "{e}");
    }
}
