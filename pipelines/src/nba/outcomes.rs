//! Outcomes: did the record an action concerned move forward within the
//! window after the rep acted on it (feedback `done`) or saw it (an
//! experiment exposure)? `rapport nba outcomes` runs [`link`] as a batch job.
//!
//! | record | outcome |
//! | --- | --- |
//! | deal | `deal_won` (closed won) or `deal_advanced` (a stage change) |
//! | lead | `lead_converted` |
//! | company | `account_renewed` (a deal of the account won) |
//! | task | `task_completed` |
//! | activity | `replied` (an outbound interaction with the same party after an inbound one) or `notes_logged` (a note after a meeting) |
//!
//! A `done` feedback whose window passed with nothing is closed as
//! `no_change`, so it is not checked again.

use chrono::{DateTime, Duration, Utc};
use rapport_crm::model::{ActivityKind, DealStatus, Direction, TaskStatus};
use rapport_crm::{Ctx, ExperimentEvent, Id, Store};
use serde::Serialize;

use super::rules::Rule;
use super::{NbaConfig, Result, World, load_world, parse_key};

/// What a batch run linked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutcomeReport {
    pub feedback_checked: usize,
    pub feedback_linked: usize,
    pub feedback_no_change: usize,
    pub exposures_checked: usize,
    pub events_recorded: usize,
}

/// The outcome of a record within `(since, until]`, if any.
pub fn outcome(
    world: &World,
    rule: Rule,
    record_type: &str,
    id: Id,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<(&'static str, DateTime<Utc>)> {
    let within = |t: DateTime<Utc>| t > since && t <= until;
    match record_type {
        "deal" => {
            let d = world.deals.iter().find(|d| d.id == id)?;
            if d.status == DealStatus::Won
                && let Some(t) = d.closed_at.filter(|t| within(*t))
            {
                return Some(("deal_won", t));
            }
            // A move between stages; the entry written at creation has no origin.
            world
                .stage_changes
                .iter()
                .filter(|c| c.deal_id == id && c.from_stage_id.is_some() && within(c.changed_at))
                .map(|c| ("deal_advanced", c.changed_at))
                .next()
        }
        "lead" => {
            let l = world.leads.iter().find(|l| l.id == id)?;
            l.converted_at
                .filter(|t| within(*t))
                .map(|t| ("lead_converted", t))
        }
        "company" => world
            .deals
            .iter()
            .filter(|d| d.company_id == Some(id) && d.status == DealStatus::Won)
            .filter_map(|d| d.closed_at.filter(|t| within(*t)))
            .min()
            .map(|t| ("account_renewed", t)),
        "task" => {
            let t = world.tasks.iter().find(|t| t.id == id)?;
            (t.status == TaskStatus::Done)
                .then_some(t.completed_at)
                .flatten()
                .filter(|c| within(*c))
                .map(|c| ("task_completed", c))
        }
        "activity" => {
            let a = world.activities.iter().find(|a| a.id == id)?;
            let same = |x: Option<Id>, y: Option<Id>| x.is_some() && x == y;
            let later = world.activities.iter().filter(|b| {
                b.id != a.id
                    && within(b.occurred_at)
                    && (same(a.contact_id, b.contact_id)
                        || same(a.lead_id, b.lead_id)
                        || same(a.deal_id, b.deal_id)
                        || same(a.company_id, b.company_id))
            });
            match rule {
                Rule::MeetingWithoutNotes => later
                    .filter(|b| b.kind == ActivityKind::Note)
                    .map(|b| ("notes_logged", b.occurred_at))
                    .min_by_key(|x| x.1),
                _ => later
                    .filter(|b| b.direction == Some(Direction::Outbound))
                    .map(|b| ("replied", b.occurred_at))
                    .min_by_key(|x| x.1),
            }
        }
        _ => None,
    }
}

/// Links outcomes to `done` feedback and to experiment exposures, in one
/// transaction.
pub async fn link(
    store: &Store,
    ctx: &Ctx,
    cfg: &NbaConfig,
    now: DateTime<Utc>,
) -> Result<OutcomeReport> {
    let world = load_world(store, ctx).await?;
    let window = Duration::seconds((cfg.outcome_window_days * 86_400.0) as i64);
    let mut report = OutcomeReport::default();
    let mut tx = store.begin().await?;

    for fb in store.nba_feedback_awaiting_outcome(ctx).await? {
        report.feedback_checked += 1;
        let Some(rule) = Rule::parse(&fb.rule) else {
            continue;
        };
        let until = (fb.created_at + window).min(now);
        match outcome(
            &world,
            rule,
            &fb.record_type,
            fb.record_id,
            fb.created_at,
            until,
        ) {
            Some((what, at)) => {
                tx.set_nba_outcome(ctx, fb.id, what, at).await?;
                report.feedback_linked += 1;
            }
            None if fb.created_at + window <= now => {
                tx.set_nba_outcome(ctx, fb.id, "no_change", now).await?;
                report.feedback_no_change += 1;
            }
            None => {}
        }
    }

    let names: Vec<String> = match &cfg.experiment {
        Some(_) => store
            .experiments(ctx)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect(),
        None => Vec::new(),
    };
    for name in names {
        for e in store.exposures(ctx, &name).await? {
            report.exposures_checked += 1;
            let Ok((rule, rt, id)) = parse_key(&e.item) else {
                continue;
            };
            let until = (e.at + window).min(now);
            if let Some((what, at)) = outcome(&world, rule, rt.name(), id, e.at, until) {
                let new = tx
                    .add_experiment_event(
                        ctx,
                        &ExperimentEvent {
                            experiment: name.clone(),
                            unit: e.unit.clone(),
                            item: e.item.clone(),
                            event: what.to_owned(),
                            at,
                        },
                    )
                    .await?;
                report.events_recorded += usize::from(new);
            }
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// Per-variant counts of an experiment from the store: trials are exposures,
/// successes exposures with at least one outcome event, units distinct units.
/// The control (first variant as stored) comes first.
pub async fn experiment_counts(
    store: &Store,
    ctx: &Ctx,
    name: &str,
) -> Result<Option<Vec<crate::experiments::Counts>>> {
    use std::collections::{BTreeMap, HashSet};
    let Some(exp) = store.experiment(ctx, name).await? else {
        return Ok(None);
    };
    let variants: Vec<crate::experiments::Variant> = serde_json::from_value(exp.variants)
        .map_err(|e| super::Error::Io(format!("experiment {name}: variants do not decode: {e}")))?;
    let events: HashSet<(String, String)> = store
        .experiment_events(ctx, name)
        .await?
        .into_iter()
        .map(|e| (e.unit, e.item))
        .collect();
    let mut per: BTreeMap<String, (HashSet<String>, u64, u64)> = BTreeMap::new();
    for e in store.exposures(ctx, name).await? {
        let entry = per.entry(e.variant.clone()).or_default();
        let success = events.contains(&(e.unit.clone(), e.item.clone()));
        entry.0.insert(e.unit);
        entry.1 += 1;
        entry.2 += u64::from(success);
    }
    Ok(Some(
        variants
            .iter()
            .map(|v| {
                let (units, trials, successes) = per.remove(&v.name).unwrap_or_default();
                crate::experiments::Counts {
                    variant: v.name.clone(),
                    units: units.len() as u64,
                    trials,
                    successes,
                }
            })
            .collect(),
    ))
}
