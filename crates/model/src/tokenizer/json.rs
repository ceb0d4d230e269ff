//! `tokenizer.json` (the fast-tokenizer file of a LLaMA checkpoint) turned into the equivalent SentencePiece model.
//!
//! The file has the vocabulary (`model.vocab`, piece → id) and the merges (`model.merges`) but no piece scores.
//! transformers' `LlamaConverter` writes the merges sorted by the score of the merged piece, best first, so the rank
//! of the first merge that produces a piece orders the pieces as their scores do: each merged piece gets the score
//! `-rank`, and the SentencePiece algorithm (not the `tokenizers` BPE) runs on that. Pieces that no merge produces
//! keep a score of `-inf`; they are single characters, bytes and special tokens, which the algorithm never builds.

use serde_json::Value;

use super::spm::{
    DEFAULT_UNK_SURFACE, PieceKind, PieceSpec, SPACE_SYMBOL, SpModel, SpOptions, parse_byte_piece,
};

/// Why a `tokenizer.json` cannot be used.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// Not valid JSON, or not the structure of a BPE tokenizer file.
    Malformed(String),
    /// A valid file of a kind this crate does not implement.
    Unsupported(String),
}

/// An added token of `tokenizer.json` whose id lies beyond the model vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct ExtraToken {
    pub id: u32,
    pub content: String,
}

