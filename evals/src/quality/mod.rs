//! One report for every quality number Rapport measures: the agent suites'
//! pass rates, sentiment accuracy, retrieval recall@10, and the lead-score and
//! churn models' test ROC AUC — each beside its committed baseline and the
//! reference it is judged against (VADER, BM25, scikit-learn…).
//!
//! This module is pure: [`compare`] turns measures and a [`Baseline`] into a
//! [`QualityReport`]; [`sources`] gathers the measures (it runs the retrieval
//! eval and the training, and reads agent reports and the sentiment head's
//! metrics).

pub mod sources;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// Stable key, e.g. `tabular.mlc_churn.roc_auc`: what baselines are keyed
    /// by. It begins with the group (`Baseline::from_measures` relies on it).
    pub key: String,
    /// Section of the report: agent, sentiment, retrieval, tabular.
    pub group: String,
    /// How the report names it, for people.
    pub label: String,
    /// The figure; higher is better for every measure.
    pub value: f64,
    /// Figures it is read beside, e.g. `("scikit-learn HistGB", 0.9272)`.
    #[serde(default)]
    pub references: Vec<(String, f64)>,
    /// Free text: sizes, the chosen model, where the number came from.
    #[serde(default)]
    pub note: String,
}

impl Measure {
    /// A measure without references or note; `key` should begin with `group`.
    pub fn new(group: &str, key: &str, label: &str, value: f64) -> Measure {
        Measure {
            key: key.to_owned(),
            group: group.to_owned(),
            label: label.to_owned(),
            value,
            references: Vec::new(),
            note: String::new(),
        }
    }

    /// Adds a figure to read it beside.
    pub fn reference(mut self, name: &str, value: f64) -> Measure {
        self.references.push((name.to_owned(), value));
        self
    }

    /// Sets the free-text note.
    pub fn note(mut self, note: impl Into<String>) -> Measure {
        self.note = note.into();
        self
    }
}

/// A committed baseline figure: a new value more than `tolerance` below it is
/// a regression (every figure here is better when higher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineEntry {
    /// The baseline figure.
    pub value: f64,
    /// How far below `value` a new figure may fall and still hold.
    pub tolerance: f64,
    /// Reference figures measured outside Rapport (e.g. scikit-learn on the
    /// same split), shown beside the measure.
    #[serde(default)]
    pub references: BTreeMap<String, f64>,
}

/// `evals/baselines/quality.json`: baseline entries by measure key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Entries by [`Measure::key`].
    pub entries: BTreeMap<String, BaselineEntry>,
}

impl Baseline {
    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::file(path, e))
    }

    /// A baseline holding the measured values, each with `tolerance`, keeping
    /// the references (and tolerances) of `previous` where it has the key.
    ///
    /// The entries of a group nothing was measured for this run (a source
    /// skipped or unavailable here) are kept as they were, so refreshing the
    /// agent figures does not need the sentiment head retrained first. Within
    /// a measured group, an entry not measured again is dropped.
    pub fn from_measures(measures: &[Measure], tolerance: f64, previous: &Baseline) -> Baseline {
        let measured = |key: &str| {
            let group = key.split('.').next().unwrap_or(key);
            measures.iter().any(|m| m.group == group || m.key == key)
        };
        let kept = previous
            .entries
            .iter()
            .filter(|(k, _)| !measured(k))
            .map(|(k, e)| (k.clone(), e.clone()));
        let entries = measures
            .iter()
            .map(|m| {
                let old = previous.entries.get(&m.key);
                (
                    m.key.clone(),
                    BaselineEntry {
                        value: m.value,
                        tolerance: old.map_or(tolerance, |o| o.tolerance),
                        references: old.map(|o| o.references.clone()).unwrap_or_default(),
                    },
                )
            })
            .chain(kept)
            .collect();
        Baseline { entries }
    }
}

/// How a measure compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within tolerance of the baseline, or above it.
    Held,
    /// Below the baseline by more than its tolerance.
    Regressed,
    /// No baseline for this key yet.
    New,
}

/// One measure judged against its baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The measure.
    pub measure: Measure,
    /// The baseline figure, if there is one.
    pub baseline: Option<f64>,
    /// Its tolerance, if there is a baseline.
    pub tolerance: Option<f64>,
    /// Held, regressed or new.
    pub verdict: Verdict,
}

/// Every measure of a run against the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QualityReport {
    /// One per measure, in the order measured.
    pub rows: Vec<Row>,
    /// Baseline keys with no measure in this run (skipped or unavailable).
    pub not_measured: Vec<String>,
    /// No measure regressed.
    pub passed: bool,
}

/// Judges every measure against its baseline entry.
pub fn compare(measures: &[Measure], baseline: &Baseline) -> QualityReport {
    let rows: Vec<Row> = measures
        .iter()
        .map(|m| {
            let entry = baseline.entries.get(&m.key);
            let mut measure = m.clone();
            if let Some(e) = entry {
                for (name, v) in &e.references {
                    if !measure.references.iter().any(|(n, _)| n == name) {
                        measure.references.push((name.clone(), *v));
                    }
                }
            }
            let verdict = match entry {
                None => Verdict::New,
                Some(e) if m.value < e.value - e.tolerance => Verdict::Regressed,
                Some(_) => Verdict::Held,
            };
            Row {
                measure,
                baseline: entry.map(|e| e.value),
                tolerance: entry.map(|e| e.tolerance),
                verdict,
            }
        })
        .collect();
    let not_measured = baseline
        .entries
        .keys()
        .filter(|k| !measures.iter().any(|m| &m.key == *k))
        .cloned()
        .collect();
    let passed = rows.iter().all(|r| r.verdict != Verdict::Regressed);
    QualityReport {
        rows,
        not_measured,
        passed,
    }
}

