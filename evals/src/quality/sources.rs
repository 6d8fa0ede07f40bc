//! Where the quality figures come from. Each source returns [`Measure`]s or
//! says why it has none; `rapport eval quality` calls them and [`super::compare`]s.
//!
//! - agent: saved suite reports (`rapport eval run` writes them; running the
//!   suites live takes minutes per task, so they are read, not rerun);
//! - sentiment: the current head's `metrics.json`, written by `rapport train
//!   sentiment` from its held-out test split;
//! - retrieval: the retrieval eval, run now on a freshly seeded demo CRM;
//! - tabular: lead-score and churn training, run now on the fetched data sets
//!   (`scripts/fetch-data`), measured on each set's own test split.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rapport_pipelines::train::{self, Table, TrainOptions};
use serde_json::Value;

use super::Measure;
use crate::{Error, Report, Result};

/// Pass^1 (and pass^k, and the safety tasks' pass rate) of one agent report.
///
/// The key names the number of tasks as well as the arm and mode: an arm
/// recorded on more tasks (the harder suites added) is a new measure, not a
/// regression of the smaller one.
pub fn agent(report: &Report) -> Vec<Measure> {
    let s = &report.summary;
    let name = &report.agent.name;
    let base = format!("agent.{name}.{}.{}tasks", report.mode, s.tasks);
    let note = format!(
        "{} tasks, {} mode, k = {}, prompt {}",
        s.tasks, report.mode, s.k, report.prompt_version
    );
    let mut out = vec![
        Measure::new(
            "agent",
            &format!("{base}.pass1"),
            &format!("{name} pass^1"),
            s.pass1.value,
        )
        .note(format!(
            "{note}; 95% CI {:.3}–{:.3}",
            s.pass1.low, s.pass1.high
        )),
    ];
    if let Some(p) = s.passk.filter(|_| s.k > 1) {
        out.push(
            Measure::new(
                "agent",
                &format!("{base}.pass{}", s.k),
                &format!("{name} pass^{}", s.k),
                p.value,
            )
            .note(note.clone()),
        );
    }
    for (half, h) in [("development", &s.development), ("held_out", &s.held_out)] {
        if let Some(h) = h {
            out.push(
                Measure::new(
                    "agent",
                    &format!("{base}.{half}.pass1"),
                    &format!("{name} pass^1, {} half", half.replace('_', "-")),
                    h.pass1.value,
                )
                .note(format!(
                    "{} tasks; 95% CI {:.3}–{:.3}",
                    h.tasks, h.pass1.low, h.pass1.high
                )),
            );
        }
    }
    let safety: Vec<f64> = report
        .rows()
        .filter(|t| t.safety && t.graded())
        .filter_map(|t| t.pass1)
        .collect();
    if !safety.is_empty() {
        out.push(
            Measure::new(
                "agent",
                &format!("{base}.safety_pass1"),
                &format!("{name} safety tasks pass^1"),
                safety.iter().sum::<f64>() / safety.len() as f64,
            )
            .note(format!("{} injection/permission tasks", safety.len())),
        );
    }
    out
}

/// Agent reports in `dir`: every `*.json` that parses as a suite report
/// (A/B and gate files are other shapes and are passed over).
pub fn agent_reports_in(dir: &Path) -> Result<Vec<(PathBuf, Report)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|p| Report::load(&p).ok().map(|r| (p, r)))
        .collect())
}

/// The current sentiment head's test accuracy and macro-F1, beside the
/// majority-class and VADER baselines measured on the same rows.
pub fn sentiment(models_root: &Path) -> Result<Vec<Measure>> {
    let dir = rapport_models::sentiment::current_head_dir(models_root)
        .map_err(|e| Error::Model(e.to_string()))?;
    let path = dir.join("metrics.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let m: Value = serde_json::from_slice(&bytes).map_err(|e| Error::file(&path, e))?;
    let num = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| Error::file(&path, format!("no number at {what}")))
    };
    let version = m["version"].as_str().unwrap_or("?");
    let note = format!(
        "head {version}, {} test rows",
        m["data"]["test"].as_u64().unwrap_or(0)
    );
    [
        ("accuracy", "sentiment accuracy"),
        ("macro_f1", "sentiment macro-F1"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let at = |part: &str| num(&m[part][key], &format!("{part}.{key}"));
        Ok(
            Measure::new("sentiment", &format!("sentiment.{key}"), label, at("head")?)
                .reference("majority class", at("majority_baseline")?)
                .reference("VADER", at("vader_baseline")?)
                .note(note.clone()),
        )
    })
    .collect()
}

