//! The probes applied to an mPLUG-Owl2 model ([`Owl2`]) the way the paper does: at the position that predicts the
//! quality word of the Q-Align prompt, and over a generated description.

use std::path::Path;

use biqa_decoder::{DecoderInput, ForwardOptions, GenerationConfig, KvCache, LogitsMode, Modality};
use biqa_model::{Owl2, ScoringPrompt, describe_prompt};
use burn::tensor::Tensor;

use crate::attention::{AttentionMap, Segment, aggregate, segments_from_modality};
use crate::error::{ProbeError, Result};
use crate::lens::{LensConfig, LensResult, logit_lens};

/// The conclusion appended after a generated description before asking for the quality word.
pub const CONCLUSION_PROMPT: &str = " Therefore, the quality of the image is";

/// Q-Align's level words with their token ids, as the lens and trajectories take them.
///
/// # Errors
/// A level word that is not a single token.
pub fn qalign_levels(m: &Owl2) -> Result<Vec<(String, u32)>> {
    let scorer = biqa_model::Scorer::new(m.tokenizer(), ScoringPrompt::Qalign, None)?;
    Ok(scorer.words.into_iter().zip(scorer.ids).collect())
}

/// The logit lens at the last position of the Q-Align prompt for one image (the position whose next token is the
/// quality word).
///
/// # Errors
/// Model errors (unreadable image, text-only model) or lens errors.
pub fn qalign_lens(m: &Owl2, image: &Path, config: &LensConfig) -> Result<LensResult> {
    let images = m.encode_images(m.pixels(&[image])?)?;
    let prompt = m.prepare(&[ScoringPrompt::Qalign.text().to_string()], Some(images))?;
    let len = prompt.embeds.dims()[1];
    let input = DecoderInput {
        modality: prompt.modality,
        ..DecoderInput::text(prompt.embeds)
    };
    let opts = ForwardOptions {
        logits: LogitsMode::None,
        hidden_states: true,
        attentions: false,
    };
    let out = m.net.forward(input, &mut KvCache::new(), opts)?;
    let hs = out.hidden_states.ok_or(ProbeError::MissingTrace {
        what: "hidden_states",
    })?;
    let piece = |id: u32| m.tokenizer().decode(&[id], false);
    logit_lens(&m.net.llm, &hs, 0, len - 1, config, &piece)
}

/// The sequence the attention probe runs on, with its bookkeeping.
#[derive(Debug, Clone)]
pub struct ProbeSequence {
    /// Embeddings `[1, T, H]`.
    pub embeds: Tensor<3>,
    /// Modality of every position.
    pub modality: Vec<u8>,
    /// Named segments tiling `0..T`.
    pub segments: Vec<Segment>,
    /// The query positions: the positions that generated each description token, then the last position (whose
    /// next token is the quality word).
    pub queries: Vec<usize>,
    /// The generated description ids (without `</s>`).
    pub description: Vec<u32>,
}

/// Builds the probe sequence for one image. Without `describe` it is the Q-Align prompt; with
/// `describe = Some(max_new_tokens)`, a greedy description is generated from the describe prompt, then
/// [`CONCLUSION_PROMPT`] is appended, the tokens placed directly (no re-tokenisation), so every segment is exact:
/// `prompt`, `image`, `prompt`, `description`, `conclusion`.
///
/// # Errors
/// Model errors.
pub fn probe_sequence(m: &Owl2, image: &Path, describe: Option<usize>) -> Result<ProbeSequence> {
    // The vision half runs once: its image tokens serve the description and the probed sequence alike.
    let images = m.encode_images(m.pixels(&[image])?)?;
    let eos = m.net.llm.config.eos_token_ids.clone();
    let (prompt_text, description) = match describe {
        Some(max_new_tokens) => {
            let config = GenerationConfig {
                max_new_tokens,
                stop_tokens: eos.clone(),
                ..Default::default()
            };
            let g =
                m.generate_encoded(&describe_prompt(), Some(images.clone()), &config, |_| {})?;
            let ids: Vec<u32> = g
                .token_ids
                .into_iter()
                .filter(|t| !eos.contains(t))
                .collect();
            (describe_prompt(), ids)
        }
        None => (ScoringPrompt::Qalign.text().to_string(), Vec::new()),
    };
    let prompt = m.prepare(&[prompt_text], Some(images))?;
    let mut modality = match &prompt.modality {
        Modality::PerToken(v) => v.clone(),
        Modality::Text => vec![0; prompt.embeds.dims()[1]],
        Modality::Image => vec![1; prompt.embeds.dims()[1]],
    };
    let prompt_len = modality.len();
    let tail = if describe.is_some() {
        m.tokenizer().encode(CONCLUSION_PROMPT, false)
    } else {
        Vec::new()
    };
    let extra: Vec<u32> = description.iter().chain(&tail).copied().collect();
    let mut pieces = vec![prompt.embeds];
    if !extra.is_empty() {
        pieces.push(m.net.llm.embed_ids(std::slice::from_ref(&extra))?);
    }
    modality.extend(std::iter::repeat_n(0u8, extra.len()));
    let total = modality.len();
    let mut segments = segments_from_modality(&modality[..prompt_len], 0, 0);
    let d_end = prompt_len + description.len();
    if !description.is_empty() {
        segments.push(Segment {
            name: "description".into(),
            start: prompt_len,
            end: d_end,
        });
    }
    if !tail.is_empty() {
        segments.push(Segment {
            name: "conclusion".into(),
            start: d_end,
            end: total,
        });
    }
    let mut queries: Vec<usize> = if description.is_empty() {
        Vec::new()
    } else {
        (prompt_len - 1..d_end - 1).collect()
    };
    queries.push(total - 1);
    Ok(ProbeSequence {
        embeds: Tensor::cat(pieces, 1),
        modality,
        segments,
        queries,
        description,
    })
}

/// The attention of the quality position (and of every description token) to the context, averaged over heads and
/// `layers`, for one image (see [`probe_sequence`]).
///
/// # Errors
/// Model or aggregation errors.
pub fn quality_attention(
    m: &Owl2,
    image: &Path,
    layers: &[usize],
    describe: Option<usize>,
) -> Result<AttentionMap> {
    let seq = probe_sequence(m, image, describe)?;
    let input = DecoderInput {
        embeds: seq.embeds,
        modality: Modality::PerToken(seq.modality),
        positions: None,
        padding: None,
    };
    let opts = ForwardOptions {
        logits: LogitsMode::None,
        hidden_states: false,
        attentions: true,
    };
    let out = m.net.forward(input, &mut KvCache::new(), opts)?;
    let atts = out
        .attentions
        .ok_or(ProbeError::MissingTrace { what: "attentions" })?;
    aggregate(&atts, layers, 0, &seq.queries, seq.segments)
}
