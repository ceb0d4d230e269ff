//! [`Weights`]: building model parameters from a [`Checkpoint`] by HF name, with every problem collected.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use biqa_core::SplitMix64;
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{DType, Device, Tensor, TensorData};

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

impl FloatPolicy {
    /// The dtype parameters are created in under this policy.
    pub fn dtype(self) -> DType {
        match self {
            FloatPolicy::F32 => DType::F32,
            FloatPolicy::Bf16 => DType::BF16,
            FloatPolicy::F16 => DType::F16,
        }
    }
}

/// Where tensors come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    /// Deterministic random initialisation (see [`Weights::random`]).
    Random {
        seed: u64,
        multiway: bool,
        /// False for [`Weights::plan`]: record what is asked, create nothing.
        materialise: bool,
    },
}

/// SplitMix64 → standard normal (Box–Muller); deterministic on every backend.
fn normal_values(name: &str, seed: u64, n: usize, std: f64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in name.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut rng = SplitMix64::new(state);
    let mut next = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

/// What a loader and its scoped views record together.
#[derive(Default)]
struct Tracking {
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Vec<TensorProblem>>,
    /// What a [`Weights::plan`] build asked for, in order: `(name, HF shape)`.
    planned: RefCell<Vec<(String, Vec<usize>)>>,
}

/// The values [`Weights::random`] gives the tensor `name` of HF shape `shape` (row-major, f32): biases 0, 1-D
/// weights 1, 2-D `[out, in]` weights `N(0, 1/in)`, anything else `N(0, 0.02²)`, drawn from a stream seeded by
/// `seed` and the name.
pub fn random_values(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let n = shape.iter().product();
    match shape {
        _ if name.ends_with(".bias") => vec![0.0; n],
        [_] => vec![1.0; n],
        [_, fan_in] => normal_values(name, seed, n, (1.0 / *fan_in as f64).sqrt()),
        _ => normal_values(name, seed, n, 0.02),
    }
}

/// A tracking loader: models ask it for tensors by HF name and expected shape.
///
/// A missing or mis-shaped tensor does not stop the build: a zero broadcast to the expected shape stands in (it
/// allocates one element), the problem is recorded, and [`Weights::finish`] returns every problem at once, together with the checkpoint's
/// tensors that nothing asked for (unless declared ignorable with [`Weights::ignore_unused`]).
///
/// [`Weights::scope`] gives a view under a name prefix (`model.vision_model`): names asked of it are relative to
/// the prefix, and its [`Weights::finish`] reports only what lies under the prefix, so one part of a checkpoint
/// (a tower) can be loaded and checked alone.
pub struct Weights<'a> {
    source: Source<'a>,
    device: Device,
    policy: FloatPolicy,
    ignored: Vec<String>,
    /// Prefixes of tensors that belong to other parts (see [`Weights::ignore_scope`]).
    ignored_scopes: Vec<String>,
    /// The scope (`""` at the root, otherwise a dotted prefix without the trailing dot).
    prefix: String,
    tracking: Rc<Tracking>,
}

impl<'a> Weights<'a> {
    /// A loader creating f32 parameters on `device`.
    pub fn new(ckpt: &'a Checkpoint, device: &Device) -> Self {
        Self {
            source: Source::Checkpoint(ckpt),
            device: device.clone(),
            policy: FloatPolicy::F32,
            ignored: Vec::new(),
            ignored_scopes: Vec::new(),
            prefix: String::new(),
            tracking: Rc::default(),
        }
    }

