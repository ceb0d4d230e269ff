//! The slow LLaMA tokenizer against transformers 4.31 / sentencepiece outputs (`tokenizer_expected.json`), from
//! `tokenizer.model` alone and from `tokenizer.json` alone, plus the error cases.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use biqa_model::{
    IMAGE_TOKEN_INDEX, ModelError, PromptToken, Tokenizer, TokenizerSource, prompt_ids_i64,
};
use biqa_testkit::{fixture, fixtures, read_json};
use proptest::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

fn owl2() -> PathBuf {
    fixture("tiny-owl2")
}

fn expected() -> Result<Value> {
    read_json(owl2().join("expected/tokenizer_expected.json"))
}

/// A temporary checkpoint directory with copies of the given tiny-owl2 files.
fn dir_with(files: &[&str]) -> Result<TempDir> {
    let dir = tempfile::tempdir()?;
    for f in files {
        std::fs::copy(owl2().join(f), dir.path().join(f)).with_context(|| f.to_string())?;
    }
    Ok(dir)
}

const CONFIGS: [&str; 2] = ["tokenizer_config.json", "special_tokens_map.json"];

/// The four ways to load the fixture tokenizer: each tokenizer file alone, with and without the config files.
fn all_loadings() -> Result<Vec<(String, TempDir, Tokenizer)>> {
    let mut out = Vec::new();
    for (file, source) in [
        ("tokenizer.model", TokenizerSource::SentencePiece),
        ("tokenizer.json", TokenizerSource::TokenizerJson),
    ] {
        for with_config in [true, false] {
            let mut files = vec![file];
            if with_config {
                files.extend(CONFIGS);
            }
            let dir = dir_with(&files)?;
            let tok = Tokenizer::from_dir(dir.path())?;
            assert_eq!(tok.source(), source);
            assert_eq!(tok.path(), dir.path().join(file));
            out.push((format!("{file} (config files: {with_config})"), dir, tok));
        }
    }
    Ok(out)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("test data")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("test data")).expect("test data"))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("test data")
        .iter()
        .map(|x| x.as_str().expect("test data").to_owned())
        .collect()
}

fn pieces_of(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&i| tok.id_to_piece(i).expect("test data").to_owned())
        .collect()
}

/// Streams `ids` one at a time; the chunks must concatenate to the skip-special decode.
fn streamed(tok: &Tokenizer, ids: &[u32]) -> String {
    let mut dec = tok.incremental_decoder();
    let mut text = String::new();
    for &id in ids {
        text.push_str(&dec.push(id));
        assert_eq!(dec.text(), text);
    }
    assert_eq!(dec.ids(), ids);
    text.push_str(&dec.finish());
    text
}

#[test]
fn every_string_matches_the_slow_tokenizer_from_both_files() {
    let exp = expected().unwrap();
    let cases = exp["strings"].as_array().unwrap();
    assert_eq!(cases.len(), 32);
    for (how, _dir, tok) in all_loadings().unwrap() {
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            let ctx = format!("{how}: {name} {text:?}");
            assert_eq!(tok.encode_input_ids(text), want, "ids, {ctx}");
            assert_eq!(tok.encode(text, true), want, "encode(add_bos), {ctx}");
            assert_eq!(tok.encode(text, false), want[1..], "encode(no bos), {ctx}");
            assert_eq!(
                pieces_of(&tok, &want),
                strings(&case["pieces"]),
                "pieces, {ctx}"
            );
            assert_eq!(
                tok.tokenize(text),
                strings(&case["tokenize"]),
                "tokenize, {ctx}"
            );
            assert_eq!(
                tok.decode(&want, false),
                case["decode"].as_str().unwrap(),
                "decode, {ctx}"
            );
            let skip = case["decode_skip_special"].as_str().unwrap();
            assert_eq!(tok.decode(&want, true), skip, "decode_skip_special, {ctx}");
            assert_eq!(streamed(&tok, &want), skip, "incremental, {ctx}");
        }
    }
}

#[test]
fn the_fast_tokenizer_differences_are_not_reproduced() {
    // Where tokenizers 0.13.3 disagrees with the slow tokenizer, the tokenizer.json path follows the slow one.
    let exp = expected().unwrap();
    let dir = dir_with(&["tokenizer.json", CONFIGS[0], CONFIGS[1]]).unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    let mut differing = 0;
    for case in exp["strings"].as_array().unwrap() {
        if !case["fast_equals_slow"].as_bool().unwrap() {
            differing += 1;
            let text = case["text"].as_str().unwrap();
            assert_ne!(tok.encode_input_ids(text), ids(&case["fast_ids"]));
            assert_eq!(tok.encode_input_ids(text), ids(&case["ids"]));
        }
    }
    assert_eq!(differing, 5);
    for case in exp["decode_cases"].as_array().unwrap() {
        let i = ids(&case["ids"]);
        assert_eq!(tok.decode(&i, false), case["decode"].as_str().unwrap());
    }
}

