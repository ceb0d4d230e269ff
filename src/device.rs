//! Choosing the burn device that models run on.
//!
//! The default build has the pure-Rust `flex` CPU backend (AVX-512 matrix kernels are picked at run time when the
//! CPU has them); the `cuda` cargo feature adds NVIDIA GPUs. A device is named `flex` (or `cpu`), `cuda` or
//! `cuda:N`; the `BIQA_DEVICE` environment variable gives the default name.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A device the build can run models on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// NVIDIA GPU number `.0` (needs the `cuda` feature).
    Cuda(usize),
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Flex => f.write_str("flex"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "flex" | "cpu" => Ok(DeviceKind::Flex),
            "cuda" | "gpu" => Ok(DeviceKind::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceKind::Cuda(i)),
                _ => Err(Error::UnknownDevice { name: s }),
            },
        }
    }
}

impl DeviceKind {
    /// The device named by `BIQA_DEVICE`, or the first backend of this build (`cuda:0` when built with
    /// `cuda`, otherwise `flex`).
    ///
    /// # Errors
    /// `BIQA_DEVICE` holds an unknown name.
    pub fn from_env() -> Result<Self> {
        match std::env::var("BIQA_DEVICE") {
            Ok(name) if !name.trim().is_empty() => name.parse(),
            _ => Ok(Self::build_default()),
        }
    }

    /// The first backend of this build.
    pub fn build_default() -> Self {
        if cfg!(feature = "cuda") {
            DeviceKind::Cuda(0)
        } else {
            DeviceKind::Flex
        }
    }

    /// The backends compiled into this build.
    pub fn compiled_backends() -> Vec<&'static str> {
        let mut v = Vec::new();
        v.push("flex");
        if cfg!(feature = "cuda") {
            v.push("cuda");
        }
        v
    }

    /// The burn device, checked to work: a GPU device makes and reads back a one-element tensor first, so that a
    /// host without a driver or without that GPU gets [`Error::DeviceUnavailable`] instead of a panic deep in a
    /// model command.
    ///
    /// # Errors
    /// The backend is not compiled into this build; the device does not work here.
    pub fn device(self) -> Result<burn::tensor::Device> {
        match self {
            DeviceKind::Flex => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(i) => {
                let device = burn::tensor::Device::cuda(i);
                probe(&device).map_err(|reason| Error::DeviceUnavailable {
                    device: self,
                    reason: format!(
                        "{reason} (a CUDA device needs the NVIDIA driver's libcuda.so.1, an NVRTC no newer than \
                         the driver and the CUDA headers under CUDA_PATH: see the README's GPU section)"
                    ),
                })?;
                Ok(device)
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::BackendNotCompiled {
                device: other,
                backends: Self::compiled_backends(),
                feature: "cuda",
            }),
        }
    }
}

/// Makes a one-element tensor on `device` and reads it back, with the backend's panics caught (cubecl panics when
/// the driver or the GPU is missing) and the default panic message silenced meanwhile.
///
/// # Errors
/// The backend's panic message.
pub fn probe(device: &burn::tensor::Device) -> std::result::Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        burn::tensor::Tensor::<1>::ones([1], device)
            .into_data()
            .try_to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(Some(1.0)) => Ok(()),
        Ok(other) => Err(format!("a tensor of ones read back as {other:?}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "the backend panicked".to_string())),
    }
}

/// Whether this CPU has the AVX-512 kernels that the `flex` backend's matmul picks at run time.
pub fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("flex".parse::<DeviceKind>().unwrap(), DeviceKind::Flex);
        assert_eq!("CPU".parse::<DeviceKind>().unwrap(), DeviceKind::Flex);
        assert_eq!("cuda".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(3));
        assert!("tpu".parse::<DeviceKind>().is_err());
        assert!("cuda:x".parse::<DeviceKind>().is_err());
        assert_eq!(DeviceKind::Cuda(2).to_string(), "cuda:2");
    }
}
