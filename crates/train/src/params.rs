//! The trainable parameters of a module tree: freezing, counts, gradients and in-place updates by parameter id.
//! Their checkpoint names and layouts come from [`biqa_model::names`].

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor};

pub use biqa_model::names::{ParamInfo, ParamLayout, param_infos, param_values, transpose};

pub use biqa_model::is_frozen;

/// The number of trainable parameters (elements) of `module`.
pub fn trainable_count<M: Module>(module: &M) -> usize {
    param_infos(module)
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.numel)
        .sum()
}

/// A gradient, flattened, on the inner (non-autodiff) device.
pub type FlatGrad = Tensor<1>;

struct DtypeCollector(HashMap<ParamId, burn::tensor::DType>);

impl ModuleVisitor for DtypeCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.insert(param.id, param.val().dtype());
    }
}

/// The dtype of every float parameter of `module` (a gradient has its parameter's dtype).
pub fn param_dtypes<M: Module>(module: &M) -> HashMap<ParamId, burn::tensor::DType> {
    let mut c = DtypeCollector(HashMap::new());
    module.visit(&mut c);
    c.0
}

struct GradCollector<'g> {
    grads: &'g mut Gradients,
    out: HashMap<ParamId, FlatGrad>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The leaf is the stored (base) value (a burn-reparameterised parameter would be visited through its base
        // and its factors separately).
        let leaf = param.base();
        if let Some(g) = leaf.grad_remove(self.grads) {
            let n = g.shape().num_elements();
            self.out.insert(param.id, g.reshape([n]));
        }
    }
}

/// Takes the gradient of every parameter of `module` out of `grads` (flattened `[numel]`, inner device). A
/// frozen parameter, or one the loss does not reach, has none.
pub fn collect_grads<M: Module>(module: &M, grads: &mut Gradients) -> HashMap<ParamId, FlatGrad> {
    let mut c = GradCollector {
        grads,
        out: HashMap::new(),
    };
    module.visit(&mut c);
    c.out
}

/// A [`ModuleMapper`] that replaces the values of the parameters `wants` selects through `f(id, value)`, with the
/// value flattened `[numel]` on the inner device and owned (no other handle), so that element-wise updates can run
/// in place. Autodiff and require-grad state are kept; other parameters are left alone.
pub struct ParamUpdater<W, F> {
    wants: W,
    f: F,
}

impl<W, F> ParamUpdater<W, F>
where
    W: Fn(ParamId) -> bool,
    F: FnMut(ParamId, Tensor<1>) -> Tensor<1>,
{
    /// A mapper from a selection and `f(id, flattened inner value) -> new flattened inner value`.
    pub fn new(wants: W, f: F) -> Self {
        Self { wants, f }
    }
}

impl<W, F> ModuleMapper for ParamUpdater<W, F>
where
    W: Fn(ParamId) -> bool,
    F: FnMut(ParamId, Tensor<1>) -> Tensor<1>,
{
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let id = param.id;
        if !(self.wants)(id) {
            return param;
        }
        let f = &mut self.f;
        param.map(|t| {
            let dims = t.dims();
            let autodiff = t.is_autodiff();
            let require_grad = t.is_require_grad();
            let n: usize = dims.iter().product();
            let new = f(id, t.inner().reshape([n])).reshape(dims);
            let mut new = if autodiff {
                Tensor::from_inner(new)
            } else {
                new
            };
            if require_grad {
                new = new.require_grad();
            }
            new
        })
    }
}
