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
    pub eos_token_id: Option<EosTokenId>,
}

/// `eos_token_id` of a HF `config.json`: one id, or a list of ids in newer configs. Anything else (a string, a
/// negative number, a float, an id beyond `u32`) is a parse error naming the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "eos_token_id must be a token id (a non-negative integer) or a list of token ids"
)]
pub enum EosTokenId {
    /// One stop token.
    One(u32),
    /// Several stop tokens.
    Many(Vec<u32>),
}

impl EosTokenId {
    /// The ids, in order.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

fn default_act() -> String {
    "silu".to_string()
}

/// The largest vocabulary a config may claim (2²²; LLaMA-2 has 32 000).
pub const MAX_VOCAB: usize = 1 << 22;
/// The largest width (hidden size, heads, head width) a config may claim (2¹⁶; LLaMA-2-70B is 8 192 wide).
pub const MAX_WIDTH: usize = 1 << 16;
/// The most decoder layers a config may claim (LLaMA-2-70B has 80).
pub const MAX_LAYERS: usize = 1024;
/// The most positions the RoPE tables may cover (2²⁰; LLaMA-2 uses 4 096).
pub const MAX_POSITIONS: usize = 1 << 20;

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
        let text = biqa_core::read_text(path, biqa_core::CONFIG_LIMIT).map_err(|source| {
            DecoderError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        serde_json::from_str(&text).map_err(|e| DecoderError::ConfigParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The typed config.
    ///
    /// # Errors
    /// Unsupported options (another activation, biases, RoPE scaling) or an odd head width
    /// ([`DecoderError::InvalidConfig`]), inconsistent sizes ([`DecoderError::NotMultiple`]).
    pub fn to_config(&self) -> Result<LlamaConfig> {
        if self.hidden_act != "silu" {
            return Err(DecoderError::InvalidConfig {
                key: "hidden_act",
                value: format!("{:?}", self.hidden_act),
                reason: "not supported (silu)",
            });
        }
        for (key, on) in [
            ("attention_bias", self.attention_bias),
            ("mlp_bias", self.mlp_bias),
        ] {
            if on {
                return Err(DecoderError::InvalidConfig {
                    key,
                    value: "true".into(),
                    reason: "biases are not supported (LLaMA has none)",
                });
            }
        }
        for (key, rp) in [
            ("rope_parameters.rope_type", &self.rope_parameters),
            ("rope_scaling.rope_type", &self.rope_scaling),
        ] {
            if let Some(t) = rp.as_ref().and_then(|rp| rp.rope_type.as_ref())
                && t != "default"
            {
                return Err(DecoderError::InvalidConfig {
                    key,
                    value: format!("{t:?}"),
                    reason: "not supported (only default RoPE)",
                });
            }
        }
        let rope_theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let num_heads = self.num_attention_heads;
        if let Some(key) = [
            ("num_attention_heads", num_heads),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
        ]
        .into_iter()
        .find_map(|(key, v)| (v == 0).then_some(key))
        {
            return Err(DecoderError::InvalidConfig {
                key,
                value: "0".into(),
                reason: "sizes must be positive",
            });
        }
        let num_kv_heads = self.num_key_value_heads.unwrap_or(num_heads);
        if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(DecoderError::NotMultiple {
                key: "num_attention_heads",
                value: num_heads,
                divisor_key: "num_key_value_heads",
                divisor: num_kv_heads,
            });
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size.is_multiple_of(num_heads) => self.hidden_size / num_heads,
            None => {
                return Err(DecoderError::NotMultiple {
                    key: "hidden_size",
                    value: self.hidden_size,
                    divisor_key: "num_attention_heads",
                    divisor: num_heads,
                });
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(DecoderError::InvalidConfig {
                key: "head_dim",
                value: head_dim.to_string(),
                reason: "must be even for RoPE",
            });
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(DecoderError::InvalidConfig {
                key: "rms_norm_eps",
                value: self.rms_norm_eps.to_string(),
                reason: "must be positive and finite",
            });
        }
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(DecoderError::InvalidConfig {
                key: "rope_theta",
                value: rope_theta.to_string(),
                reason: "must be positive and finite",
            });
        }
        // Documented bounds (well above every released LLaMA), so that a claimed size never reaches an allocation.
        for (key, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH * 8),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", num_heads, MAX_WIDTH),
            ("head_dim", head_dim, MAX_WIDTH),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
        ] {
            if v > max {
                return Err(DecoderError::InvalidConfig {
                    key,
                    value: v.to_string(),
                    reason: "beyond the supported bound (see biqa_decoder::MAX_* constants)",
                });
            }
        }
        let eos_token_ids = self
            .eos_token_id
            .as_ref()
            .map_or_else(|| vec![2], EosTokenId::to_vec);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(eos: &str) -> std::result::Result<HfLlamaConfig, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                "num_attention_heads": 2, "rms_norm_eps": 1e-6, "max_position_embeddings": 64{eos}}}"#
        ))
    }

    #[test]
    fn eos_token_id_is_one_id_or_a_list() {
        let ids = |eos: &str| parse(eos).unwrap().to_config().unwrap().eos_token_ids;
        assert_eq!(ids(""), vec![2]);
        assert_eq!(ids(r#", "eos_token_id": null"#), vec![2]);
        assert_eq!(ids(r#", "eos_token_id": 7"#), vec![7]);
        assert_eq!(ids(r#", "eos_token_id": [2, 9]"#), vec![2, 9]);
        let c = parse(r#", "eos_token_id": [2, 9]"#).unwrap();
        assert_eq!(c.eos_token_id, Some(EosTokenId::Many(vec![2, 9])));
        let round: HfLlamaConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn malformed_eos_token_id_is_an_error_naming_the_key() {
        for bad in [
            "\"</s>\"",
            "-1",
            "2.5",
            "[2, -1]",
            "[\"a\"]",
            "4294967296",
            "{}",
        ] {
            let e = parse(&format!(r#", "eos_token_id": {bad}"#)).unwrap_err();
            assert!(e.to_string().contains("eos_token_id"), "{bad}: {e}");
        }
    }
}
