//! The logit lens (nostalgebraist; `tuned-lens`'s `LogitLens`): decode each layer's hidden state through the final
//! norm and the head, as if the network stopped there (paper Fig. 3).

use biqa_decoder::Llama;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};

/// One candidate token at one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Its text (piece).
    pub text: String,
    /// Its probability.
    pub prob: f64,
}

/// The lens at one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerLens {
    /// HF hidden-state index: 0 = embeddings, i = after layer i − 1, the last = the model's own output.
    pub layer: usize,
    /// The top-k tokens, most likely first.
    pub top: Vec<Candidate>,
    /// Probability of each level word (full-vocabulary softmax).
    pub level_probs: Vec<f64>,
    /// Rank (0 = most likely) of each level word in the full vocabulary.
    pub level_ranks: Vec<usize>,
    /// Rank of the final prediction (the model's own top-1) at this layer.
    pub final_rank: usize,
    /// Entropy of the distribution, in nats.
    pub entropy: f64,
    /// KL(final ‖ this layer), in nats.
    pub kl_to_final: f64,
}

/// The lens at one position over the chosen layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LensResult {
    /// The position (in the expanded sequence) whose next-token prediction is decoded.
    pub position: usize,
    /// The model's own top-1 token at that position.
    pub final_token: u32,
    /// The level words, in the order of `level_probs`.
    pub level_words: Vec<String>,
    /// One entry per chosen layer, in layer order.
    pub layers: Vec<LayerLens>,
}

/// Settings of the lens.
#[derive(Debug, Clone)]
pub struct LensConfig {
    /// Hidden-state indices to decode (default: all).
    pub layers: Option<std::ops::RangeInclusive<usize>>,
    /// Candidates kept per layer.
    pub top_k: usize,
    /// Level words and their ids (e.g. Q-Align's excellent…bad).
    pub levels: Vec<(String, u32)>,
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    logits.iter().map(|&l| l as f64 - z).collect()
}

fn rank_of(logits: &[f32], id: usize) -> usize {
    let Some(&v) = logits.get(id) else {
        return logits.len();
    };
    logits
        .iter()
        .enumerate()
        .filter(|&(i, &l)| l > v || (l == v && i < id))
        .count()
}

/// Lens statistics of one row of logits `[V]`, given the final layer's log-probabilities.
pub fn layer_stats(
    layer: usize,
    logits: &[f32],
    final_logp: &[f64],
    final_token: u32,
    config: &LensConfig,
    piece: &dyn Fn(u32) -> String,
) -> LayerLens {
    let logp = log_softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let top = order
        .iter()
        .take(config.top_k)
        .map(|&i| Candidate {
            id: i as u32,
            text: piece(i as u32),
            prob: logp[i].exp(),
        })
        .collect();
    let entropy = -logp
        .iter()
        .map(|&l| l.exp() * l)
        .filter(|v| v.is_finite())
        .sum::<f64>();
    let kl = final_logp
        .iter()
        .zip(&logp)
        .map(|(&f, &q)| f.exp() * (f - q))
        .filter(|v| v.is_finite())
        .sum::<f64>();
    LayerLens {
        layer,
        top,
        level_probs: config
            .levels
            .iter()
            .map(|(_, id)| logp[*id as usize].exp())
            .collect(),
        level_ranks: config
            .levels
            .iter()
            .map(|(_, id)| rank_of(logits, *id as usize))
            .collect(),
        final_rank: rank_of(logits, final_token as usize),
        entropy,
        kl_to_final: kl.max(0.0),
    }
}

fn row_logits(t: Tensor<3>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|source| ProbeError::HostRead {
            what: "logits",
            source,
        })
}

/// Lens logits `[V]` of hidden state `index` at (`row`, `position`): `head(norm(h))`, except for the last hidden
/// state (HF convention: already normed), which goes through the head alone.
///
/// # Errors
/// Index, row or position out of range.
pub fn lens_logits(
    llm: &Llama,
    hidden_states: &[Tensor<3>],
    index: usize,
    row: usize,
    position: usize,
) -> Result<Vec<f32>> {
    let h = hidden_states
        .get(index)
        .ok_or_else(|| ProbeError::LayerOutOfRange {
            layer: index,
            layers: hidden_states.len(),
            what: "hidden states",
        })?;
    let [b, l, _] = h.dims();
    if row >= b {
        return Err(ProbeError::RowOutOfRange { row, rows: b });
    }
    if position >= l {
        return Err(ProbeError::PositionOutOfRange {
            what: "position",
            position,
            len: l,
        });
    }
    let x = h.clone().narrow(0, row, 1).narrow(1, position, 1);
    let logits = if index + 1 == hidden_states.len() {
        llm.head(x)
    } else {
        llm.unembed(x)
    };
    row_logits(logits)
}

/// The logit lens at (`row`, `position`) over `hidden_states` (HF convention, from a forward with
/// `hidden_states: true`). `piece` turns token ids into text.
///
/// # Errors
/// Empty traces, a layer range outside them, a row or position out of range, or a level id outside the vocabulary.
pub fn logit_lens(
    llm: &Llama,
    hidden_states: &[Tensor<3>],
    row: usize,
    position: usize,
    config: &LensConfig,
    piece: &dyn Fn(u32) -> String,
) -> Result<LensResult> {
    let n = hidden_states.len();
    if n == 0 {
        return Err(ProbeError::MissingTrace {
            what: "hidden_states",
        });
    }
    let layers = config.layers.clone().unwrap_or(0..=n - 1);
    if *layers.end() >= n || layers.is_empty() {
        return Err(ProbeError::LayerRange {
            start: *layers.start(),
            end: *layers.end(),
            last: n - 1,
        });
    }
    let vocab = llm.config.vocab_size;
    if let Some((w, id)) = config.levels.iter().find(|(_, id)| *id as usize >= vocab) {
        return Err(ProbeError::LevelIdOutOfVocab {
            word: w.clone(),
            id: *id,
            vocab,
        });
    }
    let final_logits = lens_logits(llm, hidden_states, n - 1, row, position)?;
    let final_logp = log_softmax(&final_logits);
    let final_token = (0..final_logits.len()).fold(0, |best, i| {
        if final_logits[i] > final_logits[best] {
            i
        } else {
            best
        }
    }) as u32;
    let mut out = Vec::new();
    for layer in layers {
        let logits = if layer == n - 1 {
            final_logits.clone()
        } else {
            lens_logits(llm, hidden_states, layer, row, position)?
        };
        out.push(layer_stats(
            layer,
            &logits,
            &final_logp,
            final_token,
            config,
            piece,
        ));
    }
    Ok(LensResult {
        position,
        final_token,
        level_words: config.levels.iter().map(|(w, _)| w.clone()).collect(),
        layers: out,
    })
}