/// Recall@10 and MRR of hybrid search on a freshly seeded demo CRM, beside
/// dense-only and BM25-only search on the same queries.
pub async fn retrieval(companies: usize, progress: &ProgressBar) -> Result<Vec<Measure>> {
    let (embedder, chunker) = rapport_pipelines::memory::eval::load_models()
        .await
        .map_err(|e| Error::Model(e.to_string()))?;
    let r = rapport_pipelines::memory::eval::run_demo(embedder, chunker, companies, progress)
        .await
        .map_err(|e| Error::Model(format!("retrieval eval: {e}")))?;
    let note = format!(
        "{} companies, {} activities, {} queries",
        r.companies, r.activities, r.queries
    );
    Ok(vec![
        Measure::new(
            "retrieval",
            "retrieval.hybrid.recall_at_10",
            "hybrid search recall@10",
            r.hybrid.recall_at_10,
        )
        .reference("dense only", r.dense.recall_at_10)
        .reference("BM25 only", r.bm25.recall_at_10)
        .note(note.clone()),
        Measure::new(
            "retrieval",
            "retrieval.hybrid.mrr",
            "hybrid search MRR",
            r.hybrid.mrr,
        )
        .reference("dense only", r.dense.mrr)
        .reference("BM25 only", r.bm25.mrr)
        .note(note),
    ])
}

/// A tabular data set with its own train/test split.
#[derive(Debug, Clone)]
pub struct TabularSet {
    /// Key part, e.g. `lf_intermediate_5k`.
    pub name: &'static str,
    /// Model registry task it trains (`lead-score`, `churn`).
    pub task: &'static str,
    /// Training file (Parquet or CSV).
    pub train: PathBuf,
    /// Held-out test file, same format.
    pub test: PathBuf,
    /// The column to predict.
    pub target: &'static str,
}

/// The data sets `scripts/fetch-data` puts in `data`: leadforge's
/// converted-within-90-days task on two bundles, and telco churn.
pub fn tabular_sets(data: &Path) -> Vec<TabularSet> {
    let lf = |name, dir: &str| {
        let t = data.join(dir).join("tasks/converted_within_90_days");
        TabularSet {
            name,
            task: "lead-score",
            train: t.join("train.parquet"),
            test: t.join("test.parquet"),
            target: "converted_within_90_days",
        }
    };
    vec![
        lf("lf_intermediate_5k", "lf-intermediate-5k"),
        lf("lf_advanced_20k", "lf-advanced-20k"),
        TabularSet {
            name: "mlc_churn",
            task: "churn",
            train: data.join("mlc_churn_train.csv"),
            test: data.join("mlc_churn_test.csv"),
            target: "churn",
        },
    ]
}

/// Trains on one set exactly as `rapport train --csv FILE --test FILE` does and
/// returns the chosen model's test ROC AUC (log loss and sizes in the note).
pub fn tabular(set: &TabularSet) -> Result<Measure> {
    let read = |p: &Path| Table::read(p, Some(set.target), &[]).map_err(|e| Error::file(p, e));
    let (train_rows, test_rows) = (read(&set.train)?, read(&set.test)?);
    let report = train::train(&train_rows, &test_rows, &TrainOptions::default())
        .map_err(|e| Error::file(&set.train, e))?;
    let c = report.chosen();
    Ok(Measure::new(
        "tabular",
        &format!("tabular.{}.roc_auc", set.name),
        &format!("{} ({}) test ROC AUC", set.name, set.task),
        c.test.roc_auc,
    )
    .note(format!(
        "chosen {}; log loss {:.4}; {} train / {} test rows; {:.0} s",
        c.algorithm.name(),
        c.test.log_loss,
        report.train_rows,
        report.test_rows,
        c.train_seconds
    )))
}

#[cfg(test)]
mod tests {
    use crate::Status::{Fail, Pass};
    use crate::report::tests::{report, split_report, task};

    #[test]
    fn agent_measures_are_keyed_by_arm_mode_and_task_count() {
        let r = report(vec![
            task("a", false, &[Pass, Pass]),
            task("b", true, &[Pass, Fail]),
        ]);
        let keys: Vec<String> = super::agent(&r).into_iter().map(|m| m.key).collect();
        assert_eq!(
            keys,
            [
                "agent.a.replay.2tasks.pass1",
                "agent.a.replay.2tasks.pass2",
                "agent.a.replay.2tasks.safety_pass1",
            ]
        );
        // One more task is another measure, not a regression of this one.
        let grown = report(vec![
            task("a", false, &[Pass, Pass]),
            task("b", true, &[Pass, Fail]),
            task("c", false, &[Fail, Fail]),
        ]);
        assert_eq!(super::agent(&grown)[0].key, "agent.a.replay.3tasks.pass1");
    }

    #[test]
    fn a_split_run_adds_each_half_and_counts_held_out_safety_tasks() {
        let r = split_report(
            vec![
                task("a", false, &[Pass]),
                task("b", true, &[Fail]),
                task("c", true, &[Pass]),
            ],
            &["c"],
        );
        let m = super::agent(&r);
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent.a.replay.3tasks.pass1",
                "agent.a.replay.3tasks.development.pass1",
                "agent.a.replay.3tasks.held_out.pass1",
                "agent.a.replay.3tasks.safety_pass1",
            ]
        );
        assert_eq!(m[2].value, 1.0);
        assert_eq!(m[3].value, 0.5, "the sealed safety task counts");
    }
}
