//! [`Weights`]: building model parameters from a [`Checkpoint`] by HF name, with every problem collected.

use std::cell::RefCell;
use std::collections::BTreeSet;

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, FloatDType, Tensor, TensorData};

use crate::{Checkpoint, CheckpointError, Result, TensorProblem};

/// The float dtype model parameters are created in, whatever the stored dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FloatPolicy {
    /// f32 (the CPU default; bf16/f16 files are widened exactly).
    #[default]
    F32,
    /// bf16 (GPU inference of the released bf16 weights at their own precision).
    Bf16,
    /// f16.
    F16,
}

/// A tracking loader: models ask it for tensors by HF name and expected shape.
///
/// A missing or mis-shaped tensor does not stop the build: a zero tensor of the expected shape stands in, the
/// problem is recorded, and [`Weights::finish`] returns every problem at once, together with the checkpoint's
/// tensors that nothing asked for (unless declared ignorable with [`Weights::ignore_unused`]).
pub struct Weights<'a> {
    ckpt: &'a Checkpoint,
    device: Device,
    policy: FloatPolicy,
    ignored: Vec<String>,
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Vec<TensorProblem>>,
}

impl<'a> Weights<'a> {
    /// A loader creating f32 parameters on `device`.
    pub fn new(ckpt: &'a Checkpoint, device: &Device) -> Self {
        Self {
            ckpt,
            device: device.clone(),
            policy: FloatPolicy::F32,
            ignored: Vec::new(),
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Vec::new()),
        }
    }

    /// Sets the parameter dtype.
    pub fn with_policy(mut self, policy: FloatPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Tensors whose name ends with `suffix` are not reported as unexpected when unused (e.g. the RoPE
    /// `rotary_emb.inv_freq` buffer, which is recomputed).
    pub fn ignore_unused(mut self, suffix: &str) -> Self {
        self.ignored.push(suffix.to_string());
        self
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        self.ckpt
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// True when the checkpoint has a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.contains(name)
    }

    fn problem(&self, p: TensorProblem) {
        self.problems.borrow_mut().push(p);
    }

    /// Reads `name` as f32 host data if it exists with shape `shape`; records a problem otherwise.
    /// `None` with `required = false` and the tensor absent is not a problem.
    fn host(&self, name: &str, shape: &[usize], required: bool) -> Option<Vec<f32>> {
        let Some(info) = self.ckpt.info(name) else {
            if required {
                self.problem(TensorProblem::Missing {
                    name: name.to_string(),
                    expected: shape.to_vec(),
                });
            }
            return None;
        };
        self.used.borrow_mut().insert(name.to_string());
        if info.shape != shape {
            self.problem(TensorProblem::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                actual: info.shape,
            });
            return None;
        }
        if !info.dtype.is_float() {
            self.problem(TensorProblem::Dtype {
                name: name.to_string(),
                dtype: format!("{:?}", info.dtype),
            });
            return None;
        }
        match self.ckpt.f32(name) {
            Ok((values, _)) => Some(values),
            Err(e) => {
                self.problem(TensorProblem::Unreadable {
                    name: name.to_string(),
                    reason: e.to_string(),
                });
                None
            }
        }
    }

    /// Makes a device tensor in the policy's dtype from f32 host data.
    pub fn from_host<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        let t = Tensor::<D>::from_data(TensorData::new(values, shape), &self.device);
        match self.policy {
            FloatPolicy::F32 => t,
            FloatPolicy::Bf16 => t.cast(FloatDType::BF16),
            FloatPolicy::F16 => t.cast(FloatDType::F16),
        }
    }

    /// The tensor `name`, which must have shape `shape`.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        let values = self
            .host(name, &shape, true)
            .unwrap_or_else(|| vec![0.0; shape.iter().product()]);
        self.from_host(values, shape)
    }

    /// The tensor `name` if the checkpoint has it (a present tensor of another shape is a problem).
    pub fn optional<const D: usize>(&self, name: &str, shape: [usize; D]) -> Option<Tensor<D>> {
        self.host(name, &shape, false)
            .map(|v| self.from_host(v, shape))
    }

    /// The f32 host data of `name` (shape `shape`), for weights that are rearranged before use.
    pub fn host_f32(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        self.host(name, shape, true)
            .unwrap_or_else(|| vec![0.0; shape.iter().product()])
    }

    /// A `[d_in, d_out]` burn weight from the PyTorch `[d_out, d_in]` tensor `name` (transposed on the host).
    pub fn linear_weight(&self, name: &str, d_in: usize, d_out: usize) -> Tensor<2> {
        let w = self.host_f32(name, &[d_out, d_in]);
        let mut t = vec![0.0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        self.from_host(t, [d_in, d_out])
    }

    /// A `Linear` from `{prefix}.weight` `[d_out, d_in]` and, with `bias`, `{prefix}.bias` `[d_out]`.
    pub fn linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Linear {
        let weight = self.linear_weight(&format!("{prefix}.weight"), d_in, d_out);
        let bias =
            bias.then(|| Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [d_out])));
        Linear {
            weight: Param::from_tensor(weight),
            bias,
        }
    }

    /// A `LayerNorm` from `{prefix}.weight` and `{prefix}.bias` (`[d]`), with epsilon `eps`.
    pub fn layer_norm(&self, prefix: &str, d: usize, eps: f64) -> LayerNorm {
        let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(&self.device);
        ln.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d]));
        ln.beta = Some(Param::from_tensor(
            self.tensor(&format!("{prefix}.bias"), [d]),
        ));
        ln
    }

    /// Ends the build: `Ok` when every requested tensor was found with the right shape and every tensor of the
    /// checkpoint was used (or is ignorable); otherwise one error listing every problem.
    ///
    /// # Errors
    /// [`CheckpointError::Tensors`] with every missing, mis-shaped, unreadable and unexpected tensor.
    pub fn finish(self) -> Result<()> {
        let used = self.used.into_inner();
        let mut problems = self.problems.into_inner();
        for name in self.ckpt.names() {
            if !used.contains(name) && !self.ignored.iter().any(|s| name.ends_with(s.as_str())) {
                let actual = self.ckpt.info(name).map(|i| i.shape).unwrap_or_default();
                problems.push(TensorProblem::Unexpected {
                    name: name.to_string(),
                    actual,
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::Tensors {
                source_desc: self.ckpt.source().to_string(),
                problems,
            })
        }
    }
}
