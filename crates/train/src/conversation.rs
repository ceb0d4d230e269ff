//! Conversation datasets (LLaVA / Q-Align JSON), the training templates and label masking exactly as mPLUG-Owl2's
//! `train.py` (`LazySupervisedDataset.__getitem__` → `preprocess_multimodal` → `preprocess_v1`).
//!
//! # Reading
//!
//! A dataset file is a JSON list of records `{"id", "image", "conversations": [{"from", "value"}, …], "gt_score"}`
//! ([`ConversationRecord`]). [`read_records`] also accepts `img_path` for `image`, a numeric or missing `id`
//! (`#<index>` then), a missing or non-numeric `gt_score` and any unknown key. Structural problems are
//! [`TrainError::Data`] errors naming the file and the record (index and id): bad JSON, a top level that is not a
//! list, an empty list, a record that is not an object, missing or empty `conversations`, a turn without string
//! `from` / `value`, an `image` that is not a string.
//!
//! # Prompt
//!
//! [`prompt`] reproduces the text `preprocess_v1` tokenises:
//! 1. image records only (`preprocess_multimodal`): `<image>` (LLaVA) is first normalised to `<|image|>`; every turn
//!    containing `<|image|>` has all of them removed, is stripped, gets `"<|image|>\n"` in front and is stripped
//!    again. Text-only records are left exactly as they are (the original does not touch them either);
//! 2. a first turn that is not from `human` is dropped (`"Skip the first one if it is not from human"`); the rest
//!    must alternate `human` / `gpt` starting with `human` (the original asserts; here a typed error). Roles other
//!    than `human` and `gpt` are errors (a `KeyError` in the original);
//! 3. the [`Template`] renders the turns as `conv.get_prompt()` does.
//!
//! # Tokenisation and masking
//!
//! Records with an image are tokenised with `tokenizer_image_token` (the placeholder becomes −200,
//! [`IMAGE_TOKEN_INDEX`]); text-only records with `tokenizer(prompt, max_length, truncation=True).input_ids`. The
//! labels are masked by [`mask_labels`] (see there for both variants), and a sample whose token count does not add
//! up is flagged with a [`Mismatch`] and fully masked, as the original does; [`tokenize_records`] /
//! [`load_dataset`] set such samples aside instead of training on them.
//!
//! **Truncation** follows the original: text-only prompts are truncated to `model_max_length` when tokenised
//! (keeping BOS, cutting the end); image prompts are not truncated here, but the collator
//! ([`crate::batch::collate`]) cuts every row to `model_max_length`, as `DataCollatorForSupervisedDataset` does. The
//! mismatch check is skipped when the masked length reaches `model_max_length` (`if cur_len <
//! tokenizer.model_max_length`).
//!
//! The counts this produces depend on the tokenizer; they are checked against the original on the fixture
//! `tests/fixtures/train-step` (both templates, both masking variants).

use std::fmt;
use std::path::{Path, PathBuf};

use biqa_data::{ConversationRecord, Turn};
use biqa_model::{Conversation, IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX, Tokenizer, prompt_ids_i64};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{RecordProblem, Result, TrainError};

/// The label of positions that are not supervised (`IGNORE_INDEX`).
pub const IGNORE_INDEX: i64 = -100;

/// `model_max_length` of the released training scripts (`--model_max_length 2048`).
pub const DEFAULT_MODEL_MAX_LENGTH: usize = 2048;

/// LLaVA's image placeholder, normalised to [`IMAGE_PLACEHOLDER`] in records that have an image.
pub const LLAVA_IMAGE_PLACEHOLDER: &str = "<image>";

/// The role of human turns.
pub const HUMAN: &str = "human";

/// The role of assistant turns.
pub const GPT: &str = "gpt";

/// The conversation template (`--version` of train.py). Both are `version="v1"`, so both are masked by
/// `preprocess_v1`; roles `USER` / `ASSISTANT`, separators `" "` and `"</s>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// `--version v1` → `conv_vicuna_v1` (`SeparatorStyle.TWO`, the Vicuna system prompt first). What every
    /// released Q-Align, Q-Instruct and mPLUG-Owl2 finetune script passes.
    #[default]
    V1,
    /// `--version mplug_owl2` → `conv_mplug_owl2` (`SeparatorStyle.TWO_NO_SYS`, no system prompt).
    MplugOwl2,
}

