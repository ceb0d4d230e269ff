//! The composed mPLUG-Owl2 model ([`Owl2`]): a checkpoint directory exactly as released, image splicing, Q-Align
//! scoring, quality descriptions and text generation.

use std::path::{Path, PathBuf};

use biqa_checkpoint::{Checkpoint, FloatPolicy, Weights};
use biqa_decoder::{
    ForwardOptions, GenerationConfig, HfLlamaConfig, KvCache, Llama, LlamaConfig, LogitsMode,
    Modality, Prompt,
};
use biqa_vision::{
    AbstractorConfig, Preprocessor, ResizeMode, VisionConfig, VisionModel, VisualAbstractor,
    read_visual_config,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::prompt::{ScoringPrompt, describe_prompt};
use crate::tokenizer::{PromptToken, Tokenizer};

/// How to load a checkpoint directory.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Parameter dtype (f32 on CPU; bf16 keeps the released weights at their precision on GPUs).
    pub policy: FloatPolicy,
    /// Image preprocessing; by default from `config.json`'s `image_aspect_ratio` (`pad` → [`ResizeMode::Pad`], as
    /// Q-Align / OneAlign; otherwise [`ResizeMode::Resize`], the mPLUG-Owl2 demo).
    pub resize_mode: Option<ResizeMode>,
}

/// The vision half: tower, abstractor and preprocessing.
#[derive(Debug)]
pub struct VisionPart {
    /// `model.vision_model`.
    pub tower: VisionModel,
    /// `model.visual_abstractor`.
    pub abstractor: VisualAbstractor,
    /// `preprocessor_config.json`.
    pub preprocessor: Preprocessor,
}

/// An mPLUG-Owl2 (or plain LLaMA) checkpoint directory, loaded.
#[derive(Debug)]
pub struct Owl2 {
    /// The language model.
    pub llm: Llama,
    /// The vision half (`None` for a plain `LlamaForCausalLM` directory).
    pub vision: Option<VisionPart>,
    /// The slow LLaMA tokenizer.
    pub tokenizer: Tokenizer,
    /// The directory.
    pub dir: PathBuf,
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
            return Err(ModelError::Input(
                "scoring needs at least two level words".into(),
            ));
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

fn host(t: Tensor<3>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::Input(format!("reading logits: {e:?}")))
}

