//! The inference handle [`Owl2`]: the network ([`Owl2Net`]) with its assets (tokenizer, preprocessing, config) as a
//! checkpoint directory exactly as released; image splicing, Q-Align scoring, quality descriptions and text
//! generation.

use std::path::{Path, PathBuf};

use biqa_checkpoint::{Checkpoint, FloatPolicy, Weights};
use biqa_decoder::{
    ForwardOptions, GenerationConfig, KvCache, LogitsMode, Modality, Prompt, StopReason,
};
use biqa_vision::{Preprocessor, ResizeMode};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{HfOwl2Config, Owl2Config};
use crate::error::{ModelError, Result};
use crate::net::{Owl2Net, PadFill, PaddingSide, Segment, pad_rows, segment_modality};
use crate::prompt::{ScoringPrompt, describe_prompt};
use crate::tokenizer::{PromptToken, Tokenizer};

/// How to load a checkpoint directory.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Parameter dtype (f32 on CPU; bf16 keeps the released weights at their precision on GPUs).
    pub policy: FloatPolicy,
    /// Image preprocessing; by default from `config.json`'s `image_aspect_ratio` (`pad` → [`ResizeMode::Pad`], as
    /// Q-Align / OneAlign; otherwise [`ResizeMode::Resize`], the mPLUG-Owl2 demo). A scoring prompt with a
    /// preprocessing of its own ([`ScoringPrompt::resize_mode`]) uses that one when scoring.
    pub resize_mode: Option<ResizeMode>,
}

/// What a checkpoint directory brings besides the parameters.
#[derive(Debug, Clone)]
pub struct Owl2Assets {
    /// The slow LLaMA tokenizer.
    pub tokenizer: Tokenizer,
    /// Image preprocessing (absent for a plain LLaMA).
    pub preprocessor: Option<Preprocessor>,
    /// The validated config the network was built from.
    pub config: Owl2Config,
    /// The directory it came from (config, tokenizer and preprocessor files are copied from it on export).
    pub dir: PathBuf,
}

/// An mPLUG-Owl2 (or plain LLaMA) checkpoint directory, loaded: the network and its assets.
#[derive(Debug)]
pub struct Owl2 {
    /// The network (vision tower, abstractor, decoder).
    pub net: Owl2Net,
    /// Tokenizer, preprocessing, config and source directory.
    pub assets: Owl2Assets,
}

/// The result of scoring one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResult {
    /// `softmax(level logits) · weights` with weights from 1 (best word) to 0 (worst): in [0, 1].
    pub score: f64,
    /// The same on [1, 5] (`1 + 4 · score`; Q-Align's HF `score()` weights 5…1).
    pub score_1_5: f64,
    /// The level words, best first.
    pub words: Vec<String>,
    /// Their probabilities (softmax over the level words only).
    pub probs: Vec<f64>,
    /// Their logits at the last position.
    pub level_logits: Vec<f32>,
}

/// A generated text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// Decoded text (special tokens skipped).
    pub text: String,
    /// The new token ids (a final `</s>` included when emitted).
    pub token_ids: Vec<u32>,
    /// Why generation stopped: a stop token (`"eos"`), `max_new_tokens` (`"max_tokens"`), or the end of the
    /// RoPE table (`"context_full"`, the text so far is kept).
    pub stop_reason: StopReason,
}

/// Level words resolved to single token ids, with their weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    /// The scoring prompt.
    pub prompt: ScoringPrompt,
    /// Level words, best first.
    pub words: Vec<String>,
    /// Their token ids.
    pub ids: Vec<u32>,
    /// Their weights on [0, 1], evenly spaced from 1 (first word) to 0 (last).
    pub weights: Vec<f64>,
}

