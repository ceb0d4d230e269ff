//! Builds a small synthetic IQA set from the bundled photographs (`biqa-data`) and prints its distortion × level
//! table, a few pseudo-MOS values and one Q-Pathway-style description in its one- and two-stage forms.
//!
//! ```text
//! cargo run --release --example synth_dataset -- [OUT_DIR] [--per-photo N] [--seed S]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use biqa::data::{records, synth};

fn main() -> Result<()> {
    let mut out = std::env::temp_dir().join("biqa-synth-example");
    let (mut per_photo, mut seed) = (2usize, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--per-photo" => per_photo = value("--per-photo")?.parse()?,
            "--seed" => seed = value("--seed")?.parse()?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => out = PathBuf::from(s),
        }
    }
    let output = synth(&out, per_photo, seed, &mut |_, _| {})?;
    println!("{} images in {}\n", output.items.len(), out.display());
    println!("{}", output.count_table());
    let item = output
        .items
        .iter()
        .find(|i| i.distortion.is_some() && i.strength == 4)
        .context("a distorted image")?;
    println!("{}: mos {:.2} ({})", item.image, item.mos, item.level);
    let [one, stage1, stage2] = records(item);
    for (name, r) in [("one-stage", one), ("stage 1", stage1), ("stage 2", stage2)] {
        println!("\n[{name}] image: {:?}", r.image);
        for t in &r.conversations {
            println!("  {}: {}", t.from, t.value.replace('\n', "\\n"));
        }
    }
    Ok(())
}