#[test]
fn legacy_false_follows_transformers_4_31() {
    let exp = expected().unwrap();
    for file in ["tokenizer.model", "tokenizer.json"] {
        let dir = dir_with(&[file, CONFIGS[1]]).unwrap();
        let mut cfg = read_json(owl2().join(CONFIGS[0])).unwrap();
        cfg["legacy"] = Value::Bool(false);
        std::fs::write(dir.path().join(CONFIGS[0]), cfg.to_string()).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert!(!tok.legacy());
        for case in exp["strings"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            assert_eq!(
                tok.encode_input_ids(text),
                ids(&case["nonlegacy_ids"]),
                "{file}: {text:?}"
            );
        }
    }
}

#[test]
fn every_decode_case_matches() {
    let exp = expected().unwrap();
    let cases = exp["decode_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for (how, _dir, tok) in all_loadings().unwrap() {
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let i = ids(&case["ids"]);
            assert_eq!(
                pieces_of(&tok, &i),
                strings(&case["pieces"]),
                "{how}: {name}"
            );
            assert_eq!(
                tok.decode(&i, false),
                case["decode"].as_str().unwrap(),
                "{how}: {name}"
            );
            let skip = case["decode_skip_special"].as_str().unwrap();
            assert_eq!(tok.decode(&i, true), skip, "{how}: {name}");
            assert_eq!(streamed(&tok, &i), skip, "{how}: {name} (incremental)");
        }
    }
}

