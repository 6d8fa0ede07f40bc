//! Next-best actions: what a rep should do now, and why.
//!
//! - [`rules`]: candidate actions from the CRM's state, each with the numbers
//!   behind it (follow up a likely lead gone quiet, revive a stalled deal, a
//!   deal past its expected close, an overdue task, an unanswered inbound
//!   email or call, an account at risk, a meeting with no notes, a won deal
//!   with no onboarding task). They work before any model is trained (stage
//!   probabilities, a heuristic for leads) and use the `lead-score` and
//!   `churn` scores once `rapport score` wrote them.
//! - [`rank`]: priority by strategy (expected value = chance × value ×
//!   urgency, or urgency alone), one action per record, a per-account cap,
//!   a limit.
//! - [`for_rep`]: the library call behind `rapport nba`, the
//!   `next_best_actions` tool and the API: loads the world, hides actions the
//!   rep marked done, dismissed or snoozed, picks the rep's ranking strategy
//!   from the running experiment (hash assignment by rep) and ranks.
//! - [`outcomes`]: links outcomes to feedback and to experiment exposures
//!   (deal advanced, lead converted, account renewed… within a window).
//! - [`backtest`]: the offline check on a leadforge bundle.
//!
//! Reasons are one line built from the numbers in [`Facts`]; nothing in them
//! comes from a language model.

pub mod backtest;
mod config;
pub mod outcomes;
pub mod rank;
pub mod rules;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rapport_crm::model::User;
use rapport_crm::{
    Ctx, Exposure, Feedback, FeedbackStatus, Id, NewFeedback, RecordType, Store, Tx,
};
use serde::Serialize;

pub use config::NbaConfig;
pub use rank::{Ranked, Strategy};
pub use rules::{Candidate, Facts, Index, Rule, World};

use crate::experiments::{self, Variant};

/// The first experiment: which ranking strategy serves reps better.
pub const EXPERIMENT: &str = "nba-ranking";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Crm(#[from] rapport_crm::Error),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Import(#[from] crate::import::Error),
    #[error("{0}")]
    Io(String),
}

impl Error {
    fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A rep's ranked list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NbaList {
    pub rep_id: Id,
    pub rep: String,
    pub generated_at: DateTime<Utc>,
    pub strategy: Strategy,
    /// The experiment and variant that chose the strategy, if one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    pub candidates: usize,
    /// Candidates hidden because the rep marked them done, dismissed or snoozed.
    pub hidden_by_feedback: usize,
    /// Whether lead-score and churn scores were available.
    pub models: ModelsUsed,
    pub actions: Vec<Ranked>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelsUsed {
    pub lead_score: bool,
    pub churn: bool,
}

/// Reads what the rules need from the store.
pub async fn load_world(store: &Store, ctx: &Ctx) -> Result<World> {
    async fn all<T: serde::de::DeserializeOwned>(
        store: &Store,
        ctx: &Ctx,
        rt: RecordType,
    ) -> Result<Vec<T>> {
        store
            .all_rows(ctx, rt)
            .await?
            .into_iter()
            .map(|row| {
                serde_json::from_value(serde_json::Value::Object(row))
                    .map_err(|e| Error::Io(format!("a stored {rt} does not decode: {e}")))
            })
            .collect()
    }
    let scores = |task: &'static str, rt: RecordType| async move {
        Ok::<_, Error>(
            store
                .scores_of_task(ctx, task)
                .await?
                .into_iter()
                .filter(|(t, _, _)| t == rt.name())
                .map(|(_, id, s)| (id, s))
                .collect::<HashMap<Id, f64>>(),
        )
    };
    Ok(World {
        stages: all(store, ctx, RecordType::Stage).await?,
        stage_changes: store.all_stage_changes(ctx).await?,
        companies: all(store, ctx, RecordType::Company).await?,
        leads: all(store, ctx, RecordType::Lead).await?,
        deals: all(store, ctx, RecordType::Deal).await?,
        activities: all(store, ctx, RecordType::Activity).await?,
        tasks: all(store, ctx, RecordType::Task).await?,
        lead_scores: scores("lead-score", RecordType::Lead).await?,
        churn_scores: scores("churn", RecordType::Company).await?,
    })
}

