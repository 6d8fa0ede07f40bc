//! The retrieval evaluation: queries over the seeded demo CRM whose right
//! answers are known from the generator (each activity's topic, tone and the
//! names its text was filled with), and recall@10, MRR and nDCG@10 for dense,
//! BM25 and hybrid search.
//!
//! Three families of queries, so no single method is favoured by design:
//! paraphrased concerns across the workspace (topic and tone; dense search's
//! strength), one account's history of a topic (with a company filter, as the
//! agent asks after resolving the account), and mentions of named things —
//! competitors, ERP systems, security documents (keywords' strength).

use std::collections::BTreeSet;

use rapport_crm::seed::{self, ActivitySpec, DemoData, SeededIds, Tone, Topic};
use rapport_crm::{Ctx, Id};
use serde::Serialize;

use super::{Memory, Mode, Result, SearchFilters};

/// Results a metric looks at.
pub const K: usize = 10;

/// A query with the activities that truly answer it.
#[derive(Debug, Clone, Serialize)]
pub struct EvalQuery {
    pub id: String,
    pub family: &'static str,
    pub text: String,
    pub filters: SearchFilters,
    pub truth: BTreeSet<Id>,
}

/// Mean metrics of one search mode over all queries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Relevant activities in the top 10 over min(relevant, 10).
    pub recall_at_10: f64,
    /// 1 / rank of the first relevant activity (0 if none in the top 10).
    pub mrr: f64,
    /// Binary-gain nDCG over the top 10.
    pub ndcg_at_10: f64,
}

/// The evaluation's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub companies: usize,
    pub activities: usize,
    pub queries: usize,
    pub dense: Metrics,
    pub bm25: Metrics,
    pub hybrid: Metrics,
    /// Per family and mode, to see where each method wins.
    pub by_family: Vec<FamilyMetrics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FamilyMetrics {
    pub family: &'static str,
    pub mode: Mode,
    pub queries: usize,
    pub metrics: Metrics,
}

/// Metrics of one ranked list against a truth set.
pub fn score(ranked: &[Id], truth: &BTreeSet<Id>) -> Metrics {
    let top = &ranked[..ranked.len().min(K)];
    let ideal = truth.len().min(K);
    if ideal == 0 {
        return Metrics::default();
    }
    let found = top.iter().filter(|id| truth.contains(id)).count();
    let mrr = top
        .iter()
        .position(|id| truth.contains(id))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0));
    let dcg: f64 = top
        .iter()
        .enumerate()
        .filter(|(_, id)| truth.contains(id))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let idcg: f64 = (0..ideal).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
    Metrics {
        recall_at_10: found as f64 / ideal as f64,
        mrr,
        ndcg_at_10: dcg / idcg,
    }
}

fn mean(ms: &[Metrics]) -> Metrics {
    let n = ms.len().max(1) as f64;
    Metrics {
        recall_at_10: ms.iter().map(|m| m.recall_at_10).sum::<f64>() / n,
        mrr: ms.iter().map(|m| m.mrr).sum::<f64>() / n,
        ndcg_at_10: ms.iter().map(|m| m.ndcg_at_10).sum::<f64>() / n,
    }
}

/// Paraphrased concerns: none repeats the generator's sentence word for word.
const CONCERNS: &[(&str, Topic, Tone)] = &[
    (
        "customer thinks our product costs too much for their budget",
        Topic::Pricing,
        Tone::Negative,
    ),
    (
        "they want a detailed cost breakdown including setup fees",
        Topic::Pricing,
        Tone::Neutral,
    ),
    (
        "infosec has objections that block the vendor assessment",
        Topic::SecurityReview,
        Tone::Negative,
    ),
    (
        "the compliance team still needs paperwork to complete their vendor assessment",
        Topic::SecurityReview,
        Tone::Neutral,
    ),
    (
        "syncing with their ERP breaks and their IT staff is annoyed",
        Topic::Integration,
        Tone::Negative,
    ),
    (
        "project postponed and spending frozen, decision delayed",
        Topic::Timeline,
        Tone::Negative,
    ),
    (
        "client might not extend the subscription when the term ends",
        Topic::Renewal,
        Tone::Negative,
    ),
    (
        "client furious that bills were booked twice and help desk was slow",
        Topic::Complaint,
        Tone::Negative,
    ),
    (
        "client reported a defect or opened a ticket",
        Topic::Complaint,
        Tone::Neutral,
    ),
    (
        "happy customer willing to act as a reference",
        Topic::Praise,
        Tone::Positive,
    ),
    (
        "rollout and user training went badly, sessions moved around",
        Topic::Onboarding,
        Tone::Negative,
    ),
    (
        "lawyers turned down our terms so the agreement is stuck",
        Topic::Contract,
        Tone::Negative,
    ),
    (
        "a rival vendor undercut us and we could lose the deal",
        Topic::Competitor,
        Tone::Negative,
    ),
    (
        "account will extend for another year and buy more licences",
        Topic::Renewal,
        Tone::Positive,
    ),
];

