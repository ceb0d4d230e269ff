//! The LLaMA tokenizer exactly as mPLUG-Owl2 and Q-Align use it: transformers 4.31's **slow** `LlamaTokenizer`
//! (`use_fast=False`, `legacy=True` by default) on top of sentencepiece.
//!
//! # How it is built, and why
//!
//! The reference is the slow tokenizer, so this module re-implements the two layers it consists of, in Rust and
//! without C/C++ dependencies:
//!
//! 1. **sentencepiece** (`spm`): the BPE segmentation of `bpe_model.cc` — characters, then repeated merges of the
//!    adjacent pair whose concatenation is the highest-scoring piece, ties to the leftmost pair — with the identity
//!    normaliser (dummy prefix `▁`, spaces escaped to `▁`), byte fallback (`<0xHH>` pieces for characters outside the
//!    vocabulary) and the decoder (byte runs decoded with one U+FFFD per invalid byte, valid bytes kept; the `▁` of
//!    the first piece dropped).
//! 2. **transformers** (this file): `tokenize` splits the text on the special tokens first (`<s>`, `</s>`, `<unk>`
//!    and any added token are matched literally, honouring their `lstrip`/`rstrip` flags), encodes each remaining
//!    chunk separately (each with its own dummy prefix), and `legacy=False` adds 4.31's prefix handling;
//!    `decode` turns special tokens into their text outside sentencepiece, with the 4.31 quirk of a space *before*
//!    the text that precedes a special token and no `▁`-space after one (`[▁n, <0x8B>, <0x58>, </s>]` →
//!    `" n�X</s>"`).
//!
//! The `tokenizers` crate was not used: it is the *fast* tokenizer, which differs from the slow one exactly where
//! it matters here (the 4.31 `tokenizer.json` does not match `</s>` in text, and it decodes invalid byte runs to
//! U+FFFD for every byte), its BPE applies merges by list rank instead of sentencepiece's score-then-position
//! order, and its default features build C/C++ code.
//!
//! # Files
//!
//! [`Tokenizer::from_dir`] reads `tokenizer.model` when it exists (the file the slow tokenizer reads, and the only
//! one in the released mPLUG-Owl2 / Q-Align folders): a SentencePiece `ModelProto`, parsed by a small protobuf
//! reader. Only when it is absent does it read `tokenizer.json`: the vocabulary, the byte-fallback flag and the
//! merges, whose order (transformers' `LlamaConverter` sorts them by the merged piece's score) gives each merged
//! piece its priority; the sentencepiece algorithm then runs on those priorities, so the result is the slow one,
//! not the fast one. This is exact whenever the pieces' scores are distinct (as in every BPE model sentencepiece
//! trains, and in the fixtures); pieces with *equal* scores, which sentencepiece orders by position, are ordered by
//! id. That is why `tokenizer.model` wins when both files exist.
//!
//! `tokenizer_config.json` (`add_bos_token`, `add_eos_token`, `legacy`, `clean_up_tokenization_spaces`, the
//! special tokens), `special_tokens_map.json` (overrides the special tokens, as `from_pretrained` does) and
//! `added_tokens.json` are read when present; without them the `LlamaTokenizer` defaults apply (`<s>`, `</s>`,
//! `<unk>`, no pad, BOS added, EOS not, legacy). A tokenizer built from `tokenizer.json` takes its added tokens from
//! that file (those with ids beyond the vocabulary) instead of `added_tokens.json`.
//!
//! Special tokens are matched leftmost-longest, which is what transformers' `Trie` does for the LLaMA special
//! tokens (none is a prefix or infix of another).

mod config;
mod json;
mod proto;
mod spm;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use config::{BOS, EOS, HfConfig, PAD, ROLES, SpecialToken, UNK};
use spm::{PieceKind, SPACE_SYMBOL, SpModel};

/// The image placeholder of mPLUG-Owl2 prompts (`DEFAULT_IMAGE_TOKEN`; [`biqa_core::IMAGE_TOKEN`]).
pub use biqa_core::IMAGE_TOKEN as DEFAULT_IMAGE_TOKEN;

