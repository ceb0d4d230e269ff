//! Where the fixtures are, and reading their JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// The workspace root (the folder of the root `Cargo.toml`), found from this crate's own manifest folder, so it
/// is the same whichever crate's tests call it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/fixtures` of the workspace (see its `README.md` for every folder), or the folder named by the environment
/// variable `BIQA_FIXTURES` when set: a test binary carried to another host (`scripts/gpu-check.sh`) finds the
/// fixtures there.
pub fn fixtures() -> PathBuf {
    match std::env::var_os("BIQA_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("tests/fixtures"),
    }
}

/// `tests/fixtures/<rel>` of the workspace.
pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// A JSON file, parsed.
///
/// # Errors
/// An unreadable file or invalid JSON; the error names the file.
pub fn read_json(path: impl AsRef<Path>) -> Result<Value> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `tests/fixtures/<rel>`, parsed as JSON.
///
/// # Errors
/// See [`read_json`].
pub fn fixture_json(rel: &str) -> Result<Value> {
    read_json(fixture(rel))
}

/// A JSON array of numbers as `f64`s.
///
/// # Panics
/// If `v` is not an array of numbers (a broken fixture).
pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_found() {
        assert!(fixtures().join("README.md").is_file());
        assert!(fixture("tiny-owl2").is_dir());
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(read_json(fixture("does/not/exist.json")).is_err());
        assert_eq!(f64s(&serde_json::json!([1, 2.5])), [1.0, 2.5]);
    }
}