impl Template {
    /// The inference-side template with the same text ([`Conversation`]).
    #[must_use]
    pub fn conversation(self) -> Conversation {
        match self {
            Template::V1 => Conversation::VicunaV1,
            Template::MplugOwl2 => Conversation::MplugOwl2,
        }
    }

    /// `conv.get_prompt()` for `messages` alternating `USER`, `ASSISTANT`, `USER`, … by position: the system prompt
    /// and `" "` first (v1 only), then `"ROLE: message"` followed by `" "` after user messages and `"</s>"` after
    /// assistant messages; an empty message gives `"ROLE:"` alone, as in the original.
    #[must_use]
    pub fn render(self, messages: &[&str]) -> String {
        const ROLES: [&str; 2] = ["USER", "ASSISTANT"];
        const SEPS: [&str; 2] = [" ", "</s>"];
        let mut out = String::new();
        if self == Template::V1 {
            out.push_str(self.conversation().system());
            out.push_str(SEPS[0]);
        }
        for (i, message) in messages.iter().enumerate() {
            out.push_str(ROLES[i % 2]);
            out.push(':');
            if !message.is_empty() {
                out.push(' ');
                out.push_str(message);
                out.push_str(SEPS[i % 2]);
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Template::V1 => "v1",
            Template::MplugOwl2 => "mplug_owl2",
        })
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    /// The `conv_templates` keys of train.py that select these templates: `v1` / `vicuna_v1`, `mplug_owl2`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1" | "vicuna_v1" => Ok(Template::V1),
            "mplug_owl2" => Ok(Template::MplugOwl2),
            other => Err(format!(
                "unknown conversation template {other:?} (v1, mplug_owl2)"
            )),
        }
    }
}

/// Which `preprocess_v1` computes the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskingVariant {
    /// mPLUG-Owl2's `train/train.py` (what the released models were trained with): `cur_len = 1`,
    /// `instruction_len = len(instruction) − 2`, `round_len = len(round)`.
    #[default]
    MplugOwl2,
    /// Q-Align's own `train_mem.py` (informational): `cur_len = 2`, `instruction_len = len(instruction) − 3` for
    /// image samples (−2 for text-only), `round_len = len(round) − 1`. With the tiny fixture tokenizer it masks the
    /// first answer token of text-only samples and flags multi-turn image samples as mismatched.
    QalignTrainMem,
}

/// How records become training samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenizeOptions {
    /// The conversation template (default [`Template::V1`]).
    pub template: Template,
    /// The masking code (default [`MaskingVariant::MplugOwl2`]).
    pub variant: MaskingVariant,
    /// `tokenizer.model_max_length` (default [`DEFAULT_MODEL_MAX_LENGTH`]).
    pub model_max_length: usize,
    /// `--image_folder`: joined in front of every record's image path when set.
    pub image_folder: Option<PathBuf>,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            template: Template::V1,
            variant: MaskingVariant::MplugOwl2,
            model_max_length: DEFAULT_MODEL_MAX_LENGTH,
            image_folder: None,
        }
    }
}

/// A tokenisation mismatch (`"WARNING: tokenization mismatch: {cur_len} vs. {total_len}. (ignored)"`): the
/// masking loop's length does not equal the number of non-pad ids, so the original sets every label to −100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mismatch {
    /// `cur_len`: the length the masking loop accounted for.
    pub cur_len: usize,
    /// `total_len`: the number of ids that are not the pad (= unk) id.
    pub total_len: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tokenization mismatch: {} vs. {}",
            self.cur_len, self.total_len
        )
    }
}

/// One tokenised training sample (what `LazySupervisedDataset.__getitem__` returns, plus bookkeeping).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedSample {
    /// The record's `id` (`#<index>` when it has none).
    pub id: String,
    /// The record's position in its file (0-based).
    pub index: usize,
    /// The prompt that was tokenised.
    pub prompt: String,
    /// Token ids, with [`IMAGE_TOKEN_INDEX`] (−200) for the image.
    pub input_ids: Vec<i64>,
    /// Labels, same length: the id where supervised, [`IGNORE_INDEX`] (−100) elsewhere.
    pub labels: Vec<i64>,
    /// The image (joined to [`TokenizeOptions::image_folder`]), `None` for text-only samples.
    pub image: Option<PathBuf>,
    /// Set when the masking does not add up; the labels are then all −100.
    pub mismatch: Option<Mismatch>,
    /// Whether the ids were cut at `model_max_length` (text-only samples only).
    pub truncated: bool,
}

