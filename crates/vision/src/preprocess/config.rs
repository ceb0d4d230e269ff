//! `preprocessor_config.json` of a `CLIPImageProcessor` (transformers), as a serde struct.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VisionError};

/// OpenAI CLIP's channel means (`OPENAI_CLIP_MEAN`), the default of `CLIPImageProcessor`.
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's channel standard deviations (`OPENAI_CLIP_STD`).
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// A size field of the config: an integer, `{"shortest_edge": n}` or `{"height": h, "width": w}`.
///
/// An integer means the shortest edge for `size` and a square for `crop_size` (transformers' `get_size_dict`
/// with `default_to_square=False` / `True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    /// A bare integer.
    Int(u32),
    /// `{"height": h, "width": w}`.
    HeightWidth {
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
    },
    /// `{"shortest_edge": n}`.
    ShortestEdge {
        /// Length of the shortest edge after resizing.
        shortest_edge: u32,
    },
}

/// `image_mean` / `image_std`: one value for all channels or one per channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelValues {
    /// The same value for R, G and B.
    Same(f64),
    /// One value per channel (exactly 3 for RGB).
    PerChannel(Vec<f64>),
}

impl ChannelValues {
    /// The three RGB values.
    ///
    /// # Errors
    /// [`VisionError::ChannelCount`] unless there are 1 or 3 values, [`VisionError::InvalidPreprocessorValue`]
    /// unless they are finite. `field` names the key in the error.
    pub fn rgb(&self, field: &'static str) -> Result<[f64; 3]> {
        let v = match self {
            Self::Same(v) => [*v; 3],
            Self::PerChannel(v) if v.len() == 3 => [v[0], v[1], v[2]],
            Self::PerChannel(v) if v.len() == 1 => [v[0]; 3],
            Self::PerChannel(v) => {
                return Err(VisionError::ChannelCount {
                    key: field,
                    found: v.len(),
                });
            }
        };
        if v.iter().any(|x| !x.is_finite()) {
            return Err(VisionError::InvalidPreprocessorValue {
                key: field,
                value: format!("{v:?}"),
                problem: "is not finite",
            });
        }
        Ok(v)
    }
}

fn yes() -> bool {
    true
}
fn default_size() -> SizeSpec {
    SizeSpec::ShortestEdge { shortest_edge: 224 }
}
fn default_crop() -> SizeSpec {
    SizeSpec::HeightWidth {
        height: 224,
        width: 224,
    }
}
fn default_resample() -> i64 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn default_mean() -> ChannelValues {
    ChannelValues::PerChannel(CLIP_MEAN.to_vec())
}
fn default_std() -> ChannelValues {
    ChannelValues::PerChannel(CLIP_STD.to_vec())
}

/// The fields of a `CLIPImageProcessor`'s `preprocessor_config.json`, with transformers' defaults for missing
/// ones (unknown fields are ignored).
///
/// ```
/// let cfg: biqa_vision::PreprocessorConfig = serde_json::from_str(
///     r#"{"size": 448, "crop_size": 448, "resample": 3, "image_mean": [0.48145466, 0.4578275, 0.40821073],
///         "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
/// ).unwrap();
/// assert_eq!(cfg.size, biqa_vision::SizeSpec::Int(448));
/// assert!(cfg.do_center_crop);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessorConfig {
    /// Resize at all (`do_resize`, default true).
    #[serde(default = "yes")]
    pub do_resize: bool,
    /// Target size (`size`, default `{"shortest_edge": 224}`).
    #[serde(default = "default_size")]
    pub size: SizeSpec,
    /// Pillow resample code (`resample`, default 3 = bicubic).
    #[serde(default = "default_resample")]
    pub resample: i64,
    /// Center crop after resizing (`do_center_crop`, default true).
    #[serde(default = "yes")]
    pub do_center_crop: bool,
    /// Crop size (`crop_size`, default 224 × 224).
    #[serde(default = "default_crop")]
    pub crop_size: SizeSpec,
    /// Multiply by `rescale_factor` (`do_rescale`, default true).
    #[serde(default = "yes")]
    pub do_rescale: bool,
    /// The rescale factor (`rescale_factor`, default 1/255).
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    /// Subtract the mean and divide by the std (`do_normalize`, default true).
    #[serde(default = "yes")]
    pub do_normalize: bool,
    /// Channel means (`image_mean`, default CLIP's).
    #[serde(default = "default_mean")]
    pub image_mean: ChannelValues,
    /// Channel standard deviations (`image_std`, default CLIP's).
    #[serde(default = "default_std")]
    pub image_std: ChannelValues,
    /// Convert to RGB first (`do_convert_rgb`, default true; images are always converted here).
    #[serde(default = "yes")]
    pub do_convert_rgb: bool,
    /// `feature_extractor_type`, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_extractor_type: Option<String>,
    /// `image_processor_type`, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_processor_type: Option<String>,
}

impl Default for PreprocessorConfig {
    /// transformers' `CLIPImageProcessor()` defaults (224, bicubic, CLIP mean/std).
    fn default() -> Self {
        Self {
            do_resize: true,
            size: default_size(),
            resample: default_resample(),
            do_center_crop: true,
            crop_size: default_crop(),
            do_rescale: true,
            rescale_factor: default_rescale(),
            do_normalize: true,
            image_mean: default_mean(),
            image_std: default_std(),
            do_convert_rgb: true,
            feature_extractor_type: None,
            image_processor_type: None,
        }
    }
}

impl PreprocessorConfig {
    /// Parses a config from JSON text.
    ///
    /// # Errors
    /// [`VisionError::ConfigParse`] (named `<string>`).
    pub fn from_json_str(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|source| VisionError::ConfigParse {
            path: "<string>".into(),
            reason: source.to_string(),
        })
    }

    /// Reads `preprocessor_config.json`.
    ///
    /// # Errors
    /// [`VisionError::Io`] or [`VisionError::ConfigParse`], naming the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = biqa_core::read_text(path, biqa_core::CONFIG_LIMIT).map_err(|source| {
            VisionError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        serde_json::from_str(&text).map_err(|source| VisionError::ConfigParse {
            path: path.to_path_buf(),
            reason: source.to_string(),
        })
    }
}
