//! Training checkpoints (parameters, AdamW moments, progress), written atomically, and the export of the trained
//! model as a checkpoint directory that `biqa score` loads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use biqa_checkpoint::Checkpoint;
use burn::module::{Module, ParamId};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::{ModelAssets, Owl2Train, merge_lora};
use crate::optim::{AdamState, AdamW};
use crate::params::{ParamLayout, ParamUpdater, param_infos, param_values};

/// Progress saved with a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimiser steps done, over all stages.
    pub global_step: usize,
    /// The stage being trained (index into the recipe's stages).
    pub stage: usize,
    /// Optimiser steps done in that stage.
    pub stage_step: usize,
    /// The data-order seed (the order is a function of seed, stage and epoch).
    pub seed: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_owned(),
        source,
    }
}

struct F32View<'a> {
    shape: Vec<usize>,
    bytes: std::borrow::Cow<'a, [u8]>,
}

impl View for &F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        self.bytes.clone()
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn host(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Input(format!("reading a parameter: {e:?}")))
}

/// Writes named f32 tensors as one safetensors file, atomically (a temporary file renamed into place).
///
/// # Errors
/// I/O errors (named).
pub fn write_tensors(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<()> {
    let views: Vec<(String, F32View<'_>)> = tensors
        .iter()
        .map(|(n, (shape, v))| {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (
                n.clone(),
                F32View {
                    shape: shape.clone(),
                    bytes: std::borrow::Cow::Owned(bytes),
                },
            )
        })
        .collect();
    let refs: Vec<(&str, &F32View<'_>)> = views.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_owned(), "pt".to_owned());
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(refs, Some(meta), &tmp).map_err(|e| TrainError::Data {
        path: tmp.clone(),
        reason: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Named host tensors: name → (shape, row-major f32 values).
pub type HostTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads every f32 tensor of a safetensors file, by name.
///
/// # Errors
/// An unreadable or corrupt file, or a tensor that is not f32 (named).
pub fn read_tensors(path: &Path) -> Result<HostTensors> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TrainError::Data {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(TrainError::Data {
                path: path.to_owned(),
                reason: format!("{name} is {:?}, expected F32", view.dtype()),
            });
        }
        let v = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), v));
    }
    Ok(out)
}

/// Saves a training checkpoint into `dir` (created as `dir.tmp` and renamed when complete, so an interrupted
/// write never replaces or corrupts an earlier checkpoint): `params.safetensors` (every parameter, LoRA factors
/// included, by checkpoint name in the module's layout), `optimizer.safetensors` (`exp_avg/…`, `exp_avg_sq/…`) and
/// `state.json` (progress and per-parameter step counts).
///
/// # Errors
/// I/O errors (named).
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    model: &M,
    opt: &AdamW,
    progress: &Progress,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let infos = param_infos(model);
    let values = param_values(model);
    let mut params = BTreeMap::new();
    let mut moments = BTreeMap::new();
    let mut steps = BTreeMap::new();
    for p in &infos {
        params.insert(
            p.name.clone(),
            (p.shape.clone(), host(values[&p.id].clone())?),
        );
        if let Some(s) = opt.states.get(&p.id) {
            moments.insert(
                format!("exp_avg/{}", p.name),
                (vec![p.numel], host(s.exp_avg.clone())?),
            );
            moments.insert(
                format!("exp_avg_sq/{}", p.name),
                (vec![p.numel], host(s.exp_avg_sq.clone())?),
            );
            steps.insert(p.name.clone(), s.step);
        }
    }
    write_tensors(&tmp.join("params.safetensors"), &params)?;
    write_tensors(&tmp.join("optimizer.safetensors"), &moments)?;
    let state = serde_json::json!({ "progress": progress, "optimizer_steps": steps });
    let state_path = tmp.join("state.json");
    std::fs::write(
        &state_path,
        serde_json::to_vec_pretty(&state).unwrap_or_default(),
    )
    .map_err(io(&state_path))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` (which must have the same parameters: the same
/// architecture and trainable policy) and returns it with the optimiser state and the progress.
///
/// # Errors
/// Missing files, a parameter missing from the checkpoint or of another shape (named).
pub fn load_checkpoint<M: Module>(dir: &Path, model: M, opt: &mut AdamW) -> Result<(M, Progress)> {
    let params_path = dir.join("params.safetensors");
    let params = read_tensors(&params_path)?;
    let moments = read_tensors(&dir.join("optimizer.safetensors"))?;
    let state_path = dir.join("state.json");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&state_path).map_err(io(&state_path))?,
    )
    .map_err(|e| TrainError::Data {
        path: state_path.clone(),
        reason: e.to_string(),
    })?;
    let progress: Progress =
        serde_json::from_value(state["progress"].clone()).map_err(|e| TrainError::Data {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
    let infos = param_infos(&model);
    let current = param_values(&model);
    let mut by_id: HashMap<ParamId, Vec<f32>> = HashMap::new();
    for p in &infos {
        let (shape, v) = params.get(&p.name).ok_or_else(|| TrainError::Data {
            path: params_path.clone(),
            reason: format!("parameter {} is missing", p.name),
        })?;
        if *shape != p.shape {
            return Err(TrainError::Data {
                path: params_path.clone(),
                reason: format!("{} has shape {shape:?}, the model {:?}", p.name, p.shape),
            });
        }
        by_id.insert(p.id, v.clone());
        let steps = state["optimizer_steps"][&p.name].as_u64();
        if let (Some(step), Some((_, m)), Some((_, v))) = (
            steps,
            moments.get(&format!("exp_avg/{}", p.name)),
            moments.get(&format!("exp_avg_sq/{}", p.name)),
        ) {
            let device = current[&p.id].device();
            opt.states.insert(
                p.id,
                AdamState {
                    step,
                    exp_avg: Tensor::from_data(TensorData::new(m.clone(), [p.numel]), &device),
                    exp_avg_sq: Tensor::from_data(TensorData::new(v.clone(), [p.numel]), &device),
                },
            );
        }
    }
    let mut updater = ParamUpdater::new(
        |id| by_id.contains_key(&id),
        |id, old: Tensor<1>| {
            let v = by_id.get(&id).cloned().unwrap_or_default();
            let n = v.len();
            Tensor::from_data(TensorData::new(v, [n]), &old.device())
        },
    );
    Ok((model.map(&mut updater), progress))
}

/// Writes the model as a checkpoint directory like the one it was loaded from: LoRA merged, every parameter in
/// the checkpoint's name and layout (f32 `model.safetensors`), the source's buffers (position tables, `inv_freq`)
/// copied, and its config, tokenizer, generation and preprocessor files copied. Written as `out.tmp`, then
/// renamed.
///
/// # Errors
/// I/O errors or an unreadable source checkpoint (named).
pub fn export_model(model: &Owl2Train, assets: &ModelAssets, out: &Path) -> Result<PathBuf> {
    let merged = merge_lora(model.valid());
    let tmp = out.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let values = param_values(&merged);
    let mut tensors = BTreeMap::new();
    for p in param_infos(&merged) {
        let (mut shape, v) = p
            .layout
            .to_checkpoint(&host(values[&p.id].clone())?, &p.shape);
        if p.layout == ParamLayout::PatchMatrix
            && let Some(vm) = &merged.vision_model
        {
            let c = &vm.config;
            shape = vec![c.hidden_size, c.num_channels, c.patch_size, c.patch_size];
        }
        tensors.insert(p.name, (shape, v));
    }
    let source = Checkpoint::open(&assets.dir)?;
    let names: Vec<String> = source.names().map(str::to_owned).collect();
    for name in names {
        if let std::collections::btree_map::Entry::Vacant(slot) = tensors.entry(name) {
            let (v, shape) = source.f32(slot.key())?;
            slot.insert((shape, v));
        }
    }
    write_tensors(&tmp.join("model.safetensors"), &tensors)?;
    for f in [
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "tokenizer.json",
    ] {
        let src = assets.dir.join(f);
        if src.is_file() {
            std::fs::copy(&src, tmp.join(f)).map_err(io(&src))?;
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(out.to_owned())
}
