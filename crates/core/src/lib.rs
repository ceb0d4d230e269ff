#![doc = "The small things every biqa crate shares, with no other dependency (no burn):"]
#![doc = ""]
#![doc = "- [`SplitMix64`]: the deterministic random generator (synthetic data, data order, dropout seeds, bootstrap"]
#![doc = "  resamples, random initialisation);"]
#![doc = "- [`write_file_atomic`], [`write_atomic`], [`write_bytes_atomic`] and [`AtomicDir`]: files and folders"]
#![doc = "  written under a temporary name beside the target and renamed into place, so no half-written output remains;"]
#![doc = "- [`IMAGE_TOKEN`]: the image placeholder of mPLUG-Owl2 prompts;"]
#![doc = "- [`prompts`]: the questions of the synthetic set's recipes (training data and inference pipelines alike)."]

mod atomic;
mod error;
pub mod prompts;
mod rng;

pub use atomic::{AtomicDir, write_atomic, write_bytes_atomic, write_file_atomic};
pub use error::{CoreError, Result};
pub use rng::SplitMix64;

/// The image placeholder of mPLUG-Owl2 prompts (`DEFAULT_IMAGE_TOKEN` of the original code): each occurrence in a
/// prompt stands for one image's visual tokens.
pub const IMAGE_TOKEN: &str = "<|image|>";

/// The most bytes a configuration file (`config.json`, `preprocessor_config.json`, tokenizer configs, a training
/// TOML, a prompts file, an index) may hold: 64 MiB, far above any real one.
pub const CONFIG_LIMIT: u64 = 64 << 20;

/// The most bytes a data file may hold: an annotation file (CSV, xlsx, mat, JSON), a training-conversation JSON, an
/// image file: 1 GiB, above any real one (the 89.5-megapixel image limit bounds the decoded pixels separately).
pub const DATA_LIMIT: u64 = 1 << 30;

/// Reads a file of at most `limit` bytes, as [`read_text`] does (an endless or longer file is refused after
/// `limit + 1` bytes with [`std::io::ErrorKind::FileTooLarge`]).
///
/// # Errors
/// I/O errors, or a file longer than `limit`.
pub fn read_bytes(path: impl AsRef<std::path::Path>, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("longer than {limit} bytes (refused)"),
        ));
    }
    Ok(bytes)
}

/// A reader of a file that fails with [`std::io::ErrorKind::FileTooLarge`] once more than `limit` bytes were read:
/// for files that are parsed as a stream (CSV) instead of read whole, with the same bound as [`read_bytes`].
#[derive(Debug)]
pub struct LimitedReader<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: std::io::Read> std::io::Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("longer than {} bytes (refused)", self.limit),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Opens a file for streaming, buffered, refused past `limit` bytes (see [`LimitedReader`]).
///
/// # Errors
/// The file cannot be opened.
pub fn open_limited(
    path: impl AsRef<std::path::Path>,
    limit: u64,
) -> std::io::Result<LimitedReader<std::io::BufReader<std::fs::File>>> {
    Ok(LimitedReader {
        inner: std::io::BufReader::new(std::fs::File::open(path)?),
        left: limit,
        limit,
    })
}

/// Reads a UTF-8 text file of at most `limit` bytes. A longer file (or an endless one: `/dev/zero`, a FIFO) is
/// refused after reading `limit + 1` bytes, with an [`std::io::ErrorKind::FileTooLarge`] error that says the limit,
/// so that memory is bounded by the limit, not by what the file claims.
///
/// # Errors
/// I/O errors, invalid UTF-8, or a file longer than `limit`.
pub fn read_text(path: impl AsRef<std::path::Path>, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        )
    })
}

#[cfg(test)]
mod read_text_tests {
    /// An endless file is refused after the limit (issue #16: `/dev/zero` as `config.json` grew until killed).
    #[test]
    fn an_endless_file_is_refused_at_the_limit() {
        let err = super::read_text("/dev/zero", 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("1048576"), "{err}");
        let mut sink = Vec::new();
        let err = std::io::Read::read_to_end(
            &mut super::open_limited("/dev/zero", 1 << 20).unwrap(),
            &mut sink,
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(sink.len(), 1 << 20, "the limit's bytes, not one more");
        let err = super::read_bytes("/dev/zero", 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
    }
}
