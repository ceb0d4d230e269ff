//! The checkpoint layout of the composed network's parameters: the HF name and tensor layout of every parameter
//! of an [`crate::Owl2Net`] (or any module built from the same parts), used by training (gradients, optimiser
//! state, checkpoints) and by the export, and checked against loading (the export of a loaded network is its
//! checkpoint again).
//!
//! The modules' field paths mirror the HF checkpoint names (see `biqa-decoder` / `biqa-vision`), so the name of a
//! parameter follows from its path by a handful of structural rules, kept here and nowhere else:
//! - the composed model's fields `llm` / `vision_model` / `visual_abstractor` sit under `model.` (the LLM's
//!   `lm_head` at the top level, as in `MPLUGOwl2LlamaForCausalLM`);
//! - burn's `LayerNorm` `gamma` / `beta` are `weight` / `bias`;
//! - a `Linear` / `Projection` weight is stored `[d_in, d_out]`, the checkpoint's transposed
//!   ([`ParamLayout::Transposed`]);
//! - parameters stored without their `.weight` suffix (`embed_tokens`, the patch matrix) get it back;
//! - LoRA factors (`<projection>.lora.{a,b}`, `[d_in, r]` / `[r, d_out]`, stored as they are) are
//!   `<projection>.weight.lora_a` / `.lora_b`.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Named host tensors in the checkpoint's layout: HF name → (checkpoint shape, row-major f32 values).
pub type CheckpointTensors = std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// How a parameter's tensor relates to the checkpoint tensor of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLayout {
    /// The same shape and order.
    Same,
    /// A `Linear` or `Projection` weight: burn `[d_in, d_out]` = checkpoint `[d_out, d_in]` transposed.
    Transposed,
    /// The ViT patch matrix `[C·p·p, D]` = the conv kernel `[D, C, p, p]` flattened and transposed.
    PatchMatrix,
}

impl ParamLayout {
    /// Host values of a parameter of module shape `shape`, reordered into the checkpoint's order; returns the
    /// checkpoint shape (for [`ParamLayout::PatchMatrix`] the 2-D `[D, C·p·p]`, which the caller reshapes to the
    /// kernel `[D, C, p, p]`).
    pub fn to_checkpoint(self, values: &[f32], shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
        match (self, shape) {
            (ParamLayout::Transposed | ParamLayout::PatchMatrix, &[r, c]) => {
                (vec![c, r], transpose(values, r, c))
            }
            _ => (shape.to_vec(), values.to_vec()),
        }
    }

    /// The inverse of [`ParamLayout::to_checkpoint`]: checkpoint-ordered values → the module's order for a
    /// parameter of module shape `shape`.
    pub fn from_checkpoint(self, values: &[f32], shape: &[usize]) -> Vec<f32> {
        match (self, shape) {
            (ParamLayout::Transposed | ParamLayout::PatchMatrix, &[r, c]) => {
                transpose(values, c, r)
            }
            _ => values.to_vec(),
        }
    }
}

/// Transposes a row-major `[rows, cols]` matrix.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = values[i * cols + j];
        }
    }
    out
}

/// One float parameter of a module tree.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    /// Its id (stable for the life of the module, across optimiser steps).
    pub id: ParamId,
    /// The checkpoint name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// The burn module path (`llm.layers.0.self_attn.q_proj.weight`).
    pub path: String,
    /// The shape of the stored tensor.
    pub shape: Vec<usize>,
    /// Its layout against the checkpoint tensor.
    pub layout: ParamLayout,
    /// Whether it is trained (requires a gradient).
    pub trainable: bool,
    /// A LayerNorm / RMSNorm gain or shift, or a bias: the parameters the released trainer exempts from weight
    /// decay (biases and `nn.LayerNorm` weights; RMSNorm gains are listed here too but told apart by
    /// [`ParamInfo::is_layer_norm`]).
    pub is_bias: bool,
    /// A weight or bias of a `nn.LayerNorm` (burn `LayerNorm`).
    pub is_layer_norm: bool,
    /// A gain of an `RmsNorm`.
    pub is_rms_norm: bool,
    /// A LoRA factor.
    pub is_lora: bool,
    /// The number of elements.
    pub numel: usize,
}