impl Scorer {
    /// Resolves `words` (default: the prompt's) through the tokenizer as Q-Align does
    /// (`tokenizer(word).input_ids[1]`), rejecting a word that is not a single token.
    ///
    /// # Errors
    /// Fewer than two words, or a word that is not exactly one token.
    pub fn new(
        tokenizer: &Tokenizer,
        prompt: ScoringPrompt,
        words: Option<Vec<String>>,
    ) -> Result<Self> {
        let words: Vec<String> =
            words.unwrap_or_else(|| prompt.words().iter().map(|w| w.to_string()).collect());
        if words.len() < 2 {
            return Err(ModelError::TooFewLevelWords { got: words.len() });
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let ids = tokenizer.level_token_ids(&refs)?;
        let n = words.len();
        let weights = (0..n).map(|i| 1.0 - i as f64 / (n - 1) as f64).collect();
        Ok(Self {
            prompt,
            words,
            ids,
            weights,
        })
    }

    /// Scores one row of last-position logits `[V]`.
    pub fn score(&self, logits: &[f32]) -> ScoreResult {
        // An id beyond a (short) logits row counts as impossible rather than panicking.
        let level: Vec<f32> = self
            .ids
            .iter()
            .map(|&i| logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY))
            .collect();
        let max = level.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = level.iter().map(|&l| f64::from(l - max).exp()).collect();
        let z: f64 = exps.iter().sum();
        let probs: Vec<f64> = exps.iter().map(|e| e / z).collect();
        let score: f64 = probs.iter().zip(&self.weights).map(|(p, w)| p * w).sum();
        ScoreResult {
            score,
            score_1_5: 1.0 + 4.0 * score,
            words: self.words.clone(),
            probs,
            level_logits: level,
        }
    }
}

/// `Ok` when the one-element tensor `max|x|` is finite; [`ModelError::NonFinite`] naming `stage` otherwise.
fn finite(max_abs: Tensor<1>, stage: &'static str) -> Result<()> {
    let v = max_abs
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::HostRead {
            what: "a finiteness check",
            reason: format!("{e:?}"),
        })?;
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(ModelError::NonFinite { stage })
    }
}

fn host(t: Tensor<3>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::HostRead {
            what: "logits",
            reason: format!("{e:?}"),
        })
}

