//! The offline backtest (`rapport nba backtest DIR`): a leadforge bundle is
//! imported into a scratch SQLite database, every lead is ordered as of the
//! bundle's snapshot (its last event) and precision@k of converted leads is
//! compared across orders:
//!
//! - `nba`: the follow-up rule's expected-value priority (heuristic
//!   probability × value at stake × urgency), with no model;
//! - `nba_probability`: the heuristic probability alone;
//! - `recent_activity`: most recent interaction first;
//! - `random`: the mean over 200 seeded shuffles (its expectation is the base rate).
//!
//! Nothing after the snapshot is used: every lead is treated as open
//! (`working`), activities and deals count only if they happened by then, and
//! deal status (which the bundle records at its end) is ignored.

use std::path::Path;

use chrono::{DateTime, Utc};
use indicatif::MultiProgress;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rapport_crm::model::{Lead, LeadStatus};
use rapport_crm::{Ctx, Id, Source, Store};
use serde::Serialize;

use super::rules::{World, heuristic_lead_probability};
use super::{Error, NbaConfig, Result, load_world};
use crate::import::leadforge::import_bundle;

pub const KS: [usize; 5] = [50, 100, 250, 500, 1000];
const SHUFFLES: u64 = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub bundle: String,
    pub snapshot: DateTime<Utc>,
    pub leads: usize,
    pub converted: usize,
    pub base_rate: f64,
    pub ks: Vec<usize>,
    /// Order name → precision at each k.
    pub precision_at_k: Vec<OrderPrecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderPrecision {
    pub order: &'static str,
    pub precision: Vec<f64>,
    /// Ratio to the base rate at each k (lift).
    pub lift: Vec<f64>,
}

/// One lead as of the snapshot.
#[derive(Debug, Clone)]
pub struct LeadRow {
    pub id: Id,
    pub converted: bool,
    pub priority: f64,
    pub probability: f64,
    pub last_activity: Option<DateTime<Utc>>,
}

/// Scores every lead of a world as of `as_of` without looking past it.
pub fn lead_rows(world: &World, cfg: &NbaConfig, as_of: DateTime<Utc>) -> Vec<LeadRow> {
    use std::collections::HashMap;
    let mut acts: HashMap<Id, Vec<&rapport_crm::model::Activity>> = HashMap::new();
    for a in world.activities.iter().filter(|a| a.occurred_at <= as_of) {
        if let Some(l) = a.lead_id {
            acts.entry(l).or_default().push(a);
        }
    }
    let mut value: HashMap<Id, f64> = HashMap::new();
    for d in world.deals.iter().filter(|d| d.created_at <= as_of) {
        if let Some(l) = d.lead_id {
            *value.entry(l).or_default() += d.value;
        }
    }
    let empty = Vec::new();
    world
        .leads
        .iter()
        .filter(|l| l.created_at <= as_of)
        .map(|l: &Lead| {
            let mine = acts.get(&l.id).unwrap_or(&empty);
            let p = heuristic_lead_probability(LeadStatus::Working, mine.iter().copied(), as_of);
            let v = value
                .get(&l.id)
                .copied()
                .filter(|v| *v > 0.0)
                .unwrap_or(cfg.default_lead_value);
            // The last outbound contact, as the follow-up rule measures it.
            let last_out = mine
                .iter()
                .filter(|a| a.direction == Some(rapport_crm::model::Direction::Outbound))
                .map(|a| a.occurred_at)
                .max()
                .unwrap_or(l.created_at);
            let since = (as_of - last_out).num_seconds() as f64 / 86_400.0;
            let urgency = (1.0
                + (since - cfg.lead_followup_days).max(0.0) / cfg.urgency_scale_days)
                .min(cfg.max_urgency);
            LeadRow {
                id: l.id,
                converted: l.status == LeadStatus::Converted,
                priority: p * v * urgency,
                probability: p,
                last_activity: mine.iter().map(|a| a.occurred_at).max(),
            }
        })
        .collect()
}

fn precision(order: &[&LeadRow], k: usize) -> f64 {
    let k = k.min(order.len());
    if k == 0 {
        return 0.0;
    }
    order[..k].iter().filter(|r| r.converted).count() as f64 / k as f64
}

fn sorted_by<F: Fn(&LeadRow) -> f64>(rows: &[LeadRow], key: F) -> Vec<&LeadRow> {
    let mut v: Vec<&LeadRow> = rows.iter().collect();
    v.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.id.cmp(&b.id)));
    v
}

/// Precision@k of each order over the rows.
pub fn evaluate(rows: &[LeadRow], ks: &[usize]) -> Vec<OrderPrecision> {
    let base = rows.iter().filter(|r| r.converted).count() as f64 / rows.len().max(1) as f64;
    let lift = |p: &[f64]| {
        p.iter()
            .map(|x| if base > 0.0 { x / base } else { 0.0 })
            .collect()
    };
    let mut out = Vec::new();
    for (name, order) in [
        ("nba", sorted_by(rows, |r| r.priority)),
        ("nba_probability", sorted_by(rows, |r| r.probability)),
        (
            "recent_activity",
            sorted_by(rows, |r| {
                r.last_activity
                    .map_or(f64::NEG_INFINITY, |t| t.timestamp() as f64)
            }),
        ),
    ] {
        let p: Vec<f64> = ks.iter().map(|k| precision(&order, *k)).collect();
        out.push(OrderPrecision {
            order: name,
            lift: lift(&p),
            precision: p,
        });
    }
    let mut sums = vec![0.0; ks.len()];
    let mut order: Vec<&LeadRow> = rows.iter().collect();
    for seed in 0..SHUFFLES {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        for (s, k) in sums.iter_mut().zip(ks) {
            *s += precision(&order, *k);
        }
    }
    let p: Vec<f64> = sums.iter().map(|s| s / SHUFFLES as f64).collect();
    out.push(OrderPrecision {
        order: "random",
        lift: lift(&p),
        precision: p,
    });
    out
}

/// Imports `bundle` into a scratch database and evaluates the orders.
pub async fn run(bundle: &Path, cfg: &NbaConfig, bars: &MultiProgress) -> Result<BacktestReport> {
    let dir = tempfile::tempdir().map_err(|e| Error::Io(e.to_string()))?;
    let store = Store::connect(&Store::sqlite_url_in(dir.path())).await?;
    let ws = store.create_workspace("backtest").await?;
    let ctx = Ctx::new(ws.id, None, Source::Pipeline);
    let imported = import_bundle(&store, &ctx, bundle, bars).await?;
    let snapshot = imported
        .snapshot
        .ok_or_else(|| Error::Io("the bundle has no events, so no snapshot".into()))?;
    let world = load_world(&store, &ctx).await?;
    store.close().await;
    let rows = lead_rows(&world, cfg, snapshot);
    let converted = rows.iter().filter(|r| r.converted).count();
    Ok(BacktestReport {
        bundle: bundle.display().to_string(),
        snapshot,
        leads: rows.len(),
        converted,
        base_rate: converted as f64 / rows.len().max(1) as f64,
        ks: KS.to_vec(),
        precision_at_k: evaluate(&rows, &KS),
    })
}
