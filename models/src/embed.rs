//! The sentence embedder: all-MiniLM-L6-v2 (BERT, 384 dimensions) on Candle,
//! reproducing sentence-transformers: WordPiece tokens truncated at 256,
//! mean pooling over the attention mask, L2 normalisation.
//!
//! Texts are sorted by token count before batching (so a batch pads to
//! similar lengths) and the output is returned in input order. Longer texts
//! are truncated: callers that need all of a long text chunk it first, with
//! [`Embedder::count_tokens`] and [`Embedder::max_content_tokens`].
//!
//! [`Embedder::memoized`] keeps every vector it computes, for a process
//! that embeds the same texts again and again: an eval run indexes one
//! seed's activities afresh in every trial.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};
use tracing::debug;

use crate::error::{Error, IoContext, Result};
use crate::store::Store;

/// Name of the embedder's artifact in the manifest.
pub const EMBEDDER_ARTIFACT: &str = "all-minilm-l6-v2";

/// How to run the embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderOptions {
    /// Threads for the forward pass; `None` leaves Candle's default (physical cores).
    pub threads: Option<usize>,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Tokens per text, special tokens included (sentence-transformers uses 256 for this model).
    pub max_tokens: usize,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            threads: None,
            batch_size: 32,
            max_tokens: 256,
        }
    }
}

/// A loaded sentence embedder. Cloning is cheap (shared); it is `Send + Sync`.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
    /// Vectors by text, when [`memoized`](Embedder::memoized); shared by
    /// the clones.
    memo: Option<Arc<Memo>>,
}

/// Vectors by text.
type Memo = Mutex<HashMap<String, Vec<f32>>>;

struct Inner {
    model: BertModel,
    /// Truncates at `max_tokens`, adds `[CLS]`/`[SEP]`, no padding.
    tokenizer: Tokenizer,
    /// No truncation, no special tokens: for counting.
    counter: Tokenizer,
    device: Device,
    dim: usize,
    opts: EmbedderOptions,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dim", &self.inner.dim)
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads all-MiniLM-L6-v2 from the default models directory, fetching it if missing.
    pub fn load_default(opts: EmbedderOptions) -> Result<Embedder> {
        let store = Store::open_default()?;
        store.ensure(EMBEDDER_ARTIFACT)?;
        Embedder::load(&store, opts)
    }

