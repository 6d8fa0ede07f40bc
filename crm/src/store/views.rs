//! What record tables need beyond a page of rows: how many rows a filter
//! matches, and saved views (a table's filter, sort and columns kept under a
//! name, personal or shared with the workspace).
//!
//! A view's query is opaque JSON to this module: the web app decides its
//! shape and checks it again whenever it is used, so a view saved before a
//! field was renamed fails as a bad filter, not as a crash.

use chrono::{DateTime, Utc};
use sea_query::{Alias, Cond, Expr, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::f;
use super::conn::Conn;
use super::records::now;
use super::sql::{self, col, table, value, value_as};
use super::{Pool, Store};
use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::model::{Ctx, Id};
use crate::schema::{FieldDef, FieldType, RecordType, Scalar};

/// A saved view of a record table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedView {
    pub id: Id,
    pub workspace_id: Id,
    /// Who saved it (and alone may delete it).
    pub user_id: Id,
    pub record_type: String,
    pub name: String,
    /// Seen by the whole workspace, not only its owner.
    pub shared: bool,
    pub query: Value,
    pub created_at: DateTime<Utc>,
}

const FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("workspace_id", FieldType::Id),
    f("user_id", FieldType::Int),
    f("record_type", FieldType::Text),
    f("name", FieldType::Text),
    f("shared", FieldType::Bool),
    f("query", FieldType::Json),
    f("created_at", FieldType::Timestamp),
];

fn select(ctx: &Ctx) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|fd| Alias::new(fd.name)))
        .from(Alias::new("saved_views"))
        .and_where(col("workspace_id").eq(ctx.workspace_id));
    q
}

/// Views the context's user may see: their own and the shared ones.
fn visible(ctx: &Ctx) -> Cond {
    let mut c = Cond::any().add(col("shared").eq(true));
    if let Some(me) = ctx.actor_id {
        c = c.add(col("user_id").eq(me));
    }
    c
}

async fn fetch(mut conn: Conn<'_>, q: &sea_query::SelectStatement) -> Result<Vec<SavedView>> {
    conn.fetch_maps(q, FIELDS)
        .await?
        .into_iter()
        .map(super::records::from_map)
        .collect()
}

fn not_found(id: Id) -> Error {
    Error::invalid("view", format!("no saved view {id} that you can see"))
}

impl Store {
    /// How many records of a type match `filter` (all of them without one).
    pub async fn count_dyn(
        &self,
        ctx: &Ctx,
        rt: RecordType,
        filter: Option<&Filter>,
    ) -> Result<i64> {
        let def = rt.def();
        let checked = filter.map(|f| filter::check(def, f)).transpose()?;
        with_pooled!(self, |c| {
            let mut c = c;
            let mut q = Query::select();
            q.expr(Expr::cust("COUNT(*)"))
                .from(table(def))
                .and_where(col("workspace_id").eq(ctx.workspace_id));
            if let Some(checked) = &checked {
                q.cond_where(sql::condition(checked, c.backend()));
            }
            Ok(c.fetch_int(&q).await?.unwrap_or_default())
        })
    }

    /// Saves a view of `rt`'s table for the context's user.
    pub async fn save_view(
        &self,
        ctx: &Ctx,
        rt: RecordType,
        name: &str,
        shared: bool,
        query: &Value,
    ) -> Result<SavedView> {
        let owner = ctx
            .actor_id
            .ok_or_else(|| Error::invalid("user_id", "a view belongs to a user"))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(Error::invalid(
                "name",
                "a view's name is 1 to 80 characters",
            ));
        }
        let mut q = Query::insert();
        q.into_table(Alias::new("saved_views"))
            .columns(
                [
                    "workspace_id",
                    "user_id",
                    "record_type",
                    "name",
                    "shared",
                    "query",
                    "created_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                ctx.workspace_id.into(),
                owner.into(),
                rt.name().into(),
                name.into(),
                shared.into(),
                value_as(FieldType::Json, &Scalar::Json(query.clone())).into(),
                value(&Scalar::Timestamp(now())).into(),
            ])
            .returning_col(Alias::new("id"));
        let saved: Result<Option<SavedView>> = in_tx!(self, |tx| {
            let id = tx.conn().fetch_int(&q).await?.unwrap_or_default();
            let mut sel = select(ctx);
            sel.and_where(col("id").eq(id));
            fetch(tx.conn(), &sel).await?.pop()
        });
        saved?.ok_or_else(|| Error::Internal("saved view vanished after insert".into()))
    }

    /// The views of `rt`'s table the context's user may see, by name.
    pub async fn views(&self, ctx: &Ctx, rt: RecordType) -> Result<Vec<SavedView>> {
        let mut q = select(ctx);
        q.and_where(col("record_type").eq(rt.name()))
            .cond_where(visible(ctx))
            .order_by(Alias::new("name"), Order::Asc)
            .order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q).await)
    }

    /// One view the context's user may see.
    pub async fn view(&self, ctx: &Ctx, id: Id) -> Result<SavedView> {
        let mut q = select(ctx);
        q.and_where(col("id").eq(id)).cond_where(visible(ctx));
        let found: Result<Vec<SavedView>> = with_pooled!(self, |c| fetch(c, &q).await);
        found?.pop().ok_or_else(|| not_found(id))
    }

    /// Deletes a view; only its owner may.
    pub async fn delete_view(&self, ctx: &Ctx, id: Id) -> Result<SavedView> {
        let view = self.view(ctx, id).await?;
        if Some(view.user_id) != ctx.actor_id {
            return Err(Error::invalid(
                "view",
                "only the person who saved a view may delete it",
            ));
        }
        let mut q = Query::delete();
        q.from_table(Alias::new("saved_views"))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("id").eq(id));
        let done: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        done?;
        Ok(view)
    }
}