/// What one account's history is searched for, per topic.
fn account_question(t: Topic) -> &'static str {
    match t {
        Topic::Pricing => "what did they say about price and budget",
        Topic::SecurityReview => "where does the security review stand",
        Topic::Integration => "how is the integration with their systems going",
        Topic::Timeline => "when will they decide, what is the timeline",
        Topic::Competitor => "which other vendors are they evaluating",
        Topic::Renewal => "are they going to renew",
        Topic::Complaint => "what problems or complaints did they raise",
        Topic::Praise => "what feedback did they give about the product",
        Topic::Onboarding => "how is onboarding and training going",
        Topic::Contract => "status of the contract negotiation with legal",
    }
}

/// The evaluation queries for generated data and the ids it was written with.
pub fn queries(data: &DemoData, ids: &SeededIds) -> Vec<EvalQuery> {
    let acts: Vec<(Id, &ActivitySpec)> = ids
        .activities
        .iter()
        .copied()
        .zip(&data.activities)
        .collect();
    let truth = |pred: &dyn Fn(&ActivitySpec) -> bool| -> BTreeSet<Id> {
        acts.iter()
            .filter(|(_, a)| pred(a))
            .map(|(id, _)| *id)
            .collect()
    };
    let mut out = Vec::new();

    for (i, (text, topic, tone)) in CONCERNS.iter().enumerate() {
        out.push(EvalQuery {
            id: format!("concern-{i:02}"),
            family: "concern",
            text: (*text).to_owned(),
            filters: SearchFilters::default(),
            truth: truth(&|a| a.topic == *topic && a.tone == *tone),
        });
    }

    // One account's history: companies in order, each with a topic it has 2 to
    // 5 activities on, topics rotating so every one is asked about.
    let mut k = 0;
    for (c, company_id) in ids.companies.iter().enumerate() {
        if k == 14 {
            break;
        }
        for step in 0..seed::TOPICS.len() {
            let topic = seed::TOPICS[(k + step) % seed::TOPICS.len()];
            let t = truth(&|a| a.company == c && a.topic == topic);
            if (2..=5).contains(&t.len()) {
                out.push(EvalQuery {
                    id: format!("account-{k:02}"),
                    family: "account",
                    text: account_question(topic).to_owned(),
                    filters: SearchFilters {
                        company_id: Some(*company_id),
                        ..Default::default()
                    },
                    truth: t,
                });
                k += 1;
                break;
            }
        }
    }

    for name in seed::COMPETITORS {
        out.push(EvalQuery {
            id: format!("mention-{}", name.to_lowercase()),
            family: "mention",
            text: format!("mentions of {name}"),
            filters: SearchFilters::default(),
            truth: truth(&|a| a.body.contains(name)),
        });
    }
    for system in seed::SYSTEMS {
        out.push(EvalQuery {
            id: format!("mention-{}", system.to_lowercase().replace(' ', "-")),
            family: "mention",
            text: format!("{system} integration problems"),
            filters: SearchFilters::default(),
            truth: truth(&|a| {
                a.topic == Topic::Integration && a.tone == Tone::Negative && a.body.contains(system)
            }),
        });
    }
    for item in seed::SECURITY {
        let short = item.trim_start_matches("the ");
        out.push(EvalQuery {
            id: format!("mention-security-{}", out.len()),
            family: "mention",
            text: format!("requests for {short}"),
            filters: SearchFilters::default(),
            truth: truth(&|a| a.body.contains(item)),
        });
    }
    out.retain(|q| !q.truth.is_empty());
    out
}