impl TokenizedSample {
    /// The number of supervised labels (not −100).
    #[must_use]
    pub fn n_supervised(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }

    /// The number of image placeholders (−200) in the ids.
    #[must_use]
    pub fn n_image_tokens(&self) -> usize {
        self.input_ids
            .iter()
            .filter(|&&id| id == IMAGE_TOKEN_INDEX)
            .count()
    }
}

/// A dataset file after tokenisation.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedDataset {
    /// The file.
    pub path: PathBuf,
    /// The samples to train on, in file order.
    pub samples: Vec<TokenizedSample>,
    /// The samples set aside because of a tokenisation [`Mismatch`] (the original would keep them with every label
    /// −100: compute without any loss).
    pub skipped: Vec<TokenizedSample>,
}

impl TokenizedDataset {
    /// The number of records in the file.
    #[must_use]
    pub fn n_records(&self) -> usize {
        self.samples.len() + self.skipped.len()
    }

    /// The number of truncated samples, kept or skipped.
    #[must_use]
    pub fn n_truncated(&self) -> usize {
        self.samples
            .iter()
            .chain(&self.skipped)
            .filter(|s| s.truncated)
            .count()
    }
}

fn data_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Data {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a dataset file: a JSON list of LLaVA / Q-Align records (see the [module docs](self) for what is accepted).
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read; [`TrainError::Data`] naming the file (and the record) for bad
/// JSON and malformed records.
pub fn read_records(path: impl AsRef<Path>) -> Result<Vec<ConversationRecord>> {
    let path = path.as_ref();
    let text =
        biqa_core::read_text(path, biqa_core::DATA_LIMIT).map_err(|source| TrainError::Io {
            path: path.to_owned(),
            source,
        })?;
    parse_records(&text, path)
}

/// Parses the text of a dataset file; `path` names the file in errors.
///
/// # Errors
/// [`TrainError::Data`] naming `path` (and the record) for bad JSON and malformed records.
pub fn parse_records(json: &str, path: &Path) -> Result<Vec<ConversationRecord>> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| data_error(path, format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(data_error(
            path,
            "expected a JSON list of conversation records",
        ));
    };
    if items.is_empty() {
        return Err(data_error(path, "no records (empty list)"));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            parse_record(item, index).map_err(|reason| {
                let id = item
                    .get("id")
                    .map(|v| format!(" (id {:?})", id_text(v)))
                    .unwrap_or_default();
                data_error(path, format!("record {index}{id}: {reason}"))
            })
        })
        .collect()
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_record(item: &Value, index: usize) -> std::result::Result<ConversationRecord, String> {
    let Value::Object(map) = item else {
        return Err("not a JSON object".into());
    };
    let id = match map.get("id") {
        None | Some(Value::Null) => format!("#{index}"),
        Some(v) => id_text(v),
    };
    let image = match map.get("image").or_else(|| map.get("img_path")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(_)) => {
            return Err("`image` is a list; one image per sample is supported".into());
        }
        Some(other) => return Err(format!("`image` is not a string: {other}")),
    };
    let turns = match map.get("conversations") {
        None | Some(Value::Null) => return Err("missing `conversations`".into()),
        Some(Value::Array(turns)) => turns,
        Some(_) => return Err("`conversations` is not a list".into()),
    };
    if turns.is_empty() {
        return Err("empty `conversations`".into());
    }
    let conversations = turns
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let field = |name: &str| match t.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(format!("turn {j}: missing string `{name}`")),
            };
            Ok(Turn {
                from: field("from")?,
                value: field("value")?,
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let gt_score = map.get("gt_score").and_then(Value::as_f64);
    Ok(ConversationRecord {
        id,
        image,
        conversations,
        gt_score,
    })
}

/// Python's `str.isspace` for one character.
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// `preprocess_multimodal` for the turns of a record that has an image: LLaVA's `<image>` is normalised to
/// `<|image|>`, then every turn containing `<|image|>` has all of them removed, is stripped, and gets
/// `"<|image|>\n"` in front (then stripped again). Other turns are unchanged.
#[must_use]
pub fn preprocess_multimodal(turns: &[Turn]) -> Vec<Turn> {
    turns
        .iter()
        .map(|t| {
            let value = t.value.replace(LLAVA_IMAGE_PLACEHOLDER, IMAGE_PLACEHOLDER);
            let value = if value.contains(IMAGE_PLACEHOLDER) {
                let rest = value.replace(IMAGE_PLACEHOLDER, "");
                py_strip(&format!("{IMAGE_PLACEHOLDER}\n{}", py_strip(&rest))).to_owned()
            } else {
                value
            };
            Turn {
                from: t.from.clone(),
                value,
            }
        })
        .collect()
}

/// The turns `preprocess_v1` renders: a first turn not from `human` is dropped; the rest must alternate `human` /
/// `gpt` starting with `human`.
fn checked_turns(turns: &[Turn]) -> std::result::Result<&[Turn], RecordProblem> {
    let role_index = |t: &Turn, j: usize| match t.from.as_str() {
        HUMAN => Ok(0),
        GPT => Ok(1),
        other => Err(RecordProblem::UnknownRole {
            turn: j,
            role: other.to_owned(),
        }),
    };
    let Some(first) = turns.first() else {
        return Err(RecordProblem::EmptyConversations);
    };
    let skip = usize::from(role_index(first, 0)? != 0);
    let rest = &turns[skip..];
    for (j, t) in rest.iter().enumerate() {
        if role_index(t, j + skip)? != j % 2 {
            return Err(RecordProblem::RoleOrder {
                turn: j + skip,
                expected: if j % 2 == 0 { HUMAN } else { GPT },
                found: t.from.clone(),
            });
        }
    }
    Ok(rest)
}

/// The prompt `preprocess_v1` tokenises for `record` (see the [module docs](self)).
///
/// # Errors
/// [`TrainError::Record`] naming the record for bad role order or unknown roles.
pub fn prompt(record: &ConversationRecord, template: Template) -> Result<String> {
    prompt_text(record, template).map_err(|problem| TrainError::Record {
        index: None,
        id: record.id.clone(),
        problem,
    })
}

fn prompt_text(
    record: &ConversationRecord,
    template: Template,
) -> std::result::Result<String, RecordProblem> {
    let turns = if record.image.is_some() {
        preprocess_multimodal(&record.conversations)
    } else {
        record.conversations.clone()
    };
    let turns = checked_turns(&turns)?;
    let messages: Vec<&str> = turns.iter().map(|t| t.value.as_str()).collect();
    Ok(template.render(&messages))
}

/// `len(tokenizer_image_token(text))` or `len(tokenizer(text).input_ids)`.
fn token_len(tokenizer: &Tokenizer, text: &str, has_image: bool) -> usize {
    if has_image {
        tokenizer.encode_with_images(text).len()
    } else {
        tokenizer.encode_input_ids(text).len()
    }
}

/// Sets `target[start:end]` (Python slice semantics, negative bounds from the end) to −100.
fn ignore_slice(target: &mut [i64], start: i64, end: Option<i64>) {
    let len = i64::try_from(target.len()).unwrap_or(i64::MAX);
    let resolve = |i: i64| {
        let i = if i < 0 { i + len } else { i };
        usize::try_from(i.clamp(0, len)).unwrap_or(0)
    };
    let (s, e) = (resolve(start), end.map_or(target.len(), resolve));
    if s < e {
        target[s..e].fill(IGNORE_INDEX);
    }
}

/// The labels of `input_ids` (the tokenised `prompt`), masked as `preprocess_v1` does:
///
/// ```text
/// sep = " ASSISTANT: "; cur_len = 1 (Q-Align: 2); labels[:cur_len] = -100
/// for rou in prompt.split("</s>"):             # stop at "" or when rou.split(sep) has != 2 parts
///     round_len = len(tok(rou))                # Q-Align: - 1
///     instruction_len = len(tok(rou.split(sep)[0] + sep)) - 2   # Q-Align image samples: - 3
///     labels[cur_len : cur_len + instruction_len] = -100
///     cur_len += round_len
/// labels[cur_len:] = -100
/// if cur_len < model_max_length and cur_len != (input_ids != pad).sum(): labels[:] = -100   # mismatch
/// ```
///
/// `tok` is `tokenizer_image_token` when `has_image`, else `tokenizer(…).input_ids`; pad is the unk id, as
/// `train()` sets it. Returns the labels and the mismatch, if any.
#[must_use]
pub fn mask_labels(
    tokenizer: &Tokenizer,
    prompt: &str,
    input_ids: &[i64],
    has_image: bool,
    variant: MaskingVariant,
    model_max_length: usize,
) -> (Vec<i64>, Option<Mismatch>) {
    const SEP: &str = " ASSISTANT: ";
    const SEP2: &str = "</s>";
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let qalign = variant == MaskingVariant::QalignTrainMem;
    let pad = i64::from(tokenizer.unk_id());
    let total_len = input_ids.iter().filter(|&&id| id != pad).count();
    let mut target = input_ids.to_vec();
    let mut cur_len: i64 = if qalign { 2 } else { 1 };
    ignore_slice(&mut target, 0, Some(cur_len));
    for rou in prompt.split(SEP2) {
        if rou.is_empty() {
            break;
        }
        let parts: Vec<&str> = rou.split(SEP).collect();
        if parts.len() != 2 {
            break;
        }
        let instruction = format!("{}{SEP}", parts[0]);
        let mut round_len = to_i64(token_len(tokenizer, rou, has_image));
        let minus = if qalign && has_image { 3 } else { 2 };
        let instruction_len = to_i64(token_len(tokenizer, &instruction, has_image)) - minus;
        if qalign {
            round_len -= 1;
        }
        ignore_slice(&mut target, cur_len, Some(cur_len + instruction_len));
        cur_len += round_len;
    }
    ignore_slice(&mut target, cur_len, None);
    let mut mismatch = None;
    if cur_len < to_i64(model_max_length) && cur_len != to_i64(total_len) {
        target.fill(IGNORE_INDEX);
        mismatch = Some(Mismatch {
            cur_len: usize::try_from(cur_len).unwrap_or(0),
            total_len,
        });
    }
    (target, mismatch)
}

/// Tokenises one record and masks its labels (`LazySupervisedDataset.__getitem__` without the image pixels).
/// `index` is the record's position in its file.
///
/// # Errors
/// [`TrainError::Record`] naming the record for bad role order, unknown roles, or more than one `<|image|>` after
/// `preprocess_multimodal` (the original would take the next sample's image for the second one).
pub fn tokenize_record(
    tokenizer: &Tokenizer,
    record: &ConversationRecord,
    index: usize,
    options: &TokenizeOptions,
) -> Result<TokenizedSample> {
    tokenize(tokenizer, record, index, options).map_err(|problem| TrainError::Record {
        index: Some(index),
        id: record.id.clone(),
        problem,
    })
}

fn tokenize(
    tokenizer: &Tokenizer,
    record: &ConversationRecord,
    index: usize,
    options: &TokenizeOptions,
) -> std::result::Result<TokenizedSample, RecordProblem> {
    let text = prompt_text(record, options.template)?;
    let has_image = record.image.is_some();
    let mut truncated = false;
    let input_ids = if has_image {
        prompt_ids_i64(&tokenizer.encode_with_images(&text))
    } else {
        // tokenizer(prompt, max_length, truncation=True): the text ids are cut so that they fit with the special
        // tokens.
        let mut ids = tokenizer.encode(&text, false);
        let specials =
            usize::from(tokenizer.add_bos_token()) + usize::from(tokenizer.add_eos_token());
        let room = options.model_max_length.saturating_sub(specials);
        if ids.len() > room {
            ids.truncate(room);
            truncated = true;
        }
        let mut out = Vec::with_capacity(ids.len() + specials);
        if tokenizer.add_bos_token() {
            out.push(i64::from(tokenizer.bos_id()));
        }
        out.extend(ids.into_iter().map(i64::from));
        if tokenizer.add_eos_token() {
            out.push(i64::from(tokenizer.eos_id()));
        }
        out
    };
    let n_images = input_ids
        .iter()
        .filter(|&&id| id == IMAGE_TOKEN_INDEX)
        .count();
    if n_images > 1 {
        return Err(RecordProblem::ImagePlaceholders { count: n_images });
    }
    let (labels, mismatch) = mask_labels(
        tokenizer,
        &text,
        &input_ids,
        has_image,
        options.variant,
        options.model_max_length,
    );
    let image = record.image.as_ref().map(|p| match &options.image_folder {
        Some(dir) => dir.join(p),
        None => PathBuf::from(p),
    });
    Ok(TokenizedSample {
        id: record.id.clone(),
        index,
        prompt: text,
        input_ids,
        labels,
        image,
        mismatch,
        truncated,
    })
}

/// Tokenises records read from `path` (named in errors); mismatched samples go to
/// [`TokenizedDataset::skipped`].
///
/// # Errors
/// [`TrainError::Data`] naming `path`, the record's index and id, when a record cannot be used (see
/// [`tokenize_record`]).
pub fn tokenize_records(
    tokenizer: &Tokenizer,
    records: &[ConversationRecord],
    options: &TokenizeOptions,
    path: &Path,
) -> Result<TokenizedDataset> {
    let mut samples = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let sample = tokenize(tokenizer, record, index, options).map_err(|problem| {
            data_error(
                path,
                format!("record {index} (id {:?}): {problem}", record.id),
            )
        })?;
        if sample.mismatch.is_some() {
            skipped.push(sample);
        } else {
            samples.push(sample);
        }
    }
    Ok(TokenizedDataset {
        path: path.to_owned(),
        samples,
        skipped,
    })
}

