//! Scratch PostgreSQL databases for tests, benchmarks and evals: created next
//! to an admin URL's database (optionally as a copy of a seeded template) and
//! dropped afterwards.

use crate::error::Result;

/// Replaces the database name in a postgres URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Creates a scratch PostgreSQL database next to `admin_url`'s; returns its URL.
pub async fn create_scratch_database(admin_url: &str, name: &str) -> Result<String> {
    create_database(admin_url, &format!("CREATE DATABASE \"{name}\""), name).await
}

/// Creates a scratch database as a copy of the database `template` (which
/// nobody may be connected to meanwhile); returns its URL. Copying a seeded
/// database skips the migrations and the seed's writes.
pub async fn create_scratch_database_from(
    admin_url: &str,
    name: &str,
    template: &str,
) -> Result<String> {
    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
    create_database(admin_url, &sql, name).await
}

async fn create_database(admin_url: &str, sql: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sql).execute(&mut conn).await?;
    Ok(with_database(admin_url, name))
}

pub async fn drop_scratch_database(admin_url: &str, name: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
