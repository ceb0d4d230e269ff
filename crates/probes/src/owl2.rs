//! The probes applied to an mPLUG-Owl2 model ([`Owl2`]) the way the paper does: at the position that predicts the
//! quality word of the Q-Align prompt, and over a generated description.

use std::path::Path;

use biqa_decoder::{DecoderInput, ForwardOptions, GenerationConfig, KvCache, LogitsMode, Modality};
use biqa_model::{
    Assessment, Owl2, PipelineKind, ProbsAt, ScoringPrompt, Segment as ModelSegment,
    describe_prompt,
};
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

/// The token span `[start, end)` of the characters `chars` of `ids`' decoded text: a token belongs to the span when
/// the text decoded up to it ends inside it (prefix decodes, so multi-byte pieces and dropped spaces are handled
/// as the tokenizer decodes them).
fn token_span(m: &Owl2, ids: &[u32], chars: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let lens: Vec<usize> = (0..=ids.len())
        .map(|k| m.tokenizer().decode(&ids[..k], true).chars().count())
        .collect();
    let start = (0..ids.len())
        .find(|&k| lens[k + 1] > chars.start)
        .unwrap_or(ids.len());
    let end = (start..ids.len())
        .find(|&k| lens[k + 1] >= chars.end)
        .map_or(ids.len(), |k| k + 1);
    start..end
}

/// The character range of `needle` in `hay` (by chars), if present.
fn char_range(hay: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    let needle = needle.trim();
    if needle.is_empty() {
        return None;
    }
    let at = hay.find(needle)?;
    let start = hay[..at].chars().count();
    Some(start..start + needle.chars().count())
}

/// Relation estimation (the paper's Section 3.2 / Fig. 5) for one [`Assessment`]: the attention of the position
/// that produces the conclusion's level word (or, without one, the position after the conclusion probe) over the
/// segments of its context — `image` tokens, `prompt` text, the `description` (one-stage: the answer before its
/// conclusion sentence; two-stage: the description inside the text-only second prompt) and the `conclusion` so far
/// — averaged over heads and all layers. `image` is the assessed image (needed when the pass saw it).
///
/// # Errors
/// Model errors, or an assessment without passes.
pub fn answer_attention(
    m: &Owl2,
    image: Option<&Path>,
    a: &Assessment,
    conclusion_probe: &str,
) -> Result<AttentionMap> {
    let (prompt, segments, total) = answer_sequence(m, image, a, conclusion_probe)?;
    let out = m.net.forward(
        prompt.into_input(),
        &mut KvCache::new(),
        ForwardOptions {
            logits: LogitsMode::None,
            hidden_states: false,
            attentions: true,
        },
    )?;
    let atts = out
        .attentions
        .ok_or(ProbeError::MissingTrace { what: "attentions" })?;
    let layers: Vec<usize> = (0..atts.len()).collect();
    aggregate(&atts, &layers, 0, &[total - 1], segments)
}

/// The logit lens (the paper's Fig. 3 / Fig. 6) of one [`Assessment`] at the position that produces the
/// conclusion's level word (or, without one, the position after the conclusion probe): the same position and
/// context as [`answer_attention`], every decoder layer's hidden state read through the final norm and `lm_head`.
///
/// # Errors
/// Model errors, or an assessment without passes.
pub fn answer_lens(
    m: &Owl2,
    image: Option<&Path>,
    a: &Assessment,
    conclusion_probe: &str,
    config: &LensConfig,
) -> Result<LensResult> {
    let (prompt, _, total) = answer_sequence(m, image, a, conclusion_probe)?;
    let out = m.net.forward(
        prompt.into_input(),
        &mut KvCache::new(),
        ForwardOptions {
            logits: LogitsMode::None,
            hidden_states: true,
            attentions: false,
        },
    )?;
    let hs = out.hidden_states.ok_or(ProbeError::MissingTrace {
        what: "hidden_states",
    })?;
    let piece = |id: u32| m.tokenizer().decode(&[id], false);
    logit_lens(&m.net.llm, &hs, 0, total - 1, config, &piece)
}

