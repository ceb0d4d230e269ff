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

/// Where tensors come from.
enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    /// Deterministic random initialisation (see [`Weights::random`]).
    Random {
        seed: u64,
        multiway: bool,
    },
}

/// SplitMix64 → standard normal (Box–Muller); deterministic on every backend.
fn normal_values(name: &str, seed: u64, n: usize, std: f64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in name.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

/// A tracking loader: models ask it for tensors by HF name and expected shape.
///
/// A missing or mis-shaped tensor does not stop the build: a zero tensor of the expected shape stands in, the
/// problem is recorded, and [`Weights::finish`] returns every problem at once, together with the checkpoint's
/// tensors that nothing asked for (unless declared ignorable with [`Weights::ignore_unused`]).
pub struct Weights<'a> {
    source: Source<'a>,
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
            source: Source::Checkpoint(ckpt),
            device: device.clone(),
            policy: FloatPolicy::F32,
            ignored: Vec::new(),
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Vec::new()),
        }
    }

    /// A source of deterministic random parameters instead of a checkpoint, so that every model's `load` doubles
    /// as its initialiser (training from scratch, tests, benchmarks): biases 0, 1-D weights (norm gains) 1,
    /// 2-D `[out, in]` weights `N(0, 1/in)`, anything else `N(0, 0.02²)`. Optional tensors (stored position
    /// tables) are absent, so models compute them. With `multiway`, names containing `.multiway.` exist (a
    /// modality-adaptive decoder); `lm_head.weight` never exists, so a tied config stays tied.
    pub fn random(device: &Device, seed: u64, multiway: bool) -> Weights<'static> {
        Weights {
            source: Source::Random { seed, multiway },
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

    /// True when the checkpoint has a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        match self.source {
            Source::Checkpoint(c) => c.contains(name),
            Source::Random { multiway, .. } => {
                name != "lm_head.weight" && (multiway || !name.contains(".multiway."))
            }
        }
    }

    fn problem(&self, p: TensorProblem) {
        self.problems.borrow_mut().push(p);
    }

    /// Reads `name` as f32 host data if it exists with shape `shape`; records a problem otherwise.
    /// `None` with `required = false` and the tensor absent is not a problem.
    fn host(&self, name: &str, shape: &[usize], required: bool) -> Option<Vec<f32>> {
        let ckpt = match self.source {
            Source::Checkpoint(c) => c,
            Source::Random { seed, .. } => {
                if !required {
                    return None;
                }
                let n = shape.iter().product();
                return Some(match shape {
                    _ if name.ends_with(".bias") => vec![0.0; n],
                    [_] => vec![1.0; n],
                    [_, fan_in] => normal_values(name, seed, n, (1.0 / *fan_in as f64).sqrt()),
                    _ => normal_values(name, seed, n, 0.02),
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
        match ckpt.f32(name) {
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
        let Source::Checkpoint(ckpt) = self.source else {
            return Ok(());
        };
        for name in ckpt.names() {
            if !used.contains(name) && !self.ignored.iter().any(|s| name.ends_with(s.as_str())) {
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
