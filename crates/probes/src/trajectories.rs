//! Token trajectories over many samples (paper Fig. 6): per layer, the share of samples whose top-1 among the
//! level words is each word, and when the final answer settles.

use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};
use crate::lens::LensResult;

/// Trajectories of the level words over layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectories {
    /// Layer indices (as in the lens results).
    pub layers: Vec<usize>,
    /// The level words.
    pub words: Vec<String>,
    /// `share[l][w]`: share of samples whose most likely level word at layer `l` is word `w`.
    pub share: Vec<Vec<f64>>,
    /// `top1_share[l][w]`: share of samples whose full-vocabulary top-1 at layer `l` is word `w`.
    pub top1_share: Vec<Vec<f64>>,
    /// Per sample: the first layer from which the final level answer is (and stays) the top level word; `None`
    /// when the final top-1 is not a level word.
    pub settle_layer: Vec<Option<usize>>,
    /// Number of samples aggregated.
    pub samples: usize,
    /// When set, only samples whose final level answer is this word were aggregated.
    pub restricted_to: Option<String>,
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Aggregates lens results of many samples (same layers and level words in each).
///
/// With `final_word`, only samples whose final level answer (top level word at the last layer) is that word count.
///
/// # Errors
/// No samples, or samples with different layers or level words.
pub fn trajectories(lenses: &[LensResult], final_word: Option<&str>) -> Result<Trajectories> {
    let first = lenses.first().ok_or(ProbeError::EmptySamples)?;
    let layers: Vec<usize> = first.layers.iter().map(|l| l.layer).collect();
    let words = first.level_words.clone();
    if words.is_empty() {
        return Err(ProbeError::NoLevelWords);
    }
    for (index, s) in lenses.iter().enumerate() {
        if s.level_words != words || s.layers.iter().map(|l| l.layer).ne(layers.iter().copied()) {
            return Err(ProbeError::MismatchedSample { index });
        }
    }
    let final_level = |s: &LensResult| s.layers.last().map_or(0, |l| argmax(&l.level_probs));
    let selected: Vec<&LensResult> =
        match final_word {
            Some(w) => {
                let wi = words.iter().position(|x| x == w).ok_or_else(|| {
                    ProbeError::UnknownLevelWord {
                        word: w.to_owned(),
                        words: words.clone(),
                    }
                })?;
                lenses.iter().filter(|s| final_level(s) == wi).collect()
            }
            None => lenses.iter().collect(),
        };
    let n = selected.len();
    let mut share = vec![vec![0.0; words.len()]; layers.len()];
    let mut top1_share = vec![vec![0.0; words.len()]; layers.len()];
    let mut settle_layer = Vec::with_capacity(n);
    for s in &selected {
        for (li, l) in s.layers.iter().enumerate() {
            share[li][argmax(&l.level_probs)] += 1.0 / n as f64;
            if let Some(w) = l.level_ranks.iter().position(|&r| r == 0) {
                top1_share[li][w] += 1.0 / n as f64;
            }
        }
        let fin = final_level(s);
        let final_is_level = s
            .layers
            .last()
            .is_some_and(|l| l.level_ranks.get(fin) == Some(&0));
        let settle = final_is_level.then(|| {
            let mut k = s.layers.len();
            while k > 0 && argmax(&s.layers[k - 1].level_probs) == fin {
                k -= 1;
            }
            s.layers[k.min(s.layers.len() - 1)].layer
        });
        settle_layer.push(settle);
    }
    Ok(Trajectories {
        layers,
        words,
        share,
        top1_share,
        settle_layer,
        samples: n,
        restricted_to: final_word.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_samples_is_a_typed_error() {
        let e = trajectories(&[], None).err();
        assert!(matches!(e, Some(ProbeError::EmptySamples)), "{e:?}");
    }
}
