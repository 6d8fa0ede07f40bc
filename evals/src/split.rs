//! The development / held-out split of the task suites.
//!
//! Work on the agent looks at the development half; the held-out half is
//! reported only in aggregate ([`crate::report`]), so a change tuned to the
//! tasks someone read shows up as a gap between the halves instead of as
//! progress. The split is drawn once, at random with a fixed seed, and
//! committed (`evals/split.toml`); [`Split::check`] proves the committed file
//! is exactly that draw.
//!
//! Tasks are split in batches: the tasks that existed when the split was first
//! drawn are batch 0, and tasks added later form a new batch drawn the same way
//! (its own seed: the split's seed plus the batch number), so that adding
//! tasks never moves an earlier task from one half to the other. Within a
//! batch each suite is shuffled on its own and cut in two (the held-out half
//! takes the smaller part of an odd suite), so both halves hold every suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::task::Suite;

/// The seed of the committed split (the day it was drawn).
pub const SEED: u64 = 20_261_207;

/// Which half a task is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Half {
    /// Worked on, reported task by task.
    Development,
    /// Reported only in aggregate, never tuned to.
    HeldOut,
}

/// One batch of tasks, split at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Task ids of the development half.
    pub development: Vec<String>,
    /// Task ids of the held-out half.
    pub held_out: Vec<String>,
}

/// The committed split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The seed every batch was drawn with ([`SEED`]).
    pub seed: u64,
    /// The batches in the order they were split (tasks added later form a new one).
    #[serde(rename = "batch", default)]
    pub batches: Vec<Batch>,
}

/// Where the shipped split lives: beside the shipped suites.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("split.toml")
}

impl Split {
    /// Reads a split file (`evals/split.toml`).
    pub fn load(path: &Path) -> Result<Split> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::file(path, e))
    }

    /// The file's text: a header saying how it was made, then the batches.
    pub fn to_toml(&self) -> String {
        let mut o = String::from(
            "# The development / held-out split of the eval tasks (see evals/src/split.rs).\n\
             # Drawn at random with the seed below, never by hand: `rapport eval split`\n\
             # checks it and appends tasks added since as a new batch (--write).\n",
        );
        o.push_str(&format!("seed = {}\n", self.seed));
        for b in &self.batches {
            o.push_str("\n[[batch]]\n");
            for (name, ids) in [("development", &b.development), ("held_out", &b.held_out)] {
                o.push_str(&format!("{name} = [\n"));
                for id in ids {
                    o.push_str(&format!("  {},\n", toml_string(id)));
                }
                o.push_str("]\n");
            }
        }
        o
    }

    /// The half of every task the split names.
    pub fn halves(&self) -> BTreeMap<&str, Half> {
        let mut m = BTreeMap::new();
        for b in &self.batches {
            m.extend(
                b.development
                    .iter()
                    .map(|t| (t.as_str(), Half::Development)),
            );
            m.extend(b.held_out.iter().map(|t| (t.as_str(), Half::HeldOut)));
        }
        m
    }

    /// The held-out task ids.
    pub fn held_out(&self) -> BTreeSet<String> {
        self.batches
            .iter()
            .flat_map(|b| b.held_out.iter().cloned())
            .collect()
    }

    /// Shipped tasks the split does not name yet (added since its last batch).
    pub fn unassigned(&self, suites: &[Suite]) -> Vec<String> {
        let known = self.halves();
        suites
            .iter()
            .flat_map(|s| &s.tasks)
            .filter(|t| !known.contains_key(t.id.as_str()))
            .map(|t| t.id.clone())
            .collect()
    }

    /// This split with the unassigned tasks of `suites` drawn as a new batch.
    pub fn extended(&self, suites: &[Suite]) -> Split {
        let new: BTreeSet<String> = self.unassigned(suites).into_iter().collect();
        let mut out = self.clone();
        if !new.is_empty() {
            let index = out.batches.len() as u64;
            out.batches.push(draw(self.seed + index, suites, &new));
        }
        out
    }

    /// Checks that every batch is the seeded draw of its own tasks, that no
    /// task is named twice, and that every named task exists in `suites`.
    pub fn check(&self, suites: &[Suite]) -> std::result::Result<(), String> {
        let existing: BTreeSet<&str> = suites
            .iter()
            .flat_map(|s| s.tasks.iter().map(|t| t.id.as_str()))
            .collect();
        let mut seen = BTreeSet::new();
        for (i, b) in self.batches.iter().enumerate() {
            let ids: BTreeSet<String> = b.development.iter().chain(&b.held_out).cloned().collect();
            for id in b.development.iter().chain(&b.held_out) {
                if !seen.insert(id.as_str()) {
                    return Err(format!("task {id:?} is named twice"));
                }
                if !existing.contains(id.as_str()) {
                    return Err(format!("batch {i} names {id:?}, which no suite has"));
                }
            }
            let drawn = draw(self.seed + i as u64, suites, &ids);
            if &drawn != b {
                return Err(format!(
                    "batch {i} is not the draw of seed {} + {i} over its tasks (was it edited by hand?)",
                    self.seed
                ));
            }
        }
        Ok(())
    }
}

