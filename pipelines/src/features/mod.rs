//! Feature tables built from the crm database as of a snapshot instant, with
//! Polars lazy queries: nothing that happened after the snapshot (activities,
//! deals, conversions) reaches a feature. The same code builds the training
//! rows (snapshot in the past, label from what followed) and the scoring rows
//! (snapshot now).
//!
//! Per lead: age, source, firmographics of its company and its contact's role,
//! activity counts by kind, direction and window (7 / 30 days, all), recency,
//! web sessions and pricing/demo page views, sentiment, meetings set, deals
//! (count, open value, age) and the owner's workload. Per account: the same
//! activity and deal aggregates over the company, firmographics, and its custom
//! attributes.

pub mod bench;
mod frames;

use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use rapport_crm::{Ctx, RecordType, Store};

use crate::registry::{Error, Result};
use crate::train::Table;
pub use frames::Snapshot;

pub const DAY_MS: i64 = 86_400_000;

/// The custom attribute (or tag) marking a churned account.
pub const CHURN_KEY: &str = "churned";

/// Reads what the features need from the database, once.
pub async fn load(store: &Store, ctx: &Ctx) -> Result<Snapshot> {
    Ok(Snapshot {
        leads: frames::records(store.all_rows(ctx, RecordType::Lead).await?, &frames::LEAD)?,
        activities: frames::records(
            store.all_rows(ctx, RecordType::Activity).await?,
            &frames::ACTIVITY,
        )?,
        deals: frames::records(store.all_rows(ctx, RecordType::Deal).await?, &frames::DEAL)?,
        companies: frames::companies(store.all_rows(ctx, RecordType::Company).await?)?,
        contacts: frames::records(
            store.all_rows(ctx, RecordType::Contact).await?,
            &frames::CONTACT,
        )?,
    })
}