impl QualityReport {
    /// One line per regressed measure: its value, baseline and tolerance.
    pub fn regressions(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .map(|r| {
                format!(
                    "{} is {:.4}, below its baseline {:.4} by more than {:.4}",
                    r.measure.key,
                    r.measure.value,
                    r.baseline.unwrap_or(f64::NAN),
                    r.tolerance.unwrap_or(0.0)
                )
            })
            .collect()
    }

    /// The report as Markdown, one table per group.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Rapport quality report\n");
        let mut groups: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !groups.contains(&r.measure.group.as_str()) {
                groups.push(&r.measure.group);
            }
        }
        for g in groups {
            out.push_str(&format!(
                "\n## {g}\n\n| measure | value | baseline | verdict | beside | note |\n| --- | ---: | ---: | --- | --- | --- |\n"
            ));
            for r in self.rows.iter().filter(|r| r.measure.group == g) {
                let m = &r.measure;
                let beside = m
                    .references
                    .iter()
                    .map(|(n, v)| format!("{n} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                out.push_str(&format!(
                    "| {} | {:.4} | {} | {} | {} | {} |\n",
                    m.label,
                    m.value,
                    r.baseline
                        .map(|b| format!("{b:.4} ± {:.4}", r.tolerance.unwrap_or(0.0)))
                        .unwrap_or_else(|| "—".into()),
                    match r.verdict {
                        Verdict::Held => "held",
                        Verdict::Regressed => "**REGRESSED**",
                        Verdict::New => "new",
                    },
                    beside,
                    m.note
                ));
            }
        }
        if !self.not_measured.is_empty() {
            out.push_str(&format!(
                "\nNot measured in this run: {}.\n",
                self.not_measured.join(", ")
            ));
        }
        out.push_str(if self.passed {
            "\nNo figure fell below its baseline's tolerance.\n"
        } else {
            "\n**Regressions:**\n"
        });
        for r in self.regressions() {
            out.push_str(&format!("- {r}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(entries: &[(&str, f64, f64)]) -> Baseline {
        Baseline {
            entries: entries
                .iter()
                .map(|(k, v, t)| {
                    (
                        k.to_string(),
                        BaselineEntry {
                            value: *v,
                            tolerance: *t,
                            references: BTreeMap::from([("ref".to_string(), 0.5)]),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_drop_beyond_the_tolerance_regresses_and_a_small_one_holds() {
        let b = baseline(&[("a", 0.80, 0.02), ("b", 0.90, 0.02), ("gone", 0.5, 0.0)]);
        let ms = [
            Measure::new("g", "a", "A", 0.785),
            Measure::new("g", "b", "B", 0.87),
            Measure::new("g", "c", "C", 0.1),
        ];
        let r = compare(&ms, &b);
        let verdicts: Vec<Verdict> = r.rows.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts, [Verdict::Held, Verdict::Regressed, Verdict::New]);
        assert!(!r.passed);
        assert_eq!(r.not_measured, ["gone"]);
        assert_eq!(r.regressions().len(), 1);
        assert!(r.regressions()[0].starts_with("b is 0.8700"));
        // The baseline's references are shown beside the measure.
        assert_eq!(r.rows[0].measure.references, [("ref".to_string(), 0.5)]);
        let md = r.markdown();
        assert!(
            md.contains("| B | 0.8700 | 0.9000 ± 0.0200 | **REGRESSED** |"),
            "{md}"
        );
        assert!(md.contains("Not measured in this run: gone."));
    }

    #[test]
    fn improvements_pass_and_a_new_baseline_keeps_old_references_and_tolerances() {
        let b = baseline(&[("a", 0.80, 0.03)]);
        let ms = [
            Measure::new("g", "a", "A", 0.95),
            Measure::new("g", "n", "N", 0.4),
        ];
        assert!(compare(&ms, &b).passed);
        let next = Baseline::from_measures(&ms, 0.01, &b);
        assert_eq!(next.entries["a"].value, 0.95);
        assert_eq!(next.entries["a"].tolerance, 0.03);
        assert_eq!(next.entries["a"].references["ref"], 0.5);
        assert_eq!(next.entries["n"].tolerance, 0.01);
        assert!(next.entries["n"].references.is_empty());
    }

    #[test]
    fn a_new_baseline_keeps_the_groups_not_measured_and_drops_stale_keys() {
        let b = baseline(&[
            ("agent.x.10tasks.pass1", 0.4, 0.02),
            ("sentiment.accuracy", 0.78, 0.02),
        ]);
        let ms = [Measure::new("agent", "agent.x.12tasks.pass1", "x", 0.5)];
        let next = Baseline::from_measures(&ms, 0.02, &b);
        let keys: Vec<&str> = next.entries.keys().map(String::as_str).collect();
        // Sentiment was not measured: kept. The agent group was: its old key goes.
        assert_eq!(keys, ["agent.x.12tasks.pass1", "sentiment.accuracy"]);
        assert_eq!(
            next.entries["sentiment.accuracy"],
            b.entries["sentiment.accuracy"]
        );
    }
}
