//! The two backends behind one connection type. Everything above this module is
//! written once; here each call is dispatched to SQLite or PostgreSQL, with the
//! matching SQL dialect and row decoder.

use chrono::{DateTime, NaiveDate, Utc};
use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_binder::{SqlxBinder, SqlxValues};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, PgConnection, Row, SqliteConnection, Type};

use crate::error::{Error, Result};
use crate::schema::{FieldDef, FieldType, format_timestamp};

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A borrowed connection (from the pool or inside a transaction).
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl Conn<'_> {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }

    fn build<S: SqlxBinder>(&self, stmt: &S) -> (String, SqlxValues) {
        match self {
            Conn::Sqlite(_) => stmt.build_sqlx(SqliteQueryBuilder),
            Conn::Postgres(_) => stmt.build_sqlx(PostgresQueryBuilder),
        }
    }

    /// Runs a statement and returns the number of rows it touched.
    pub async fn execute<S: SqlxBinder>(&mut self, stmt: &S) -> Result<u64> {
        let (sql, values) = self.build(stmt);
        tracing::trace!(%sql, "execute");
        let done = match self {
            Conn::Sqlite(c) => sqlx::query_with(&sql, values)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
            Conn::Postgres(c) => sqlx::query_with(&sql, values)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(map_db_error)
    }

    /// Runs a query and decodes every row into a JSON object by the given fields.
    pub async fn fetch_maps<S: SqlxBinder>(
        &mut self,
        stmt: &S,
        fields: &[FieldDef],
    ) -> Result<Vec<Map<String, Value>>> {
        let (sql, values) = self.build(stmt);
        tracing::trace!(%sql, "fetch");
        match self {
            Conn::Sqlite(c) => {
                let rows = sqlx::query_with(&sql, values)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(map_db_error)?;
                rows.iter().map(|r| decode_row(r, fields)).collect()
            }
            Conn::Postgres(c) => {
                let rows = sqlx::query_with(&sql, values)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(map_db_error)?;
                rows.iter().map(|r| decode_row(r, fields)).collect()
            }
        }
    }

    /// Runs a query whose rows are a single integer column (ids, counts).
    pub async fn fetch_ints<S: SqlxBinder>(&mut self, stmt: &S) -> Result<Vec<i64>> {
        let (sql, values) = self.build(stmt);
        tracing::trace!(%sql, "fetch ints");
        let rows = match self {
            Conn::Sqlite(c) => sqlx::query_with(&sql, values)
                .fetch_all(&mut **c)
                .await
                .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()),
            Conn::Postgres(c) => sqlx::query_with(&sql, values)
                .fetch_all(&mut **c)
                .await
                .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()),
        };
        rows.map_err(map_db_error)
    }

    pub async fn fetch_int<S: SqlxBinder>(&mut self, stmt: &S) -> Result<Option<i64>> {
        Ok(self.fetch_ints(stmt).await?.into_iter().next())
    }
}

/// Decodes one row into a JSON object, column by column, by declared type.
fn decode_row<'r, R>(row: &'r R, fields: &[FieldDef]) -> Result<Map<String, Value>>
where
    R: Row,
    usize: ColumnIndex<R>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    Option<DateTime<Utc>>: Decode<'r, R::Database> + Type<R::Database>,
    Option<NaiveDate>: Decode<'r, R::Database> + Type<R::Database>,
    Option<Json<Value>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut map = Map::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let value = match f.ty {
            FieldType::Id | FieldType::Int | FieldType::Ref(_) => {
                row.try_get::<Option<i64>, _>(i)?.map(Value::from)
            }
            FieldType::Float => row.try_get::<Option<f64>, _>(i)?.map(Value::from),
            FieldType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            FieldType::Text | FieldType::Email | FieldType::Enum(_) => {
                row.try_get::<Option<String>, _>(i)?.map(Value::String)
            }
            FieldType::Timestamp => row
                .try_get::<Option<DateTime<Utc>>, _>(i)?
                .map(|t| Value::String(format_timestamp(&t))),
            FieldType::Date => row
                .try_get::<Option<NaiveDate>, _>(i)?
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
            FieldType::Json => row.try_get::<Option<Json<Value>>, _>(i)?.map(|j| j.0),
        };
        map.insert(f.name.to_owned(), value.unwrap_or(Value::Null));
    }
    Ok(map)
}

/// Turns constraint violations into errors a caller can act on. The store checks
/// uniqueness and references itself before writing, so these are the backstop
/// for races between concurrent writers.
pub fn map_db_error(err: sqlx::Error) -> Error {
    use sqlx::error::ErrorKind;
    if let sqlx::Error::Database(db) = &err {
        let detail = db.message().to_owned();
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return Error::Conflict(format!(
                    "a record with the same unique value exists ({detail})"
                ));
            }
            ErrorKind::ForeignKeyViolation => {
                return Error::Conflict(format!(
                    "a referenced record is missing or still referenced ({detail})"
                ));
            }
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                return Error::invalid("record", detail);
            }
            _ => {}
        }
    }
    Error::Database(err)
}