/// The variants of the ranking experiment: as stored once it started (so a
/// changed config cannot move reps between arms), else the config's.
async fn variants(store: &Store, ctx: &Ctx, cfg: &NbaConfig, name: &str) -> Result<Vec<Variant>> {
    let stored = store.experiment(ctx, name).await?;
    let variants = match stored {
        Some(e) => serde_json::from_value(e.variants).map_err(|e| {
            Error::Io(format!(
                "experiment {name}: stored variants do not decode: {e}"
            ))
        })?,
        None => cfg.variants.clone(),
    };
    experiments::validate(&variants).map_err(|e| Error::invalid("variants", e.to_string()))?;
    for v in &variants {
        if Strategy::parse(&v.name).is_none() {
            return Err(Error::invalid(
                "variants",
                format!(
                    "variant {:?} is not a ranking strategy (expected_value, urgency)",
                    v.name
                ),
            ));
        }
    }
    Ok(variants)
}

/// The experiment unit of a rep.
pub fn unit_of(rep: Id) -> String {
    format!("rep:{rep}")
}

/// The strategy for a rep: the experiment's variant when one runs.
pub async fn strategy_for(
    store: &Store,
    ctx: &Ctx,
    cfg: &NbaConfig,
    rep: Id,
) -> Result<(Strategy, Option<String>)> {
    match &cfg.experiment {
        None => Ok((cfg.strategy, None)),
        Some(name) => {
            let vs = variants(store, ctx, cfg, name).await?;
            let v = experiments::assign(name, &unit_of(rep), &vs);
            let s = Strategy::parse(&v.name).expect("validated above");
            Ok((s, Some(name.clone())))
        }
    }
}

/// Whether the rep's latest feedback on an action hides it now.
pub fn hidden(fb: &Feedback, cfg: &NbaConfig, now: DateTime<Utc>) -> bool {
    let age = (now - fb.created_at).num_seconds() as f64 / 86_400.0;
    match fb.status {
        FeedbackStatus::Done => age < cfg.done_hides_days,
        FeedbackStatus::Dismissed => age < cfg.dismiss_hides_days,
        FeedbackStatus::Snoozed => fb.snoozed_until.is_some_and(|u| u > now),
    }
}

/// The ranked next-best actions of a rep as of `now`. Reads only; record
/// the exposures with [`record_exposures`] when the list is shown.
pub async fn for_rep(
    store: &Store,
    ctx: &Ctx,
    rep: Id,
    cfg: &NbaConfig,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<NbaList> {
    if limit == 0 || limit > 100 {
        return Err(Error::invalid("limit", "must be between 1 and 100"));
    }
    let user: User = store.get(ctx, rep).await?;
    let world = load_world(store, ctx).await?;
    let (strategy, experiment) = strategy_for(store, ctx, cfg, rep).await?;
    Ok(rank_for(
        &world,
        &user,
        cfg,
        limit,
        now,
        strategy,
        experiment,
        &store.nba_feedback(ctx, Some(rep)).await?,
    ))
}

/// [`for_rep`] on a loaded world (no I/O).
#[allow(clippy::too_many_arguments)]
pub fn rank_for(
    world: &World,
    user: &User,
    cfg: &NbaConfig,
    limit: usize,
    now: DateTime<Utc>,
    strategy: Strategy,
    experiment: Option<String>,
    feedback: &[Feedback],
) -> NbaList {
    let ix = Index::new(world);
    let all = rules::candidates(&ix, cfg, user.id, now);
    let n = all.len();
    // The latest feedback per action key is in force (rows come oldest first).
    let latest: HashMap<&str, &Feedback> = feedback
        .iter()
        .map(|f| (f.action_key.as_str(), f))
        .collect();
    let visible: Vec<Candidate> = all
        .into_iter()
        .filter(|c| {
            !latest
                .get(c.key().as_str())
                .is_some_and(|f| hidden(f, cfg, now))
        })
        .collect();
    let hidden_n = n - visible.len();
    NbaList {
        rep_id: user.id,
        rep: user.name.clone(),
        generated_at: now,
        strategy,
        experiment,
        candidates: n,
        hidden_by_feedback: hidden_n,
        models: ModelsUsed {
            lead_score: !world.lead_scores.is_empty(),
            churn: !world.churn_scores.is_empty(),
        },
        actions: rank::rank(visible, strategy, cfg, limit),
    }
}

/// Records that the rep saw the list (first exposure per action counts), in
/// the caller's transaction; a no-op without an experiment.
pub async fn record_exposures(
    tx: &mut Tx,
    ctx: &Ctx,
    cfg: &NbaConfig,
    list: &NbaList,
) -> Result<u64> {
    let Some(name) = &list.experiment else {
        return Ok(0);
    };
    tx.ensure_experiment(
        ctx,
        name,
        "rep",
        &serde_json::to_value(&cfg.variants).expect("variants serialize"),
    )
    .await?;
    let exposures: Vec<Exposure> = list
        .actions
        .iter()
        .map(|a| Exposure {
            experiment: name.clone(),
            unit: unit_of(list.rep_id),
            item: a.key.clone(),
            variant: list.strategy.as_str().to_owned(),
            at: list.generated_at,
        })
        .collect();
    Ok(tx.add_exposures(ctx, &exposures).await?)
}

/// Feedback as a rep gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackInput {
    /// `rule:record_type:record_id`, as listed with each action.
    pub action_key: String,
    pub status: FeedbackStatus,
    pub reason: Option<String>,
    pub until: Option<DateTime<Utc>>,
}

