//! Token chunking with overlap, on the embedder's own WordPiece tokenizer, so a
//! chunk never exceeds what MiniLM reads and neighbouring chunks share context.

use std::path::Path;

use tokenizers::Tokenizer;

use super::error::{Error, Result};

/// How to cut text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// Content tokens per chunk (at most the embedder's 254).
    pub max_tokens: usize,
    /// Tokens repeated at the start of the next chunk.
    pub overlap: usize,
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams {
            max_tokens: 200,
            overlap: 40,
        }
    }
}

/// One piece of a text: its byte span and the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Cuts texts into chunks of at most `max_tokens` tokens.
#[derive(Clone)]
pub struct Chunker {
    tokenizer: Tokenizer,
    params: ChunkParams,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Chunker {
    /// Loads the tokenizer from a `tokenizer.json` (the embedder's).
    pub fn from_file(path: &Path, params: ChunkParams) -> Result<Chunker> {
        if params.max_tokens == 0 || params.overlap >= params.max_tokens {
            return Err(Error::invalid(
                "chunk",
                format!(
                    "overlap ({}) must be smaller than the chunk size ({}), which must be at least 1",
                    params.overlap, params.max_tokens
                ),
            ));
        }
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::Model(format!("tokenizer {}: {e}", path.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Model(e.to_string()))?;
        Ok(Chunker { tokenizer, params })
    }

    /// The MiniLM tokenizer from the models directory (fetched if missing).
    pub fn minilm(params: ChunkParams) -> Result<Chunker> {
        let store = rapport_models::Store::open_default()?;
        store.ensure(rapport_models::embed::EMBEDDER_ARTIFACT)?;
        let path =
            store.verified_file(rapport_models::embed::EMBEDDER_ARTIFACT, "tokenizer.json")?;
        Chunker::from_file(&path, params)
    }

    pub fn params(&self) -> ChunkParams {
        self.params
    }

    /// The chunks of a text, in order; none for an empty text. A text of at
    /// most `max_tokens` tokens is one chunk, whole.
    pub fn chunk(&self, text: &str) -> Result<Vec<Chunk>> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Model(e.to_string()))?;
        let offsets = enc.get_offsets();
        let n = offsets.len();
        if n <= self.params.max_tokens {
            return Ok(vec![Chunk {
                start: 0,
                end: text.len(),
                text: text.to_owned(),
            }]);
        }
        let step = self.params.max_tokens - self.params.overlap;
        let mut out = Vec::new();
        let mut first = 0;
        loop {
            let last = (first + self.params.max_tokens).min(n) - 1;
            // Offsets are byte offsets into `text`; a chunk runs from its first
            // token's start to its last token's end.
            let start = if first == 0 { 0 } else { offsets[first].0 };
            let end = if last == n - 1 {
                text.len()
            } else {
                offsets[last].1
            };
            out.push(Chunk {
                start,
                end,
                text: text[start..end].to_owned(),
            });
            if last == n - 1 {
                break;
            }
            first += step;
        }
        Ok(out)
    }
}
