//! Seeded sampling and the generation loop (greedy, temperature, top-k, top-p; stop tokens; left-padded batches).

use burn::tensor::Tensor;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cache::KvCache;
use crate::error::{DecoderError, Result};
use crate::model::{DecoderInput, ForwardOptions, Llama, LogitsMode, Modality};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first one on ties, as `torch.argmax`).
    Greedy,
    /// Sampling from `softmax(logits / temperature)` after top-k and top-p filtering (HF's warper order).
    Sample {
        /// Temperature (> 0).
        temperature: f32,
        /// Keep only the k most likely tokens (ties with the k-th kept), if set.
        top_k: Option<usize>,
        /// Keep the smallest set of most likely tokens whose probability reaches `top_p`, if set (0 < p ≤ 1).
        top_p: Option<f32>,
    },
}

impl Sampling {
    /// Sampling from the CLI's parameters: temperature 0 means greedy.
    ///
    /// # Errors
    /// A negative or non-finite temperature, `top_p` outside (0, 1], or `top_k = 0`.
    pub fn from_params(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Result<Self> {
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(DecoderError::InvalidTemperature { value: temperature });
        }
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(DecoderError::InvalidTopP { value: p });
        }
        if top_k == Some(0) {
            return Err(DecoderError::InvalidTopK { value: 0 });
        }
        Ok(if temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature,
                top_k,
                top_p,
            }
        })
    }
}

/// A seeded token sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; the same seed gives the same tokens for the same logits.
    pub fn new(sampling: Sampling, seed: u64) -> Self {
        Self {
            sampling,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The tokens `sample` may return for `logits` (after top-k / top-p filtering; all for greedy: its argmax).
    pub fn allowed(&self, logits: &[f32]) -> Vec<usize> {
        match self.sampling {
            Sampling::Greedy => vec![argmax(logits)],
            Sampling::Sample {
                temperature,
                top_k,
                top_p,
            } => filtered(logits, temperature, top_k, top_p)
                .into_iter()
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// Picks the next token from one row of logits `[V]`.
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        match self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Sample {
                temperature,
                top_k,
                top_p,
            } => {
                let kept = filtered(logits, temperature, top_k, top_p);
                let u: f64 = self.rng.random::<f64>();
                let mut acc = 0.0;
                for &(i, p) in &kept {
                    acc += p;
                    if u < acc {
                        return i;
                    }
                }
                kept.last().map_or(0, |&(i, _)| i)
            }
        }
    }
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || (logits[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// The tokens surviving temperature, top-k and top-p, with their renormalised probabilities, most likely first.
fn filtered(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
) -> Vec<(usize, f64)> {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| f64::from(l) / f64::from(temperature))
        .collect();
    let mut order: Vec<usize> = (0..scaled.len()).filter(|&i| !scaled[i].is_nan()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]).then(a.cmp(&b)));
    if let Some(k) = top_k
        && k < order.len()
    {
        // HF: remove tokens whose score is below the k-th largest (ties with it survive).
        let kth = scaled[order[k - 1]];
        order.retain(|&i| scaled[i] >= kth);
    }
    let max = order.first().map_or(0.0, |&i| scaled[i]);
    let mut probs: Vec<f64> = order.iter().map(|&i| (scaled[i] - max).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= z);
    if let Some(p) = top_p {
        // HF: drop the tail whose cumulative probability (ascending) stays ≤ 1 − p; keep at least one token.
        let mut keep = order.len();
        let mut tail = 0.0;
        for j in (0..order.len()).rev() {
            tail += probs[j];
            if tail <= 1.0 - f64::from(p) && j > 0 {
                keep = j;
            } else {
                break;
            }
        }
        order.truncate(keep);
        probs.truncate(keep);
        let z: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= z);
    }
    order.into_iter().zip(probs).collect()
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Maximum number of new tokens per row.
    pub max_new_tokens: usize,
    /// A row stops after emitting one of these (e.g. `</s>` = 2).
    pub stop_tokens: Vec<u32>,
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// Seed of the sampler.
    pub seed: u64,
    /// Keep the logits behind every step (`[V]` per row and step).
    pub keep_logits: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            stop_tokens: vec![2],
            sampling: Sampling::Greedy,
            seed: 0,
            keep_logits: false,
        }
    }
}