#[test]
fn every_tokenizer_image_token_prompt_matches() {
    let exp = expected().unwrap();
    let cases = exp["tokenizer_image_token"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for (how, _dir, tok) in all_loadings().unwrap() {
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let prompt = case["prompt"].as_str().unwrap();
            let want: Vec<i64> = case["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            let got = tok.encode_with_images(prompt);
            assert_eq!(prompt_ids_i64(&got), want, "{how}: {name}");
            let images = prompt.matches("<|image|>").count();
            assert_eq!(
                got.iter().filter(|t| **t == PromptToken::Image).count(),
                images
            );
            // The per-chunk ids of the original code: `tokenizer(chunk).input_ids`, nothing for an empty chunk.
            let chunks = strings(&case["chunks"]);
            for (chunk, want) in chunks.iter().zip(case["chunk_ids"].as_array().unwrap()) {
                let got = if chunk.is_empty() {
                    Vec::new()
                } else {
                    tok.encode_input_ids(chunk)
                };
                assert_eq!(got, ids(want), "{how}: {name} chunk {chunk:?}");
            }
        }
    }
}

#[test]
fn prompts_and_generations_of_the_model_fixture() {
    let exp = read_json(owl2().join("expected/expected.json")).unwrap();
    let tok = Tokenizer::from_dir(owl2()).unwrap();
    assert_eq!(tok.source(), TokenizerSource::SentencePiece);
    for (prompt, key) in [
        ("qalign", "qalign_input_ids"),
        ("describe", "describe_input_ids"),
    ] {
        let text = exp["prompts"][prompt].as_str().unwrap();
        let want: Vec<i64> = exp[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(prompt_ids_i64(&tok.encode_with_images(text)), want);
    }
    for variant in exp["variants"].as_object().unwrap().values() {
        for image in variant["per_image"].as_object().unwrap().values() {
            let g = &image["generate"];
            let new = ids(&g["new_tokens"]);
            assert_eq!(tok.decode(&new, false), g["text"].as_str().unwrap());
            let skip = g["text_skip_special"].as_str().unwrap();
            assert_eq!(tok.decode(&new, true), skip);
            assert_eq!(streamed(&tok, &new), skip);
        }
    }
}

#[test]
fn qalign_levels_and_special_ids() {
    let exp = expected().unwrap();
    for (how, _dir, tok) in all_loadings().unwrap() {
        let words = strings(&exp["qalign_levels"]["words"]);
        let want = ids(&exp["qalign_levels"]["ids (index 1)"]);
        assert_eq!(want, [355, 354, 351, 353, 352]);
        assert_eq!(tok.level_token_ids(&words).unwrap(), want, "{how}");
        for (w, row) in words.iter().zip(
            exp["qalign_levels"]["tokenizer(words).input_ids"]
                .as_array()
                .unwrap(),
        ) {
            assert_eq!(tok.encode_input_ids(w), ids(row), "{how}: {w}");
        }
        let pieces: Vec<String> = want
            .iter()
            .map(|&i| tok.id_to_piece(i).unwrap().to_owned())
            .collect();
        assert_eq!(pieces, strings(&exp["qalign_levels"]["pieces"]));

        assert_eq!(tok.vocab_size(), 512, "{how}");
        assert_eq!(
            (tok.unk_id(), tok.bos_id(), tok.eos_id(), tok.pad_id()),
            (0, 1, 2, None),
            "{how}"
        );
        assert!(
            tok.add_bos_token() && !tok.add_eos_token() && tok.legacy(),
            "{how}"
        );
        assert!(tok.is_special(0) && tok.is_special(1) && tok.is_special(2) && !tok.is_special(3));
        for (piece, id) in exp["byte_fallback_ids"].as_object().unwrap() {
            assert_eq!(
                tok.token_to_id(piece),
                Some(u32::try_from(id.as_u64().unwrap()).unwrap())
            );
        }
        assert_eq!(tok.token_to_id("▁"), Some(448));
        assert_eq!(tok.token_to_id("é"), Some(505));
        assert_eq!(tok.token_to_id("</s>"), Some(2));
        assert_eq!(tok.token_to_id("not a piece"), None);
        assert_eq!(tok.id_to_piece(511), Some("M"));
        assert_eq!(tok.id_to_piece(512), None);
        tok.check_vocab_size(512).unwrap();
    }
}

#[test]
fn tiny_llama_gqa_shares_the_tokenizer() {
    let dir = fixtures().join("tiny-llama-gqa");
    let exp = read_json(dir.join("expected/expected.json")).unwrap();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    tok.check_vocab_size(512).unwrap();
    let want = ids(&exp["input_ids"][0]);
    assert_eq!(
        tok.encode_input_ids("USER: How would you rate the quality of this image?"),
        want
    );
    let new = ids(&exp["new_tokens"][0]);
    // transformers 4.31: decode([338, 115, 420, 2]) and with skip_special_tokens=True.
    assert_eq!(tok.decode(&new, false), " areperex</s>");
    assert_eq!(tok.decode(&new, true), "areperex");
    assert_eq!(*new.last().unwrap(), tok.eos_id());
}

#[test]
fn several_images_and_edge_prompts() {
    let tok = Tokenizer::from_dir(owl2()).unwrap();
    let t = |s: &str| tok.encode(s, false);
    use PromptToken::{Image, Text};
    let texts = |ids: Vec<u32>| ids.into_iter().map(Text).collect::<Vec<_>>();

    // Three images, the last at the end: chunks after the first lose their BOS; the empty last chunk adds nothing.
    let got = tok.encode_with_images("A<|image|>B<|image|><|image|>");
    let mut want = vec![Text(1)];
    want.extend(texts(t("A")));
    want.push(Image);
    want.extend(texts(t("B")));
    want.extend([Image, Image]);
    assert_eq!(got, want);

    // Only images: the first chunk is empty, so nothing carries a BOS.
    assert_eq!(tok.encode_with_images("<|image|>"), [Image]);
    assert_eq!(tok.encode_with_images(""), []);
    assert_eq!(
        tok.encode_with_images("no image"),
        texts(tok.encode("no image", true))
    );
    assert_eq!(PromptToken::Image.to_i64(), IMAGE_TOKEN_INDEX);
    assert_eq!(PromptToken::Text(7).text_id(), Some(7));
    assert_eq!(PromptToken::Image.text_id(), None);
    // Another marker.
    assert_eq!(
        tok.encode_with_image_marker("USER: <image>hi", "<image>"),
        tok.encode_with_images("USER: <|image|>hi")
    );
}

#[test]
fn incremental_decoder_holds_back_incomplete_characters() {
    let tok = Tokenizer::from_dir(owl2()).unwrap();
    let mut dec = tok.incremental_decoder();
    // "photo 😀" = ▁photo ▁ <0xF0> <0x9F> <0x98> <0x80>
    assert_eq!(dec.push(294), "photo");
    assert_eq!(dec.push(448), " ");
    assert_eq!(dec.push(243), "");
    assert_eq!(dec.push(162), "");
    assert_eq!(dec.push(2), ""); // </s> is skipped and does not end the byte run
    assert_eq!(dec.push(155), "");
    assert_eq!(dec.push(131), "😀");
    assert_eq!(dec.push(195), ""); // <0xC0>: a lead byte that can never complete...
    assert_eq!(dec.push(91), "\u{FFFD}X"); // ...is released as U+FFFD once a non-trail byte follows
    assert_eq!(dec.push(243), "");
    assert_eq!(dec.finish(), "\u{FFFD}");

    let mut dec = tok.incremental_decoder();
    assert_eq!(dec.extend(&[1, 270, 290]), "The image");
    assert_eq!(dec.push(2), "");
    assert_eq!(dec.push(327), " USER");

    // `update` takes everything generated so far.
    let mut dec = tok.incremental_decoder();
    assert_eq!(dec.update(&[294]), "photo");
    assert_eq!(dec.update(&[294, 448, 243]), " ");
    assert_eq!(dec.update(&[294, 448, 243, 162, 155, 131]), "😀");
    assert_eq!(dec.update(&[270]), "The"); // not an extension: starts over
    assert_eq!(dec.text(), "The");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streaming_concatenates_to_the_skip_special_decode(
        ids in prop::collection::vec(prop_oneof![0u32..3, 3u32..259, 3u32..259, 259u32..512, 510u32..520], 0..24)
    ) {
        let tok = shared_tokenizer();
        let mut dec = tok.incremental_decoder();
        let mut text = String::new();
        for (n, &id) in ids.iter().enumerate() {
            text.push_str(&dec.push(id));
            // What was streamed is always a prefix of the decode of everything pushed so far.
            prop_assert!(tok.decode(&ids[..=n], true).starts_with(&text));
        }
        text.push_str(&dec.finish());
        prop_assert_eq!(text, tok.decode(&ids, true));
    }

    #[test]
    fn both_files_agree_on_any_text(text in "[ a-zA-Z0-9.,?!:'\\n\\té😀画<>/su▁|-]{0,40}") {
        let (from_model, from_json) = shared_pair();
        prop_assert_eq!(from_model.encode_input_ids(&text), from_json.encode_input_ids(&text));
        let ids = from_model.encode_input_ids(&text);
        prop_assert_eq!(from_model.decode(&ids, false), from_json.decode(&ids, false));
        // Text without special tokens or a literal `▁` round-trips exactly (the dummy prefix is removed again).
        if !text.contains("<s>") && !text.contains("</s>") && !text.contains('▁') {
            prop_assert_eq!(from_model.decode(&ids, true), text);
        }
    }
}

fn shared_tokenizer() -> &'static Tokenizer {
    static TOK: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_dir(owl2()).expect("test data"))
}

