//! Semantic memory on the command line: `rapport ingest`, `reindex`, `search`,
//! `eval retrieval` (dispatched from `eval.rs`) and `bench search`. Thin: the work is in
//! `rapport_pipelines::memory` and `rapport_index`.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use rapport_crm::{Id, LookupQuery, RecordType, Store};
use rapport_index::{EdgeIndex, VectorIndex};
use rapport_pipelines::memory::{self, IngestOptions, Memory, Mode, SearchFilters};

use rapport_tools::Services;

use super::GlobalArgs;
use super::db::{self, Session, progress_bar};

/// The collection a Qdrant server holds Rapport's chunks in.
#[cfg_attr(not(feature = "qdrant-server"), allow(dead_code))]
const COLLECTION: &str = "rapport_activities";

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Outbox entries per round (one flush and acknowledgement each).
    #[arg(long, default_value_t = 128)]
    pub batch: u32,
    /// Drain every workspace's entries, not only `--workspace`'s.
    #[arg(long)]
    pub all_workspaces: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReindexArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, in plain words.
    pub query: String,
    /// Company id or name.
    #[arg(long)]
    pub company: Option<String>,
    /// email, call, meeting or note.
    #[arg(long)]
    pub kind: Option<String>,
    /// Contact id or name.
    #[arg(long)]
    pub contact: Option<String>,
    /// Deal id or name.
    #[arg(long)]
    pub deal: Option<String>,
    /// Owner: user id, email or name.
    #[arg(long)]
    pub owner: Option<String>,
    /// On or after this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// dense, bm25 or hybrid.
    #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: Mode,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalRetrievalArgs {
    /// Companies in the seeded CRM (about 28 activities each).
    #[arg(long, default_value_t = 30)]
    pub companies: usize,
}

#[derive(Debug, Args)]
pub struct BenchSearchArgs {
    /// Chunks in the index.
    #[arg(long, default_value_t = 10_000)]
    pub chunks: usize,
    /// Chunks embedded with MiniLM for the with-embedding throughput.
    #[arg(long, default_value_t = 2_000)]
    pub embed_sample: usize,
    /// Timed queries per latency figure.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::ALL
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| format!("{s:?}: use dense, bm25 or hybrid"))
}

/// The index the configuration names: a Qdrant server when `RAPPORT_QDRANT_URL`
/// is set, else the qdrant-edge shard in the data directory.
pub async fn open_index(g: &GlobalArgs, dim: usize) -> anyhow::Result<Arc<dyn VectorIndex>> {
    if let Ok(url) = std::env::var("RAPPORT_QDRANT_URL") {
        return open_server(&url, dim).await;
    }
    let dir = g.data_dir.join("index");
    let index = EdgeIndex::open(&dir, dim)
        .await
        .with_context(|| format!("cannot open the vector index at {}", dir.display()))?;
    Ok(Arc::new(index))
}

#[cfg(feature = "qdrant-server")]
async fn open_server(url: &str, dim: usize) -> anyhow::Result<Arc<dyn VectorIndex>> {
    let key = std::env::var("RAPPORT_QDRANT_API_KEY").ok();
    let index = rapport_index::ServerIndex::connect(url, key.as_deref(), COLLECTION, dim)
        .await
        .with_context(|| format!("cannot use the Qdrant server at {url}"))?;
    Ok(Arc::new(index))
}

#[cfg(not(feature = "qdrant-server"))]
async fn open_server(url: &str, _dim: usize) -> anyhow::Result<Arc<dyn VectorIndex>> {
    anyhow::bail!(
        "RAPPORT_QDRANT_URL is set ({url}) but this build has no Qdrant server support: \
         rebuild with `--features qdrant-server`, or unset it to use the embedded index"
    )
}

/// The store, the acting context and the loaded semantic memory.
pub async fn open_memory(g: &GlobalArgs) -> anyhow::Result<(Session, Memory)> {
    let session = db::open(g).await?;
    let memory = memory_for(g, &session.store).await?;
    Ok((session, memory))
}

/// Semantic memory over `store` and the configured index.
pub async fn memory_for(g: &GlobalArgs, store: &Store) -> anyhow::Result<Memory> {
    let index = open_index(g, 384).await?;
    Memory::open(store.clone(), index)
        .await
        .context("cannot load the sentence embedder")
}

/// Semantic memory as tool services, after indexing what the workspace's
/// outbox still holds (all of it on a first run; nothing on a rerun).
pub async fn indexed_services(g: &GlobalArgs, s: &Session) -> anyhow::Result<Services> {
    let memory = memory_for(g, &s.store).await?;
    let opts = IngestOptions {
        batch: 128,
        workspace_id: Some(s.ctx.workspace_id),
        max_rounds: None,
    };
    let bar = progress_bar("index");
    let report = memory.ingest(&opts, &bar).await?;
    bar.finish_and_clear();
    tracing::info!(?report, "semantic memory up to date");
    Ok(rapport_pipelines::tool_services(Some(memory)))
}

