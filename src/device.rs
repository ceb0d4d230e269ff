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

    /// The burn device.
    ///
    /// # Errors
    /// The backend is not compiled into this build.
    pub fn device(self) -> Result<burn::tensor::Device> {
        match self {
            DeviceKind::Flex => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(i) => Ok(burn::tensor::Device::cuda(i)),
            #[allow(unreachable_patterns)]
            other => Err(Error::BackendNotCompiled {
                device: other,
                backends: Self::compiled_backends(),
                feature: "cuda",
            }),
        }
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
