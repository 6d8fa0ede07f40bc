//! `rapport bench embed`: the embedder's throughput on a fixed, generated set
//! of CRM-like sentences (10–60 words), at several batch sizes.

use std::time::Instant;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::embed::{EMBEDDER_ARTIFACT, Embedder, EmbedderOptions};
use crate::error::Result;
use crate::store::Store;

const NAMES: &[&str] = &[
    "Dana Lee",
    "Olga Okafor",
    "José Müller",
    "Grace Patel",
    "Sven Kowalski",
    "Anaïs Dubois",
    "Farid Haddad",
    "Keiko Tanaka",
    "Liam Berg",
    "Zoë Nguyen",
    "Rosa Silva",
    "Noah Rossi",
];
const ACCOUNTS: &[&str] = &[
    "Acme Logistics",
    "Orbit Telecom",
    "Granite Manufacturing",
    "Fjord Analytics",
    "Pioneer Pharma",
    "Delta Freight",
    "Harbor Insurance",
    "Cobalt Foods",
    "Meridian Bank",
    "Juniper Schools",
    "Lumen Media",
    "Northwind Traders",
];
const PRODUCTS: &[&str] = &[
    "the Pro plan",
    "invoice automation",
    "the procurement suite",
    "the ERP connector",
    "the supplier portal",
    "the approvals workflow",
    "the spend analytics add-on",
    "premium support",
];
const CLAUSES: &[&str] = &[
    "called {name} at {account} about {product}",
    "{name} said the team likes {product} but is worried about the price",
    "budget is frozen until next quarter so the renewal may slip",
    "they asked for a discount on the annual contract and a longer trial",
    "legal wants to review the data processing agreement before signing",
    "the champion is moving to another role and we need a new sponsor",
    "demo went well and the CFO asked for a proposal by Friday",
    "support tickets doubled last month and the customer is frustrated",
    "remind me to follow up next Tuesday with pricing for 250 seats",
    "{account} currently handles about 8000 invoices per month in spreadsheets",
    "integration with their ERP was the main blocker in the last call",
    "{name} compared us with a competitor that is cheaper but slower",
    "they are happy with onboarding and want to expand to two more teams",
    "the security questionnaire is done and procurement is next",
    "send the case study from a similar customer in logistics",
    "the pilot ended with positive feedback from the finance team",
];

/// The benchmark's texts: `n` CRM-like sentences of 10 to 60 words, the same
/// for a given `seed` on every run and machine.
pub fn crm_sentences(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let target = rng.random_range(10..=60usize);
            let mut words: Vec<String> = Vec::with_capacity(target + 12);
            while words.len() < target {
                let clause = CLAUSES
                    .choose(&mut rng)
                    .expect("clauses")
                    .replace("{name}", NAMES.choose(&mut rng).expect("names"))
                    .replace("{account}", ACCOUNTS.choose(&mut rng).expect("accounts"))
                    .replace("{product}", PRODUCTS.choose(&mut rng).expect("products"));
                words.extend(clause.split_whitespace().map(str::to_owned));
                let end = if words.len() < target { ';' } else { '.' };
                if let Some(last) = words.last_mut() {
                    last.push(end);
                }
            }
            words.truncate(target);
            let mut s = words.join(" ");
            if let Some(first) = s.get(..1) {
                s.replace_range(..1, &first.to_uppercase());
            }
            if !s.ends_with('.') {
                if s.ends_with(';') {
                    s.pop();
                }
                s.push('.');
            }
            s
        })
        .collect()
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Threads Candle runs on.
    pub threads: usize,
    /// Batch sizes to time, each over the whole set.
    pub batch_sizes: Vec<usize>,
    /// Sentences in the set.
    pub sentences: usize,
    /// Seed of the generated sentences: the same seed, the same set.
    pub seed: u64,
    /// Timed repetitions per batch size; the best is reported.
    pub repeats: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            threads: 2,
            batch_sizes: vec![1, 8, 32],
            sentences: 256,
            seed: 7,
            repeats: 2,
        }
    }
}

/// One batch size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    /// Sentences per forward pass.
    pub batch_size: usize,
    /// Best time over the whole set.
    pub seconds: f64,
    /// Sentences embedded per second.
    pub sentences_per_s: f64,
    /// Tokens (special ones included) processed per second.
    pub tokens_per_s: f64,
}

/// The benchmark's output (printed as JSON by `rapport bench embed`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The embedder artifact.
    pub model: String,
    /// Engine and precision (`candle (cpu, f32)`).
    pub engine: String,
    /// Threads Candle ran on.
    pub threads: usize,
    /// Sentences in the set.
    pub sentences: usize,
    /// Shortest sentence, in words.
    pub words_min: usize,
    /// Longest sentence, in words.
    pub words_max: usize,
    /// Tokens the model processes for the whole set, special tokens included.
    pub tokens: usize,
    /// Whether batches were formed from length-sorted sentences (less padding).
    pub sorted_by_length: bool,
    /// One per batch size, in the order asked.
    pub results: Vec<BatchResult>,
}

/// Runs the embedder benchmark against the store's verified all-MiniLM-L6-v2.
pub fn bench_embed(store: &Store, opts: &BenchOptions) -> Result<BenchReport> {
    let texts = crm_sentences(opts.sentences, opts.seed);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let words: Vec<usize> = texts.iter().map(|t| t.split_whitespace().count()).collect();
    let mut results = Vec::new();
    let mut tokens = 0;
    for &batch_size in &opts.batch_sizes {
        let embedder = Embedder::load(
            store,
            EmbedderOptions {
                threads: Some(opts.threads),
                batch_size,
                ..EmbedderOptions::default()
            },
        )?;
        tokens = embedder.tokenize(&refs)?.iter().map(Vec::len).sum();
        // Warm-up: allocator, thread pool, first-touch of weights.
        embedder.embed(&refs[..refs.len().min(batch_size * 2)])?;
        let mut best = f64::INFINITY;
        for _ in 0..opts.repeats.max(1) {
            let start = Instant::now();
            embedder.embed(&refs)?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        results.push(BatchResult {
            batch_size,
            seconds: best,
            sentences_per_s: texts.len() as f64 / best,
            tokens_per_s: tokens as f64 / best,
        });
    }
    Ok(BenchReport {
        model: EMBEDDER_ARTIFACT.to_owned(),
        engine: "candle (cpu, f32)".to_owned(),
        threads: opts.threads,
        sentences: texts.len(),
        words_min: words.iter().copied().min().unwrap_or(0),
        words_max: words.iter().copied().max().unwrap_or(0),
        tokens,
        sorted_by_length: true,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_deterministic_and_10_to_60_words() {
        let a = crm_sentences(200, 7);
        assert_eq!(a, crm_sentences(200, 7));
        for s in &a {
            let n = s.split_whitespace().count();
            assert!((10..=60).contains(&n), "{n} words: {s}");
            assert!(s.ends_with('.'));
        }
    }
}