/// Runs every query in every mode and averages the metrics.
pub async fn run(
    memory: &Memory,
    ctx: &Ctx,
    queries: &[EvalQuery],
    companies: usize,
    activities: usize,
) -> Result<EvalReport> {
    let mut per_mode: Vec<(Mode, Vec<(&'static str, Metrics)>)> = Vec::new();
    for mode in Mode::ALL {
        let mut ms = Vec::new();
        for q in queries {
            let hits = memory
                .search_with(ctx, &q.text, &q.filters, mode, K)
                .await?;
            let ranked: Vec<Id> = hits.iter().map(|h| h.activity_id).collect();
            ms.push((q.family, score(&ranked, &q.truth)));
        }
        per_mode.push((mode, ms));
    }
    let overall = |mode: Mode| {
        let ms: Vec<Metrics> = per_mode
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, v)| v.iter().map(|(_, m)| m.clone()).collect())
            .unwrap_or_default();
        mean(&ms)
    };
    let mut by_family = Vec::new();
    for family in ["concern", "account", "mention"] {
        for (mode, ms) in &per_mode {
            let fam: Vec<Metrics> = ms
                .iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, m)| m.clone())
                .collect();
            by_family.push(FamilyMetrics {
                family,
                mode: *mode,
                queries: fam.len(),
                metrics: mean(&fam),
            });
        }
    }
    Ok(EvalReport {
        companies,
        activities,
        queries: queries.len(),
        dense: overall(Mode::Dense),
        bm25: overall(Mode::Bm25),
        hybrid: overall(Mode::Hybrid),
        by_family,
    })
}

/// The default embedder and its chunker, loaded off the async runtime
/// (fetched first if missing): what [`run_demo`] and the search benchmark take.
pub async fn load_models() -> Result<(rapport_models::Embedder, super::Chunker)> {
    tokio::task::spawn_blocking(|| -> Result<_> {
        let embedder = rapport_models::Embedder::load_default(Default::default())?;
        let chunker = super::Chunker::minilm(Default::default())?;
        Ok((embedder, chunker))
    })
    .await?
}

/// Seeds a fresh demo CRM of `companies` companies (fixed seed and date) into a
/// temporary SQLite file, ingests it into a temporary qdrant-edge shard with
/// `embedder` and `chunker`, and evaluates. Nothing outside the temporary
/// directory is touched.
pub async fn run_demo(
    embedder: rapport_models::Embedder,
    chunker: super::Chunker,
    companies: usize,
    progress: &indicatif::ProgressBar,
) -> Result<EvalReport> {
    use std::sync::Arc;

    let dir = tempfile::tempdir().map_err(|e| super::Error::Task(e.to_string()))?;
    let store = rapport_crm::Store::connect(&rapport_crm::Store::sqlite_url_in(dir.path())).await?;
    let ws = store.create_workspace("retrieval-eval").await?;
    let ctx = Ctx::new(ws.id, None, rapport_crm::Source::Pipeline);
    let data = seed::generate(&seed::SeedParams {
        companies,
        seed: 42,
        as_of: seed::fixed_date(),
    });
    let ids = seed::write(&store, &ctx, &data, &indicatif::ProgressBar::hidden()).await?;
    let index = rapport_index::EdgeIndex::open(&dir.path().join("index"), embedder.dim()).await?;
    let memory = Memory::new(store.clone(), Arc::new(index), embedder, chunker)?;
    memory
        .ingest(&super::IngestOptions::default(), progress)
        .await?;
    progress.finish_and_clear();
    let qs = queries(&data, &ids);
    let report = run(&memory, &ctx, &qs, companies, data.activities.len()).await?;
    store.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_known_ranking() {
        let truth: BTreeSet<Id> = [2, 5].into();
        let m = score(&[1, 2, 3, 4, 5], &truth);
        assert_eq!(m.recall_at_10, 1.0);
        assert_eq!(m.mrr, 0.5);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 6f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg_at_10 - dcg / idcg).abs() < 1e-12);
        assert_eq!(score(&[7, 8], &truth), Metrics::default());
    }

    #[test]
    fn recall_is_capped_at_ten_relevant() {
        let truth: BTreeSet<Id> = (0..50).collect();
        assert_eq!(
            score(&(0..10).collect::<Vec<_>>(), &truth).recall_at_10,
            1.0
        );
    }

    #[test]
    fn forty_queries_with_answers_from_the_generator() {
        let data = seed::generate(&seed::SeedParams {
            companies: 30,
            seed: 42,
            as_of: seed::fixed_date(),
        });
        let ids = SeededIds {
            companies: (1..=data.companies.len() as i64).collect(),
            activities: (1..=data.activities.len() as i64).collect(),
            ..Default::default()
        };
        let qs = queries(&data, &ids);
        assert!(qs.len() >= 40, "{} queries", qs.len());
        assert!(qs.iter().all(|q| !q.truth.is_empty()));
    }
}
