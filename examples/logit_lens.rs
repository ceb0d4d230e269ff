//! The paper's Fig. 3 analysis for one image: decode every layer's hidden state at the position that predicts
//! the quality word (Q-Align prompt), print the top candidates and the level-word probabilities per layer, and
//! save the table as a PNG.
//!
//! ```text
//! cargo run --release --example logit_lens -- [IMAGE] [--model DIR] [--top-k K] [--out FILE.png]
//! ```
//! Defaults: the bundled tiny checkpoint and `tests/fixtures/tiny-owl2/images/astronaut_96x96.png`, writing
//! `logit_lens.png` in the current directory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::model::{LoadOptions, Owl2};
use biqa::probes::{LensConfig, figures};

fn main() -> Result<()> {
    biqa::kernels::tune_allocator();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut image = root.join("tests/fixtures/tiny-owl2/images/astronaut_96x96.png");
    let mut model_dir = root.join("tests/fixtures/tiny-owl2");
    let (mut top_k, mut out) = (5usize, PathBuf::from("logit_lens.png"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => model_dir = PathBuf::from(value("--model")?),
            "--top-k" => top_k = value("--top-k")?.parse()?,
            "--out" => out = PathBuf::from(value("--out")?),
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => image = PathBuf::from(s),
        }
    }
    let device = biqa::device::DeviceKind::from_env()?.device()?;
    let m = Owl2::from_dir(&model_dir, &device, &LoadOptions::default())?;
    let config = LensConfig {
        layers: None,
        top_k,
        levels: biqa::probes::owl2::qalign_levels(&m)?,
    };
    let lens = biqa::probes::owl2::qalign_lens(&m, &image, &config)?;
    let len = lens.position + 1;
    println!(
        "{}: the position predicting the quality word ({} of {len})",
        image.display(),
        len - 1
    );
    print!("{:>5} ", "layer");
    for k in 0..top_k {
        print!(" {:>16}", format!("top-{}", k + 1));
    }
    println!("   entropy  KL→final");
    for l in lens.layers.iter().rev() {
        print!("{:>5} ", l.layer);
        for c in &l.top {
            print!(" {:>16}", format!("{:?} {:.3}", c.text, c.prob));
        }
        println!("  {:>8.3}  {:>8.3}", l.entropy, l.kl_to_final);
    }
    println!("\nlevel-word probabilities by layer:");
    for l in lens.layers.iter().rev() {
        let row: Vec<String> = lens
            .level_words
            .iter()
            .zip(&l.level_probs)
            .map(|(w, p)| format!("{w} {p:.3}"))
            .collect();
        println!("{:>5}  {}", l.layer, row.join("  "));
    }
    figures::lens_table(
        &out,
        &lens,
        &format!(
            "Logit lens — {}",
            image
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into())
        ),
    )?;
    println!("\nsaved {}", out.display());
    Ok(())
}
