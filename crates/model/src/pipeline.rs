//! The paper's inference as a method: three pipelines over one network ([`crate::Owl2`]).
//!
//! - [`PipelineKind::Direct`] — Q-Align: image + question → softmax over the level words at the answer position.
//! - [`PipelineKind::OneStage`] — Q-Instruct / the paper's baseline: image + one-stage prompt → a generated
//!   description **and** conclusion in one answer.
//! - [`PipelineKind::TwoStage`] — the paper: (1) image + stage-1 prompt → a description of the visual features;
//!   (2) **text only**: stage-2 prompt + that description → the quality conclusion. The image never reaches the
//!   second pass.
//!
//! Every pipeline returns an [`Assessment`] per image: description, conclusion, parsed level, the level-word
//! probabilities at the position where the conclusion's level word is produced (the generation's own logits there,
//! which are the teacher-forced logits of the generated prefix; when the answer has no level word, the next-token
//! logits after the answer and [`PipelinePrompts::conclusion_probe`]), the score on 0–1 and 1–5, the token ids and
//! the time of each pass.
//!
//! Greedy by default; seeded sampling for repeated queries. Image `i` of a call is generated with seed
//! `seed + i` (and the second pass with `seed + i + STAGE2_SEED_OFFSET`), so a batch gives exactly the answers of
//! the same images one by one.

use std::path::Path;
use std::time::Instant;

use biqa_core::IMAGE_TOKEN;
use biqa_core::prompts::{ONE_STAGE_PROMPT, STAGE1_PROMPT, STAGE2_PROMPT, STAGE2_QUESTION};
use biqa_decoder::{Generation, GenerationConfig, Sampling, StopReason};
use biqa_metrics::{Level, LevelParser, split_conclusion};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::net::Segment;
use crate::prompt::{Conversation, ScoringPrompt};
use crate::vlm::{Owl2, ScoreResult, Scorer};

/// The seed offset of the second pass of [`PipelineKind::TwoStage`].
pub const STAGE2_SEED_OFFSET: u64 = 0x5EED_0000_0000;

/// The file of a checkpoint directory that records the prompts it was trained with (written by `biqa train`'s
/// export; released checkpoints have none and get [`PipelinePrompts::released`]).
pub const PROMPTS_FILE: &str = "biqa_prompts.json";

/// Which inference method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineKind {
    /// Q-Align: the level-word softmax at the answer position, no generation.
    Direct,
    /// One generated answer: description and conclusion.
    OneStage,
    /// Image → description, then text only: description → conclusion.
    TwoStage,
}

impl PipelineKind {
    /// The kebab-case name (`direct`, `one-stage`, `two-stage`).
    pub fn name(self) -> &'static str {
        match self {
            PipelineKind::Direct => "direct",
            PipelineKind::OneStage => "one-stage",
            PipelineKind::TwoStage => "two-stage",
        }
    }
}

impl std::fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PipelineKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "direct" | "qalign" | "q-align" => Ok(PipelineKind::Direct),
            "one-stage" | "onestage" | "one" => Ok(PipelineKind::OneStage),
            "two-stage" | "twostage" | "two" => Ok(PipelineKind::TwoStage),
            _ => Err(ModelError::UnknownName {
                what: "pipeline",
                name: s.to_string(),
                known: "direct, one-stage, two-stage",
            }),
        }
    }
}

/// The questions each pipeline asks, and the conversation template they are rendered in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinePrompts {
    /// The conversation template of the generating pipelines (the one the model was trained with).
    pub conversation: Conversation,
    /// [`PipelineKind::Direct`]'s scoring prompt (rendered as released, without a system prompt).
    pub direct: ScoringPrompt,
    /// The user turn of [`PipelineKind::OneStage`] (after `<|image|>\n`).
    pub one_stage: String,
    /// The user turn of the first pass of [`PipelineKind::TwoStage`] (after `<|image|>\n`).
    pub stage1: String,
    /// The user turn of the second pass; `{description}` stands for the first pass's answer.
    pub stage2: String,
    /// Appended after a generated answer that has no level word, to read the level-word probabilities.
    pub conclusion_probe: String,
}