fn pe(e: PolarsError) -> Error {
    Error::Data(format!("feature pipeline: {e}"))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Days from the instant in column `e` to the snapshot `as_of`.
fn days_before(as_of: i64, e: Expr) -> Expr {
    (lit(as_of) - e).cast(DataType::Float64) / lit(DAY_MS as f64)
}

/// Activity aggregates per `key` (lead_id or company_id) as of `as_of`.
fn activity_aggregates(acts: LazyFrame, key: &str, as_of: i64) -> LazyFrame {
    let count_if = |e: Expr, name: &str| e.cast(DataType::Float64).sum().alias(name);
    let within = |days: i64| col("occurred_ms").gt(lit(as_of - days * DAY_MS));
    acts.filter(
        col("occurred_ms")
            .lt_eq(lit(as_of))
            .and(col(key).is_not_null()),
    )
    .group_by([col(key)])
    .agg([
        col("occurred_ms")
            .count()
            .cast(DataType::Float64)
            .alias("activities"),
        count_if(col("kind").eq(lit("email")), "emails"),
        count_if(col("kind").eq(lit("call")), "calls"),
        count_if(col("kind").eq(lit("meeting")), "meetings"),
        count_if(col("kind").eq(lit("note")), "notes"),
        count_if(col("direction").eq(lit("inbound")), "inbound"),
        count_if(col("direction").eq(lit("outbound")), "outbound"),
        count_if(within(7), "activities_7d"),
        count_if(within(30), "activities_30d"),
        count_if(
            within(7).and(col("direction").eq(lit("inbound"))),
            "inbound_7d",
        ),
        count_if(col("is_session"), "web_sessions"),
        col("pricing_page_views").sum().alias("pricing_page_views"),
        col("demo_page_views").sum().alias("demo_page_views"),
        col("duration_seconds").sum().alias("duration_seconds"),
        count_if(col("positive_outcome"), "positive_outcomes"),
        col("sentiment").mean().alias("sentiment_mean"),
        col("sentiment").min().alias("sentiment_min"),
        days_before(as_of, col("occurred_ms").max()).alias("days_since_last_activity"),
        days_before(as_of, col("occurred_ms").min()).alias("days_since_first_activity"),
    ])
}

/// Deal aggregates per `key` as of `as_of`: a deal counts as open unless it
/// closed by then.
fn deal_aggregates(deals: LazyFrame, key: &str, as_of: i64) -> LazyFrame {
    let closed_by = col("closed_ms")
        .is_not_null()
        .and(col("closed_ms").lt_eq(lit(as_of)));
    let open = closed_by.clone().not();
    deals
        .filter(
            col("created_ms")
                .lt_eq(lit(as_of))
                .and(col(key).is_not_null()),
        )
        .group_by([col(key)])
        .agg([
            col("created_ms")
                .count()
                .cast(DataType::Float64)
                .alias("deals"),
            open.clone()
                .cast(DataType::Float64)
                .sum()
                .alias("open_deals"),
            closed_by
                .clone()
                .and(col("status").eq(lit("won")))
                .cast(DataType::Float64)
                .sum()
                .alias("won_deals"),
            closed_by
                .and(col("status").eq(lit("lost")))
                .cast(DataType::Float64)
                .sum()
                .alias("lost_deals"),
            when(open.clone())
                .then(col("value"))
                .otherwise(lit(0.0))
                .sum()
                .alias("open_deal_value"),
            col("value").max().alias("max_deal_value"),
            days_before(as_of, col("created_ms").min()).alias("oldest_deal_days"),
        ])
}

const ZERO_IF_MISSING: &[&str] = &[
    "activities",
    "emails",
    "calls",
    "meetings",
    "notes",
    "inbound",
    "outbound",
    "activities_7d",
    "activities_30d",
    "inbound_7d",
    "web_sessions",
    "pricing_page_views",
    "demo_page_views",
    "duration_seconds",
    "positive_outcomes",
    "deals",
    "open_deals",
    "won_deals",
    "lost_deals",
    "open_deal_value",
];

fn zero_fill(lf: LazyFrame) -> LazyFrame {
    lf.with_columns(
        ZERO_IF_MISSING
            .iter()
            .map(|c| col(*c).fill_null(lit(0.0)))
            .collect::<Vec<_>>(),
    )
}

/// One row per lead that existed at `as_of` and had not converted by then:
/// `lead_id`, the features, and (for training) `converted_ms`.
pub fn lead_frame(s: &Snapshot, as_of: DateTime<Utc>) -> Result<DataFrame> {
    let t = ms(as_of);
    let leads = s
        .leads
        .clone()
        .lazy()
        .filter(col("created_ms").lt_eq(lit(t)))
        .filter(
            col("converted_ms")
                .is_null()
                .or(col("converted_ms").gt(lit(t))),
        );
    // Open leads per owner at the snapshot: the rep's workload.
    let workload = leads
        .clone()
        .filter(col("owner_id").is_not_null())
        .group_by([col("owner_id")])
        .agg([col("id")
            .count()
            .cast(DataType::Float64)
            .alias("owner_open_leads")]);
    let acts = activity_aggregates(s.activities.clone().lazy(), "lead_id", t);
    let deals = deal_aggregates(s.deals.clone().lazy(), "lead_id", t);
    let companies = s.companies.clone().lazy().select([
        col("id").alias("company_id"),
        col("industry"),
        col("country"),
        col("employees"),
        col("annual_revenue"),
        col("employee_band"),
        col("revenue_band"),
        col("process_maturity_band"),
    ]);
    let contacts = s.contacts.clone().lazy().select([
        col("id").alias("contact_id"),
        col("title"),
        col("role_function"),
        col("seniority"),
        col("buyer_role"),
    ]);
    let left = || JoinArgs::new(JoinType::Left);
    let out = leads
        .with_columns([
            days_before(t, col("created_ms")).alias("lead_age_days"),
            col("id").alias("lead_id"),
        ])
        .join(acts, [col("lead_id")], [col("lead_id")], left())
        .join(deals, [col("lead_id")], [col("lead_id")], left())
        .join(workload, [col("owner_id")], [col("owner_id")], left())
        .join(companies, [col("company_id")], [col("company_id")], left())
        .join(contacts, [col("contact_id")], [col("contact_id")], left());
    zero_fill(out)
        .select([
            col("lead_id"),
            col("converted_ms"),
            col("split"),
            col("source"),
            col("lead_age_days"),
            col("owner_open_leads"),
            col("industry"),
            col("country"),
            col("employees"),
            col("annual_revenue"),
            col("employee_band"),
            col("revenue_band"),
            col("process_maturity_band"),
            col("role_function"),
            col("seniority"),
            col("buyer_role"),
            all()
                .exclude_cols([
                    "lead_id",
                    "converted_ms",
                    "split",
                    "source",
                    "lead_age_days",
                    "owner_open_leads",
                    "industry",
                    "country",
                    "employees",
                    "annual_revenue",
                    "employee_band",
                    "revenue_band",
                    "process_maturity_band",
                    "role_function",
                    "seniority",
                    "buyer_role",
                    "id",
                    "created_ms",
                    "owner_id",
                    "company_id",
                    "contact_id",
                    "status",
                    "title",
                ])
                .as_expr(),
        ])
        .collect()
        .map_err(pe)
}

/// One row per company that existed at `as_of`: `company_id`, the label
/// column `churned` (from the custom attribute), and the features.
pub fn account_frame(s: &Snapshot, as_of: DateTime<Utc>) -> Result<DataFrame> {
    let t = ms(as_of);
    let acts = activity_aggregates(s.activities.clone().lazy(), "company_id", t);
    let deals = deal_aggregates(s.deals.clone().lazy(), "company_id", t);
    let contacts = s
        .contacts
        .clone()
        .lazy()
        .filter(
            col("created_ms")
                .lt_eq(lit(t))
                .and(col("company_id").is_not_null()),
        )
        .group_by([col("company_id")])
        .agg([col("id").count().cast(DataType::Float64).alias("contacts")]);
    let left = || JoinArgs::new(JoinType::Left);
    let out = s
        .companies
        .clone()
        .lazy()
        .filter(col("created_ms").lt_eq(lit(t)))
        .with_columns([
            col("id").alias("company_id"),
            days_before(t, col("created_ms")).alias("account_age_days"),
        ])
        .join(acts, [col("company_id")], [col("company_id")], left())
        .join(deals, [col("company_id")], [col("company_id")], left())
        .join(contacts, [col("company_id")], [col("company_id")], left());
    zero_fill(out)
        .with_column(col("contacts").fill_null(lit(0.0)))
        .select([all().exclude_cols(["id", "created_ms", "name"]).as_expr()])
        .collect()
        .map_err(pe)
}

/// Columns that identify or label a row rather than describe it.
const NOT_FEATURES: &[&str] = &["lead_id", "company_id", "converted_ms", "split", CHURN_KEY];

/// Lead-score training rows: leads open at `as_of`, labelled by whether they
/// converted within `horizon` after it.
pub fn lead_training_table(
    s: &Snapshot,
    as_of: DateTime<Utc>,
    horizon: Duration,
) -> Result<(Table, Vec<i64>, Vec<String>)> {
    let df = lead_frame(s, as_of)?;
    let end = ms(as_of + horizon);
    let converted = df
        .column("converted_ms")
        .map_err(pe)?
        .as_materialized_series()
        .i64()
        .map_err(pe)?
        .clone();
    let labels: Vec<bool> = converted
        .iter()
        .map(|c| c.is_some_and(|c| c <= end))
        .collect();
    let ids = int_column(&df, "lead_id")?;
    let splits = text_column(&df, "split")?;
    let mut table = Table::from_frame(&df, None, &owned(NOT_FEATURES))?;
    table.target = Some(labels);
    Ok((table, ids, splits))
}

/// Scoring rows for open leads as of `as_of`.
pub fn lead_scoring_table(s: &Snapshot, as_of: DateTime<Utc>) -> Result<(Table, Vec<i64>)> {
    let df = lead_frame(s, as_of)?;
    let ids = int_column(&df, "lead_id")?;
    Ok((Table::from_frame(&df, None, &owned(NOT_FEATURES))?, ids))
}

/// Churn rows: every account at `as_of`, labelled by its `churned` attribute.
pub fn account_table(
    s: &Snapshot,
    as_of: DateTime<Utc>,
) -> Result<(Table, Vec<i64>, Vec<Option<bool>>)> {
    let df = account_frame(s, as_of)?;
    let ids = int_column(&df, "company_id")?;
    let labels = text_column(&df, CHURN_KEY)
        .unwrap_or_else(|_| vec![String::new(); df.height()])
        .into_iter()
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        })
        .collect();
    Ok((
        Table::from_frame(&df, None, &owned(NOT_FEATURES))?,
        ids,
        labels,
    ))
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn int_column(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    let s = df
        .column(name)
        .map_err(pe)?
        .as_materialized_series()
        .cast(&DataType::Int64)
        .map_err(pe)?;
    Ok(s.i64()
        .map_err(pe)?
        .iter()
        .map(|v| v.unwrap_or_default())
        .collect())
}

fn text_column(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let s = df
        .column(name)
        .map_err(pe)?
        .as_materialized_series()
        .cast(&DataType::String)
        .map_err(pe)?;
    Ok(s.str()
        .map_err(pe)?
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect())
}

/// The latest activity in the data, capped at now: "as of the latest data".
pub fn latest_event(s: &Snapshot) -> Option<DateTime<Utc>> {
    let max = occurred_ms(s)?.max()?;
    DateTime::from_timestamp_millis(max).map(|t| t.min(Utc::now()))
}

/// The earliest activity in the snapshot: where a model's training window
/// starts (nothing older can have informed it).
pub fn earliest_event(s: &Snapshot) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(occurred_ms(s)?.min()?)
}

fn occurred_ms(s: &Snapshot) -> Option<&Int64Chunked> {
    s.activities
        .column("occurred_ms")
        .ok()?
        .as_materialized_series()
        .i64()
        .ok()
}