fn shared_pair() -> &'static (Tokenizer, Tokenizer) {
    static PAIR: std::sync::OnceLock<(Tokenizer, Tokenizer)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        let model = dir_with(&["tokenizer.model", CONFIGS[0], CONFIGS[1]]).expect("test data");
        let json = dir_with(&["tokenizer.json", CONFIGS[0], CONFIGS[1]]).expect("test data");
        (
            Tokenizer::from_dir(model.path()).expect("test data"),
            Tokenizer::from_dir(json.path()).expect("test data"),
        )
    })
}

/// The configuration of `variant_dir`: pad = `<unk>` (a plain string in special_tokens_map.json), EOS added,
/// clean-up on, an additional special token missing from the vocabulary, two added tokens.
fn variant_dir(tokenizer_file: &str) -> Result<TempDir> {
    let dir = dir_with(&[tokenizer_file])?;
    let mut cfg = read_json(owl2().join(CONFIGS[0]))?;
    cfg["add_eos_token"] = Value::Bool(true);
    cfg["pad_token"] = "<unk>".into();
    cfg["clean_up_tokenization_spaces"] = Value::Bool(true);
    cfg["additional_special_tokens"] = serde_json::json!(["<|extra_special|>"]);
    std::fs::write(dir.path().join(CONFIGS[0]), cfg.to_string())?;
    let mut map = read_json(owl2().join(CONFIGS[1]))?;
    map["pad_token"] = "<unk>".into();
    map["additional_special_tokens"] = serde_json::json!(["<|extra_special|>"]);
    std::fs::write(dir.path().join(CONFIGS[1]), map.to_string())?;
    if tokenizer_file == "tokenizer.model" {
        std::fs::write(
            dir.path().join("added_tokens.json"),
            r#"{"<|added|>": 512, "ab cd": 513}"#,
        )?;
    } else {
        // The same added tokens, as a fast tokenizer file stores them.
        let path = dir.path().join(tokenizer_file);
        let mut j = read_json(&path)?;
        let added = j["added_tokens"].as_array_mut().context("added_tokens")?;
        for (id, content) in [(512, "<|added|>"), (513, "ab cd")] {
            added.push(
                serde_json::json!({"id": id, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": true, "special": false}),
            );
        }
        std::fs::write(&path, j.to_string())?;
    }
    Ok(dir)
}

#[test]
fn added_tokens_pad_eos_and_clean_up_follow_transformers() {
    // Expected values: transformers 4.31 `AutoTokenizer.from_pretrained(dir, use_fast=False)` on the same files.
    for file in ["tokenizer.model", "tokenizer.json"] {
        let dir = variant_dir(file).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.vocab_size(), 515, "{file}");
        assert_eq!(tok.pad_id(), Some(0));
        assert_eq!(tok.token_to_id("<|added|>"), Some(512));
        assert_eq!(tok.token_to_id("ab cd"), Some(513));
        assert_eq!(tok.token_to_id("<|extra_special|>"), Some(514));
        assert_eq!(tok.id_to_piece(514), Some("<|extra_special|>"));
        assert!(tok.is_special(514) && !tok.is_special(512));
        let err = tok.check_vocab_size(512).unwrap_err();
        assert!(matches!(
            err,
            ModelError::VocabSizeMismatch {
                actual: 515,
                expected: 512,
                ..
            }
        ));

        for (text, want_ids, want_decode, want_skip) in VARIANT_CASES {
            let got = tok.encode_input_ids(text);
            assert_eq!(got, *want_ids, "{file}: {text:?}");
            assert_eq!(tok.decode(&got, false), *want_decode, "{file}: {text:?}");
            assert_eq!(tok.decode(&got, true), *want_skip, "{file}: {text:?}");
        }
        for (ids, want_decode, want_skip) in VARIANT_DECODES {
            assert_eq!(tok.decode(ids, false), *want_decode, "{file}: {ids:?}");
            assert_eq!(tok.decode(ids, true), *want_skip, "{file}: {ids:?}");
        }
    }
}

type VariantCase = (&'static str, &'static [u32], &'static str, &'static str);

/// (text, tokenizer(text).input_ids, decode, decode(skip_special_tokens=True)) from transformers 4.31.
const VARIANT_CASES: &[VariantCase] = &[
    (
        "🏾mϣ <|extra_special|>Գtnoisegood 🍟🖇ኰ ྼ USER\"",
        &[
            1, 448, 243, 162, 146, 193, 472, 210, 166, 514, 448, 215, 182, 450, 466, 451, 260, 449,
            468, 340, 448, 243, 162, 144, 162, 243, 162, 153, 138, 228, 141, 179, 448, 227, 193,
            191, 327, 37, 2,
        ],
        "<s>🏾mϣ <|extra_special|>  Գtnoisegood 🍟🖇ኰ ྼ USER\"</s>",
        "🏾mϣ Գtnoisegood 🍟🖇ኰ ྼ USER\"",
    ),
    (
        "\" <|extra_special|>   ▁▁",
        &[1, 448, 37, 514, 448, 448, 448, 2],
        "<s>\" <|extra_special|>    </s>",
        "\"   ",
    ),
    (
        "a ab cd b",
        &[1, 277, 513, 284, 2],
        "<s>a ab cd  b</s>",
        "a ab cd b",
    ),
    ("ab cd", &[1, 513, 2], "<s> ab cd </s>", "ab cd"),
    (
        "x  ab cd  y",
        &[1, 448, 478, 513, 364, 2],
        "<s>x ab cd  y</s>",
        "x ab cd y",
    ),
    (
        "the $M🛟 points Howlevelcolors   s> ⪓🌧 points quality image <|added|> x",
        &[
            1, 262, 448, 39, 511, 243, 162, 158, 162, 446, 381, 439, 298, 461, 451, 332, 448, 448,
            287, 65, 448, 229, 173, 150, 243, 162, 143, 170, 446, 276, 290, 512, 448, 478, 2,
        ],
        "<s>the $M🛟 points Howlevelcolors   s> ⪓🌧 points quality image <|added|>  x</s>",
        "the $M🛟 points Howlevelcolors   s> ⪓🌧 points quality image <|added|> x",
    ),
    (
        "?u  <|added|> x",
        &[1, 448, 482, 458, 512, 448, 478, 2],
        "<s>?u <|added|>  x</s>",
        "?u <|added|> x",
    ),
    (
        "</s> goodnoise :qualitycolorsrateexcellentexcellentHow  <|added|> x",
        &[
            1, 2, 448, 354, 466, 451, 260, 449, 448, 473, 272, 275, 461, 451, 332, 456, 382, 320,
            345, 320, 345, 486, 360, 512, 448, 478, 2,
        ],
        "<s></s> goodnoise :qualitycolorsrateexcellentexcellentHow <|added|>  x</s>",
        " goodnoise :qualitycolorsrateexcellentexcellentHow <|added|> x",
    ),
    (
        "poor \r\n▁▁\u{3000} \u{3000} quality▁points, image <|added|> x",
        &[
            1, 353, 448, 16, 13, 448, 448, 230, 131, 131, 448, 230, 131, 131, 276, 446, 469, 290,
            512, 448, 478, 2,
        ],
        "<s>poor \r\n  \u{3000} \u{3000} quality points, image <|added|>  x</s>",
        "poor \r\n  \u{3000} \u{3000} quality points, image <|added|> x",
    ),
    (
        "</s> goodnoise :qualitycolorsrateexcellentexcellentHow ",
        &[
            1, 2, 448, 354, 466, 451, 260, 449, 448, 473, 272, 275, 461, 451, 332, 456, 382, 320,
            345, 320, 345, 486, 360, 448, 2,
        ],
        "<s></s>  goodnoise :qualitycolorsrateexcellentexcellentHow </s>",
        " goodnoise :qualitycolorsrateexcellentexcellentHow ",
    ),
    (
        ". excellentfairOa⯐\u{3000}]🛫 , .theï</s>s>",
        &[
            1, 448, 465, 355, 464, 337, 488, 455, 229, 178, 147, 230, 131, 131, 96, 243, 162, 158,
            174, 448, 469, 448, 465, 450, 259, 198, 178, 2, 287, 65, 2,
        ],
        "<s>. excellentfairOa⯐\u{3000}]🛫,.theï</s> s></s>",
        ". excellentfairOa⯐\u{3000}]🛫,.theï s>",
    ),
    (
        "Scoreblurry<unk> USER r🌞⛌ bad",
        &[
            1, 444, 470, 457, 430, 456, 463, 0, 448, 327, 371, 243, 162, 143, 161, 229, 158, 143,
            352, 2,
        ],
        "<s> Scoreblurry<unk>  USER r🌞⛌ bad</s>",
        "Scoreblurry  USER r🌞⛌ bad",
    ),
    (
        "How ▁ï1920érate . ASSISTANT ï.",
        &[
            1, 381, 448, 448, 198, 178, 487, 507, 493, 485, 505, 456, 382, 448, 465, 307, 448, 198,
            178, 465, 2,
        ],
        "<s> How  ï1920érate. ASSISTANT ï.</s>",
        "How  ï1920érate. ASSISTANT ï.",
    ),
];

/// (ids, decode, decode(skip_special_tokens=True)) from transformers 4.31.
const VARIANT_DECODES: &[(&[u32], &str, &str)] = &[
    (
        &[512, 264, 396, 469, 2, 11, 245, 153],
        "<|added|>  re This,</s>\u{8}\u{fffd}\u{fffd}",
        "<|added|> re This,\u{8}\u{fffd}\u{fffd}",
    ),
    (
        &[169, 193, 483, 131, 246, 116, 493, 513],
        "\u{fffd}\u{fffd}U\u{fffd}\u{fffd}q2 ab cd",
        "\u{fffd}\u{fffd}U\u{fffd}\u{fffd}q2 ab cd",
    ),
    (
        &[153, 513, 0, 0],
        "\u{fffd} ab cd <unk><unk>",
        "\u{fffd} ab cd",
    ),
    (
        &[388, 121, 219, 512, 350, 143],
        "inv\u{fffd} <|added|> es\u{fffd}",
        "inv\u{fffd} <|added|> es\u{fffd}",
    ),
    (
        &[441, 392, 133, 252, 39, 60, 513, 210, 1],
        "intsion\u{fffd}\u{fffd}$9 ab cd  \u{fffd}<s>",
        "intsion\u{fffd}\u{fffd}$9 ab cd \u{fffd}",
    ),
    (
        &[514, 43, 305, 374],
        "<|extra_special|> ( ASS vide",
        "( ASS vide",
    ),
    (
        &[327, 292, 231, 512, 188, 263],
        "USERto\u{fffd} <|added|> \u{fffd} is",
        "USERto\u{fffd} <|added|> \u{fffd} is",
    ),
    (
        &[272, 2, 370, 479, 512],
        " qu</s>shN <|added|>",
        "qu shN <|added|>",
    ),
];

/// A hand-made SentencePiece BPE model (no byte fallback): `<unk> <s> </s>`, user-defined `<sep>`, an UNUSED piece
/// `ab` (score -1), `▁ab` (-2), `▁` `a` `b` `c` (-3..-6), `bc` and `ca` (-1, tying with `ab`).
const TINY_MODEL: &[u8] = &[
    10, 14, 10, 5, 60, 117, 110, 107, 62, 21, 0, 0, 0, 0, 24, 2, 10, 12, 10, 3, 60, 115, 62, 21, 0,
    0, 0, 0, 24, 3, 10, 13, 10, 4, 60, 47, 115, 62, 21, 0, 0, 0, 0, 24, 3, 10, 14, 10, 5, 60, 115,
    101, 112, 62, 21, 0, 0, 0, 0, 24, 4, 10, 11, 10, 2, 97, 98, 21, 0, 0, 128, 191, 24, 5, 10, 14,
    10, 5, 226, 150, 129, 97, 98, 21, 0, 0, 0, 192, 24, 1, 10, 12, 10, 3, 226, 150, 129, 21, 0, 0,
    64, 192, 24, 1, 10, 10, 10, 1, 97, 21, 0, 0, 128, 192, 24, 1, 10, 10, 10, 1, 98, 21, 0, 0, 160,
    192, 24, 1, 10, 10, 10, 1, 99, 21, 0, 0, 192, 192, 24, 1, 10, 11, 10, 2, 98, 99, 21, 0, 0, 128,
    191, 24, 1, 10, 11, 10, 2, 99, 97, 21, 0, 0, 128, 191, 24, 1, 18, 5, 24, 2, 152, 2, 0, 26, 14,
    10, 8, 105, 100, 101, 110, 116, 105, 116, 121, 24, 1, 32, 0,
];

#[test]
fn sentencepiece_ties_unused_pieces_user_defined_symbols_and_unknowns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.model"), TINY_MODEL).unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    // Expected: sentencepiece 0.2.3 `encode(text, out_type=str)` and `encode(text)` on the same model (and
    // transformers 4.31's `tokenize` / `input_ids[1:]`).
    let cases: [(&str, &[&str], &[u32]); 9] = [
        ("ab", &["▁ab"], &[5]),
        ("xab", &["▁", "x", "a", "b"], &[6, 0, 7, 8]), // `ab` is unused: resegmented
        ("b ab", &["▁", "b", "▁ab"], &[6, 8, 5]),
        ("abc", &["▁ab", "c"], &[5, 9]), // ab and bc tie: the leftmost merges
        ("cab", &["▁", "ca", "b"], &[6, 11, 8]),
        ("a<sep>b", &["▁", "a", "<sep>", "b"], &[6, 7, 3, 8]),
        ("zz ab", &["▁", "zz", "▁ab"], &[6, 0, 5]), // unknown characters merge into one piece
        ("abcab", &["▁ab", "ca", "b"], &[5, 11, 8]),
        (
            "c a b",
            &["▁", "c", "▁", "a", "▁", "b"],
            &[6, 9, 6, 7, 6, 8],
        ),
    ];
    for (text, pieces, ids) in cases {
        assert_eq!(tok.tokenize(text), pieces, "{text:?}");
        assert_eq!(tok.encode(text, false), ids, "{text:?}");
    }
    // transformers 4.31 (LlamaTokenizer on the same file): special tokens stay text, with the space quirk.
    assert_eq!(tok.decode(&[4, 5, 6, 3], true), "ab ab <sep>");
    assert_eq!(tok.decode(&[6, 6, 9], false), " c");
    assert_eq!(tok.decode(&[0, 4, 1], false), "<unk> ab<s>");

    // The same model declared as UNIGRAM is refused.
    let mut unigram = TINY_MODEL.to_vec();
    // TrainerSpec (field 2, 5 bytes) starts with model_type (field 3) = 2.
    let at = unigram
        .windows(4)
        .position(|w| w == [18, 5, 24, 2])
        .unwrap();
    unigram[at + 3] = 1;
    std::fs::write(dir.path().join("tokenizer.model"), unigram).unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::UnsupportedTokenizer { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("UNIGRAM"), "{err}");
}

