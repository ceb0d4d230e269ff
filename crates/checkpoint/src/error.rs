//! The one error type of `biqa-checkpoint`.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one tensor of a checkpoint, as found while building a model from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TensorProblem {
    /// The model needs this tensor and the checkpoint lacks it.
    Missing {
        /// HF name of the tensor.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// The tensor exists with another shape.
    Shape {
        /// HF name of the tensor.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        actual: Vec<usize>,
    },
    /// The checkpoint has a tensor the model does not use.
    Unexpected {
        /// HF name of the tensor.
        name: String,
        /// Its shape in the checkpoint.
        actual: Vec<usize>,
    },
    /// The tensor's dtype cannot be used as float weights (an integer or boolean tensor).
    Dtype {
        /// HF name of the tensor.
        name: String,
        /// The dtype in the checkpoint.
        dtype: String,
    },
    /// The tensor's bytes could not be read (truncated file, I/O error).
    Unreadable {
        /// HF name of the tensor.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl TensorProblem {
    /// The HF name of the tensor concerned.
    pub fn name(&self) -> &str {
        match self {
            Self::Missing { name, .. }
            | Self::Shape { name, .. }
            | Self::Unexpected { name, .. }
            | Self::Dtype { name, .. }
            | Self::Unreadable { name, .. } => name,
        }
    }
}

impl fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { name, expected } => {
                write!(f, "missing {name} (expected shape {expected:?})")
            }
            Self::Shape {
                name,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "wrong shape for {name}: expected {expected:?}, found {actual:?}"
                )
            }
            Self::Unexpected { name, actual } => write!(f, "unexpected {name} (shape {actual:?})"),
            Self::Dtype { name, dtype } => write!(f, "{name} has dtype {dtype}, not a float dtype"),
            Self::Unreadable { name, reason } => write!(f, "cannot read {name}: {reason}"),
        }
    }
}

/// Everything that can go wrong when opening or reading a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A directory holds none of the weight files a checkpoint directory can have.
    #[error(
        "{0}: no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, \
         pytorch_model.bin.index.json)"
    )]
    NoWeights(PathBuf),
    /// A weight file's extension is not one this crate reads.
    #[error(
        "{0}: unknown weight file type (expected .safetensors, .bin, .pt, .pth or an .index.json)"
    )]
    UnknownFormat(PathBuf),
    /// A safetensors file is malformed or truncated.
    #[error("{path}: invalid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// A PyTorch pickle is malformed, truncated, or uses a global other than the tensor-rebuild functions.
    #[error("{path}: invalid PyTorch checkpoint: {reason}")]
    Pytorch {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// A shard index is not valid JSON or not a `{"weight_map": {name: shard}}` object.
    #[error("{path}: not a shard index ({reason})")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What the JSON parser said.
        reason: String,
    },
    /// A shard index whose `weight_map` is empty.
    #[error("{0}: empty weight_map")]
    EmptyIndex(PathBuf),
    /// A shard index names a shard file that does not exist.
    #[error("{path}: names shard {shard}, which does not exist")]
    MissingShard {
        /// The index file.
        path: PathBuf,
        /// The shard's file name as the index writes it.
        shard: String,
    },
    /// A shard index maps a tensor to a shard that does not hold it.
    #[error("{path}: maps {name} to {shard}, which does not hold it")]
    ShardMismatch {
        /// The index file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shard the index names for it.
        shard: String,
    },
    /// The same tensor name appears in two shards.
    #[error("{name} appears in both {first} and {second}")]
    Duplicate {
        /// Tensor name.
        name: String,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// A tensor was asked for by name and is not in the checkpoint.
    #[error("{source_desc}: no tensor named {name}")]
    NotFound {
        /// The checkpoint (file or directory).
        source_desc: String,
        /// The name.
        name: String,
    },
    /// A tensor's data could not be read or converted.
    #[error("{source_desc}: tensor {name}: {reason}")]
    Data {
        /// The checkpoint (file or directory).
        source_desc: String,
        /// The name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Building a model found missing, mis-shaped or unexpected tensors: every one is listed.
    #[error("{source_desc}: {} tensor problem(s): {}", problems.len(), summarise(problems))]
    Tensors {
        /// The checkpoint (file or directory).
        source_desc: String,
        /// Every problem found.
        problems: Vec<TensorProblem>,
    },
}

/// How many problems an error message lists before it counts the rest.
pub const LISTED_PROBLEMS: usize = 20;

/// The first [`LISTED_PROBLEMS`] problems, then a count of the others (a checkpoint with 30 000 unexpected tensors
/// gives one readable line, not a megabyte); the error value keeps them all.
fn summarise(problems: &[TensorProblem]) -> String {
    let mut s = problems
        .iter()
        .take(LISTED_PROBLEMS)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > LISTED_PROBLEMS {
        s.push_str(&format!(
            "; … and {} more",
            problems.len() - LISTED_PROBLEMS
        ));
    }
    s
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CheckpointError>;

impl From<biqa_core::CoreError> for CheckpointError {
    fn from(e: biqa_core::CoreError) -> Self {
        let (path, source) = e.into_io();
        Self::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 000 unexpected tensors make one readable line (issue #16: it was 1 MB), and the error keeps them all.
    #[test]
    fn a_huge_problem_list_is_summarised() {
        let problems: Vec<TensorProblem> = (0..30_000)
            .map(|i| TensorProblem::Unexpected {
                name: format!("model.extra.{i}.weight"),
                actual: vec![4, 4],
            })
            .collect();
        let e = CheckpointError::Tensors {
            source_desc: "ckpt".into(),
            problems,
        };
        let msg = e.to_string();
        assert!(msg.len() < 4_000, "{} bytes", msg.len());
        assert!(msg.starts_with("ckpt: 30000 tensor problem(s): unexpected model.extra.0.weight"));
        assert!(msg.ends_with("… and 29980 more"), "{msg}");
        let CheckpointError::Tensors { problems, .. } = e else {
            unreachable!()
        };
        assert_eq!(problems.len(), 30_000);
    }
}