/// Parses `tokenizer.json`; returns the model and the added tokens beyond its vocabulary, by id.
pub(crate) fn parse_tokenizer_json(text: &str) -> Result<(SpModel, Vec<ExtraToken>), JsonError> {
    use JsonError::{Malformed, Unsupported};
    let root: Value = serde_json::from_str(text).map_err(|e| Malformed(e.to_string()))?;
    let model = root
        .get("model")
        .filter(|m| m.is_object())
        .ok_or_else(|| Malformed("no \"model\" object".into()))?;
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") | None => {}
        Some(other) => {
            return Err(Unsupported(format!(
                "model type {other:?}; only BPE is implemented"
            )));
        }
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Malformed("model.vocab is not an object".into()))?;
    let n = vocab.len();
    let mut texts: Vec<Option<String>> = vec![None; n];
    for (piece, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| Malformed(format!("model.vocab[{piece:?}] is not an id")))?;
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| texts.get_mut(i))
            .ok_or_else(|| Malformed(format!("model.vocab[{piece:?}] = {id} is outside 0..{n}")))?;
        if slot.is_some() {
            return Err(Malformed(format!("id {id} appears twice in model.vocab")));
        }
        *slot = Some(piece.clone());
    }
    let texts: Vec<String> = texts.into_iter().map(Option::unwrap_or_default).collect();

    let byte_fallback = model
        .get("byte_fallback")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let unk_token = model.get("unk_token").and_then(Value::as_str);

    // Added tokens: special ones inside the vocabulary are control pieces; those beyond it are added tokens.
    let mut extra = Vec::new();
    let mut control = vec![false; n];
    if let Some(added) = root.get("added_tokens") {
        let added = added
            .as_array()
            .ok_or_else(|| Malformed("added_tokens is not an array".into()))?;
        for (k, t) in added.iter().enumerate() {
            let id = t.get("id").and_then(Value::as_u64);
            let content = t.get("content").and_then(Value::as_str);
            let (Some(id), Some(content)) = (id, content) else {
                return Err(Malformed(format!("added_tokens[{k}] lacks id or content")));
            };
            let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
            match usize::try_from(id).ok().filter(|&i| i < n) {
                Some(i) => {
                    if texts[i] != content {
                        return Err(Malformed(format!(
                            "added_tokens[{k}] {content:?} has id {id}, which is {:?} in model.vocab",
                            texts[i]
                        )));
                    }
                    control[i] = special;
                }
                None => extra.push(ExtraToken {
                    id: u32::try_from(id)
                        .map_err(|_| Malformed(format!("added token id {id} is too large")))?,
                    content: content.to_owned(),
                }),
            }
        }
    }
    extra.sort_by_key(|t| t.id);

    let mut specs: Vec<PieceSpec> = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let kind = if Some(text.as_str()) == unk_token {
                PieceKind::Unknown
            } else if control[i] {
                PieceKind::Control
            } else if let Some(b) = parse_byte_piece(&text).filter(|_| byte_fallback) {
                PieceKind::Byte(b)
            } else {
                PieceKind::Normal
            };
            PieceSpec {
                text,
                score: f32::NEG_INFINITY,
                kind,
            }
        })
        .collect();
    if unk_token.is_none() || !specs.iter().any(|p| p.kind == PieceKind::Unknown) {
        return Err(Malformed(format!(
            "model.unk_token {unk_token:?} is not in model.vocab"
        )));
    }

    // Merge ranks → scores.
    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| Malformed("model.merges is not an array".into()))?;
    if merges.len() >= 1 << 24 {
        return Err(Unsupported(format!("{} merges", merges.len())));
    }
    for (rank, m) in merges.iter().enumerate() {
        let (l, r) = match m {
            Value::String(s) => {
                let mut parts = s.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(l), Some(r), None) => (l, r),
                    _ => {
                        return Err(Malformed(format!(
                            "merge {rank} {s:?} is not \"left right\""
                        )));
                    }
                }
            }
            Value::Array(a) => match (
                a.first().and_then(Value::as_str),
                a.get(1).and_then(Value::as_str),
                a.len(),
            ) {
                (Some(l), Some(r), 2) => (l, r),
                _ => return Err(Malformed(format!("merge {rank} is not a pair of strings"))),
            },
            _ => {
                return Err(Malformed(format!(
                    "merge {rank} is neither a string nor a pair"
                )));
            }
        };
        let merged = format!("{l}{r}");
        let missing = [l, r, merged.as_str()]
            .into_iter()
            .find(|p| !vocab.contains_key(*p));
        if let Some(p) = missing {
            return Err(Malformed(format!(
                "merge {rank} ({l:?}, {r:?}): {p:?} is not in model.vocab"
            )));
        }
        let Some(id) = vocab.get(&merged).and_then(Value::as_u64) else {
            continue;
        };
        let spec = &mut specs[id as usize];
        if spec.kind == PieceKind::Normal && spec.score == f32::NEG_INFINITY {
            spec.score = -(rank as f32);
        }
    }

    // Normaliser: LlamaConverter writes Prepend("▁") + Replace(" ", "▁"); newer converters a Metaspace
    // pre-tokenizer. Either way: dummy prefix and whitespace escaping, no whitespace removal.
    let mut add_dummy_prefix = false;
    let mut escape_whitespaces = false;
    let normalizers: Vec<&Value> = match root.get("normalizer") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) if v.get("type").and_then(Value::as_str) == Some("Sequence") => v
            .get("normalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(v) => vec![v],
    };
    for nz in normalizers {
        match nz.get("type").and_then(Value::as_str) {
            Some("Prepend") if nz.get("prepend").and_then(Value::as_str) == Some(SPACE_SYMBOL) => {
                add_dummy_prefix = true;
            }
            Some("Replace")
                if nz.pointer("/pattern/String").and_then(Value::as_str) == Some(" ")
                    && nz.get("content").and_then(Value::as_str) == Some(SPACE_SYMBOL) =>
            {
                escape_whitespaces = true;
            }
            other => {
                return Err(Unsupported(format!(
                    "normalizer {}; only Prepend(\"▁\") and Replace(\" \", \"▁\") are implemented",
                    other.unwrap_or("without a type")
                )));
            }
        }
    }
    match root.get("pre_tokenizer") {
        None | Some(Value::Null) => {}
        Some(p) if p.get("type").and_then(Value::as_str) == Some("Metaspace") => {
            escape_whitespaces = true;
            let prepend = p
                .get("prepend_scheme")
                .and_then(Value::as_str)
                .map(|s| s != "never")
                .or_else(|| p.get("add_prefix_space").and_then(Value::as_bool))
                .unwrap_or(true);
            add_dummy_prefix |= prepend;
        }
        Some(p) => {
            return Err(Unsupported(format!(
                "pre_tokenizer {}; only Metaspace is implemented",
                p.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("without a type")
            )));
        }
    }

    let opts = SpOptions {
        add_dummy_prefix,
        remove_extra_whitespaces: false,
        escape_whitespaces,
        byte_fallback,
        unk_surface: DEFAULT_UNK_SURFACE.to_owned(),
    };
    let model = SpModel::new(specs, opts).map_err(Malformed)?;
    Ok((model, extra))
}
