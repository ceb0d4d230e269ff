//! `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json`, read as transformers 4.31's
//! `LlamaTokenizer.from_pretrained` reads them.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{ModelError, Result};

/// The special-token attributes of a transformers tokenizer, in the order of `SPECIAL_TOKENS_ATTRIBUTES`.
pub(crate) const ROLES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];
pub(crate) const BOS: usize = 0;
pub(crate) const EOS: usize = 1;
pub(crate) const UNK: usize = 2;
pub(crate) const PAD: usize = 4;

/// A special token: an `AddedToken` (with its strip flags) or a plain string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecialToken {
    pub content: String,
    pub lstrip: bool,
    pub rstrip: bool,
    /// `AddedToken` rather than `str`: only those carry strip flags in `tokenize`; a plain string is stripped on
    /// both sides.
    pub added_token: bool,
}

impl SpecialToken {
    fn added(content: &str) -> Self {
        Self {
            content: content.to_owned(),
            lstrip: false,
            rstrip: false,
            added_token: true,
        }
    }
}

/// What the configuration files say.
#[derive(Debug, Clone)]
pub(crate) struct HfConfig {
    pub roles: [Option<SpecialToken>; 7],
    pub additional: Vec<SpecialToken>,
    pub add_bos_token: bool,
    pub add_eos_token: bool,
    pub legacy: bool,
    pub clean_up_tokenization_spaces: bool,
    /// `added_tokens.json`, sorted by id.
    pub added_tokens: Vec<(String, u64)>,
    /// The file `added_tokens` came from (for errors).
    pub added_tokens_file: PathBuf,
}

fn malformed(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::MalformedTokenizerConfig {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    let text = match biqa_core::read_text(path, biqa_core::CONFIG_LIMIT) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ModelError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| malformed(path, e.to_string()))
}

fn object<'a>(path: &Path, v: &'a Value) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| malformed(path, "the top level is not a JSON object"))
}

/// A token value: `null`, a string (an `AddedToken` when `wrap_str`, as `LlamaTokenizer.__init__` does for
/// bos/eos/unk/pad), or an object with `content` (an `AddedToken`).
fn token(path: &Path, key: &str, v: &Value, wrap_str: bool) -> Result<Option<SpecialToken>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(SpecialToken {
            added_token: wrap_str,
            ..SpecialToken::added(s)
        })),
        Value::Object(o) => {
            let content = o
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(path, format!("{key} has no string \"content\"")))?;
            let flag = |name: &str| -> Result<bool> {
                match o.get(name) {
                    None | Some(Value::Null) => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(malformed(path, format!("{key}.{name} is not a boolean"))),
                }
            };
            Ok(Some(SpecialToken {
                content: content.to_owned(),
                lstrip: flag("lstrip")?,
                rstrip: flag("rstrip")?,
                added_token: true,
            }))
        }
        _ => Err(malformed(
            path,
            format!("{key} is neither a string, an object nor null"),
        )),
    }
}

fn token_list(path: &Path, key: &str, v: &Value) -> Result<Vec<SpecialToken>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, t)| token(path, &format!("{key}[{i}]"), t, false).transpose())
            .collect(),
        _ => Err(malformed(path, format!("{key} is not a list"))),
    }
}

/// A boolean option; `null` is Python's falsy `None`.
fn flag(path: &Path, o: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match o.get(key) {
        None => Ok(default),
        Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(malformed(path, format!("{key} is not a boolean"))),
    }
}

/// Reads the configuration files of `dir`; missing files give `LlamaTokenizer`'s defaults.
pub(crate) fn read_config(dir: &Path) -> Result<HfConfig> {
    let mut cfg = HfConfig {
        roles: [
            Some(SpecialToken::added("<s>")),
            Some(SpecialToken::added("</s>")),
            Some(SpecialToken::added("<unk>")),
            None,
            None,
            None,
            None,
        ],
        additional: Vec::new(),
        add_bos_token: true,
        add_eos_token: false,
        legacy: true,
        clean_up_tokenization_spaces: false,
        added_tokens: Vec::new(),
        added_tokens_file: dir.join("added_tokens.json"),
    };

    let path = dir.join("tokenizer_config.json");
    if let Some(v) = read_json(&path)? {
        let o = object(&path, &v)?;
        for (i, role) in ROLES.iter().enumerate() {
            if let Some(v) = o.get(*role) {
                let wrap = matches!(i, BOS | EOS | UNK | PAD);
                cfg.roles[i] = token(&path, role, v, wrap)?;
            }
        }
        if let Some(v) = o.get("additional_special_tokens") {
            cfg.additional = token_list(&path, "additional_special_tokens", v)?;
        }
        cfg.add_bos_token = flag(&path, o, "add_bos_token", true)?;
        cfg.add_eos_token = flag(&path, o, "add_eos_token", false)?;
        cfg.legacy = flag(&path, o, "legacy", true)?;
        cfg.clean_up_tokenization_spaces = flag(&path, o, "clean_up_tokenization_spaces", false)?;
    }

    // special_tokens_map.json overrides, set as attributes after construction: strings stay plain strings.
    let path = dir.join("special_tokens_map.json");
    if let Some(v) = read_json(&path)? {
        let o = object(&path, &v)?;
        for (i, role) in ROLES.iter().enumerate() {
            if let Some(v) = o.get(*role) {
                cfg.roles[i] = token(&path, role, v, false)?;
            }
        }
        if let Some(v) = o.get("additional_special_tokens") {
            cfg.additional = token_list(&path, "additional_special_tokens", v)?;
        }
    }

    let path = cfg.added_tokens_file.clone();
    if let Some(v) = read_json(&path)? {
        let o = object(&path, &v)?;
        for (content, id) in o {
            let id = id.as_u64().ok_or_else(|| {
                malformed(&path, format!("the id of {content:?} is not an integer"))
            })?;
            cfg.added_tokens.push((content.clone(), id));
        }
        cfg.added_tokens.sort_by_key(|&(_, id)| id);
    }
    Ok(cfg)
}