/// The seeded draw of `ids`: each suite's tasks (in suite order, then by id)
/// shuffled and cut, the held-out half taking ⌊n/2⌋; each half listed in
/// suite order, then by id.
fn draw(seed: u64, suites: &[Suite], ids: &BTreeSet<String>) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_suite: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in suites {
        for t in s.tasks.iter().filter(|t| ids.contains(&t.id)) {
            by_suite.entry(s.name.as_str()).or_default().push(&t.id);
        }
    }
    let mut batch = Batch::default();
    for ids in by_suite.values_mut() {
        ids.sort_unstable();
        ids.shuffle(&mut rng);
        let cut = ids.len() / 2;
        let (held, dev) = ids.split_at(cut);
        let mut held: Vec<String> = held.iter().map(|s| s.to_string()).collect();
        let mut dev: Vec<String> = dev.iter().map(|s| s.to_string()).collect();
        held.sort();
        dev.sort();
        batch.held_out.extend(held);
        batch.development.extend(dev);
    }
    batch
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A fresh split of every task in `suites` (one batch).
pub fn generate(seed: u64, suites: &[Suite]) -> Split {
    Split {
        seed,
        batches: Vec::new(),
    }
    .extended(suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suites() -> Vec<Suite> {
        let suite = |name: &str, n: usize| {
            let tasks: String = (0..n)
                .map(|i| format!("  - {{id: {name}-{i}, turns: [hi]}}\n"))
                .collect();
            Suite::parse(
                &format!("suite: {name}\ntasks:\n{tasks}"),
                Path::new("x.yaml"),
            )
            .unwrap()
        };
        vec![suite("a", 7), suite("b", 10)]
    }

    #[test]
    fn each_suite_is_cut_in_two_and_the_draw_is_checked() {
        let s = suites();
        let split = generate(SEED, &s);
        assert_eq!(split.batches.len(), 1);
        let b = &split.batches[0];
        assert_eq!((b.held_out.len(), b.development.len()), (3 + 5, 4 + 5));
        assert_eq!(b.held_out.iter().filter(|t| t.starts_with("a-")).count(), 3);
        assert!(split.check(&s).is_ok());
        assert!(split.unassigned(&s).is_empty());
        // The file round-trips.
        let back: Split = toml::from_str(&split.to_toml()).unwrap();
        assert_eq!(back, split);
        // Another seed draws another split.
        assert_ne!(generate(SEED + 100, &s), split);
    }

    #[test]
    fn a_hand_edited_split_or_a_missing_task_fails_the_check() {
        let s = suites();
        let mut split = generate(SEED, &s);
        let moved = split.batches[0].held_out.remove(0);
        split.batches[0].development.push(moved);
        split.batches[0].development.sort();
        assert!(split.check(&s).unwrap_err().contains("not the draw"));

        let mut split = generate(SEED, &s);
        split.batches[0].held_out.push("ghost".into());
        assert!(split.check(&s).unwrap_err().contains("no suite has"));
    }

    #[test]
    fn tasks_added_later_form_a_new_batch_and_move_nothing() {
        let s = suites();
        let first = generate(SEED, &s);
        let mut grown = s.clone();
        let extra = Suite::parse(
            "suite: a\ntasks:\n  - {id: a-new-1, turns: [hi]}\n  - {id: a-new-2, turns: [hi]}\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        grown[0].tasks.extend(extra.tasks);
        assert_eq!(first.unassigned(&grown), ["a-new-1", "a-new-2"]);
        let next = first.extended(&grown);
        assert_eq!(next.batches[0], first.batches[0]);
        assert_eq!(next.batches.len(), 2);
        assert_eq!(
            next.batches[1].held_out.len() + next.batches[1].development.len(),
            2
        );
        assert!(next.check(&grown).is_ok());
    }
}
