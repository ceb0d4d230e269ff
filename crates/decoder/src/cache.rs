//! The key/value cache, kept outside the modules.

use burn::tensor::Tensor;

use crate::error::{DecoderError, Result};

/// Keys (after RoPE) and values of every layer for the tokens seen so far, plus their padding flags.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    batch: usize,
    len: usize,
    /// Row-major `[B, len]` (after a forward, before `advance`: `[B, len + L]`), true = real token.
    valid: Vec<Vec<bool>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Batch size of the cached rows (0 when empty).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The cached keys and values `[B, kv_heads, len, hd]` of layer `i`.
    pub fn layer(&self, i: usize) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.layers.get(i).and_then(Option::as_ref)
    }

    pub(crate) fn prepare(&mut self, batch: usize, layers: usize) -> Result<()> {
        if self.len == 0 {
            self.batch = batch;
            self.layers = vec![None; layers];
            self.valid = vec![Vec::new(); batch];
        } else if self.batch != batch {
            return Err(DecoderError::CacheBatchMismatch {
                cached: self.batch,
                found: batch,
            });
        }
        Ok(())
    }

    pub(crate) fn push_padding(&mut self, flags: &[bool], l: usize) {
        for (row, chunk) in self.valid.iter_mut().zip(flags.chunks(l)) {
            row.extend_from_slice(chunk);
        }
    }

    /// Padding flags of every cached (and pending) position, row-major.
    pub(crate) fn valid(&self) -> Vec<bool> {
        self.valid.iter().flatten().copied().collect()
    }

    pub(crate) fn take(&mut self, i: usize) -> Option<(Tensor<4>, Tensor<4>)> {
        self.layers.get_mut(i).and_then(Option::take)
    }

    pub(crate) fn put(&mut self, i: usize, k: Tensor<4>, v: Tensor<4>) {
        self.layers[i] = Some((k, v));
    }

    pub(crate) fn advance(&mut self, l: usize) {
        self.len += l;
    }
}
