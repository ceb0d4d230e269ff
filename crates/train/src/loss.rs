//! The paper's eq. 2: label-smoothed negative log-likelihood, a token-level mean over the batch.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Result, TrainError};

/// `L = (1/N) Σ_n [ (1−ε)·(−log p_n[y_n]) + (ε/C)·Σ_c (−log p_n[c]) ]` over the `N` supervised positions:
/// cross-entropy against `(1−ε)·onehot(y) + ε/C` (the uniform mass includes the true class), as
/// `torch.nn.CrossEntropyLoss(label_smoothing=ε)`. ε = 0 is plain cross-entropy.
///
/// `logits` `[N, C]` are the logits that predict `targets` (already shifted: row n predicts `targets[n]`).
/// Returns the scalar loss `[1]`.
///
/// # Errors
/// No supervised position, a row/target count mismatch, a target outside the vocabulary, or ε outside [0, 1].
pub fn label_smoothed_nll(logits: Tensor<2>, targets: &[u32], epsilon: f64) -> Result<Tensor<1>> {
    let [n, c] = logits.dims();
    if n == 0 || targets.is_empty() {
        return Err(TrainError::NoSupervisedToken);
    }
    if targets.len() != n {
        return Err(TrainError::BatchShape {
            expected: n,
            found: targets.len(),
            what: "targets (one per logit row)",
        });
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= c) {
        return Err(TrainError::TargetOutOfVocab {
            target: bad,
            vocab: c,
        });
    }
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(TrainError::InvalidArgument {
            name: "epsilon (label smoothing)",
            value: epsilon.to_string(),
            reason: "must lie in [0, 1]",
        });
    }
    let device = logits.device();
    let logp = log_softmax(logits.cast(burn::tensor::FloatDType::F32), 1);
    let idx = Tensor::<2, Int>::from_data(
        TensorData::new(targets.iter().map(|&t| i64::from(t)).collect(), [n, 1]),
        &device,
    );
    let nll = logp.clone().gather(1, idx).neg().reshape([n]);
    let per_token = if epsilon > 0.0 {
        let smooth = logp.mean_dim(1).neg().reshape([n]);
        nll * (1.0 - epsilon) + smooth * epsilon
    } else {
        nll
    };
    Ok(per_token.mean())
}
