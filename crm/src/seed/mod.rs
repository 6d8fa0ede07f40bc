//! The demo CRM: a realistic, deterministic book of business for a company that
//! sells accounts-payable and procurement software. Generation is pure (same
//! seed and date, same data) and separate from writing, so evaluations can
//! regenerate the ground truth — which topic and tone each activity was written
//! with — without reading it back from the database.
//!
//! `vocabulary` holds the words and sentences, `generate` turns a seed into
//! [`DemoData`] (pure), and `write` puts it into a workspace in one transaction.

mod generate;
mod vocabulary;
mod write;

pub use generate::generate;
pub use vocabulary::{COMPETITORS, SECURITY, SYSTEMS};
pub use write::write;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::model::{Ctx, Id, Pipeline, Stage};
use crate::schema::{RecordType, format_timestamp};
use crate::store::{NewStageChange, Store};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedParams {
    pub companies: usize,
    pub seed: u64,
    /// "Today" for the data: activities lie before it, tasks around it.
    pub as_of: DateTime<Utc>,
}

impl SeedParams {
    pub fn new(companies: usize, seed: u64) -> Self {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        SeedParams {
            companies,
            seed,
            as_of: today,
        }
    }
}

/// What the interaction is about; the ground truth for retrieval evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Pricing,
    SecurityReview,
    Integration,
    Timeline,
    Competitor,
    Renewal,
    Complaint,
    Praise,
    Onboarding,
    Contract,
}

pub const TOPICS: [Topic; 10] = [
    Topic::Pricing,
    Topic::SecurityReview,
    Topic::Integration,
    Topic::Timeline,
    Topic::Competitor,
    Topic::Renewal,
    Topic::Complaint,
    Topic::Praise,
    Topic::Onboarding,
    Topic::Contract,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone)]
pub struct UserSpec {
    pub name: String,
    pub email: String,
    pub role: &'static str,
}

#[derive(Debug, Clone)]
pub struct CompanySpec {
    pub name: String,
    pub domain: String,
    pub industry: &'static str,
    pub employees: i64,
    pub country: &'static str,
    pub city: &'static str,
    pub owner: usize,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ContactSpec {
    pub company: usize,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub title: &'static str,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct LeadSpec {
    pub name: String,
    pub email: String,
    pub company_name: String,
    pub title: &'static str,
    pub source: &'static str,
    pub status: &'static str,
    pub owner: usize,
    pub company: Option<usize>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DealSpec {
    pub company: usize,
    pub name: String,
    pub value: f64,
    /// Index into the default pipeline's stages; the path walked to get there.
    pub stage_path: Vec<usize>,
    pub stage_times: Vec<DateTime<Utc>>,
    pub expected_close: NaiveDate,
    pub owner: usize,
    pub contacts: Vec<usize>,
    pub close_reason: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ActivitySpec {
    pub kind: &'static str,
    pub direction: &'static str,
    pub subject: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub duration_seconds: Option<i64>,
    pub company: usize,
    pub contact: Option<usize>,
    pub deal: Option<usize>,
    pub owner: usize,
    pub topic: Topic,
    pub tone: Tone,
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub priority: &'static str,
    pub status: &'static str,
    pub assignee: usize,
    pub company: usize,
    pub contact: Option<usize>,
    pub deal: Option<usize>,
}

/// A generated CRM, records referring to each other by index.
#[derive(Debug, Clone, Default)]
pub struct DemoData {
    pub users: Vec<UserSpec>,
    pub companies: Vec<CompanySpec>,
    pub contacts: Vec<ContactSpec>,
    pub leads: Vec<LeadSpec>,
    pub deals: Vec<DealSpec>,
    pub activities: Vec<ActivitySpec>,
    pub tasks: Vec<TaskSpec>,
}

impl DemoData {
    pub fn len(&self) -> usize {
        self.users.len()
            + self.companies.len()
            + self.contacts.len()
            + self.leads.len()
            + self.deals.len()
            + self.activities.len()
            + self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids the written records received, by the index they had in [`DemoData`].
#[derive(Debug, Clone, Default)]
pub struct SeededIds {
    pub users: Vec<Id>,
    pub companies: Vec<Id>,
    pub contacts: Vec<Id>,
    pub leads: Vec<Id>,
    pub deals: Vec<Id>,
    pub activities: Vec<Id>,
    pub tasks: Vec<Id>,
}

/// The default sales pipeline: (name, win probability, outcome).
pub const DEFAULT_STAGES: [(&str, f64, &str); 6] = [
    ("Qualification", 0.1, "open"),
    ("Discovery", 0.2, "open"),
    ("Proposal", 0.4, "open"),
    ("Negotiation", 0.6, "open"),
    ("Closed Won", 1.0, "won"),
    ("Closed Lost", 0.0, "lost"),
];

/// Creates the default pipeline "Sales" with its stages.
pub async fn create_default_pipeline(store: &Store, ctx: &Ctx) -> Result<Pipeline> {
    let mut tx = store.begin().await?;
    let pipeline: Pipeline = tx
        .create(ctx, json!({"name": "Sales", "is_default": true}))
        .await?;
    for (position, (name, probability, outcome)) in DEFAULT_STAGES.iter().enumerate() {
        tx.create::<Stage>(
            ctx,
            json!({"pipeline_id": pipeline.id, "name": name, "position": position, "probability": probability, "outcome": outcome}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(pipeline)
}

/// A fixed date for reproducible fixtures (tests, evaluations).
pub fn fixed_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("valid date")
}

#[cfg(test)]
mod tests {
    use super::generate::company_name;
    use super::vocabulary::{Voice, voice};
    use super::*;

    fn params(n: usize) -> SeedParams {
        SeedParams {
            companies: n,
            seed: 7,
            as_of: fixed_date(),
        }
    }

    #[test]
    fn same_seed_same_data() {
        let a = generate(&params(20));
        let b = generate(&params(20));
        assert_eq!(a.activities.len(), b.activities.len());
        assert_eq!(a.activities[17].body, b.activities[17].body);
        let c = generate(&SeedParams {
            seed: 8,
            ..params(20)
        });
        assert_ne!(a.activities[17].body, c.activities[17].body);
    }

    #[test]
    fn a_hundred_companies_make_a_few_thousand_activities() {
        let d = generate(&params(100));
        assert!(
            (2000..5000).contains(&d.activities.len()),
            "{}",
            d.activities.len()
        );
        assert_eq!(d.companies[0].name, "Acme Logistics");
        assert_eq!(d.contacts[0].first_name, "Dana");
        assert!(d.activities.iter().all(|a| a.occurred_at < fixed_date()));
        // Every topic and tone is present, so search and sentiment have something to find.
        for t in TOPICS {
            assert!(d.activities.iter().any(|a| a.topic == t), "{t:?}");
        }
        let mut names: Vec<_> = d.companies.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 100, "company names are unique");
    }

    #[test]
    fn emails_are_written_by_one_side_to_the_other() {
        assert_eq!(
            voice(
                "They are worried about their budget, they said.",
                Voice::First
            ),
            "We are worried about our budget, we said."
        );
        assert_eq!(
            voice("They asked for pricing.", Voice::Second),
            "You asked for pricing."
        );
    }

    #[test]
    fn company_names_stay_unique_at_scale() {
        let mut names: Vec<String> = (0..10_000).map(|c| company_name(c).0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10_000);
    }
}