/// A prepared prompt: embeddings of left-padded rows.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// `[B, L, H]`.
    pub embeds: Tensor<3>,
    /// Modality of each token.
    pub modality: Modality,
    /// Per row, the number of left padding positions (0 for none).
    pub left_padding: Vec<usize>,
}

impl Prompt {
    /// The forward input of the whole prompt: padding flags from `left_padding`, and HF's position ids for
    /// left-padded rows (`cumsum(mask) − 1`, 1 on padding).
    pub fn into_input(self) -> DecoderInput {
        let l = self.embeds.dims()[1];
        let padding = self
            .left_padding
            .iter()
            .flat_map(|&p| (0..l).map(move |j| j >= p))
            .collect();
        let positions = self
            .left_padding
            .iter()
            .flat_map(|&p| (0..l).map(move |j| if j >= p { (j - p) as i64 } else { 1 }))
            .collect();
        DecoderInput {
            embeds: self.embeds,
            modality: self.modality,
            positions: Some(positions),
            padding: Some(padding),
        }
    }
}

/// Why a row of [`Llama::generate`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// It emitted one of the stop tokens (`</s>`); the stop token is the last of its tokens.
    Eos,
    /// It generated `max_new_tokens` tokens.
    MaxTokens,
    /// Its next token would sit at a position outside the RoPE table (`max_position_embeddings`): the tokens
    /// generated so far are returned, no error.
    ContextFull,
}

/// What [`Llama::generate`] returns.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    /// Per row, the new tokens (including the stop token when one was emitted).
    pub tokens: Vec<Vec<u32>>,
    /// Per row, whether it ended on a stop token (`stop_reasons[r] == StopReason::Eos`).
    pub stopped: Vec<bool>,
    /// Per row, why it stopped.
    pub stop_reasons: Vec<StopReason>,
    /// Per row and step, the logits `[V]` behind the chosen token (when `keep_logits`).
    pub step_logits: Vec<Vec<Vec<f32>>>,
}

