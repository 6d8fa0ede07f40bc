//! The real all-MiniLM-L6-v2: parity with sentence-transformers and behaviour
//! on odd input. Fetches the weights on first use (see `main.rs`).

use rapport_models::embed::cosine;

use crate::common::{norm, real_embedder};

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/minilm_reference.json"
);

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let bytes = std::fs::read(REFERENCE).unwrap_or_else(|e| {
        panic!(
            "reference embeddings not found at {REFERENCE} ({e}): the `shared/` directory \
             must be checked out beside the repository (CI clones it there)"
        )
    });
    serde_json::from_slice(&bytes).expect("reference file is JSON with items[].text/embedding")
}

#[test]
fn matches_sentence_transformers_on_every_reference_item() {
    let reference = reference();
    assert!(!reference.items.is_empty());
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let embedder = real_embedder();
    let ours = embedder.embed(&texts).unwrap();
    let mut worst = (1.0f32, 0usize);
    for (i, (item, v)) in reference.items.iter().zip(&ours).enumerate() {
        assert_eq!(v.len(), item.embedding.len());
        let c = cosine(v, &item.embedding);
        if c < worst.0 {
            worst = (c, i);
        }
    }
    eprintln!(
        "min cosine vs sentence-transformers: {:.6} (item {})",
        worst.0, worst.1
    );
    assert!(
        worst.0 >= 0.999,
        "item {} has cosine {} < 0.999: {:?}",
        worst.1,
        worst.0,
        texts[worst.1]
    );
    // Batch size does not matter.
    let one = embedder.embed_one(texts[7]).unwrap();
    assert!(cosine(&one, &ours[7]) > 0.99999);
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let e = real_embedder();
    let v = e
        .embed(&[
            "The customer is worried about the price of the Pro plan.",
            "They think the Pro plan is too expensive.",
            "The server room flooded during the storm.",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
}

#[test]
fn odd_and_long_input_on_the_real_model() {
    let e = real_embedder();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_tokens(), 256);
    let long =
        "Dana from Acme called about renewing the contract and asked for a discount. ".repeat(200);
    assert!(e.count_tokens(&long).unwrap() > 2000);
    let texts = ["", " ", "\u{0}", "👍👍", &long, "ok"];
    let v = e.embed(&texts).unwrap();
    for (t, x) in texts.iter().zip(&v) {
        assert_eq!(x.len(), 384);
        assert!(
            (norm(x) - 1.0).abs() < 1e-4,
            "{:?} gives a unit vector",
            &t[..t.len().min(20)]
        );
    }
    assert_eq!(e.tokenize(&[&long]).unwrap()[0].len(), 256);
}

#[test]
fn shared_across_threads() {
    let e = real_embedder();
    let expected = e.embed_one("Follow up with Olga next Tuesday").unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.embed_one("Follow up with Olga next Tuesday").unwrap())
        })
        .collect();
    for h in handles {
        assert!(cosine(&h.join().unwrap(), &expected) > 0.99999);
    }
}
