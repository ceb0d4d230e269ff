//! The LLaMA fields of a HF `config.json` and the typed runtime config built from them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DecoderError, Result};

/// `rope_parameters` of transformers ≥ 5 configs (`rope_scaling` of older ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfRopeParameters {
    /// RoPE base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE variant; only `default` (plain RoPE) is supported.
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
}

/// The LLaMA fields of a HF `config.json` (`LlamaConfig`, or the top level of `MPLUGOwl2Config`), as written.
/// Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfLlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base (transformers ≤ 4.x place it at the top level).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE settings (transformers ≥ 5).
    #[serde(default)]
    pub rope_parameters: Option<HfRopeParameters>,
    /// RoPE scaling (older configs); only `null` or the default type is supported.
    #[serde(default)]
    pub rope_scaling: Option<HfRopeParameters>,
    /// Positions the RoPE tables cover.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Activation of the MLP (`silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Bias on q/k/v/o (not supported: LLaMA has none).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the MLP (not supported: LLaMA has none).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id (an integer or a list in newer configs).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_act() -> String {
    "silu".to_string()
}

/// The typed decoder configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (`num_heads` for MHA).
    pub num_kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Positions the RoPE tables cover.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: u32,
    /// End-of-sequence token ids.
    pub eos_token_ids: Vec<u32>,
}

impl HfLlamaConfig {
    /// Reads the LLaMA fields of a `config.json`.
    ///
    /// # Errors
    /// Unreadable file, invalid JSON or a missing field (named).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| DecoderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| DecoderError::ConfigParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The typed config.
    ///
    /// # Errors
    /// Unsupported options (another activation, biases, RoPE scaling) or inconsistent sizes.
    pub fn to_config(&self) -> Result<LlamaConfig> {
        if self.hidden_act != "silu" {
            return Err(DecoderError::Config(format!(
                "hidden_act {:?} is not supported (silu)",
                self.hidden_act
            )));
        }
        if self.attention_bias || self.mlp_bias {
            return Err(DecoderError::Config(
                "attention_bias / mlp_bias are not supported".into(),
            ));
        }
        for rp in [&self.rope_parameters, &self.rope_scaling]
            .into_iter()
            .flatten()
        {
            if let Some(t) = &rp.rope_type
                && t != "default"
            {
                return Err(DecoderError::Config(format!(
                    "rope type {t:?} is not supported (only default RoPE)"
                )));
            }
        }
        let rope_theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let num_heads = self.num_attention_heads;
        if num_heads == 0
            || self.hidden_size == 0
            || self.num_hidden_layers == 0
            || self.vocab_size == 0
        {
            return Err(DecoderError::Config("sizes must be positive".into()));
        }
        let num_kv_heads = self.num_key_value_heads.unwrap_or(num_heads);
        if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(DecoderError::Config(format!(
                "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size.is_multiple_of(num_heads) => self.hidden_size / num_heads,
            None => {
                return Err(DecoderError::Config(format!(
                    "hidden_size {} is not a multiple of num_attention_heads {num_heads}",
                    self.hidden_size
                )));
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(DecoderError::Config(format!(
                "head_dim {head_dim} must be even for RoPE"
            )));
        }
        let eos_token_ids = match &self.eos_token_id {
            None => vec![2],
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|v| vec![v as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect(),
            Some(_) => Vec::new(),
        };
        Ok(LlamaConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id.unwrap_or(1),
            eos_token_ids,
        })
    }
}

impl LlamaConfig {
    /// Reads and validates the LLaMA fields of a `config.json`.
    ///
    /// # Errors
    /// As [`HfLlamaConfig::from_file`] and [`HfLlamaConfig::to_config`].
    pub fn from_file(path: &Path) -> Result<Self> {
        HfLlamaConfig::from_file(path)?.to_config()
    }

    /// LLaMA-2-7B (`meta-llama/Llama-2-7b-hf`): rms_norm_eps 1e-5, MHA 32/32, 4096 positions.
    pub fn llama2_7b() -> Self {
        Self {
            vocab_size: 32_000,
            hidden_size: 4096,
            intermediate_size: 11_008,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 32,
            head_dim: 128,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            max_position_embeddings: 4096,
            tie_word_embeddings: false,
            bos_token_id: 1,
            eos_token_ids: vec![2],
        }
    }

    /// The language model of mPLUG-Owl2-7B (`MAGAer13/mplug-owl2-llama2-7b`, `q-future/one-align`):
    /// rms_norm_eps 1e-6 and 2048 positions.
    pub fn mplug_owl2_7b() -> Self {
        Self {
            rms_norm_eps: 1e-6,
            max_position_embeddings: 2048,
            ..Self::llama2_7b()
        }
    }

    /// Query heads per key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
}
