//! Scores a folder of images with a checkpoint directory and prints a ranked table (best first).
//!
//! ```text
//! cargo run --release --example score_images -- [FOLDER] [--model DIR] [--batch-size N] [--prompt qalign|qinstruct]
//! ```
//! Defaults: the images of `tests/fixtures/tiny-owl2/images` with the tiny mPLUG-Owl2 checkpoint beside them (random
//! weights: the ranking means nothing; point `--model` at a released Q-Align / OneAlign directory for real scores).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::model::{LoadOptions, Owl2, Scorer, ScoringPrompt};

const EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"];

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut folder = root.join("tests/fixtures/tiny-owl2/images");
    let mut model_dir = root.join("tests/fixtures/tiny-owl2");
    let (mut batch_size, mut prompt) = (8usize, ScoringPrompt::Qalign);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => model_dir = PathBuf::from(value("--model")?),
            "--batch-size" => batch_size = value("--batch-size")?.parse()?,
            "--prompt" => prompt = value("--prompt")?.parse().map_err(anyhow::Error::msg)?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => folder = PathBuf::from(s),
        }
    }
    let mut images: Vec<PathBuf> = std::fs::read_dir(&folder)
        .with_context(|| folder.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    images.sort();
    if images.is_empty() {
        bail!(
            "{}: no images ({})",
            folder.display(),
            EXTENSIONS.join(", ")
        );
    }
    let device = biqa::device::DeviceKind::from_env()?.device()?;
    let model = Owl2::from_dir(&model_dir, &device, &LoadOptions::default())?;
    let scorer = Scorer::new(model.tokenizer(), prompt, None)?;
    let t = std::time::Instant::now();
    let results = model.score_paths(&images, &scorer, batch_size, |done| {
        eprint!("\rscored {done}/{}", images.len())
    })?;
    eprintln!("\rscored {} images in {:.2?}", images.len(), t.elapsed());
    let mut ranked: Vec<_> = images.iter().zip(&results).collect();
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    print!("{:>4}  {:>7}  {:>9}", "rank", "score", "score_1_5");
    for w in &scorer.words {
        print!("  {w:>9}");
    }
    println!("  image");
    for (i, (path, r)) in ranked.iter().enumerate() {
        print!("{:>4}  {:>7.4}  {:>9.4}", i + 1, r.score, r.score_1_5);
        for p in &r.probs {
            print!("  {p:>9.4}");
        }
        println!(
            "  {}",
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into()
            )
        );
    }
    Ok(())
}
