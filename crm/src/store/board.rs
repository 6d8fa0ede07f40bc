//! The pipeline board's column figures in one grouped query: per stage, how
//! many deals match, their total value and their probability-weighted value.
//! Computed in the database so a board over thousands of deals reads one row
//! per stage instead of every deal.

use sea_query::{Alias, Expr, Query};

use super::audit::f;
use super::conn::Conn;
use super::sql::{self, col, table};
use super::{Pool, Store};
use crate::error::Result;
use crate::filter::{self, Filter};
use crate::model::{Ctx, Id};
use crate::schema::{FieldDef, FieldType, RecordType};

/// One board column's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTotals {
    pub stage_id: Id,
    pub deals: i64,
    pub total_value: f64,
    pub weighted_value: f64,
}

const FIELDS: &[FieldDef] = &[
    f("stage_id", FieldType::Int),
    f("deals", FieldType::Int),
    f("total_value", FieldType::Float),
    f("weighted_value", FieldType::Float),
];

impl Store {
    /// Figures per stage of the deals matching `filter` (stages without a
    /// matching deal are absent).
    pub async fn deal_totals_by_stage(
        &self,
        ctx: &Ctx,
        filter: Option<&Filter>,
    ) -> Result<Vec<StageTotals>> {
        let def = RecordType::Deal.def();
        let checked = filter.map(|f| filter::check(def, f)).transpose()?;
        let rows = with_pooled!(self, |c| {
            let mut c = c;
            let mut q = Query::select();
            q.column(Alias::new("stage_id"))
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("deals"))
                .expr_as(Expr::cust("SUM(value)"), Alias::new("total_value"))
                .expr_as(
                    Expr::cust("SUM(value * probability)"),
                    Alias::new("weighted_value"),
                )
                .from(table(def))
                .and_where(col("workspace_id").eq(ctx.workspace_id))
                .group_by_col(Alias::new("stage_id"));
            if let Some(checked) = &checked {
                q.cond_where(sql::condition(checked, c.backend()));
            }
            c.fetch_maps(&q, FIELDS).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| StageTotals {
                stage_id: r["stage_id"].as_i64().unwrap_or_default(),
                deals: r["deals"].as_i64().unwrap_or_default(),
                total_value: r["total_value"].as_f64().unwrap_or_default(),
                weighted_value: r["weighted_value"].as_f64().unwrap_or_default(),
            })
            .collect())
    }
}