/// Reads and tokenises a dataset file ([`read_records`] then [`tokenize_records`]).
///
/// # Errors
/// See [`read_records`] and [`tokenize_records`].
pub fn load_dataset(
    path: impl AsRef<Path>,
    tokenizer: &Tokenizer,
    options: &TokenizeOptions,
) -> Result<TokenizedDataset> {
    let path = path.as_ref();
    let records = read_records(path)?;
    tokenize_records(tokenizer, &records, options, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(from: &str, value: &str) -> Turn {
        Turn {
            from: from.into(),
            value: value.into(),
        }
    }

    #[test]
    fn render_agrees_with_the_inference_templates() {
        for t in [Template::V1, Template::MplugOwl2] {
            assert_eq!(
                t.render(&["q1", "a1", "q2", "a2"]),
                t.conversation()
                    .render(&[("q1", Some("a1")), ("q2", Some("a2"))])
            );
        }
        // A trailing user turn and an empty message, as get_prompt renders them.
        assert_eq!(
            Template::MplugOwl2.render(&["q", "", "r"]),
            "USER: q ASSISTANT:USER: r "
        );
        assert_eq!("vicuna_v1".parse::<Template>(), Ok(Template::V1));
        assert!("v0".parse::<Template>().is_err());
    }

    #[test]
    fn multimodal_placeholder() {
        let out = preprocess_multimodal(&[
            turn(HUMAN, "  Rate <image> this.\n"),
            turn(GPT, "Fine."),
            turn(HUMAN, "<|image|>"),
        ]);
        assert_eq!(out[0].value, "<|image|>\nRate  this.");
        assert_eq!(out[1].value, "Fine.");
        assert_eq!(out[2].value, "<|image|>");
    }

    #[test]
    fn role_order() {
        let ok = [turn(GPT, "hello"), turn(HUMAN, "q"), turn(GPT, "a")];
        assert_eq!(checked_turns(&ok).map(<[Turn]>::len), Ok(2));
        assert!(checked_turns(&[turn(HUMAN, "q"), turn(HUMAN, "q")]).is_err());
        assert!(checked_turns(&[turn("system", "q")]).is_err());
        assert!(checked_turns(&[turn(GPT, "a"), turn(GPT, "a")]).is_err());
    }

    #[test]
    fn python_slices() {
        let mut t = vec![1, 2, 3, 4];
        ignore_slice(&mut t, 1, Some(-1));
        assert_eq!(t, [1, -100, -100, 4]);
        let mut t = vec![1, 2, 3, 4];
        ignore_slice(&mut t, 3, Some(9));
        ignore_slice(&mut t, 7, None);
        ignore_slice(&mut t, 2, Some(1));
        assert_eq!(t, [1, 2, 3, -100]);
    }
}