impl Default for PipelinePrompts {
    fn default() -> Self {
        Self::synthetic(Conversation::VicunaV1)
    }
}

impl PipelinePrompts {
    /// The prompts of the embedded synthetic set's recipes ([`biqa_core::prompts`]), rendered in `conversation`
    /// (`biqa train` uses [`Conversation::VicunaV1`], `--version v1`, by default).
    pub fn synthetic(conversation: Conversation) -> Self {
        Self {
            conversation,
            direct: ScoringPrompt::Qalign,
            one_stage: ONE_STAGE_PROMPT.to_string(),
            stage1: STAGE1_PROMPT.to_string(),
            stage2: format!("{STAGE2_PROMPT}\n{{description}}\n{STAGE2_QUESTION}"),
            conclusion_probe: " Therefore, the quality of the image is".to_string(),
        }
    }

    /// The default for a released checkpoint (Q-Align / OneAlign / Q-Instruct / mPLUG-Owl2): the mPLUG-Owl2
    /// template without a system prompt (as their inference code renders it), Q-Align's scoring prompt for
    /// `Direct`, and the synthetic recipes' questions for the generating pipelines (Q-Instruct answers them with a
    /// description and a level).
    pub fn released() -> Self {
        Self::synthetic(Conversation::MplugOwl2)
    }

    /// The prompts a checkpoint directory records ([`PROMPTS_FILE`]), or [`PipelinePrompts::released`].
    ///
    /// # Errors
    /// An unreadable or malformed prompts file (named).
    pub fn for_checkpoint(dir: &Path) -> Result<Self> {
        let path = dir.join(PROMPTS_FILE);
        if !path.is_file() {
            return Ok(Self::released());
        }
        Self::from_file(&path)
    }

    /// Reads a prompts file.
    ///
    /// # Errors
    /// An unreadable or malformed file (named), or a stage-2 prompt without `{description}`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::config::read_config_text(path)?;
        let p: Self = serde_json::from_str(&text).map_err(|e| ModelError::ConfigParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if !p.stage2.contains("{description}") {
            return Err(ModelError::ConfigParse {
                path: path.to_path_buf(),
                reason: "stage2 must contain {description}".into(),
            });
        }
        Ok(p)
    }

    /// The file's JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn image_turn(&self, question: &str) -> String {
        self.conversation
            .render(&[(&format!("{IMAGE_TOKEN}\n{question}"), None)])
    }

    /// The full one-stage prompt (one `<|image|>`).
    pub fn one_stage_prompt(&self) -> String {
        self.image_turn(&self.one_stage)
    }

    /// The full first-pass prompt of the two-stage pipeline (one `<|image|>`).
    pub fn stage1_prompt(&self) -> String {
        self.image_turn(&self.stage1)
    }

    /// The full, text-only second-pass prompt for `description`.
    pub fn stage2_prompt(&self, description: &str) -> String {
        let turn = self
            .stage2
            .replace("{description}", description.trim())
            .replace(IMAGE_TOKEN, "");
        self.conversation.render(&[(&turn, None)])
    }
}

/// A pipeline with its settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The method.
    pub kind: PipelineKind,
    /// The questions.
    pub prompts: PipelinePrompts,
    /// Greedy (default) or sampled generation.
    pub sampling: Sampling,
    /// New tokens per generated answer (each pass).
    pub max_new_tokens: usize,
}

impl PipelineConfig {
    /// Greedy, 256 new tokens per pass, with `prompts`.
    pub fn new(kind: PipelineKind, prompts: PipelinePrompts) -> Self {
        Self {
            kind,
            prompts,
            sampling: Sampling::Greedy,
            max_new_tokens: 256,
        }
    }
}

/// Which pass of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassKind {
    /// The Q-Align forward (no generation).
    Direct,
    /// A generated answer from an image prompt (one-stage, or the first pass of two-stage).
    Image,
    /// The text-only second pass of two-stage.
    Text,
}

