//! The sentiment classifier: negative / neutral / positive and a score in
//! [-1, 1], from a small head (standardisation, an optional hidden layer,
//! softmax) on the sentence embedder's vectors plus VADER's four lexicon
//! scores. Inference runs in Candle.
//!
//! Heads are trained by [`train::train`] (`rapport train sentiment`) and kept
//! as versioned artifacts under `<models dir>/sentiment-head/<version>/`:
//! `head.safetensors`, `head.json` (configuration, the safetensors' sha256,
//! the embedder it was trained on) and `metrics.json`. The file `CURRENT`
//! names the version [`Sentiment::load`] uses.

pub mod data;
pub mod metrics;
pub mod train;

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::embed::{EMBEDDER_ARTIFACT, Embedder};
use crate::error::{Error, IoContext, Result};
use crate::store::{Store, sha256_file};

/// Directory of the versioned heads inside the models directory.
pub const HEAD_DIR: &str = "sentiment-head";
const CURRENT_FILE: &str = "CURRENT";
const HEAD_FORMAT: u32 = 1;

/// The three classes, in the order of the head's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    /// Displeased, critical or worried.
    Negative,
    /// Neither: facts, logistics, questions.
    Neutral,
    /// Pleased, interested or approving.
    Positive,
}

impl SentimentLabel {
    /// The labels in head output order.
    pub const ALL: [SentimentLabel; 3] = [
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
    ];

    /// Position of the label in the head's output (and in [`ALL`](Self::ALL)).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label at an output position; `None` past the third.
    pub fn from_index(i: usize) -> Option<SentimentLabel> {
        Self::ALL.get(i).copied()
    }

    /// `negative`, `neutral` or `positive`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        }
    }
}

impl std::fmt::Display for SentimentLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SentimentLabel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "negative" | "neg" => Ok(SentimentLabel::Negative),
            "neutral" | "neu" => Ok(SentimentLabel::Neutral),
            "positive" | "pos" => Ok(SentimentLabel::Positive),
            other => Err(Error::Data(format!("unknown sentiment label `{other}`"))),
        }
    }
}

/// The sentiment of one text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    /// The most probable class.
    pub label: SentimentLabel,
    /// `P(positive) - P(negative)`, in [-1, 1].
    pub score: f32,
    /// Class probabilities, in the order negative, neutral, positive.
    pub probs: [f32; 3],
}

impl SentimentScore {
    /// The defined result for a text with nothing to read (empty or whitespace).
    pub const EMPTY: SentimentScore = SentimentScore {
        label: SentimentLabel::Neutral,
        score: 0.0,
        probs: [0.0, 1.0, 0.0],
    };

    fn from_probs(probs: [f32; 3]) -> SentimentScore {
        let best = (0..3)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .expect("three classes");
        SentimentScore {
            label: SentimentLabel::ALL[best],
            score: (probs[2] - probs[0]).clamp(-1.0, 1.0),
            probs,
        }
    }
}

/// The input features of a head, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// The embedder's vector.
    Embedding,
    /// VADER's negative, neutral, positive and compound scores.
    Vader,
}

impl Feature {
    fn width(self, embed_dim: usize) -> usize {
        match self {
            Feature::Embedding => embed_dim,
            Feature::Vader => 4,
        }
    }
}

/// `head.json`: what a head is and what it was trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Format version of the head files.
    pub format: u32,
    /// The head's version: its directory name under [`HEAD_DIR`].
    pub version: String,
    /// When it was trained, in Unix seconds.
    pub created_unix: u64,
    /// Manifest name of the embedder the head expects.
    pub embedder: String,
    /// sha256 of the embedder's weights at training time.
    pub embedder_sha256: String,
    /// Width of the embedder's vectors.
    pub embed_dim: usize,
    /// The input features, in the order they are concatenated.
    pub features: Vec<Feature>,
    /// Width of the hidden layer; 0 for a linear (multinomial logistic) head.
    pub hidden: usize,
    /// The classes, in output order.
    pub labels: Vec<SentimentLabel>,
    /// sha256 of `head.safetensors`, checked on load.
    pub weights_sha256: String,
}

impl HeadConfig {
    /// Width of the head's input: the features' widths summed.
    pub fn input_width(&self) -> usize {
        self.features.iter().map(|f| f.width(self.embed_dim)).sum()
    }
}

/// The head's layers (shared by training and inference).
#[derive(Debug, Clone)]
pub(crate) struct Head {
    mean: Tensor,
    std: Tensor,
    hidden: Option<Linear>,
    out: Linear,
}