    /// Loads the embedder from a store; every file is verified against the
    /// manifest first (cheaply, when its stamp is fresh). Does not fetch.
    pub fn load(store: &Store, opts: EmbedderOptions) -> Result<Embedder> {
        let dir = store.verified_path(EMBEDDER_ARTIFACT)?;
        Embedder::from_dir_unverified(&dir, opts)
    }

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from a
    /// directory without checking hashes: for test fixtures (e.g. tiny
    /// random-weight models) and for directories the caller verified itself.
    pub fn from_dir_unverified(dir: &Path, opts: EmbedderOptions) -> Result<Embedder> {
        if opts.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        if opts.max_tokens < 2 {
            return Err(Error::InvalidInput(
                "max_tokens must leave room for [CLS] and [SEP]".into(),
            ));
        }
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(&std::fs::read(&config_path).at(&config_path)?)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", config_path.display())))?;
        if opts.max_tokens > config.max_position_embeddings {
            return Err(Error::InvalidInput(format!(
                "max_tokens {} exceeds the model's {} positions",
                opts.max_tokens, config.max_position_embeddings
            )));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", tokenizer_path.display())))?;
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: opts.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;

        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).at(&weights_path)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        let pool = match opts.threads {
            Some(n) if n > 0 => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("embed-{i}"))
                    .build()
                    .map_err(|e| Error::InvalidInput(format!("thread pool: {e}")))?,
            ),
            _ => None,
        };
        debug!(dir = %dir.display(), ?opts, "embedder loaded");
        Ok(Embedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
                device,
                dim: config.hidden_size,
                opts,
                pool,
            }),
            memo: None,
        })
    }

    /// The same model, keeping the vector of every text it embeds and
    /// answering a text seen before from memory. The memo is never
    /// trimmed: for a run over a bounded set of texts (an eval harness,
    /// a benchmark), not for a server.
    ///
    /// A text's vector is the one computed in the batch it first came in.
    /// Batches pad to their longest text, so another batch could give a
    /// vector differing in the last bits of precision; once a text is in
    /// the memo, every later call gets that one vector.
    pub fn memoized(&self) -> Embedder {
        Embedder {
            inner: self.inner.clone(),
            memo: Some(Default::default()),
        }
    }

    /// Dimension of the vectors (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.inner.dim
    }

    /// The options the embedder was loaded with.
    pub fn options(&self) -> &EmbedderOptions {
        &self.inner.opts
    }

    /// Tokens the model sees per text, `[CLS]` and `[SEP]` included.
    pub fn max_tokens(&self) -> usize {
        self.inner.opts.max_tokens
    }

    /// Content tokens that fit before truncation (`max_tokens - 2`).
    pub fn max_content_tokens(&self) -> usize {
        self.inner.opts.max_tokens - 2
    }

    /// WordPiece tokens of a text, without special tokens and without
    /// truncation: a text is embedded whole when this is at most
    /// [`max_content_tokens`](Self::max_content_tokens).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let enc = self
            .inner
            .counter
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Embeds texts, one unit-length vector of [`dim`](Self::dim) floats per
    /// text, in input order. An empty (or whitespace-only) text embeds as
    /// `[CLS] [SEP]`, as sentence-transformers does; text past the token
    /// limit is ignored.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match &self.memo {
            Some(memo) => self.embed_memoized(memo, texts),
            None => self.embed_fresh(texts),
        }
    }

    fn embed_fresh(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match &self.inner.pool {
            Some(pool) => pool.install(|| self.embed_inner(texts)),
            None => self.embed_inner(texts),
        }
    }

    /// How many texts the memo holds (0 without one).
    pub fn memo_len(&self) -> usize {
        self.memo
            .as_ref()
            .map_or(0, |m| m.lock().unwrap_or_else(|p| p.into_inner()).len())
    }

    /// Embeds the texts the memo lacks in one call (so they batch as they
    /// would without it), then answers every text from the memo. The lock
    /// is not held while the model runs: two callers missing the same text
    /// at once both compute it and the later insert stays (the two differ
    /// at most in the last bits, when their batches differed).
    fn embed_memoized(&self, memo: &Memo, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let lock = || memo.lock().unwrap_or_else(|p| p.into_inner());
        // In input order, first occurrence of each: the batches are then
        // those a call without the memo would make of the same new texts.
        let missing: Vec<&str> = {
            let known = lock();
            let mut seen = std::collections::HashSet::new();
            texts
                .iter()
                .copied()
                .filter(|t| !known.contains_key(*t) && seen.insert(*t))
                .collect()
        };
        let computed = self.embed_fresh(&missing)?;
        let mut known = lock();
        for (text, v) in missing.into_iter().zip(computed) {
            known.insert(text.to_owned(), v);
        }
        Ok(texts.iter().map(|t| known[*t].clone()).collect())
    }

    /// Embeds byte strings that may not be valid UTF-8: invalid sequences
    /// become U+FFFD (the replacement character), then as [`embed`](Self::embed).
    pub fn embed_lossy(&self, texts: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
        let decoded: Vec<Cow<str>> = texts.iter().map(|b| String::from_utf8_lossy(b)).collect();
        let refs: Vec<&str> = decoded.iter().map(|c| c.as_ref()).collect();
        self.embed(&refs)
    }

    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self
            .embed(&[text])?
            .pop()
            .expect("one text in, one vector out"))
    }

    /// Tokenizes texts as the model sees them: ids per text (special tokens
    /// included, truncated).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .inner
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    fn embed_inner(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.tokenize(texts)?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        // Longest first, as sentence-transformers does; stable for equal lengths.
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.inner.opts.batch_size) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let vectors = self.forward_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One padded batch through BERT, mean pooling over the mask, L2 normalisation.
    fn forward_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let inner = &*self.inner;
        let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let mut input = vec![0u32; batch.len() * len];
        let mut mask = vec![0u32; batch.len() * len];
        for (row, ids) in batch.iter().enumerate() {
            input[row * len..row * len + ids.len()].copy_from_slice(ids);
            mask[row * len..row * len + ids.len()].fill(1);
        }
        let shape = (batch.len(), len);
        let input = Tensor::from_vec(input, shape, &inner.device)?;
        let mask = Tensor::from_vec(mask, shape, &inner.device)?;
        let types = input.zeros_like()?;
        let hidden = inner.model.forward(&input, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += f64::from(x) * f64::from(y);
        na += f64::from(x) * f64::from(x);
        nb += f64::from(y) * f64::from(y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn embedder_is_shareable() {
        assert_send_sync::<Embedder>();
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