pub async fn ingest(g: &GlobalArgs, args: IngestArgs) -> anyhow::Result<()> {
    let (s, memory) = open_memory(g).await?;
    let opts = IngestOptions {
        batch: args.batch,
        workspace_id: (!args.all_workspaces).then_some(s.ctx.workspace_id),
        max_rounds: None,
    };
    let bar = progress_bar("ingest");
    let report = memory.ingest(&opts, &bar).await?;
    bar.finish_and_clear();
    print_report(&report, args.json)
}

pub async fn reindex(g: &GlobalArgs, args: ReindexArgs) -> anyhow::Result<()> {
    let (s, memory) = open_memory(g).await?;
    let bar = progress_bar("reindex");
    let report = memory.reindex(&s.ctx, &bar).await?;
    bar.finish_and_clear();
    print_report(&report, args.json)
}

fn print_report(r: &memory::IngestReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!(
            "{} outbox entries: {} activities indexed ({} chunks), {} removed, in {:.1} s",
            r.entries, r.indexed, r.chunks, r.removed, r.seconds
        );
    }
    Ok(())
}

pub async fn search(g: &GlobalArgs, args: SearchArgs) -> anyhow::Result<()> {
    let (s, memory) = open_memory(g).await?;
    let filters = SearchFilters {
        kind: args.kind.clone(),
        company_id: resolve(&s, args.company.as_deref(), RecordType::Company).await?,
        contact_id: resolve(&s, args.contact.as_deref(), RecordType::Contact).await?,
        deal_id: resolve(&s, args.deal.as_deref(), RecordType::Deal).await?,
        owner_id: match &args.owner {
            Some(o) => Some(db::find_user(&s.store, &s.ctx, o).await?.id),
            None => None,
        },
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
    };
    let hits = memory
        .search_with(&s.ctx, &args.query, &filters, args.mode, args.limit)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("nothing found (is the index up to date? run `rapport ingest`)");
    }
    for (i, h) in hits.iter().enumerate() {
        println!(
            "{:>2}. [activity {}] {} {} {}{}  score {:.3}",
            i + 1,
            h.activity_id,
            h.occurred_at.format("%Y-%m-%d"),
            h.kind,
            h.who.as_deref().unwrap_or("-"),
            h.company
                .as_deref()
                .map(|c| format!(" @ {c}"))
                .unwrap_or_default(),
            h.score
        );
        for line in h.snippet.lines().filter(|l| !l.trim().is_empty()) {
            println!("      {line}");
        }
    }
    Ok(())
}

/// An id as given, or the best match of a name among records of one type.
async fn resolve(s: &Session, given: Option<&str>, rt: RecordType) -> anyhow::Result<Option<Id>> {
    let Some(given) = given else { return Ok(None) };
    if let Ok(id) = given.trim().parse::<Id>() {
        return Ok(Some(id));
    }
    let found = s
        .store
        .lookup(
            &s.ctx,
            &LookupQuery {
                text: given.to_owned(),
                types: vec![rt],
                limit: Some(1),
            },
        )
        .await?;
    let best = found
        .first()
        .with_context(|| format!("no {rt} matches {given:?}"))?;
    tracing::info!(%rt, id = best.id, label = %best.label, "resolved {given:?}");
    Ok(Some(best.id))
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// `rapport eval retrieval`.
pub async fn eval_retrieval(args: EvalRetrievalArgs) -> anyhow::Result<()> {
    let (embedder, chunker) = memory::eval::load_models().await?;
    let bar = progress_bar("ingest");
    let report = memory::eval::run_demo(embedder, chunker, args.companies, &bar).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub async fn bench_search(args: BenchSearchArgs) -> anyhow::Result<()> {
    let (embedder, chunker) = memory::eval::load_models().await?;
    // The benchmark builds its own indexes in a temporary directory; the store is unused.
    let dir = tempfile::tempdir()?;
    let store = rapport_crm::Store::connect(&rapport_crm::Store::sqlite_url_in(dir.path())).await?;
    let placeholder = EdgeIndex::open(&dir.path().join("unused"), embedder.dim()).await?;
    let memory = Memory::new(store, Arc::new(placeholder), embedder, chunker)?;
    let bar = progress_bar("bench");
    let report = memory::bench::run(
        &memory,
        &memory::bench::BenchParams {
            chunks: args.chunks,
            embed_sample: args.embed_sample,
            queries: args.queries,
        },
        &bar,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
