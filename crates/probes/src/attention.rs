//! Attention aggregation (paper Fig. 5): the attention of chosen query tokens (the quality token, every generated
//! token) to every earlier token, averaged over heads and layers, then over samples by segment.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};

/// A named span of key positions (`start..end`), e.g. prompt text, image tokens, generated description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Name (samples are averaged segment by segment, by name).
    pub name: String,
    /// First position.
    pub start: usize,
    /// One past the last position.
    pub end: usize,
}

/// The aggregated attention of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionMap {
    /// The query positions.
    pub queries: Vec<usize>,
    /// Layers averaged.
    pub layers: Vec<usize>,
    /// `map[q][k]`: attention of query `queries[q]` to key `k`, averaged over heads and layers (each row sums to
    /// 1 over the keys it can see).
    pub map: Vec<Vec<f64>>,
    /// The segments of the key positions.
    pub segments: Vec<Segment>,
    /// `shares[q][s]`: the attention of query `q` to segment `s` (sum of `map[q]` over the segment).
    pub shares: Vec<Vec<f64>>,
}

/// Averages the attention probabilities of `layers` (each `[B, heads, L, T]`) over heads and layers for the
/// given query positions of batch row `row`, and sums them per segment.
///
/// # Errors
/// No layers, a layer, row or query outside the traces, or segments that do not tile `0..T` in order.
pub fn aggregate(
    attentions: &[Tensor<4>],
    layers: &[usize],
    row: usize,
    queries: &[usize],
    segments: Vec<Segment>,
) -> Result<AttentionMap> {
    if layers.is_empty() {
        return Err(ProbeError::NothingChosen { what: "layer" });
    }
    if queries.is_empty() {
        return Err(ProbeError::NothingChosen { what: "query" });
    }
    let mut map: Vec<Vec<f64>> = Vec::new();
    let mut t_len = 0;
    for &li in layers {
        let a = attentions
            .get(li)
            .ok_or_else(|| ProbeError::LayerOutOfRange {
                layer: li,
                layers: attentions.len(),
                what: "attention maps",
            })?;
        let [b, heads, l, t] = a.dims();
        if row >= b {
            return Err(ProbeError::RowOutOfRange { row, rows: b });
        }
        if let Some(&q) = queries.iter().find(|&&q| q >= l) {
            return Err(ProbeError::PositionOutOfRange {
                what: "query",
                position: q,
                len: l,
            });
        }
        t_len = t;
        let host: Vec<f32> = a
            .clone()
            .narrow(0, row, 1)
            .into_data()
            .try_to_vec_as::<f32>()
            .map_err(|source| ProbeError::HostRead {
                what: "attention",
                source,
            })?;
        if map.is_empty() {
            map = vec![vec![0.0; t]; queries.len()];
        }
        for (qi, &q) in queries.iter().enumerate() {
            for h in 0..heads {
                let base = (h * l + q) * t;
                for k in 0..t {
                    map[qi][k] += f64::from(host[base + k]) / (heads * layers.len()) as f64;
                }
            }
        }
    }
    let mut pos = 0;
    for s in &segments {
        if s.start != pos || s.end < s.start {
            return Err(ProbeError::SegmentGap {
                name: s.name.clone(),
                start: s.start,
                end: s.end,
                expected: pos,
            });
        }
        pos = s.end;
    }
    if pos != t_len {
        return Err(ProbeError::SegmentCoverage {
            covered: pos,
            keys: t_len,
        });
    }
    let shares = map
        .iter()
        .map(|row| {
            segments
                .iter()
                .map(|s| row[s.start..s.end].iter().sum())
                .collect()
        })
        .collect();
    Ok(AttentionMap {
        queries: queries.to_vec(),
        layers: layers.to_vec(),
        map,
        segments,
        shares,
    })
}

/// Per-segment attention shares averaged over samples (matched by segment name, so samples of different lengths
/// average correctly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentShares {
    /// Segment names, in first-seen order.
    pub segments: Vec<String>,
    /// Mean share of each segment over samples and their queries.
    pub mean: Vec<f64>,
    /// Samples that had each segment.
    pub samples: Vec<usize>,
}

/// Averages [`AttentionMap::shares`] over samples: first over each sample's queries, then over samples.
///
/// # Errors
/// No samples.
pub fn average_shares(maps: &[AttentionMap]) -> Result<SegmentShares> {
    if maps.is_empty() {
        return Err(ProbeError::EmptySamples);
    }
    let mut names: Vec<String> = Vec::new();
    let mut sums: Vec<f64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for m in maps {
        // Segments of one sample that share a name (e.g. text before and after the image) add up.
        let mut local: Vec<(usize, f64)> = Vec::new();
        for (si, s) in m.segments.iter().enumerate() {
            let idx = match names.iter().position(|n| *n == s.name) {
                Some(i) => i,
                None => {
                    names.push(s.name.clone());
                    sums.push(0.0);
                    counts.push(0);
                    names.len() - 1
                }
            };
            let mean_over_queries =
                m.shares.iter().map(|q| q[si]).sum::<f64>() / m.shares.len() as f64;
            match local.iter_mut().find(|(i, _)| *i == idx) {
                Some(entry) => entry.1 += mean_over_queries,
                None => local.push((idx, mean_over_queries)),
            }
        }
        for (idx, v) in local {
            sums[idx] += v;
            counts[idx] += 1;
        }
    }
    let mean = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    Ok(SegmentShares {
        segments: names,
        mean,
        samples: counts,
    })
}

/// Segments of a sequence from its modality flags (0 text, 1 image) and the number of generated tokens at its end:
/// runs of prompt text are `"prompt"`, runs of image tokens `"image"`, the last `generated` positions
/// `"generated"`; positions before `left_padding` are `"padding"`.
pub fn segments_from_modality(
    modality: &[u8],
    left_padding: usize,
    generated: usize,
) -> Vec<Segment> {
    let prompt_len = modality.len();
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |name: &str, start: usize, end: usize| {
        if end <= start {
            return;
        }
        match out.last_mut() {
            Some(last) if last.name == name && last.end == start => last.end = end,
            _ => out.push(Segment {
                name: name.to_string(),
                start,
                end,
            }),
        }
    };
    push("padding", 0, left_padding.min(prompt_len));
    for (i, &m) in modality.iter().enumerate().skip(left_padding) {
        push(if m == 1 { "image" } else { "prompt" }, i, i + 1);
    }
    push("generated", prompt_len, prompt_len + generated);
    out
}

/// What `biqa probe attention` writes to `attention.json`: the images, the aggregated map of each, and their
/// average shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionReport {
    /// The images, in order.
    pub images: Vec<std::path::PathBuf>,
    /// The aggregated attention of each image.
    pub maps: Vec<AttentionMap>,
    /// The shares averaged over the images.
    pub average: SegmentShares,
}