impl Head {
    pub(crate) fn new(
        vb: VarBuilder,
        input: usize,
        hidden: usize,
        mean: Tensor,
        std: Tensor,
    ) -> Result<Head> {
        let (hidden_layer, out_in) = if hidden > 0 {
            (
                Some(candle_nn::linear(input, hidden, vb.pp("hidden"))?),
                hidden,
            )
        } else {
            (None, input)
        };
        let out = candle_nn::linear(out_in, 3, vb.pp("out"))?;
        Ok(Head {
            mean,
            std,
            hidden: hidden_layer,
            out,
        })
    }

    /// Logits for a batch of raw features, `dropout` > 0 only while training.
    pub(crate) fn logits(&self, features: &Tensor, dropout: f32) -> Result<Tensor> {
        let mut x = features
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)?;
        if dropout > 0.0 {
            x = candle_nn::ops::dropout(&x, dropout)?;
        }
        if let Some(hidden) = &self.hidden {
            x = hidden.forward(&x)?.relu()?;
            if dropout > 0.0 {
                x = candle_nn::ops::dropout(&x, dropout)?;
            }
        }
        Ok(self.out.forward(&x)?)
    }
}

/// A loaded classifier: the embedder and a head. Cloning is cheap; `Send + Sync`.
#[derive(Clone)]
pub struct Sentiment {
    embedder: Embedder,
    head: Head,
    config: std::sync::Arc<HeadConfig>,
    vader: std::sync::Arc<vader_sentiment::SentimentIntensityAnalyzer<'static>>,
}

impl std::fmt::Debug for Sentiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentiment")
            .field("embedder", &self.embedder)
            .field("head", &self.config.version)
            .finish_non_exhaustive()
    }
}

impl Sentiment {
    /// Loads the store's current head (see `CURRENT`) on top of `embedder`.
    pub fn load(store: &Store, embedder: Embedder) -> Result<Sentiment> {
        let dir = current_head_dir(store.root())?;
        Sentiment::from_dir(&dir, embedder)
    }

    /// Loads the embedder and the current head from the default models directory.
    pub fn load_default(opts: crate::EmbedderOptions) -> Result<Sentiment> {
        let store = Store::open_default()?;
        store.ensure(EMBEDDER_ARTIFACT)?;
        let embedder = Embedder::load(&store, opts)?;
        Sentiment::load(&store, embedder)
    }

    /// Loads a head directory (`head.json` + `head.safetensors`), checking the
    /// weights against the sha256 recorded in `head.json`.
    pub fn from_dir(dir: &Path, embedder: Embedder) -> Result<Sentiment> {
        let config_path = dir.join("head.json");
        let config: HeadConfig =
            serde_json::from_slice(&std::fs::read(&config_path).at(&config_path)?)?;
        if config.format != HEAD_FORMAT {
            return Err(Error::Head(format!(
                "{}: format {} is not supported (expected {HEAD_FORMAT})",
                config_path.display(),
                config.format
            )));
        }
        if config.embed_dim != embedder.dim() {
            return Err(Error::Head(format!(
                "head expects {}-d embeddings, the embedder makes {}-d",
                config.embed_dim,
                embedder.dim()
            )));
        }
        if config.labels != SentimentLabel::ALL {
            return Err(Error::Head(
                "head labels are not negative, neutral, positive".into(),
            ));
        }
        let weights_path = dir.join("head.safetensors");
        let actual = sha256_file(&weights_path)?;
        if actual != config.weights_sha256 {
            return Err(Error::HashMismatch {
                artifact: format!("{HEAD_DIR}/{}", config.version),
                path: weights_path,
                expected: config.weights_sha256.clone(),
                actual,
            });
        }
        let weights = std::fs::read(&weights_path).at(&weights_path)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let input = config.input_width();
        let mean = vb.get(input, "norm.mean")?;
        let std = vb.get(input, "norm.std")?;
        let head = Head::new(vb, input, config.hidden, mean, std)?;
        debug!(dir = %dir.display(), version = %config.version, "sentiment head loaded");
        Ok(Sentiment::from_parts(embedder, head, config))
    }

    pub(crate) fn from_parts(embedder: Embedder, head: Head, config: HeadConfig) -> Sentiment {
        Sentiment {
            embedder,
            head,
            config: std::sync::Arc::new(config),
            vader: shared_vader(),
        }
    }