/// One pass over one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// Which pass.
    pub kind: PassKind,
    /// The prompt's token ids (`-200` where the image tokens go, as mPLUG-Owl2's `IMAGE_TOKEN_INDEX`).
    pub prompt_ids: Vec<i64>,
    /// The generated token ids (a final `</s>` included when emitted; empty for [`PassKind::Direct`]).
    pub token_ids: Vec<u32>,
    /// The decoded answer.
    pub text: String,
    /// Whether generation ended on a stop token (rather than at `max_new_tokens`).
    pub stopped: bool,
    /// Why generation stopped (`"eos"`, `"max_tokens"`, `"context_full"`); absent for [`PassKind::Direct`],
    /// which reads the answer without generating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// Seconds of this pass per image (a batched pass's time divided by its images).
    pub seconds: f64,
}

/// Where the level-word probabilities were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum ProbsAt {
    /// The answer position of the Q-Align prompt.
    Direct,
    /// The step that produced the answer's last level-word token (`pass`, `token` index in its `token_ids`).
    Answer {
        /// The pass.
        pass: usize,
        /// The token index.
        token: usize,
    },
    /// The answer had no level-word token: the next token after it and the conclusion probe.
    Probe,
}

/// What a pipeline says about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The pipeline.
    pub pipeline: PipelineKind,
    /// The description (two-stage: the first pass; one-stage: the answer without its conclusion sentence).
    pub description: Option<String>,
    /// The conclusion (two-stage: the second pass; one-stage: the last sentence stating a level, or the whole
    /// answer when none does; direct: "The quality of the image is WORD." with the most likely word).
    pub conclusion: String,
    /// The level the conclusion states (`None` when it states none).
    pub level: Option<Level>,
    /// The level words, best first.
    pub words: Vec<String>,
    /// Their probabilities (softmax over the level words only), read where [`Assessment::probs_at`] says.
    pub probs: Vec<f64>,
    /// Where the probabilities were read.
    pub probs_at: ProbsAt,
    /// `probs · weights` (1 for the best word … 0 for the worst): in [0, 1].
    pub score: f64,
    /// The same on [1, 5].
    pub score_1_5: f64,
    /// The passes, in order.
    pub passes: Vec<Pass>,
    /// Seconds for the image (all passes).
    pub seconds: f64,
}

impl Assessment {
    fn from_score(kind: PipelineKind, s: ScoreResult, at: ProbsAt, passes: Vec<Pass>) -> Self {
        let seconds = passes.iter().map(|p| p.seconds).sum();
        Self {
            pipeline: kind,
            description: None,
            conclusion: String::new(),
            level: None,
            words: s.words,
            probs: s.probs,
            probs_at: at,
            score: s.score,
            score_1_5: s.score_1_5,
            passes,
            seconds,
        }
    }
}

/// A generating pass over a batch, with what each row needs afterwards.
struct GenPass {
    generation: Generation,
    prompts: Vec<String>,
    seconds: f64,
}

