//! Issue #17: the peak memory of a load is bounded by the parameters it makes. A 200 MB f32 safetensors file is
//! loaded whole (half of it as plain tensors, half as transposed linear weights) in a child process — this test
//! binary run again — that then reads every value, and whose peak resident set, less what it held before loading, must stay under 1.3× the
//! parameters in the target dtype: f32 (mapped pages and transposed copies) and bf16 (converted while read).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use biqa_checkpoint::{Checkpoint, FloatPolicy, TensorEntry, Weights, write_sharded};
use biqa_testkit::peak_rss_bytes;
use burn::tensor::{DType, Device, TensorData};

const ROWS: usize = 2048;
const COLS: usize = 1024;
const TENSORS: usize = 25; // 25 × 8 MiB = 200 MiB of f32
const CHILD: &str = "BIQA_LOAD_MEMORY_CHILD";

fn current_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// The child: loads every tensor of `path` in `policy`, keeps them all alive, prints `GROWTH <bytes>`.
fn child(path: &Path, policy: FloatPolicy) -> Result<()> {
    let before = current_rss();
    let ckpt = Checkpoint::open(path)?;
    let device = Device::flex();
    let weights = Weights::new(&ckpt, &device).with_policy(policy);
    let mut held = Vec::new();
    for i in 0..TENSORS {
        let name = format!("t{i}");
        if i % 2 == 0 {
            held.push(weights.tensor(&name, [ROWS, COLS]));
        } else {
            held.push(weights.linear_weight(&name, COLS, ROWS));
        }
    }
    weights.finish()?;
    // Touch every value, as a forward pass would: mapped pages count once resident.
    let total: f32 = held
        .iter()
        .map(|t| t.clone().sum().into_scalar::<f32>())
        .sum();
    assert!(total.is_finite());
    let peak = peak_rss_bytes().context("VmHWM")?;
    println!("GROWTH {}", peak.saturating_sub(before));
    drop(held);
    Ok(())
}

#[test]
fn a_load_peaks_near_the_parameters_it_makes() -> Result<()> {
    if let Ok(spec) = std::env::var(CHILD) {
        let (path, dtype) = spec.rsplit_once(':').context("spec")?;
        let policy = if dtype == "bf16" {
            FloatPolicy::Bf16
        } else {
            FloatPolicy::F32
        };
        return child(Path::new(path), policy);
    }
    if peak_rss_bytes().is_none() {
        eprintln!("no /proc/self/status here: the peak cannot be read; skipped");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let entries: Vec<TensorEntry> = (0..TENSORS)
        .map(|i| TensorEntry {
            name: format!("t{i}"),
            shape: vec![ROWS, COLS],
            dtype: DType::F32,
        })
        .collect();
    write_sharded(
        dir.path(),
        "test",
        &entries,
        |name| {
            let seed = name.len() as f32;
            let v: Vec<f32> = (0..ROWS * COLS)
                .map(|k| (k as f32 * 0.37 + seed).sin())
                .collect();
            Ok(TensorData::new(v, [ROWS, COLS]))
        },
        u64::MAX,
    )?;
    let file = dir.path().join("model.safetensors");
    let f32_bytes = (TENSORS * ROWS * COLS * 4) as f64;
    for (dtype, params) in [("f32", f32_bytes), ("bf16", f32_bytes / 2.0)] {
        let out = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "a_load_peaks_near_the_parameters_it_makes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, format!("{}:{dtype}", file.display()))
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let growth: f64 = stdout
            .lines()
            .find_map(|l| l.split("GROWTH ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no GROWTH line in: {stdout}"))?
            .parse()?;
        eprintln!(
            "{dtype}: peak growth {:.1} MB for {:.1} MB of parameters",
            growth / 1e6,
            params / 1e6
        );
        assert!(
            growth < 1.3 * params,
            "{dtype}: a load of {:.0} MB of parameters peaked {:.0} MB above its start",
            params / 1e6,
            growth / 1e6
        );
    }
    Ok(())
}