    /// The head's configuration (version, features, embedder).
    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// The embedder underneath.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Scores texts, in input order. Empty or whitespace-only texts are
    /// [`SentimentScore::EMPTY`] (neutral, score 0) without running the model;
    /// long texts are judged on their first 256 tokens.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<SentimentScore>> {
        let mut out = vec![SentimentScore::EMPTY; texts.len()];
        let idx: Vec<usize> = (0..texts.len())
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        if idx.is_empty() {
            return Ok(out);
        }
        let present: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
        let embeddings = self.embedder.embed(&present)?;
        let features = features_for(&self.config.features, &present, &embeddings, &self.vader);
        let width = self.config.input_width();
        let x = Tensor::from_vec(features, (present.len(), width), &Device::Cpu)?;
        let probs =
            candle_nn::ops::softmax(&self.head.logits(&x, 0.0)?, D::Minus1)?.to_vec2::<f32>()?;
        for (&i, p) in idx.iter().zip(probs) {
            out[i] = SentimentScore::from_probs([p[0], p[1], p[2]]);
        }
        Ok(out)
    }

    /// Scores one text.
    pub fn score_one(&self, text: &str) -> Result<SentimentScore> {
        Ok(self.score(&[text])?[0])
    }
}

pub(crate) fn shared_vader() -> std::sync::Arc<vader_sentiment::SentimentIntensityAnalyzer<'static>>
{
    static VADER: std::sync::OnceLock<
        std::sync::Arc<vader_sentiment::SentimentIntensityAnalyzer<'static>>,
    > = std::sync::OnceLock::new();
    VADER
        .get_or_init(|| std::sync::Arc::new(vader_sentiment::SentimentIntensityAnalyzer::new()))
        .clone()
}

/// VADER's (neg, neu, pos, compound) for a text.
pub(crate) fn vader_scores(
    vader: &vader_sentiment::SentimentIntensityAnalyzer<'_>,
    text: &str,
) -> [f32; 4] {
    let s = vader.polarity_scores(text);
    let get = |k: &str| s.get(k).copied().unwrap_or(0.0) as f32;
    [get("neg"), get("neu"), get("pos"), get("compound")]
}

/// Row-major feature matrix for texts and their embeddings.
pub(crate) fn features_for(
    features: &[Feature],
    texts: &[&str],
    embeddings: &[Vec<f32>],
    vader: &vader_sentiment::SentimentIntensityAnalyzer<'_>,
) -> Vec<f32> {
    let mut out = Vec::new();
    for (text, emb) in texts.iter().zip(embeddings) {
        for f in features {
            match f {
                Feature::Embedding => out.extend_from_slice(emb),
                Feature::Vader => out.extend_from_slice(&vader_scores(vader, text)),
            }
        }
    }
    out
}

/// Directory of the head `CURRENT` names.
pub fn current_head_dir(models_root: &Path) -> Result<PathBuf> {
    let heads = models_root.join(HEAD_DIR);
    let current = heads.join(CURRENT_FILE);
    let version = std::fs::read_to_string(&current).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Head(format!(
                "no trained sentiment head in {} (run `rapport train sentiment`)",
                heads.display()
            ))
        } else {
            Error::Io {
                path: current.clone(),
                source: e,
            }
        }
    })?;
    let version = version.trim();
    if !crate::manifest::is_safe_name(version) {
        return Err(Error::Head(format!(
            "{} names `{version}`, not a version",
            current.display()
        )));
    }
    Ok(heads.join(version))
}

/// Points `CURRENT` at a version.
pub fn set_current_head(models_root: &Path, version: &str) -> Result<()> {
    let heads = models_root.join(HEAD_DIR);
    let path = heads.join(CURRENT_FILE);
    let tmp = heads.join(".CURRENT.tmp");
    std::fs::write(&tmp, format!("{version}\n")).at(&tmp)?;
    std::fs::rename(&tmp, &path).at(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_pos_minus_neg() {
        let s = SentimentScore::from_probs([0.1, 0.2, 0.7]);
        assert_eq!(s.label, SentimentLabel::Positive);
        assert!((s.score - 0.6).abs() < 1e-6);
    }

    #[test]
    fn labels_parse() {
        assert_eq!(
            "Negative".parse::<SentimentLabel>().unwrap(),
            SentimentLabel::Negative
        );
        assert!("meh".parse::<SentimentLabel>().is_err());
    }

    #[test]
    fn sentiment_is_shareable() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Sentiment>();
    }
}