impl Llama {
    /// Generates from prepared embeddings. New tokens are text (modality 0), their positions continue each row's
    /// last position; rows that stopped are fed their stop token (pad) until every row is done. `on_step`
    /// receives each step's tokens (`None` for rows already done), for streaming. A row stops on a stop token
    /// ([`StopReason::Eos`]), after `max_new_tokens` ([`StopReason::MaxTokens`]), or when its next token would
    /// sit outside the RoPE table ([`StopReason::ContextFull`]): generation never runs past
    /// `max_position_embeddings`, it returns what it generated.
    ///
    /// # Errors
    /// Inconsistent prompt sizes, or a prompt longer than the RoPE table.
    pub fn generate(
        &self,
        prompt: Prompt,
        config: &GenerationConfig,
        mut on_step: impl FnMut(&[Option<u32>]),
    ) -> Result<Generation> {
        let [b, l, _] = prompt.embeds.dims();
        if prompt.left_padding.len() != b {
            return Err(DecoderError::LengthMismatch {
                input: "left_padding entries",
                expected: b,
                found: prompt.left_padding.len(),
                unit: "rows (one entry per row)",
            });
        }
        if let Some((row, &padding)) = prompt
            .left_padding
            .iter()
            .enumerate()
            .find(|&(_, &p)| p >= l)
        {
            return Err(DecoderError::PaddingTooLong {
                row,
                padding,
                len: l,
            });
        }
        let mut samplers: Vec<Sampler> = (0..b)
            .map(|r| Sampler::new(config.sampling, config.seed.wrapping_add(r as u64)))
            .collect();
        let mut next_pos: Vec<i64> = prompt
            .left_padding
            .iter()
            .map(|&p| (l - p) as i64)
            .collect();
        let mut cache = KvCache::new();
        let opts = ForwardOptions {
            logits: LogitsMode::Last,
            ..Default::default()
        };
        let input = prompt.into_input();
        let mut out = Generation {
            tokens: vec![Vec::new(); b],
            stopped: vec![false; b],
            stop_reasons: Vec::new(),
            step_logits: vec![Vec::new(); b],
        };
        // Per row, why it is done (`None` while it runs).
        let mut reasons: Vec<Option<StopReason>> = vec![None; b];
        let max_pos = self.config.max_position_embeddings as i64;
        let mut logits = self.forward(input, &mut cache, opts)?.logits;
        let v = self.config.vocab_size;
        for _ in 0..config.max_new_tokens {
            let Some(lg) = logits.take() else { break };
            let host: Vec<f32> =
                lg.into_data()
                    .try_to_vec_as::<f32>()
                    .map_err(|source| DecoderError::HostRead {
                        what: "logits",
                        source,
                    })?;
            let mut step = vec![None; b];
            let mut feed = Vec::with_capacity(b);
            for r in 0..b {
                let row = &host[r * v..(r + 1) * v];
                // The token sampled now would sit at `next_pos[r]`: outside the table, the row is full.
                if reasons[r].is_none() && next_pos[r] >= max_pos {
                    reasons[r] = Some(StopReason::ContextFull);
                }
                if reasons[r].is_some() {
                    feed.push(
                        *out.tokens[r]
                            .last()
                            .unwrap_or(&config.stop_tokens.first().copied().unwrap_or(0)),
                    );
                    continue;
                }
                let tok = samplers[r].sample(row) as u32;
                if config.keep_logits {
                    out.step_logits[r].push(row.to_vec());
                }
                out.tokens[r].push(tok);
                step[r] = Some(tok);
                if config.stop_tokens.contains(&tok) {
                    out.stopped[r] = true;
                    reasons[r] = Some(StopReason::Eos);
                } else if out.tokens[r].len() >= config.max_new_tokens {
                    reasons[r] = Some(StopReason::MaxTokens);
                } else if next_pos[r] + 1 >= max_pos {
                    // The token after this one would not fit: stop before feeding this one.
                    reasons[r] = Some(StopReason::ContextFull);
                }
                feed.push(tok);
            }
            on_step(&step);
            if reasons.iter().all(Option::is_some) {
                break;
            }
            // Done rows are fed their last token at a position that stays inside the table (their outputs are
            // never read); running rows advance.
            let positions: Vec<i64> = next_pos
                .iter()
                .map(|&p| p.min(max_pos - 1).max(0))
                .collect();
            let embeds = self.embed_ids(&feed.iter().map(|&t| vec![t]).collect::<Vec<_>>())?;
            let input = DecoderInput {
                embeds,
                modality: Modality::Text,
                positions: Some(positions),
                padding: None,
            };
            for (p, reason) in next_pos.iter_mut().zip(&reasons) {
                if reason.is_none() {
                    *p += 1;
                }
            }
            logits = self.forward(input, &mut cache, opts)?.logits;
        }
        out.stop_reasons = reasons
            .into_iter()
            .map(|r| r.unwrap_or(StopReason::MaxTokens))
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_filtering() {
        let logits = [1.0, 3.0, 2.0, 0.0, 3.0];
        let kept: Vec<usize> = filtered(&logits, 1.0, Some(2), None)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept, vec![1, 4]);
        let kept: Vec<usize> = filtered(&logits, 1.0, Some(3), None)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept, vec![1, 4, 2]);
        // top_p = 1 keeps everything; a tiny top_p keeps only the best.
        assert_eq!(filtered(&logits, 1.0, None, Some(1.0)).len(), 5);
        assert_eq!(filtered(&[0.0, 5.0, 1.0], 1.0, None, Some(0.01)).len(), 1);
        let total: f64 = filtered(&logits, 0.7, Some(4), Some(0.9))
            .iter()
            .map(|p| p.1)
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn params() {
        assert_eq!(
            Sampling::from_params(0.0, None, None).unwrap(),
            Sampling::Greedy
        );
        assert!(Sampling::from_params(-1.0, None, None).is_err());
        assert!(Sampling::from_params(1.0, None, Some(0.0)).is_err());
        assert!(Sampling::from_params(1.0, Some(0), None).is_err());
    }
}