impl Owl2 {
    /// Runs `config`'s pipeline on image files, `batch_size` at a time (left-padded batches; a batch gives the
    /// same answers as the images one by one). One result per image, in order: an image that cannot be read is an
    /// error in its slot and the others go on. `progress` is called after each batch with the number done.
    pub fn assess_paths<P: AsRef<Path>>(
        &self,
        config: &PipelineConfig,
        scorer: &Scorer,
        paths: &[P],
        seed: u64,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Vec<Result<Assessment>> {
        let mode = match config.kind {
            PipelineKind::Direct => scorer.prompt.resize_mode(),
            _ => None,
        };
        // Seeds follow the image's index in `paths`, so they do not depend on which images failed.
        self.per_image(
            paths,
            batch_size,
            mode,
            |indices, pixels| {
                let seeds: Vec<u64> = indices
                    .iter()
                    .map(|&i| seed.wrapping_add(i as u64))
                    .collect();
                self.assess_pixels_seeded(config, scorer, pixels, &seeds)
            },
            &mut progress,
        )
    }

    /// Runs `config`'s pipeline on preprocessed pixels `[N, 3, S, S]` in one batch; image `i` uses seed `seed + i`.
    ///
    /// # Errors
    /// A text-only model, pixels of the wrong shape, or decoder errors.
    pub fn assess_pixels(
        &self,
        config: &PipelineConfig,
        scorer: &Scorer,
        pixels: Tensor<4>,
        seed: u64,
    ) -> Result<Vec<Assessment>> {
        let n = pixels.dims()[0];
        let seeds: Vec<u64> = (0..n as u64).map(|i| seed.wrapping_add(i)).collect();
        self.assess_pixels_seeded(config, scorer, pixels, &seeds)
    }

    fn assess_pixels_seeded(
        &self,
        config: &PipelineConfig,
        scorer: &Scorer,
        pixels: Tensor<4>,
        seeds: &[u64],
    ) -> Result<Vec<Assessment>> {
        let n = pixels.dims()[0];
        let kind = config.kind;
        if kind == PipelineKind::Direct {
            let t0 = Instant::now();
            let scores = self.score_pixels(pixels, scorer)?;
            let seconds = t0.elapsed().as_secs_f64() / n.max(1) as f64;
            let prompt_ids = self.prompt_ids(scorer.prompt.text());
            return Ok(scores
                .into_iter()
                .map(|s| {
                    let best = argmax(&s.probs);
                    let word = s.words.get(best).cloned().unwrap_or_default();
                    let conclusion = format!("The quality of the image is {word}.");
                    let level = LevelParser::default().parse(&word);
                    let pass = Pass {
                        kind: PassKind::Direct,
                        prompt_ids: prompt_ids.clone(),
                        token_ids: Vec::new(),
                        text: word,
                        stopped: true,
                        stop_reason: None,
                        seconds,
                    };
                    let mut a = Assessment::from_score(kind, s, ProbsAt::Direct, vec![pass]);
                    a.conclusion = conclusion;
                    a.level = level;
                    a
                })
                .collect());
        }
        let t0 = Instant::now();
        let images = self.encode_images(pixels)?;
        let encode_seconds = t0.elapsed().as_secs_f64();
        let first_prompt = match kind {
            PipelineKind::OneStage => config.prompts.one_stage_prompt(),
            _ => config.prompts.stage1_prompt(),
        };
        let first =
            self.generate_pass(config, vec![first_prompt; n], Some(images.clone()), seeds)?;
        let first_seconds = (encode_seconds + first.seconds) / n.max(1) as f64;
        let parser = LevelParser::default();
        let mut out = Vec::with_capacity(n);
        match kind {
            PipelineKind::OneStage => {
                for r in 0..n {
                    let pass = self.pass_record(&first, r, PassKind::Image, first_seconds);
                    let (description, conclusion) = match split_conclusion(&pass.text) {
                        Some((d, c, _)) => ((!d.is_empty()).then_some(d), c),
                        None => (None, pass.text.trim().to_string()),
                    };
                    let image = images.clone().narrow(0, r, 1);
                    let (s, at) = self.answer_probs(
                        scorer,
                        &first,
                        r,
                        0,
                        Some(image),
                        &config.prompts.conclusion_probe,
                    )?;
                    let mut a = Assessment::from_score(kind, s, at, vec![pass]);
                    a.level = parser.parse(&conclusion);
                    a.description = description;
                    a.conclusion = conclusion;
                    out.push(a);
                }
            }
            _ => {
                let descriptions: Vec<String> = (0..n)
                    .map(|r| self.answer_text(&first, r).trim().to_string())
                    .collect();
                let prompts: Vec<String> = descriptions
                    .iter()
                    .map(|d| config.prompts.stage2_prompt(d))
                    .collect();
                let seeds2: Vec<u64> = seeds
                    .iter()
                    .map(|s| s.wrapping_add(STAGE2_SEED_OFFSET))
                    .collect();
                let second = self.generate_pass(config, prompts, None, &seeds2)?;
                let second_seconds = second.seconds / n.max(1) as f64;
                for (r, description) in descriptions.into_iter().enumerate() {
                    let p1 = self.pass_record(&first, r, PassKind::Image, first_seconds);
                    let p2 = self.pass_record(&second, r, PassKind::Text, second_seconds);
                    let conclusion = p2.text.trim().to_string();
                    let (s, at) = self.answer_probs(
                        scorer,
                        &second,
                        r,
                        1,
                        None,
                        &config.prompts.conclusion_probe,
                    )?;
                    let mut a = Assessment::from_score(kind, s, at, vec![p1, p2]);
                    a.level = parser.parse(&conclusion);
                    a.description = Some(description);
                    a.conclusion = conclusion;
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// The prompt's ids with `-200` for each image, as mPLUG-Owl2's `tokenizer_image_token`.
    fn prompt_ids(&self, prompt: &str) -> Vec<i64> {
        crate::tokenizer::prompt_ids_i64(&self.assets.tokenizer.encode_with_images(prompt))
    }

    /// One generating pass over rows that all start from the same row seed sequence (`seeds[r]` for row `r`).
    fn generate_pass(
        &self,
        config: &PipelineConfig,
        prompts: Vec<String>,
        images: Option<Tensor<3>>,
        seeds: &[u64],
    ) -> Result<GenPass> {
        let t0 = Instant::now();
        // Row r of a batch samples with `config.seed + r`; contiguous seeds make the batch one call, other seed
        // sets run row by row (each row's answer depends only on its own seed either way).
        let contiguous = seeds.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
        let gen_config = |seed: u64| GenerationConfig {
            max_new_tokens: config.max_new_tokens,
            stop_tokens: self.net.llm.config.eos_token_ids.clone(),
            sampling: config.sampling,
            seed,
            keep_logits: true,
        };
        let generation = if contiguous || config.sampling == Sampling::Greedy {
            self.net.llm.generate(
                self.prepare(&prompts, images)?,
                &gen_config(seeds.first().copied().unwrap_or(0)),
                |_| {},
            )?
        } else {
            let mut all = Generation::default();
            for (r, p) in prompts.iter().enumerate() {
                let image = images.as_ref().map(|t| t.clone().narrow(0, r, 1));
                let row = self.prepare(std::slice::from_ref(p), image)?;
                let g = self.net.llm.generate(row, &gen_config(seeds[r]), |_| {})?;
                all.tokens.extend(g.tokens);
                all.stopped.extend(g.stopped);
                all.stop_reasons.extend(g.stop_reasons);
                all.step_logits.extend(g.step_logits);
            }
            all
        };
        Ok(GenPass {
            generation,
            prompts,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    fn answer_text(&self, pass: &GenPass, r: usize) -> String {
        self.assets
            .tokenizer
            .decode(&pass.generation.tokens[r], true)
    }

    fn pass_record(&self, pass: &GenPass, r: usize, kind: PassKind, seconds: f64) -> Pass {
        Pass {
            kind,
            prompt_ids: self.prompt_ids(&pass.prompts[r]),
            token_ids: pass.generation.tokens[r].clone(),
            text: self.answer_text(pass, r),
            stopped: pass.generation.stopped[r],
            stop_reason: pass.generation.stop_reasons.get(r).copied(),
            seconds,
        }
    }

    /// The level-word probabilities of row `r`'s answer: at the step of its last level-word token, or after the
    /// answer and the conclusion probe (a teacher-forced forward of prompt + answer + probe).
    fn answer_probs(
        &self,
        scorer: &Scorer,
        pass: &GenPass,
        r: usize,
        pass_index: usize,
        image: Option<Tensor<3>>,
        probe: &str,
    ) -> Result<(ScoreResult, ProbsAt)> {
        let tokens = &pass.generation.tokens[r];
        if let Some(k) = tokens.iter().rposition(|t| scorer.ids.contains(t))
            && let Some(logits) = pass.generation.step_logits[r].get(k)
        {
            return Ok((
                scorer.score(logits),
                ProbsAt::Answer {
                    pass: pass_index,
                    token: k,
                },
            ));
        }
        let eos = &self.net.llm.config.eos_token_ids;
        let (mut row, _) = self.prompt_segments(&pass.prompts[r], 0);
        let mut tail: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|t| !eos.contains(t))
            .collect();
        tail.extend(self.assets.tokenizer.encode(probe, false));
        row.push(Segment::Text(tail));
        let prepared = self.prepare_segments(vec![row], image)?;
        let logits = self.last_logits(prepared)?;
        let row = logits
            .first()
            .ok_or(ModelError::MissingOutput { what: "logits" })?;
        Ok((scorer.score(row), ProbsAt::Probe))
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