/// The id mPLUG-Owl2 puts in `input_ids` for an image (`IMAGE_TOKEN_INDEX`).
pub const IMAGE_TOKEN_INDEX: i64 = -200;

/// Which file a [`Tokenizer`] was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenizerSource {
    /// `tokenizer.model`, a SentencePiece model.
    SentencePiece,
    /// `tokenizer.json`, a fast-tokenizer file.
    TokenizerJson,
}

/// One position of an mPLUG-Owl2 prompt: a text token or an image placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptToken {
    /// A token id.
    Text(u32),
    /// An image: the model replaces it by the image's visual tokens.
    Image,
}

impl PromptToken {
    /// The id in mPLUG-Owl2's `input_ids` convention: the token id, or [`IMAGE_TOKEN_INDEX`] (-200) for an image.
    #[must_use]
    pub fn to_i64(self) -> i64 {
        match self {
            Self::Text(id) => i64::from(id),
            Self::Image => IMAGE_TOKEN_INDEX,
        }
    }

    /// The token id, `None` for an image.
    #[must_use]
    pub fn text_id(self) -> Option<u32> {
        match self {
            Self::Text(id) => Some(id),
            Self::Image => None,
        }
    }
}

/// A prompt in mPLUG-Owl2's `input_ids` convention (images as [`IMAGE_TOKEN_INDEX`]).
#[must_use]
pub fn prompt_ids_i64(tokens: &[PromptToken]) -> Vec<i64> {
    tokens.iter().map(|t| t.to_i64()).collect()
}

