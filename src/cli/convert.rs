//! `biqa convert`: a checkpoint directory rewritten as sharded safetensors.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `biqa convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Output directory: new or empty (a folder that already holds files is refused); written under a temporary
    /// name beside it and renamed into place when complete.
    #[arg(long)]
    pub out: PathBuf,
    /// Maximum shard size in bytes.
    #[arg(long, default_value_t = biqa::checkpoint::DEFAULT_SHARD_BYTES)]
    pub shard_size: u64,
}

/// Converts the directory and prints the files written.
///
/// # Errors
/// Reading or writing errors (naming the file).
pub fn run(args: Args) -> Result<()> {
    let files = biqa::model::convert_dir(&args.model, &args.out, args.shard_size)?;
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!("wrote {} files to {}", files.len(), args.out.display());
    Ok(())
}
