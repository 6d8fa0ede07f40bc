//! API keys: each acts as one user of one workspace. A key is 32 random bytes
//! shown once when it is created; the database keeps only its SHA-256 hash (a
//! key has enough entropy that a plain hash cannot be guessed back) and a short
//! prefix so people can tell their keys apart. Lookups go by hash, so checking
//! a key is one indexed read.

use base64::Engine;
use chrono::{DateTime, Utc};
use sea_query::{Alias, Expr, Order, Query};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::f;
use super::conn::Conn;
use super::records::now;
use super::sql::{col, value};
use super::{Pool, Store};
use crate::error::{Error, Result};
use crate::model::{Ctx, Id, User};
use crate::schema::{FieldDef, FieldType, Scalar};

/// Every key starts with this, so a leaked one is easy to recognise.
pub const KEY_PREFIX: &str = "rk_";
/// Characters of the key kept in clear for listings (`rk_` and 8 more).
const SHOWN: usize = 11;

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Id,
    pub workspace_id: Id,
    pub user_id: Id,
    pub name: String,
    /// The key's first characters, e.g. `rk_3Jx9fQ2a`.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret exists outside the client.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

const FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("workspace_id", FieldType::Id),
    f("user_id", FieldType::Int),
    f("name", FieldType::Text),
    f("prefix", FieldType::Text),
    f("created_at", FieldType::Timestamp),
    f("revoked_at", FieldType::Timestamp),
];

/// The hash a key is stored and looked up under (hex SHA-256).
pub fn hash_key(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh key: the prefix and 32 bytes from the thread's CSPRNG (seeded by the
/// operating system), URL-safe base64.
fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn select() -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(FIELDS.iter().map(|fd| Alias::new(fd.name)))
        .from(Alias::new("api_keys"));
    q
}

async fn fetch(mut conn: Conn<'_>, q: &sea_query::SelectStatement) -> Result<Vec<ApiKey>> {
    conn.fetch_maps(q, FIELDS)
        .await?
        .into_iter()
        .map(super::records::from_map)
        .collect()
}

async fn create(mut conn: Conn<'_>, ctx: &Ctx, user_id: Id, name: &str) -> Result<NewApiKey> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid("name", "a key name is 1 to 100 characters"));
    }
    let secret = generate();
    let mut q = Query::insert();
    q.into_table(Alias::new("api_keys"))
        .columns(
            [
                "workspace_id",
                "user_id",
                "name",
                "prefix",
                "hash",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            ctx.workspace_id.into(),
            user_id.into(),
            name.into(),
            secret[..SHOWN].into(),
            hash_key(&secret).into(),
            value(&Scalar::Timestamp(now())).into(),
        ])
        .returning_col(Alias::new("id"));
    let id = conn
        .fetch_int(&q)
        .await?
        .ok_or_else(|| Error::Internal("insert returned no id".into()))?;
    let mut q = select();
    q.and_where(col("id").eq(id));
    let key = fetch(conn, &q)
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("api key vanished after insert".into()))?;
    Ok(NewApiKey { key, secret })
}

impl Store {
    /// Creates a key acting as `user_id` in the context's workspace. The user
    /// must exist there.
    pub async fn create_api_key(&self, ctx: &Ctx, user_id: Id, name: &str) -> Result<NewApiKey> {
        // Checked first for an error that names the field (the foreign key
        // would only say "constraint").
        self.get::<User>(ctx, user_id).await.map_err(|_| {
            Error::invalid(
                "user_id",
                format!("no user with id {user_id} in this workspace"),
            )
        })?;
        in_tx!(self, |tx| create(tx.conn(), ctx, user_id, name).await?)
    }

    /// The workspace's keys, oldest first, revoked ones included.
    pub async fn api_keys(&self, ctx: &Ctx) -> Result<Vec<ApiKey>> {
        let mut q = select();
        q.and_where(col("workspace_id").eq(ctx.workspace_id))
            .order_by(Alias::new("id"), Order::Asc);
        with_pooled!(self, |c| fetch(c, &q).await)
    }

    /// Revokes a key of the workspace; revoking twice is allowed and keeps the
    /// first time. Returns the key as it is now.
    pub async fn revoke_api_key(&self, ctx: &Ctx, id: Id) -> Result<ApiKey> {
        let mut q = Query::update();
        q.table(Alias::new("api_keys"))
            .value(Alias::new("revoked_at"), value(&Scalar::Timestamp(now())))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("id").eq(id))
            .and_where(Expr::col(Alias::new("revoked_at")).is_null());
        let mut sel = select();
        sel.and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("id").eq(id));
        let revoked: Result<Option<ApiKey>> = in_tx!(self, |tx| {
            tx.conn().execute(&q).await?;
            fetch(tx.conn(), &sel).await?.pop()
        });
        let key = revoked?;
        key.ok_or_else(|| {
            Error::invalid("id", format!("no API key with id {id} in this workspace"))
        })
    }

    /// The user a key acts as, if the key exists and is not revoked.
    pub async fn user_for_api_key(&self, secret: &str) -> Result<Option<(ApiKey, User)>> {
        if !secret.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let mut q = select();
        q.and_where(col("hash").eq(hash_key(secret)))
            .and_where(Expr::col(Alias::new("revoked_at")).is_null());
        let found: Result<Vec<ApiKey>> = with_pooled!(self, |c| fetch(c, &q).await);
        let Some(key) = found?.pop() else {
            return Ok(None);
        };
        let ctx = Ctx::new(key.workspace_id, None, crate::Source::Api);
        let user: User = self.get(&ctx, key.user_id).await?;
        Ok(Some((key, user)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed_to_hex() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        let h = hash_key(&a);
        assert_eq!(h.len(), 64);
        assert_ne!(h, hash_key(&b));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