/// Maps a burn module path (each entry: field name, type of the struct holding it) to the checkpoint name and
/// layout.
fn checkpoint_name(stack: &[(String, String)]) -> (String, ParamLayout) {
    // A LoRA factor `…<proj>.lora.{a,b}` is named after its projection's weight: `…<proj>.weight.lora_{a,b}`.
    if let [outer @ .., (branch, holder), (factor, container)] = stack
        && branch == "lora"
        && holder == "Struct:Projection"
        && container == "Struct:LoraBranch"
    {
        let mut base = outer.to_vec();
        base.push(("weight".to_owned(), holder.clone()));
        let (name, _) = checkpoint_name(&base);
        return (format!("{name}.lora_{factor}"), ParamLayout::Same);
    }
    let mut parts: Vec<String> = Vec::with_capacity(stack.len() + 2);
    let mut layout = ParamLayout::Same;
    for (i, (name, container)) in stack.iter().enumerate() {
        if i == 0 {
            match name.as_str() {
                "llm" => {
                    // `lm_head` is top level; everything else of the LLM sits under `model.`.
                    if stack.get(1).is_some_and(|(n, _)| n != "lm_head") {
                        parts.push("model".to_owned());
                    }
                    continue;
                }
                "vision_model" | "visual_abstractor" => parts.push("model".to_owned()),
                _ => {}
            }
        }
        parts.push(match (container.as_str(), name.as_str()) {
            ("Struct:LayerNorm", "gamma") => "weight".to_owned(),
            ("Struct:LayerNorm", "beta") => "bias".to_owned(),
            _ => name.clone(),
        });
        if i + 1 == stack.len() {
            match (container.as_str(), name.as_str()) {
                ("Struct:Linear" | "Struct:Projection", "weight") => {
                    layout = ParamLayout::Transposed;
                }
                ("Struct:VisionEmbeddings", "patch_embed") => {
                    layout = ParamLayout::PatchMatrix;
                    parts.push("weight".to_owned());
                }
                ("Struct:Llama", "embed_tokens") => parts.push("weight".to_owned()),
                _ => {}
            }
        }
    }
    (parts.join("."), layout)
}

struct Collector {
    stack: Vec<(String, String)>,
    out: Vec<ParamInfo>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (name, layout) = checkpoint_name(&self.stack);
        let path = self
            .stack
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let shape = param.lazy_shape().to_vec();
        let parent = self.stack.last().map(|(_, c)| c.as_str()).unwrap_or("");
        let field = self.stack.last().map(|(n, _)| n.as_str()).unwrap_or("");
        let is_layer_norm = parent == "Struct:LayerNorm";
        let is_rms_norm = parent == "Struct:RmsNorm";
        let is_bias = field == "bias" || (is_layer_norm && field == "beta");
        let is_lora = parent == "Struct:LoraBranch";
        self.out.push(ParamInfo {
            id: param.id,
            name,
            path,
            numel: shape.iter().product(),
            shape,
            layout,
            trainable: param.is_require_grad(),
            is_bias,
            is_layer_norm,
            is_rms_norm,
            is_lora,
        });
    }
}

/// Every float parameter of `module`, in visiting order, with its checkpoint name.
pub fn param_infos<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut c = Collector {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut c);
    c.out
}
/// Reads every parameter's value (flattened, inner device) by id.
pub fn param_values<M: Module>(module: &M) -> HashMap<ParamId, Tensor<1>> {
    struct V(HashMap<ParamId, Tensor<1>>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.base().inner();
            let n = t.shape().num_elements();
            self.0.insert(param.id, t.reshape([n]));
        }
    }
    let mut v = V(HashMap::new());
    module.visit(&mut v);
    v.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn names_follow_the_checkpoint() {
        let (n, l) = checkpoint_name(&s(&[
            ("llm", "Struct:Owl2Net"),
            ("layers", "Struct:Llama"),
            ("0", "Vec"),
            ("self_attn", "Struct:DecoderLayer"),
            ("q_proj", "Struct:Attention"),
            ("weight", "Struct:Projection"),
        ]));
        assert_eq!(n, "model.layers.0.self_attn.q_proj.weight");
        assert_eq!(l, ParamLayout::Transposed);
        let (n, _) = checkpoint_name(&s(&[
            ("llm", "Struct:Owl2Net"),
            ("lm_head", "Struct:Llama"),
            ("weight", "Struct:Linear"),
        ]));
        assert_eq!(n, "lm_head.weight");
        let (n, l) = checkpoint_name(&s(&[
            ("llm", "Struct:Owl2Net"),
            ("embed_tokens", "Struct:Llama"),
        ]));
        assert_eq!(
            (n.as_str(), l),
            ("model.embed_tokens.weight", ParamLayout::Same)
        );
        let (n, _) = checkpoint_name(&s(&[
            ("vision_model", "Struct:Owl2Net"),
            ("post_layernorm", "Struct:VisionModel"),
            ("gamma", "Struct:LayerNorm"),
        ]));
        assert_eq!(n, "model.vision_model.post_layernorm.weight");
        let (n, l) = checkpoint_name(&s(&[
            ("llm", "Struct:Owl2Net"),
            ("layers", "Struct:Llama"),
            ("1", "Vec"),
            ("self_attn", "Struct:DecoderLayer"),
            ("v_proj", "Struct:Attention"),
            ("multiway", "Struct:MultiwayLinear"),
            ("1", "Vec"),
            ("weight", "Struct:Projection"),
        ]));
        assert_eq!(n, "model.layers.1.self_attn.v_proj.multiway.1.weight");
        assert_eq!(l, ParamLayout::Transposed);
        let (n, l) = checkpoint_name(&s(&[
            ("llm", "Struct:Owl2Net"),
            ("layers", "Struct:Llama"),
            ("0", "Vec"),
            ("self_attn", "Struct:DecoderLayer"),
            ("q_proj", "Struct:Attention"),
            ("lora", "Struct:Projection"),
            ("a", "Struct:LoraBranch"),
        ]));
        assert_eq!(n, "model.layers.0.self_attn.q_proj.weight.lora_a");
        assert_eq!(l, ParamLayout::Same);
    }
}
