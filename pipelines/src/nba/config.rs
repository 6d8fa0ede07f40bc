//! The thresholds of the candidate rules and the ranking, with defaults. Every
//! field can be set in a config file (`serde(default)` fills what is left out).

use serde::{Deserialize, Serialize};

use super::rank::Strategy;
use crate::experiments::Variant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NbaConfig {
    /// Follow up a lead not contacted (outbound) for this many days…
    pub lead_followup_days: f64,
    /// …whose chance of converting is at least this.
    pub min_lead_probability: f64,
    /// A deal is stalled after this many times its stage's typical duration.
    pub stall_factor: f64,
    /// A stage's typical duration when history has fewer than `min_stage_samples` exits.
    pub default_stage_days: f64,
    pub min_stage_samples: usize,
    /// An inbound email or call is unanswered after this many hours…
    pub reply_within_hours: f64,
    /// …looking back this many days.
    pub inbound_lookback_days: f64,
    /// An account is at risk from this churn score on.
    pub churn_threshold: f64,
    /// Sentiment below this counts as negative…
    pub negative_sentiment: f64,
    /// …and this many negative interactions in a row (the latest ones) make a run…
    pub sentiment_run: usize,
    /// …within this many days.
    pub sentiment_lookback_days: f64,
    /// Meetings of the last this-many days are checked for notes…
    pub meeting_lookback_days: f64,
    /// …once this many hours have passed since they started.
    pub notes_grace_hours: f64,
    /// Won deals of the last this-many days need onboarding tasks.
    pub onboarding_window_days: f64,
    /// Value at stake of a lead with no open deal.
    pub default_lead_value: f64,
    /// Value at stake of an account with no won deal.
    pub default_account_value: f64,
    /// Value at stake of a task, meeting or email tied to no deal, lead or account value.
    pub default_value: f64,
    /// Chance that doing an overdue task (tied to no deal or lead) moves things forward.
    pub task_probability: f64,
    /// Chance that onboarding a fresh customer keeps them.
    pub onboarding_probability: f64,
    /// Urgency grows by 1 for every this-many days past a rule's threshold…
    pub urgency_scale_days: f64,
    /// …up to this.
    pub max_urgency: f64,
    /// Diversity: at most this many actions per account (company, or the record itself).
    pub max_per_account: usize,
    /// A dismissed action stays hidden this many days.
    pub dismiss_hides_days: f64,
    /// A done action stays hidden this many days.
    pub done_hides_days: f64,
    /// Outcomes count when they happen within this many days of the feedback or exposure.
    pub outcome_window_days: f64,
    /// The ranking when no experiment runs.
    pub strategy: Strategy,
    /// The experiment that assigns reps to ranking strategies (None: use `strategy`).
    pub experiment: Option<String>,
    /// Its variants, named after strategies; the first is the control.
    pub variants: Vec<Variant>,
}

impl Default for NbaConfig {
    fn default() -> Self {
        NbaConfig {
            lead_followup_days: 3.0,
            min_lead_probability: 0.2,
            stall_factor: 1.5,
            default_stage_days: 14.0,
            min_stage_samples: 5,
            reply_within_hours: 24.0,
            inbound_lookback_days: 14.0,
            churn_threshold: 0.5,
            negative_sentiment: -0.2,
            sentiment_run: 3,
            sentiment_lookback_days: 30.0,
            meeting_lookback_days: 14.0,
            notes_grace_hours: 4.0,
            onboarding_window_days: 30.0,
            default_lead_value: 5_000.0,
            default_account_value: 10_000.0,
            default_value: 1_000.0,
            task_probability: 0.5,
            onboarding_probability: 0.3,
            urgency_scale_days: 7.0,
            max_urgency: 3.0,
            max_per_account: 2,
            dismiss_hides_days: 30.0,
            done_hides_days: 7.0,
            outcome_window_days: 30.0,
            strategy: Strategy::ExpectedValue,
            experiment: Some(super::EXPERIMENT.to_owned()),
            variants: vec![
                Variant::new(Strategy::Urgency.as_str(), 1.0),
                Variant::new(Strategy::ExpectedValue.as_str(), 1.0),
            ],
        }
    }
}
