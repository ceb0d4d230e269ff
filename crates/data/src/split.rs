//! Train / validation / test splits, seeded and by group (source photo or reference image).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use biqa_core::SplitMix64;

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data.
    Val,
    /// Test data.
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;

    /// Accepts `train`/`training`, `val`/`valid`/`validation`, `test`/`testing` (any case).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Ok(Split::Train),
            "val" | "valid" | "validation" => Ok(Split::Val),
            "test" | "testing" => Ok(Split::Test),
            other => Err(format!(
                "unknown split {other:?} (expected train, val or test)"
            )),
        }
    }
}

/// Fractions of groups that go to validation and test; the rest is training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Share of groups for validation, in [0, 1).
    pub val: f64,
    /// Share of groups for test, in [0, 1).
    pub test: f64,
}

impl Default for SplitFractions {
    /// 60 / 20 / 20.
    fn default() -> Self {
        Self {
            val: 0.2,
            test: 0.2,
        }
    }
}

/// Assigns each distinct group (sorted, then shuffled with `seed`) to a split: `round(n·test)` groups to test and
/// `round(n·val)` to validation, at least one each when the fraction is positive and there are enough groups to keep
/// one for training; the rest to training. The result does not depend on the order of `groups`.
///
/// # Errors
/// [`DataError::InvalidSplitFractions`] when a fraction is outside [0, 1) or they sum to 1 or more.
pub fn split_groups<'a>(
    groups: impl IntoIterator<Item = &'a str>,
    fractions: SplitFractions,
    seed: u64,
) -> Result<BTreeMap<String, Split>> {
    let SplitFractions { val, test } = fractions;
    if !(0.0..1.0).contains(&val) || !(0.0..1.0).contains(&test) || val + test >= 1.0 {
        return Err(DataError::InvalidSplitFractions { val, test });
    }
    let mut names: Vec<String> = groups.into_iter().map(str::to_owned).collect();
    names.sort();
    names.dedup();
    SplitMix64::derive(seed, &[0x5911_7000]).shuffle(&mut names);
    let n = names.len();
    let mut n_test = (n as f64 * test).round() as usize;
    if test > 0.0 && n_test == 0 && n >= 2 {
        n_test = 1;
    }
    let mut n_val = (n as f64 * val).round() as usize;
    if val > 0.0 && n_val == 0 && n >= 3 {
        n_val = 1;
    }
    while n > 0 && n_test + n_val >= n {
        if n_val > 0 {
            n_val -= 1;
        } else {
            n_test -= 1;
        }
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let s = if i < n_test {
                Split::Test
            } else if i < n_test + n_val {
                Split::Val
            } else {
                Split::Train
            };
            (g, s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_seeded_and_order_free() {
        let g = ["a", "b", "c", "d"];
        let f = SplitFractions {
            val: 0.25,
            test: 0.25,
        };
        let s1 = split_groups(g, f, 1).unwrap();
        let s2 = split_groups(["d", "c", "b", "a", "a"], f, 1).unwrap();
        assert_eq!(s1, s2);
        let count = |s: Split| s1.values().filter(|&&v| v == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Val), count(Split::Test)),
            (2, 1, 1)
        );
        let one = split_groups(["x"], f, 1).unwrap();
        assert_eq!(one["x"], Split::Train);
        assert!(
            split_groups(
                g,
                SplitFractions {
                    val: 0.5,
                    test: 0.5
                },
                1
            )
            .is_err()
        );
        assert_eq!("Validation".parse::<Split>(), Ok(Split::Val));
        assert!("dev".parse::<Split>().is_err());
    }
}