/// Parses an action key into its rule, record type and id.
pub fn parse_key(key: &str) -> Result<(Rule, RecordType, Id)> {
    let bad = || {
        Error::invalid(
            "action_key",
            format!(
                "{key:?} is not an action key (RULE:RECORD_TYPE:ID, e.g. overdue_task:task:12)"
            ),
        )
    };
    let mut parts = key.split(':');
    let (Some(rule), Some(rt), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let rule = Rule::parse(rule).ok_or_else(bad)?;
    let rt = RecordType::parse(rt).map_err(|_| bad())?;
    let id = id.parse::<Id>().map_err(|_| bad())?;
    Ok((rule, rt, id))
}

/// Checks and records a rep's feedback in the caller's transaction: the key
/// must parse, the record must exist, a snooze needs a future end, and a
/// reason belongs to dismissals.
pub async fn record_feedback(
    tx: &mut Tx,
    ctx: &Ctx,
    rep: Id,
    input: &FeedbackInput,
    now: DateTime<Utc>,
) -> Result<Feedback> {
    let (rule, rt, id) = parse_key(&input.action_key)?;
    tx.get_dyn(ctx, rt, id).await?;
    match (input.status, input.until) {
        (FeedbackStatus::Snoozed, None) => {
            return Err(Error::invalid("until", "a snooze needs the time it ends"));
        }
        (FeedbackStatus::Snoozed, Some(u)) if u <= now => {
            return Err(Error::invalid("until", format!("{u} is not in the future")));
        }
        (FeedbackStatus::Snoozed, Some(u)) if u > now + Duration::days(365) => {
            return Err(Error::invalid("until", "snooze for at most a year"));
        }
        (FeedbackStatus::Done | FeedbackStatus::Dismissed, Some(_)) => {
            return Err(Error::invalid("until", "only a snooze has an end time"));
        }
        _ => {}
    }
    if input.reason.is_some() && input.status != FeedbackStatus::Dismissed {
        return Err(Error::invalid("reason", "only a dismissal takes a reason"));
    }
    if input
        .reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(Error::invalid("reason", "at most 500 characters"));
    }
    Ok(tx
        .add_nba_feedback(
            ctx,
            &NewFeedback {
                user_id: rep,
                action_key: input.action_key.clone(),
                rule: rule.as_str().to_owned(),
                record_type: rt.name().to_owned(),
                record_id: id,
                status: input.status,
                reason: input.reason.clone(),
                snoozed_until: input.until,
            },
        )
        .await?)
}

#[cfg(test)]
mod tests;
