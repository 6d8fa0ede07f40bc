//! Embedder code paths on a tiny random-weight BERT (no download): batching,
//! padding and the attention mask, ordering, odd input.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use rapport_models::embed::cosine;
use rapport_models::{Embedder, EmbedderOptions, Error};

use crate::common::norm;

const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "call", "with", "dana", "about", "the", "pro", "plan",
    "price", "follow", "up", "next", "tuesday", ".", ",", "!", "##s", "acme", "likes",
];

fn write_tiny_model(dir: &Path) {
    let config = serde_json::json!({
        "vocab_size": WORDS.len(), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| ((*w).to_owned(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                        "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                   "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let cfg: Config = serde_json::from_value(config).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &cfg).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

fn tiny(batch_size: usize, max_tokens: usize) -> (tempfile::TempDir, Embedder) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    let e = Embedder::from_dir_unverified(
        dir.path(),
        EmbedderOptions {
            threads: Some(2),
            batch_size,
            max_tokens,
        },
    )
    .unwrap();
    (dir, e)
}

const TEXTS: &[&str] = &[
    "call with dana",
    "acme likes the pro plan, follow up next tuesday about the price!",
    "price",
    "the pro plan . the pro plan . the pro plan . follow up",
    "dana",
];

#[test]
fn padding_does_not_change_a_vector() {
    let (dir, batched) = tiny(32, 64);
    let one_by_one = Embedder::from_dir_unverified(
        dir.path(),
        EmbedderOptions {
            threads: Some(1),
            batch_size: 1,
            max_tokens: 64,
        },
    )
    .unwrap();
    let single = one_by_one.embed(TEXTS).unwrap();
    let together = batched.embed(TEXTS).unwrap();
    for (s, t) in single.iter().zip(&together) {
        assert!(
            cosine(s, t) > 0.99999,
            "batching with padding changed a vector"
        );
    }
}

#[test]
fn output_is_in_input_order_unit_length_and_sized() {
    let (_d, e) = tiny(2, 64);
    assert_eq!(e.dim(), 16);
    let all = e.embed(TEXTS).unwrap();
    assert_eq!(all.len(), TEXTS.len());
    for (i, text) in TEXTS.iter().enumerate() {
        let alone = e.embed_one(text).unwrap();
        assert!(cosine(&alone, &all[i]) > 0.99999, "text {i} out of order");
        assert_eq!(all[i].len(), 16);
        assert!((norm(&all[i]) - 1.0).abs() < 1e-4);
    }
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn odd_input_has_defined_results() {
    let (_d, e) = tiny(8, 64);
    let odd = [
        "",
        "   \n\t ",
        "\0\u{7}\u{1b}[31m",
        "🙂🙂🙂",
        "ünïcödé ﻿ zero\u{200b}width",
        "x",
    ];
    let v = e.embed(&odd).unwrap();
    for (text, vec) in odd.iter().zip(&v) {
        assert!(
            vec.iter().all(|x| x.is_finite()),
            "{text:?} gives finite numbers"
        );
        assert!(
            (norm(vec) - 1.0).abs() < 1e-4,
            "{text:?} gives a unit vector"
        );
    }
    // Empty and whitespace-only texts are both just [CLS] [SEP].
    assert!(cosine(&v[0], &v[1]) > 0.99999);
    assert_eq!(e.tokenize(&[""]).unwrap()[0], [2, 3]);
    assert_eq!(e.count_tokens("").unwrap(), 0);
    // Invalid UTF-8 is replaced, not rejected.
    let lossy = e
        .embed_lossy(&[b"call with \xff\xfe dana", b"price"])
        .unwrap();
    assert_eq!(lossy.len(), 2);
    assert!(cosine(&lossy[1], &v[5]).is_finite());
}

#[test]
fn long_texts_are_truncated_at_the_token_limit() {
    let (_d, e) = tiny(4, 16);
    let long = "call with dana about the price . ".repeat(500);
    assert_eq!(e.count_tokens(&long).unwrap(), 3500);
    assert_eq!(e.max_content_tokens(), 14);
    let ids = e.tokenize(&[&long]).unwrap();
    assert_eq!(ids[0].len(), 16);
    assert_eq!(
        *ids[0].last().unwrap(),
        3,
        "ends with [SEP] after truncation"
    );
    // The embedding of a long text is the embedding of its first 14 tokens.
    let prefix = "call with dana about the price . call with dana about the price .";
    assert_eq!(e.count_tokens(prefix).unwrap(), 14);
    let a = e.embed_one(&long).unwrap();
    let b = e.embed_one(prefix).unwrap();
    assert!(cosine(&a, &b) > 0.99999);
}

#[test]
fn bad_options_and_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    let opts = |batch_size, max_tokens| EmbedderOptions {
        threads: None,
        batch_size,
        max_tokens,
    };
    assert!(matches!(
        Embedder::from_dir_unverified(dir.path(), opts(0, 16)),
        Err(Error::InvalidInput(_))
    ));
    let err = Embedder::from_dir_unverified(dir.path(), opts(8, 1000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("64 positions"), "{err}");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = Embedder::from_dir_unverified(dir.path(), opts(8, 16))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// A memoized embedder answers as the plain one does, bit for bit, on a
/// first call; keeps each distinct text once; answers repeats from the memo
/// (the same vectors, in input order) and shares it with its clones, while
/// the embedder it came from stays without one.
#[test]
fn a_memoized_embedder_computes_each_text_once() {
    let (_d, plain) = tiny(2, 64);
    let memo = plain.memoized();
    assert_eq!(memo.embed(TEXTS).unwrap(), plain.embed(TEXTS).unwrap());
    let distinct: std::collections::HashSet<&str> = TEXTS.iter().copied().collect();
    assert_eq!(memo.memo_len(), distinct.len());

    let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let again = memo.clone().embed(&reversed).unwrap();
    let first = memo.embed(TEXTS).unwrap();
    for (i, v) in again.iter().rev().enumerate() {
        assert_eq!(v, &first[i], "text {i}");
    }
    assert_eq!(memo.memo_len(), distinct.len(), "no text computed twice");

    let new = memo.embed(&["call dana", TEXTS[0], "call dana"]).unwrap();
    assert_eq!(new[0], new[2]);
    assert_eq!(new[0], plain.embed_one("call dana").unwrap());
    assert_eq!(memo.memo_len(), distinct.len() + 1);
    assert_eq!(plain.memo_len(), 0);
}