    /// A source of deterministic random parameters instead of a checkpoint, so that every model's `load` doubles
    /// as its initialiser (training from scratch, tests, benchmarks): biases 0, 1-D weights (norm gains) 1,
    /// 2-D `[out, in]` weights `N(0, 1/in)`, anything else `N(0, 0.02²)`. Optional tensors (stored position
    /// tables) are absent, so models compute them. With `multiway`, names containing `.multiway.` exist (a
    /// modality-adaptive decoder); `lm_head.weight` never exists, so a tied config stays tied.
    pub fn random(device: &Device, seed: u64, multiway: bool) -> Weights<'static> {
        Weights {
            source: Source::Random {
                seed,
                multiway,
                materialise: true,
            },
            device: device.clone(),
            policy: FloatPolicy::F32,
            ignored: Vec::new(),
            ignored_scopes: Vec::new(),
            prefix: String::new(),
            tracking: Rc::default(),
        }
    }

    /// A dry run of [`Weights::random`]: a model built from it asks for exactly the tensors a random build would,
    /// which are recorded (see [`Weights::planned`]) and answered with stand-ins that allocate nothing, so the
    /// parameter list of a 7B configuration costs no memory. This is how a random checkpoint of any size is
    /// written from the models' own loading code, one tensor at a time.
    pub fn plan(device: &Device, multiway: bool) -> Weights<'static> {
        let mut w = Self::random(device, 0, multiway);
        w.source = Source::Random {
            seed: 0,
            multiway,
            materialise: false,
        };
        w
    }

    /// The tensors a [`Weights::plan`] build asked for, in order: `(full HF name, HF shape)`. Empty for other
    /// sources.
    pub fn planned(&self) -> Vec<(String, Vec<usize>)> {
        self.tracking.planned.borrow().clone()
    }

    /// A view of the same loader under `prefix` (dotted, e.g. `model.vision_model`; nested scopes join with
    /// `.`): the names asked of it are relative to the prefix, what it finds or misses is recorded with the
    /// loader's, and its [`Weights::finish`] reports only the tensors under the prefix.
    #[must_use]
    pub fn scope(&self, prefix: &str) -> Weights<'a> {
        Weights {
            source: self.source,
            device: self.device.clone(),
            policy: self.policy,
            ignored: self.ignored.clone(),
            ignored_scopes: self.ignored_scopes.clone(),
            prefix: self.name(prefix),
            tracking: Rc::clone(&self.tracking),
        }
    }

    /// The full checkpoint name of `name` in this scope.
    pub fn name(&self, name: &str) -> String {
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{name}", self.prefix),
        }
    }

    fn in_scope(&self, full: &str) -> bool {
        self.prefix.is_empty()
            || full
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }

    /// Sets the parameter dtype.
    pub fn with_policy(mut self, policy: FloatPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Tensors under `prefix` (dotted, e.g. `model.vision_model`) belong to another part of the checkpoint: they are
    /// not reported as unexpected when this loader builds only its own part (a decoder from an mPLUG-Owl2 file).
    pub fn ignore_scope(mut self, prefix: &str) -> Self {
        self.ignored_scopes
            .push(prefix.trim_end_matches('.').to_string());
        self
    }

    /// Tensors whose name ends with `suffix` are not reported as unexpected when unused (e.g. the RoPE
    /// `rotary_emb.inv_freq` buffer, which is recomputed).
    pub fn ignore_unused(mut self, suffix: &str) -> Self {
        self.ignored.push(suffix.to_string());
        self
    }

    /// The checkpoint (`None` for random initialisation).
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        match self.source {
            Source::Checkpoint(c) => Some(c),
            Source::Random { .. } => None,
        }
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// True when the checkpoint has a tensor of that name (relative to the scope).
    pub fn contains(&self, name: &str) -> bool {
        let name = self.name(name);
        let name = name.as_str();
        match self.source {
            Source::Checkpoint(c) => c.contains(name),
            Source::Random { multiway, .. } => {
                name != "lm_head.weight" && (multiway || !name.contains(".multiway."))
            }
        }
    }

    fn problem(&self, p: TensorProblem) {
        self.tracking.problems.borrow_mut().push(p);
    }

    /// The dtype parameters are created in.
    pub fn dtype(&self) -> DType {
        self.policy.dtype()
    }

    /// Reads `name` in the policy's dtype if it exists with shape `shape`; records a problem otherwise.
    /// `None` with `required = false` and the tensor absent is not a problem. Nothing of the expected shape is
    /// allocated unless the checkpoint holds it.
    fn fetch(
        &self,
        name: &str,
        shape: &[usize],
        required: bool,
        transpose: bool,
    ) -> Option<TensorData> {
        let name = self.name(name);
        let name = name.as_str();
        let ckpt = match self.source {
            Source::Checkpoint(c) => c,
            Source::Random {
                seed, materialise, ..
            } => {
                if !required {
                    return None;
                }
                if !materialise {
                    self.tracking
                        .planned
                        .borrow_mut()
                        .push((name.to_string(), shape.to_vec()));
                    return None;
                }
                let values = random_values(name, shape, seed);
                return Some(match (transpose, shape) {
                    (true, &[rows, cols]) => {
                        let mut t = vec![0.0f32; values.len()];
                        for r in 0..rows {
                            for c in 0..cols {
                                t[c * rows + r] = values[r * cols + c];
                            }
                        }
                        TensorData::new(t, [cols, rows])
                    }
                    _ => TensorData::new(values, shape.to_vec()),
                });
            }
        };
        let Some(info) = ckpt.info(name) else {
            if required {
                self.problem(TensorProblem::Missing {
                    name: name.to_string(),
                    expected: shape.to_vec(),
                });
            }
            return None;
        };
        self.tracking.used.borrow_mut().insert(name.to_string());
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
        let read = if transpose {
            ckpt.float_data_transposed(name, self.dtype())
        } else {
            ckpt.float_data(name, self.dtype())
        };
        match read {
            Ok(data) => Some(data),
            Err(e) => {
                self.problem(TensorProblem::Unreadable {
                    name: name.to_string(),
                    reason: e.to_string(),
                });
                None
            }
        }
    }

    /// A device tensor in the policy's dtype from host data of any float dtype (converted on the way if needed).
    fn device_tensor<const D: usize>(&self, data: TensorData) -> Tensor<D> {
        Tensor::<D>::from_data(data, (&self.device, self.dtype()))
    }

    /// The stand-in for a tensor that could not be loaded (the build's problem is recorded and
    /// [`Weights::finish`] fails): one zero broadcast to `shape`, so that a configuration whose sizes the
    /// checkpoint does not hold (7B widths over a tiny file) allocates nothing of those sizes.
    fn stand_in<const D: usize>(&self, shape: [usize; D]) -> Tensor<D> {
        Tensor::<D>::zeros([1; D], (&self.device, self.dtype())).expand(shape)
    }

    /// Makes a device tensor in the policy's dtype from f32 host data (computed tables).
    pub fn from_host<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        self.device_tensor(TensorData::new(values, shape))
    }

    /// The tensor `name`, which must have shape `shape`.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        match self.fetch(name, &shape, true, false) {
            Some(data) => self.device_tensor(data),
            None => self.stand_in(shape),
        }
    }

    /// The tensor `name` if the checkpoint has it (a present tensor of another shape is a problem).
    pub fn optional<const D: usize>(&self, name: &str, shape: [usize; D]) -> Option<Tensor<D>> {
        self.fetch(name, &shape, false, false)
            .map(|d| self.device_tensor(d))
    }

    /// A `[d_in, d_out]` burn weight from the PyTorch `[d_out, d_in]` tensor `name`, transposed while it is read
    /// (one pass; see [`Checkpoint::float_data_transposed`]). Contiguous `[in, out]` is what burn-flex's GEMM
    /// reads fastest: a transposed view of the stored matrix made the ViT-L/14 forward 1.55× slower.
    pub fn linear_weight(&self, name: &str, d_in: usize, d_out: usize) -> Tensor<2> {
        match self.fetch(name, &[d_out, d_in], true, true) {
            Some(data) => self.device_tensor(data),
            None => self.stand_in([d_in, d_out]),
        }
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

    /// Ends the build (of this scope): `Ok` when every requested tensor was found with the right shape and every
    /// tensor of the checkpoint (under the scope's prefix) was used (or is ignorable); otherwise one error listing
    /// every problem (under the prefix).
    ///
    /// # Errors
    /// [`CheckpointError::Tensors`] with every missing, mis-shaped, unreadable and unexpected tensor.
    pub fn finish(self) -> Result<()> {
        let used = self.tracking.used.borrow();
        let mut problems: Vec<TensorProblem> = self
            .tracking
            .problems
            .borrow()
            .iter()
            .filter(|p| self.in_scope(p.name()))
            .cloned()
            .collect();
        let Source::Checkpoint(ckpt) = self.source else {
            return Ok(());
        };
        for name in ckpt.names() {
            if self.in_scope(name)
                && !used.contains(name)
                && !self.ignored.iter().any(|s| name.ends_with(s.as_str()))
                && !self.ignored_scopes.iter().any(|p| {
                    name.strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
                })
            {
                let actual = ckpt.info(name).map(|i| i.shape).unwrap_or_default();
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
                source_desc: ckpt.source().to_string(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_initialisation_is_pinned() {
        // Computed independently (Python, the same name hash, SplitMix64 and Box–Muller): random models must not
        // change when the generator's code moves.
        let got: Vec<u32> = normal_values("model.norm.weight", 3, 6, 0.02)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(
            got,
            [
                0x3D71_09A5,
                0xBC52_83A8,
                0x3C62_B362,
                0x3B10_EE57,
                0x3C54_B9B7,
                0xBCDF_FC9E
            ]
        );
    }
}
