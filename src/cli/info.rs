//! `biqa info`: version, compiled backends and the default device.

use anyhow::Result;
use biqa::device::{DeviceKind, cpu_has_avx512};

use crate::cli::runtime::Runtime;

/// Arguments of `biqa info` (none besides the global `--device`).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the version, the backends, the device `--device` (or `BIQA_DEVICE`) names and the AVX-512 support.
///
/// # Errors
/// An unknown device name.
pub fn run(_args: Args, rt: &Runtime) -> Result<()> {
    let kind = rt.kind()?;
    println!("biqa {}", env!("CARGO_PKG_VERSION"));
    println!(
        "backends       {}",
        DeviceKind::compiled_backends().join(", ")
    );
    println!("device         {kind}  (set BIQA_DEVICE to change)");
    println!(
        "avx512         {}",
        if cpu_has_avx512() {
            "yes (flex uses AVX-512 matmul kernels)"
        } else {
            "no"
        }
    );
    Ok(())
}
