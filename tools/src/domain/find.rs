//! find_records: loose references ("Dana at Acme", an email) to records.

use super::*;

/// Record types a loose reference can name.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Findable {
    Contact,
    Company,
    Lead,
    Deal,
    User,
}

impl Findable {
    pub(super) fn record_type(self) -> RecordType {
        match self {
            Findable::Contact => RecordType::Contact,
            Findable::Company => RecordType::Company,
            Findable::Lead => RecordType::Lead,
            Findable::Deal => RecordType::Deal,
            Findable::User => RecordType::User,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    /// A name, an email, or "NAME at COMPANY" (e.g. "Dana at Acme").
    #[schemars(length(min = 1, max = 200))]
    pub query: String,
    /// Only these record types (default: contacts, companies, leads, deals, users).
    pub types: Option<Vec<Findable>>,
    /// At most this many candidates (default 10).
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
    /// The request needs exactly one record: fail with `ambiguous` and the
    /// candidates when several match about equally well, `not_found` when none do.
    pub expect_one: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Found {
    pub record_type: String,
    pub id: Id,
    /// What a person recognises it by.
    pub label: String,
    /// How well it matches, 0–1.
    pub score: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FindOutput {
    /// Best first.
    pub candidates: Vec<Found>,
}

/// Candidates this close to the best one are too close to choose between.
const AMBIGUITY_MARGIN: f64 = 0.05;

pub struct FindRecords;

impl Tool for FindRecords {
    type Args = FindArgs;
    type Output = FindOutput;

    fn name(&self) -> &'static str {
        "find_records"
    }
    fn description(&self) -> String {
        "Find records by a loose reference: a name, an email or \"NAME at COMPANY\". Returns ranked candidates with ids. Set expect_one when the request is about a single record: several close matches then fail with code ambiguous and the candidates, so ask the user which one instead of guessing.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"query": "Dana at Acme", "types": ["contact"], "expect_one": true})
    }
    async fn call(&self, cx: &mut Call, args: FindArgs) -> Result<FindOutput> {
        let query = LookupQuery {
            text: args.query.clone(),
            types: args
                .types
                .unwrap_or_default()
                .into_iter()
                .map(Findable::record_type)
                .collect(),
            limit: Some(args.limit.unwrap_or(10) as usize),
        };
        let found: Vec<Candidate> =
            cx.store
                .lookup(&cx.ctx, &query)
                .await
                .map_err(|e| match ToolError::from(e) {
                    err if err.field.as_deref() == Some("text") => err.with_field("query"),
                    err => err,
                })?;
        if args.expect_one == Some(true) {
            let Some(best) = found.first() else {
                return Err(
                    ToolError::not_found(format!("nothing matches {:?}", args.query))
                        .with_field("query")
                        .with_hint("check the spelling, or ask the user for an email or company"),
                );
            };
            let close: Vec<Candidate> = found
                .iter()
                .filter(|c| best.score - c.score <= AMBIGUITY_MARGIN)
                .cloned()
                .collect();
            if close.len() > 1 {
                return Err(ToolError::ambiguous(&args.query, close).with_field("query"));
            }
        }
        Ok(FindOutput {
            candidates: found
                .into_iter()
                .map(|c| Found {
                    record_type: c.record_type.name().to_owned(),
                    id: c.id,
                    label: c.label,
                    score: c.score,
                })
                .collect(),
        })
    }
}