/// The sequence of [`answer_attention`] and [`answer_lens`]: the conclusion pass's prompt (with its image), the
/// answer up to the level word (or the whole answer and the conclusion probe), its named segments, and its length.
fn answer_sequence(
    m: &Owl2,
    image: Option<&Path>,
    a: &Assessment,
    conclusion_probe: &str,
) -> Result<(biqa_decoder::Prompt, Vec<Segment>, usize)> {
    let pass_index = usize::from(a.pipeline == PipelineKind::TwoStage);
    let pass = a
        .passes
        .get(pass_index)
        .ok_or(ProbeError::NothingChosen { what: "pass" })?;
    let eos = m.net.llm.config.eos_token_ids.clone();
    let answer: Vec<u32> = match a.probs_at {
        ProbsAt::Answer { token, .. } => pass.token_ids[..token.min(pass.token_ids.len())].to_vec(),
        _ => pass
            .token_ids
            .iter()
            .copied()
            .filter(|t| !eos.contains(t))
            .collect(),
    };
    let probe: Vec<u32> = match a.probs_at {
        ProbsAt::Probe => m.tokenizer().encode(conclusion_probe, false),
        _ => Vec::new(),
    };
    // The prompt as the pass saw it: text ids, and the image slot where -200 stands.
    let mut row = Vec::new();
    let mut text: Vec<u32> = Vec::new();
    let mut has_image = false;
    for &id in &pass.prompt_ids {
        if id < 0 {
            if !text.is_empty() {
                row.push(ModelSegment::Text(std::mem::take(&mut text)));
            }
            row.push(ModelSegment::Image(0));
            has_image = true;
        } else {
            text.push(u32::try_from(id).unwrap_or(0));
        }
    }
    text.extend(&answer);
    text.extend(&probe);
    row.push(ModelSegment::Text(text));
    let images = match (has_image, image) {
        (true, Some(p)) => Some(m.encode_images(m.pixels(&[p])?)?),
        (true, None) => return Err(ProbeError::NothingChosen { what: "image" }),
        _ => None,
    };
    let image_tokens = images.as_ref().map_or(0, |t| t.dims()[1]);
    let prompt = m.prepare_segments(vec![row], images)?;
    // Segment names position by position.
    let mut names: Vec<&str> = Vec::new();
    let prompt_text_ids: Vec<u32> = pass
        .prompt_ids
        .iter()
        .filter(|&&i| i >= 0)
        .map(|&i| u32::try_from(i).unwrap_or(0))
        .collect();
    let description_in_prompt = match (a.pipeline, &a.description) {
        (PipelineKind::TwoStage, Some(d)) => {
            let decoded = m.tokenizer().decode(&prompt_text_ids, true);
            char_range(&decoded, d).map(|r| token_span(m, &prompt_text_ids, r))
        }
        _ => None,
    };
    let mut text_index = 0;
    for &id in &pass.prompt_ids {
        if id < 0 {
            names.extend(std::iter::repeat_n("image", image_tokens));
        } else {
            let in_desc = description_in_prompt
                .as_ref()
                .is_some_and(|r| r.contains(&text_index));
            names.push(if in_desc { "description" } else { "prompt" });
            text_index += 1;
        }
    }
    let answer_desc = match (a.pipeline, &a.description) {
        (PipelineKind::OneStage, Some(d)) => {
            let decoded = m.tokenizer().decode(&answer, true);
            char_range(&decoded, d).map(|r| token_span(m, &answer, r))
        }
        _ => None,
    };
    for k in 0..answer.len() {
        let in_desc = answer_desc.as_ref().is_some_and(|r| r.contains(&k));
        names.push(if in_desc { "description" } else { "conclusion" });
    }
    names.extend(std::iter::repeat_n("conclusion", probe.len()));
    let mut segments: Vec<Segment> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match segments.last_mut() {
            Some(s) if s.name == *n && s.end == i => s.end = i + 1,
            _ => segments.push(Segment {
                name: (*n).to_string(),
                start: i,
                end: i + 1,
            }),
        }
    }
    let total = names.len();
    Ok((prompt, segments, total))
}