impl Owl2 {
    /// Loads a checkpoint directory as released: `config.json` (MPLUGOwl2Config with `visual_config`, or a plain
    /// LLaMA config, parsed once), weights in any supported format (safetensors first, as transformers), the
    /// tokenizer, and `preprocessor_config.json` when the model has a vision half.
    ///
    /// # Errors
    /// A missing or invalid file (named), weights that do not fit the config (every tensor listed), or a
    /// tokenizer whose vocabulary size differs from the config's.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device, options: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let config = HfOwl2Config::from_file(&dir.join("config.json"))?.to_config()?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        tokenizer.check_vocab_size(config.llm.vocab_size)?;
        let ckpt = Checkpoint::open(dir)?;
        let weights = Weights::new(&ckpt, device)
            .with_policy(options.policy)
            .ignore_unused("rotary_emb.inv_freq");
        let net = Owl2Net::load(&weights, &config);
        weights.finish()?;
        let preprocessor = match &config.vision {
            Some(_) => Some(Preprocessor::from_json_file(
                dir.join("preprocessor_config.json"),
                options.resize_mode.unwrap_or(config.resize_mode),
            )?),
            None => None,
        };
        Ok(Self {
            net,
            assets: Owl2Assets {
                tokenizer,
                preprocessor,
                config,
                dir: dir.to_path_buf(),
            },
        })
    }

    /// Puts a network and its assets together (e.g. a trained network, on [`burn::module::Module::valid`]).
    pub fn from_parts(net: Owl2Net, assets: Owl2Assets) -> Self {
        Self { net, assets }
    }

    /// The network and its assets, apart (training moves the network onto an autodiff device).
    pub fn into_parts(self) -> (Owl2Net, Owl2Assets) {
        (self.net, self.assets)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.assets.tokenizer
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.net.device()
    }

    fn preprocessor(&self) -> Result<&Preprocessor> {
        self.assets
            .preprocessor
            .as_ref()
            .ok_or_else(|| ModelError::NoVision {
                dir: Some(self.assets.dir.clone()),
            })
    }

    /// Preprocesses image files into normalised pixels `[N, 3, S, S]` with the checkpoint's preprocessing.
    ///
    /// # Errors
    /// A text-only model, or an image that cannot be read (named).
    pub fn pixels<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Tensor<4>> {
        self.pixels_with(paths, None)
    }

    /// Preprocesses image files into pixels `[N, 3, S, S]`, with `mode` instead of the checkpoint's resize mode
    /// when given (e.g. [`ScoringPrompt::resize_mode`]).
    ///
    /// # Errors
    /// A text-only model, or an image that cannot be read (named).
    pub fn pixels_with<P: AsRef<Path>>(
        &self,
        paths: &[P],
        mode: Option<ResizeMode>,
    ) -> Result<Tensor<4>> {
        let p = self.preprocessor()?;
        let batch = match mode {
            Some(m) if m != p.mode() => p.clone().with_mode(m)?.preprocess_paths(paths)?,
            _ => p.preprocess_paths(paths)?,
        };
        Ok(batch.to_tensor(&self.device()))
    }

    /// Image token embeddings `[N, Q + 1, H]` from pixels `[N, 3, S, S]` (see [`Owl2Net::encode_images`]).
    ///
    /// # Errors
    /// A text-only model or pixels of the wrong shape.
    pub fn encode_images(&self, pixels: Tensor<4>) -> Result<Tensor<3>> {
        self.net.encode_images(pixels).map_err(|e| match e {
            ModelError::NoVision { .. } => ModelError::NoVision {
                dir: Some(self.assets.dir.clone()),
            },
            e => e,
        })
    }

    /// The segments of one prompt: its text ids, and `<|image|>` placeholders as image slots numbered from
    /// `first_image` on. Returns the segments and the number of placeholders.
    pub fn prompt_segments(&self, prompt: &str, first_image: usize) -> (Vec<Segment>, usize) {
        let mut row = Vec::new();
        let mut text = Vec::new();
        let mut next = first_image;
        for t in self.assets.tokenizer.encode_with_images(prompt) {
            match t {
                PromptToken::Text(id) => text.push(id),
                PromptToken::Image => {
                    if !text.is_empty() {
                        row.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    row.push(Segment::Image(next));
                    next += 1;
                }
            }
        }
        if !text.is_empty() {
            row.push(Segment::Text(text));
        }
        (row, next - first_image)
    }

    /// Tokenises `prompts` (each with any number of `<|image|>`) and splices `images` `[N, Q + 1, H]` in order of
    /// appearance (row by row), with modality 1 on image tokens; rows are left-padded with the pad token to a
    /// common length (see [`Owl2Net::splice`]).
    ///
    /// # Errors
    /// The number of placeholders differs from the number of images, or an empty prompt.
    pub fn prepare(&self, prompts: &[String], images: Option<Tensor<3>>) -> Result<Prompt> {
        let n_images = images.as_ref().map_or(0, |t| t.dims()[0]);
        let mut placeholders = 0;
        let mut rows: Vec<Vec<Segment>> = Vec::with_capacity(prompts.len());
        for p in prompts {
            let (row, n) = self.prompt_segments(p, placeholders);
            placeholders += n;
            rows.push(row);
        }
        if placeholders != n_images {
            return Err(ModelError::PlaceholderCount {
                placeholders,
                images: n_images,
            });
        }
        self.prepare_segments(rows, images)
    }

    /// Left-pads rows of segments with the pad token and splices `images` `[N, Q + 1, H]` into them: the prompt
    /// of a batched forward or generation.
    ///
    /// # Errors
    /// An image slot beyond `images`, or an empty row set.
    pub fn prepare_segments(
        &self,
        mut rows: Vec<Vec<Segment>>,
        images: Option<Tensor<3>>,
    ) -> Result<Prompt> {
        let tok = &self.assets.tokenizer;
        let image_tokens = images.as_ref().map_or(0, |t| t.dims()[1]);
        let pad = tok.pad_id().unwrap_or_else(|| tok.unk_id());
        let left_padding = pad_rows(
            &mut rows,
            image_tokens,
            PaddingSide::Left,
            PadFill::Token(pad),
        );
        let embeds = self.net.splice(&rows, images.as_ref())?;
        Ok(Prompt {
            embeds,
            modality: Modality::PerToken(segment_modality(&rows, image_tokens)),
            left_padding,
        })
    }

    /// Last-position logits (one host row `[V]` per prompt row) of prepared prompts.
    ///
    /// # Errors
    /// Decoder errors.
    pub fn last_logits(&self, prompt: Prompt) -> Result<Vec<Vec<f32>>> {
        let b = prompt.left_padding.len();
        let input = prompt.into_input();
        let out = self.net.forward(
            input,
            &mut KvCache::new(),
            ForwardOptions {
                logits: LogitsMode::Last,
                ..Default::default()
            },
        )?;
        let logits = host(
            out.logits
                .ok_or(ModelError::MissingOutput { what: "logits" })?,
        )?;
        let v = self.net.llm.config.vocab_size;
        Ok((0..b)
            .map(|r| logits[r * v..(r + 1) * v].to_vec())
            .collect())
    }

    /// The next-token logits `[V]` after a text-only token sequence (no image, modality 0 throughout): one plain
    /// decoder forward of `ids` embedded with `embed_tokens`, no padding, no cache.
    ///
    /// # Errors
    /// An empty sequence, an id beyond the vocabulary, or decoder errors.
    pub fn text_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let embeds = self.net.llm.embed_ids(&[ids.to_vec()])?;
        let out = self.net.forward(
            biqa_decoder::DecoderInput {
                modality: Modality::Text,
                ..biqa_decoder::DecoderInput::text(embeds)
            },
            &mut KvCache::new(),
            ForwardOptions {
                logits: LogitsMode::Last,
                ..Default::default()
            },
        )?;
        host(
            out.logits
                .ok_or(ModelError::MissingOutput { what: "logits" })?,
        )
    }

    /// Scores preprocessed pixels `[N, 3, S, S]` in one batch.
    ///
    /// # Errors
    /// A text-only model or pixels of the wrong shape.
    pub fn score_pixels(&self, pixels: Tensor<4>, scorer: &Scorer) -> Result<Vec<ScoreResult>> {
        let n = pixels.dims()[0];
        finite(pixels.clone().abs().max(), "pixels")?;
        let images = self.encode_images(pixels)?;
        // A non-finite value is an error naming the first stage that produced one (NaN weights, a degenerate
        // config), never a NaN score.
        finite(
            images.clone().abs().max(),
            "image tokens (vision tower and abstractor)",
        )?;
        let prompts = vec![scorer.prompt.text().to_string(); n];
        let rows = self.last_logits(self.prepare(&prompts, Some(images))?)?;
        let scores: Vec<ScoreResult> = rows.iter().map(|r| scorer.score(r)).collect();
        if scores.iter().any(|s| !s.score.is_finite()) {
            return Err(ModelError::NonFinite {
                stage: "decoder logits at the answer position",
            });
        }
        Ok(scores)
    }

    /// Scores image files, `batch_size` at a time; `progress` is called after each batch with the number done.
    ///
    /// # Errors
    /// As [`Owl2::score_pixels`], or an unreadable image (named).
    pub fn score_paths<P: AsRef<Path>>(
        &self,
        paths: &[P],
        scorer: &Scorer,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<ScoreResult>> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(batch_size.max(1)) {
            let pixels = self.pixels_with(chunk, scorer.prompt.resize_mode())?;
            out.extend(self.score_pixels(pixels, scorer)?);
            progress(out.len());
        }
        Ok(out)
    }

    /// Scores image files, `batch_size` at a time, with one result per image, in order: each image is read on its
    /// own, so an unreadable or broken file is an error in its own slot and the others are still scored (the
    /// readable images of a chunk go through one batch; a batch that fails as a whole gives each of its images
    /// [`ModelError::BatchFailed`]). `progress` is called after each chunk with the number done.
    ///
    /// # Errors
    /// A text-only model (no image can be scored): [`ModelError::NoVision`], before any image is read.
    pub fn score_paths_each<P: AsRef<Path>>(
        &self,
        paths: &[P],
        scorer: &Scorer,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Result<ScoreResult>>> {
        self.preprocessor()?;
        Ok(self.per_image(
            paths,
            batch_size,
            scorer.prompt.resize_mode(),
            |_, pixels| self.score_pixels(pixels, scorer),
            &mut progress,
        ))
    }

    /// The one per-image batching loop (`score_paths_each`, `assess_paths`): image files `batch_size` at a time,
    /// each read on its own (`mode` overrides the resize mode), so an unreadable file is an error in its own slot;
    /// the readable images of a chunk go through `run(indices in paths, pixels [n, 3, S, S])` as one batch, and a
    /// batch that fails as a whole gives each of its images [`ModelError::BatchFailed`]. `progress` is called after
    /// each chunk with the number done.
    pub(crate) fn per_image<P: AsRef<Path>, T>(
        &self,
        paths: &[P],
        batch_size: usize,
        mode: Option<ResizeMode>,
        mut run: impl FnMut(&[usize], Tensor<4>) -> Result<Vec<T>>,
        progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<T>> {
        let batch_size = batch_size.max(1);
        let mut out: Vec<Result<T>> = Vec::with_capacity(paths.len());
        for (c, chunk) in paths.chunks(batch_size).enumerate() {
            let mut good = Vec::new();
            let mut slots: Vec<Option<Result<T>>> = Vec::with_capacity(chunk.len());
            for (j, p) in chunk.iter().enumerate() {
                match self.pixels_with(std::slice::from_ref(p), mode) {
                    Ok(px) => {
                        good.push((j, px));
                        slots.push(None);
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            if !good.is_empty() {
                let local: Vec<usize> = good.iter().map(|(j, _)| *j).collect();
                let global: Vec<usize> = local.iter().map(|j| c * batch_size + j).collect();
                let pixels = Tensor::cat(good.into_iter().map(|(_, p)| p).collect(), 0);
                match run(&global, pixels) {
                    Ok(results) => {
                        for (j, r) in local.into_iter().zip(results) {
                            slots[j] = Some(Ok(r));
                        }
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        for j in local {
                            slots[j] = Some(Err(ModelError::BatchFailed {
                                reason: reason.clone(),
                            }));
                        }
                    }
                }
            }
            out.extend(slots.into_iter().flatten());
            progress(out.len());
        }
        out
    }

    /// Generates from a prompt with at most one `<|image|>` per image given (pixels `[N, 3, S, S]` or none).
    ///
    /// # Errors
    /// Placeholder / image count mismatch, or decoder errors.
    pub fn generate(
        &self,
        prompt: &str,
        pixels: Option<Tensor<4>>,
        config: &GenerationConfig,
        on_token: impl FnMut(&[Option<u32>]),
    ) -> Result<Generated> {
        let images = pixels.map(|p| self.encode_images(p)).transpose()?;
        self.generate_encoded(prompt, images, config, on_token)
    }

    /// As [`Owl2::generate`], from image tokens `[N, Q + 1, H]` already encoded (so that a caller who needs them
    /// again does not run the vision half twice).
    ///
    /// # Errors
    /// Placeholder / image count mismatch, or decoder errors.
    pub fn generate_encoded(
        &self,
        prompt: &str,
        images: Option<Tensor<3>>,
        config: &GenerationConfig,
        on_token: impl FnMut(&[Option<u32>]),
    ) -> Result<Generated> {
        let prepared = self.prepare(&[prompt.to_string()], images)?;
        let g = self.net.llm.generate(prepared, config, on_token)?;
        let stop_reason = g
            .stop_reasons
            .first()
            .copied()
            .unwrap_or(StopReason::MaxTokens);
        let token_ids = g.tokens.into_iter().next().unwrap_or_default();
        Ok(Generated {
            text: self.assets.tokenizer.decode(&token_ids, true),
            token_ids,
            stop_reason,
        })
    }

    /// A free-text quality description of one image (`USER: <|image|>Describe the quality of this image.
    /// ASSISTANT:`), stopping at `</s>`.
    ///
    /// # Errors
    /// As [`Owl2::generate`], or an unreadable image.
    pub fn describe(
        &self,
        image: &Path,
        config: &GenerationConfig,
        on_token: impl FnMut(&[Option<u32>]),
    ) -> Result<Generated> {
        let pixels = self.pixels(&[image])?;
        self.generate(&describe_prompt(), Some(pixels), config, on_token)
    }
}
