//! Read tools over the scores the pipelines write (`rapport score`): a lead's
//! conversion score and an account's churn risk, each with the model version
//! and the features that moved it most. Before a model exists they say so with
//! a structured `not_available` error naming the command to run; they never
//! make up a number.

use chrono::{DateTime, Utc};
use rapport_crm::{Id, RecordType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ErrorCode, Result, ToolError};
use crate::registry::Registry;
use crate::tool::{Call, Effect, Tool};

pub fn register(r: &mut Registry) {
    r.register(LeadScore);
    r.register(ChurnRisk);
}

/// One feature's push on the score, in log-odds (positive raises it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScoreReason {
    pub feature: String,
    pub contribution: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScoreOutput {
    pub record_type: String,
    pub record_id: Id,
    /// Probability 0–1 (of converting within the horizon, or of churning).
    pub score: f64,
    pub model_version: i64,
    pub scored_at: DateTime<Utc>,
    pub top_reasons: Vec<ScoreReason>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadIdArgs {
    pub lead_id: Id,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyIdArgs {
    pub company_id: Id,
}

pub struct LeadScore;
pub struct ChurnRisk;

impl Tool for LeadScore {
    type Args = LeadIdArgs;
    type Output = ScoreOutput;

    fn name(&self) -> &'static str {
        "lead_score"
    }
    fn description(&self) -> String {
        "A lead's predicted probability of converting within 90 days, from the current lead-score model, with the model version and the top reasons. Scores are refreshed by `rapport score`.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"lead_id": 1})
    }
    async fn call(&self, cx: &mut Call, a: LeadIdArgs) -> Result<ScoreOutput> {
        read_score(cx, "lead-score", RecordType::Lead, a.lead_id, "lead_id").await
    }
}

impl Tool for ChurnRisk {
    type Args = CompanyIdArgs;
    type Output = ScoreOutput;

    fn name(&self) -> &'static str {
        "churn_risk"
    }
    fn description(&self) -> String {
        "An account's (company's) predicted probability of churning, from the current churn model, with the model version and the top reasons. Scores are refreshed by `rapport score`.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"company_id": 1})
    }
    async fn call(&self, cx: &mut Call, a: CompanyIdArgs) -> Result<ScoreOutput> {
        read_score(cx, "churn", RecordType::Company, a.company_id, "company_id").await
    }
}

async fn read_score(
    cx: &mut Call,
    task: &str,
    rt: RecordType,
    id: Id,
    field: &str,
) -> Result<ScoreOutput> {
    cx.tx
        .get_dyn(&cx.ctx, rt, id)
        .await
        .map_err(|e| ToolError::from(e).with_field(field))?;
    let Some(s) = cx.store.score_of(&cx.ctx, task, rt, id).await? else {
        let trained = !cx
            .store
            .model_versions(&cx.ctx, Some(task))
            .await?
            .is_empty();
        let (message, hint) = if trained {
            (
                format!("{rt} {id} has no {task} score yet"),
                "run `rapport score` to score open leads and active accounts".to_owned(),
            )
        } else {
            (
                format!("no {task} model trained yet: run `rapport train {task}`"),
                format!("train a model with `rapport train {task}`, then `rapport score`"),
            )
        };
        return Err(ToolError::new(ErrorCode::NotAvailable, message).with_hint(hint));
    };
    let top_reasons = serde_json::from_value(s.reasons)
        .map_err(|e| ToolError::internal(format!("stored reasons do not decode: {e}")))?;
    Ok(ScoreOutput {
        record_type: s.record_type,
        record_id: s.record_id,
        score: s.score,
        model_version: s.model_version,
        scored_at: s.scored_at,
        top_reasons,
    })
}
