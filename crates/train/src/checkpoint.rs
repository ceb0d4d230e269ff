//! Training checkpoints (parameters, AdamW moments, progress), written atomically, and the export of the trained
//! model as a checkpoint directory that `biqa score` loads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use biqa_checkpoint::{Checkpoint, DEFAULT_SHARD_BYTES, write_sharded_f32};
use burn::module::{Module, ParamId};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::{AdamState, AdamW};
use crate::params::{ParamUpdater, param_infos, param_values};
use biqa_model::pipeline::PROMPTS_FILE;
use biqa_model::{Owl2Assets, Owl2Net, PipelinePrompts};

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

fn host(t: Tensor<1>) -> Result<Vec<f32>> {
    // Any float dtype, widened exactly (bf16 / f16 parameters and moments).
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|source| TrainError::HostRead {
            what: "a parameter",
            source,
        })
}

/// Writes named f32 tensors as one safetensors file, atomically (a temporary file renamed into place).
///
/// # Errors
/// I/O errors (named).
pub fn write_tensors(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<()> {
    Ok(biqa_checkpoint::write_f32_file(path, tensors)?)
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

/// Saves a training checkpoint into `dir` (built under a temporary name beside it and renamed when complete,
/// [`biqa_core::AtomicDir`], so an interrupted write never replaces or corrupts an earlier checkpoint):
/// `params.safetensors` (every parameter, LoRA factors included, by checkpoint name in the module's layout),
/// `optimizer.safetensors` (`exp_avg/…`, `exp_avg_sq/…`) and `state.json` (progress and per-parameter step counts).
///
/// # Errors
/// I/O errors (named).
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    model: &M,
    opt: &AdamW,
    progress: &Progress,
) -> Result<()> {
    let staging = biqa_core::AtomicDir::new(dir)?;
    let tmp = staging.path();
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
    Ok(staging.commit()?)
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
/// the checkpoint's name and layout ([`Owl2Net::checkpoint_tensors`], f32, through biqa-checkpoint's sharded
/// writer: `model.safetensors`, or shards and an index past 2 GB), the source's buffers (position tables,
/// `inv_freq`) copied, its config, tokenizer, generation and preprocessor files copied, and the pipeline prompts it
/// was trained with ([`PROMPTS_FILE`]). Written under a temporary name beside `out`, then renamed
/// ([`biqa_core::AtomicDir`]).
///
/// # Errors
/// I/O errors or an unreadable source checkpoint (named).
pub fn export_model(
    model: &Owl2Net,
    assets: &Owl2Assets,
    prompts: &PipelinePrompts,
    out: &Path,
) -> Result<PathBuf> {
    let merged = model.valid().merge_lora();
    let staging = biqa_core::AtomicDir::new(out)?;
    let tmp = staging.path();
    let mut tensors = merged.checkpoint_tensors()?;
    let source = Checkpoint::open(&assets.dir)?;
    let names: Vec<String> = source.names().map(str::to_owned).collect();
    for name in names {
        if let std::collections::btree_map::Entry::Vacant(slot) = tensors.entry(name) {
            let (v, shape) = source.f32(slot.key())?;
            slot.insert((shape, v));
        }
    }
    drop(merged);
    write_sharded_f32(
        tmp,
        &out.display().to_string(),
        tensors,
        DEFAULT_SHARD_BYTES,
    )?;
    biqa_core::write_bytes_atomic(&tmp.join(PROMPTS_FILE), prompts.to_json().as_bytes())?;
    for f in biqa_model::ASSET_FILES {
        let src = assets.dir.join(f);
        if src.is_file() {
            std::fs::copy(&src, tmp.join(f)).map_err(io(&src))?;
        }
    }
    staging.commit()?;
    Ok(out.to_owned())
}