#[test]
fn missing_tokenizer_files_name_the_directory() {
    let dir = dir_with(&CONFIGS).unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ModelError::TokenizerFilesMissing { dir: d } if d == dir.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    let err = Tokenizer::from_dir(dir.path().join("does-not-exist")).unwrap_err();
    assert!(
        matches!(err, ModelError::TokenizerFilesMissing { .. }),
        "{err:?}"
    );
}

#[test]
fn corrupt_sentencepiece_models_are_errors() {
    let bytes = std::fs::read(owl2().join("tokenizer.model")).unwrap();
    let json = std::fs::read(owl2().join("tokenizer.json")).unwrap();
    let mut flipped = bytes.clone();
    flipped[0] = 0xFF; // field 31, wire type 7: not protobuf
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated to half", bytes[..bytes.len() / 2].to_vec()),
        ("truncated by one byte", bytes[..bytes.len() - 1].to_vec()),
        ("empty", Vec::new()),
        ("a JSON file", json),
        ("a bad first key", flipped),
        (
            "random bytes",
            (0..4000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (what, content) in cases {
        let dir = dir_with(&CONFIGS).unwrap();
        let path = dir.path().join("tokenizer.model");
        std::fs::write(&path, content).unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, ModelError::CorruptSentencePieceModel { path: p, .. } if *p == path),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("tokenizer.model"), "{what}: {err}");
    }
}

