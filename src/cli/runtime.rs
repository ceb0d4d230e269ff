//! Where a model command runs: the `--device` / `--dtype` flags, resolved to a burn device and a
//! [`FloatPolicy`], and the model loaded there.

use std::path::Path;

use anyhow::Result;
use biqa::checkpoint::FloatPolicy;
use biqa::device::DeviceKind;
use biqa::model::{LoadOptions, Owl2};
use burn::tensor::Device;

/// The device and dtype flags, global to every command (`biqa --device cuda score …` and
/// `biqa score --device cuda …` alike).
#[derive(Debug, Clone, clap::Args)]
pub struct Runtime {
    /// Device for the model commands: flex (CPU), cuda or cuda:N (default: $BIQA_DEVICE, else flex).
    #[arg(long, global = true)]
    pub device: Option<String>,
    /// Parameter dtype for the model commands (bf16 keeps the released weights at their precision on GPUs).
    #[arg(long, global = true, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
}

/// `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats (CPU default).
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

impl Dtype {
    /// The checkpoint loader's float policy for this dtype.
    pub fn policy(self) -> FloatPolicy {
        match self {
            Dtype::F32 => FloatPolicy::F32,
            Dtype::Bf16 => FloatPolicy::Bf16,
            Dtype::F16 => FloatPolicy::F16,
        }
    }
}

/// The device named `name`, or the default one (`$BIQA_DEVICE`, else the build's first backend) without a name.
///
/// # Errors
/// An unknown device name, in `name` or in `BIQA_DEVICE`.
pub fn device_kind(name: Option<&str>) -> Result<DeviceKind> {
    Ok(match name {
        Some(n) => n.parse::<DeviceKind>()?,
        None => DeviceKind::from_env()?,
    })
}

/// The burn device named `name` (see [`device_kind`]).
///
/// # Errors
/// An unknown device name, or a backend that is not compiled into this build.
pub fn device(name: Option<&str>) -> Result<Device> {
    Ok(device_kind(name)?.device()?)
}

impl Runtime {
    /// The device that `--device` names (or the default one).
    ///
    /// # Errors
    /// As [`device_kind`].
    pub fn kind(&self) -> Result<DeviceKind> {
        device_kind(self.device.as_deref())
    }

    /// The burn device that `--device` names (or the default one).
    ///
    /// # Errors
    /// As [`device`].
    pub fn device(&self) -> Result<Device> {
        device(self.device.as_deref())
    }

    /// The parameter float policy that `--dtype` names.
    pub fn policy(&self) -> FloatPolicy {
        self.dtype.policy()
    }

    /// Loads the checkpoint directory `model` on this device and dtype, with the checkpoint's own image
    /// preprocessing.
    ///
    /// # Errors
    /// A bad device name, or the model's loading errors (naming the file).
    pub fn load(&self, model: &Path) -> Result<Owl2> {
        let options = LoadOptions {
            policy: self.policy(),
            resize_mode: None,
        };
        Ok(Owl2::from_dir(model, &self.device()?, &options)?)
    }
}
