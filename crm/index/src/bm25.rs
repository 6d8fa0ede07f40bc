//! BM25 keyword vectors, computed on the client side with qdrant-edge's own
//! tokenizer pipeline (English stop words and stemming) so both engines index
//! and query the same sparse vectors; the engine supplies the IDF part
//! (`Modifier::Idf` on the sparse vector).

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};

use crate::SparseVector;
use crate::error::{Error, Result};

/// Turns text into BM25 sparse vectors; build one and share it, since
/// construction loads the stop-word list and stemmer.
#[derive(Debug)]
pub struct Bm25 {
    inner: EdgeBm25,
}

impl Bm25 {
    /// English: lowercase, stop words removed, Snowball stemming.
    pub fn english() -> Result<Bm25> {
        let inner = EdgeBm25::new(EdgeBm25Config {
            language: Some("english".into()),
            ..Default::default()
        })
        .map_err(|e| Error::invalid("bm25", e.to_string()))?;
        Ok(Bm25 { inner })
    }

    /// The vector of a stored text (term frequencies, length-normalised).
    pub fn embed_document(&self, text: &str) -> SparseVector {
        let v = self.inner.embed_document(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }

    /// The vector of a query (each distinct term once).
    pub fn embed_query(&self, text: &str) -> SparseVector {
        let v = self.inner.embed_query(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }
}