#[test]
fn malformed_tokenizer_json_is_an_error() {
    let good = std::fs::read_to_string(owl2().join("tokenizer.json")).unwrap();
    let cases = [
        ("not JSON", "{\"model\": ".to_owned()),
        ("no model", "{}".to_owned()),
        (
            "vocab not an object",
            good.replace("\"vocab\": {", "\"vocab\": [{")
                .replace("}, \"merges\"", "}], \"merges\""),
        ),
        (
            "merge with unknown piece",
            good.replacen("\"h e\"", "\"h zzz\"", 1),
        ),
        (
            "unknown unk_token",
            good.replace("\"unk_token\": \"<unk>\"", "\"unk_token\": \"<nope>\""),
        ),
    ];
    for (what, content) in cases {
        assert!(
            content != good || what == "not JSON",
            "{what}: the edit did not apply"
        );
        let dir = dir_with(&CONFIGS).unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, &content).unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, ModelError::MalformedTokenizerJson { path: p, .. } if *p == path),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("tokenizer.json"), "{what}: {err}");
    }
}

#[test]
fn malformed_config_files_are_errors() {
    for (file, content) in [
        ("tokenizer_config.json", "{\"add_bos_token\": \"yes\"}"),
        ("tokenizer_config.json", "[1, 2"),
        ("special_tokens_map.json", "{\"eos_token\": 3}"),
        ("added_tokens.json", "{\"<x>\": 600}"),
    ] {
        let dir = dir_with(&["tokenizer.model"]).unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, ModelError::MalformedTokenizerConfig { path: p, .. } if *p == path),
            "{file}: {err:?}"
        );
    }
}

