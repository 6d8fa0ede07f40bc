//! Ranking: a priority per candidate by the chosen strategy, then a greedy
//! pass that keeps one action per record and at most `max_per_account` per
//! account (diversity), up to the limit.

use std::collections::{HashMap, HashSet};

use rapport_crm::Id;
use serde::{Deserialize, Serialize};

use super::NbaConfig;
use super::rules::Candidate;

/// How candidates are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Chance that acting moves the record forward × value at stake × urgency.
    ExpectedValue,
    /// Urgency alone (how far past its threshold), value breaking ties: the
    /// "oldest fire first" baseline.
    Urgency,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::ExpectedValue => "expected_value",
            Strategy::Urgency => "urgency",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        [Strategy::ExpectedValue, Strategy::Urgency]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    pub fn priority(self, c: &Candidate) -> f64 {
        let f = &c.facts;
        match self {
            Strategy::ExpectedValue => f.probability * f.value * f.urgency,
            // Value enters only as a tie-breaker far below one urgency step.
            Strategy::Urgency => f.urgency + f.value.max(0.0).ln_1p() * 1e-6,
        }
    }
}

/// A ranked action: the candidate and its priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: usize,
    pub key: String,
    pub priority: f64,
    #[serde(flatten)]
    pub candidate: Candidate,
}

/// Orders candidates, keeps the best action per record, at most
/// `cfg.max_per_account` per account, and at most `limit` in all.
pub fn rank(
    mut candidates: Vec<Candidate>,
    strategy: Strategy,
    cfg: &NbaConfig,
    limit: usize,
) -> Vec<Ranked> {
    let mut scored: Vec<(f64, Candidate)> = candidates
        .drain(..)
        .map(|c| (strategy.priority(&c), c))
        .collect();
    // Ties broken by key so the order is the same on every run.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.key().cmp(&b.1.key())));
    let mut seen_records: HashSet<(&'static str, Id)> = HashSet::new();
    let mut per_account: HashMap<(&'static str, Id), usize> = HashMap::new();
    let mut out = Vec::new();
    for (priority, c) in scored {
        if out.len() >= limit {
            break;
        }
        if !seen_records.insert((c.record_type, c.record_id)) {
            continue;
        }
        let account = match c.company_id {
            Some(id) => ("company", id),
            None => (c.record_type, c.record_id),
        };
        let n = per_account.entry(account).or_default();
        if *n >= cfg.max_per_account {
            continue;
        }
        *n += 1;
        out.push(Ranked {
            rank: out.len() + 1,
            key: c.key(),
            priority,
            candidate: c,
        });
    }
    out
}
