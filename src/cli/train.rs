//! `biqa train`: training from a TOML configuration.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;

use crate::cli::progress::TrainProgress;
use crate::cli::runtime::{Runtime, device, device_kind};
use biqa::device::DeviceKind;

/// Arguments of `biqa train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (see `examples/train.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the latest checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Data-parallel over these devices (comma-separated, e.g. `cuda:0,cuda:1,cuda:2,cuda:3`): each replica takes
    /// every n-th micro-batch; gradients are all-reduced with burn's collectives (NCCL) when every device is a CUDA
    /// one, summed on the first device otherwise. Default: the global `--device`.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
}

/// Trains, draws `loss.png` and prints where everything went; `--resume` on a complete run says so and exits
/// successfully.
///
/// # Errors
/// A bad configuration (naming the key), data, model or I/O errors.
pub fn run(args: Args, rt: &Runtime) -> Result<()> {
    let config = biqa::train::TrainConfig::from_toml_file(&args.config)?;
    let devices: Vec<Device> = if args.devices.is_empty() {
        vec![rt.device()?]
    } else {
        args.devices
            .iter()
            .map(|d| device(Some(d.as_str())))
            .collect::<Result<_>>()?
    };
    // burn's collectives (NCCL) where every device is a CUDA one; the sums on the first device otherwise.
    let all_cuda = !args.devices.is_empty()
        && args
            .devices
            .iter()
            .map(|d| device_kind(Some(d.as_str())))
            .collect::<Result<Vec<_>>>()?
            .iter()
            .all(|k| matches!(k, DeviceKind::Cuda(_)));
    let sync = if devices.len() > 1 && all_cuda {
        biqa::train::GradientSync::AllReduce
    } else {
        biqa::train::GradientSync::FirstDevice
    };
    let mut obs = TrainProgress::default();
    let report = biqa::train::train_distributed(&config, &devices, sync, args.resume, &mut obs)?;
    obs.progress.finish();
    if report.already_complete {
        println!(
            "the run is already complete: nothing to resume; final model {}",
            report.final_model.display()
        );
        return Ok(());
    }
    let png = config.output.join("loss.png");
    biqa::training::loss_curve(&png, "training loss", &[("loss", &report.steps)])?;
    println!(
        "{} steps, {} trainable parameters; logs in {}, loss curve {}, final model {}",
        report.steps.len(),
        report.trainable,
        config.output.display(),
        png.display(),
        report.final_model.display()
    );
    Ok(())
}