/// The slow LLaMA tokenizer of transformers 4.31 (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    sp: SpModel,
    path: PathBuf,
    source: TokenizerSource,
    /// Added tokens (`added_tokens_encoder`), ids from `sp.len()` on.
    added: Vec<String>,
    added_ids: HashMap<String, u32>,
    /// `unique_no_split_tokens`.
    no_split: Vec<String>,
    /// Strip flags of the special tokens that are `AddedToken`s (`all_special_tokens_extended`).
    strip_flags: HashMap<String, (bool, bool)>,
    /// `all_special_tokens`.
    special_strings: HashSet<String>,
    /// `all_special_ids`.
    special_ids: HashSet<u32>,
    bos_id: u32,
    eos_id: u32,
    unk_id: u32,
    pad_id: Option<u32>,
    add_bos_token: bool,
    add_eos_token: bool,
    legacy: bool,
    clean_up_tokenization_spaces: bool,
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Python's `str.isspace` for one character (Rust's `char::is_whitespace` plus U+001C..U+001F).
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// transformers' `clean_up_tokenization`.
fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl Tokenizer {
    /// Loads the tokenizer of a checkpoint directory: `tokenizer.model` if present, else `tokenizer.json`, plus
    /// `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json` when present.
    ///
    /// # Errors
    /// [`ModelError::TokenizerFilesMissing`] when neither tokenizer file exists;
    /// [`ModelError::CorruptSentencePieceModel`], [`ModelError::MalformedTokenizerJson`],
    /// [`ModelError::MalformedTokenizerConfig`], [`ModelError::UnsupportedTokenizer`] or [`ModelError::Io`] naming
    /// the file otherwise.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let model_path = dir.join("tokenizer.model");
        let json_path = dir.join("tokenizer.json");
        if model_path.is_file() {
            let bytes = biqa_core::read_bytes(&model_path, biqa_core::CONFIG_LIMIT)
                .map_err(|e| io_error(&model_path, e))?;
            let sp = proto::parse_model(&bytes).map_err(|e| match e {
                proto::ProtoError::Corrupt(reason) => ModelError::CorruptSentencePieceModel {
                    path: model_path.clone(),
                    reason,
                },
                proto::ProtoError::Unsupported(reason) => ModelError::UnsupportedTokenizer {
                    path: model_path.clone(),
                    reason,
                },
            })?;
            let cfg = config::read_config(dir)?;
            let added = cfg.added_tokens.clone();
            let added_file = cfg.added_tokens_file.clone();
            Self::build(
                sp,
                model_path,
                TokenizerSource::SentencePiece,
                cfg,
                &added,
                &added_file,
            )
        } else if json_path.is_file() {
            let text = biqa_core::read_text(&json_path, biqa_core::CONFIG_LIMIT)
                .map_err(|e| io_error(&json_path, e))?;
            let (sp, extra) = json::parse_tokenizer_json(&text).map_err(|e| match e {
                json::JsonError::Malformed(reason) => ModelError::MalformedTokenizerJson {
                    path: json_path.clone(),
                    reason,
                },
                json::JsonError::Unsupported(reason) => ModelError::UnsupportedTokenizer {
                    path: json_path.clone(),
                    reason,
                },
            })?;
            let cfg = config::read_config(dir)?;
            let added: Vec<(String, u64)> = extra
                .into_iter()
                .map(|t| (t.content, u64::from(t.id)))
                .collect();
            let path = json_path.clone();
            Self::build(
                sp,
                json_path,
                TokenizerSource::TokenizerJson,
                cfg,
                &added,
                &path,
            )
        } else {
            Err(ModelError::TokenizerFilesMissing {
                dir: dir.to_owned(),
            })
        }
    }

    /// `from_pretrained`'s bookkeeping: added tokens, then `sanitize_special_tokens`.
    fn build(
        sp: SpModel,
        path: PathBuf,
        source: TokenizerSource,
        cfg: HfConfig,
        added_tokens: &[(String, u64)],
        added_file: &Path,
    ) -> Result<Self> {
        let mut tok = Self {
            sp,
            path,
            source,
            added: Vec::new(),
            added_ids: HashMap::new(),
            no_split: Vec::new(),
            strip_flags: HashMap::new(),
            special_strings: HashSet::new(),
            special_ids: HashSet::new(),
            bos_id: 0,
            eos_id: 0,
            unk_id: 0,
            pad_id: None,
            add_bos_token: cfg.add_bos_token,
            add_eos_token: cfg.add_eos_token,
            legacy: cfg.legacy,
            clean_up_tokenization_spaces: cfg.clean_up_tokenization_spaces,
        };
        let config_path = tok.path.with_file_name("tokenizer_config.json");
        let missing = |role: &str| ModelError::MalformedTokenizerConfig {
            path: config_path.clone(),
            reason: format!("{role} is null; a LLaMA tokenizer needs it"),
        };
        let unk = cfg.roles[UNK].clone().ok_or_else(|| missing("unk_token"))?;

        // all_special_tokens_extended: role order, then additional_special_tokens, duplicates removed.
        let mut extended: Vec<SpecialToken> = Vec::new();
        for t in cfg.roles.iter().flatten().chain(cfg.additional.iter()) {
            if !extended.contains(t) {
                extended.push(t.clone());
            }
        }
        let specials_before: HashSet<String> = extended.iter().map(|t| t.content.clone()).collect();

        // added_tokens.json (or tokenizer.json's added tokens beyond the vocabulary), by id.
        for (content, index) in added_tokens {
            let expected = tok.len_u32();
            if *index != u64::from(expected) {
                return Err(ModelError::MalformedTokenizerConfig {
                    path: added_file.to_owned(),
                    reason: format!(
                        "added token {content:?} has id {index}; the next free id is {expected}"
                    ),
                });
            }
            let is_special = specials_before.contains(content);
            let added = tok.maybe_add(content, &unk.content);
            if is_special || added {
                tok.insert_no_split(content);
            }
        }
        // sanitize_special_tokens: special tokens missing from the vocabulary get new ids.
        for t in &extended {
            tok.maybe_add(&t.content, &unk.content);
            tok.insert_no_split(&t.content);
        }
        for t in &extended {
            if t.added_token {
                tok.strip_flags
                    .insert(t.content.clone(), (t.lstrip, t.rstrip));
            }
            tok.special_strings.insert(t.content.clone());
            tok.special_ids.insert(tok.hf_token_to_id(&t.content));
        }
        let id_of = |tok: &Self, i: usize, role: &str| -> Result<u32> {
            let t = cfg.roles[i].as_ref().ok_or_else(|| missing(role))?;
            Ok(tok.hf_token_to_id(&t.content))
        };
        tok.bos_id = id_of(&tok, BOS, ROLES[BOS])?;
        tok.eos_id = id_of(&tok, EOS, ROLES[EOS])?;
        tok.unk_id = tok.hf_token_to_id(&unk.content);
        tok.pad_id = cfg.roles[PAD]
            .as_ref()
            .map(|t| tok.hf_token_to_id(&t.content));
        Ok(tok)
    }

    fn len_u32(&self) -> u32 {
        // `SpModel::new` caps the vocabulary at u32::MAX pieces; added tokens are few.
        u32::try_from(self.sp.len() + self.added.len()).unwrap_or(u32::MAX)
    }

    /// `_add_tokens` for one token: adds it when it is not the unknown token and is not in the vocabulary.
    fn maybe_add(&mut self, content: &str, unk: &str) -> bool {
        if content == unk || self.hf_token_to_id(content) != self.hf_token_to_id(unk) {
            return false;
        }
        let id = self.len_u32();
        self.added.push(content.to_owned());
        self.added_ids.insert(content.to_owned(), id);
        true
    }

    fn insert_no_split(&mut self, content: &str) {
        if !self.no_split.iter().any(|t| t == content) {
            self.no_split.push(content.to_owned());
        }
    }

    /// `convert_tokens_to_ids` for one token: added tokens, then the vocabulary, else the unknown id.
    fn hf_token_to_id(&self, token: &str) -> u32 {
        self.added_ids
            .get(token)
            .copied()
            .unwrap_or_else(|| self.sp.piece_to_id(token))
    }

    /// The file the tokenizer was built from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which kind of file the tokenizer was built from.
    #[must_use]
    pub fn source(&self) -> TokenizerSource {
        self.source
    }

    /// Number of ids: the vocabulary plus added tokens (`len(tokenizer)`).
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.sp.len() + self.added.len()
    }

    /// Checks that the tokenizer has `expected` ids (usually the model's `vocab_size`).
    ///
    /// # Errors
    /// [`ModelError::VocabSizeMismatch`] naming the tokenizer file and both sizes.
    pub fn check_vocab_size(&self, expected: usize) -> Result<()> {
        if self.vocab_size() == expected {
            Ok(())
        } else {
            Err(ModelError::VocabSizeMismatch {
                path: self.path.clone(),
                actual: self.vocab_size(),
                expected,
            })
        }
    }

    /// The id of `<s>` (`bos_token_id`).
    #[must_use]
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// The id of `</s>` (`eos_token_id`).
    #[must_use]
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The id of `<unk>` (`unk_token_id`).
    #[must_use]
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// The id of the pad token, `None` when the configuration sets none (the LLaMA default).
    #[must_use]
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// `add_bos_token` of the configuration (what [`Tokenizer::encode_input_ids`] does).
    #[must_use]
    pub fn add_bos_token(&self) -> bool {
        self.add_bos_token
    }

    /// `add_eos_token` of the configuration (what [`Tokenizer::encode_input_ids`] does).
    #[must_use]
    pub fn add_eos_token(&self) -> bool {
        self.add_eos_token
    }

    /// Whether the tokenizer uses transformers' legacy behaviour (`legacy`, default true).
    #[must_use]
    pub fn legacy(&self) -> bool {
        self.legacy
    }

    /// Whether `id` is a special token (`all_special_ids`: `<s>`, `</s>`, `<unk>`, pad, additional ones).
    #[must_use]
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// The id of a piece or added token, `None` when it is not in the vocabulary.
    #[must_use]
    pub fn token_to_id(&self, piece: &str) -> Option<u32> {
        self.added_ids
            .get(piece)
            .copied()
            .or_else(|| self.sp.lookup(piece))
    }

    /// The piece of an id (`▁the`, `<0x0A>`, `</s>`, an added token), `None` when the id is out of range.
    #[must_use]
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        match self.sp.piece(id) {
            Some(p) => Some(p),
            None => self
                .added
                .get((id as usize).checked_sub(self.sp.len())?)
                .map(String::as_str),
        }
    }

    /// transformers' `tokenize(text)`: the pieces of `text`, without BOS/EOS.
    #[must_use]
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let prepared;
        let text = if self.legacy {
            text
        } else {
            prepared = format!("{SPACE_SYMBOL}{}", text.replace(SPACE_SYMBOL, " "));
            &prepared
        };
        let mut chunks = self.split_on_special(text);
        // Strip the neighbours of special tokens as their flags say (plain strings strip both sides).
        for i in 0..chunks.len() {
            if !chunks[i].1 {
                continue;
            }
            let (lstrip, rstrip) = self
                .strip_flags
                .get(&chunks[i].0)
                .copied()
                .unwrap_or((true, true));
            if rstrip && i + 1 < chunks.len() && !chunks[i + 1].0.is_empty() {
                chunks[i + 1].0 = chunks[i + 1].0.trim_start_matches(py_is_space).to_owned();
            }
            if lstrip && i > 0 && !chunks[i - 1].0.is_empty() {
                chunks[i - 1].0 = chunks[i - 1].0.trim_end_matches(py_is_space).to_owned();
            }
        }
        let mut out = Vec::new();
        for (chunk, is_special) in chunks {
            if chunk.is_empty() {
                continue;
            }
            if is_special {
                out.push(chunk);
            } else {
                out.extend(self.tokenize_chunk(&chunk));
            }
        }
        out
    }

    /// `Trie.split`: the text cut around every special or added token (leftmost, longest match first); the flag
    /// marks the tokens.
    fn split_on_special(&self, text: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            let best = self
                .no_split
                .iter()
                .filter(|t| !t.is_empty() && rest.starts_with(t.as_str()))
                .max_by_key(|t| t.len());
            if let Some(t) = best {
                if pos > start {
                    out.push((text[start..pos].to_owned(), false));
                }
                out.push((t.clone(), true));
                pos += t.len();
                start = pos;
            } else {
                pos += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() || out.is_empty() {
            out.push((text[start..].to_owned(), false));
        }
        out
    }

    /// `LlamaTokenizer._tokenize` for one chunk between special tokens.
    fn tokenize_chunk(&self, chunk: &str) -> Vec<String> {
        if self.legacy {
            return self.sp.encode_pieces(chunk);
        }
        let (text, is_first) = match chunk.strip_prefix(SPACE_SYMBOL) {
            Some(rest) => (rest, true),
            None => (chunk, false),
        };
        let mut tokens = self.sp.encode_pieces(text);
        if !is_first
            && !text.starts_with(' ')
            && let Some(first) = tokens.first_mut()
            && let Some(rest) = first.strip_prefix(SPACE_SYMBOL)
        {
            if rest.is_empty() {
                tokens.remove(0);
            } else {
                *first = rest.to_owned();
            }
        }
        tokens
    }

    /// The ids of `text` as the slow tokenizer gives them (`tokenize` + `convert_tokens_to_ids`), with BOS in
    /// front when `add_bos`. Never adds EOS; see [`Tokenizer::encode_input_ids`] for the configured behaviour.
    #[must_use]
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        let pieces = self.tokenize(text);
        let mut ids = Vec::with_capacity(pieces.len() + 1);
        if add_bos {
            ids.push(self.bos_id);
        }
        ids.extend(pieces.iter().map(|p| self.hf_token_to_id(p)));
        ids
    }

    /// `tokenizer(text).input_ids`: the ids with BOS / EOS as `add_bos_token` / `add_eos_token` say.
    #[must_use]
    pub fn encode_input_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = self.encode(text, self.add_bos_token);
        if self.add_eos_token {
            ids.push(self.eos_id);
        }
        ids
    }

    /// mPLUG-Owl2's `tokenizer_image_token` with the `<|image|>` placeholder: see
    /// [`Tokenizer::encode_with_image_marker`].
    #[must_use]
    pub fn encode_with_images(&self, prompt: &str) -> Vec<PromptToken> {
        self.encode_with_image_marker(prompt, DEFAULT_IMAGE_TOKEN)
    }

    /// mPLUG-Owl2's `tokenizer_image_token`: the prompt is split on `marker`; every chunk is encoded on its own
    /// (`tokenizer(chunk).input_ids`, so with its own BOS and dummy-prefix `▁`; an empty chunk gives nothing); when
    /// the first chunk starts with BOS, that BOS is kept once and the first token of every other chunk is dropped;
    /// one [`PromptToken::Image`] goes between consecutive chunks. Any number of images is allowed. An empty
    /// `marker` matches nothing.
    #[must_use]
    pub fn encode_with_image_marker(&self, prompt: &str, marker: &str) -> Vec<PromptToken> {
        if marker.is_empty() {
            return self
                .encode_input_ids(prompt)
                .into_iter()
                .map(PromptToken::Text)
                .collect();
        }
        let chunks: Vec<Vec<u32>> = prompt
            .split(marker)
            .map(|c| {
                if c.is_empty() {
                    Vec::new()
                } else {
                    self.encode_input_ids(c)
                }
            })
            .collect();
        let mut out = Vec::new();
        let offset = usize::from(chunks.first().and_then(|c| c.first()) == Some(&self.bos_id));
        if offset == 1 {
            out.push(PromptToken::Text(self.bos_id));
        }
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                // The separator is `[IMAGE] * (offset + 1)`, cut by `offset` like a chunk.
                out.push(PromptToken::Image);
            }
            out.extend(chunk.iter().skip(offset).map(|&id| PromptToken::Text(id)));
        }
        out
    }

    /// The id of a Q-Align level word, as `scorer.py` computes it (`tokenizer(word).input_ids[1]`), checking that
    /// the word is exactly one token after BOS.
    ///
    /// # Errors
    /// [`ModelError::LevelWordNotSingleToken`] naming the word and its pieces.
    pub fn level_token_id(&self, word: &str) -> Result<u32> {
        let pieces = self.tokenize(word);
        match pieces.as_slice() {
            [one] => Ok(self.hf_token_to_id(one)),
            _ => Err(ModelError::LevelWordNotSingleToken {
                word: word.to_owned(),
                pieces,
            }),
        }
    }

    /// [`Tokenizer::level_token_id`] of every word (Q-Align: excellent, good, fair, poor, bad).
    ///
    /// # Errors
    /// The first word that is not a single token.
    pub fn level_token_ids<S: AsRef<str>>(&self, words: &[S]) -> Result<Vec<u32>> {
        words
            .iter()
            .map(|w| self.level_token_id(w.as_ref()))
            .collect()
    }

    /// transformers 4.31's `decode(ids, skip_special_tokens=skip_special)` of the slow tokenizer.
    ///
    /// Byte pieces are decoded as sentencepiece does (one U+FFFD per invalid byte, valid bytes kept). Without
    /// `skip_special`, special tokens appear as text with 4.31's spacing: a space before the text that precedes a
    /// special token (unless it is the first token or follows another special token), and the `▁` of the piece
    /// after it dropped (`[<s>, ▁The, ▁image, </s>, ▁USER, :]` → `"<s> The image</s>USER:"`). Added tokens are
    /// joined to the text around them with spaces. Ids outside the vocabulary are ignored.
    #[must_use]
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let text = self.decode_raw(ids, skip_special);
        if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        }
    }

    /// `_decode` without the final clean-up.
    fn decode_raw(&self, ids: &[u32], skip_special: bool) -> String {
        let mut sub_texts: Vec<String> = Vec::new();
        let mut current: Vec<&str> = Vec::new();
        for &id in ids {
            if skip_special && self.special_ids.contains(&id) {
                continue;
            }
            let Some(token) = self.id_to_piece(id) else {
                continue;
            };
            if self.added_ids.contains_key(token) {
                if !current.is_empty() {
                    sub_texts.push(self.convert_tokens_to_string(&current));
                    current.clear();
                }
                sub_texts.push(token.to_owned());
            } else {
                current.push(token);
            }
        }
        if !current.is_empty() {
            sub_texts.push(self.convert_tokens_to_string(&current));
        }
        sub_texts.join(" ")
    }

    /// `LlamaTokenizer.convert_tokens_to_string`: special tokens outside sentencepiece.
    fn convert_tokens_to_string(&self, tokens: &[&str]) -> String {
        let mut out = String::new();
        let mut current: Vec<&str> = Vec::new();
        let mut prev_is_special = false;
        for (i, &token) in tokens.iter().enumerate() {
            if self.special_strings.contains(token) {
                if !prev_is_special && i != 0 {
                    out.push(' ');
                }
                out.push_str(&self.sp.decode_pieces(&current));
                out.push_str(token);
                prev_is_special = true;
                current.clear();
            } else {
                current.push(token);
                prev_is_special = false;
            }
        }
        out.push_str(&self.sp.decode_pieces(&current));
        out
    }

    /// A streaming decoder of generated ids (see [`IncrementalDecoder`]).
    #[must_use]
    pub fn incremental_decoder(&self) -> IncrementalDecoder<'_> {
        IncrementalDecoder {
            tokenizer: self,
            ids: Vec::new(),
            emitted: String::new(),
        }
    }

    /// The index in `ids` from which the text can still change when more ids follow: the start of an incomplete
    /// UTF-8 sequence at the end of a trailing run of byte pieces (special tokens, skipped, do not end a run).
    fn stable_prefix_len(&self, ids: &[u32]) -> usize {
        let mut run: Vec<(usize, u8)> = Vec::new();
        for (i, &id) in ids.iter().enumerate().rev() {
            if self.special_ids.contains(&id) || self.id_to_piece(id).is_none() {
                continue;
            }
            // Only a vocabulary piece whose string maps back to a byte piece is part of a byte run.
            let byte = self
                .sp
                .piece(id)
                .filter(|p| !self.added_ids.contains_key(*p))
                .map(|p| self.sp.piece_to_id(p))
                .and_then(|pid| match self.sp.kind(pid) {
                    Some(PieceKind::Byte(b)) => Some(b),
                    _ => None,
                });
            match byte {
                Some(b) => run.push((i, b)),
                None => break,
            }
        }
        run.reverse();
        let bytes: Vec<u8> = run.iter().map(|&(_, b)| b).collect();
        let pending = SpModel::pending_bytes(&bytes);
        if pending == 0 {
            ids.len()
        } else {
            run[run.len() - pending].0
        }
    }
}

