//! Writing probe results: JSON (any result), CSV (the lens table); every file written atomically.

use std::path::Path;

use serde::Serialize;

use crate::error::{ProbeError, Result};
use crate::lens::LensResult;

/// Writes `bytes` to `path` through a temporary file and a rename ([`biqa_core::write_bytes_atomic`]): no
/// half-written file is ever left.
///
/// # Errors
/// I/O errors, naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    biqa_core::write_bytes_atomic(path, bytes).map_err(ProbeError::from)
}

/// Writes any result as pretty JSON.
///
/// # Errors
/// Serialisation or I/O errors.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ProbeError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes the lens as CSV with the header `layer,kind,rank,token_id,text,value`: per layer, one `top` row per
/// candidate (rank, id, text, probability), one `level` row per level word (its rank, the word, its probability),
/// then `entropy`, `kl_to_final` and `final_rank` rows.
///
/// # Errors
/// Serialisation or I/O errors.
pub fn write_lens_csv(path: &Path, lens: &LensResult) -> Result<()> {
    let err = |e: csv::Error| ProbeError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["layer", "kind", "rank", "token_id", "text", "value"])
        .map_err(err)?;
    for l in &lens.layers {
        let layer = l.layer.to_string();
        for (r, c) in l.top.iter().enumerate() {
            w.write_record([
                &layer,
                "top",
                &r.to_string(),
                &c.id.to_string(),
                &c.text,
                &c.prob.to_string(),
            ])
            .map_err(err)?;
        }
        for (i, word) in lens.level_words.iter().enumerate() {
            w.write_record([
                &layer,
                "level",
                &l.level_ranks
                    .get(i)
                    .map_or(String::new(), ToString::to_string),
                "",
                word,
                &l.level_probs
                    .get(i)
                    .map_or(String::new(), ToString::to_string),
            ])
            .map_err(err)?;
        }
        w.write_record([&layer, "entropy", "", "", "", &l.entropy.to_string()])
            .map_err(err)?;
        w.write_record([
            &layer,
            "kl_to_final",
            "",
            "",
            "",
            &l.kl_to_final.to_string(),
        ])
        .map_err(err)?;
        w.write_record([
            &layer,
            "final_rank",
            &l.final_rank.to_string(),
            &lens.final_token.to_string(),
            "",
            "",
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| ProbeError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

fn csv_bytes(path: &Path, rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let err = |e: csv::Error| ProbeError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r).map_err(err)?;
    }
    w.into_inner().map_err(|e| ProbeError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes trajectories as CSV with the header `layer,word,share,top1_share` (one row per layer and level word).
///
/// # Errors
/// Serialisation or I/O errors.
pub fn write_trajectories_csv(path: &Path, t: &crate::Trajectories) -> Result<()> {
    let mut rows = vec![vec![
        "layer".into(),
        "word".into(),
        "share".into(),
        "top1_share".into(),
    ]];
    for (li, layer) in t.layers.iter().enumerate() {
        for (wi, word) in t.words.iter().enumerate() {
            rows.push(vec![
                layer.to_string(),
                word.clone(),
                t.share
                    .get(li)
                    .and_then(|r| r.get(wi))
                    .map_or(String::new(), ToString::to_string),
                t.top1_share
                    .get(li)
                    .and_then(|r| r.get(wi))
                    .map_or(String::new(), ToString::to_string),
            ]);
        }
    }
    write_atomic(path, &csv_bytes(path, rows)?)
}

/// Writes per-sample segment shares as CSV with the header `sample,query,segment,start,end,share` (one row per
/// sample, query position and segment), `sample` being the label given for each map.
///
/// # Errors
/// Serialisation or I/O errors.
pub fn write_attention_csv(path: &Path, maps: &[(String, crate::AttentionMap)]) -> Result<()> {
    let mut rows: Vec<Vec<String>> = vec![
        ["sample", "query", "segment", "start", "end", "share"]
            .iter()
            .map(ToString::to_string)
            .collect(),
    ];
    for (label, m) in maps {
        for (qi, q) in m.queries.iter().enumerate() {
            for (si, s) in m.segments.iter().enumerate() {
                let share = m
                    .shares
                    .get(qi)
                    .and_then(|r| r.get(si))
                    .map_or(String::new(), ToString::to_string);
                rows.push(vec![
                    label.clone(),
                    q.to_string(),
                    s.name.clone(),
                    s.start.to_string(),
                    s.end.to_string(),
                    share,
                ]);
            }
        }
    }
    write_atomic(path, &csv_bytes(path, rows)?)
}