#[test]
fn wrong_vocab_size_names_both_sizes() {
    let tok = Tokenizer::from_dir(owl2()).unwrap();
    let err = tok.check_vocab_size(32000).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::VocabSizeMismatch {
                actual: 512,
                expected: 32000,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("512") && msg.contains("32000") && msg.contains("tokenizer.model"),
        "{msg}"
    );
}

#[test]
fn a_level_word_of_two_tokens_is_an_error() {
    let tok = Tokenizer::from_dir(owl2()).unwrap();
    let err = tok
        .level_token_ids(&["excellent", "Excellent"])
        .unwrap_err();
    match &err {
        ModelError::LevelWordNotSingleToken { word, pieces } => {
            assert_eq!(word, "Excellent");
            assert_eq!(pieces, &["▁", "E", "x", "cellent"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("\"Excellent\""));
    assert!(tok.level_token_id("").is_err());
    assert!(tok.level_token_id("good bad").is_err());
}

/// Compares a tokenizer with cases made by transformers 4.31 (`{"encode": [{text, ids, tokenize, decode,
/// decode_skip}], "decode": [{ids, decode, decode_skip}]}`); returns (cases, failures).
fn compare_with_cases(tok: &Tokenizer, cases: &Value, label: &str, stream: bool) -> (usize, usize) {
    let (mut n, mut failures) = (0, 0);
    let mut check = |ok: bool, detail: String| {
        n += 1;
        if !ok {
            failures += 1;
            if failures < 20 {
                eprintln!("{label}: {detail}");
            }
        }
    };
    for c in cases["encode"].as_array().expect("test data") {
        let text = c["text"].as_str().expect("test data");
        let want = ids(&c["ids"]);
        let got = tok.encode_input_ids(text);
        check(got == want, format!("{text:?}: ids {got:?} != {want:?}"));
        let tk = tok.tokenize(text);
        check(
            tk == strings(&c["tokenize"]),
            format!("{text:?}: tokenize {tk:?}"),
        );
        for (skip, key) in [(false, "decode"), (true, "decode_skip")] {
            let d = tok.decode(&want, skip);
            check(
                d == c[key].as_str().expect("test data"),
                format!("{text:?}: {key} {d:?} != {:?}", c[key]),
            );
        }
    }
    for c in cases["decode"].as_array().expect("test data") {
        let i = ids(&c["ids"]);
        for (skip, key) in [(false, "decode"), (true, "decode_skip")] {
            let d = tok.decode(&i, skip);
            check(
                d == c[key].as_str().expect("test data"),
                format!("{i:?}: {key} {d:?} != {:?}", c[key]),
            );
        }
        if stream {
            let s = streamed(tok, &i);
            check(s == tok.decode(&i, true), format!("{i:?}: streamed {s:?}"));
        }
    }
    (n, failures)
}

/// Differential check against many cases made with Python (transformers 4.31 + sentencepiece), not stored in the
/// repository: `BIQA_TOKENIZER_CASES=cases.json` (groups `default`, `nonlegacy` and `variant` for the tiny-owl2
/// tokenizer) and/or `BIQA_TOKENIZER_EXTRA=dir` (sub-directories with a `tokenizer.model` and its `cases.json`),
/// then run with `--ignored`.
#[test]
#[ignore = "needs BIQA_TOKENIZER_CASES or BIQA_TOKENIZER_EXTRA (generated with Python)"]
fn differential_against_transformers_cases() {
    let (mut n, mut failures) = (0, 0);
    if let Ok(path) = std::env::var("BIQA_TOKENIZER_CASES") {
        let cases = read_json(Path::new(&path)).unwrap();
        let model_dir = dir_with(&["tokenizer.model", CONFIGS[0], CONFIGS[1]]).unwrap();
        let json_dir = dir_with(&["tokenizer.json", CONFIGS[0], CONFIGS[1]]).unwrap();
        let nonlegacy = dir_with(&["tokenizer.model", CONFIGS[1]]).unwrap();
        let mut cfg = read_json(owl2().join(CONFIGS[0])).unwrap();
        cfg["legacy"] = Value::Bool(false);
        std::fs::write(nonlegacy.path().join(CONFIGS[0]), cfg.to_string()).unwrap();
        let variant_model = variant_dir("tokenizer.model").unwrap();
        let variant_json = variant_dir("tokenizer.json").unwrap();
        let groups = [
            ("default", model_dir.path(), true),
            ("default", json_dir.path(), true),
            ("nonlegacy", nonlegacy.path(), true),
            ("variant", variant_model.path(), false),
            ("variant", variant_json.path(), false),
        ];
        for (group, dir, stream) in groups {
            let tok = Tokenizer::from_dir(dir).unwrap();
            let (a, b) = compare_with_cases(&tok, &cases[group], group, stream);
            n += a;
            failures += b;
        }
    }
    if let Ok(dir) = std::env::var("BIQA_TOKENIZER_EXTRA") {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let tok = Tokenizer::from_dir(&path).unwrap();
            let cases = read_json(path.join("cases.json")).unwrap();
            let (a, b) = compare_with_cases(&tok, &cases, &path.display().to_string(), true);
            n += a;
            failures += b;
        }
    }
    eprintln!("{n} checks, {failures} failures");
    assert!(
        n > 0,
        "set BIQA_TOKENIZER_CASES and/or BIQA_TOKENIZER_EXTRA"
    );
    assert_eq!(failures, 0);
}