impl Owl2 {
    /// Loads a checkpoint directory as released: `config.json` (MPLUGOwl2Config with `visual_config`, or a plain
    /// LLaMA config), weights in any supported format (safetensors first, as transformers), the tokenizer, and
    /// `preprocessor_config.json` when the model has a vision half.
    ///
    /// # Errors
    /// A missing or invalid file (named), weights that do not fit the config (every tensor listed), or a
    /// tokenizer whose vocabulary size differs from the config's.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device, options: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let hf = HfLlamaConfig::from_file(&config_path)?;
        let llm_config: LlamaConfig = hf.to_config()?;
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|source| {
                ModelError::Io {
                    path: config_path.clone(),
                    source,
                }
            })?)
            .map_err(|e| ModelError::Config(format!("{}: {e}", config_path.display())))?;
        let visual: Option<(VisionConfig, AbstractorConfig)> = if raw.get("visual_config").is_some()
        {
            let (hv, ha) = read_visual_config(&config_path)?;
            let v = hv.to_config()?;
            let a = ha.to_config(v.grid(), llm_config.hidden_size)?;
            Some((v, a))
        } else {
            None
        };
        let tokenizer = Tokenizer::from_dir(dir)?;
        tokenizer.check_vocab_size(llm_config.vocab_size)?;
        let ckpt = Checkpoint::open(dir)?;
        let weights = Weights::new(&ckpt, device)
            .with_policy(options.policy)
            .ignore_unused("rotary_emb.inv_freq");
        let llm = Llama::load(&weights, &llm_config);
        let parts = visual.as_ref().map(|(v, a)| {
            (
                VisionModel::load(&weights, v, "model.vision_model"),
                VisualAbstractor::load(&weights, a, "model.visual_abstractor"),
            )
        });
        weights.finish()?;
        let vision = match parts {
            Some((tower, abstractor)) => {
                let mode = options.resize_mode.unwrap_or(
                    match raw.get("image_aspect_ratio").and_then(|v| v.as_str()) {
                        Some("pad") => ResizeMode::Pad,
                        _ => ResizeMode::Resize,
                    },
                );
                let preprocessor =
                    Preprocessor::from_json_file(dir.join("preprocessor_config.json"), mode)?;
                Some(VisionPart {
                    tower,
                    abstractor,
                    preprocessor,
                })
            }
            None => None,
        };
        Ok(Self {
            llm,
            vision,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.llm.device()
    }

    fn vision(&self) -> Result<&VisionPart> {
        self.vision.as_ref().ok_or_else(|| {
            ModelError::Input(format!(
                "{} is a text-only checkpoint (no visual_config)",
                self.dir.display()
            ))
        })
    }

    /// Preprocesses image files into normalised pixels `[N, 3, S, S]`.
    ///
    /// # Errors
    /// A text-only model, or an image that cannot be read (named).
    pub fn pixels<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Tensor<4>> {
        let v = self.vision()?;
        Ok(v.preprocessor
            .preprocess_paths(paths)?
            .to_tensor(&self.device()))
    }

    /// Image token embeddings `[N, Q + 1, H]` from pixels `[N, 3, S, S]`.
    ///
    /// # Errors
    /// A text-only model or pixels of the wrong shape.
    pub fn encode_images(&self, pixels: Tensor<4>) -> Result<Tensor<3>> {
        let v = self.vision()?;
        let features = v.tower.forward(pixels, false, false)?.last_hidden_state;
        Ok(v.abstractor.forward(features, false)?.image_embeds)
    }

    /// Tokenises `prompts` (each with any number of `<|image|>`) and splices `images` `[N, Q + 1, H]` in order of
    /// appearance (row by row), with modality 1 on image tokens; rows are left-padded to a common length.
    ///
    /// # Errors
    /// The number of placeholders differs from the number of images.
    pub fn prepare(&self, prompts: &[String], images: Option<Tensor<3>>) -> Result<Prompt> {
        let rows: Vec<Vec<PromptToken>> = prompts
            .iter()
            .map(|p| self.tokenizer.encode_with_images(p))
            .collect();
        let placeholders: usize = rows
            .iter()
            .flatten()
            .filter(|t| matches!(t, PromptToken::Image))
            .count();
        let n_images = images.as_ref().map_or(0, |t| t.dims()[0]);
        if placeholders != n_images {
            return Err(ModelError::Input(format!(
                "the prompts have {placeholders} image placeholder(s) for {n_images} image(s)"
            )));
        }
        let per_image = images.as_ref().map_or(0, |t| t.dims()[1]);
        let lens: Vec<usize> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|t| {
                        if matches!(t, PromptToken::Image) {
                            per_image
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .collect();
        let max_len = lens.iter().copied().max().unwrap_or(0);
        if max_len == 0 {
            return Err(ModelError::Input("empty prompt".into()));
        }
        let pad = self
            .tokenizer
            .pad_id()
            .unwrap_or_else(|| self.tokenizer.unk_id());
        let mut next_image = 0;
        let mut row_embeds = Vec::with_capacity(rows.len());
        let mut modality = Vec::with_capacity(rows.len() * max_len);
        for (row, &len) in rows.iter().zip(&lens) {
            let mut pieces = Vec::new();
            let padding = max_len - len;
            if padding > 0 {
                pieces.push(self.llm.embed_ids(&[vec![pad; padding]])?);
                modality.extend(std::iter::repeat_n(0u8, padding));
            }
            let mut text = Vec::new();
            for tok in row {
                match tok {
                    PromptToken::Text(id) => text.push(*id),
                    PromptToken::Image => {
                        if !text.is_empty() {
                            modality.extend(std::iter::repeat_n(0u8, text.len()));
                            pieces.push(self.llm.embed_ids(&[std::mem::take(&mut text)])?);
                        }
                        if let Some(imgs) = &images {
                            pieces.push(imgs.clone().narrow(0, next_image, 1));
                        }
                        modality.extend(std::iter::repeat_n(1u8, per_image));
                        next_image += 1;
                    }
                }
            }
            if !text.is_empty() {
                modality.extend(std::iter::repeat_n(0u8, text.len()));
                pieces.push(self.llm.embed_ids(&[text])?);
            }
            row_embeds.push(Tensor::cat(pieces, 1));
        }
        Ok(Prompt {
            embeds: Tensor::cat(row_embeds, 0),
            modality: Modality::PerToken(modality),
            left_padding: lens.iter().map(|&l| max_len - l).collect(),
        })
    }

    /// Last-position logits (one host row `[V]` per prompt row) of prepared prompts.
    ///
    /// # Errors
    /// Decoder errors.
    pub fn last_logits(&self, prompt: Prompt) -> Result<Vec<Vec<f32>>> {
        let b = prompt.left_padding.len();
        let input = prompt.into_input();
        let out = self.llm.forward(
            input,
            &mut KvCache::new(),
            ForwardOptions {
                logits: LogitsMode::Last,
                ..Default::default()
            },
        )?;
        let logits = host(
            out.logits
                .ok_or_else(|| ModelError::Input("no logits".into()))?,
        )?;
        let v = self.llm.config.vocab_size;
        Ok((0..b)
            .map(|r| logits[r * v..(r + 1) * v].to_vec())
            .collect())
    }

    /// Scores preprocessed pixels `[N, 3, S, S]` in one batch.
    ///
    /// # Errors
    /// A text-only model or pixels of the wrong shape.
    pub fn score_pixels(&self, pixels: Tensor<4>, scorer: &Scorer) -> Result<Vec<ScoreResult>> {
        let n = pixels.dims()[0];
        let images = self.encode_images(pixels)?;
        let prompts = vec![scorer.prompt.text().to_string(); n];
        let rows = self.last_logits(self.prepare(&prompts, Some(images))?)?;
        Ok(rows.iter().map(|r| scorer.score(r)).collect())
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
            out.extend(self.score_pixels(self.pixels(chunk)?, scorer)?);
            progress(out.len());
        }
        Ok(out)
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
        let prepared = self.prepare(&[prompt.to_string()], images)?;
        let g = self.llm.generate(prepared, config, on_token)?;
        let token_ids = g.tokens.into_iter().next().unwrap_or_default();
        Ok(Generated {
            text: self.tokenizer.decode(&token_ids, true),
            token_ids,
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