/// Streaming decode of generated ids: [`IncrementalDecoder::push`] returns the text that the new id adds.
///
/// The text is that of [`Tokenizer::decode`] with `skip_special = true` (special tokens never appear), without
/// the `clean_up_tokenization_spaces` pass: the chunks returned by `push` followed by [`IncrementalDecoder::finish`]
/// concatenate to `decode(ids, true)` (for tokenizers without clean-up, i.e. all LLaMA ones). Bytes of a character
/// that is still incomplete are held back until the character completes or turns out invalid.
#[derive(Debug, Clone)]
pub struct IncrementalDecoder<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    emitted: String,
}

impl IncrementalDecoder<'_> {
    /// Adds one id; returns the new text (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let stable = self.tokenizer.stable_prefix_len(&self.ids);
        let text = self.tokenizer.decode_raw(&self.ids[..stable], true);
        self.advance(text)
    }

    /// Adds several ids; returns the new text.
    pub fn extend(&mut self, ids: &[u32]) -> String {
        self.ids.extend_from_slice(ids);
        let stable = self.tokenizer.stable_prefix_len(&self.ids);
        let text = self.tokenizer.decode_raw(&self.ids[..stable], true);
        self.advance(text)
    }

    /// Takes all the ids generated so far (the previous ones plus the new ones); returns the new text. When `ids`
    /// does not extend the ids seen so far, the decoder starts over with `ids` and returns all of its text.
    pub fn update(&mut self, ids: &[u32]) -> String {
        if ids.starts_with(&self.ids) {
            let seen = self.ids.len();
            self.extend(&ids[seen..])
        } else {
            self.ids.clear();
            self.emitted.clear();
            self.extend(ids)
        }
    }

    /// Ends the stream: returns the held-back text (incomplete characters as U+FFFD).
    pub fn finish(mut self) -> String {
        let text = self.tokenizer.decode_raw(&self.ids, true);
        self.advance(text)
    }

    /// The ids pushed so far.
    #[must_use]
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text returned so far.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.emitted
    }

    fn advance(&mut self, text: String) -> String {
        let new = text
            .strip_prefix(self.emitted.as_str())
            .map(str::to_owned)
            .unwrap_or_default();
        self.emitted = text;
        new
    }
}
